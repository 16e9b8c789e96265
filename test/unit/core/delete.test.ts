import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { disk, fs, Harness, ref, rejectsWith, stack, tmp } from './harness.js';

const TEARDOWN = ['detach', 'unmount', 'stop', 'teardown'] as const;

describe('core: delete', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  it('is refused with IN_USE naming every user, and nothing is torn down', async () => {
    const a = await h.createAttach(disk('a'));
    await h.createMount(fs('f', ref(0)));
    await h.createMount(fs('g', ref(0)));
    await rejectsWith(
      h.remove('attach', 0),
      'IN_USE',
      'attachment 0 (disk) is in use by mount 0 (fs), mount 1 (fs) (delete those first, or use force=true)',
    );
    assert.deepEqual(h.world.lines(TEARDOWN), []);
    assert.equal(h.store.refs(a), 3);
    h.checkIndex();
  });

  it('of a child some parent defined is refused while the parent stands', async () => {
    await h.createMount(fs('f', disk('a')));
    await rejectsWith(h.remove('attach', 0), 'IN_USE', /^attachment 0 \(disk\) is in use by mount 0 \(fs\)/);
    assert.deepEqual(h.world.lines(TEARDOWN), []);
  });

  it('of a missing object is NOT_FOUND', async () => {
    await rejectsWith(h.remove('mount', 3), 'NOT_FOUND', 'no mount with id 3');
  });

  it('with force deletes the users first, top-down (containers stopped before anything)', async () => {
    await h.createAttach(disk('a'));
    await h.createMount(fs('f', ref(0)));
    await h.createMount(stack('s', [ref(0)]));
    await h.createContainer(ref(1));
    const gone = await h.remove('attach', 0, true);
    assert.equal(gone.id, 0);
    assert.deepEqual(h.world.lines(TEARDOWN), ['stop container:0', 'teardown container:0', 'unmount stack:s', 'unmount fs:f', 'detach disk:a']);
    assert.deepEqual(h.all(), []);
    assert.deepEqual(await readdir(join(h.dir, 'mounts')), []);
    const saved = await h.saved();
    assert.equal(saved.attach.length + saved.mount.length + saved.container.length, 0);
  });

  it('the stop of a container a forced delete takes runs without the lock (other requests go on)', async () => {
    await h.createMount(tmp('t'));
    await h.createContainer(ref(0));
    const stop = h.world.gate('stop');
    const removing = h.remove('mount', 0, true);
    await stop.reached;
    await h.createAttach(disk('meanwhile'));
    stop.release();
    await removing;
    assert.deepEqual(h.world.lines(), ['mount tmp:t', 'stop container:0', 'attach disk:meanwhile', 'teardown container:0', 'unmount tmp:t']);
  });

  it('takes the children the object defined with it, depth-first', async () => {
    await h.createMount(stack('s', [fs('f', disk('a')), tmp('t')]));
    await h.remove('mount', 2);
    assert.deepEqual(h.world.lines(TEARDOWN), ['unmount stack:s', 'unmount fs:f', 'detach disk:a', 'unmount tmp:t']);
    assert.deepEqual(h.all(), []);
    assert.deepEqual([...h.world.live], []);
    assert.deepEqual(await readdir(join(h.dir, 'mounts')), []);
  });

  it('leaves a child it defined that someone else uses, which becomes the user\'s (ownership transfer on release)', async () => {
    await h.createMount(stack('s', [tmp('t')])); // t = mount 0, s = mount 1
    await h.createMount(stack('s2', [ref(0)])); // s2 = mount 2
    const t = h.store.get('mount', 0);
    assert.deepEqual(t.owner, { type: 'mount', id: 1 });
    assert.equal(h.store.refs(t), 2, 'its parent and s2');
    await h.remove('mount', 1);
    assert.deepEqual(h.world.lines(TEARDOWN), ['unmount stack:s']);
    assert.equal(t.owner, 'user');
    assert.equal(h.store.refs(t), 2, 's2 and the user');
    assert.equal((await h.saved()).mount.find((m) => m.id === 0)?.owner, 'user', 'the transfer is saved');
    h.checkIndex();
    // It is top-level now: its last user going leaves it alone.
    await h.remove('mount', 2);
    assert.deepEqual(h.world.lines(TEARDOWN), ['unmount stack:s', 'unmount stack:s2']);
    assert.ok(h.store.find('mount', 0));
    assert.equal(h.store.refs(t), 1);
    h.checkIndex();
    await h.remove('mount', 0);
    assert.deepEqual(h.all(), []);
  });

  it('a transferred child survives a reload as a top-level object', async () => {
    await h.createMount(fs('f', disk('a')));
    await h.createMount(fs('g', ref(0)));
    await h.remove('mount', 0);
    await h.reopen();
    const a = h.store.get('attach', 0);
    assert.equal(a.owner, 'user');
    assert.equal(h.store.refs(a), 2);
    h.checkIndex();
  });

  it('a defined child that cannot be torn down stays, as a top-level object, and the delete says so', async () => {
    await h.createMount(stack('s', [fs('f', disk('a')), tmp('t')]));
    h.world.failAt({ op: 'detach', name: 'a', message: 'device busy' });
    const err = await rejectsWith(h.remove('mount', 2), 'INTERNAL', /^mount 2 \(stack\) was deleted, but what it defined could not all be torn down \(kept as top-level objects\): /);
    assert.match(err.message, /attachment 0 \(disk\): device busy$/);
    assert.deepEqual(h.world.lines(TEARDOWN), ['unmount stack:s', 'unmount fs:f', 'detach disk:a', 'unmount tmp:t']);
    assert.deepEqual(h.all().map((r) => `${r.type} ${r.id}`), ['attach 0']);
    assert.equal(h.store.get('attach', 0).owner, 'user');
    assert.deepEqual((await h.saved()).attach.map((r) => [r.id, r.owner]), [[0, 'user']]);
    h.checkIndex();
  });

  it('a defined child that cannot be torn down: the message lists as kept only what was kept', async () => {
    await h.createMount(stack('s', [fs('f', disk('a'))]));
    h.world.failAt({ op: 'detach', name: 'a', message: 'device busy' });
    const err = await rejectsWith(h.remove('mount', 1), 'INTERNAL');
    assert.ok(!h.store.find('mount', 0), 'mount 0 was deleted');
    assert.equal(
      err.message,
      'mount 1 (stack) was deleted, but what it defined could not all be torn down (kept as top-level objects): attachment 0 (disk): device busy',
    );
    assert.equal(h.store.get('attach', 0).owner, 'user');
    h.checkIndex();
  });

  it('a failed teardown of the object itself leaves it in place, users and all', async () => {
    await h.createMount(fs('f', disk('a')));
    h.world.failAt({ op: 'unmount', name: 'f', kind: 'IN_USE', message: 'target is busy' });
    await rejectsWith(h.remove('mount', 0), 'IN_USE', 'target is busy');
    assert.deepEqual(h.all().map((r) => `${r.type} ${r.id}`), ['attach 0', 'mount 0']);
    h.checkIndex();
    await h.remove('mount', 0);
    assert.deepEqual(h.all(), []);
  });

  it(
    'with force, of a child its parent defined, tears the child down once',
    {},
    async () => {
      await h.createMount(fs('f', disk('a')));
      await h.remove('attach', 0, true);
      assert.deepEqual(h.world.lines(TEARDOWN), ['unmount fs:f', 'detach disk:a']);
    },
  );

  it(
    'with force, of a mount a container defined, unmounts it once',
    {},
    async () => {
      await h.createContainer(tmp('t'));
      await h.remove('mount', 0, true);
      assert.deepEqual(h.world.lines(TEARDOWN), ['stop container:0', 'teardown container:0', 'unmount tmp:t']);
    },
  );
});
