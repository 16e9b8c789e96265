// FIFO async locks. Mutex: the core's one lock over the store's bookkeeping; re-entrant within
// the call chain that holds it, so a teardown the core calls back into may take it too. KeyedMutex:
// one queue per key (one shared rbd-fuse instance, say).
import { AsyncLocalStorage } from 'node:async_hooks';

/** One holding of a Mutex. Callbacks created while it was held inherit it, so it says when it ended. */
interface Holding {
  held: boolean;
}

export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private readonly holding = new AsyncLocalStorage<Holding>();

  /**
   * Run `fn` as a caller of its own, even while the holding it was registered under lasts: a
   * process's end that fires during the holder's own save must wait for it, not slip inside.
   */
  outside<T>(fn: () => T): T {
    return this.holding.exit(fn);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const h = this.holding.getStore();
    // Re-enter only from the chain that holds the lock now; a timer or `.then` registered under it
    // that fires after the release queues like everyone else.
    if (h?.held) return fn();
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    const mine: Holding = { held: true };
    try {
      return await this.holding.run(mine, fn);
    } finally {
      mine.held = false;
      release();
    }
  }
}

export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Run `fn` after every earlier call with the same key has settled. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
