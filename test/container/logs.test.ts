// Container logs that cannot fill the disk: the native helper's log writer caps each file and
// rotates (keeping log_max_files), stamps output lines with their time and stream (the default;
// `log_timestamps: false` and containers older agents recorded without it write them as they
// come), and GET /container/log filters them (stream=, since=); the agent's and init's lines keep
// their format. Per container, and as the agent's defaults (config file).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TestAgent } from '../helpers/agent.js';
import { forceCleanup } from '../helpers/leaks.js';
import { agentSuite, imageStack } from '../helpers/suite.js';

const MB = 1024 * 1024;
const AGENT_LINE = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d container\(\d+\): /;
const INIT_LINE = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d init: /;
const OUT_LINE = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} (stdout|stderr): /;

describe('container logs: size cap, rotation, stamps, filters', () => {
  const ctx = agentSuite();

  const runToEnd = async (spec: Record<string, unknown>) => {
    const c = await ctx.agent.post('/container', { state: 'running', mount: imageStack(ctx.image), ...spec });
    assert.equal(c.status, 201, c.text);
    const w = await ctx.agent.get(`/container/wait?id=${c.body.id}&state=exited&timeout=300`);
    assert.equal(w.status, 200, w.text);
    return w.body;
  };

  it('50 MB of output into a 10 MB cap with 3 files: at most 3 files, each within the cap, the end kept', async () => {
    const c = await runToEnd({
      name: 'logs-big',
      command: ['/bin/sh', '-c', 'yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -c 52428800; echo the-end >&2'],
      log_max_size: 10 * MB,
      log_max_files: 3,
    });
    assert.equal(c.state, 'exited', JSON.stringify(c));
    assert.deepEqual([c.log_max_size, c.log_max_files, c.log_timestamps], [10 * MB, 3, true]);
    const dir = dirname(c.logfile);
    const mine = readdirSync(dir).filter((f) => f.startsWith(basename(c.logfile))).sort();
    assert.deepEqual(mine, [basename(c.logfile), `${basename(c.logfile)}.1`, `${basename(c.logfile)}.2`], 'the current file and two rotated ones');
    for (const f of mine) assert.ok(statSync(join(dir, f)).size <= 10 * MB, `${f} within the cap: ${statSync(join(dir, f)).size}`);
    // The newest file ends with the output's end and the agent's line, in their formats.
    // (the agent writes its line once it has recorded the end: right after the wait answers)
    for (let i = 0; i < 200 && !/container exited/.test(readFileSync(c.logfile, 'utf8').slice(-200)); i++) await new Promise((r) => setTimeout(r, 50));
    const lines = readFileSync(c.logfile, 'utf8').trimEnd().split('\n');
    assert.match(lines.at(-1)!, AGENT_LINE);
    assert.match(lines.at(-1)!, /container exited \(exit code 0\)$/);
    assert.ok(lines.some((l) => OUT_LINE.test(l) && l.endsWith('stderr: the-end')));
    for (const l of lines.slice(0, -1)) assert.match(l, new RegExp(`${OUT_LINE.source}|${AGENT_LINE.source}|${INIT_LINE.source}`));
    // Filters over the API.
    const err = await ctx.agent.get(`/container/log?id=${c.id}&stream=stderr`);
    assert.equal(err.status, 200);
    assert.match(err.text, /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} stderr: the-end\n$/);
    const out = await ctx.agent.get(`/container/log?id=${c.id}&stream=stdout&tail=2`);
    assert.equal(out.text.split('\n').filter(Boolean).length, 2);
    for (const l of out.text.trim().split('\n')) assert.match(l, /stdout: 0123456789/);
    const agentLines = await ctx.agent.get(`/container/log?id=${c.id}&stream=agent`);
    for (const l of agentLines.text.trim().split('\n')) assert.match(l, AGENT_LINE);
    const future = await ctx.agent.get(`/container/log?id=${c.id}&since=${encodeURIComponent(new Date(Date.now() + 3600_000).toISOString())}`);
    assert.equal(future.text, '');
    const past = await ctx.agent.get(`/container/log?id=${c.id}&stream=stderr&since=${Math.floor(Date.now() / 1000) - 3600}`);
    assert.match(past.text, /stderr: the-end/);
    assert.equal((await ctx.agent.get(`/container/log?id=${c.id}&since=soon`)).status, 400);
    assert.equal((await ctx.agent.del(`/container?id=${c.id}`)).status, 200);
  });

  it('follow=true ends after the container, with its last output and the agent\'s end line; stream= while following', async () => {
    const made = await ctx.agent.post('/container', {
      state: 'running',
      mount: imageStack(ctx.image),
      command: ['/bin/sh', '-c', 'echo first; sleep 0.6; echo last-out; echo last-err >&2'],
    });
    assert.equal(made.status, 201, made.text);
    const id = made.body.id as number;
    const [all, out] = await Promise.all([
      ctx.agent.get(`/container/log?id=${id}&follow=true`),
      ctx.agent.get(`/container/log?id=${id}&follow=true&stream=stdout`),
    ]);
    assert.equal(all.status, 200);
    const lines = all.text.trimEnd().split('\n');
    for (const w of ['first', 'last-out', 'last-err']) assert.ok(lines.some((l) => OUT_LINE.test(l) && l.endsWith(w)), `"${w}" in:\n${all.text}`);
    assert.match(lines.at(-1)!, /container\(\d+\): container exited \(exit code 0\)$/, 'the last line is the agent\'s end line');
    assert.deepEqual(out.text.trimEnd().split('\n').map((l) => l.replace(OUT_LINE, '')), ['first', 'last-out']);
    assert.equal((await ctx.agent.del(`/container?id=${id}`)).status, 200);
  });

  it('by default output lines carry their time and stream: stream= and since= pick them', async () => {
    // The command writes its early lines, waits for /go (the test makes it once it has seen them
    // stamped in the file), then its late ones: every early stamp is before `since`, every late one after.
    const made = await ctx.agent.post('/container', {
      name: 'logs-default',
      state: 'running',
      mount: imageStack(ctx.image),
      command: ['/bin/sh', '-c', 'echo early-out; echo early-err >&2; while [ ! -e /go ]; do sleep 0.05; done; echo late-out; echo late-err >&2'],
    });
    assert.equal(made.status, 201, made.text);
    assert.equal(made.body.log_timestamps, true, 'the default');
    const id = made.body.id;
    const seen = () => readFileSync(made.body.logfile, 'utf8');
    for (let i = 0; i < 600 && !(/stdout: early-out\n/.test(seen()) && /stderr: early-err\n/.test(seen())); i++) await new Promise((r) => setTimeout(r, 50));
    const t = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    const since = new Date(t + 2).toISOString();
    writeFileSync(join(made.body.mount.mountpoint, 'go'), '');
    const c = (await ctx.agent.get(`/container/wait?id=${id}&state=exited&timeout=300`)).body;
    assert.equal(c.state, 'exited', JSON.stringify(c));
    const text = readFileSync(c.logfile, 'utf8');
    for (const w of ['stdout: early-out', 'stderr: early-err', 'stdout: late-out', 'stderr: late-err']) {
      assert.ok(text.split('\n').some((l) => OUT_LINE.test(l) && l.endsWith(w)), `"${w}", stamped, in:\n${text}`);
    }
    assert.doesNotMatch(text, /^(early|late)-(out|err)$/m, 'no bare output line');
    const out = await ctx.agent.get(`/container/log?id=${id}&stream=stdout`);
    assert.equal(out.status, 200, out.text);
    assert.match(out.text, /^\S+ \S+ stdout: early-out\n\S+ \S+ stdout: late-out\n$/);
    const lateOut = await ctx.agent.get(`/container/log?id=${id}&stream=stdout&since=${encodeURIComponent(since)}`);
    assert.equal(lateOut.status, 200, lateOut.text);
    assert.match(lateOut.text, /^\S+ \S+ stdout: late-out\n$/, `stream=stdout&since=${since}\n${text}`);
    const lateErr = await ctx.agent.get(`/container/log?id=${id}&stream=stderr&since=${(t + 2) / 1000}`);
    assert.match(lateErr.text, /^\S+ \S+ stderr: late-err\n$/, `stream=stderr&since= (unix seconds)\n${text}`);
    const all = await ctx.agent.get(`/container/log?id=${id}&since=${encodeURIComponent(since)}`);
    assert.doesNotMatch(all.text, /early-/, 'no stream: every line after since, none before');
    assert.match(all.text, /late-out/);
    assert.equal((await ctx.agent.del(`/container?id=${id}`)).status, 200);
  });

  it('a container an older agent recorded (no log_timestamps in its record) keeps its output as it comes after a restart', async () => {
    const c = await ctx.agent.post('/container', { name: 'logs-old', state: 'created', mount: imageStack(ctx.image), command: ['/bin/sh', '-c', 'echo old-out'] });
    assert.equal(c.status, 201, c.text);
    assert.equal(await ctx.agent.stop(), 0);
    const file = join(ctx.runDir, 'state.json');
    const state = JSON.parse(readFileSync(file, 'utf8'));
    const rec = state.container.find((r: { id: number }) => r.id === c.body.id);
    assert.equal(rec.log_timestamps, true);
    delete rec.log_timestamps;
    writeFileSync(file, JSON.stringify(state));
    ctx.agent = await new TestAgent(ctx.runDir).start();
    assert.equal((await ctx.agent.get(`/container?id=${c.body.id}`)).body[0].log_timestamps, false);
    assert.equal((await ctx.agent.patch(`/container?id=${c.body.id}&state=running`)).status, 200);
    const w = await ctx.agent.get(`/container/wait?id=${c.body.id}&state=exited&timeout=300`);
    assert.equal(w.body.state, 'exited', w.text);
    const text = readFileSync(w.body.logfile, 'utf8');
    assert.match(text, /^old-out$/m, text);
    assert.doesNotMatch(text, /stdout: /, text);
    assert.equal((await ctx.agent.del(`/container?id=${c.body.id}`)).status, 200);
  });

  it('with log_timestamps: false the output is written as it comes, next to init: and agent lines', async () => {
    const c = await runToEnd({ name: 'logs-plain', log_timestamps: false, command: ['/bin/sh', '-c', 'echo plain-out; echo plain-err >&2'] });
    assert.equal(c.log_timestamps, false);
    assert.equal(c.log_max_size, 64 * MB, 'the agent default');
    const text = readFileSync(c.logfile, 'utf8');
    assert.match(text, /^plain-out$/m);
    assert.match(text, /^plain-err$/m);
    assert.match(text, /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d init: executing/m);
    assert.match(text, /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d container\(\d+\): container created$/m);
    assert.equal((await ctx.agent.get(`/container/log?id=${c.id}&stream=init`)).text.split('\n').filter(Boolean).every((l) => INIT_LINE.test(l)), true);
    assert.equal((await ctx.agent.del(`/container?id=${c.id}`)).status, 200);
  });

  describe('the agent-wide defaults from the config file', () => {
    let agent: TestAgent | undefined;
    const runDir = TestAgent.newRunDir();
    after(async () => {
      await agent?.stop();
      forceCleanup(runDir, dirname(ctx.image));
    });

    it('container_log_max_size and container_log_max_files apply to containers that do not set them', async () => {
      const cfg = join(runDir, '..', `${basename(runDir)}.yaml`);
      writeFileSync(cfg, 'container_log_max_size: 64K\ncontainer_log_max_files: 2\n');
      agent = await new TestAgent(runDir, ['--config', cfg]).start();
      const c = await agent.post('/container', {
        state: 'running',
        command: ['/bin/sh', '-c', 'yes abcdefghijklmnopqrstuvwxyz | head -c 1000000'],
        mount: imageStack(ctx.image),
      });
      assert.equal(c.status, 201, c.text);
      const w = await agent.get(`/container/wait?id=${c.body.id}&timeout=120`);
      assert.equal(w.body.state, 'exited');
      assert.deepEqual([w.body.log_max_size, w.body.log_max_files], [64 * 1024, 2]);
      assert.ok(existsSync(`${w.body.logfile}.1`) && !existsSync(`${w.body.logfile}.2`));
      assert.ok(statSync(w.body.logfile).size <= 64 * 1024 && statSync(`${w.body.logfile}.1`).size <= 64 * 1024);
      assert.equal((await agent.del(`/container?id=${c.body.id}`)).status, 200);
    });
  });
});
