// The image cache: content-addressed files under one directory, each verified before it gets
// its name, shared by every mount of the same image.
//
//   <dir>/tmp/<hex>.<n>.part    a download in progress, decompressed as it arrives (format.ts)
//   <dir>/<algo>/<hex>          a verified, decompressed image or archive (algo: sha256 or sha1)
//   <dir>/<algo>/<hex>.json     its sidecar: digest, format, size, url, description, last_used
//
// Paths are built from hex digests only, never from a user's string. A file reaches
// <algo>/<hex> by a rename after its digest, size and format were checked and it was fsynced; its
// sidecar is written (atomically) after that, so a crash leaves either a complete entry, or a data
// file without a sidecar or temp files, which scan() deletes at the next start: a partial file is
// never used. Concurrent ensure() calls for one digest share one download (single flight); a size
// cap is kept by evicting least-recently-used entries that no mount uses.
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AgentError, internal, invalid, noSpace, toAgentError } from '../model/errors.js';
import { writeAtomic } from '../sys/fs.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_STALL_TIMEOUT_MS, download, parseDigest, shownUrl } from './fetch.js';
import { COMPRESSIONS, detectFormat, FORMATS } from './format.js';
import type { CacheEntry, Digest, Progress, ResolvedImage } from './types.js';

export interface CacheOptions {
  dir: string;
  maxBytes: number;
  log: Logger;
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  /** Whether a mount uses an entry (never evicted then); ensure()'s own inUse is asked as well. */
  inUse?(digest: Digest): boolean;
}

export interface EnsureOptions {
  onProgress?(p: Progress): void;
  signal?: AbortSignal;
  inUse?(digest: Digest): boolean;
}

interface Flight {
  promise: Promise<CacheEntry>;
  listeners: Set<(p: Progress) => void>;
  last: Progress | null;
  /** Callers still waiting; when the last one with a signal gives up (and none without), the download stops. */
  waiting: number;
  abort: AbortController;
  /** Bytes held for it under the cap while it downloads. */
  reserved: number;
}

const ALGOS = { sha256: 64, sha1: 40 } as const;
let seq = 0;

export class ImageCache {
  private readonly o: CacheOptions;
  private readonly entries = new Map<Digest, CacheEntry>();
  private readonly flights = new Map<Digest, Flight>();
  /** Sidecar writes per digest, one after the other (writeAtomic's temp name is per process). */
  private readonly writes = new Map<Digest, Promise<void>>();

  constructor(o: CacheOptions) {
    this.o = o;
  }

  get dir(): string {
    return this.o.dir;
  }

  private pathOf(digest: Digest): string {
    const { algo, hex } = parseDigest(digest);
    return join(this.o.dir, algo, hex);
  }

  /**
   * At start: delete what a crash left (temp files, a data file without its sidecar, a sidecar
   * without its file or that does not match it) and load the complete entries.
   */
  async scan(): Promise<CacheEntry[]> {
    const { dir, log } = this.o;
    await rm(join(dir, 'tmp'), { recursive: true, force: true });
    await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o700 });
    this.entries.clear();
    for (const [algo, len] of Object.entries(ALGOS)) {
      const sub = join(dir, algo);
      await mkdir(sub, { recursive: true, mode: 0o700 });
      const names = new Set(await readdir(sub));
      const isHex = (n: string) => n.length === len && /^[0-9a-f]+$/.test(n);
      for (const name of names) {
        const hex = name.endsWith('.json') ? name.slice(0, -5) : name;
        if (isHex(hex) && (name === hex || names.has(hex))) continue;
        if (isHex(hex) && name.endsWith('.json')) {
          log.warn({ file: join(sub, name) }, 'image cache: a sidecar without its image, removed');
        } else if (!isHex(hex)) {
          log.info({ file: join(sub, name) }, 'image cache: a leftover temp file, removed');
        }
        await rm(join(sub, name), { recursive: true, force: true });
      }
      for (const hex of [...names].filter(isHex)) {
        const file = join(sub, hex);
        const entry = await this.readSidecar(`${algo}:${hex}`, file).catch((err: unknown) => {
          log.warn({ file, err: String((err as Error)?.message ?? err) }, 'image cache: an image without a valid sidecar (an interrupted pull), removed');
          return undefined;
        });
        if (entry) this.entries.set(entry.digest, entry);
        else await Promise.all([rm(file, { force: true }), rm(`${file}.json`, { force: true })]);
      }
    }
    const list = this.list();
    log.info({ dir, entries: list.length, bytes: this.totalBytes() }, 'image cache scanned');
    return list;
  }

  private async readSidecar(digest: Digest, file: string): Promise<CacheEntry> {
    const meta = JSON.parse(await readFile(`${file}.json`, 'utf8')) as Partial<CacheEntry>;
    const st = await stat(file);
    if (meta.digest !== digest) throw new Error(`sidecar names ${String(meta.digest)}`);
    if (!st.isFile() || meta.size !== st.size) throw new Error(`size ${st.size}, sidecar says ${String(meta.size)}`);
    if (!FORMATS.includes(meta.format as never)) throw new Error(`format ${String(meta.format)}`);
    if (meta.compression !== undefined && !COMPRESSIONS.includes(meta.compression)) throw new Error(`compression ${String(meta.compression)}`);
    const last = typeof meta.last_used === 'string' && !Number.isNaN(Date.parse(meta.last_used)) ? meta.last_used : st.mtime.toISOString();
    return { ...meta, digest, path: file, size: st.size, format: meta.format!, last_used: last };
  }

  get(digest: Digest): CacheEntry | undefined {
    return this.entries.get(digest);
  }

  /** The verified entries, least recently used first. */
  list(): CacheEntry[] {
    return [...this.entries.values()].sort((a, b) => a.last_used.localeCompare(b.last_used));
  }

  /** Pulls in progress: digest → progress so far (null before the first byte). */
  pulling(): Map<Digest, Progress | null> {
    return new Map([...this.flights].map(([d, f]) => [d, f.last]));
  }

  totalBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.size;
    return n;
  }

  /** Mark an entry used now (least-recently-used order; persisted in its sidecar). */
  touch(digest: Digest): void {
    const e = this.entries.get(digest);
    if (!e) return;
    e.last_used = new Date().toISOString();
    this.persist(e).catch((err: unknown) => this.o.log.warn({ digest, err: String((err as Error)?.message ?? err) }, 'image cache: sidecar not updated'));
  }

  private persist(e: CacheEntry): Promise<void> {
    const meta = {
      digest: e.digest,
      format: e.format,
      size: e.size,
      last_used: e.last_used,
      ...(e.url === undefined ? {} : { url: e.url }),
      ...(e.description === undefined ? {} : { description: e.description }),
      ...(e.compression === undefined ? {} : { compression: e.compression }),
      ...(e.download_size === undefined ? {} : { download_size: e.download_size }),
      ...(e.created === undefined ? {} : { created: e.created }),
    };
    const prev = this.writes.get(e.digest) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => writeAtomic(`${e.path}.json`, JSON.stringify(meta, null, 1) + '\n', 0o600));
    this.writes.set(e.digest, next);
    void next.finally(() => {
      if (this.writes.get(e.digest) === next) this.writes.delete(e.digest);
    }).catch(() => undefined);
    return next;
  }

  /** Wait for the sidecar writes in progress (touches), before a stop say. */
  async flush(): Promise<void> {
    await Promise.all([...this.writes.values()].map((w) => w.catch(() => undefined)));
  }

  /** Delete an entry (the caller checked that nothing uses it): its sidecar first, so a crash leaves an orphan scan() removes. */
  async remove(digest: Digest): Promise<void> {
    const e = this.entries.get(digest);
    if (!e) return;
    this.entries.delete(digest);
    await this.writes.get(digest)?.catch(() => undefined);
    await rm(`${e.path}.json`, { force: true });
    await rm(e.path, { force: true });
    this.o.log.info({ digest, bytes: e.size }, 'image cache: entry removed');
  }

  /**
   * The verified entry for `img`: present → touched and returned; else downloaded (one download
   * per digest, whoever asks), decompressed when compressed, checked and named.
   */
  ensure(img: ResolvedImage, o: EnsureOptions = {}): Promise<CacheEntry> {
    let digest: Digest;
    try {
      const { algo, hex } = parseDigest(img.digest);
      digest = `${algo}:${hex}`;
    } catch (err) {
      return Promise.reject(err);
    }
    const have = this.entries.get(digest);
    if (have) {
      // Still there as verified (someone may have removed or cut the file under us): else pulled again.
      return stat(have.path).then(
        (st) => (st.isFile() && st.size === have.size ? null : 'changed'),
        () => 'gone',
      ).then(async (bad) => {
        if (!bad) {
          this.touch(digest);
          return have;
        }
        if (this.entries.get(digest) === have) {
          this.o.log.warn({ digest, path: have.path, why: bad }, 'image cache: an entry\'s file changed under the cache: pulled again');
          await this.remove(digest);
        }
        return this.ensure(img, o);
      });
    }
    let f = this.flights.get(digest);
    // A pull every caller gave up on is ending: a new caller starts a new one.
    if (!f || f.abort.signal.aborted) {
      const nf: Flight = { promise: undefined as never, listeners: new Set(), last: null, waiting: 0, abort: new AbortController(), reserved: 0 };
      nf.promise = this.pull(img, digest, nf, o.inUse).finally(() => {
        if (this.flights.get(digest) === nf) this.flights.delete(digest);
      });
      nf.promise.catch(() => undefined); // every caller gets its rejection; none is left unhandled here
      this.flights.set(digest, nf);
      f = nf;
    }
    const flight = f;
    if (o.onProgress) {
      flight.listeners.add(o.onProgress);
      if (flight.last) o.onProgress(flight.last);
    }
    const leave = () => {
      if (o.onProgress) flight.listeners.delete(o.onProgress);
    };
    if (!o.signal) {
      flight.waiting = Infinity; // a caller that cannot give up keeps the download going
      void flight.promise.finally(leave).catch(() => undefined);
      return flight.promise;
    }
    const signal = o.signal;
    flight.waiting += 1;
    return new Promise<CacheEntry>((resolve, reject) => {
      const onAbort = () => {
        leave();
        flight.waiting -= 1;
        if (flight.waiting <= 0) flight.abort.abort();
        reject(new AgentError('FAILED_PRECONDITION', `pull of ${shownUrl(img.url)} cancelled`));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(
        (e) => {
          signal.removeEventListener('abort', onAbort);
          leave();
          resolve(e);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          leave();
          reject(err);
        },
      );
    });
  }

  private isUsed(digest: Digest, inUse?: (d: Digest) => boolean): boolean {
    return Boolean(this.o.inUse?.(digest) || inUse?.(digest) || this.flights.has(digest));
  }

  /**
   * Make `need` more bytes fit under the cap (besides what other pulls hold): evict the least
   * recently used entries nothing uses, or, when even that would not do, INSUFFICIENT_STORAGE
   * without evicting anything.
   */
  private async makeRoom(need: number, self: Flight, inUse?: (d: Digest) => boolean): Promise<void> {
    const { maxBytes, dir, log } = this.o;
    let held = 0;
    for (const f of this.flights.values()) if (f !== self) held += f.reserved;
    let used = this.totalBytes() + held;
    if (used + need <= maxBytes) return;
    const victims = this.list().filter((e) => !this.isUsed(e.digest, inUse));
    const free = victims.reduce((n, e) => n + e.size, 0);
    if (used - free + need > maxBytes) {
      throw noSpace(
        `image cache ${dir} cannot hold ${need} more bytes under its cap of ${maxBytes} bytes ` +
          `(${used - free} bytes are images in use or being pulled)`,
      );
    }
    for (const e of victims) {
      if (used + need <= maxBytes) break;
      log.info({ digest: e.digest, bytes: e.size, last_used: e.last_used }, 'image cache: evicting the least recently used image');
      await this.remove(e.digest);
      used -= e.size;
    }
  }

  private async pull(img: ResolvedImage, digest: Digest, f: Flight, inUse?: (d: Digest) => boolean): Promise<CacheEntry> {
    const { dir, log } = this.o;
    const { algo, hex } = parseDigest(digest);
    const url = shownUrl(img.url);
    const tmp = join(dir, 'tmp');
    const n = `${process.pid}-${++seq}`;
    const part = join(tmp, `${hex}.${n}.part`);
    const final = this.pathOf(digest);
    const started = Date.now();
    log.info({ digest, url, size: img.size ?? null }, `image pull: ${img.description}`);
    try {
      await mkdir(tmp, { recursive: true, mode: 0o700 });
      await mkdir(join(dir, algo), { recursive: true, mode: 0o700 });
      f.reserved = img.size ?? 0;
      await this.makeRoom(f.reserved, f, inUse);
      let lastLogged = 0;
      const { size: downloaded, compression = img.compression } = await download(img, part, {
        decompress: true,
        connectTimeoutMs: this.o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        stallTimeoutMs: this.o.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
        signal: f.abort.signal,
        onProgress: (p) => {
          f.last = p;
          for (const l of f.listeners) {
            try {
              l(p);
            } catch {
              // a listener's fault is not the pull's
            }
          }
          if (p.total && p.done - lastLogged >= p.total / 4 && p.done < p.total) {
            lastLogged = p.done;
            log.info({ digest, done: p.done, total: p.total }, `image pull: ${Math.floor((100 * p.done) / p.total)}%`);
          }
        },
      });
      const file = part;
      if (f.abort.signal.aborted) throw new AgentError('FAILED_PRECONDITION', `pull of ${url} cancelled`);
      const format = await detectFormat(file, url);
      if (img.format && img.format !== format) throw invalid(`${url}: a ${format} file, not the ${img.format} the request names`);
      const { size } = await stat(file);
      if (size > f.reserved) {
        await this.makeRoom(size, f, inUse);
        f.reserved = size;
      }
      await rename(file, final);
      const dh = await open(join(dir, algo), 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
      const now = new Date().toISOString();
      const entry: CacheEntry = {
        digest,
        path: final,
        size,
        format,
        last_used: now,
        url,
        description: img.description,
        compression,
        download_size: downloaded,
        created: now,
      };
      try {
        await this.persist(entry);
      } catch (err) {
        await rm(final, { force: true });
        throw err;
      }
      this.entries.set(digest, entry);
      log.info({ digest, url, bytes: size, downloaded, ms: Date.now() - started }, 'image pull: done');
      return entry;
    } catch (err) {
      await rm(part, { force: true });
      const e = toAgentError(err);
      if (e.kind === 'INSUFFICIENT_STORAGE' || e.kind === 'INTERNAL') {
        // A full disk under the sidecar or the rename: name the cache's directory.
        if (!e.message.includes(dir)) {
          const out = e.kind === 'INSUFFICIENT_STORAGE' ? noSpace(`image cache ${dir}: ${e.message}`, err) : internal(`image cache ${dir}: ${e.message}`, err);
          log.warn({ digest, url, err: out.message }, 'image pull: failed');
          throw out;
        }
      }
      log.warn({ digest, url, err: e.message }, 'image pull: failed');
      throw e;
    }
  }
}
