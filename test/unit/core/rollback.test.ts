import assert from 'node:assert/strict';
import { mkdir, readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { disk, file, fs, Harness, ref, rejectsWith, stack, sub, tmp } from './harness.js';

// Three levels deep, every slot shape: a single attach child, an optional mount child of an
// attachment, a `many` slot, an optional mount child of a mount.
const deep = () => stack('s', [fs('f1', disk('a')), fs('f2', file('b', { base: 'mount', mount: tmp('t') })), sub('u', tmp('v'))]);
const WHERE: Record<string, string> = {
  a: 'mount.stack.lower[0].fs.attach',
  f1: 'mount.stack.lower[0]',
  t: 'mount.stack.lower[1].fs.attach.file.mount',
  b: 'mount.stack.lower[1].fs.attach',
  f2: 'mount.stack.lower[1]',
  v: 'mount.stack.lower[2].sub.mount',
  u: 'mount.stack.lower[2]',
  s: 'mount',
};
const DOS = ['attach disk:a', 'mount fs:f1', 'mount tmp:t', 'attach file:b', 'mount fs:f2', 'mount tmp:v', 'mount sub:u', 'mount stack:s'];
const undoOf = (line: string) => line.replace(/^attach /, 'detach ').replace(/^mount /, 'unmount ');
const KERNEL_OPS = ['attach', 'detach', 'mount', 'unmount'] as const;

async function assertNothingLeft(h: Harness): Promise<void> {
  assert.deepEqual(h.all().map((r) => `${r.type} ${r.id}`), [], 'records of the failed request');
  assert.deepEqual([...h.world.live], [], 'devices or mounts left behind');
  assert.deepEqual(await readdir(join(h.dir, 'mounts')).catch(() => []), [], 'mountpoints left behind');
}

describe('core: all-or-nothing create', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  it('the deep request, when nothing fails, makes its levels in this order', async () => {
    await h.createMount(deep());
    assert.deepEqual(h.world.lines(KERNEL_OPS), DOS);
    h.checkIndex();
  });

  for (const [k, failing] of DOS.entries()) {
    const [op, kindName] = failing.split(' ') as ['attach' | 'mount', string];
    const [kind, name] = kindName.split(':') as [string, string];
    it(`a failure at "${failing}" undoes every level made before it, in reverse, and names the level`, async () => {
      h.world.failAt({ op, name, kind: 'INVALID' });
      await rejectsWith(h.createMount(deep()), 'INVALID', `${WHERE[name]}: ${kind} ${name}: ${op} failed as told`);
      const made = DOS.slice(0, k);
      assert.deepEqual(h.world.lines(KERNEL_OPS), [...made, failing, ...made.reverse().map(undoOf)]);
      await assertNothingLeft(h);
      const saved = await h.saved().catch(() => null);
      assert.ok(!saved || saved.attach.length + saved.mount.length === 0, 'the state file holds none of it');
    });
  }

  it('a failure told by position (the 2nd mount call) undoes the first', async () => {
    h.world.failAt({ op: 'mount', nth: 2, kind: 'UNSUPPORTED' });
    await rejectsWith(h.createMount(stack('s', [tmp('x'), tmp('y')])), 'UNSUPPORTED', 'mount.stack.lower[1]: tmp y: mount failed as told');
    assert.deepEqual(h.world.lines(KERNEL_OPS), ['mount tmp:x', 'mount tmp:y', 'unmount tmp:x']);
    await assertNothingLeft(h);
  });

  it('a spec a driver refuses (children()) names its level and undoes its earlier siblings', async () => {
    await rejectsWith(
      h.createMount(stack('s', [tmp('ok'), fs('f', file('b', { mount: tmp('x') }))])),
      'INVALID',
      /^mount\.stack\.lower\[1\]\.fs\.attach: file: "mount" is given but base is "root"/,
    );
    assert.deepEqual(h.world.lines(KERNEL_OPS), ['mount tmp:ok', 'unmount tmp:ok']);
    await assertNothingLeft(h);
  });

  it('a failed undo step is logged, and the other undo steps still run', async () => {
    h.world.failAt({ op: 'mount', name: 's' });
    h.world.failAt({ op: 'unmount', name: 'f1' });
    await rejectsWith(h.createMount(stack('s', [fs('f1', disk('a'))])), 'INTERNAL', /^mount: stack s: mount failed as told$/);
    assert.deepEqual(h.world.lines(KERNEL_OPS), ['attach disk:a', 'mount fs:f1', 'mount stack:s', 'unmount fs:f1', 'detach disk:a']);
    const failedSteps = h.logs.filter((l) => l.msg === 'rollback step failed').map((l) => l.step);
    assert.deepEqual(failedSteps, ['unmount mount 0 (fs)']);
    assert.deepEqual(h.all(), []);
  });

  it('references of a failed request are released (refs as before)', async () => {
    const a = await h.createAttach(disk('a'));
    h.world.failAt({ op: 'mount', name: 's' });
    await assert.rejects(h.createMount(stack('s', [fs('f', ref(0))])));
    assert.equal(h.store.refs(a), 1);
    assert.deepEqual(h.store.holders({ type: 'attach', id: 0 }), []);
    assert.deepEqual(h.world.lines(['detach']), [], 'a referenced object is not undone');
    h.checkIndex();
  });

  it('a failed final save undoes the whole create and the error propagates', async () => {
    await h.createAttach(disk('kept'));
    h.world.reset();
    // Fail the save that would commit: the first one after the top level is mounted (a save the
    // core may make before touching anything is not the one under test).
    const save = h.store.save.bind(h.store);
    let failed = false;
    const topMounted = () => h.world.calls.some((c) => c.op === 'mount' && c.name === 's');
    h.store.save = () => (!failed && topMounted() ? ((failed = true), Promise.reject(new Error('disk full'))) : save());
    const undoing = h.world.gate('unmount', 's');
    const creating = h.createMount(stack('s', [fs('f', disk('a')), fs('g', ref(0))]));
    await undoing.reached;
    // While it is undone, nothing of it is visible (it was published for the save, then hidden again).
    assert.deepEqual(h.store.list('mount'), []);
    assert.deepEqual(h.store.list('attach').map((r) => r.spec.name), ['kept']);
    undoing.release();
    await assert.rejects(creating, /^Error: disk full$/);
    assert.ok(failed, 'the commit save was the one that failed');
    assert.deepEqual(h.world.lines(KERNEL_OPS), [
      'attach disk:a',
      'mount fs:f',
      'mount fs:g',
      'mount stack:s',
      'unmount stack:s',
      'unmount fs:g',
      'unmount fs:f',
      'detach disk:a',
    ]);
    assert.deepEqual(h.all().map((r) => h.nameOf(r)), ['kept']);
    assert.deepEqual(h.store.list('mount'), []);
    h.checkIndex();
    // The next request saves normally, without any trace of the undone one.
    await h.createMount(tmp('t'));
    const saved = await h.saved();
    assert.deepEqual(saved.mount.map((m) => m.spec.name), ['t']);
    assert.deepEqual(saved.attach.map((m) => m.spec.name), ['kept']);
  });

  it('a state file that cannot be written (a directory in its place) undoes the create', async () => {
    await mkdir(h.store.file);
    await assert.rejects(h.createMount(fs('f', disk('a'))), (err: NodeJS.ErrnoException) => err.code === 'EISDIR' || err.code === 'ENOTEMPTY' || /state|EISDIR/.test(String(err)));
    // Whether the core found out before or after the drivers ran, whatever they made is undone in reverse.
    const made = h.world.lines(['attach', 'mount']);
    assert.deepEqual(h.world.lines(['detach', 'unmount']), made.reverse().map(undoOf));
    await assertNothingLeft(h);
    await rmdir(h.store.file);
    await h.createMount(tmp('t'));
    assert.deepEqual((await h.saved()).mount.map((m) => m.spec.name), ['t']);
    assert.deepEqual(await readdir(h.dir).then((n) => n.filter((x) => x.startsWith('state.json.tmp'))), [], 'no temp file left (state.json.prev is the kept previous version)');
  });
});
