// The event hub without a kernel: the ring is bounded, numbers never repeat across restarts (a
// graceful stop leaves no gap, a crash skips to the end of the reserved block), listeners and
// the close signal.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EventHub } from '../../src/core/events.js';

const dir = mkdtempSync(join(tmpdir(), 'imageapi-events-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const attach = (id: number) => ({ type: 'attach' as const, action: 'created' as const, id, kind: 'loopback' });

describe('EventHub', () => {
  it('keeps only the last `capacity` events, oldest first', () => {
    const h = new EventHub(3);
    for (let i = 0; i < 5; i++) h.publish(attach(i));
    assert.deepEqual(h.events().map((e) => e.id), [2, 3, 4]);
    assert.equal(h.firstSeq, 3);
    assert.equal(h.lastSeq, 5);
  });

  it('a graceful stop continues without a gap; a crash skips ahead, never repeating a number', () => {
    const run = join(dir, 'r1');
    const a = new EventHub();
    a.open(run);
    for (let i = 0; i < 3; i++) a.publish(attach(i));
    a.close();
    assert.equal(readFileSync(join(run, 'events.seq'), 'utf8').trim(), '4');
    const b = new EventHub();
    b.open(run);
    assert.equal(b.publish(attach(9)).seq, 4, 'no gap after a graceful stop');
    // b "crashes" (no close): the next run starts past every number b could have given.
    for (let i = 0; i < 1500; i++) b.publish(attach(i)); // crosses a block: a new reservation
    const last = b.lastSeq;
    const c = new EventHub();
    c.open(run);
    const next = c.publish(attach(0)).seq;
    assert.ok(next > last, `${next} > ${last}`);
  });

  it('listeners get each event once, in order; failures of one do not stop the others; shutdown ends followers', () => {
    const h = new EventHub();
    const got: number[] = [];
    const off = h.subscribe(() => {
      throw new Error('a bad listener');
    });
    h.subscribe((e) => got.push(e.seq));
    h.publish(attach(0));
    off();
    h.publish(attach(1));
    assert.deepEqual(got, [1, 2]);
    let closed = 0;
    h.onClose(() => closed++);
    h.shutdown();
    h.shutdown();
    assert.equal(closed, 1);
  });

  it('a container state event says old → new, with the exit code when it ended; none when nothing changed', () => {
    const h = new EventHub();
    const rec = { type: 'container', id: 4, name: 'web', state: 'dead', exit_code: 3, error: 'exited with code 3' } as never;
    const e = h.state(rec, 'running')!;
    assert.deepEqual([e.action, e.old_state, e.state, e.exit_code, e.name], ['state', 'running', 'dead', 3, 'web']);
    assert.equal(h.state(rec, 'dead'), null);
  });
});
