// Container lifecycle: created → running → stopping → exited; paused (frozen) from running;
// dead when it failed to start or died on its own with a failure. A container runs under the
// native supervisor (imageapi-shim), which outlives the agent and records the exit status where
// a restarted agent reads it.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerSpec, Namespace, RequestedState } from '../model/types.js';
import { ApiError, badRequest, conflict, notImplemented } from '../model/errors.js';
import type { Engine } from '../core/engine.js';
import type { ContainerRec, MountRec } from '../store/records.js';
import { refOf } from '../store/records.js';
import type { Views } from '../api/views.js';
import { createCgroups, freezeCgroups, killCgroups, removeCgroups } from '../sys/cgroups.js';
import { launchDetached, processStartTime } from '../sys/detached.js';
import { splitCommand } from './command.js';
import { checkImageRoot, checkInit } from './image.js';
import { logLine } from './log.js';

const DEFAULT_NS: Namespace[] = ['mnt', 'pid', 'uts', 'ipc'];
const SIGRTMIN_3 = 37; // glibc's SIGRTMIN (34) + 3: systemd's "halt"
const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 250;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();

interface ExitStatus {
  exit_code: number;
  signal: number;
  start_error?: string;
}

export interface ContainerOptions {
  helper: string;
}

export class ContainerManager {
  /** Waiters for a container's end, keyed by id. */
  private readonly ends = new Map<number, Array<() => void>>();
  private poller: NodeJS.Timeout | null = null;

  constructor(
    private readonly engine: Engine,
    private readonly views: Views,
    private readonly opts: ContainerOptions,
  ) {
    engine.containerTeardown = (rec) => this.teardown(rec);
  }

  private get store() {
    return this.engine.store;
  }
  private get runDir() {
    return this.engine.ctx.runDir;
  }
  private get log() {
    return this.engine.ctx.log;
  }
  private dir(id: number) {
    return join(this.runDir, 'containers', String(id));
  }

  // ------------------------------------------------------------------ views

  view(rec: ContainerRec): ContainerSpec {
    return {
      id: rec.id,
      ...(rec.name ? { name: rec.name } : {}),
      refs: this.store.refs(rec),
      mount: this.views.mountById(rec.holds[0]!.id),
      command: rec.command,
      systemd: rec.systemd,
      state: rec.state,
      namespaces: rec.namespaces,
      hostname: rec.hostname,
      env: rec.env,
      stop_timeout: rec.stop_timeout,
      logfile: rec.logfile,
      pid: rec.pid,
      exit_code: rec.exit_code,
      created_at: rec.created_at,
      started_at: rec.started_at,
      finished_at: rec.finished_at,
      ...(rec.error ? { error: rec.error } : {}),
    };
  }

  /** The container selected by `id` or `name` (one of them required). */
  select(q: { id?: number; name?: string }): ContainerRec {
    if (q.id === undefined && q.name === undefined) throw badRequest('give the container\'s "id" or "name"');
    const rec = q.id !== undefined ? this.store.get('container', q.id) : this.store.containerByName(q.name!);
    if (!rec || rec.pending) throw new ApiError('NOT_FOUND', `no container ${q.id !== undefined ? `with id ${q.id}` : `named "${q.name}"`}`);
    if (q.name !== undefined && rec.name !== q.name) throw badRequest(`container ${rec.id} is not named "${q.name}"`);
    return rec;
  }

  // ------------------------------------------------------------------ create

  async create(spec: ContainerSpec): Promise<ContainerRec> {
    const namespaces = [...(spec.namespaces?.length ? spec.namespaces : DEFAULT_NS)];
    if (!namespaces.includes('mnt')) throw badRequest('namespaces: "mnt" is required (the container needs its own mount namespace)');
    if (namespaces.includes('user')) {
      throw notImplemented('namespaces: "user" is not supported: containers run as the host\'s root and mount their image as root, which a user namespace would not allow');
    }
    if (spec.systemd && !namespaces.includes('cgroup')) namespaces.push('cgroup');
    if (spec.hostname && !namespaces.includes('uts')) throw badRequest('hostname: needs the "uts" namespace');
    const argv = splitCommand(spec.command);
    const wanted = spec.state ?? 'created';
    if (wanted !== 'created' && wanted !== 'running') throw badRequest(`state: a new container can be "created" or "running", not "${wanted}"`);

    return this.engine.transaction(async (tx) => {
      if (spec.name) this.store.assertNameFree(spec.name);
      const me = { type: 'container' as const, id: -1 }; // its id is given after the mount's (depth-first)
      const mount = await this.engine.resolveMount(spec.mount, me, tx, 'container.mount');
      await checkImageRoot(mount.mounted.mountpoint);
      await checkInit(mount.mounted.mountpoint, argv[0]!);
      const id = (me.id = this.store.nextId('container'));
      const created = new Date();
      const rec: ContainerRec = {
        type: 'container',
        id,
        owner: 'user',
        holds: [refOf(mount)],
        name: spec.name,
        command: spec.command,
        argv,
        systemd: spec.systemd === true,
        namespaces,
        hostname: spec.hostname ?? (spec.name?.replace(/^[^A-Za-z0-9]+/, '').replace(/_/g, '-').slice(0, 63) || `container-${id}`),
        env: spec.env ?? [],
        stop_timeout: spec.stop_timeout ?? 10,
        state: 'created',
        logfile: join(this.runDir, 'logs', `${id}-${Math.floor(created.getTime() / 1000)}.log`),
        pid: null,
        shim_pid: null,
        pid_start: null,
        exit_code: null,
        stop_requested: false,
        created_at: created.toISOString(),
        started_at: null,
        finished_at: null,
        cgroups: [],
      };
      rec.pending = true;
      this.store.put(rec);
      tx.created.push(rec);
      tx.onUndo(`forget container ${id}`, () => this.store.remove(me));
      await mkdir(join(this.runDir, 'logs'), { recursive: true, mode: 0o750 });
      tx.onUndo(`remove ${rec.logfile}`, () => rm(rec.logfile, { force: true }));
      await logLine(rec.logfile, id, 'container created');
      if (wanted === 'running') {
        tx.onUndo(`stop container ${id}`, () => this.killNow(rec));
        await this.start(rec, true);
      }
      return rec;
    });
  }

  // ------------------------------------------------------------------ state changes

  async setState(rec: ContainerRec, state: RequestedState, wait: boolean): Promise<ContainerRec> {
    switch (state) {
      case 'running':
        if (rec.state === 'paused') return this.freeze(rec, false);
        if (rec.state === 'running') return rec;
        if (rec.state === 'stopping') throw conflict(`container ${rec.id} is stopping`);
        await this.store.mutex.run(() => this.start(rec));
        await this.store.save();
        return rec;
      case 'paused':
        if (rec.state === 'paused') return rec;
        if (rec.state !== 'running') throw conflict(`container ${rec.id} is ${rec.state}, only a running container can be paused`);
        return this.freeze(rec, true);
      case 'exited': {
        if (rec.state === 'created') {
          rec.state = 'exited';
          rec.stop_requested = true;
          await this.store.save();
          return rec;
        }
        if (rec.state === 'exited' || rec.state === 'dead') return rec;
        const stopped = this.stop(rec);
        if (wait) await stopped;
        else stopped.catch((err) => this.log.error({ err, container: rec.id }, 'stop failed'));
        return rec;
      }
    }
  }

  /** Start; `validated` when create() has just checked the image and the command. */
  private async start(rec: ContainerRec, validated = false): Promise<void> {
    if (rec.state !== 'created' && rec.state !== 'exited' && rec.state !== 'dead') {
      throw conflict(`container ${rec.id} is ${rec.state}`);
    }
    const mount = this.store.get('mount', rec.holds[0]!.id, true) as MountRec;
    const root = mount.mounted.mountpoint;
    try {
      if (!validated) {
        await checkImageRoot(root);
        await checkInit(root, rec.argv[0]!);
      }
    } finally {
      await logLine(rec.logfile, rec.id, 'starting container', 'validating image', 'validating init');
    }

    const dir = this.dir(rec.id);
    if (rec.started_at) await rm(dir, { recursive: true, force: true }); // a restart: drop the last run's status
    await mkdir(dir, { recursive: true, mode: 0o700 });
    rec.cgroups = await createCgroups(this.runDir, rec.id);
    const args = [
      '--root', root,
      '--log', rec.logfile,
      '--ready-fd', '3',
      '--pidfile', join(dir, 'pid'),
      '--status', join(dir, 'status'),
      '--ns', rec.namespaces.join(','),
      ...(rec.namespaces.includes('uts') ? ['--hostname', rec.hostname] : []),
      ...(rec.systemd ? ['--systemd'] : []),
      ...rec.cgroups.flatMap((c) => ['--cgroup', c]),
      ...rec.env.flatMap((e) => ['--env', e]),
      '--', ...rec.argv,
    ];
    Object.assign(rec, { stop_requested: false, exit_code: null, error: undefined, finished_at: null });
    const launched = launchDetached(this.opts.helper, args, READY_TIMEOUT_MS);
    let line: string;
    try {
      line = await launched.ready;
    } catch (err) {
      launched.child.kill('SIGKILL');
      await this.cleanupRun(rec);
      throw new ApiError('INTERNAL', `container ${rec.id}: the init helper failed: ${(err as Error).message}`);
    }
    if (!line.startsWith('ok ')) {
      const why = line.replace(/^error /, '');
      await launched.exited;
      await this.cleanupRun(rec);
      rec.state = 'dead';
      rec.error = why;
      // Exec failures are the request's fault (the image); anything else is a fault of the node.
      throw new ApiError(/^executing /.test(why) ? 'BAD_REQUEST' : 'INTERNAL', `container ${rec.id}: ${why}`);
    }
    rec.pid = Number(line.slice(3));
    rec.shim_pid = launched.child.pid ?? null;
    rec.pid_start = await processStartTime(rec.pid);
    rec.state = 'running';
    rec.started_at = now();
    launched.exited.then(() => this.onEnd(rec.id));
  }

  private async freeze(rec: ContainerRec, frozen: boolean): Promise<ContainerRec> {
    await freezeCgroups(rec.cgroups, frozen);
    rec.state = frozen ? 'paused' : 'running';
    await logLine(rec.logfile, rec.id, frozen ? 'container paused' : 'container resumed');
    await this.store.save();
    return rec;
  }

  /** Stop: the stop signal, then after stop_timeout every process of the cgroup is killed. Ends `exited`. */
  async stop(rec: ContainerRec): Promise<void> {
    if (rec.state !== 'running' && rec.state !== 'paused' && rec.state !== 'stopping') return;
    const ended = this.whenEnded(rec.id);
    if (rec.state !== 'stopping') {
      const wasPaused = rec.state === 'paused';
      rec.stop_requested = true;
      rec.state = 'stopping';
      await this.store.save();
      await logLine(rec.logfile, rec.id, 'stopping container');
      if (rec.pid) {
        try {
          process.kill(rec.pid, rec.systemd ? SIGRTMIN_3 : 'SIGTERM');
        } catch {
          /* already gone */
        }
      }
      if (wasPaused) await freezeCgroups(rec.cgroups, false).catch(() => {});
    }
    const timedOut = await Promise.race([ended.then(() => false), sleep(rec.stop_timeout * 1000).then(() => true)]);
    if (timedOut) {
      await logLine(rec.logfile, rec.id, `stop timeout (${rec.stop_timeout}s) reached: killing every process of the container`);
      await killCgroups(rec.cgroups);
      await ended;
    }
  }

  /** Kill at once (rollback of a failed create). */
  private async killNow(rec: ContainerRec): Promise<void> {
    if (rec.state !== 'running' && rec.state !== 'paused' && rec.state !== 'stopping') return;
    rec.stop_requested = true;
    const ended = this.whenEnded(rec.id);
    await killCgroups(rec.cgroups);
    await Promise.race([ended, sleep(5000)]);
    await this.cleanupRun(rec);
  }

  private whenEnded(id: number): Promise<void> {
    return new Promise((resolve) => {
      const list = this.ends.get(id) ?? [];
      list.push(resolve);
      this.ends.set(id, list);
      this.ensurePoller();
    });
  }

  /** The supervisor exited (or its status file appeared): record how the container ended. */
  private async onEnd(id: number): Promise<void> {
    const rec = this.store.find('container', id);
    if (!rec || (rec.state !== 'running' && rec.state !== 'paused' && rec.state !== 'stopping')) return this.wake(id);
    const status = await this.readStatus(id);
    if (!status && rec.shim_pid && (await this.alive(rec.shim_pid, null))) return; // not yet
    rec.exit_code = status ? status.exit_code : null;
    rec.finished_at = now();
    rec.pid = null;
    rec.shim_pid = null;
    rec.pid_start = null;
    if (rec.stop_requested) rec.state = 'exited';
    else if (!status) {
      rec.state = 'dead';
      rec.error = 'the supervisor vanished without recording an exit status';
    } else rec.state = status.exit_code === 0 ? 'exited' : 'dead';
    if (status?.start_error) rec.error = status.start_error;
    if (rec.state === 'dead' && !rec.error) rec.error = `exited with code ${status?.exit_code}`;
    // Whatever the container left behind (daemons without a PID namespace, say) goes with it.
    await this.cleanupRun(rec).catch((err) => this.log.error({ err, container: id }, 'cgroup cleanup failed'));
    await logLine(rec.logfile, id, `container ${rec.state}${rec.exit_code !== null ? ` (exit code ${rec.exit_code})` : ''}`).catch(() => {});
    await this.store.save();
    this.wake(id);
  }

  private wake(id: number): void {
    for (const w of this.ends.get(id) ?? []) w();
    this.ends.delete(id);
  }

  private async cleanupRun(rec: ContainerRec): Promise<void> {
    if (rec.cgroups.length) {
      await killCgroups(rec.cgroups);
      await removeCgroups(rec.cgroups);
      rec.cgroups = [];
    }
  }

  private async readStatus(id: number): Promise<ExitStatus | null> {
    try {
      const text = await readFile(join(this.dir(id), 'status'), 'utf8');
      const kv = Object.fromEntries(text.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      return { exit_code: Number(kv.exit_code ?? -1), signal: Number(kv.signal ?? 0), start_error: kv.start_error };
    } catch {
      return null;
    }
  }

  private async alive(pid: number, start: string | null): Promise<boolean> {
    const s = await processStartTime(pid);
    return s !== null && (start === null || s === start);
  }

  /** Containers adopted after a restart are not our children: poll their status files. */
  private ensurePoller(): void {
    if (this.poller) return;
    this.poller = setInterval(() => {
      const live = this.store.list('container').filter((c) => c.state === 'running' || c.state === 'paused' || c.state === 'stopping');
      if (live.length === 0 && this.ends.size === 0) {
        clearInterval(this.poller!);
        this.poller = null;
        return;
      }
      for (const c of live) void this.onEnd(c.id);
    }, POLL_MS);
    this.poller.unref();
  }

  // ------------------------------------------------------------------ delete

  /** Delete: refused while running unless `stopFirst` (v0.1 routes, force). */
  async remove(rec: ContainerRec, stopFirst: boolean): Promise<ContainerSpec> {
    if (rec.state === 'running' || rec.state === 'paused' || rec.state === 'stopping') {
      if (!stopFirst) throw conflict(`container ${rec.id} is ${rec.state}: stop it first (PATCH state=exited), or delete with force=true`);
      await this.stop(rec);
    }
    const shown = this.view(rec);
    await this.store.mutex.run(() => this.engine.remove(refOf(rec), true));
    return { ...shown, refs: 0 };
  }

  /** Called by the engine when it deletes a container record. */
  private async teardown(rec: ContainerRec): Promise<void> {
    await this.stop(rec);
    await this.cleanupRun(rec);
    await rm(this.dir(rec.id), { recursive: true, force: true });
    await logLine(rec.logfile, rec.id, 'container deleted').catch(() => {});
  }

  // ------------------------------------------------------------------ restart

  /** After an agent restart: is this container's record still meaningful? (Always: it may have ended.) */
  async adopt(rec: ContainerRec): Promise<boolean> {
    if (rec.state !== 'running' && rec.state !== 'paused' && rec.state !== 'stopping') return true;
    if (rec.pid && (await this.alive(rec.pid, rec.pid_start))) {
      this.ensurePoller();
      if (rec.state === 'stopping') void this.stop(rec);
      return true;
    }
    await this.onEnd(rec.id);
    return true;
  }

  /** On agent shutdown: nothing to stop (containers outlive the agent); stop polling. */
  close(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
  }
}
