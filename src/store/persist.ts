// Persistence of the store: one state file, written atomically; concurrent saves coalesce.
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
 * Serialises saves: each call writes the latest snapshot; concurrent calls coalesce. Before each
 * write the current file is hard-linked as the previous version (no data is copied): whatever
 * happens to the file, the one before it is there to rebuild from.
 */
export class Saver {
  private pending: Promise<void> | null = null;
  private dirty = false;
  constructor(
    private readonly file: string,
    private readonly snapshot: () => string,
  ) {}

  save(): Promise<void> {
    this.dirty = true;
    if (!this.pending) {
      this.pending = (async () => {
        try {
          while (this.dirty) {
            this.dirty = false;
            const data = this.snapshot();
            const prev = previousOf(this.file);
            await rm(prev, { force: true });
            await link(this.file, prev).catch(() => {}); // none yet (the first save), or no room for a link
            await writeAtomic(this.file, data);
          }
        } finally {
          this.pending = null;
        }
      })();
    }
    return this.pending;
  }
}
