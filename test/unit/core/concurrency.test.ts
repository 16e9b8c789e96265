import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { AgentError } from '../../../src/model/errors.js';
import type { MountRec } from '../../../src/store/records.js';
import { disk, fs, Harness, ref, rejectsWith, stack, tmp } from './harness.js';

const N = 30;
const jitter = () => Math.random() * 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const kindOf = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'ok' : r.reason instanceof AgentError ? r.reason.kind : String(r.reason));

describe('core: concurrent requests', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  it(`${N} parallel nested creates: unique ids, each request's ids together, every record there, refs right`, async () => {
    await h.createMount(tmp('shared')); // mount 0
    h.world.delay = jitter;
    const made = await Promise.all(Array.from({ length: N }, (_, i) => h.createMount(stack(`s${i}`, [fs(`f${i}`, disk(`d${i}`)), ref(0)]))));
    assert.deepEqual(h.store.list('attach').map((r) => r.id), [...Array(N).keys()]);
    assert.deepEqual(h.store.list('mount').map((r) => r.id), [...Array(2 * N + 1).keys()]);
    for (const s of made) {
      // The one lock runs a request alone, so its ids are given depth-first without gaps.
      const f = h.store.get('mount', s.id - 1);
      assert.equal(f.spec.name, `f${(s.spec.name as string).slice(1)}`);
      assert.deepEqual(s.holds, [{ type: 'mount', id: f.id }, { type: 'mount', id: 0 }]);
    }
    assert.equal(h.store.refs(h.store.get('mount', 0)), N + 1);
    const saved = await h.saved();
    assert.equal(saved.mount.length, 2 * N + 1);
    assert.equal(saved.attach.length, N);
    h.checkIndex();
  });

  it('parallel creates, some failing: the failures leave nothing, the others are whole', async () => {
    await h.createMount(tmp('shared'));
    h.world.delay = jitter;
    for (let i = 0; i < N; i += 3) h.world.failAt({ op: 'mount', name: `s${i}` });
    const results = await Promise.allSettled(Array.from({ length: N }, (_, i) => h.createMount(stack(`s${i}`, [fs(`f${i}`, disk(`d${i}`)), ref(0)]))));
    const ok = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    assert.deepEqual(ok, [...Array(N).keys()].filter((i) => i % 3 !== 0));
    const names = h.all().map((r) => h.nameOf(r)).sort();
    assert.deepEqual(names, ['shared', ...ok.flatMap((i) => [`d${i}`, `f${i}`, `s${i}`])].sort());
    assert.equal(h.store.refs(h.store.get('mount', 0)), ok.length + 1);
    assert.deepEqual([...h.world.live].length, 1 + ok.length * 3, 'devices and mounts: the shared tmp and three per success');
    h.checkIndex();
  });

  it('parallel deletes of one object: exactly one succeeds, the others are NOT_FOUND', async () => {
    await h.createAttach(disk('a'));
    h.world.delay = jitter;
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => h.remove('attach', 0)));
    assert.deepEqual(results.map(kindOf).sort(), [...Array(9).fill('NOT_FOUND'), 'ok']);
    assert.deepEqual(h.world.lines(['detach']), ['detach disk:a']);
  });

  it('parallel forced deletes of a shared object: one succeeds, its users torn down once', async () => {
    await h.createMount(tmp('t'));
    await h.createMount(stack('s1', [ref(0)]));
    await h.createMount(stack('s2', [ref(0)]));
    h.world.delay = jitter;
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => h.remove('mount', 0, true)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    assert.ok(results.every((r) => kindOf(r) === 'ok' || kindOf(r) === 'NOT_FOUND'), results.map(kindOf).join(' '));
    assert.deepEqual(h.world.lines(['unmount']), ['unmount stack:s1', 'unmount stack:s2', 'unmount tmp:t']);
    assert.deepEqual(h.all(), []);
  });

  it('a create that holds the lock when a delete of what it references comes: the create wins, the delete is IN_USE', async () => {
    await h.createAttach(disk('a'));
    const gate = h.world.gate('mount', 'f');
    const creating = h.createMount(fs('f', ref(0)));
    await gate.reached;
    const removing = h.remove('attach', 0);
    gate.release();
    await creating;
    await rejectsWith(removing, 'IN_USE', /^attachment 0 \(disk\) is in use by mount 0 \(fs\)/);
    h.checkIndex();
  });

  it('a delete that holds the lock when a create referencing it comes: the delete wins, the create is NOT_FOUND', async () => {
    await h.createAttach(disk('a'));
    const gate = h.world.gate('detach', 'a');
    const removing = h.remove('attach', 0);
    await gate.reached;
    const creating = h.createMount(fs('f', ref(0)));
    gate.release();
    await removing;
    await rejectsWith(creating, 'NOT_FOUND', 'mount.fs.attach: no attachment with id 0');
    assert.deepEqual(h.world.lines(['mount']), []);
    h.checkIndex();
  });

  it('a delete of an object its request has not finished making is NOT_FOUND, and the request still completes', async () => {
    const gate = h.world.gate('mount', 's');
    const creating = h.createMount(stack('s', [tmp('t')]));
    await gate.reached;
    await rejectsWith(h.remove('mount', 0), 'NOT_FOUND', 'no mount with id 0');
    await rejectsWith(h.remove('mount', 1, true), 'NOT_FOUND', 'no mount with id 1');
    gate.release();
    await creating;
    assert.deepEqual(h.store.list('mount').map((m) => m.id), [0, 1]);
    h.checkIndex();
  });

  it('a forced delete whose users stop (without the lock) while a new user is created: the new user goes too', async () => {
    await h.createMount(tmp('t'));
    await h.createContainer(ref(0));
    const stop = h.world.gate('stop');
    const removing = h.remove('mount', 0, true);
    await stop.reached;
    await h.createMount(stack('late', [ref(0)]));
    stop.release();
    await removing;
    assert.deepEqual(h.all(), []);
    assert.deepEqual(h.world.lines(['unmount', 'teardown']).sort(), ['teardown container:0', 'unmount stack:late', 'unmount tmp:t']);
  });

  for (const force of [false, true]) {
    it(`races of a create referencing an object and its ${force ? 'forced ' : ''}delete never leave a dangling reference`, async () => {
      h.world.delay = jitter;
      for (let round = 0; round < 20; round++) {
        const a = await h.createAttach(disk(`a${round}`));
        const [c, d] = await Promise.allSettled([
          sleep(jitter()).then(() => h.createMount(fs(`f${round}`, ref(a.id)))),
          sleep(jitter()).then(() => h.remove('attach', a.id, force)),
        ]);
        const outcome = `${kindOf(c)}/${kindOf(d)}`;
        const allowed = force ? ['ok/ok', 'NOT_FOUND/ok'] : ['ok/IN_USE', 'NOT_FOUND/ok'];
        assert.ok(allowed.includes(outcome), `round ${round}: create/delete ${outcome}`);
        const f = c.status === 'fulfilled' ? (c.value as MountRec) : undefined;
        if (f) assert.equal(!!h.store.find('mount', f.id), !force, 'a forced delete takes the new user with it');
        h.checkIndex();
      }
    });
  }

  it(
    'a request in flight is invisible: its holds do not count in the refs others see',
    {},
    async () => {
      const a = await h.createAttach(disk('a'));
      const gate = h.world.gate('mount', 'f');
      h.world.failAt({ op: 'mount', name: 'f' });
      const creating = h.createMount(fs('f', ref(0)));
      await gate.reached;
      try {
        assert.equal(h.views.attach(a).refs, 1);
        assert.deepEqual(h.store.holders({ type: 'attach', id: 0 }), []);
      } finally {
        gate.release();
        await creating.catch(() => {});
      }
    },
  );
});
