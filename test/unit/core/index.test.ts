// The store's reverse index (holders, refs) against a brute-force scan of every record, through a
// history that exercises every way references change.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { MountRec } from '../../../src/store/records.js';
import { Store } from '../../../src/store/store.js';
import { disk, fs, Harness, ref, stack, tmp } from './harness.js';

describe('store: the reverse index of holders', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  it('stays equal to a scan through create, reference, failed create, transfer, delete, forced delete, reload', async () => {
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['top-level attachment', () => h.createAttach(disk('a'))],
      ['mount referencing it', () => h.createMount(fs('f', ref(0)))],
      ['nested definitions', () => h.createMount(stack('s', [fs('g', disk('b')), tmp('t'), ref(0)]))],
      ['a second user of a nested child', () => h.createMount(stack('s2', [ref(2)]))],
      ['a container on the stack', () => h.createContainer(ref(3))],
      [
        'a failed create referencing existing objects',
        async () => {
          h.world.failAt({ op: 'mount', name: 'bad' });
          await assert.rejects(h.createMount(stack('x', [ref(0), ref(2), tmp('bad')])));
        },
      ],
      ['delete the stack with force (container first; t transfers to the user)', () => h.remove('mount', 3, true)],
      ['reload', () => h.reopen()],
      ['delete the last user of the transferred child', () => h.remove('mount', 4)],
      ['delete the transferred child', () => h.remove('mount', 2)],
      ['forced delete of the attachment under f', () => h.remove('attach', 0, true)],
    ];
    for (const [what, step] of steps) {
      await step();
      assert.doesNotThrow(() => h.checkIndex(), `after: ${what}`);
    }
    assert.deepEqual(h.all(), []);
  });

  it('put() of a record again with other holds moves it in the index; remove() takes it out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imageapi-store-'));
    try {
      const store = new Store(dir);
      const rec = (holds: MountRec['holds']): MountRec => ({ type: 'mount', id: 5, owner: 'user', holds, kind: 'bind', spec: {}, mounted: { mountpoint: '/x', state: {} } });
      store.put(rec([{ type: 'mount', id: 1 }]));
      store.put(rec([{ type: 'mount', id: 2 }]));
      assert.deepEqual(store.holders({ type: 'mount', id: 1 }), []);
      assert.deepEqual(store.holders({ type: 'mount', id: 2 }).map((r) => r.id), [5]);
      store.remove({ type: 'mount', id: 5 });
      assert.deepEqual(store.holders({ type: 'mount', id: 2 }), []);
      store.remove({ type: 'mount', id: 5 }); // twice: no-op
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
