// Images as objects of the agent: one `image` object per digest, the cache entry with an id and
// refs like any other. Their lifecycle lives here: define (resolve the request, dedupe by digest,
// make the object in state `pulling`), the background pull outside the core's lock (progress
// throttled into the object, the log and the events), waiting for one (a request naming an image
// still pulling waits within image_pull_timeout), delete (its cache file goes), eviction (the
// cache evicts unused entries least recently used first; their objects are deleted), and the
// adoption after a restart (ready: the cache file must be there; pulling: the pull is redone).
import { realpath } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { ImageCache } from '../image/cache.js';
import { resolve } from '../image/sources/index.js';
import type { ImageRequest, Progress, ResolvedImage, SourceConfig } from '../image/types.js';
import { AgentError, alreadyExists, fromFsError, invalid, notFound, timeout, toAgentError } from '../model/errors.js';
import type { ImageRec, Owner } from '../store/records.js';
import { describeRec, refOf } from '../store/records.js';
import { checkSource, policyFrom } from '../sys/paths.js';
import type { Engine, ImageHooks } from './engine.js';
import { NeedImage, type Tx } from './tx.js';

export interface ImagesOptions {
  cache: ImageCache;
  sources: SourceConfig[];
  /** How long a mount waits for an image still pulling (image_pull_timeout, ms). */
  pullTimeoutMs: number;
  log: Logger;
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
}

/** An image request, as POST /image and the `uri` mount kind give it (plus an optional name). */
export type ImageDefinition = ImageRequest & { name?: string };

const REQUEST_KEYS = ['uri', 'simplestreams', 'imgapi'] as const;

/** An image spec that is a reference (`{id}`, or `{}`: id 0) rather than a request. */
function referenced(spec: Record<string, unknown>): number | undefined {
  const defined = REQUEST_KEYS.filter((k) => spec[k] !== undefined);
  if (spec.id !== undefined) {
    if (defined.length) throw invalid(`give either "id" (a reference to an image) or a definition ("${defined[0]}"), not both`);
    return spec.id as number;
  }
  return defined.length ? undefined : 0;
}

/** A stable key of a request (the same request twice in one spec is one image). */
function keyOf(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(keyOf).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${keyOf(o[k])}`)
    .join(',')}}`;
}

/** Only the request's own fields (a `uri` mount's spec also has mount_options, size, …). */
export function requestOf(spec: Record<string, unknown>): Record<string, unknown> {
  if (spec.uri !== undefined) {
    const out: Record<string, unknown> = {};
    for (const k of ['uri', 'checksum', 'format', 'compression', 'ca_file']) if (spec[k] !== undefined) out[k] = spec[k];
    return out;
  }
  if (spec.simplestreams !== undefined) return { simplestreams: spec.simplestreams };
  if (spec.imgapi !== undefined) return { imgapi: spec.imgapi };
  return {};
}

export class Images implements ImageHooks {
  readonly pullTimeoutMs: number;
  private readonly pulls = new Map<number, { abort: AbortController; done: Promise<void> }>();
  /** Pulls left `pulling` by the last agent: started again once the start is done. */
  private readonly toResume: ImageRec[] = [];

  constructor(
    private readonly engine: Engine,
    private readonly o: ImagesOptions,
  ) {
    this.pullTimeoutMs = o.pullTimeoutMs;
  }

  private get store() {
    return this.engine.store;
  }

  private get log() {
    return this.o.log;
  }

  /** Whether anything holds the image of `digest` (then the cache never evicts it). */
  inUse = (digest: string): boolean => {
    const rec = this.store.imageByDigest(digest);
    // (A request still being made counts: its loop device may be going over the file right now.)
    return !!rec && (this.store.holders(refOf(rec), true).length > 0 || rec.state === 'pulling');
  };

  // ------------------------------------------------------------------ define and pull

  /**
   * Make the image a request names (outside the lock: resolving may ask a server). The object of
   * the same digest if there is one (a failed one is pulled again), else a new one in state
   * `pulling` whose pull runs in the background. `created` says which.
   */
  async define(def: ImageDefinition, opts: { implicit: boolean; where?: string }): Promise<{ rec: ImageRec; created: boolean }> {
    const { name, ...request } = def as ImageDefinition & Record<string, unknown>;
    const where = opts.where ?? 'image';
    if (name !== undefined && this.store.imageByName(name as string)) {
      const other = this.store.imageByName(name as string)!;
      throw alreadyExists(`${where}: an image named "${name}" already exists (id ${other.id})`);
    }
    let resolved: ResolvedImage;
    try {
      resolved = await resolve(request as ImageRequest, this.o.sources, {
        ...(this.o.connectTimeoutMs ? { connectTimeoutMs: this.o.connectTimeoutMs } : {}),
        ...(this.o.stallTimeoutMs ? { stallTimeoutMs: this.o.stallTimeoutMs } : {}),
      });
      // A file: URL reads a file of the host as root: confined like a loopback file (loopback_roots).
      if (resolved.url.startsWith('file:')) {
        const path = fileURLToPath(resolved.url);
        const real = await realpath(path).catch((e) => {
          throw fromFsError(e, `uri "${path}"`);
        });
        await checkSource(real, path, 'uri', policyFrom(this.engine.ctx.config, 'loopback'), true);
      }
    } catch (err) {
      throw toAgentError(err).within(where);
    }
    let out!: { rec: ImageRec; created: boolean };
    let restarted = false;
    await this.engine.update(
      () => {
        const same = this.store.imageByDigest(resolved.digest);
        if (same) {
          if (name !== undefined && same.name !== undefined && same.name !== name) {
            throw alreadyExists(`${where}: this image (${resolved.digest}) is already image ${same.id}, named "${same.name}"`);
          }
          if (name !== undefined && same.name === undefined) {
            same.name = name as string;
            this.store.put(same); // (indexes the name)
          }
          if (!opts.implicit) same.implicit = false; // asked for by the user: it stays, even failed
          if (same.state === 'failed') {
            same.state = 'pulling';
            delete same.error;
            delete same.error_kind;
            same.progress = { done: 0, total: resolved.size ?? null };
            same.resolved = resolved;
            restarted = true;
          }
          out = { rec: same, created: false };
          return;
        }
        const taken = name !== undefined ? this.store.imageByName(name as string) : undefined;
        if (taken) throw alreadyExists(`${where}: an image named "${name}" already exists (id ${taken.id})`);
        const rec: ImageRec = {
          type: 'image',
          id: this.store.nextId('image'),
          owner: 'user',
          holds: [],
          ...(name !== undefined ? { name: name as string } : {}),
          source: request,
          digest: resolved.digest,
          resolved,
          format: resolved.format ?? null,
          size: null,
          state: 'pulling',
          progress: { done: 0, total: resolved.size ?? null },
          ...(opts.implicit ? { implicit: true } : {}),
          last_used: null,
          created_at: new Date().toISOString(),
        };
        this.store.put(rec);
        out = { rec, created: true };
      },
      () => {
        if (!out) return;
        if (out.created) this.engine.events.record('created', out.rec);
        else if (restarted) this.engine.events.state(out.rec, 'failed');
      },
    );
    if (out.created || restarted) this.startPull(out.rec);
    return out;
  }

  private startPull(rec: ImageRec): void {
    if (this.pulls.has(rec.id)) return;
    const abort = new AbortController();
    this.log.info({ image: rec.id, url: rec.resolved.url, digest: rec.digest }, `image ${rec.id}: pulling ${rec.resolved.description}`);
    const done = this.pull(rec, abort).finally(() => this.pulls.delete(rec.id));
    this.pulls.set(rec.id, { abort, done });
  }

  private async pull(rec: ImageRec, abort: AbortController): Promise<void> {
    let lastPct = -1;
    let lastAt = 0;
    let lastLogPct = -10;
    const onProgress = (p: Progress) => {
      rec.progress = { done: p.done, total: p.total ?? rec.progress.total };
      const total = rec.progress.total;
      const pct = total ? Math.floor((p.done * 100) / total) : -1;
      const now = Date.now();
      // Throttled: one event per percent (or per second when the size is unknown), a log line per 10 %.
      if ((pct >= 0 && pct > lastPct) || (pct < 0 && now - lastAt >= 1000)) {
        lastPct = pct;
        lastAt = now;
        this.engine.events.progress(rec);
      }
      if (pct >= lastLogPct + 10) {
        lastLogPct = pct - (pct % 10);
        this.log.info({ image: rec.id, done: p.done, total }, `image ${rec.id}: pulled ${pct}%`);
      }
    };
    try {
      const entry = await this.o.cache.ensure(rec.resolved, { onProgress, signal: abort.signal, inUse: this.inUse });
      if (abort.signal.aborted) {
        if (!this.store.imageByDigest(rec.digest)) await this.o.cache.remove(rec.digest); // deleted meanwhile
        return;
      }
      await this.engine.update(
        () => {
          if (this.store.find('image', rec.id) !== rec) return;
          rec.state = 'ready';
          rec.path = entry.path;
          rec.size = entry.size;
          rec.format = entry.format;
          rec.progress = { done: rec.progress.total ?? rec.progress.done, total: rec.progress.total };
          rec.last_used = entry.last_used;
        },
        () => {
          this.log.info({ image: rec.id, digest: rec.digest, size: rec.size, format: rec.format }, `image ${rec.id}: ready`);
          this.engine.events.state(rec, 'pulling');
        },
      );
    } catch (err) {
      if (abort.signal.aborted) return; // deleted meanwhile
      const e = toAgentError(err);
      await this.engine
        .update(
          () => {
            if (this.store.find('image', rec.id) !== rec) return;
            rec.state = 'failed';
            rec.error = e.message;
            rec.error_kind = e.kind;
          },
          () => {
            this.log.warn({ image: rec.id, err: e.message }, `image ${rec.id}: the pull failed`);
            this.engine.events.state(rec, 'pulling');
          },
        )
        .catch((er) => this.log.error({ err: er }, 'cannot save the state of a failed pull'));
      // Made by a mount that failed with it (nobody asked for it by name): nothing of it stays.
      if (rec.implicit && rec.owner === 'user' && rec.name === undefined && this.store.holders(refOf(rec)).length === 0) {
        await this.engine.remove(refOf(rec), false).catch((er) => this.log.error({ err: er, image: rec.id }, 'cannot delete a failed image'));
      }
    } finally {
      if (!abort.signal.aborted) await this.dropEvicted();
    }
  }

  /** Image objects whose cache entry the cache evicted (to make room for another pull) go too. */
  private async dropEvicted(): Promise<void> {
    for (const rec of this.store.list('image')) {
      if (rec.state !== 'ready' || this.o.cache.get(rec.digest)) continue;
      this.log.info({ image: rec.id, digest: rec.digest }, `image ${rec.id}: evicted from the cache (least recently used): deleted`);
      await this.engine.remove(refOf(rec), false).catch((err) => this.log.error({ err, image: rec.id }, 'cannot delete an evicted image'));
    }
  }

  // ------------------------------------------------------------------ waiting

  /** Resolve once the image is ready; reject with its error when it fails, 504 at `deadline`. */
  waitReady(id: number, deadline: number, where: string, state: 'ready' | 'failed' = 'ready'): Promise<ImageRec> {
    const check = (): ImageRec | AgentError | null => {
      const rec = this.store.find('image', id);
      if (!rec) return notFound(`${where}: image ${id} was deleted`);
      if (rec.state === state) return rec;
      if (rec.state === 'failed') return this.failure(rec, where);
      if (state === 'failed' && rec.state === 'ready') return new AgentError('FAILED_PRECONDITION', `${where}: image ${id} is ready, it will not fail`);
      return null;
    };
    const now = check();
    if (now instanceof AgentError) return Promise.reject(now);
    if (now) return Promise.resolve(now);
    return new Promise((res, rej) => {
      let last: ImageRec | undefined = this.store.find('image', id);
      const done = (fn: () => void) => {
        unsubscribe();
        unclose();
        clearTimeout(timer);
        fn();
      };
      const unsubscribe = this.engine.events.subscribe((e) => {
        if (e.type !== 'image' || e.id !== id || e.action === 'progress') return;
        // A failed implicit image is deleted right after its failure: answer the failure.
        if (e.action === 'deleted' && last?.state === 'failed') return done(() => rej(this.failure(last!, where)));
        last = this.store.find('image', id) ?? last;
        const r = check();
        if (r instanceof AgentError) done(() => rej(r));
        else if (r) done(() => res(r));
      });
      const unclose = this.engine.events.onClose(() => done(() => rej(timeout(`${where}: the agent is stopping; image ${id} is still pulling`))));
      const timer = setTimeout(
        () =>
          done(() =>
            rej(
              timeout(
                `${where}: image ${id} is still pulling after ${Math.round(this.pullTimeoutMs / 1000)} s (image_pull_timeout); ` +
                  `the pull goes on: GET /image?id=${id}, or POST /image first and wait for it (GET /image/wait?id=${id})`,
              ),
            ),
          ),
        Math.max(0, deadline - Date.now()),
      );
    });
  }

  /** What a mount naming a failed image answers: the pull's own error (502 for a server's fault). */
  private failure(rec: ImageRec, where: string): AgentError {
    const kind = (rec.error_kind as AgentError['kind'] | undefined) ?? 'UPSTREAM';
    return new AgentError(kind, `${where}: image ${rec.id} failed: ${rec.error ?? 'unknown error'}`);
  }

  // ------------------------------------------------------------------ the core's hooks

  resolve(spec: unknown, owner: Owner, tx: Tx, where: string): ImageRec {
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw invalid(`${where}: a reference {"id": N} or an image request is needed`);
    const s = spec as Record<string, unknown>;
    let id: number | undefined;
    let key = '';
    try {
      id = referenced(s);
    } catch (err) {
      throw toAgentError(err).within(where);
    }
    if (id === undefined) {
      const request = requestOf(s);
      key = keyOf(request);
      id = tx.images.get(key);
      if (id === undefined) throw new NeedImage(key, request, null, where);
    }
    const rec = this.store.find('image', id);
    if (!rec) throw notFound(`${where}: no image with id ${id}`);
    if (rec.state === 'pulling') throw new NeedImage(key, null, id, where);
    if (rec.state === 'failed') throw this.failure(rec, where);
    if (!rec.path) throw new AgentError('INTERNAL', `${where}: image ${id} is ready but has no cache file`);
    // An image this request's definition made (or an unused one it names again) belongs to it.
    if (key && rec.implicit && rec.owner === 'user' && this.store.holders(refOf(rec)).length === 0) {
      rec.owner = owner;
      tx.onUndo(`give ${describeRec(rec)} back to the user`, () => {
        rec.owner = 'user';
      });
    }
    rec.last_used = new Date().toISOString();
    this.o.cache.touch(rec.digest);
    return rec;
  }

  async prepare(need: NeedImage, memo: Map<string, number>, deadline: number): Promise<void> {
    let id = need.id;
    if (id === null) {
      const { rec } = await this.define(need.request as ImageDefinition, { implicit: true, where: need.where });
      id = rec.id;
      memo.set(need.key, id);
    }
    await this.waitReady(id, deadline, need.where);
  }

  async teardown(rec: ImageRec): Promise<void> {
    // (Not waited for: its end takes the lock this runs under. A pull that still completes removes its file.)
    this.pulls.get(rec.id)?.abort.abort();
    await this.o.cache.remove(rec.digest);
  }

  async adopt(rec: ImageRec): Promise<boolean> {
    if (rec.state === 'pulling') {
      // The last agent died during its pull: the cache's scan removed the partial file; again.
      rec.progress = { done: 0, total: rec.resolved.size ?? null };
      this.toResume.push(rec);
      return true;
    }
    if (rec.state === 'failed') return true;
    const entry = this.o.cache.get(rec.digest);
    if (!entry) return false;
    rec.path = entry.path;
    rec.size = entry.size;
    rec.format = entry.format;
    return true;
  }

  /** After the start's reconcile: the pulls the last agent did not finish. */
  resumePulls(): void {
    for (const rec of this.toResume.splice(0)) {
      if (this.store.find('image', rec.id) !== rec || rec.state !== 'pulling') continue;
      this.log.warn({ image: rec.id }, `image ${rec.id}: its pull was cut by the last agent's end: pulling again`);
      this.startPull(rec);
    }
  }

  /** Stop every pull (the agent stops): their objects stay `pulling`, redone at the next start. */
  async close(): Promise<void> {
    for (const p of this.pulls.values()) p.abort.abort();
    await Promise.all([...this.pulls.values()].map((p) => p.done.catch(() => {})));
  }
}
