// A container's end is recorded once, however many times it is reported at the same moment
// (the supervisor's exit event and the poller both report it). No root: the record is made by
// hand and the supervisor's status file written by the test.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { ContainerManager } from '../../../src/container/lifecycle.js';
import { Engine } from '../../../src/core/engine.js';
import type { ContainerRec } from '../../../src/store/records.js';
import { Store } from '../../../src/store/store.js';

describe('the end of a container', () => {
  const runDir = mkdtempSync(join(tmpdir(), 'imageapi-unit-'));
  after(() => rmSync(runDir, { recursive: true, force: true }));

  it('reported twice at once is recorded once, and saved', async () => {
    const store = new Store(runDir);
    const containers = new ContainerManager({ helper: '/nonexistent' });
    const engine = new Engine(store, { attach: {}, mount: {} }, { runDir, log: pino({ level: 'silent' }), config: {} }, {
      stop: (r) => containers.stop(r),
      teardown: (r) => containers.teardown(r),
    });
    containers.attach(engine);
    const logfile = join(runDir, 'c.log');
    writeFileSync(logfile, '');
    const rec: ContainerRec = {
      type: 'container', id: 7, owner: 'user', holds: [], command: 'x', argv: ['x'], systemd: false, namespaces: ['mnt'],
      hostname: 'h', env: [], stop_timeout: 1, state: 'running', logfile, pid: 4242, shim_pid: null, pid_start: null,
      exit_code: null, stop_requested: false, created_at: '', started_at: '', finished_at: null, cgroups: [],
    };
    store.put(rec);
    mkdirSync(join(runDir, 'containers', '7'), { recursive: true });
    writeFileSync(join(runDir, 'containers', '7', 'status'), 'exit_code=3\nsignal=0\n');
    const onEnd = (containers as unknown as { onEnd(id: number): Promise<void> }).onEnd.bind(containers);
    await Promise.all([onEnd(7), onEnd(7), onEnd(7)]);
    assert.equal(rec.state, 'dead');
    assert.equal(rec.exit_code, 3);
    assert.equal(readFileSync(logfile, 'utf8').match(/container dead/g)?.length, 1);
    // The end is not waited for (the status file holds it): it goes with the next save.
    await engine.update(() => {});
    const saved = JSON.parse(readFileSync(join(runDir, 'state.json'), 'utf8')) as { container: ContainerRec[] };
    assert.equal(saved.container[0]?.state, 'dead');
    containers.close();
  });
});
