import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Mutex } from '../../../src/util/mutex.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('util: the core\'s Mutex', () => {
  it('runs critical sections one at a time, in FIFO order', async () => {
    const m = new Mutex();
    const order: string[] = [];
    await Promise.all(
      [3, 1, 2].map((ms, i) =>
        m.run(async () => {
          order.push(`start ${i}`);
          await sleep(ms);
          order.push(`end ${i}`);
        }),
      ),
    );
    assert.deepEqual(order, ['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('is re-entrant within one call chain (no deadlock)', async () => {
    const m = new Mutex();
    assert.equal(await m.run(() => m.run(async () => 42)), 42);
  });

  it('a failing section releases the lock', async () => {
    const m = new Mutex();
    await assert.rejects(m.run(async () => Promise.reject(new Error('boom'))));
    assert.equal(await m.run(async () => 'next'), 'next');
  });

  it(
    'work started inside a section but run after it (a timer, a .then) waits for the lock like anyone',
    {},
    async () => {
      const m = new Mutex();
      const order: string[] = [];
      let aStarted!: () => void;
      const started = new Promise<void>((r) => (aStarted = r));
      let background!: Promise<void>;
      await m.run(async () => {
        background = started.then(() => m.run(async () => void order.push('background')));
      });
      await m.run(async () => {
        order.push('A start');
        aStarted();
        await sleep(20);
        order.push('A end');
      });
      await background;
      assert.deepEqual(order, ['A start', 'A end', 'background']);
    },
  );
});
