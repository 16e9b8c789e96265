// Persistence of the store: one state file, written atomically; concurrent saves share a write (group commit).
import { link, readFile, rename, rm } from 'node:fs/promises';
import { writeAtomic } from '../sys/fs.js';

/** The text of the state file, or null when there is none yet. */
export async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read state file ${file}: ${(err as Error).message}`);
  }
}

/** Move a damaged state file aside (kept for a human to look at); returns where it went. */
export async function moveAside(file: string): Promise<string> {
  const to = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await rename(file, to);
  return to;
}

/** The previous version of the state file (one write behind), for when the file itself is damaged. */
export const previousOf = (file: string) => `${file}.prev`;

/**
 * Group commit: every save() asks for a write of the state as it is now, and resolves once a write
 * that began after the call is durable (fsync'd and renamed). One write is in progress at a time;
 * the calls that come during it share the next one, so concurrent requests pay one fsync between
 * them, and none waits for writes asked for after its own (no waiting for a quiet moment under
 * load). A write that fails rejects exactly the calls it was for; later calls get a write of their
 * own. Before each write the current file is hard-linked as the previous version (no data is
 * copied): whatever happens to the file, the one before it is there to rebuild from.
 */
export class Saver {
  /** Writes asked for (a counter), and the last one done (written or failed). */
  private asked = 0;
  private done = 0;
  private writing = false;
  private waiters: Array<{ gen: number; resolve: () => void; reject: (err: unknown) => void }> = [];
  /** Writes made (for tests and measurements: how many fsync'd writes a load cost). */
  writes = 0;
  constructor(
    private readonly file: string,
    private readonly snapshot: () => string,
  ) {}

  save(): Promise<void> {
    const gen = ++this.asked;
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ gen, resolve, reject }));
    if (!this.writing) void this.drain();
    return p;
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.done < this.asked) {
        // Everything asked for until now is in this snapshot (taken synchronously, below).
        const gen = this.asked;
        let failed: { err: unknown } | null = null;
        try {
          const data = this.snapshot();
          const prev = previousOf(this.file);
          await rm(prev, { force: true });
          await link(this.file, prev).catch(() => {}); // none yet (the first save), or no room for a link
          await writeAtomic(this.file, data);
          this.writes++;
        } catch (err) {
          failed = { err };
        }
        this.done = gen;
        const ready = this.waiters.filter((w) => w.gen <= gen);
        this.waiters = this.waiters.filter((w) => w.gen > gen);
        for (const w of ready) (failed ? w.reject(failed.err) : w.resolve());
      }
    } finally {
      this.writing = false;
    }
  }
}
