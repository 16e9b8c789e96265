// What a downloaded file is: its compression (gzip, bzip2, xz, zstd: named by the request or the
// URL's suffix, else found by magic) and, once decompressed, its format by magic (squashfs 'hsqs'
// at 0, erofs 0xE0F5E1E2 little-endian at 1024, ext2/3/4 0xEF53 at 1080, tar 'ustar' at 257).
//
// The cache keeps every entry DECOMPRESSED, archives included: a loop device needs an image raw,
// and a raw tar is unpacked by every mount that uses it without paying for the decompression each
// time (several containers on one ramdisk image, say); the format is then always checked by magic
// on the bytes that will be used. The digest stays the one of the bytes as downloaded.
// Decompression runs in the same pass as the download (one write of the image, no compressed
// copy on disk): gzip through node's zlib; xz, zstd and bzip2 as Debian's tools through sys/exec,
// fed the bytes on their stdin as they arrive.
import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { finished as streamFinished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { AgentError, invalid, isNoSpace, upstream } from '../model/errors.js';
import { runFilter } from '../sys/exec.js';
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
/** A decompression is bounded by the stall timer of its download, not by a time of its own. */
const TOOL_TIMEOUT_MS = 24 * 3600_000;

export interface DecompressingSink {
  /** Write the download into it; its end waits until the decompressed file is complete. */
  stream: Writable;
  /** The compression used: the first bytes' magic, else the declared one (known once bytes came). */
  compression(): Compression | undefined;
  /** Settles once the decompressor is gone (ended or destroyed): wait for it before removing `dest`. */
  settled(): Promise<void>;
}

/** A tool's or zlib's failure on the stream: a corrupt stream is the server's (its digest matched what it published). */
function streamError(err: unknown, c: Compression, what: string): unknown {
  if (isNoSpace(err)) return err;
  if (err instanceof AgentError && /No space left|Disk quota/i.test(err.message)) return Object.assign(new Error(err.message), { code: 'ENOSPC' });
  if (err instanceof AgentError && err.kind === 'UPSTREAM') return upstream(`${what}: not a valid ${c} stream (${err.message.split(': ').slice(-1)[0]})`);
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  if (c === 'gzip' && (code.startsWith('Z_') || /incorrect header|invalid|unexpected end/i.test(String((err as Error)?.message)))) {
    return upstream(`${what}: not a valid gzip stream (${(err as Error).message})`);
  }
  return err;
}

/**
 * A writable that decompresses what is written into it into `dest` (created), in one pass: the
 * first bytes say the compression (magic; else `declared`), then the bytes stream through zlib
 * (gzip) or Debian's xz/zstd/bzip2 (through sys/exec), or straight to the file. Its `final`
 * waits for the file to be complete; a corrupt stream fails it with UPSTREAM naming `what`, a
 * full disk with the errno error (ENOSPC) for the caller to name the directory.
 */
export function decompressingSink(dest: string, declared: Compression, what: string, signal?: AbortSignal): DecompressingSink {
  let target: Writable | undefined;
  let finished: Promise<void> | undefined;
  let found: Compression | undefined;
  let head: Buffer[] = [];
  let headLen = 0;
  const file = () => createWriteStream(dest, { flags: 'wx', mode: 0o600, flush: true, highWaterMark: 1 << 20 });
  const start = () => {
    const magic = compressionOfBytes(Buffer.concat(head));
    const c = magic === 'none' ? declared : magic;
    found = c;
    if (c === 'none') {
      const ws = file();
      target = ws;
      finished = streamFinished(ws);
    } else if (c === 'gzip') {
      const gz = createGunzip();
      target = gz;
      finished = pipeline(gz, file());
    } else {
      const f = runFilter(TOOLS[c], ['-d', '-c'], { stdoutFile: dest, timeoutMs: TOOL_TIMEOUT_MS, failKind: 'UPSTREAM', ...(signal ? { signal } : {}) });
      f.stdin.on('error', () => undefined); // EPIPE when the tool gave up: its exit says why
      target = f.stdin;
      finished = f.done;
    }
    finished = finished.catch((err: unknown) => {
      throw streamError(err, c, what);
    });
    // A decompressor that fails ends the sink with its reason (a write may wait for a drain that never comes).
    finished.catch((err: unknown) => stream.destroy(err as Error));
    const first = Buffer.concat(head);
    head = [];
    return first;
  };
  const forward = (chunk: Buffer, cb: (err?: Error | null) => void) => {
    if (target!.write(chunk)) cb();
    else target!.once('drain', () => cb());
  };
  const stream = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      if (target) return forward(chunk, cb);
      head.push(chunk);
      headLen += chunk.length;
      if (headLen < 8) return cb();
      forward(start(), cb);
    },
    final(cb) {
      if (!target) {
        const first = start();
        if (first.length) target!.write(first);
      }
      target!.end();
      finished!.then(
        () => cb(),
        (err: Error) => cb(err),
      );
    },
    destroy(err, cb) {
      if (target && !target.destroyed) target.destroy();
      cb(err);
    },
  });
  return {
    stream,
    compression: () => found,
    settled: () => (finished ?? Promise.resolve()).then(
      () => undefined,
      () => undefined,
    ),
  };
}
