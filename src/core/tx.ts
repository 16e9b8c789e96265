// All-or-nothing creation: every step that created something registers its undo; a failure at
// any depth, the final save included, runs the undos in reverse, so nothing of the request is left.
import type { Logger } from 'pino';
import type { AnyRec } from '../store/records.js';

export class Tx {
  private readonly undos: Array<{ what: string; fn: () => Promise<void> | void }> = [];
  readonly created: AnyRec[] = [];

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
