// What an operator reaches for first: /_ping, /healthz, /version, /info, /metrics (parsed by a
// strict Prometheus text-format parser, its counters seen moving), a request line per request with
// X-Request-Id honoured and returned, lifecycle events in the agent's log, and sd_notify readiness
// (READY=1 only once reconciled and listening, STOPPING=1 on SIGTERM) through a NOTIFY_SOCKET
// listener in the test: the host's PID 1 is not systemd, so no real systemd is involved here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, TestAgent } from '../helpers/agent.js';
import { agentSuite, imageStack } from '../helpers/suite.js';

// ------------------------------------------------------------------ a strict text-format parser

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

/** Prometheus text exposition format 0.0.4, strictly: anything it does not know is an error. */
export function parseProm(text: string): Map<string, Family> {
  const fams = new Map<string, Family>();
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const familyOf = (sample: string) => {
    if (fams.has(sample)) return fams.get(sample)!;
    for (const suf of ['_bucket', '_sum', '_count', '_total', '_created']) {
      if (sample.endsWith(suf) && fams.has(sample.slice(0, -suf.length))) return fams.get(sample.slice(0, -suf.length))!;
    }
    return undefined;
  };
  for (const [i, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === '') continue;
    let m;
    if ((m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line))) {
      const [, what, name, rest] = m as unknown as [string, string, string, string];
      assert.match(name, NAME, where);
      const f = fams.get(name) ?? { name, type: 'untyped', help: '', samples: [] };
      if (what === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), `${where}: type`);
        assert.equal(f.samples.length, 0, `${where}: TYPE after samples`);
        f.type = rest;
      } else f.help = rest;
      fams.set(name, f);
      continue;
    }
    assert.ok(!line.startsWith('#'), `${where}: unknown comment`);
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    assert.ok(m, `${where}: not a sample`);
    const [, name, , body = '', raw] = m as unknown as [string, string, string, string | undefined, string];
    const labels: Record<string, string> = {};
    let rest = body;
    while (rest.length) {
      const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/.exec(rest);
      assert.ok(lm, `${where}: bad labels at ${JSON.stringify(rest)}`);
      assert.ok(!(lm[1]! in labels), `${where}: label twice`);
      labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
      rest = rest.slice(lm[0].length);
    }
    assert.match(raw, /^(NaN|[+-]Inf|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$/, `${where}: value`);
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    const fam = familyOf(name);
    assert.ok(fam, `${where}: sample without a TYPE`);
    fam.samples.push({ name, labels, value });
  }
  // Histograms: cumulative buckets ending in +Inf, equal to _count.
  for (const f of fams.values()) {
    if (f.type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of f.samples.filter((x) => x.name === `${f.name}_bucket`)) {
      const { le, ...rest } = s.labels;
      assert.ok(le !== undefined, `${f.name}: bucket without le`);
      const k = JSON.stringify(rest);
      series.set(k, [...(series.get(k) ?? []), s]);
    }
    for (const [k, buckets] of series) {
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${f.name}${k}: buckets cumulative`);
      assert.equal(buckets.at(-1)!.labels.le, '+Inf', `${f.name}${k}: last bucket +Inf`);
      const count = f.samples.find((s) => s.name === `${f.name}_count` && JSON.stringify(s.labels) === k);
      assert.equal(count?.value, buckets.at(-1)!.value, `${f.name}${k}: _count equals the +Inf bucket`);
    }
  }
  return fams;
}

const value = (fams: Map<string, Family>, name: string, labels: Record<string, string> = {}) => {
  const fam = [...fams.values()].find((f) => f.samples.some((s) => s.name === name));
  const s = fam?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value ?? 0;
};

describe('health, identity, metrics and request logs', () => {
  const ctx = agentSuite();
  const metrics = async () => {
    const r = await ctx.agent.get('/metrics');
    assert.equal(r.status, 200);
    return parseProm(r.text);
  };

  it('/_ping, /healthz, /version, /info (with the prefix too)', async () => {
    for (const p of ['/_ping', '/healthz', '/imageapi/v1/_ping']) {
      const r = await ctx.agent.get(p);
      assert.equal(r.status, 200);
      assert.equal(r.text, 'OK');
    }
    const v = (await ctx.agent.get('/version')).body;
    assert.match(v.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(v.api_versions, ['0.1', '0.2']);
    assert.equal(typeof v.features.krbd, 'boolean');
    assert.equal(v.features.overlay, true);
    assert.ok(['v1', 'v2', 'hybrid'].includes(v.features.cgroup));
    assert.ok(v.features.namespaces.includes('mnt') && v.features.namespaces.includes('pid'));
    const c = await ctx.agent.post('/container', { name: 'ops-a', command: '/bin/true', mount: imageStack(ctx.image) });
    assert.equal(c.status, 201, c.text);
    const info = (await ctx.agent.get('/info')).body;
    assert.equal(info.run_dir, ctx.runDir);
    assert.deepEqual([info.attachments, info.mounts, info.containers], [1, 2, 1]);
    assert.deepEqual(info.containers_by_state, { created: 1 });
    assert.equal(info.pid, ctx.agent.proc.pid);
    assert.equal((await ctx.agent.del(`/container?id=${c.body.id}`)).status, 200);
  });

  it('/metrics parses strictly and its counters move', async () => {
    const m0 = await metrics();
    for (const n of ['imageapi_http_requests_total', 'imageapi_http_request_duration_seconds', 'imageapi_objects', 'imageapi_container_starts_total',
      'imageapi_container_exits_total', 'imageapi_operation_duration_seconds', 'imageapi_failures_total', 'imageapi_process_cpu_seconds_total']) {
      assert.ok(m0.has(n) || [...m0.values()].some((f) => f.name === n), `family ${n}`);
    }
    const pings = value(m0, 'imageapi_http_requests_total', { route: '/_ping', status: '200' });
    for (let i = 0; i < 3; i++) await ctx.agent.get('/_ping');
    await ctx.agent.get('/container?id=999'); // a 404
    const c = await ctx.agent.post('/container', { name: 'ops-m', command: '/bin/sh -c "exit 2"', state: 'running', mount: imageStack(ctx.image) });
    assert.equal(c.status, 201, c.text);
    assert.equal((await ctx.agent.get(`/container/wait?id=${c.body.id}&timeout=60`)).body.state, 'dead');
    const bad = await ctx.agent.post('/container', { command: '/no/such/thing', mount: imageStack(ctx.image) });
    assert.equal(bad.status, 400);
    const m1 = await metrics();
    assert.equal(value(m1, 'imageapi_http_requests_total', { route: '/_ping', status: '200' }), pings + 3);
    assert.equal(value(m1, 'imageapi_http_requests_total', { route: '/container', status: '404', method: 'GET' }) - value(m0, 'imageapi_http_requests_total', { route: '/container', status: '404', method: 'GET' }), 1);
    assert.ok(value(m1, 'imageapi_http_request_duration_seconds_count', { route: '/_ping', status: '200' }) >= pings + 3);
    assert.equal(value(m1, 'imageapi_container_starts_total') - value(m0, 'imageapi_container_starts_total'), 1);
    assert.equal(value(m1, 'imageapi_container_exits_total', { state: 'dead' }) - value(m0, 'imageapi_container_exits_total', { state: 'dead' }), 1);
    assert.equal(value(m1, 'imageapi_objects', { type: 'container', state: 'dead' }), 1);
    assert.equal(value(m1, 'imageapi_objects', { type: 'attach', kind: 'loopback' }), 1);
    assert.equal(value(m1, 'imageapi_objects', { type: 'mount', kind: 'overlay' }), 1);
    assert.ok(value(m1, 'imageapi_operation_duration_seconds_count', { op: 'mount', kind: 'squashfs' }) + value(m1, 'imageapi_operation_duration_seconds_count', { op: 'mount', kind: 'attach' }) >= 1);
    assert.ok(value(m1, 'imageapi_operation_duration_seconds_count', { op: 'attach', kind: 'loopback' }) >= 2);
    assert.equal(value(m1, 'imageapi_failures_total', { op: 'create', kind: 'INVALID' }) - value(m0, 'imageapi_failures_total', { op: 'create', kind: 'INVALID' }), 1);
    assert.equal((await ctx.agent.del(`/container?id=${c.body.id}`)).status, 200);
    assert.equal(value(await metrics(), 'imageapi_objects', { type: 'container', state: 'dead' }), 0);
  });

  it('the parser is strict (it can fail)', () => {
    assert.throws(() => parseProm('foo 1\n'), /without a TYPE/);
    assert.throws(() => parseProm('# TYPE foo counter\nfoo{a="1",a="2"} 1\n'), /label twice/);
    assert.throws(() => parseProm('# TYPE foo counter\nfoo one\n'), /value/);
  });

  it('one request line at info with method, route, status, duration and X-Request-Id; lifecycle events in the log', async () => {
    const given = await fetch(`${ctx.agent.url}/container?state=running`, { headers: { 'x-request-id': 'op-7f3a' } });
    assert.equal(given.headers.get('x-request-id'), 'op-7f3a');
    await given.text();
    const made = await fetch(`${ctx.agent.url}/_ping`, { headers: { 'x-request-id': 'bad id with spaces' } });
    const id = made.headers.get('x-request-id')!;
    assert.match(id, /^[0-9a-f-]{36}$/, 'a client id that is not a token is replaced');
    await made.text();
    const a = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: ctx.image, readonly: true } });
    assert.equal((await ctx.agent.del(`/attach?id=${a.body.id}`)).status, 200);
    await new Promise((r) => setTimeout(r, 200)); // the agent's stdout pipe
    const lines = ctx.agent.output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const line = lines.find((l) => l.req_id === 'op-7f3a' && l.msg === 'request');
    assert.ok(line, 'a request line with the client id');
    assert.equal(line.level, 30);
    assert.deepEqual([line.method, line.route, line.status, line.url], ['GET', '/container', 200, '/container?state=running']);
    assert.equal(typeof line.ms, 'number');
    assert.ok(lines.some((l) => l.req_id === id && l.route === '/_ping'));
    const ev = lines.filter((l) => l.event?.type === 'attach' && l.event.id === a.body.id).map((l) => [l.level, l.event.action]);
    assert.deepEqual(ev, [[30, 'created'], [30, 'deleted']]);
  });
});

// ------------------------------------------------------------------ sd_notify

/** A free TCP port on 127.0.0.1 (listen on 0, close). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

// The listener (python: node has no unix datagram sockets): on each datagram it prints the
// message and, on READY=1, what the agent answers at that very moment (it must already listen and
// have reconciled).
const LISTENER = `
import socket, sys, json, urllib.request
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    msg = s.recv(65536).decode()
    out = {"msg": msg}
    if "READY=1" in msg.split("\\n"):
        try:
            out["info"] = json.loads(urllib.request.urlopen("http://127.0.0.1:%s/info" % sys.argv[2], timeout=5).read())
        except Exception as e:
            out["error"] = str(e)
    print(json.dumps(out), flush=True)
    if "STOPPING=1" in msg.split("\\n"):
        break
`;

describe('sd_notify (Type=notify), with a NOTIFY_SOCKET listener in the test (no real systemd)', () => {
  const ctx = agentSuite();

  it('READY=1 only once reconciled and listening; STOPPING=1 on SIGTERM, then exit 0', async () => {
    // Something to reconcile: an attachment left by the previous run.
    const a = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: ctx.image, readonly: true } });
    assert.equal(a.status, 201, a.text);
    assert.equal(await ctx.agent.stop(), 0);

    const sock = join(tmpdir(), `imageapi-notify-${process.pid}.sock`);
    const port = await freePort();
    const listener = spawn('python3', ['-c', LISTENER, sock, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const got: any[] = [];
    let onLine: () => void = () => {};
    let buf = '';
    listener.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        got.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
      onLine();
    });
    const until = async (pred: () => boolean, what: string) => {
      const deadline = Date.now() + 30_000;
      while (!pred()) {
        if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(got)}`);
        await new Promise<void>((r) => {
          onLine = r;
          setTimeout(r, 200);
        });
      }
    };
    try {
      await until(() => got.length > 0, 'the listener');
      const agent = spawn(process.execPath, [join(ROOT, 'dist/src/main.js'), '--scheme', 'http', '--port', String(port), '--run-dir', ctx.runDir], {
        env: { ...process.env, NOTIFY_SOCKET: sock, IMAGEAPI_VALIDATE_RESPONSES: '1' },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      const exited = new Promise<number | null>((r) => agent.once('exit', (code) => r(code)));
      await until(() => got.some((g) => g.msg?.includes('READY=1')), 'READY=1');
      const ready = got.find((g) => g.msg?.includes('READY=1'))!;
      assert.equal(ready.error, undefined, 'the agent answered at READY time');
      assert.equal(ready.info.attachments, 1, 'reconciled before READY');
      assert.match(ready.msg, new RegExp(`MAINPID=${agent.pid}`));
      assert.match(ready.msg, /STATUS=serving http:\/\/127\.0\.0\.1:/);
      assert.ok(!got.some((g) => g.msg?.includes('STOPPING=1')));
      agent.kill('SIGTERM');
      await until(() => got.some((g) => g.msg?.includes('STOPPING=1')), 'STOPPING=1');
      assert.equal(await exited, 0);
      assert.equal(got.filter((g) => g.msg?.includes('READY=1')).length, 1, 'READY=1 once');
    } finally {
      listener.kill();
      const { rmSync } = await import('node:fs');
      rmSync(sock, { force: true });
    }
    // Back to a normal agent, so the suite's teardown deletes what is left.
    ctx.agent = await new TestAgent(ctx.runDir).start();
    assert.equal((await ctx.agent.del(`/attach?id=${a.body.id}`)).status, 200);
  });
});
