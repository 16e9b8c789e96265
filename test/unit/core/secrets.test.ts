import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { disk, fs, Harness, shown, tmp } from './harness.js';

const KEY = 'AQBx-key-hunter2==';

describe('core: secret fields', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  it('a key the driver declares reaches the driver but never the state file, and answers show <redacted>', async () => {
    const a = await h.createAttach(disk('a', { secret: KEY }));
    assert.equal(h.world.calls.find((c) => c.op === 'attach')!.spec.secret, KEY, 'the driver needs the key');
    const text = await h.savedText();
    assert.ok(!text.includes(KEY), 'the key is in state.json');
    assert.equal((await h.saved()).attach[0]!.spec.secret, '<redacted>');
    assert.equal(shown(h.views.attach(a)).disk.secret, '<redacted>');
    assert.equal(a.spec.secret, KEY, 'the record in memory keeps it (detach may need it)');
  });

  it('at any depth of the spec, and in a nested definition', async () => {
    const m = await h.createMount(fs('f', disk('a', { options: { secret: KEY, ro: true } })));
    assert.ok(!(await h.savedText()).includes(KEY));
    assert.deepEqual(shown(h.views.mount(m)).fs.attach.disk.options, { secret: '<redacted>', ro: true });
  });

  it('after a restart the key is gone: the driver detaches without it', async () => {
    await h.createAttach(disk('a', { secret: KEY }));
    await h.reopen();
    h.world.reset();
    await h.remove('attach', 0);
    assert.equal(h.world.calls[0]!.spec.secret, '<redacted>');
  });

  it('an unset key field stays absent (not shown as <redacted>)', async () => {
    const a = await h.createAttach(disk('a'));
    assert.equal('secret' in shown(h.views.attach(a)).disk, false);
    assert.equal('secret' in (await h.saved()).attach[0]!.spec, false);
  });

  it('a mount kind\'s key is shown as <redacted>', async () => {
    const m = await h.createMount(tmp('t', { password: KEY }));
    assert.equal(shown(h.views.mount(m)).tmp.password, '<redacted>');
  });

  it(
    'a mount kind\'s key never reaches the state file',
    {},
    async () => {
      await h.createMount(tmp('t', { password: KEY }));
      assert.ok(!(await h.savedText()).includes(KEY), 'the key is in state.json');
    },
  );
});
