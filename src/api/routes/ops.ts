// The routes an operator reaches for first: GET /events (the change stream), GET /container/wait,
// GET /_ping and /healthz, GET /version, GET /info and GET /metrics.
import { Router, type Request, type Response } from 'express';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AgentEvent, EventHub } from '../../core/events.js';
import { AgentError, invalid, notFound } from '../../model/errors.js';
import type { ContainerRec } from '../../store/records.js';
import { kernelFeatures, type KernelFeatures } from '../../sys/features.js';
import type { Metrics } from '../metrics.js';
import { boolParam, intParam, q } from '../query.js';
import type { Services } from '../services.js';

/** The API generations served (the typed v0.1 routes and the generic v0.2 ones). */
export const API_VERSIONS = ['0.1', '0.2'];
/** A follower that reads slower than this much of unsent output is cut off (it may resume with since=). */
const MAX_BUFFERED = 8 * 1024 * 1024;
const SSE_PING_MS = 15_000;

/** The package's version (package.json at the root: src/api/routes → ../../../, dist/src/api/routes → ../../../../). */
export function agentVersion(): string {
  for (const rel of ['../../../package.json', '../../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'imageapi' && pkg.version) return pkg.version;
    } catch {
      /* the next */
    }
  }
  return 'unknown';
}

/** A `since`/`until` bound: a sequence number, or a time (RFC 3339, or unix seconds with a fraction). */
type Bound = { seq: number } | { time: number };

function bound(v: unknown, name: string): Bound | undefined {
  if (v === undefined || v === '') return undefined;
  const s = String(v);
  if (/^\d+$/.test(s)) return { seq: Number(s) };
  if (/^\d+\.\d+$/.test(s)) return { time: Number(s) * 1000 };
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw invalid(`query.${name}: give a sequence number (integer) or a time (RFC 3339, or unix seconds with a fraction like 1764650000.0), not ${JSON.stringify(s)}`);
  return { time: t };
}

const after = (e: AgentEvent, b: Bound | undefined) => !b || ('seq' in b ? e.seq > b.seq : Date.parse(e.time) > b.time);
const upTo = (e: AgentEvent, b: Bound | undefined) => !b || ('seq' in b ? e.seq <= b.seq : Date.parse(e.time) <= b.time);

interface Filter {
  types?: Set<string>;
  id?: number;
  name?: string;
}
const matches = (e: AgentEvent, f: Filter) =>
  (!f.types || f.types.has(e.type)) && (f.id === undefined || e.id === f.id) && (f.name === undefined || e.name === f.name);

/** Is the container in the state waited for? Waiting for `exited` also ends on `dead`: the container ended either way. */
const reached = (c: ContainerRec, state: string) => c.state === state || (state === 'exited' && c.state === 'dead');

export interface OpsOptions {
  events: EventHub;
  metrics: Metrics;
  runDir: string;
  startedAt: Date;
}

export function opsRoutes(s: Services, o: OpsOptions): Router {
  const r = Router();
  const { store, views, containers } = s;
  const { events } = o;
  const version = agentVersion();
  let features: Promise<KernelFeatures> | null = null;

  r.get('/_ping', (_req, res) => void res.type('text/plain').send('OK'));
  r.get('/healthz', (_req, res) => void res.type('text/plain').send('OK'));

  r.get('/version', async (_req, res) => {
    features ??= kernelFeatures();
    res.json({ version, api_versions: API_VERSIONS, node: process.versions.node, features: await features });
  });

  r.get('/info', (_req, res) => {
    const states: Record<string, number> = {};
    const list = store.list('container');
    for (const c of list) states[c.state] = (states[c.state] ?? 0) + 1;
    res.json({
      version,
      run_dir: o.runDir,
      pid: process.pid,
      started_at: o.startedAt.toISOString(),
      attachments: store.list('attach').length,
      mounts: store.list('mount').length,
      containers: list.length,
      containers_by_state: states,
      events: { first_seq: events.firstSeq, last_seq: events.lastSeq, ring: events.capacity },
    });
  });

  r.get('/metrics', async (_req, res) => {
    const registry = await o.metrics.registry();
    res.type(registry.contentType).send(await registry.metrics());
  });

  r.get('/events', (req, res) => streamEvents(events, req, res));

  r.get('/container/wait', async (req, res) => {
    const { id, name } = q(req);
    const query = req.query as Record<string, unknown>;
    const state = (query.state as string | undefined) ?? 'exited';
    const timeout = intParam(query.timeout);
    const rec = await waitFor(events, containers.select({ id, name }), state, timeout, req);
    res.json(views.container(rec));
  });

  return r;
}

/** Resolve with the container once it is in `state`; 404 if it is deleted first, 504 after `timeout` seconds. */
function waitFor(events: EventHub, rec: ContainerRec, state: string, timeout: number | undefined, req: Request): Promise<ContainerRec> {
  if (reached(rec, state)) return Promise.resolve(rec);
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (fn: () => void) => {
      unsubscribe();
      unclose();
      if (timer) clearTimeout(timer);
      req.off('close', onClose);
      fn();
    };
    const unsubscribe = events.subscribe((e) => {
      if (e.type !== 'container' || e.id !== rec.id) return;
      if (e.action === 'deleted') done(() => reject(notFound(`container ${rec.id} was deleted before it was ${state}`)));
      else if (reached(rec, state)) done(() => resolve(rec));
    });
    const unclose = events.onClose(() =>
      done(() => reject(new AgentError('TIMEOUT', `the agent is stopping: container ${rec.id} is still ${rec.state}; wait again once it is back`))),
    );
    const onClose = () => done(() => reject(new AgentError('TIMEOUT', 'the client went away')));
    req.on('close', onClose);
    if (timeout !== undefined) {
      timer = setTimeout(() => done(() => reject(new AgentError('TIMEOUT', `container ${rec.id} is still ${rec.state} after ${timeout} s (waited for ${state})`))), timeout * 1000);
    }
  });
}

/**
 * GET /events: the ring's events after `since` (all of them without it), then, with stream=true
 * (the default), every new one until `until` or until the client goes away. One JSON object per
 * line (application/x-ndjson), or server-sent events when the client accepts text/event-stream
 * (the SSE id is the sequence number, and Last-Event-ID resumes).
 */
function streamEvents(events: EventHub, req: Request, res: Response): void {
  const query = req.query as Record<string, unknown>;
  const sse = /text\/event-stream/.test(req.headers.accept ?? '');
  const lastId = req.headers['last-event-id'];
  const since = bound(query.since ?? (sse && typeof lastId === 'string' && /^\d+$/.test(lastId) ? lastId : undefined), 'since');
  const until = bound(query.until, 'until');
  const stream = query.stream === undefined ? true : boolParam(query.stream);
  const f: Filter = {
    types: query.type ? new Set(String(query.type).split(',')) : undefined,
    id: intParam(query.id),
    name: query.name as string | undefined,
  };
  for (const t of f.types ?? []) if (!['attach', 'mount', 'container', 'image'].includes(t)) throw invalid(`query.type: "${t}" is not attach, mount, container or image`);

  res.status(200);
  res.setHeader('content-type', sse ? 'text/event-stream' : 'application/x-ndjson');
  res.setHeader('cache-control', 'no-cache');
  res.setHeader('x-events-first-seq', String(events.firstSeq));
  res.setHeader('x-events-last-seq', String(events.lastSeq));
  res.flushHeaders();

  const send = (e: AgentEvent) => {
    const json = JSON.stringify(e);
    res.write(sse ? `id: ${e.seq}\nevent: ${e.type}\ndata: ${json}\n\n` : `${json}\n`);
  };
  const pastUntil = (e: AgentEvent) => !upTo(e, until);
  // Replay and subscribe in the same turn of the event loop: no event is missed or sent twice.
  for (const e of events.events()) {
    if (!after(e, since)) continue;
    if (pastUntil(e)) return void res.end();
    if (matches(e, f)) send(e);
  }
  const untilNow = until && ('seq' in until ? until.seq <= events.lastSeq : until.time <= Date.now());
  if (!stream || untilNow) return void res.end();

  let timer: NodeJS.Timeout | undefined;
  let ping: NodeJS.Timeout | undefined;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    unsubscribe();
    unclose();
    if (timer) clearTimeout(timer);
    if (ping) clearInterval(ping);
    res.end();
  };
  const unsubscribe = events.subscribe((e) => {
    if (pastUntil(e)) return finish();
    if (matches(e, f)) send(e);
    if (until && 'seq' in until && e.seq >= until.seq) return finish();
    if (res.writableLength > MAX_BUFFERED) {
      req.log?.warn({ buffered: res.writableLength }, 'events follower too slow: cut off (it may resume with since=)');
      finish();
    }
  });
  const unclose = events.onClose(finish);
  req.on('close', finish);
  if (until && 'time' in until) timer = setTimeout(finish, Math.max(0, until.time - Date.now()));
  if (sse) {
    ping = setInterval(() => res.write(': ping\n\n'), SSE_PING_MS);
    ping.unref();
  }
}
