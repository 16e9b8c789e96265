import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { disk, fs, Harness, ref, stack, tmp } from './harness.js';

const TEARDOWN = ['detach', 'unmount', 'stop', 'teardown'] as const;
const ids = (h: Harness) => h.all().map((r) => `${r.type} ${r.id}`);
const dropped = (h: Harness) => h.logs.filter((l) => l.msg === 'vanished while the agent was down: dropped').map((l) => l.object);

describe('core: reconcile after a restart', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  /** a ← f ← s ← container 0, and b ← g, t on their own. */
  async function population(): Promise<void> {
    await h.createAttach(disk('a')); // attach 0
    await h.createAttach(disk('b')); // attach 1
    await h.createMount(fs('f', ref(0))); // mount 0
    await h.createMount(stack('s', [ref(0)])); // mount 1
    await h.createMount(tmp('t')); // mount 2
    await h.createMount(fs('g', ref(1))); // mount 3
    await h.createContainer(ref(1)); // container 0
    h.world.reset();
  }

  it('adopts what is still there, with the same ids, refs and ownership', async () => {
    await population();
    const before = h.all().map((r) => ({ ...r, refs: h.store.refs(r) }));
    await h.reopen();
    assert.deepEqual(h.world.lines(), ['adopt disk:a', 'adopt disk:b', 'adopt fs:f', 'adopt stack:s', 'adopt tmp:t', 'adopt fs:g']);
    const after = h.all().map((r) => ({ ...r, refs: h.store.refs(r) }));
    const shape = (rs: typeof before) => rs.map((r) => [r.type, r.id, r.owner, r.holds, r.refs]);
    assert.deepEqual(shape(after), shape(before));
    assert.deepEqual(dropped(h), []);
    h.checkIndex();
  });

  it('keeps what adopt refreshed, and saves it', async () => {
    await h.createAttach(disk('a'));
    await h.reopen();
    assert.equal(h.store.get('attach', 0).attached.state.adopted, true);
    assert.equal((await h.saved()).attach[0]!.attached.state.adopted, true);
  });

  it('drops what vanished and tears down, top-down, whatever stood on it; the rest stays', async () => {
    await population();
    h.world.vanished.add('a');
    await h.reopen();
    assert.deepEqual(h.world.lines(TEARDOWN), ['teardown container:0', 'unmount stack:s', 'unmount fs:f'], 'no detach of what vanished');
    assert.deepEqual(ids(h), ['attach 1', 'mount 2', 'mount 3']);
    assert.equal(h.store.refs(h.store.get('attach', 1)), 2);
    assert.deepEqual(dropped(h), ['attachment 0 (disk)']);
    const saved = await h.saved();
    assert.deepEqual([saved.attach.map((r) => r.id), saved.mount.map((r) => r.id), saved.container.map((r) => r.id)], [[1], [2, 3], []]);
    h.checkIndex();
    // Dropped ids stay spent.
    assert.equal((await h.createAttach(disk('c'))).id, 2);
    assert.equal((await h.createMount(tmp('u'))).id, 4);
  });

  it(
    'logs each object it tears down because what it stood on vanished',
    {},
    async () => {
      await population();
      h.world.vanished.add('a');
      await h.reopen();
      const named = JSON.stringify(h.logs);
      for (const o of ['mount 0 (fs)', 'mount 1 (stack)', 'container 0']) assert.ok(named.includes(o), `${o} is named in the log`);
    },
  );

  it('a vanished mount releases the attachment it defined (nothing else uses it)', async () => {
    await h.createMount(fs('f', disk('a')));
    h.world.reset();
    h.world.vanished.add('f');
    await h.reopen();
    assert.deepEqual(h.world.lines(TEARDOWN), ['detach disk:a'], 'no unmount of what vanished');
    assert.deepEqual(ids(h), []);
    assert.deepEqual(dropped(h), ['mount 0 (fs)']);
  });

  it('a vanished attachment its mount defined: the mount goes, and the attachment goes with it', async () => {
    await h.createMount(fs('f', disk('a')));
    h.world.reset();
    h.world.vanished.add('a');
    await h.reopen();
    // Releasing f deletes what f defined, so detach reaches the vanished device (drivers must be idempotent).
    assert.deepEqual(h.world.lines(TEARDOWN), ['unmount fs:f', 'detach disk:a']);
    assert.deepEqual(ids(h), []);
    assert.deepEqual(dropped(h), ['attachment 0 (disk)']);
  });

  it('a container that is not adopted is dropped, and the mount it defined released', async () => {
    await h.createContainer(stack('s', [tmp('t')]));
    h.world.reset();
    await h.reopen(async () => false);
    assert.deepEqual(h.world.lines(TEARDOWN), ['unmount stack:s', 'unmount tmp:t']);
    assert.deepEqual(ids(h), []);
    assert.deepEqual(dropped(h), ['container 0']);
  });

  it('an object whose driver is gone from this build is dropped', async () => {
    await h.createMount(tmp('t'));
    delete (h.drivers.mount as Record<string, unknown>).tmp;
    await h.reopen();
    assert.deepEqual(ids(h), []);
    assert.deepEqual(dropped(h), ['mount 0 (tmp)']);
  });

  it('an adopt that throws is not a disappearance: the object and its users are kept', async () => {
    await h.createMount(tmp('t'));
    await h.createMount(stack('s', [ref(0)]));
    h.world.reset();
    h.world.adoptThrows.add('t');
    await h.reopen();
    assert.deepEqual(h.world.lines(TEARDOWN), []);
    assert.deepEqual(dropped(h), []);
    assert.deepEqual(ids(h), ['mount 0', 'mount 1']);
  });

  it(
    'an adopt that throws is logged with its error (a fault is not a disappearance)',
    {},
    async () => {
      await h.createMount(tmp('t'));
      h.world.adoptThrows.add('t');
      await h.reopen();
      assert.ok(JSON.stringify(h.logs).includes('cannot check it after the restart'), 'the adopt error is in the log');
    },
  );
});
