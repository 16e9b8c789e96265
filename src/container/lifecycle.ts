// Container lifecycle: created → running → stopping → exited; paused (frozen) from running;
// dead when it failed to start or died on its own with a failure. A container runs under the
// native supervisor, which outlives the agent and records the exit status where a restarted
// agent reads it. Every change of a record goes through the core (engine.update: its lock, then a
// group-committed save). A create runs without the lock (engine.transaction): what it reserves
// (the name, a user-namespace range) is reserved synchronously, before its first await.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine } from '../core/engine.js';
import { alreadyExists, notFound, invalid, toAgentError, unsupported, wrongState } from '../model/errors.js';
import type { ContainerSpec, RequestedState } from '../model/types.js';
import type { Tx } from '../core/tx.js';
import type { ContainerRec, MountRec } from '../store/records.js';
import { refOf } from '../store/records.js';
import { checkLimits, createCgroups, freezeCgroups, killCgroups, oomKills, removeCgroups } from '../sys/cgroups.js';
import type { NetGuard } from '../sys/netguard.js';
import { isRunning, isSameProcess } from '../sys/procs.js';
import { nowIso, sleep } from '../util/time.js';
import { checkIdmappable, checkImageRoot, checkInit } from './image.js';
import { logLine } from './log.js';
import { planContainer, poolMap, USERNS_POOL_SLOTS, USERNS_POOL_START, USERNS_RANGE } from './spec.js';
import { isLive } from './states.js';
import { helperArgs, launch, readStatus, SIGRTMIN_3 } from './supervisor.js';

const POLL_MS = 250;

export interface ContainerOptions {
  helper: string;
  /** Host ids automatic user-namespace ranges come from (default: spec.ts's pool). */
  userns_pool?: { start: number; count: number };
  /** Keeps containers from connecting to the agent's listeners (checked before each start). */
  guard?: NetGuard;
}

export class ContainerManager {
  /** Waiters for a container's end, keyed by id. */
  private readonly ends = new Map<number, Array<() => void>>();
  /** Defaults of the log cap (config `container_log_max_size`, `container_log_max_files`). */
  logCap = { max_size: 64 * 1024 * 1024, max_files: 4 };
  /** The end of a container being recorded: an exit event and the poller never record it twice. */
  private readonly ending = new Map<number, Promise<void>>();
  /** Starts under way (PATCH state=running), outside the lock: by container id. */
  private readonly starting = new Map<number, Promise<void>>();
  private poller: NodeJS.Timeout | null = null;
  private engine!: Engine;
  /** Names and user-namespace pool slots of containers being created (requests in flight). */
  private readonly namesTaken = new Set<string>();
  private readonly slotsTaken = new Set<number>();
  /** The network guard's check, one at a time (a new parent group means one nft run, not several). */
  private guarding: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ContainerOptions) {}

  /** The core this manager changes records through (it is built with this manager's hooks). */
  attach(engine: Engine): void {
    this.engine = engine;
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

  /** The container selected by `id` or `name` (one of them required). */
  select(q: { id?: number; name?: string }): ContainerRec {
    if (q.id === undefined && q.name === undefined) throw invalid('give the container\'s "id" or "name"');
    const rec = q.id !== undefined ? this.store.get('container', q.id) : this.store.containerByName(q.name!);
    if (!rec || rec.pending) throw notFound(`no container ${q.id !== undefined ? `with id ${q.id}` : `named "${q.name}"`}`);
    if (q.name !== undefined && rec.name !== q.name) throw invalid(`container ${rec.id} is not named "${q.name}"`);
    return rec;
  }

  // ------------------------------------------------------------------ create

  async create(spec: ContainerSpec): Promise<ContainerRec> {
    const plan = planContainer(spec);
    await checkLimits(plan.limits);
    return this.engine.transaction(async (tx) => {
      if (spec.name) this.reserveName(spec.name, tx);
      const me = { type: 'container' as const, id: -1 }; // its id is given after the mount's (depth-first)
      const mount = await this.engine.resolveMount(spec.mount, me, tx, 'container.mount');
      await checkImageRoot(mount.mounted.mountpoint);
      await checkInit(mount.mounted.mountpoint, plan.argv[0]!);
      if (plan.namespaces.includes('user')) await checkIdmappable(mount.mounted.mountpoint);
      const id = (me.id = this.store.nextId('container'));
      const created = new Date();
      const rec: ContainerRec = {
        type: 'container',
        id,
        owner: 'user',
        holds: [refOf(mount)],
        name: spec.name,
        command: spec.command,
        argv: plan.argv,
        systemd: plan.systemd,
        namespaces: plan.namespaces,
        hostname: plan.hostnameFor(id),
        env: plan.env,
        stop_timeout: plan.stop_timeout,
        log_max_size: spec.log_max_size ?? this.logCap.max_size,
        log_max_files: spec.log_max_files ?? this.logCap.max_files,
        log_timestamps: plan.log_timestamps,
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
        confine: plan.autoUserns ? this.withPoolRange(plan.confine, tx) : plan.confine,
        limits: plan.limits,
      };
      this.engine.track(rec, tx);
      await this.logsDir();
      tx.onUndo(`remove ${rec.logfile}`, () => rm(rec.logfile, { force: true }));
      if (plan.wanted === 'running') {
        tx.onUndo(`stop container ${id}`, () => this.killNow(rec));
        await this.start(rec, true, ['container created']); // (one write of the log for both)
      } else await logLine(rec.logfile, id, 'container created');
      return rec;
    }, spec);
  }

  private logsMade = false;

  /** The logs directory (made once per agent run). */
  private async logsDir(): Promise<void> {
    if (this.logsMade) return;
    await mkdir(join(this.runDir, 'logs'), { recursive: true, mode: 0o750 });
    this.logsMade = true;
  }

  /** A container's name, free among the records and the creates in flight, held until `tx` is over. */
  private reserveName(name: string, tx: Tx): void {
    this.store.assertNameFree(name);
    if (this.namesTaken.has(name)) throw alreadyExists(`a container named "${name}" already exists (being created)`);
    this.namesTaken.add(name);
    tx.onSettle(() => this.namesTaken.delete(name));
  }

  /** An automatic user-namespace range: the lowest pool slot no other container (or create in flight) holds. */
  private withPoolRange(confine: NonNullable<ContainerRec['confine']>, tx: Tx): NonNullable<ContainerRec['confine']> {
    const taken = new Set<number | undefined>([...this.slotsTaken, ...this.store.list('container').map((c) => c.confine?.userns_slot)]);
    const pool = this.opts.userns_pool ?? { start: USERNS_POOL_START, count: USERNS_POOL_SLOTS * USERNS_RANGE };
    const slots = Math.floor(pool.count / USERNS_RANGE);
    let slot = 0;
    while (taken.has(slot)) slot++;
    if (slot >= slots) throw unsupported(`namespaces: "user": the pool of ${slots} automatic id ranges (userns_pool) is used up`);
    this.slotsTaken.add(slot);
    tx.onSettle(() => this.slotsTaken.delete(slot));
    return { ...confine, uid_map: poolMap(slot, pool.start), gid_map: poolMap(slot, pool.start), userns_slot: slot };
  }

  // ------------------------------------------------------------------ state changes

  /** engine.update, then the state event (old → new) once it is saved (`durable`: waited for). */
  private async change<T>(rec: ContainerRec, fn: () => Promise<T> | T, durable = true): Promise<T> {
    const old = rec.state;
    // (A delete that overtook the save has published the record's end already: no state after it.)
    return this.engine.update(
      fn,
      () => {
        if (this.store.find('container', rec.id) === rec) this.engine.events.state(rec, old);
      },
      durable,
    );
  }

  async setState(rec: ContainerRec, state: RequestedState): Promise<ContainerRec> {
    // A start under way is waited for: what is asked next applies to the container it made.
    for (let s = this.starting.get(rec.id); s; s = this.starting.get(rec.id)) await s;
    this.assertStill(rec);
    switch (state) {
      case 'running':
        if (rec.state === 'paused') return this.freeze(rec, false);
        if (rec.state === 'running') return rec;
        if (rec.state === 'stopping') throw wrongState(`container ${rec.id} is stopping`);
        {
          // The start runs outside the lock (the helper's spawn and ready wait hold up nobody
          // else); a delete of the container waits for it (engine.busy), later state changes of
          // it too (this.starting). Then it is recorded like any change: `running`, or `dead`
          // with the reason when it failed.
          const old = rec.state;
          let failed: unknown;
          const work = this.engine.busy(rec, () => this.start(rec)).catch((err) => {
            failed = err;
          });
          this.starting.set(rec.id, work);
          try {
            await work;
          } finally {
            this.starting.delete(rec.id);
          }
          await this.engine.update(
            () => {},
            () => {
              if (this.store.find('container', rec.id) === rec) this.engine.events.state(rec, old);
            },
          );
          if (failed) throw failed;
        }
        return rec;
      case 'paused':
        if (rec.state === 'paused') return rec;
        if (rec.state !== 'running') throw wrongState(`container ${rec.id} is ${rec.state}, only a running container can be paused`);
        return this.freeze(rec, true);
      case 'exited':
        if (rec.state === 'created') {
          await this.change(rec, () => {
            rec.state = 'exited';
            rec.stop_requested = true;
          });
          return rec;
        }
        if (!isLive(rec.state)) return rec;
        // Answered at once with `stopping`; the stop goes on in the background.
        await this.beginStop(rec);
        this.stop(rec).catch((err) => this.log.error({ err, container: rec.id }, 'stop failed'));
        return rec;
    }
  }

  /** Still a record of the store, and not being deleted (a state change of it would outlive it). */
  private assertStill(rec: ContainerRec): void {
    if (this.store.find('container', rec.id) !== rec) throw notFound(`no container with id ${rec.id}`);
    if (this.engine.isDeleting(rec)) throw wrongState(`container ${rec.id} is being deleted`);
  }

  /** The network guard's check before a start, one at a time. */
  private guarded(): Promise<void> {
    const guard = this.opts.guard;
    if (!guard) return Promise.resolve();
    const p = this.guarding.then(() => guard.protect());
    this.guarding = p.catch(() => {});
    return p;
  }

  /**
   * Start; `validated` when create() has just checked the image and the command. Never under the
   * lock: inside create the record is pending, for a state change setState() marks it busy.
   */
  private async start(rec: ContainerRec, validated = false, before: string[] = []): Promise<void> {
    this.assertStill(rec);
    if (rec.state !== 'created' && rec.state !== 'exited' && rec.state !== 'dead') throw wrongState(`container ${rec.id} is ${rec.state}`);
    const mount = this.store.get('mount', rec.holds[0]!.id, true) as MountRec;
    const root = mount.mounted.mountpoint;
    try {
      if (!validated) {
        await checkImageRoot(root);
        await checkInit(root, rec.argv[0]!);
      }
    } finally {
      await logLine(rec.logfile, rec.id, ...before, 'starting container', 'validating image', 'validating init');
    }
    const dir = this.dir(rec.id);
    if (rec.started_at) await rm(dir, { recursive: true, force: true }); // a restart: drop the last run's status
    await mkdir(dir, { recursive: true, mode: 0o700 });
    rec.cgroups = await createCgroups(this.runDir, rec.id, rec.limits);
    Object.assign(rec, { stop_requested: false, exit_code: null, error: undefined, finished_at: null });
    let started;
    try {
      await this.guarded(); // before the container's first process exists
      started = await this.engine.events.timed('container_start', 'container', () => launch(this.opts.helper, helperArgs(rec, root, dir), rec.id));
    } catch (err) {
      this.engine.events.failure('container_start', err);
      await this.cleanupRun(rec);
      rec.state = 'dead';
      rec.error = toAgentError(err).message.replace(/^container \d+: /, '');
      throw err;
    }
    Object.assign(rec, { pid: started.pid, shim_pid: started.shim_pid, pid_start: started.pid_start, state: 'running', started_at: nowIso() });
    // (not inside the start's critical section, which the callback would otherwise inherit)
    // The fork server gone (it does not take the supervisor with it): the poller finds the end.
    started.exited.then((seen) => (seen ? this.engine.outsideLock(() => this.onEnd(rec.id)) : this.ensurePoller())).catch((err) => this.log.error({ err, container: rec.id }, 'cannot record the end of the container'));
  }

  private async freeze(rec: ContainerRec, frozen: boolean): Promise<ContainerRec> {
    await this.change(rec, async () => {
      await freezeCgroups(rec.cgroups, frozen);
      rec.state = frozen ? 'paused' : 'running';
    });
    await logLine(rec.logfile, rec.id, frozen ? 'container paused' : 'container resumed');
    return rec;
  }

  /** Record that a stop was asked for and send the stop signal (SIGRTMIN+3 to systemd). */
  private async beginStop(rec: ContainerRec): Promise<void> {
    if (rec.state === 'stopping' || !isLive(rec.state)) return;
    const wasPaused = rec.state === 'paused';
    await this.change(rec, () => {
      rec.stop_requested = true;
      rec.state = 'stopping';
    });
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

  /** Stop: the stop signal, then after stop_timeout every process of the cgroup is killed. Ends `exited`. */
  async stop(rec: ContainerRec): Promise<void> {
    if (!isLive(rec.state)) return;
    const ended = this.whenEnded(rec.id);
    await this.beginStop(rec);
    const timedOut = await Promise.race([ended.then(() => false), sleep(rec.stop_timeout * 1000).then(() => true)]);
    if (timedOut) {
      await logLine(rec.logfile, rec.id, `stop timeout (${rec.stop_timeout}s) reached: killing every process of the container`);
      await killCgroups(rec.cgroups);
      await ended;
    }
  }

  /** Kill at once (rollback of a failed create). */
  private async killNow(rec: ContainerRec): Promise<void> {
    if (!isLive(rec.state)) return;
    rec.stop_requested = true;
    await killCgroups(rec.cgroups);
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

  /** The supervisor exited (or its status file appeared): record how the container ended, once. */
  private onEnd(id: number): Promise<void> {
    const running = this.ending.get(id);
    if (running) return running;
    const p = this.recordEnd(id).finally(() => this.ending.delete(id));
    this.ending.set(id, p);
    return p;
  }

  private async recordEnd(id: number): Promise<void> {
    let rec = this.store.find('container', id);
    // Ended during its create (`/bin/true`): the create is recorded first, then its end.
    // Or during a start of its own (PATCH): that start's change is recorded first likewise.
    const making = rec && (this.engine.settledOf(rec) ?? this.starting.get(id));
    if (making) {
      await making;
      rec = this.store.find('container', id);
    }
    if (!rec || !isLive(rec.state)) return this.wake(id);
    const status = await readStatus(this.dir(id));
    if (!status && rec.shim_pid && (await isSameProcess(rec.shim_pid, null))) return; // not yet
    let oom = 0;
    try {
      // The kernel's part, outside the lock: did the OOM killer end it (read before the cgroups
      // go)? Whatever the container left behind (daemons without a PID namespace, say) goes with it.
      if (rec.limits?.memory) oom = await oomKills(rec.cgroups).catch(() => 0);
      await this.cleanupRun(rec).catch((err) => this.log.error({ err, container: id }, 'cgroup cleanup failed'));
      await this.change(rec, () => {
        // Recorded meanwhile, or deleted (the delete's event says how it ended).
        if (!isLive(rec.state) || this.store.find('container', id) !== rec || this.engine.isDeleting(rec)) return;
        rec.exit_code = status ? status.exit_code : null;
        rec.finished_at = nowIso();
        rec.pid = null;
        rec.shim_pid = null;
        rec.pid_start = null;
        if (rec.stop_requested) rec.state = 'exited';
        else if (!status) {
          rec.state = 'dead';
          rec.error = 'the exit status is unknown: the supervisor recorded none (see the container log)';
        } else rec.state = status.exit_code === 0 ? 'exited' : 'dead';
        if (status?.start_error) rec.error = status.start_error;
        if (oom > 0 && !rec.stop_requested && status && status.exit_code !== 0) {
          rec.state = 'dead';
          rec.error = `out of memory: the OOM killer killed ${oom} process${oom === 1 ? '' : 'es'} of the container (memory.max ${rec.limits!.memory!.max} bytes); exit code ${status.exit_code}`;
        }
        if (rec.state === 'dead' && !rec.error) rec.error = `exited with code ${status?.exit_code}`;
        // The end is durable in the supervisor's status file (a restart reads it): the state
        // file's save of it is not waited for.
      }, false);
      if (oom > 0) await logLine(rec.logfile, id, `out of memory: the OOM killer killed ${oom} process${oom === 1 ? '' : 'es'} of the container`).catch(() => {});
      await logLine(rec.logfile, id, `container ${rec.state}${rec.exit_code !== null ? ` (exit code ${rec.exit_code})` : ''}`).catch(() => {});
    } finally {
      this.wake(id); // waiters go on even when the state could not be saved (it is in memory)
    }
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

  /** Containers adopted after a restart are not our children: poll their status files. */
  private ensurePoller(): void {
    if (this.poller) return;
    // (a caller of its own: not inside the critical section that started the poller, an adoption say)
    this.poller = setInterval(() => this.engine.outsideLock(() => this.pollEnds()), POLL_MS);
    this.poller.unref();
  }

  private pollEnds(): void {
    const live = this.store.list('container').filter((c) => isLive(c.state));
    if (live.length === 0 && this.ends.size === 0) {
      clearInterval(this.poller!);
      this.poller = null;
      return;
    }
    for (const c of live) this.onEnd(c.id).catch((err) => this.log.error({ err, container: c.id }, 'cannot record the end of the container'));
  }

  // ------------------------------------------------------------------ delete

  /** Delete: refused while running unless `stopFirst` (v0.1 routes, force). Returns the record as it was. */
  async remove(rec: ContainerRec, stopFirst: boolean): Promise<ContainerRec> {
    if (isLive(rec.state) && !stopFirst) {
      throw wrongState(`container ${rec.id} is ${rec.state}: stop it first (PATCH state=exited), or delete with force=true`);
    }
    await this.engine.remove(refOf(rec), true);
    return rec;
  }

  /** The core's hook, under its lock: kill what is left, remove the cgroup and the run's files. */
  async teardown(rec: ContainerRec): Promise<void> {
    rec.stop_requested = true;
    await this.cleanupRun(rec);
    // A container a forced delete met still running (made after the delete stopped the others):
    // its supervisor writes the exit status into the run's directory as it goes; let it finish
    // before the directory goes (bounded: a supervisor that hangs does not hold the delete).
    if (rec.shim_pid) for (let i = 0; i < 300 && (await isRunning(rec.shim_pid)); i++) await sleep(10);
    await rm(this.dir(rec.id), { recursive: true, force: true, maxRetries: 3 });
    await logLine(rec.logfile, rec.id, 'container deleted').catch(() => {});
  }

  // ------------------------------------------------------------------ restart

  /** After an agent restart: is this container's record still meaningful? (Always: it may have ended.) */
  async adopt(rec: ContainerRec): Promise<boolean> {
    this.engine.events.record('adopted', rec);
    if (!isLive(rec.state)) return true;
    if (rec.pid && (await isSameProcess(rec.pid, rec.pid_start))) {
      this.ensurePoller();
      if (rec.state === 'stopping') this.stop(rec).catch((err) => this.log.error({ err, container: rec.id }, 'stop failed'));
      return true;
    }
    await this.recordEnd(rec.id);
    return true;
  }

  /** On agent shutdown: nothing to stop (containers outlive the agent); stop polling. */
  close(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
  }
}
