// Downloads from image servers: http:, https: (node's own clients, a source's CA bundle, at most
// 5 redirects) and file: URLs, hashed while they stream to a temp file the caller names, fsynced,
// checked against the expected size and digest. Every failure is an AgentError naming the URL
// (without its user:password part; never a header): the server's faults are UPSTREAM (502), a
// server that does not connect or stops sending is TIMEOUT (504), a full disk INSUFFICIENT_STORAGE
// (507) naming the directory. On any failure the temp file is gone.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { AgentError, fromFsError, invalid, isNoSpace, noSpace, timeout, toAgentError, upstream } from '../model/errors.js';
import { decompressingSink } from './format.js';
import type { Compression, Digest, Progress, ResolvedImage } from './types.js';

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
const MAX_REDIRECTS = 5;
/** How often a download reports progress: every 1% of it, at least every 64 KiB (besides its start and its end). */
const progressStep = (total: number | null) => Math.max(64 << 10, Math.floor((total ?? 1 << 26) / 100));

export interface Timeouts {
  /** No TCP (and TLS) connection within this → TIMEOUT. */
  connectTimeoutMs: number;
  /** No byte (headers or body) for this long once connected → TIMEOUT. */
  stallTimeoutMs: number;
}

export interface DownloadOptions extends Timeouts {
  onProgress?(p: Progress): void;
  signal?: AbortSignal;
  /**
   * Write `dest` decompressed, in the same pass (format.ts): the compression by magic, else
   * `img.compression`. The digest and the size checked are still those of the bytes downloaded.
   */
  decompress?: boolean;
}

/** A URL as it may appear in a message: without user and password. */
export function shownUrl(url: string | URL): string {
  try {
    const u = new URL(String(url));
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(malformed URL)';
  }
}

/** `sha256:<hex>` / `sha1:<hex>` → its parts, or an INVALID naming what is wrong. */
export function parseDigest(d: string): { algo: 'sha256' | 'sha1'; hex: string } {
  const m = /^(sha256|sha1):([0-9a-f]+)$/.exec(String(d));
  const want = m?.[1] === 'sha256' ? 64 : 40;
  if (!m || m[2]!.length !== want) {
    throw invalid(`checksum ${JSON.stringify(String(d).slice(0, 80))}: expected sha256:<64 hex digits> or sha1:<40 hex digits>`);
  }
  return { algo: m[1] as 'sha256' | 'sha1', hex: m[2]! };
}

const abortError = (url: string) => new AgentError('FAILED_PRECONDITION', `download of ${shownUrl(url)} cancelled`);

async function caOf(caFile: string | undefined): Promise<Buffer | undefined> {
  if (caFile === undefined) return undefined;
  try {
    return await readFile(caFile);
  } catch (err) {
    throw fromFsError(err, `ca_file ${caFile}`);
  }
}

/** Why a connection failed, for people (node's TLS codes say little by themselves). */
function reachError(url: string, err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  const e = err as NodeJS.ErrnoException;
  const why = e?.code && !String(e.message).includes(e.code) ? `${e.code}: ${e.message}` : String(e?.message ?? err);
  return upstream(`cannot reach ${shownUrl(url)}: ${why}`, err);
}

/**
 * GET `url` and answer the response of a 2xx (after following redirects), with the stall timer
 * armed on its socket. 4xx/5xx → `onStatus` (when it returns an error) or UPSTREAM `GET <url>: 404 Not Found`.
 */
async function get(
  url: string,
  o: Timeouts & { ca?: Buffer; signal?: AbortSignal; onStatus?(status: number): AgentError | undefined },
  redirects = 0,
): Promise<{ res: IncomingMessage; url: string; stalled(): AgentError | undefined }> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : undefined;
  if (!mod) throw invalid(`${shownUrl(url)}: only http, https and file URLs can be fetched`);
  if (o.signal?.aborted) throw abortError(url);
  let stall: AgentError | undefined;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    let settled = false;
    const fail = (err: AgentError) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      o.signal?.removeEventListener('abort', onAbort);
      req.destroy();
      reject(err);
    };
    const opts: https.RequestOptions = { agent: false, headers: { 'user-agent': 'imageapi', accept: '*/*' } };
    if (mod === https && o.ca) opts.ca = o.ca;
    const req = mod.get(u, opts, (r) => {
      if (settled) return r.destroy();
      settled = true;
      clearTimeout(connectTimer);
      o.signal?.removeEventListener('abort', onAbort);
      resolve(r);
    });
    const connectTimer = setTimeout(
      () => fail(timeout(`cannot reach ${shownUrl(url)}: no connection within ${o.connectTimeoutMs} ms`)),
      o.connectTimeoutMs,
    );
    const onAbort = () => fail(abortError(url));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('socket', (sock) => {
      const connected = () => {
        clearTimeout(connectTimer);
        // From here on, silence for stallTimeoutMs (waiting for the headers or for the body) ends it.
        sock.setTimeout(o.stallTimeoutMs, () => {
          const err = timeout(`${shownUrl(url)}: the server sent nothing for ${o.stallTimeoutMs} ms`);
          stall = err;
          if (!settled) fail(err);
          else sock.destroy(err);
        });
      };
      sock.once(mod === https ? 'secureConnect' : 'connect', connected);
    });
    req.on('error', (err) => fail(reachError(url, err)));
  });
  const status = res.statusCode ?? 0;
  if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
    res.resume();
    res.destroy();
    if (redirects >= MAX_REDIRECTS) throw upstream(`GET ${shownUrl(url)}: more than ${MAX_REDIRECTS} redirects`);
    let next: URL;
    try {
      next = new URL(res.headers.location, u);
    } catch {
      throw upstream(`GET ${shownUrl(url)}: ${status} to a malformed location`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw upstream(`GET ${shownUrl(url)}: ${status} to a ${next.protocol} URL, refused`);
    return get(next.toString(), o, redirects + 1);
  }
  if (status < 200 || status >= 300) {
    res.resume();
    res.destroy();
    throw o.onStatus?.(status) ?? upstream(`GET ${shownUrl(url)}: ${status} ${res.statusMessage ?? ''}`.trimEnd());
  }
  return { res, url, stalled: () => stall };
}

/** The body of `res` as a stream error: a connection cut mid-body or the stall timer's TIMEOUT. */
function bodyError(url: string, err: unknown, done: number, total: number | null): AgentError {
  if (err instanceof AgentError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ECONNRESET' || e?.code === 'ERR_STREAM_PREMATURE_CLOSE' || /aborted/i.test(String(e?.message))) {
    return upstream(`truncated download of ${shownUrl(url)}: the connection ended after ${done}${total === null ? '' : ` of ${total}`} bytes`, err);
  }
  return toAgentError(err);
}

/**
 * Download `img.url` into `dest` (created; must not exist), hashing the bytes as they arrive.
 * Resolves with the number of bytes once they are on disk (fsynced), of the expected size and
 * digest; otherwise rejects with an AgentError and `dest` is removed.
 */
export async function download(img: ResolvedImage, dest: string, opts: DownloadOptions): Promise<{ size: number; compression?: Compression }> {
  const { algo, hex } = parseDigest(img.digest);
  const url = img.url;
  let scheme: string;
  try {
    scheme = new URL(url).protocol;
  } catch {
    throw invalid(`${JSON.stringify(url.slice(0, 200))} is not a URL`);
  }
  const hash = createHash(algo);
  let done = 0;
  let total: number | null = img.size ?? null;
  let lastReport = 0;
  const report = () => {
    lastReport = done;
    opts.onProgress?.({ done, total });
  };
  const sink = opts.decompress ? decompressingSink(dest, img.compression, shownUrl(url), opts.signal) : undefined;
  try {
    let source: NodeJS.ReadableStream;
    let abortBody: (() => void) | undefined;
    let stalled: () => AgentError | undefined = () => undefined;
    if (scheme === 'file:') {
      const path = fileURLToPath(url);
      try {
        if (!(await stat(path)).isFile()) throw invalid(`${shownUrl(url)}: not a regular file`);
      } catch (err) {
        throw err instanceof AgentError ? err : fromFsError(err, shownUrl(url));
      }
      const s = createReadStream(path);
      await new Promise<void>((resolve, reject) => {
        s.once('open', () => resolve());
        s.once('error', (err) => reject(fromFsError(err, shownUrl(url))));
      });
      source = s;
      abortBody = () => s.destroy(abortError(url));
    } else {
      const ca = await caOf(img.ca_file);
      const { res, stalled: s } = await get(url, { ...opts, ca });
      stalled = s;
      const len = Number(res.headers['content-length']);
      if (Number.isSafeInteger(len) && len >= 0) {
        if (total !== null && len !== total) {
          res.destroy();
          throw upstream(`truncated download of ${shownUrl(url)}: the server announces ${len} bytes, ${total} expected`);
        }
        total ??= len;
      }
      source = res;
      abortBody = () => res.destroy(abortError(url));
    }
    const onAbort = () => abortBody?.();
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    report();
    const step = progressStep(total);
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        done += chunk.length;
        if (total !== null && done > total) {
          cb(upstream(`truncated download of ${shownUrl(url)}: more than the ${total} bytes expected`));
          return;
        }
        (hash as Hash).update(chunk);
        if (done - lastReport >= step) report();
        cb(null, chunk);
      },
    });
    try {
      // flush: the data reach the disk (fsync) before the stream closes, so a rename after it is durable.
      if (sink) await pipeline(source, counter, sink.stream);
      else await pipeline(source, counter, createWriteStream(dest, { flags: 'wx', mode: 0o600, flush: true, highWaterMark: 1 << 20 }));
    } catch (err) {
      await sink?.settled();
      if (isNoSpace(err)) throw noSpace(`no space left in ${dirname(dest)} for ${shownUrl(url)} (after ${done} bytes of the download)`, err);
      throw stalled() ?? bodyError(url, err, done, total);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    if (total !== null && done !== total) {
      throw upstream(`truncated download of ${shownUrl(url)}: got ${done} of ${total} bytes`);
    }
    if (sink) {
      // A decompressor writing through a pipe: its output reaches the disk here.
      try {
        const fh = await open(dest, 'r+');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      } catch (err) {
        if (isNoSpace(err)) throw noSpace(`no space left in ${dirname(dest)} for ${shownUrl(url)}`, err);
        throw toAgentError(err);
      }
    }
    const got = hash.digest('hex');
    if (got !== hex) {
      throw upstream(`checksum mismatch for ${shownUrl(url)}: expected ${algo}:${hex}, got ${algo}:${got}`);
    }
    total = done;
    report();
    const c = sink?.compression();
    return { size: done, ...(c ? { compression: c } : {}) };
  } catch (err) {
    await sink?.settled();
    await rm(dest, { force: true });
    throw err;
  }
}

export interface FetchJsonOptions extends Partial<Timeouts> {
  ca_file?: string;
  /** Larger answers are refused (UPSTREAM): index documents are small. */
  maxBytes?: number;
  signal?: AbortSignal;
  /** What a 4xx/5xx means to the caller (an image the user named that the server does not have, say). */
  onStatus?(status: number): AgentError | undefined;
}

/** GET a small JSON document (a simplestreams index, an IMGAPI manifest): bounded in size and time. */
export async function fetchJson(url: string, o: FetchJsonOptions = {}): Promise<unknown> {
  const maxBytes = o.maxBytes ?? 16 << 20;
  const shown = shownUrl(url);
  let text: string;
  if (url.startsWith('file:')) {
    let buf: Buffer;
    try {
      buf = await readFile(fileURLToPath(url));
    } catch (err) {
      throw fromFsError(err, shown);
    }
    if (buf.length > maxBytes) throw upstream(`${shown}: larger than ${maxBytes} bytes`);
    text = buf.toString('utf8');
  } else {
    const { res, stalled } = await get(url, {
      connectTimeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      stallTimeoutMs: o.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      ca: await caOf(o.ca_file),
      signal: o.signal,
      onStatus: o.onStatus,
    });
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > maxBytes) {
          res.destroy();
          throw upstream(`${shown}: larger than ${maxBytes} bytes`);
        }
        chunks.push(c);
      }
    } catch (err) {
      throw stalled() ?? bodyError(url, err, n, null);
    }
    text = Buffer.concat(chunks).toString('utf8');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw upstream(`${shown}: not a JSON document`);
  }
}

/** The digest of a file already on disk (a test's fixture, a check of a cache entry). */
export async function digestOfFile(path: string, algo: 'sha256' | 'sha1' = 'sha256'): Promise<Digest> {
  const h = createHash(algo);
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) h.update(c);
  return `${algo}:${h.digest('hex')}`;
}
