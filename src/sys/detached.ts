// Starting a process that must outlive the agent (the container supervisor): its own session,
// not killed with the agent, reporting readiness on an inherited pipe (fd 3). Started by the
// fork server (spawner.ts), not by forking the agent.
import { spawnVia } from './spawner.js';

export interface Detached {
  /** Its pid once it runs; rejects when it could not be started. */
  pid: Promise<number>;
  /** The first line written on fd 3 (without newline); rejects if fd 3 closes without one. */
  ready: Promise<string>;
  /**
   * Resolves when the process exits: true, or false when its end can no longer be observed (the
   * fork server is gone; the caller then looks for the end another way).
   */
  exited: Promise<boolean>;
  kill(signal: NodeJS.Signals): void;
}

export function launchDetached(file: string, args: string[], readyTimeoutMs: number): Detached {
  const s = spawnVia({ file, args, mode: 'detached' });
  const exited = s.exited.then(() => true, () => false);
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not report within ${readyTimeoutMs} ms`)), readyTimeoutMs);
    timer.unref();
    s.started.catch((err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    void s.ready.then(async (line) => {
      if (line !== null) {
        clearTimeout(timer);
        resolve(line);
        return;
      }
      // fd 3 closed without a line: what it said on stderr is the reason.
      const end = await s.exited.catch(() => null);
      clearTimeout(timer);
      reject(new Error(end?.stderr.toString().trim() || `${file} exited without reporting`));
    });
  });
  return { pid: s.started, ready, exited, kill: (sig) => s.kill(sig) };
}
