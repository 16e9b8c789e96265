// GET /events and GET /container/wait against a real agent: a follower sees a nested stack being
// created, a container start and exit, the agent killed -9 and restarted (adopted objects, a
// container that died meanwhile), and the deletes: every event once, in order, none lost.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import type { AgentEvent } from '../../src/core/events.js';
import { TestAgent } from '../helpers/agent.js';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite, imageStack } from '../helpers/suite.js';

/** An event as the stream carries it (its type comes from the core, not written twice). */
type Ev = AgentEvent;

/** A client following /events: the events it got so far, and a way to wait for more. */
class Follower {
  readonly events: Ev[] = [];
  private waiters: Array<() => void> = [];
  private readonly ac = new AbortController();
  ended: Promise<void>;
  headers!: Headers;
  private ready!: Promise<void>;

  constructor(url: string, init: RequestInit = {}) {
    let onReady!: () => void;
    this.ready = new Promise((r) => (onReady = r));
    this.ended = (async () => {
      const res = await fetch(url, { ...init, signal: this.ac.signal });
      this.headers = res.headers;
      onReady();
      assert.equal(res.status, 200, await (res.status === 200 ? Promise.resolve('') : res.text()));
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line) this.events.push(JSON.parse(line));
        }
        for (const w of this.waiters.splice(0)) w();
      }
      for (const w of this.waiters.splice(0)) w();
    })();
    this.ended.catch(() => {});
  }

  async connected(): Promise<void> {
    await this.ready;
  }

  /** Wait until `pred` holds for the events received (or fail after 30 s with what came). */
  async until(pred: (evs: Ev[]) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!pred(this.events)) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; got:\n${this.events.map((e) => JSON.stringify(e)).join('\n')}`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), new Promise((r) => setTimeout(r, 200))]);
    }
  }

  close(): void {
    this.ac.abort();
  }
}

const brief = (e: Ev) => `${e.type} ${e.id} ${e.action}${e.state ? ` ${e.old_state ? `${e.old_state}→` : ''}${e.state}` : ''}${e.exit_code != null ? ` (${e.exit_code})` : ''}`;

function assertInOrder(evs: Ev[]): void {
  for (let i = 1; i < evs.length; i++) assert.ok(evs[i]!.seq > evs[i - 1]!.seq, `seq goes up: ${JSON.stringify(evs.slice(i - 1, i + 1))}`);
  assert.equal(new Set(evs.map((e) => e.seq)).size, evs.length, 'no event twice');
}

describe('GET /events and /container/wait', () => {
  const ctx = agentSuite();
  const followers: Follower[] = [];
  after(() => followers.forEach((f) => f.close()));
  const follow = (path: string, init?: RequestInit) => {
    const f = new Follower(ctx.agent.url + path, init);
    followers.push(f);
    return f;
  };

  it('a follower sees a nested stack, a start, an exit, a kill -9 and restart, and the deletes: each once, in order', async () => {
    const f1 = follow('/events');
    await f1.connected();
    const c = await ctx.agent.post('/container', {
      name: 'ev-a',
      command: '/bin/sh -c "exit 3"',
      mount: imageStack(ctx.image),
    });
    assert.equal(c.status, 201, c.text);
    const lower = c.body.mount.overlay.lower[0];
    const overlayId = c.body.mount.id;
    const mountId = lower.id;
    const attachId = lower.attach.attach.id;
    assert.equal((await ctx.agent.patch('/container?name=ev-a&state=running')).status, 200);
    // wait answers once it ended (dead: exit code 3), without polling.
    const w = await ctx.agent.get('/container/wait?name=ev-a&state=exited&timeout=60');
    assert.equal(w.status, 200, w.text);
    assert.equal(w.body.state, 'dead');
    assert.equal(w.body.exit_code, 3);

    const b = await ctx.agent.post('/container', { name: 'ev-b', command: '/bin/sleep 1000', state: 'running', mount: { id: overlayId } });
    assert.equal(b.status, 201, b.text);
    await f1.until((evs) => evs.some((e) => e.type === 'container' && e.id === b.body.id && e.action === 'created'), 'ev-b created');
    assert.deepEqual(f1.events.map(brief), [
      `attach ${attachId} created`,
      `mount ${mountId} created`,
      `mount ${overlayId} created`,
      `container ${c.body.id} created created`,
      `container ${c.body.id} state created→running`,
      `container ${c.body.id} state running→dead (3)`,
      `container ${b.body.id} created running`,
    ]);
    assert.equal(f1.events[0]!.kind, 'loopback');
    assert.equal(f1.events[3]!.name, 'ev-a');
    assertInOrder(f1.events);
    const lastSeen = f1.events.at(-1)!.seq;

    // kill -9; the running container dies while the agent is down.
    await ctx.agent.kill9();
    await f1.ended;
    process.kill(b.body.pid, 'SIGKILL');
    ctx.agent = await new TestAgent(ctx.runDir).start();
    const f2 = follow(`/events?since=${lastSeen}`);
    await f2.until((evs) => evs.some((e) => e.id === b.body.id && e.action === 'state'), 'the end of ev-b recorded');
    const adopted = f2.events.filter((e) => e.action === 'adopted').map(brief).sort();
    assert.deepEqual(adopted, [
      `attach ${attachId} adopted`,
      `container ${b.body.id} adopted running`,
      `container ${c.body.id} adopted dead (3)`,
      `mount ${mountId} adopted`,
      `mount ${overlayId} adopted`,
    ].sort());
    const end = f2.events.find((e) => e.id === b.body.id && e.type === 'container' && e.action === 'state')!;
    assert.equal(brief(end), `container ${b.body.id} state running→dead (137)`);
    assert.ok(f2.events[0]!.seq > lastSeen, 'numbers go on after the restart');

    // Delete everything (the stack goes with the last container that used it? no: the overlay is ev-a's).
    assert.equal((await ctx.agent.del(`/container?id=${b.body.id}`)).status, 200);
    assert.equal((await ctx.agent.del(`/container?id=${c.body.id}`)).status, 200);
    await f2.until((evs) => evs.filter((e) => e.action === 'deleted').length === 5, 'five deletes');
    assert.deepEqual(
      f2.events.filter((e) => e.action === 'deleted').map(brief).map((s) => s.replace(/ (created|running|dead|exited).*$/, '')),
      [`container ${b.body.id} deleted`, `container ${c.body.id} deleted`, `mount ${overlayId} deleted`, `mount ${mountId} deleted`, `attach ${attachId} deleted`],
    );
    assertInOrder(f2.events);

    // The whole story, replayed from the ring of the new agent: what it saw since its start.
    const replay = await ctx.agent.get('/events?stream=false');
    assert.deepEqual(replay.text.trim().split('\n').map((l) => JSON.parse(l)), f2.events);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('since/until by number and time, filters by type, id and name, stream=false; SSE with Last-Event-ID', async () => {
    const t0 = new Date().toISOString();
    const a = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: ctx.image, readonly: true } });
    assert.equal(a.status, 201, a.text);
    const m = await ctx.agent.post('/mount', { kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { id: a.body.id } } });
    assert.equal(m.status, 201, m.text);
    const all = (await ctx.agent.get(`/events?stream=false&since=${encodeURIComponent(t0)}`)).text.trim().split('\n').map((l) => JSON.parse(l) as Ev);
    assert.deepEqual(all.map(brief), [`attach ${a.body.id} created`, `mount ${m.body.id} created`]);
    const [ea, em] = all as [Ev, Ev];
    const lines = async (p: string) => {
      const r = await ctx.agent.get(p);
      assert.equal(r.status, 200, r.text);
      return r.text.trim() ? r.text.trim().split('\n').map((l) => (JSON.parse(l) as Ev).seq) : [];
    };
    assert.deepEqual(await lines(`/events?since=${ea.seq}&stream=false`), [em.seq]);
    assert.deepEqual(await lines(`/events?since=${ea.seq - 1}&until=${ea.seq}`), [ea.seq], 'until in the past ends the answer');
    assert.deepEqual(await lines(`/events?since=${ea.seq - 1}&type=mount&stream=false`), [em.seq]);
    assert.deepEqual(await lines(`/events?since=${ea.seq - 1}&type=attach&id=${a.body.id}&stream=false`), [ea.seq]);
    assert.deepEqual(await lines(`/events?since=${ea.seq - 1}&name=nobody&stream=false`), []);
    assert.equal((await ctx.agent.get('/events?since=yesterday')).status, 400);
    assert.equal((await ctx.agent.get('/events?type=volume')).status, 400);

    // A follower with a filter and an until in the future: it ends by itself at that number.
    const f = follow(`/events?type=mount&since=${em.seq}&until=${em.seq + 2}`);
    await f.connected();
    assert.equal(f.headers.get('x-events-last-seq'), String(em.seq));
    assert.equal((await ctx.agent.del(`/mount?id=${m.body.id}`)).status, 200); // em.seq+1
    assert.equal((await ctx.agent.del(`/attach?id=${a.body.id}`)).status, 200); // em.seq+2
    await f.ended;
    assert.deepEqual(f.events.map(brief), [`mount ${m.body.id} deleted`]);

    // SSE: id is the sequence number; Last-Event-ID resumes after it.
    const sse = await fetch(`${ctx.agent.url}/events?stream=false`, { headers: { accept: 'text/event-stream', 'last-event-id': String(ea.seq) } });
    assert.match(sse.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await sse.text();
    assert.match(text, new RegExp(`^id: ${em.seq}\nevent: mount\ndata: \\{.*"action":"created".*\\}\n\n`));
    assert.ok(!text.includes(`id: ${ea.seq}\n`));
  });

  it('wait: 504 after the timeout, 404 when the container is deleted first, at once when already there', async () => {
    const c = await ctx.agent.post('/container', { name: 'ev-w', command: '/bin/sleep 1000', stop_timeout: 1, mount: imageStack(ctx.image) });
    assert.equal(c.status, 201, c.text);
    assert.equal((await ctx.agent.get('/container/wait?name=ev-w&state=created')).body.state, 'created');
    // (a 504 is an answer here, not a fault: fetch it directly)
    const timedOut = await fetch(`${ctx.agent.url}/container/wait?name=ev-w&state=running&timeout=0`);
    assert.equal(timedOut.status, 504);
    assert.match(((await timedOut.json()) as { message: string }).message, /still created after 0 s/);
    const waiting = ctx.agent.get(`/container/wait?id=${c.body.id}&state=running`);
    assert.equal((await ctx.agent.patch(`/container?id=${c.body.id}&state=running`)).status, 200);
    assert.equal((await waiting).body.state, 'running');
    const gone = ctx.agent.get(`/container/wait?id=${c.body.id}&state=paused`);
    assert.equal((await ctx.agent.del(`/container?id=${c.body.id}&force=true`)).status, 200);
    const r = await gone;
    assert.equal(r.status, 404, r.text);
    assert.match(r.body.message, /deleted/);
    assert.equal((await ctx.agent.get('/container/wait?name=nobody')).status, 404);
  });

  it('what vanished while the agent was down is a vanished event (and what stood on it deleted)', async () => {
    const m = await ctx.agent.post('/mount', imageStack(ctx.image));
    assert.equal(m.status, 201, m.text);
    const lower = m.body.overlay.lower[0];
    const last = (await ctx.agent.get('/info')).body.events.last_seq;
    await ctx.agent.kill9();
    execFileSync('umount', [m.body.mountpoint]); // the overlay, by hand
    ctx.agent = await new TestAgent(ctx.runDir).start();
    const evs = (await ctx.agent.get(`/events?stream=false&since=${last}`)).text.trim().split('\n').map((l) => JSON.parse(l) as Ev);
    const v = evs.filter((e) => e.action === 'vanished').map(brief);
    assert.deepEqual(v, [`mount ${m.body.id} vanished`]);
    assertInOrder(evs);
    // What it defined goes with it: deleted after the vanished one.
    const at = evs.findIndex((e) => e.action === 'vanished');
    assert.deepEqual(evs.slice(at + 1).filter((e) => e.action === 'deleted').map(brief), [`mount ${lower.id} deleted`, `attach ${lower.attach.attach.id} deleted`]);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('a graceful restart continues the numbers without a gap; followers do not hold the stop', async () => {
    const f = follow(`/events?since=${(await ctx.agent.get('/info')).body.events.last_seq}`);
    await f.connected();
    const a = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: ctx.image, readonly: true } });
    assert.equal(a.status, 201, a.text);
    await f.until((evs) => evs.length === 1, 'the create');
    const last = f.events[0]!.seq;
    assert.equal(await ctx.agent.stop(), 0, 'SIGTERM ends the followers and exits 0');
    await f.ended;
    ctx.agent = await new TestAgent(ctx.runDir).start();
    const evs = (await ctx.agent.get(`/events?stream=false&since=${last}`)).text.trim().split('\n').map((l) => JSON.parse(l) as Ev);
    assert.deepEqual(evs.map(brief), [`attach ${a.body.id} adopted`]);
    assert.equal(evs[0]!.seq, last + 1);
    assert.equal((await ctx.agent.del(`/attach?id=${a.body.id}`)).status, 200);
  });
});
