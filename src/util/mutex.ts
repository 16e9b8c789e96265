// FIFO async locks. Mutex: the core's one lock over the store's bookkeeping; re-entrant within
// one async call chain, so a teardown the core calls back into may use it too. KeyedMutex: one
// queue per key (one shared rbd-fuse instance, say).
import { AsyncLocalStorage } from 'node:async_hooks';

export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private readonly holder = new AsyncLocalStorage<Mutex>();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.holder.getStore() === this) return fn();
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await this.holder.run(this, fn);
    } finally {
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
