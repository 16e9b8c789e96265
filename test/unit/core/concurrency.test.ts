import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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

  it(`${N} parallel nested creates: unique ids, each request's ids depth-first, every record there, refs right`, async () => {
    await h.createMount(tmp('shared')); // mount 0
    h.world.delay = jitter;
    const made = await Promise.all(Array.from({ length: N }, (_, i) => h.createMount(stack(`s${i}`, [fs(`f${i}`, disk(`d${i}`)), ref(0)]))));
    assert.deepEqual(h.store.list('attach').map((r) => r.id), [...Array(N).keys()]);
    assert.deepEqual(h.store.list('mount').map((r) => r.id), [...Array(2 * N + 1).keys()]);
    for (const s of made) {
      // Requests run side by side, so one request's ids need not be adjacent; but each is given
      // depth-first (a child's before its parent's), and each level holds its own children.
      const i = (s.spec.name as string).slice(1);
      const f = h.store.get('mount', s.holds[0]!.id);
      assert.equal(f.spec.name, `f${i}`);
      assert.deepEqual(s.holds, [{ type: 'mount', id: f.id }, { type: 'mount', id: 0 }]);
      assert.ok(f.id < s.id, `fs f${i} (${f.id}) given before its parent (${s.id})`);
      const d = h.store.get('attach', f.holds[0]!.id);
      assert.equal(d.spec.name, `d${i}`);
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
  it('the lock is not held across kernel work: a request held in its driver call does not keep another from finishing', async () => {
    const gate = h.world.gate('mount', 'slow');
    const slow = h.createMount(tmp('slow'));
    await gate.reached;
    const fast = await h.createMount(tmp('fast'));
    const removed = await h.remove('mount', fast.id);
    assert.equal(removed.id, fast.id);
    gate.release();
    const s = await slow;
    assert.deepEqual(h.store.list('mount').map((m) => m.spec.name), ['slow']);
    assert.equal(s.id, 0);
    h.checkIndex();
  });

  it('a delete of what a create in flight references waits for it: the create undone, the delete then goes ahead', async () => {
    await h.createAttach(disk('a'));
    const gate = h.world.gate('mount', 'f');
    h.world.failAt({ op: 'mount', name: 'f' });
    const creating = h.createMount(fs('f', ref(0)));
    await gate.reached;
    let settled = false;
    const removing = h.remove('attach', 0).finally(() => (settled = true));
    await sleep(10);
    assert.equal(settled, false, 'the delete waits for the create that references it');
    gate.release();
    await assert.rejects(creating);
    assert.equal((await removing).id, 0);
    assert.deepEqual(h.all(), []);
    assert.deepEqual(h.world.lines(['detach']), ['detach disk:a']);
  });

  it('a delete of a child its parent defined, referenced by a create in flight, keeps it for that create (then the user\'s)', async () => {
    await h.createMount(stack('s', [tmp('t')])); // tmp t = mount 0, stack s = mount 1 owning it
    const gate = h.world.gate('mount', 'u');
    const creating = h.createMount(stack('u', [ref(0), tmp('x')])); // references t, then held making x
    await gate.reached;
    const removing = h.remove('mount', 1); // s goes; t, defined by s, is wanted by u
    await sleep(10);
    gate.release();
    await creating;
    await removing;
    const t = h.byName('t')!;
    assert.equal(t.owner, 'user', 'kept for the create that references it, as a top-level object');
    assert.deepEqual(h.world.lines(['unmount']), ['unmount stack:s']);
    h.checkIndex();
  });

  it('a forced delete of a child whose user is its own parent completes (the parent first, then the child, once)', async () => {
    await h.createMount(stack('s', [tmp('t')]));
    await h.remove('mount', 0, true);
    assert.deepEqual(h.world.lines(['unmount']), ['unmount stack:s', 'unmount tmp:t']);
    assert.deepEqual(h.all(), []);
  });

  it('parallel creates share state writes (group commit), and each answers only once its records are in the file', async () => {
    h.world.delay = jitter;
    const saver = (h.store as unknown as { saver: { writes: number } }).saver;
    const before = saver.writes;
    const inFile: boolean[] = [];
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        h.createMount(tmp(`t${i}`)).then((m) => {
          const saved = JSON.parse(readFileSync(h.store.file, 'utf8')) as { mount: Array<{ id: number }> };
          inFile.push(saved.mount.some((r) => r.id === m.id));
        }),
      ),
    );
    assert.deepEqual(inFile, Array(N).fill(true), 'every answer came after its commit was written');
    // Each request asks for two writes (its intent, its commit: the harness gives no spec);
    // requests in flight together share them.
    const writes = saver.writes - before;
    assert.ok(writes < 2 * N, `${writes} writes for ${N} parallel creates (${2 * N} without sharing)`);
    const saved = await h.saved();
    assert.equal(saved.mount.length, N);
  });

  it('an update from a watcher started inside a transaction does not wait for another request in flight, and saves none of its pending records', async () => {
    let watcherRan!: Promise<void>;
    const gate = h.world.gate('mount', 'u');
    await h.engine.transaction(async (tx) => {
      await h.engine.createMount(tmp('t'), 'user', tx, 'mount');
      watcherRan = gate.reached.then(() => h.engine.update(() => {}));
    });
    const creating = h.createMount(tmp('u')); // mount 1, held in the middle by the gate
    await gate.reached;
    await watcherRan; // while mount 1's request is still held
    const saved = await h.saved();
    assert.deepEqual(saved.mount.map((m) => m.id), [0], 'the pending mount 1 is not in the file');
    assert.equal(h.store.find('mount', 1)?.pending, true);
    gate.release();
    await creating;
    assert.deepEqual((await h.saved()).mount.map((m) => m.id), [0, 1]);
  });
});
