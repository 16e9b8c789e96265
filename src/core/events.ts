// The event hub: one record per change of an attachment, mount or container (created, state
// changed, exited, deleted, adopted after a restart, vanished), numbered by one sequence that
// never goes back, not even across restarts, kept in a bounded in-memory ring for replay
// (GET /events?since=), handed to subscribers (followers of /events, waiters of
// /container/wait, the metrics) and logged at info in the agent's log.
//
// The sequence survives a restart without a write per event: the hub reserves a block of
// numbers in `<run-dir>/events.seq` and writes the next block before the current one runs out.
// A graceful stop writes the exact next number; after a kill -9 the numbers jump to the end of
// the reserved block (a gap, never a number given twice).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AnyRec } from '../store/records.js';
import { describeRec } from '../store/records.js';
import { writeAtomicSync } from '../sys/fs.js';

export type EventType = 'attach' | 'mount' | 'container' | 'image';
export type EventAction = 'created' | 'state' | 'progress' | 'deleted' | 'adopted' | 'vanished';
export const EVENT_TYPES: readonly EventType[] = ['attach', 'mount', 'container', 'image'];
export const EVENT_ACTIONS: readonly EventAction[] = ['created', 'state', 'progress', 'deleted', 'adopted', 'vanished'];

export interface AgentEvent {
  seq: number;
  time: string;
  type: EventType;
  action: EventAction;
  id: number;
  kind?: string;
  /** A container's name. */
  name?: string;
  /** A container's state after the change, and before it (action `state`). */
  state?: string;
  old_state?: string;
  exit_code?: number | null;
  error?: string;
  /** An image's pull: bytes done and expected (null: the server did not say). */
  progress?: { done: number; total: number | null };
}

/** What else the core reports: durations and failures, for the metrics (not part of the stream). */
export interface Measure {
  /** `attach`, `mount` (kernel work of one object), `container_start`. */
  op: string;
  kind: string;
  seconds: number;
}
export interface Failure {
  /** `create`, `delete`, `container_start`, … */
  op: string;
  /** The AgentError kind. */
  kind: string;
}

export const DEFAULT_RING = 10_000;
const BLOCK = 1000;

type Listener = (e: AgentEvent) => void;

export class EventHub {
  private ring: AgentEvent[] = [];
  private head = 0; // index of the oldest event once the ring is full
  private next = 1;
  private reserved = 0; // numbers below this are covered by the file
  private file: string | null = null;
  private readonly listeners = new Set<Listener>();
  private readonly measureListeners = new Set<(m: Measure) => void>();
  private readonly failureListeners = new Set<(f: Failure) => void>();
  private readonly closeListeners = new Set<() => void>();
  log: Logger | null = null;

  constructor(readonly capacity = DEFAULT_RING) {}

  /** Continue the sequence kept in `<runDir>/events.seq` (reserving the next block). */
  open(runDir: string): void {
    this.file = join(runDir, 'events.seq');
    let n = 1;
    try {
      n = Math.max(1, Number.parseInt(readFileSync(this.file, 'utf8').trim(), 10) || 1);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.next = Math.max(this.next, n);
    this.reserve();
  }

  /** On a graceful stop: the exact next number, so a clean restart leaves no gap. */
  close(): void {
    if (this.file) this.write(this.next);
  }

  /** The agent is stopping: followers and waiters end now (their connections would hold the stop). */
  shutdown(): void {
    for (const l of [...this.closeListeners]) l();
    this.closeListeners.clear();
  }

  onClose(fn: () => void): () => void {
    this.closeListeners.add(fn);
    return () => this.closeListeners.delete(fn);
  }

  private reserve(): void {
    if (!this.file) return;
    this.reserved = this.next + BLOCK;
    this.write(this.reserved);
  }

  /** A full run-dir must not stop the agent (nor a request): the numbers go on, said loudly. */
  private write(n: number): void {
    try {
      writeAtomicSync(this.file!, `${n}\n`);
    } catch (err) {
      if (!['ENOSPC', 'EDQUOT'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
      this.log?.error({ err, file: this.file }, 'cannot save the event sequence (the run-dir is full): after a crash, numbers may be given again');
    }
  }

  /** The last number given (0 before any). */
  get lastSeq(): number {
    return this.next - 1;
  }

  /** Publish a change (and log it at info). */
  publish(e: Omit<AgentEvent, 'seq' | 'time'>): AgentEvent {
    if (this.file && this.next >= this.reserved) this.reserve();
    const ev: AgentEvent = { seq: this.next++, time: new Date().toISOString(), ...e };
    if (this.ring.length < this.capacity) this.ring.push(ev);
    else {
      this.ring[this.head] = ev;
      this.head = (this.head + 1) % this.capacity;
    }
    this.log?.info({ event: ev }, `${ev.type} ${ev.id} ${ev.action}${ev.state ? ` (${ev.old_state ? `${ev.old_state} → ` : ''}${ev.state})` : ''}`);
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch (err) {
        this.log?.error({ err }, 'event listener failed');
      }
    }
    return ev;
  }

  /** The event of a record: created, deleted, adopted or vanished. */
  record(action: Exclude<EventAction, 'state' | 'progress'>, rec: AnyRec): AgentEvent {
    if (rec.type === 'image') {
      return this.publish({ type: 'image', action, id: rec.id, ...(rec.name ? { name: rec.name } : {}), state: rec.state, ...(rec.format ? { kind: rec.format } : {}) });
    }
    if (rec.type === 'container') {
      return this.publish({
        type: 'container',
        action,
        id: rec.id,
        ...(rec.name ? { name: rec.name } : {}),
        state: rec.state,
        ...(action === 'adopted' || action === 'deleted' ? { exit_code: rec.exit_code } : {}),
      });
    }
    return this.publish({ type: rec.type, action, id: rec.id, kind: rec.kind });
  }

  /** A container's state changed from `old` (no event when it did not). */
  state(rec: AnyRec, old: string): AgentEvent | null {
    if (rec.type === 'image') {
      if (rec.state === old) return null;
      return this.publish({
        type: 'image',
        action: 'state',
        id: rec.id,
        ...(rec.name ? { name: rec.name } : {}),
        old_state: old,
        state: rec.state,
        progress: { ...rec.progress },
        ...(rec.error ? { error: rec.error } : {}),
      });
    }
    if (rec.type !== 'container' || rec.state === old) return null;
    return this.publish({
      type: 'container',
      action: 'state',
      id: rec.id,
      ...(rec.name ? { name: rec.name } : {}),
      old_state: old,
      state: rec.state,
      ...(rec.state === 'exited' || rec.state === 'dead' ? { exit_code: rec.exit_code } : {}),
      ...(rec.state === 'dead' && rec.error ? { error: rec.error } : {}),
    });
  }

  /** An image's pull went on (throttled by the caller). */
  progress(rec: AnyRec): AgentEvent | null {
    if (rec.type !== 'image') return null;
    return this.publish({ type: 'image', action: 'progress', id: rec.id, ...(rec.name ? { name: rec.name } : {}), state: rec.state, progress: { ...rec.progress } });
  }

  /** Events in the ring, oldest first. */
  events(): AgentEvent[] {
    return this.ring.length < this.capacity ? [...this.ring] : [...this.ring.slice(this.head), ...this.ring.slice(0, this.head)];
  }

  /** The oldest number still in the ring (the next one when it is empty). */
  get firstSeq(): number {
    return this.events()[0]?.seq ?? this.next;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  measure(m: Measure): void {
    for (const l of this.measureListeners) l(m);
  }

  failure(op: string, err: unknown): void {
    const kind = (err as { kind?: string } | undefined)?.kind ?? 'INTERNAL';
    for (const l of this.failureListeners) l({ op, kind });
  }

  onMeasure(fn: (m: Measure) => void): () => void {
    this.measureListeners.add(fn);
    return () => this.measureListeners.delete(fn);
  }

  onFailure(fn: (f: Failure) => void): () => void {
    this.failureListeners.add(fn);
    return () => this.failureListeners.delete(fn);
  }

  /** Time `fn` and report it as a measure (also when it fails). */
  async timed<T>(op: string, kind: string, fn: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    try {
      return await fn();
    } finally {
      this.measure({ op, kind, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
    }
  }
}
