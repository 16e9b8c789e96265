// A container cannot reach the agent: with the default namespaces (no `net`: the host's network),
// a process in a container that connects to the agent's TCP port is refused (nftables, by the
// container's cgroup), and the agent's unix socket is nowhere in its root. The same container
// still reaches another TCP service on the host's loopback, and the host still reaches the agent.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { groupName } from '../../src/sys/cgroups.js';
import { guardRuleset } from '../../src/sys/netguard.js';
import { TestAgent } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver, mountsUnder } from '../helpers/leaks.js';
import { unstamped } from '../helpers/logs.js';
import { imageStack } from '../helpers/suite.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a container cannot reach the agent', () => {
  let agent: TestAgent;
  let runDir: string;
  let image: string;
  let socket: string;
  let other: Server;
  let otherPort = 0;
  let table = '';

  before(async () => {
    image = busyboxImage();
    runDir = TestAgent.newRunDir();
    mkdirSync(join(runDir, 'sock'));
    socket = join(runDir, 'sock/agent.sock');
    table = groupName(runDir).replace(/-/g, '_');
    agent = await new TestAgent(runDir, ['--scheme', 'unix', '--socket-path', socket]).start();
    // Another service on the host's loopback: the container must still reach it (the guard is
    // about the agent, not the network).
    other = createServer((c) => c.end('other-service\n'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
    otherPort = (other.address() as { port: number }).port;
  });
  after(async () => {
    other?.close();
    await agent.stop();
    forceCleanup(runDir, dirname(image));
    try {
      execFileSync('nft', ['delete', 'table', 'inet', table], { stdio: 'ignore' });
    } catch {
      /* the agent removed it */
    }
  });

  /** Run `script` in a container on the busybox image, wait for its end, return its log. */
  async function inContainer(script: string): Promise<string> {
    const r = await agent.post('/imageapi/v1/container', { command: `/bin/sh -c "${script}"`, mount: imageStack(image), state: 'running' });
    assert.equal(r.status, 201, r.text);
    const id = r.body.id;
    for (let i = 0; i < 200; i++) {
      const s = (await agent.get(`/imageapi/v1/container?id=${id}`)).body[0].state;
      if (s === 'exited' || s === 'dead') break;
      await sleep(100);
    }
    const log = unstamped((await agent.get(`/container/log?id=${id}`)).text); // the output as written
    assert.equal((await agent.del(`/imageapi/v1/container?id=${id}&force=true`)).status, 200);
    return log;
  }

  it('the agent\'s TCP port is refused from inside (wget and nc), another host service is not, the socket is absent', async () => {
    const port = new URL(agent.url).port;
    const log = await inContainer(
      [
        `wget -q -O - http://127.0.0.1:${port}/attach 2>&1; echo wget-rc=$?`,
        `echo | nc -w 3 127.0.0.1 ${port} 2>&1; echo nc-rc=$?`,
        `nc -w 3 127.0.0.1 ${otherPort} </dev/null`,
        `test -e ${socket} && echo SOCKET-VISIBLE || echo socket-absent`,
        `ls /sock 2>/dev/null | grep -q agent.sock && echo SOCKET-LISTED || echo socket-not-listed`,
      ].join('; '),
    );
    // Refused by the kernel (a reset), not failed for another reason, and nothing was served.
    assert.match(log, /wget: can't connect to remote host \(127\.0\.0\.1\): Connection refused\s+wget-rc=1/, log);
    assert.match(log, /nc: can't connect to remote host \(127\.0\.0\.1\): Connection refused\s+nc-rc=1/, log);
    assert.doesNotMatch(log, /\[\]|"code"/, `the agent answered the container\n${log}`);
    assert.match(log, /other-service/, `the container shares the host's network: it reaches another loopback service\n${log}`);
    assert.match(log, /socket-absent/, log);
    assert.match(log, /socket-not-listed/, log);
    // The host still reaches the agent, by TCP and by the socket.
    assert.equal((await agent.get('/attach')).status, 200);
    const viaSocket = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      httpGet({ socketPath: socket, path: '/attach' }, (res) => {
        let body = '';
        res.on('data', (b: Buffer) => (body += b.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject);
    });
    assert.equal(viaSocket.status, 200, viaSocket.body);
    assert.ok(Array.isArray(JSON.parse(viaSocket.body)), viaSocket.body);
  });

  it('the guard follows the agent\'s group when it is made anew (last container gone, a new one started)', async () => {
    // The previous test's container was the last one: its group went with it. A new container
    // gets a new group (a new cgroup id): still refused.
    const port = new URL(agent.url).port;
    const log = await inContainer(`wget -q -O - http://127.0.0.1:${port}/attach 2>&1; echo wget-rc=$?`);
    assert.match(log, /Connection refused\s+wget-rc=1/, log);
    const rules = execFileSync('nft', ['list', 'table', 'inet', table], { encoding: 'utf8' });
    assert.match(rules, new RegExp(`tcp dport ${port} counter packets [1-9]`), rules);
    assert.deepEqual(mountsUnder(runDir), []);
    assert.deepEqual(loopsOver(image), []);
  });
});

describe('the guard\'s cost per container start (measured, not asserted)', () => {
  const N = 15;
  let image: string;
  const runDirs: string[] = [];
  before(() => {
    image = busyboxImage();
  });
  after(() => {
    for (const d of runDirs) {
      forceCleanup(d, dirname(image));
      try {
        execFileSync('nft', ['delete', 'table', 'inet', groupName(d).replace(/-/g, '_')], { stdio: 'ignore' });
      } catch {
        /* removed by the agent */
      }
    }
  });

  /** Median and mean ms of N sequential creates of a running container, on an agent with or without the guard. */
  async function measure(guard: boolean): Promise<{ median: number; mean: number; install: string }> {
    const runDir = TestAgent.newRunDir();
    runDirs.push(runDir);
    const cfg = join(runDir, 'agent.yaml');
    writeFileSync(cfg, `guard_containers: ${guard}\n`);
    const agent = await new TestAgent(runDir, ['--config', cfg]).start();
    try {
      const m = await agent.post('/imageapi/v1/mount', imageStack(image));
      assert.equal(m.status, 201, m.text);
      const ms: number[] = [];
      for (let i = 0; i < N; i++) {
        const t0 = process.hrtime.bigint();
        const r = await agent.post('/imageapi/v1/container', { command: '/bin/sleep 3600', mount: { id: m.body.id, kind: 'overlay' }, state: 'running', stop_timeout: 0 });
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        assert.equal(r.status, 201, r.text);
      }
      assert.equal((await agent.del(`/imageapi/v1/mount?id=${m.body.id}&force=true`)).status, 200);
      ms.sort((a, b) => a - b);
      const installs = [...agent.output.matchAll(/"ms":([\d.]+),"msg":"network guard installed/g)].map((x) => x[1]);
      return { median: ms[Math.floor(N / 2)]!, mean: ms.reduce((a, b) => a + b, 0) / N, install: installs.join(', ') || 'none' };
    } finally {
      await agent.stop();
    }
  }

  it(`container starts with and without the guard`, async (t) => {
    // In ABBA order, so that a drift of the machine's load weighs on both alike.
    const off = [await measure(false)];
    const on = [await measure(true), await measure(true)];
    off.push(await measure(false));
    const avg = (xs: Array<{ median: number }>) => (xs.reduce((a, x) => a + x.median, 0) / xs.length).toFixed(1);
    t.diagnostic(
      `netguard: start median ${avg(on)} ms with the guard, ${avg(off)} ms without (${N} starts x 2 rounds each); ` +
        `rule set installs (once per new parent group): ${on.map((x) => x.install).join(', ')} ms`,
    );
  });
});

describe('the guard\'s rule set for every kind of listen address', () => {
  it('wildcard, IPv4, IPv6 and v4-mapped listeners each get a rule nft accepts (checked, not applied)', async () => {
    const group = `imageapi-rulecheck-${process.pid}`;
    const dir = join('/sys/fs/cgroup/unified', group);
    const v2 = existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? dir : join('/sys/fs/cgroup', group);
    mkdirSync(v2);
    try {
      const text = guardRuleset('imageapi_rulecheck', group, [
        { address: '127.0.0.1', port: 8080 },
        { address: '0.0.0.0', port: 8081 },
        { address: '::', port: 8082 },
        { address: '::1', port: 8083 },
        { address: '::ffff:127.0.0.1', port: 8084 },
      ]);
      assert.match(text, /ip daddr 127\.0\.0\.1 tcp dport 8080 counter reject with tcp reset/);
      assert.match(text, /fib daddr type local tcp dport 8081/);
      assert.match(text, /meta nfproto ipv4 fib daddr type local tcp dport 8082/);
      assert.match(text, /ip6 daddr ::1 tcp dport 8083/);
      assert.match(text, /ip daddr 127\.0\.0\.1 tcp dport 8084/);
      // nft -c: parse and check against the kernel without changing anything.
      execFileSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec nft -c -f -'], { input: text });
    } finally {
      rmdirSync(v2);
    }
  });
});
