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
  readonly created: AnyRec[] = [];

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

  /** The request's objects become visible (and part of the next save). */
  publish(): void {
    for (const r of this.created) delete r.pending;
  }

  /** Hide them again (the save that would have made them durable failed). */
  unpublish(): void {
    for (const r of this.created) r.pending = true;
  }

  done(): void {
    this.undos.length = 0;
  }
}
