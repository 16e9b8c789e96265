// Persistence of the store: one state file, written atomically; concurrent saves coalesce.
import { readFile } from 'node:fs/promises';
import { writeAtomic } from '../sys/fs.js';

export async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read state file ${file}: ${(err as Error).message}`);
  }
}

/** Serialises saves: each call writes the latest snapshot; concurrent calls coalesce. */
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
            await writeAtomic(this.file, this.snapshot());
          }
        } finally {
          this.pending = null;
        }
      })();
    }
    return this.pending;
  }
}
