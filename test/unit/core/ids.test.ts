import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { disk, file, fs, Harness, ref, stack, sub, tmp } from './harness.js';

const unique = (ids: number[]) => new Set(ids).size === ids.length;

describe('core: ids', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  it('one sequence per type, each starting at 0', async () => {
    assert.equal((await h.createAttach(disk('a'))).id, 0);
    assert.equal((await h.createAttach(disk('b'))).id, 1);
    assert.equal((await h.createMount(tmp('m'))).id, 0);
    assert.equal((await h.createContainer(ref(0))).id, 0);
    assert.equal((await h.createAttach(file('c'))).id, 2);
    assert.equal((await h.createMount(tmp('n'))).id, 1);
  });

  it('depth-first within a nested request: children before their parent, in slot order', async () => {
    const top = await h.createMount(stack('s', [fs('f', disk('d0')), tmp('t'), sub('b', fs('g', disk('d1')))]));
    const ids = Object.fromEntries(h.all().map((r) => [h.nameOf(r), `${r.type} ${r.id}`]));
    assert.deepEqual(ids, {
      d0: 'attach 0',
      f: 'mount 0',
      t: 'mount 1',
      d1: 'attach 1',
      g: 'mount 2',
      b: 'mount 3',
      s: 'mount 4',
    });
    assert.equal(top.id, 4);
    // An attachment's mount child comes first too (a loopback file inside a mount).
    const a = await h.createAttach(file('lf', { base: 'mount', mount: tmp('inner') }));
    assert.equal(a.id, 2);
    assert.equal(h.byName('inner')?.id, 5);
  });

  it('never reused after a delete', async () => {
    await h.createAttach(disk('a'));
    await h.remove('attach', 0);
    assert.equal((await h.createAttach(disk('b'))).id, 1);
    await h.createMount(fs('f', disk('c')));
    await h.remove('mount', 0);
    assert.equal((await h.createMount(tmp('t'))).id, 1);
    assert.equal((await h.createAttach(disk('e'))).id, 3, 'the attachment the deleted mount defined keeps its id spent too');
  });

  it('a failed request spends the ids it gave (they are not rolled back) and none is given again', async () => {
    h.world.failAt({ op: 'mount', name: 'bad' });
    await assert.rejects(h.createMount(stack('s', [tmp('ok'), tmp('bad')])));
    assert.deepEqual(h.given.mount, [0, 1], 'ok got 0 and bad got 1 before bad failed; the stack got none');
    assert.equal(h.all().length, 0);
    assert.equal((await h.createMount(tmp('next'))).id, 2);
    assert.ok(unique(h.given.mount));
  });

  it('never reused after a reload of the store from its file', async () => {
    await h.createAttach(disk('a'));
    await h.createAttach(disk('b'));
    await h.createMount(fs('f', ref(0)));
    await h.remove('attach', 1);
    await h.reopen();
    assert.equal((await h.createAttach(disk('c'))).id, 2);
    assert.equal((await h.createMount(tmp('t'))).id, 1);
    assert.ok(unique(h.given.attach) && unique(h.given.mount), JSON.stringify(h.given));
  });

  it(
    'never reused after a failed request followed by a restart',
    {},
    async () => {
      await h.createMount(tmp('kept'));
      h.world.failAt({ op: 'mount', name: 'bad' });
      await assert.rejects(h.createMount(tmp('bad')));
      await h.reopen();
      await h.createMount(tmp('after'));
      assert.ok(unique(h.given.mount), `mount ids given: ${h.given.mount.join(', ')}`);
    },
  );
});
