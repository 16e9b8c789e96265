// GET /metrics: Prometheus text format (prom-client), on a registry of this app's own: objects by
// kind and state (read from the store when scraped), requests by route and status with latency
// histograms, container starts and exits, attach/mount/start durations, failures by kind, events,
// and the process metrics. prom-client is loaded by the first request or event (not at start: it
// is ~0.05–0.1 s of loading); what happens until it is there is counted once it is.
import type { NextFunction, Request, Response } from 'express';
import type { Registry } from 'prom-client';
import type { AgentEvent, EventHub } from '../core/events.js';
import type { Store } from '../store/store.js';

export interface Metrics {
  /** The registry, prom-client loaded if it was not yet. */
  registry(): Promise<Registry>;
  /** Count and time each request (by method, route template and status). */
  middleware(req: Request, res: Response, next: NextFunction): void;
}

interface Recorders {
  registry: Registry;
  request(labels: { method: string; route: string; status: string }, seconds: number): void;
  event(e: AgentEvent): void;
  measure(m: { op: string; kind: string; seconds: number }): void;
  failure(f: { op: string; kind: string }): void;
}

/** The route template a request matched (`/container/:id`), or `unmatched` (never the raw URL: labels stay few). */
export function routeOf(req: Request): string {
  const path = (req as { route?: { path?: unknown } }).route?.path;
  return typeof path === 'string' ? path : 'unmatched';
}

export function createMetrics(store: Store, events: EventHub): Metrics {
  let ready: Recorders | undefined;
  let loading: Promise<Recorders> | undefined;
  const early: Array<(r: Recorders) => void> = [];
  const load = () =>
    (loading ??= import('prom-client').then((prom) => {
      ready = recorders(prom, store, events);
      for (const f of early.splice(0)) f(ready);
      return ready;
    }));
  /** Record now, or once prom-client is loaded (the first call starts loading it). */
  const note = (f: (r: Recorders) => void) => {
    if (ready) return f(ready);
    early.push(f);
    void load();
  };
  events.subscribe((e) => note((r) => r.event(e)));
  events.onMeasure((m) => note((r) => r.measure(m)));
  events.onFailure((f) => note((r) => r.failure(f)));

  return {
    registry: async () => (await load()).registry,
    middleware(req, res, next) {
      const t0 = process.hrtime.bigint();
      res.on('finish', () => {
        const labels = { method: req.method, route: routeOf(req), status: String(res.statusCode) };
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        note((r) => r.request(labels, seconds));
      });
      next();
    },
  };
}

function recorders(prom: typeof import('prom-client'), store: Store, events: EventHub): Recorders {
  const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = prom;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'imageapi_' });

  new Gauge({
    name: 'imageapi_objects',
    help: 'Objects the agent tracks, by type, kind (attachments, mounts; an image\'s format) and state (containers, images)',
    labelNames: ['type', 'kind', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const a of store.list('attach')) this.inc({ type: 'attach', kind: a.kind, state: '' });
      for (const m of store.list('mount')) this.inc({ type: 'mount', kind: m.kind, state: '' });
      for (const c of store.list('container')) this.inc({ type: 'container', kind: '', state: c.state });
      for (const i of store.list('image')) this.inc({ type: 'image', kind: i.format ?? '', state: i.state });
    },
  });
  const requests = new Counter({
    name: 'imageapi_http_requests_total',
    help: 'HTTP requests answered, by method, route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'imageapi_http_request_duration_seconds',
    help: 'Time from the request to the end of its answer, by method, route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const starts = new Counter({ name: 'imageapi_container_starts_total', help: 'Container starts attempted', registers: [registry] });
  const exits = new Counter({
    name: 'imageapi_container_exits_total',
    help: 'Container ends, by the state they ended in (exited, dead)',
    labelNames: ['state'],
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'imageapi_operation_duration_seconds',
    help: 'Kernel work of one object: attach, mount (by kind), container_start',
    labelNames: ['op', 'kind'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'imageapi_failures_total',
    help: 'Failed operations, by operation (create, container_start) and error kind',
    labelNames: ['op', 'kind'],
    registers: [registry],
  });
  const eventCount = new Counter({
    name: 'imageapi_events_total',
    help: 'Events published, by object type and action',
    labelNames: ['type', 'action'],
    registers: [registry],
  });
  new Gauge({
    name: 'imageapi_event_subscribers',
    help: 'Listeners of the event hub now: followers of /events, waiters of /container/wait, and the metrics themselves',
    registers: [registry],
    collect() {
      this.set(events.subscribers);
    },
  });

  return {
    registry,
    request(labels, seconds) {
      requests.inc(labels);
      latency.observe(labels, seconds);
    },
    event(e) {
      eventCount.inc({ type: e.type, action: e.action });
      if (e.type === 'container' && e.action === 'state' && (e.state === 'exited' || e.state === 'dead')) exits.inc({ state: e.state });
    },
    measure(m) {
      durations.observe({ op: m.op, kind: m.kind }, m.seconds);
      if (m.op === 'container_start') starts.inc();
    },
    failure(f) {
      failures.inc({ op: f.op, kind: f.kind });
    },
  };
}
