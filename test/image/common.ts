// What the image tests share: a cache on a temp dir, a quiet logger, what a cache dir holds.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ImageCache, type CacheOptions } from '../../src/image/cache.js';
import type { AgentError } from '../../src/model/errors.js';

export const quiet = pino({ level: 'silent' });

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'imageapi-test-image-'));
}

export function newCache(dir: string, o: Partial<CacheOptions> = {}): ImageCache {
  return new ImageCache({ dir, maxBytes: 1 << 30, log: quiet, ...o });
}

/** Every file under a cache dir (relative paths), directories left out. */
export function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => !d.isDirectory())
    .map((d) => join(d.parentPath ?? (d as unknown as { path: string }).path, d.name).slice(dir.length + 1))
    .sort();
}

export const sha256Of = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Assert a promise rejects with an AgentError of `kind` whose message matches all of `res`. */
export async function rejectsWith(p: Promise<unknown>, kind: string, ...res: (RegExp | string)[]): Promise<AgentError> {
  let err: AgentError | undefined;
  try {
    await p;
  } catch (e) {
    err = e as AgentError;
  }
  assert.ok(err, 'expected a rejection');
  assert.equal(err.kind, kind, `kind of: ${err.message}`);
  for (const r of res) {
    if (typeof r === 'string') assert.ok(err.message.includes(r), `${JSON.stringify(err.message)} should name ${r}`);
    else assert.match(err.message, r);
  }
  return err;
}

/** Mount a squashfs file read-only (a loop device), read `file` in it, unmount and detach. */
export function readInSquashfs(image: string, file: string): string {
  const mnt = mkdtempSync(join(tmpdir(), 'imageapi-test-image-mnt-'));
  try {
    execFileSync('mount', ['-t', 'squashfs', '-o', 'ro,loop', image, mnt]);
    try {
      return readFileSync(join(mnt, file), 'utf8');
    } finally {
      execFileSync('umount', [mnt]);
    }
  } finally {
    rmSync(mnt, { recursive: true, force: true });
  }
}

/** The names in a tar archive. */
export function tarList(path: string): string[] {
  return execFileSync('tar', ['-tf', path], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n').filter(Boolean);
}
