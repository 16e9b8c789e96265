// Serialising work on one shared rbd-fuse instance (start/probe/attach/last-detach) within the agent.
const tails = new Map<string, Promise<unknown>>();

/** Run `fn` after every earlier call with the same key has settled. */
export async function withKeyLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = tails.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => undefined);
  tails.set(key, tail);
  try {
    return await next;
  } finally {
    if (tails.get(key) === tail) tails.delete(key);
  }
}
