// All-or-nothing creation: every step that created something registers its undo; a failure at
// any depth runs the undos in reverse, so nothing of the request is left behind.
import type { Logger } from 'pino';
import type { AnyRec } from '../store/records.js';

export class Tx {
  private readonly undos: Array<{ what: string; fn: () => Promise<void> | void }> = [];
  readonly created: AnyRec[] = [];

  onUndo(what: string, fn: () => Promise<void> | void): void {
    this.undos.push({ what, fn });
  }

  async rollback(log: Logger): Promise<void> {
    for (const u of this.undos.reverse()) {
      try {
        await u.fn();
      } catch (err) {
        // Keep undoing the rest; what could not be undone is logged loudly.
        log.error({ err, step: u.what }, 'rollback step failed');
      }
    }
    this.undos.length = 0;
  }

  commit(): void {
    for (const r of this.created) delete r.pending;
    this.undos.length = 0;
  }
}
