// All-or-nothing creation: every step that created something registers its undo; a failure at
// any depth, the final save included, runs the undos in reverse, so nothing of the request is left.
import type { Logger } from 'pino';
import type { AnyRec } from '../store/records.js';

/**
 * A request met an image it cannot use yet: a definition not made into an image object (its
 * source not resolved, nothing pulled), or an image still pulling. The transaction is undone,
 * the image is made and waited for outside the lock (core/images.ts), and the request is run again.
 */
export class NeedImage extends Error {
  constructor(
    /** The request's key in the transaction's memo (empty for a reference). */
    readonly key: string,
    /** The image request to define (null: `id` names an existing image still pulling). */
    readonly request: Record<string, unknown> | null,
    readonly id: number | null,
    /** Where in the spec (for messages). */
    readonly where: string,
  ) {
    super(`${where}: the image is not ready yet`);
  }
}

export class Tx {
  private readonly undos: Array<{ what: string; fn: () => Promise<void> | void }> = [];
  private readonly settles: Array<() => void> = [];
  private ended!: () => void;
  readonly created: AnyRec[] = [];
  /** Resolves once the request is over: committed (and durable) or wholly undone. Never rejects. */
  readonly settled = new Promise<void>((r) => (this.ended = r));

  /** Run `fn` when the request is over, whichever way (what it reserved: names, pins, slots). */
  onSettle(fn: () => void): void {
    this.settles.push(fn);
  }

  /** The request is over: release what it reserved, and wake whoever waits for it. */
  settle(): void {
    for (const fn of this.settles.splice(0)) fn();
    this.ended();
  }

  /** @param images the ids of the image definitions met so far (kept across the request's attempts). */
  constructor(readonly images: Map<string, number> = new Map()) {}

  onUndo(what: string, fn: () => Promise<void> | void): void {
    this.undos.push({ what, fn });
  }

  /** Undo in reverse order; what could not be undone is logged loudly, and the rest still runs. */
  async rollback(log: Logger): Promise<void> {
    for (const u of this.undos.reverse()) {
      try {
        await u.fn();
      } catch (err) {
        log.error({ err, step: u.what }, 'rollback step failed');
      }
    }
    this.undos.length = 0;
  }

  /** The request's objects go into the next save (its commit), still invisible. */
  commit(): void {
    for (const r of this.created) r.committing = true;
  }

  /** The commit could not be written: out of the saves again (then undone). */
  uncommit(): void {
    for (const r of this.created) delete r.committing;
  }

  /** The commit is durable: the request's objects become visible. */
  publish(): void {
    for (const r of this.created) {
      delete r.pending;
      delete r.committing;
    }
  }

  done(): void {
    this.undos.length = 0;
  }
}
