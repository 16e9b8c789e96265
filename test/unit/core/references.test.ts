import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Dep } from '../../../src/model/objects.js';
import { disk, fs, Harness, ref, rejectsWith, stack, tmp } from './harness.js';

describe('core: references and definitions', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  it('{id} references an existing object: it stays the user\'s, its refs count the new user, the driver gets it resolved', async () => {
    await h.createAttach(disk('x'));
    const a = await h.createAttach(disk('a'));
    const f = await h.createMount(fs('f', ref(1)));
    assert.deepEqual(f.spec.attach, { id: 1 });
    assert.deepEqual(f.holds, [{ type: 'attach', id: 1 }]);
    assert.equal(a.owner, 'user');
    assert.equal(h.store.refs(a), 2);
    const dep = h.world.calls.find((c) => c.op === 'mount')!.deps!.attach as Dep;
    assert.deepEqual(dep, { type: 'attach', id: 1, device_file: a.attached.device_file, readonly: false });
    await h.createMount(fs('g', ref(1, 'disk')));
    assert.equal(h.store.refs(a), 3);
    h.checkIndex();
  });

  it('a definition belongs to the parent that defined it', async () => {
    const f = await h.createMount(fs('f', disk('a')));
    const a = h.store.get('attach', 0);
    assert.deepEqual(a.owner, { type: 'mount', id: f.id });
    assert.equal(h.store.refs(a), 1, 'its parent only');
    assert.equal(h.store.refs(f), 1, 'the user only');
  });

  it('a missing id is NOT_FOUND, naming the level and the id', async () => {
    await rejectsWith(h.createMount(fs('f', ref(7))), 'NOT_FOUND', 'mount.fs.attach: no attachment with id 7');
    await h.createMount(tmp('t'));
    await rejectsWith(h.createMount(stack('s', [ref(0), ref(3)])), 'NOT_FOUND', 'mount.stack.lower[1]: no mount with id 3');
    assert.deepEqual(h.world.lines(['mount', 'unmount']), ['mount tmp:t'], 'nothing was made for the failed requests');
  });

  it('an empty spec {} and a bare {kind} are references to id 0 (go-swagger drops id 0)', async () => {
    await rejectsWith(h.createMount(fs('f', {})), 'NOT_FOUND', 'mount.fs.attach: no attachment with id 0');
    const a = await h.createAttach(disk('a'));
    assert.equal(a.id, 0);
    assert.deepEqual((await h.createMount(fs('f', {}))).holds, [{ type: 'attach', id: 0 }]);
    assert.deepEqual((await h.createMount(fs('g', { kind: 'disk' }))).holds, [{ type: 'attach', id: 0 }]);
    assert.equal(h.store.refs(a), 3);
    await h.createMount(tmp('t1'));
    const s = await h.createMount(stack('s', [{ kind: 'fs' }, ref(2)]));
    assert.deepEqual(s.holds, [{ type: 'mount', id: 0 }, { type: 'mount', id: 2 }]);
    h.checkIndex();
  });

  it('an id together with a definition is INVALID', async () => {
    await h.createAttach(disk('a'));
    await rejectsWith(h.createMount(fs('f', { id: 0, ...disk('b') })), 'INVALID', /^mount\.fs\.attach: give either "id" \(a reference\) or a definition \("disk"\), not both$/);
    await rejectsWith(h.createMount(stack('s', [{ id: 0, ...tmp('t') }])), 'INVALID', /^mount\.stack\.lower\[0\]: give either "id"/);
    assert.deepEqual(h.world.lines(['mount', 'attach']), ['attach disk:a']);
  });

  it('a reference of the wrong kind is INVALID; an alias may name an object of the kind it stands for', async () => {
    await h.createAttach(disk('a'));
    await h.createMount(tmp('t'));
    await rejectsWith(h.createMount(fs('f', ref(0, 'file'))), 'INVALID', 'mount.fs.attach: attachment 0 (disk) is not of kind "file"');
    await rejectsWith(h.createMount(stack('s', [ref(0, 'stack')])), 'INVALID', 'mount.stack.lower[0]: mount 0 (tmp) is not of kind "stack"');
    await rejectsWith(h.createMount(stack('s', [{ kind: 'fs' }])), 'INVALID', 'mount.stack.lower[0]: mount 0 (tmp) is not of kind "fs"');
    const f = await h.createMount(fs('f', ref(0)));
    const s = await h.createMount(stack('s', [ref(f.id, 'diskfs')]));
    assert.deepEqual(s.holds, [{ type: 'mount', id: f.id }]);
    await rejectsWith(h.createMount(stack('s2', [ref(0, 'diskfs')])), 'INVALID', 'mount.stack.lower[0]: mount 0 (tmp) is not of kind "diskfs"');
  });

  it('an alias defines the kind it stands for, and its nested definition is named under the alias', async () => {
    const m = await h.createMount({ kind: 'diskfs', diskfs: { name: 'df', disk: { name: 'a' } } });
    assert.equal(m.kind, 'fs');
    assert.deepEqual(m.holds, [{ type: 'attach', id: 0 }]);
    h.world.failAt({ op: 'attach', name: 'b', kind: 'INVALID', message: 'no' });
    await rejectsWith(h.createMount({ kind: 'diskfs', diskfs: { name: 'dg', disk: { name: 'b' } } }), 'INVALID', 'mount.diskfs.fs.attach: no');
  });

  it('the same child twice in a many slot is INVALID, and what the request made is undone', async () => {
    await h.createMount(tmp('t'));
    await rejectsWith(h.createMount(stack('s', [ref(0), tmp('new'), {}])), 'INVALID', 'mount.stack.lower[2]: mount 0 (tmp) is already named in this stack');
    assert.deepEqual(h.world.lines(['mount', 'unmount']), ['mount tmp:t', 'mount tmp:new', 'unmount tmp:new']);
    assert.equal(h.store.refs(h.store.get('mount', 0)), 1);
    assert.deepEqual(h.store.list('mount').map((m) => m.id), [0]);
    h.checkIndex();
  });

  it('an object defined earlier in the same request cannot be referenced by its id (it is not visible yet)', async () => {
    await rejectsWith(h.createMount(stack('s', [tmp('t'), ref(0)])), 'NOT_FOUND', 'mount.stack.lower[1]: no mount with id 0');
    assert.deepEqual(h.all(), []);
  });

  it('a top-level definition must name its kind and give its definition', async () => {
    await rejectsWith(h.createMount({ kind: 'tmp' }), 'INVALID', 'mount: kind is "tmp" but "mount.tmp" is missing');
    await rejectsWith(h.createMount({}), 'INVALID', /^mount: give "kind"/);
    await rejectsWith(h.createMount({ kind: 'tmp', tmp: {}, fs: {} }), 'INVALID', 'mount: "fs" given but kind is "tmp"');
    await rejectsWith(h.createAttach({ kind: 'tape', tape: {} }), 'UNSUPPORTED', /^attach: attachments of kind "tape" are not supported/);
    assert.deepEqual(h.world.calls, []);
  });

  it(
    'a child slot the driver declares but the spec lacks is INVALID, naming the field',
    {},
    async () => {
      await rejectsWith(h.createMount({ kind: 'stack', stack: { name: 's' } }), 'INVALID', /^mount\.stack\.lower/);
      await rejectsWith(h.createMount({ kind: 'fs', fs: { name: 'f' } }), 'INVALID', /^mount\.fs\.attach/);
    },
  );
});
