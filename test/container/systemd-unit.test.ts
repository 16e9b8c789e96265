// The agent's unit file under a real systemd: a Debian bookworm systemd (the image of
// test/fixtures/systemd-image.sh, cached under /var/cache/imageapi-test/) boots as PID 1 of a
// container the agent under test starts; this checkout (read-only, at /opt/imageapi) and the host's
// node (read-only, as /usr/local/bin/node) are bind-mounted into it, `imageapi-server` is linked
// onto its PATH as `npm install -g` would, and contrib/install-systemd.sh installs the unit as the
// README says. Then, through systemctl inside: the unit is `activating` while the agent already
// serves and READY=1 is on its way, `active` once systemd has it; READY=1 comes after the state is
// reconciled and every listener is up (a restart with a running container: adopted before READY,
// in the journal's order); `systemctl restart` and `systemctl stop` are a SIGTERM, the agent says
// STOPPING=1 and exits 0, and the container the agent started keeps running across the restart
// (KillMode=process) and is adopted with the same id and PID.
//
// The inner agent differs from a node's only where the container cannot offer what the node has,
// through a drop-in (as an operator would add one): `guard_containers: false`, since the image has
// no nft (the guard has its own tests on the host); its container runs on a bind mount of a busybox
// tree, since the container's /dev has no loop devices. It listens on 127.0.0.1:8080 in the
// container's own network namespace and on /var/run/imageapi.sock, which the test reaches through
// /proc/PID/root. It has cgroup2 only (the container's delegated hierarchy, no controllers).
//
// How the test sees `activating` for certain: test/fixtures/notify-gate/systemd-notify, first on
// the unit's PATH (the drop-in), holds a READY=1 while /run/imageapi-test/hold exists, then passes
// it on unchanged to the real systemd-notify. The agent waits for systemd-notify (up to 5 s), so
// the test looks quickly and lets it go.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ROOT, TestAgent } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver, mountsUnder } from '../helpers/leaks.js';
import { groupName } from '../../src/sys/cgroups.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BUILD_TIMEOUT_MS = 5 * 60_000;
const WAIT_MS = 30_000;
const CGROUP_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
const PATH_IN = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const GATE = '/run/imageapi-test';
const UNIT = 'imageapi.service';

interface Reply {
  status: number;
  body: any;
  text: string;
}

/** The containers' cgroup trees of an agent with this run-dir (its own group excluded), deepest first. */
function cgroupTree(runDir: string): string[] {
  const walk = (d: string): string[] =>
    existsSync(d) ? [...readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => walk(join(d, e.name))), d] : [];
  return walk(join(CGROUP_V2, groupName(runDir))).slice(0, -1);
}

describe('the systemd unit (Type=notify, KillMode=process) under a real systemd booted in a container', () => {
  let agent: TestAgent | undefined;
  let runDir = '';
  let image = '';
  let skipReason = '';
  /** PID (on the host) of the container's systemd, once it runs. */
  let sd = 0;
  /** Bind mounts this test made on the host (under the container's overlay). */
  const binds: string[] = [];

  /** A command inside the container (all its namespaces), with a clean environment; its stdout. */
  const inside = (...cmd: string[]): string =>
    execFileSync('nsenter', ['-t', String(sd), '-a', 'env', '-i', `PATH=${PATH_IN}`, ...cmd], {
      encoding: 'utf8',
      timeout: 20_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  /** Like inside(), never throwing (for diagnostics and states that exit non-zero). */
  const tryInside = (...cmd: string[]): string => {
    try {
      return inside(...cmd);
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return `${e.stdout ?? ''}${e.stderr ?? String(err)}`;
    }
  };
  /** A path of the container's file system, seen from the host. */
  const at = (p: string) => `/proc/${sd}/root${p}`;
  /** `systemctl show -p …` of the unit, as a record. */
  const show = (...props: string[]): Record<string, string> =>
    Object.fromEntries(
      inside('systemctl', 'show', '-p', props.join(','), UNIT)
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  /**
   * The unit's journal: systemd's entries about it and the agent's output lines. (By the agent's
   * identifier, not `-u`: journald may file the first lines of a fresh stdout stream under
   * init.scope, having looked at the child before systemd moved it into the unit's cgroup.)
   */
  const JOURNAL = [`UNIT=${UNIT}`, '+', 'SYSLOG_IDENTIFIER=imageapi-server'];
  const journal = (): { pid: number; at: number; msg: string; line?: any }[] =>
    inside('journalctl', '-o', 'json', '--no-pager', ...JOURNAL)
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .map((e) => {
        const msg = Array.isArray(e.MESSAGE) ? Buffer.from(e.MESSAGE).toString() : String(e.MESSAGE ?? '');
        let line;
        try {
          line = msg.startsWith('{') ? JSON.parse(msg) : undefined;
        } catch {
          /* not the agent's */
        }
        return { pid: Number(e._PID), at: Number(e.__REALTIME_TIMESTAMP) / 1000, msg, line };
      });
  /** systemd's debug line for a notification it took from `pid` (systemd-notify adds MAINPID=). */
  const notified = (msg: string, pid: number, what: string) =>
    new RegExp(`^${UNIT}: Got notification message from PID ${pid} \\((.*, )?${what}(, .*)?\\)$`).test(msg);
  const why = () =>
    `--- systemctl status:\n${tryInside('systemctl', 'status', '--no-pager', '-l', UNIT)}\n--- journal:\n${tryInside('journalctl', '--no-pager', '-n', '60', ...JOURNAL)}`;
  const until = async <T>(what: string, probe: () => T | undefined | false): Promise<T> => {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const v = probe();
      if (v) return v;
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n${why()}`);
      await sleep(50);
    }
  };
  /** A request to the agent inside, over its unix socket. */
  const api = (method: string, path: string, body?: unknown): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = request(
        { socketPath: at('/run/imageapi.sock'), method, path, headers: body === undefined ? {} : { 'content-type': 'application/json' }, timeout: 20_000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            let parsed: any = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              /* text/plain */
            }
            resolve({ status: res.statusCode!, body: parsed, text });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer`)));
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  /** Hold the next READY=1 (held() then waits for it and gives what the agent passed to systemd-notify). */
  const holdReady = () => {
    rmSync(at(`${GATE}/held`), { force: true });
    writeFileSync(at(`${GATE}/hold`), '');
  };
  const held = () => until('the agent to send READY=1 (held)', () => existsSync(at(`${GATE}/held`)) && readFileSync(at(`${GATE}/held`), 'utf8').trim());
  const release = () => rmSync(at(`${GATE}/hold`), { force: true });
  const active = () => until(`${UNIT} active`, () => show('ActiveState').ActiveState === 'active');

  before(
    async () => {
      const out = join(tmpdir(), `imageapi-fixtures-${process.pid}`, 'systemd.sqsh');
      try {
        const r = await promisify(execFile)('bash', [join(ROOT, 'test/fixtures/systemd-image.sh'), out], { encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
        image = r.stdout.trim().split('\n').pop()!;
      } catch (err) {
        const e = err as { code?: number; stderr?: string };
        if (e.code === 77) {
          skipReason = `SKIPPED: cannot build the systemd image, no Debian mirror reachable: ${(e.stderr ?? '').trim()}`;
          process.stderr.write(`\n*** systemd-unit.test: ${skipReason}\n\n`);
          return;
        }
        throw err;
      }
      runDir = TestAgent.newRunDir();
      agent = await new TestAgent(runDir).start();
      // The systemd container: its own network namespace (the inner agent's 127.0.0.1:8080 is its
      // own), privileged (the inner agent mounts, makes namespaces and cgroups like on a node).
      const c = await agent.post('/container', {
        name: 'sd-unit',
        command: '/lib/systemd/systemd',
        systemd: true,
        privileged: true,
        state: 'created',
        stop_timeout: 20,
        namespaces: ['mnt', 'pid', 'uts', 'ipc', 'net', 'cgroup'],
        mount: { kind: 'overlay', overlay: { lower: [{ kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { kind: 'loopback', loopback: { path: image, readonly: true } } } }] } },
      });
      assert.equal(c.status, 201, c.text);
      const mp: string = c.body.mount.mountpoint;
      // Into the overlay (its upper layer): the checkout and node, read-only binds; the links
      // `npm install -g` makes; a busybox tree for the inner agent's container.
      const bind = (from: string, to: string) => {
        execFileSync('mount', ['--bind', '-o', 'ro', from, join(mp, to)]);
        binds.push(join(mp, to));
      };
      mkdirSync(join(mp, 'opt/imageapi'), { recursive: true });
      bind(ROOT, 'opt/imageapi');
      writeFileSync(join(mp, 'usr/local/bin/node'), '');
      bind('/usr/bin/node', 'usr/local/bin/node');
      execFileSync('ln', ['-s', '/opt/imageapi/bin/imageapi-server.js', join(mp, 'usr/local/bin/imageapi-server')]);
      execFileSync('unsquashfs', ['-q', '-n', '-d', join(mp, 'srv/box'), busyboxImage()]);
      const started = await agent.patch('/container?name=sd-unit&state=running');
      assert.equal(started.status, 200, started.text);
      sd = (await agent.get('/container?name=sd-unit')).body[0].pid;
      assert.ok(sd > 0, 'the systemd container runs');
      // The container has its own copies of the binds (its mounts are private): drop the host's.
      for (const b of binds.splice(0).reverse()) execFileSync('umount', [b]);
      const state = await until('systemd to boot', () => {
        const s = tryInside('systemctl', 'is-system-running').trim();
        return (s === 'running' || s === 'degraded') && s;
      });
      if (state === 'degraded') process.stderr.write(`systemd-unit.test: degraded boot:\n${tryInside('systemctl', '--failed', '--no-pager')}\n`);
    },
    { timeout: BUILD_TIMEOUT_MS + 60_000 },
  );

  after(async () => {
    if (agent && sd) await agent.del('/container?name=sd-unit&force=true').catch(() => {});
    for (const b of binds.reverse()) {
      try {
        execFileSync('umount', ['-l', b]);
      } catch {
        /* gone */
      }
    }
    await agent?.stop();
    if (runDir) {
      forceCleanup(runDir, ...(image ? [image] : []));
      for (const d of cgroupTree(runDir)) {
        try {
          rmdirSync(d);
        } catch {
          /* busy or gone */
        }
      }
    }
    if (image) rmSync(image, { force: true }); // the link only: the cache keeps the image
  });

  it('installs as documented; activating until READY=1, which follows reconcile and listen; a restart and a stop are SIGTERM, STOPPING=1, exit 0; the container stays and is adopted', async (t) => {
    if (skipReason) {
      t.skip(skipReason);
      return;
    }
    // ------------------------------------------------ install, as the README says
    const installed = inside('bash', '/opt/imageapi/contrib/install-systemd.sh', '--no-start');
    assert.match(installed, /ExecStart=\/usr\/local\/bin\/imageapi-server/, installed);
    const unit = show('Type', 'NotifyAccess', 'KillMode', 'UnitFileState');
    assert.deepEqual(unit, { Type: 'notify', NotifyAccess: 'all', KillMode: 'process', UnitFileState: 'disabled' });
    // The drop-in: what this container lacks (above), responses checked against the spec, the gate.
    const execStart = /^ExecStart=(.*)$/m.exec(readFileSync(at('/etc/systemd/system/imageapi.service'), 'utf8'))![1]!;
    mkdirSync(at('/etc/systemd/system/imageapi.service.d'), { recursive: true });
    writeFileSync(
      at('/etc/systemd/system/imageapi.service.d/test.conf'),
      `[Service]\nEnvironment=IMAGEAPI_VALIDATE_RESPONSES=1 PATH=/opt/imageapi/test/fixtures/notify-gate:${PATH_IN}\n` +
        `ExecStart=\nExecStart=${execStart} --config /etc/imageapi-test.yaml\n`,
    );
    writeFileSync(at('/etc/imageapi-test.yaml'), 'guard_containers: false\n');
    mkdirSync(at(GATE), { recursive: true });
    inside('systemctl', 'daemon-reload');
    // systemd logs every notification it gets at debug level: READY=1 and STOPPING=1 as it heard them.
    inside('systemctl', 'log-level', 'debug');

    // ------------------------------------------------ first start: activating while READY=1 is held
    holdReady();
    inside('systemctl', 'start', '--no-block', UNIT);
    const ready1 = await held();
    let s = show('ActiveState', 'SubState', 'MainPID', 'StatusText');
    const pid1 = Number(s.MainPID);
    assert.deepEqual([s.ActiveState, s.SubState, s.StatusText], ['activating', 'start', ''], 'no READY=1 yet: activating');
    assert.equal(ready1, `--pid=${pid1} READY=1 STATUS=serving http://127.0.0.1:8080 unix:/var/run/imageapi.sock`, 'READY=1 names the main PID');
    assert.equal((await api('GET', '/_ping')).status, 200, 'it serves before READY=1');
    release();
    await active();
    s = show('ActiveState', 'SubState', 'MainPID', 'StatusText');
    assert.deepEqual(s, { ActiveState: 'active', SubState: 'running', MainPID: String(pid1), StatusText: 'serving http://127.0.0.1:8080 unix:/var/run/imageapi.sock' });
    assert.equal((await api('GET', '/_ping')).status, 200);

    // ------------------------------------------------ something to keep: a running container
    const m = await api('POST', '/mount', { kind: 'bind', bind: { path: '/srv/box' } });
    assert.equal(m.status, 201, m.text);
    const c = await api('POST', '/container', {
      name: 'kept',
      mount: { id: m.body.id },
      state: 'running',
      command: "/bin/sh -c \"trap 'exit 0' TERM; sleep infinity & wait\"",
    });
    assert.equal(c.status, 201, c.text);
    const cpid: number = c.body.pid;
    assert.ok(cpid > 0 && existsSync(at(`/proc/${cpid}`)), c.text);

    // ------------------------------------------------ restart: SIGTERM, STOPPING=1, exit 0; adopted before READY=1
    holdReady();
    inside('systemctl', 'restart', '--no-block', UNIT);
    const ready2 = await held();
    s = show('ActiveState', 'SubState', 'MainPID', 'ExecMainStatus');
    const pid2 = Number(s.MainPID);
    assert.notEqual(pid2, pid1, 'a new agent');
    assert.deepEqual([s.ActiveState, s.SubState], ['activating', 'start']);
    assert.match(ready2, new RegExp(`^--pid=${pid2} READY=1 `));
    const adopted = await api('GET', '/container?name=kept');
    assert.equal(adopted.status, 200, `${adopted.text}\n${why()}`);
    assert.deepEqual([adopted.body[0]?.id, adopted.body[0]?.state, adopted.body[0]?.pid], [c.body.id, 'running', cpid], `adopted before READY=1: ${adopted.text}`);
    release();
    await active();
    assert.ok(existsSync(at(`/proc/${cpid}`)), 'the container kept running across the restart (KillMode=process)');
    // The journal: the old agent heard SIGTERM, said STOPPING=1, stopped; systemd saw it exit 0;
    // the new one loaded the state (the container in it) and listened before systemd heard READY=1.
    const j = await until('the journal of both runs', () => {
      const e = journal();
      return e.some((x) => x.pid === pid2 && x.line?.msg === 'listening') && e.some((x) => x.pid === 1 && notified(x.msg, pid2, 'READY=1')) && e;
    });
    const first = (what: string, pred: (x: (typeof j)[number]) => boolean) => {
      const i = j.findIndex(pred);
      assert.ok(i >= 0, `${what} in the journal:\n${j.map((x) => `${x.pid}: ${x.msg}`).join('\n')}`);
      return j[i]!;
    };
    const stopping1 = first('old agent: stopping on SIGTERM', (x) => x.pid === pid1 && x.line?.msg?.startsWith('stopping') && x.line?.signal === 'SIGTERM');
    const notified1 = first('systemd: STOPPING=1 from the old agent', (x) => x.pid === 1 && notified(x.msg, pid1, 'STOPPING=1'));
    const stopped1 = first('old agent: stopped', (x) => x.pid === pid1 && x.line?.msg === 'stopped');
    const exited1 = first('systemd: the old agent exited 0', (x) => x.pid === 1 && x.msg.includes('Main process exited, code=exited, status=0/SUCCESS'));
    const loaded2 = first('new agent: state loaded', (x) => x.pid === pid2 && x.line?.msg === 'state loaded');
    assert.deepEqual([loaded2.line.mounts, loaded2.line.containers], [1, 1], 'the state with the mount and the container');
    const listening2 = j.filter((x) => x.pid === pid2 && x.line?.msg === 'listening');
    assert.equal(listening2.length, 2, 'http and unix');
    const ready2At = first('systemd: READY=1 from the new agent', (x) => x.pid === 1 && notified(x.msg, pid2, 'READY=1'));
    // The agent's lines carry the time it wrote them; systemd's, the time the journal got them.
    assert.ok(stopping1.line.time <= notified1.at && notified1.at <= exited1.at && stopped1.line.time <= exited1.at, 'SIGTERM → STOPPING=1 → exit');
    for (const x of [loaded2, ...listening2]) assert.ok(x.line.time <= ready2At.at, `"${x.line.msg}" before READY=1`);
    assert.ok(loaded2.line.time <= listening2[0]!.line.time);
    assert.ok(exited1.at <= ready2At.at);

    // ------------------------------------------------ stop: SIGTERM, STOPPING=1, exit 0
    const delC = await api('DELETE', '/container?name=kept&force=true'); // running: stopped first
    assert.equal(delC.status, 200, delC.text);
    const delM = await api('DELETE', `/mount?id=${m.body.id}`);
    assert.equal(delM.status, 200, delM.text);
    assert.ok(!existsSync(at(`/proc/${cpid}`)), 'the container was deleted');
    inside('systemctl', 'stop', UNIT);
    s = show('ActiveState', 'Result');
    assert.deepEqual(s, { ActiveState: 'inactive', Result: 'success' });
    // (Result=success alone would also take a death by SIGTERM: the journal says how it ended.)
    const j3 = await until('the journal of the stop', () => {
      const e = journal();
      return e.some((x) => x.pid === pid2 && x.line?.msg === 'stopped') && e;
    });
    const from = j3.findIndex((x) => x.pid === pid2 && x.line?.msg?.startsWith('stopping') && x.line?.signal === 'SIGTERM');
    assert.ok(from >= 0, 'the agent heard SIGTERM');
    const after3 = j3.slice(from);
    const said = after3.findIndex((x) => x.pid === 1 && notified(x.msg, pid2, 'STOPPING=1'));
    assert.ok(said >= 0, 'STOPPING=1 on systemctl stop');
    assert.ok(
      after3.slice(said).some((x) => x.pid === 1 && x.msg.includes('Main process exited, code=exited, status=0/SUCCESS')),
      `then exit 0:\n${after3.map((x) => `${x.pid}: ${x.msg}`).join('\n')}`,
    );

    // ------------------------------------------------ the systemd container goes, and all it had
    const a = agent!;
    const halted = await a.patch('/container?name=sd-unit&state=exited');
    assert.equal(halted.status, 200, halted.text);
    const end = (await a.get('/container/wait?name=sd-unit&state=exited&timeout=60')).body;
    assert.equal(end.state, 'exited', JSON.stringify(end));
    assert.equal((await a.del('/container?name=sd-unit')).status, 200);
    sd = 0;
    assert.deepEqual((await a.get('/mount')).body, []);
    assert.deepEqual((await a.get('/attach')).body, []);
    assert.deepEqual(mountsUnder(runDir), []);
    assert.deepEqual(loopsOver(image), []);
    assert.deepEqual(cgroupTree(runDir), [], 'no cgroup of the container (systemd, the inner agent and its container) left');
  });
});
