import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { disk, file, fs, Harness, ref, shown, stack, tmp } from './harness.js';

describe('views: objects as the API renders them', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());
  const mp = (id: number) => join(h.dir, 'mounts', `mount_${id}`);

  it('nested children are expanded, each with its own refs, at every depth', async () => {
    await h.createMount(tmp('t')); // mount 0, used below by reference
    const s = await h.createMount(stack('s', [fs('f', disk('a')), ref(0)]));
    assert.deepEqual(h.views.mount(s), {
      id: 2,
      kind: 'stack',
      mountpoint: mp(2),
      refs: 1,
      stack: {
        name: 's',
        lower: [
          {
            id: 1,
            kind: 'fs',
            mountpoint: mp(1),
            refs: 1,
            fs: { name: 'f', attach: { id: 0, kind: 'disk', device_file: '/dev/fake0', refs: 1, disk: { name: 'a' } } },
          },
          { id: 0, kind: 'tmp', mountpoint: mp(0), refs: 2, tmp: { name: 't' } },
        ],
        upperdir: `${mp(2)}.upper`,
      },
    });
  });

  it('an attachment\'s optional mount child is expanded too', async () => {
    const a = await h.createAttach(file('lf', { base: 'mount', mount: tmp('t') }));
    assert.deepEqual(h.views.attach(a), {
      id: 0,
      kind: 'file',
      device_file: '/dev/fake0',
      refs: 1,
      file: { name: 'lf', base: 'mount', mount: { id: 0, kind: 'tmp', mountpoint: mp(0), refs: 1, tmp: { name: 't' } } },
    });
  });

  it('refs follow an ownership transfer', async () => {
    await h.createMount(stack('s', [tmp('t')]));
    await h.createMount(stack('s2', [ref(0)]));
    const lowerRefs = () => shown(h.views.mountById(2)).stack.lower[0].refs;
    assert.equal(lowerRefs(), 2);
    await h.remove('mount', 1);
    assert.equal(lowerRefs(), 2, 's2 and now the user');
    assert.equal(h.views.mountById(0).refs, 2);
  });

  it('a container shows its mount expanded', async () => {
    const c = await h.createContainer(stack('s', [tmp('t')]));
    const v = h.views.container(c);
    assert.equal(v.id, 0);
    assert.equal(v.refs, 1);
    assert.deepEqual(shown(v.mount).stack.lower, [{ id: 0, kind: 'tmp', mountpoint: mp(0), refs: 1, tmp: { name: 't' } }]);
  });

  it('what is not there renders as its bare reference', () => {
    assert.deepEqual(h.views.mountById(9), { id: 9 });
    assert.deepEqual(h.views.attachById(9), { id: 9 });
  });
});
