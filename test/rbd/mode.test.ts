// The choice between krbd, nbd and fuse, from the host's facts and config `rbd_mode`.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { rbdDriver } from '../../src/attach/rbd/index.js';
import { chooseMode, hostFacts, parseModeSetting, type HostFacts } from '../../src/attach/rbd/mode.js';
import { AgentError } from '../../src/model/errors.js';

const none: HostFacts = { krbd: false, nbdKernel: false, rbd: false, rbdNbd: false, rbdFuse: false, fuse: false };
const tools = { rbd: true, rbdNbd: true, rbdFuse: true };

const kindOf = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof AgentError);
    return e.kind;
  }
};

describe('auto mode', () => {
  test('kernel RBD first', () => {
    assert.equal(chooseMode('auto', { ...none, ...tools, krbd: true, nbdKernel: true, fuse: true }), 'krbd');
  });
  test('then nbd when the kernel has nbd and rbd-nbd is installed', () => {
    assert.equal(chooseMode('auto', { ...none, ...tools, nbdKernel: true, fuse: true }), 'nbd');
  });
  test('nbd kernel support without rbd-nbd falls back to fuse', () => {
    assert.equal(chooseMode('auto', { ...none, ...tools, rbdNbd: false, nbdKernel: true, fuse: true }), 'fuse');
  });
  test('this kind of host (no rbd, no nbd, FUSE): fuse', () => {
    assert.equal(chooseMode('auto', { ...none, ...tools, fuse: true }), 'fuse');
  });
  test('nothing usable: 501 with the reasons', () => {
    assert.throws(
      () => chooseMode('auto', { ...none, rbd: true }),
      (e: AgentError) => e.kind === 'UNSUPPORTED' && /\/sys\/bus\/rbd/.test(e.message) && /rbd-fuse|FUSE/.test(e.message),
    );
  });
});

describe('forced modes', () => {
  test('krbd without kernel RBD is a 501 naming /sys/bus/rbd', () => {
    assert.throws(
      () => chooseMode('krbd', { ...none, ...tools, fuse: true }),
      (e: AgentError) => e.kind === 'UNSUPPORTED' && /\/sys\/bus\/rbd/.test(e.message),
    );
  });
  test('nbd without nbd, or without rbd-nbd, is a 501', () => {
    assert.equal(kindOf(() => chooseMode('nbd', { ...none, ...tools })), 'UNSUPPORTED');
    assert.equal(kindOf(() => chooseMode('nbd', { ...none, ...tools, rbdNbd: false, nbdKernel: true })), 'UNSUPPORTED');
  });
  test('fuse without /dev/fuse or rbd-fuse is a 501', () => {
    assert.equal(kindOf(() => chooseMode('fuse', { ...none, ...tools })), 'UNSUPPORTED');
    assert.equal(kindOf(() => chooseMode('fuse', { ...none, ...tools, rbdFuse: false, fuse: true })), 'UNSUPPORTED');
  });
  test('forced modes that can work are taken', () => {
    const all = { ...none, ...tools, krbd: true, nbdKernel: true, fuse: true };
    assert.equal(chooseMode('krbd', all), 'krbd');
    assert.equal(chooseMode('nbd', all), 'nbd');
    assert.equal(chooseMode('fuse', all), 'fuse');
  });
  test('rbd_mode setting', () => {
    assert.equal(parseModeSetting(undefined), 'auto');
    assert.equal(parseModeSetting('fuse'), 'fuse');
    assert.equal(kindOf(() => parseModeSetting('kernel')), 'INTERNAL');
  });
});

describe('on this host', () => {
  test('forcing a mode this host cannot do is a 501 before anything is created', async () => {
    const facts = await hostFacts();
    const runDir = await mkdtemp(join(tmpdir(), 'rbd-mode-'));
    try {
      const ctx = { runDir, log: pino({ level: 'silent' }), mountpoint: () => { throw new Error('unused'); }, config: {} };
      for (const mode of ['krbd', 'nbd', 'fuse'] as const) {
        let expectFail = false;
        try {
          chooseMode(mode, facts);
        } catch {
          expectFail = true;
        }
        if (!expectFail) continue;
        const c = { ...ctx, config: { rbd_mode: mode } };
        await assert.rejects(rbdDriver.available!({ monitors: ['127.0.0.1'], pool: 'rbd', image: 'x' }, c), (e: AgentError) => e.kind === 'UNSUPPORTED');
        await assert.rejects(
          rbdDriver.attach({ monitors: ['127.0.0.1'], pool: 'rbd', image: 'x' }, {}, c),
          (e: AgentError) => e.kind === 'UNSUPPORTED',
        );
      }
      assert.deepEqual(await readdir(runDir), [], 'nothing created');
    } finally {
      await rm(runDir, { recursive: true, force: true });
    }
  });
});
