// Atomic persistence of the store: temp file, fsync, rename, fsync of the directory.
import { open, rename, readFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writeAtomic(file: string, data: string, mode = 0o600): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const dh = await open(dirname(file), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

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
