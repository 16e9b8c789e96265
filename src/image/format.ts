// What a downloaded file is: its compression (gzip, bzip2, xz, zstd: named by the request or the
// URL's suffix, else found by magic) and, once decompressed, its format by magic (squashfs 'hsqs'
// at 0, erofs 0xE0F5E1E2 little-endian at 1024, ext2/3/4 0xEF53 at 1080, tar 'ustar' at 257).
//
// The cache keeps every entry DECOMPRESSED, archives included: a loop device needs an image raw,
// and a raw tar is unpacked by every mount that uses it without paying for the decompression each
// time (several containers on one ramdisk image, say); the format is then always checked by magic
// on the bytes that will be used. The digest stays the one of the bytes as downloaded.
// gzip streams through node's zlib; xz, zstd and bzip2 run as Debian's tools through sys/exec.
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { AgentError, invalid, isNoSpace, noSpace, toAgentError, upstream } from '../model/errors.js';
import { run } from '../sys/exec.js';
import type { Compression, ImageFormat } from './types.js';

export const FORMATS: readonly ImageFormat[] = ['squashfs', 'erofs', 'ext4', 'tar'];
export const COMPRESSIONS: readonly Compression[] = ['none', 'gzip', 'bzip2', 'xz', 'zstd'];

/** Compression and format as a URL's (or an item path's) suffix tells them; either may be unknown. */
export function fromSuffix(urlOrPath: string): { compression?: Compression; format?: ImageFormat } {
  let p = urlOrPath;
  try {
    p = new URL(urlOrPath).pathname;
  } catch {
    // a path, not a URL
  }
  p = p.toLowerCase();
  const table: [string, Compression | undefined, ImageFormat | undefined][] = [
    ['.tar.gz', 'gzip', 'tar'],
    ['.tgz', 'gzip', 'tar'],
    ['.tar.xz', 'xz', 'tar'],
    ['.txz', 'xz', 'tar'],
    ['.tar.zst', 'zstd', 'tar'],
    ['.tzst', 'zstd', 'tar'],
    ['.tar.bz2', 'bzip2', 'tar'],
    ['.tbz2', 'bzip2', 'tar'],
    ['.tar', 'none', 'tar'],
    ['.sqsh', 'none', 'squashfs'],
    ['.squashfs', 'none', 'squashfs'],
    ['.sfs', 'none', 'squashfs'],
    ['.erofs', 'none', 'erofs'],
    ['.ext4', 'none', 'ext4'],
    ['.gz', 'gzip', undefined],
    ['.xz', 'xz', undefined],
    ['.zst', 'zstd', undefined],
    ['.bz2', 'bzip2', undefined],
  ];
  for (const [suffix, compression, format] of table) {
    if (p.endsWith(suffix)) return { ...(compression ? { compression } : {}), ...(format ? { format } : {}) };
  }
  return {};
}

async function head(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The compression of a buffer's first bytes (none when no known magic). */
export function compressionOfBytes(b: Buffer): Compression {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (b.length >= 4 && b.subarray(0, 3).toString('latin1') === 'BZh' && b[3]! >= 0x31 && b[3]! <= 0x39) return 'bzip2';
  return 'none';
}

/** The format of a buffer holding at least a file's first 1084 bytes, or undefined. */
export function formatOfBytes(b: Buffer): ImageFormat | undefined {
  if (b.length >= 4 && b.subarray(0, 4).toString('latin1') === 'hsqs') return 'squashfs';
  if (b.length >= 1028 && b.readUInt32LE(1024) === 0xe0f5e1e2) return 'erofs';
  if (b.length >= 1082 && b.readUInt16LE(1080) === 0xef53) return 'ext4';
  if (b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return undefined;
}

export async function detectCompression(path: string): Promise<Compression> {
  return compressionOfBytes(await head(path, 8));
}

/** The format of a (decompressed) file by magic; an unknown one is INVALID naming `what` (the URL). */
export async function detectFormat(path: string, what = path): Promise<ImageFormat> {
  const f = formatOfBytes(await head(path, 4096));
  if (!f) throw invalid(`${what}: not a squashfs, erofs, ext4 image or a tar archive (unknown format)`);
  return f;
}

const TOOLS: Record<Exclude<Compression, 'none' | 'gzip'>, string> = { xz: 'xz', zstd: 'zstd', bzip2: 'bzip2' };

/**
 * Decompress `src` into `dest` (created). A corrupt stream is UPSTREAM naming `what` (the file
 * matched its digest, so the server published it broken); a full disk INSUFFICIENT_STORAGE naming
 * the directory. On failure `dest` is removed.
 */
export async function decompress(src: string, dest: string, c: Compression, what: string, signal?: AbortSignal): Promise<void> {
  try {
    if (c === 'none') throw new Error('decompress: nothing to do');
    if (c === 'gzip') {
      try {
        await pipeline(createReadStream(src, { highWaterMark: 1 << 20 }), createGunzip(), createWriteStream(dest, { flags: 'wx', mode: 0o600, flush: true }), {
          signal,
        });
      } catch (err) {
        if (isNoSpace(err)) throw err;
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (code.startsWith('Z_') || /incorrect header|invalid|unexpected end/i.test(String((err as Error).message))) {
          throw upstream(`${what}: not a valid gzip stream (${(err as Error).message})`);
        }
        throw err;
      }
    } else {
      try {
        // -c: to stdout (the file); -d: decompress; the tool reads the file itself.
        await run(TOOLS[c], ['-d', '-c', '--', src], { stdoutFile: dest, timeoutMs: 30 * 60_000, signal, failKind: 'UPSTREAM' });
      } catch (err) {
        if (err instanceof AgentError && /No space left|Disk quota/i.test(err.message)) throw Object.assign(new Error(err.message), { code: 'ENOSPC' });
        if (err instanceof AgentError && err.kind === 'UPSTREAM') throw upstream(`${what}: not a valid ${c} stream (${err.message.split(': ').slice(-1)[0]})`);
        throw err;
      }
    }
    const fh = await open(dest, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    await rm(dest, { force: true });
    if (isNoSpace(err)) throw noSpace(`no space left in ${dirname(dest)} to decompress ${what}`, err);
    throw toAgentError(err);
  }
}
