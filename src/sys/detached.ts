// Starting a process that must outlive the agent (the container supervisor): its own session,
// not killed with the agent, reporting readiness on an inherited pipe (fd 3).
import { spawn, type ChildProcess } from 'node:child_process';

export interface Detached {
  child: ChildProcess;
  /** The first line written on fd 3 (without newline); rejects if fd 3 closes without one. */
  ready: Promise<string>;
  /** Resolves when the process exits (only observable while the agent that started it lives). */
  exited: Promise<void>;
}

export function launchDetached(file: string, args: string[], readyTimeoutMs: number): Detached {
  const child = spawn(file, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    if (stderr.length < 4096) stderr += b.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<string>((resolve, reject) => {
    const pipe = child.stdio[3] as NodeJS.ReadableStream | null;
    let buf = '';
    const timer = setTimeout(() => {
      reject(new Error(`${file} did not report within ${readyTimeoutMs} ms`));
    }, readyTimeoutMs);
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      fn();
    };
    child.once('error', (err) => finish(() => reject(err)));
    pipe?.on('data', (b: Buffer) => {
      buf += b.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(() => resolve(buf.slice(0, nl)));
    });
    pipe?.on('end', () => {
      if (!buf.includes('\n')) {
        finish(() => reject(new Error(stderr.trim() || `${file} exited without reporting`)));
      }
    });
  });
  child.unref();
  (child.stdio[3] as NodeJS.ReadableStream & { unref?: () => void })?.unref?.();
  (child.stderr as NodeJS.ReadableStream & { unref?: () => void })?.unref?.();
  return { child, ready, exited };
}
