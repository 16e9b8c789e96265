// The core: it owns the one lock, resolves references and nested definitions, calls the drivers
// in the right order, and keeps the store's references true: depth-first creation with rollback,
// top-down deletion, reconcile after a restart. Every change to the store goes through it.
import { mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttachDriver } from '../attach/driver.js';
import { AgentError, inUse, invalid, isNoSpace, noSpace, notFound, toAgentError, unsupported } from '../model/errors.js';
import type { Dep, DriverContext, Resolved } from '../model/objects.js';
import type { AttachSpec, MountSpec } from '../model/types.js';
import type { MountAlias, MountDriver } from '../mount/driver.js';
import type { AnyRec, AttachRec, ContainerRec, ImageRec, MountRec, Owner, Ref } from '../store/records.js';
import { describeRec, nounOf, refOf, sameRef } from '../store/records.js';
import type { Intent, Store } from '../store/store.js';
import { attachedLoops } from '../sys/loop.js';
import { removeDir } from '../sys/mount.js';
import { withMountSnapshot } from '../sys/mountinfo.js';
import { Mutex } from '../util/mutex.js';
import { EventHub } from './events.js';
import { cleanOrphans, raiseSeqFromRunDir, type Recovery } from './recover.js';
import { NeedImage, Tx } from './tx.js';

export interface Drivers {
  attach: Record<string, AttachDriver<any>>;
  mount: Record<string, MountDriver<any>>;
  mountAliases?: Record<string, MountAlias>;
}

/** What the core needs of the container layer when a delete reaches a container. */
export interface ContainerHooks {
  /** Stop it gracefully (signal, wait up to its stop_timeout). Called without the lock held. */
  stop(rec: ContainerRec): Promise<void>;
  /**
   * Kill what is left of it and remove its cgroup and files. Called with the lock held (after any
   * state change of it in progress, a start say, and before the next); must not wait for its end.
   */
  teardown(rec: ContainerRec): Promise<void>;
}

/** What the core needs of its image part (core/images.ts) when a spec names an image. */
export interface ImageHooks {
  /**
   * Inside a transaction: the ready image a child slot names (a reference `{id}` or an image
   * request). Throws NeedImage when it must be defined or waited for first (outside the lock).
   */
  resolve(spec: unknown, owner: Owner, tx: Tx, where: string): ImageRec;
  /** Outside the lock: define the image `need` names (memo: its id) and wait for it, until `deadline` (ms). */
  prepare(need: NeedImage, memo: Map<string, number>, deadline: number): Promise<void>;
  /** Delete its cache file (and stop its pull). Called with the lock held. */
  teardown(rec: ImageRec): Promise<void>;
  /** After a restart: still usable (its cache file there, or its pull to be redone)? */
  adopt(rec: ImageRec): Promise<boolean>;
  /** How long a request waits for an image being pulled (ms). */
  readonly pullTimeoutMs: number;
}

/** Every spec field, of every kind, that holds a key (the drivers declare them). */
export function secretFieldsOf(drivers: Drivers): Set<string> {
  return new Set([...Object.values(drivers.attach), ...Object.values(drivers.mount)].flatMap((d) => d.secretFields ?? []));
}


/** A child the delete could not tear down, kept as a top-level object, and why. */
interface KeptChild {
  kind: AgentError['kind'];
  what: string;
}

/** An object was deleted, but some of what it defined (at any depth) had to be kept. */
class PartlyReleased extends AgentError {
  readonly kept: KeptChild[];
  constructor(rec: AnyRec, kept: KeptChild[]) {
    // A reason the agent can name (a child still in use, say) is that reason's kind, not a fault.
    const kinds = new Set(kept.map((k) => k.kind));
    const kind = kinds.size === 1 && !kinds.has('INTERNAL') ? [...kinds][0]! : 'INTERNAL';
    super(kind, `${describeRec(rec)} was deleted, but what it defined could not all be torn down (kept as top-level objects): ${kept.map((k) => k.what).join('; ')}`);
    this.kept = kept;
  }
}
function at(where: string, err: unknown): AgentError {
  return toAgentError(err).within(where);
}

const keyOf = (r: Ref) => `${r.type}:${r.id}`;
/** How long a save nobody waits for may wait for another to share a write with. */
const SAVE_SOON_MS = 1000;

/** The intent of one request in flight, and the file under each loop device it saw at its beginning. */
interface OpenIntent {
  intent: Intent;
  reserve: number;
  fileOf: Map<string, string>;
}

function depOf(rec: AttachRec | MountRec | ImageRec): Dep {
  if (rec.type === 'image') return { type: 'image', id: rec.id, path: rec.path!, format: rec.format as Extract<Dep, { type: 'image' }>['format'] };
  return rec.type === 'attach'
    ? // (records written before `readonly` moved out of the driver's state keep it there)
      { type: 'attach', id: rec.id, device_file: rec.attached.device_file, readonly: rec.attached.readonly ?? rec.attached.state.readonly === true }
    : { type: 'mount', id: rec.id, mountpoint: rec.mounted.mountpoint };
}

/**
 * Concurrency. The lock is held only for bookkeeping, never across kernel work or a wait for a
 * process: requests run side by side, each a sequence of short sections that decide (ids, names,
 * references, pins, marks, state changes) and of kernel work between them that no other request
 * can disturb, because what it works on is marked:
 * - a record being created is `pending` (invisible: a reference to it or a delete of it is
 *   NOT_FOUND) until its commit is durable, then visible at once (`committing` while written);
 * - an object a request in flight references is pinned by that request: a delete of it (or of
 *   anything it would take with it) waits until that request is over, committed or undone, then
 *   decides as if the two had come one after the other (IN_USE, or with force the new user goes
 *   too). Waiting, rather than refusing, keeps the answers those of some serial order, which is
 *   what a client racing its own requests expects; a create never waits for anything, so waits
 *   cannot form a cycle;
 * - an object being deleted is marked from its delete's first decision to its record's removal:
 *   a new reference to it is NOT_FOUND (the delete came first), another delete of it waits for
 *   the first (then NOT_FOUND), and a container's state change is refused.
 * The sections that decide are synchronous (no await between a check and the mark it sets), so
 * JavaScript's run-to-completion makes them atomic; the Mutex orders the sections that must await
 * (a container's state change and its teardown, reconcile, the stop) among themselves.
 * Saves are group commits (Saver): each request awaits a write that began after its change, and
 * concurrent requests share it.
 */
export class Engine {
  private readonly lock = new Mutex();
  /** Requests in flight that reference an object (by key): a delete of it waits for them. */
  /** Requests in flight that use an object, and work on it outside the lock (busy()): a delete waits for them. */
  private readonly pins = new Map<string, Set<{ readonly settled: Promise<unknown> }>>();
  /** Objects whose delete has begun (by key), and the end of that delete. */
  private readonly deleting = new Map<string, Promise<void>>();
  /** The request making a pending record. */
  private readonly makers = new WeakMap<AnyRec, Tx>();
  /** The intents of the requests in flight (the state file holds them merged into one). */
  private readonly intents = new Map<Tx, OpenIntent>();
  /** Every change of a record, published once it is saved (GET /events, waits, metrics). */
  readonly events = new EventHub();
  readonly attachKinds: string[];
  readonly mountKinds: string[];

  /** The image part (set by the wiring; without it, a spec naming an image is refused). */
  images: ImageHooks | null = null;

  constructor(
    readonly store: Store,
    readonly drivers: Drivers,
    readonly ctx: DriverContext,
    private readonly containers: ContainerHooks,
  ) {
    this.attachKinds = Object.keys(drivers.attach);
    this.mountKinds = [...Object.keys(drivers.mount), ...Object.keys(drivers.mountAliases ?? {})];
    this.events.log = ctx.log;
  }

  get mountsDir(): string {
    return join(this.ctx.runDir, 'mounts');
  }

  /** Mountpoints whose directory could not be removed yet (a copy of the mount is held elsewhere). */
  private readonly staleDirs = new Set<string>();

  /**
   * Run `fn` as one all-or-nothing change; answered only once it is durable. Before anything
   * touches the kernel, the request's intent is saved when it may put loop devices over files
   * outside the run-dir (the id sequence advanced past every id `spec` may take, the files): a
   * crash at any point leaves a state file from which the next start removes whatever the request
   * had made. (Everything else a request makes is named by its ids under the run-dir, mountpoints,
   * cgroups, log files, which the next start finds by name: such a request writes no intent.) The
   * commit is the request's last write; the records become visible once it is durable. A failed
   * save at either end undoes the request. `fn` runs without the lock (see the class comment).
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>, spec?: unknown): Promise<T> {
    // An image the request names that is not ready: the attempt is undone, the image defined and
    // waited for (bounded by image_pull_timeout), and the request runs again.
    const memo = new Map<string, number>();
    const deadline = Date.now() + (this.images?.pullTimeoutMs ?? 0);
    for (;;) {
      try {
        return await this.attempt(fn, spec, memo);
      } catch (err) {
        if (!(err instanceof NeedImage) || !this.images) throw err;
        await this.images.prepare(err, memo, deadline);
      }
    }
  }

  private async attempt<T>(fn: (tx: Tx) => Promise<T>, spec: unknown, memo: Map<string, number>): Promise<T> {
    const tx = new Tx(memo);
    const planned = await this.intentFor(spec);
    if (planned) {
      this.openIntent(tx, planned);
      try {
        await this.save();
      } catch (err) {
        this.closeIntent(tx); // nothing was touched: a full disk refuses the request as it is
        tx.settle();
        throw err;
      }
    }
    let out: T;
    try {
      out = await fn(tx);
      // The commit: the records go into the next write, the intent leaves it in the same write.
      tx.commit();
      this.closeIntent(tx);
      try {
        await this.save();
      } catch (err) {
        tx.uncommit(); // nothing the answer would report is durable: undo it all
        if (planned) this.openIntent(tx, planned); // (the file names the loop files until it is undone)
        throw err;
      }
    } catch (err) {
      if (!(err instanceof NeedImage)) this.events.failure('create', err);
      await tx.rollback(this.ctx.log);
      this.closeIntent(tx);
      // Drop the intent from the file too (best effort: the next save does it otherwise).
      await this.save().catch((e) => this.ctx.log.warn({ err: e }, 'cannot save the state after undoing a request'));
      tx.settle();
      throw this.named(err);
    }
    tx.publish();
    tx.done();
    for (const r of tx.created) this.events.record('created', r);
    tx.settle();
    return out;
  }

  private openIntent(tx: Tx, o: OpenIntent): void {
    this.intents.set(tx, o);
    this.applyIntents();
  }

  private closeIntent(tx: Tx): void {
    if (this.intents.delete(tx)) this.applyIntents();
  }

  /**
   * The intents in flight, merged into the one the state file holds: the files of all, the
   * reserves added up (each bounds the ids its request may still take), and as "already there"
   * only the loop devices that every request naming their file saw at its beginning (a device one
   * of them did not see may be that one's).
   */
  private applyIntents(): void {
    if (this.intents.size === 0) return this.store.endIntent();
    const all = [...this.intents.values()];
    const files = new Set(all.flatMap((o) => o.intent.loop_files));
    const before = new Set<string>();
    for (const o of all) {
      for (const [dev, file] of o.fileOf) {
        if (all.every((p) => !p.intent.loop_files.includes(file) || p.intent.loops_before.includes(dev))) before.add(dev);
      }
    }
    const at = all.map((o) => o.intent.at).sort()[0]!;
    this.store.beginIntent({ at, loop_files: [...files], loops_before: [...before] }, all.reduce((n, o) => n + o.reserve, 0));
  }

  /** A full disk met anywhere in a request (a log line, an overlay's upper directory) says where to look. */
  private named(err: unknown): unknown {
    if (err instanceof AgentError || !isNoSpace(err)) return err;
    return noSpace(`${(err as Error).message}: the run-dir ${this.ctx.runDir} (or another filesystem the agent writes to) is full`, err);
  }

  /**
   * The intent of a create: how many ids it may take (an upper bound), the loop files it names;
   * null when it names none (a spec given: its kernel objects are all found by name).
   */
  private async intentFor(spec: unknown): Promise<OpenIntent | null> {
    const paths = new Set<string>();
    let objects = 0;
    const todo: unknown[] = [spec];
    while (todo.length) {
      const x = todo.pop();
      if (x === null || typeof x !== 'object') continue;
      if (Array.isArray(x)) {
        todo.push(...x);
        continue;
      }
      objects++;
      const o = x as Record<string, unknown>;
      const lb = o.loopback as Record<string, unknown> | undefined;
      if (o.kind === 'loopback' && lb && typeof lb.path === 'string' && (lb.base ?? 'root') === 'root') paths.add(lb.path);
      todo.push(...Object.values(o));
    }
    const files: string[] = [];
    for (const p of paths) {
      const real = await realpath(join('/', p)).catch(() => null);
      if (real) files.push(real);
    }
    if (spec !== undefined && files.length === 0) return null;
    const before: string[] = [];
    const fileOf = new Map<string, string>();
    if (files.length) {
      for (const [dev, file] of await attachedLoops()) {
        if (!files.includes(file)) continue;
        before.push(dev);
        fileOf.set(dev, file);
      }
    }
    // Without a spec the bound is generous: unused ids are only skipped after a crash.
    const reserve = spec === undefined ? 4096 : objects + 1;
    return { intent: { at: new Date().toISOString(), loop_files: files, loops_before: before }, reserve, fileOf };
  }

  /** `fn` as a caller of its own, not inside the critical section it was registered in (Mutex.outside). */
  outsideLock<T>(fn: () => T): T {
    return this.lock.outside(fn);
  }

  /**
   * Change records under the lock, then save (a container's state, say), the save outside the
   * lock (a group commit with whatever else is saving). `saved` runs once the save is durable
   * (also when `fn` or the save failed: the change is in memory); saves complete in the order
   * they were asked for, so the events it publishes come in the order of the changes and after them.
   */
  async update<T>(fn: () => Promise<T> | T, saved?: () => void, durable = true): Promise<T> {
    if (!durable) {
      // What the change records is durable elsewhere already (a container's end: its supervisor's
      // status file): the save goes with the next group commit, nobody waits for it.
      try {
        return await this.lock.run(async () => fn());
      } finally {
        this.saveSoon();
        saved?.();
      }
    }
    try {
      const out = await this.lock.run(async () => fn());
      await this.save();
      return out;
    } finally {
      saved?.();
    }
  }

  private soon: NodeJS.Timeout | null = null;

  /** A durable write of the state (group commit); it also carries whatever saveSoon() was holding. */
  private save(): Promise<void> {
    if (this.soon) {
      clearTimeout(this.soon);
      this.soon = null;
    }
    return this.store.save();
  }

  /** A write nobody waits for: it goes with the next save, or on its own a moment later. */
  private saveSoon(): void {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.store.save().catch((err) => this.ctx.log.error({ err }, 'cannot save the state'));
    }, SAVE_SOON_MS);
    this.soon.unref();
  }

  /** The end of the request making `rec` (committed or undone), while it is pending. */
  settledOf(rec: AnyRec): Promise<void> | undefined {
    return rec.pending ? this.makers.get(rec)?.settled : undefined;
  }

  /** Its delete has begun: it is going, whatever is asked of it now. */
  isDeleting(rec: AnyRec): boolean {
    return this.deleting.has(keyOf(rec));
  }

  /** `tx` uses `ref` until it is over: a delete of it waits. */
  private pin(ref: Ref, tx: Tx): void {
    const release = this.addPin(keyOf(ref), tx);
    if (release) tx.onSettle(release);
  }

  /** Add `holder` to the pins of key `k`; its release, or null when it holds that pin already. */
  private addPin(k: string, holder: { readonly settled: Promise<unknown> }): (() => void) | null {
    let set = this.pins.get(k);
    if (!set) this.pins.set(k, (set = new Set()));
    if (set.has(holder)) return null;
    set.add(holder);
    const mine = set;
    return () => {
      mine.delete(holder);
      if (mine.size === 0 && this.pins.get(k) === mine) this.pins.delete(k);
    };
  }

  /**
   * Work on `rec` outside the lock (a container's start: the helper's spawn and ready wait): a
   * delete of it waits until the work is over, as for a request in flight that uses it. The
   * caller checks what it must (not being deleted, its state) in the same synchronous section.
   */
  async busy<T>(rec: AnyRec, work: () => Promise<T>): Promise<T> {
    let done!: () => void;
    const token = { settled: new Promise<void>((r) => (done = r)) };
    const release = this.addPin(keyOf(rec), token)!;
    try {
      return await work();
    } finally {
      release();
      done();
    }
  }

  /** The ends of the requests in flight that use `ref` (none: undefined). */
  private pinnedBy(ref: Ref): Promise<unknown> | undefined {
    const set = this.pins.get(keyOf(ref));
    return set?.size ? Promise.all([...set].map((t) => t.settled)) : undefined;
  }

  /** Put a new record in the store as part of `tx` (invisible until the transaction publishes it). */
  track(rec: AnyRec, tx: Tx): void {
    rec.pending = true;
    this.makers.set(rec, tx);
    this.store.put(rec);
    tx.created.push(rec);
    tx.onUndo(`forget ${describeRec(rec)}`, () => this.store.remove(refOf(rec)));
  }

  // ------------------------------------------------------------------ references and definitions

  /**
   * The id a nested spec references, or undefined when it is a definition. A spec without its
   * kind's definition object is a reference, and a missing `id` means 0: go-swagger clients drop
   * `id: 0` (omitempty), so `{}` or `{"kind": "overlay"}` is how they name the first object.
   */
  private referenced(spec: Record<string, unknown>, kinds: readonly string[], where: string): number | undefined {
    const defined = kinds.filter((k) => spec[k] !== undefined);
    if (spec.id !== undefined) {
      if (defined.length) throw invalid(`${where}: give either "id" (a reference) or a definition ("${defined[0]}"), not both`);
      return spec.id as number;
    }
    return defined.length ? undefined : 0;
  }

  /**
   * An `{id}` inside a spec: the object must exist (and be of the kind named, if one is); it is
   * pinned for `tx` (a delete of it waits until the request is over). One being deleted is gone.
   */
  private reference<T extends 'attach' | 'mount'>(type: T, id: number, kind: string | undefined, where: string, tx: Tx) {
    try {
      if (this.deleting.has(keyOf({ type, id }))) throw notFound(`no ${nounOf(type)} with id ${id}`);
      const rec = this.store.get(type, id);
      const recKind = rec.kind as string;
      const meant = (kind && this.drivers.mountAliases?.[kind]?.of) || kind;
      if (type === 'mount' && kind && kind !== recKind && meant !== recKind) throw invalid(`${describeRec(rec)} is not of kind "${kind}"`);
      if (type === 'attach' && kind && kind !== recKind) throw invalid(`${describeRec(rec)} is not of kind "${kind}"`);
      this.pin(refOf(rec), tx);
      return rec;
    } catch (err) {
      throw at(where, err);
    }
  }

  /** The kind-specific object of a definition, checking that it matches `kind` and nothing else is given. */
  private definition(spec: Record<string, unknown>, kinds: readonly string[], where: string): [string, Record<string, unknown>] {
    const kind = spec.kind as string | undefined;
    if (!kind) throw invalid(`${where}: give "kind" (${kinds.join(', ')}) and its definition`);
    const body = spec[kind] as Record<string, unknown> | undefined;
    if (!body) throw invalid(`${where}: kind is "${kind}" but "${where}.${kind}" is missing`);
    for (const k of kinds) {
      if (k !== kind && spec[k] !== undefined) throw invalid(`${where}: "${k}" given but kind is "${kind}"`);
    }
    return [kind, body];
  }

  /** A nested attachment: a reference to an existing one, or a definition owned by `owner`. */
  async resolveAttach(spec: AttachSpec, owner: Owner, tx: Tx, where: string): Promise<AttachRec> {
    const id = this.referenced(spec as Record<string, unknown>, this.attachKinds, where);
    if (id !== undefined) return this.reference('attach', id, spec.kind, where, tx);
    return this.createAttach(spec, owner, tx, where);
  }

  /** A nested mount: a reference to an existing one, or a definition owned by `owner`. */
  async resolveMount(spec: MountSpec, owner: Owner, tx: Tx, where: string): Promise<MountRec> {
    const id = this.referenced(spec as Record<string, unknown>, this.mountKinds, where);
    if (id !== undefined) return this.reference('mount', id, spec.kind, where, tx);
    return this.createMount(spec, owner, tx, where);
  }

  /**
   * Resolve the children a driver declares (ids run depth-first: children before their parent),
   * each named by its place in the spec. Returns what the record keeps and what the driver gets.
   */
  private async children(
    driver: AttachDriver<any> | MountDriver<any>,
    kind: string,
    body: Record<string, unknown>,
    me: Ref,
    tx: Tx,
    where: string,
  ): Promise<{ holds: Ref[]; spec: Record<string, unknown>; deps: Resolved }> {
    const holds: Ref[] = [];
    const spec = { ...body };
    const deps: Resolved = {};
    let slots;
    try {
      slots = driver.children?.(body as never) ?? [];
    } catch (err) {
      throw at(where, err);
    }
    for (const slot of slots) {
      let given: unknown;
      try {
        given = slot.derive ? slot.derive(deps) : body[slot.field];
      } catch (err) {
        throw at(where, err);
      }
      if (slot.derive && given === undefined) continue;
      if (given === undefined || given === null || (slot.many && !Array.isArray(given))) {
        throw invalid(`${where}.${kind}.${slot.field}: ${slot.many ? 'a list of references or definitions' : 'a reference or a definition'} is needed`);
      }
      const list = slot.many ? (given as unknown[]) : [given];
      const recs: Array<AttachRec | MountRec | ImageRec> = [];
      for (const [i, child] of list.entries()) {
        const w = `${where}.${kind}.${slot.field}${slot.many ? `[${i}]` : ''}`;
        const rec =
          slot.type === 'attach'
            ? await this.resolveAttach(child as AttachSpec, me, tx, w)
            : slot.type === 'mount'
              ? await this.resolveMount(child as MountSpec, me, tx, w)
              : this.resolveImage(child, me, tx, w);
        if (holds.some((h) => sameRef(h, refOf(rec)))) throw invalid(`${w}: ${describeRec(rec)} is already named in this ${kind}`);
        holds.push(refOf(rec));
        recs.push(rec);
      }
      spec[slot.field] = slot.many ? recs.map((r) => ({ id: r.id })) : { id: recs[0]!.id };
      deps[slot.field] = slot.many ? recs.map(depOf) : depOf(recs[0]!);
    }
    return { holds, spec, deps };
  }

  /** A nested image: a reference `{id}` or an image request (core/images.ts). */
  private resolveImage(spec: unknown, owner: Owner, tx: Tx, where: string): ImageRec {
    if (!this.images) throw unsupported(`${where}: images are not available in this agent`);
    return this.images.resolve(spec, owner, tx, where);
  }

  // ------------------------------------------------------------------ create

  /** Define an attachment (top level, or the definition part of resolveAttach). */
  async createAttach(spec: AttachSpec, owner: Owner, tx: Tx, where: string): Promise<AttachRec> {
    const [kind, body] = this.definition(spec as Record<string, unknown>, this.attachKinds, where);
    const driver = this.drivers.attach[kind];
    if (!driver) throw unsupported(`${where}: attachments of kind "${kind}" are not supported by this build`);
    await driver.available?.(body, this.ctx).catch((err) => {
      throw at(where, err);
    });
    // Children name their owner through `me`, whose id is given after theirs.
    const me: Ref = { type: 'attach', id: -1 };
    const kids = await this.children(driver, kind, body, me, tx, where);
    me.id = this.store.nextId('attach');
    const rec: AttachRec = {
      type: 'attach',
      id: me.id,
      owner,
      holds: kids.holds,
      kind: kind as AttachRec['kind'],
      spec: kids.spec,
      attached: { device_file: '', state: {} },
    };
    this.track(rec, tx);
    try {
      rec.attached = await this.events.timed('attach', kind, () => driver.attach(body, kids.deps, this.ctx));
    } catch (err) {
      throw at(where, err);
    }
    const attached = rec.attached;
    tx.onUndo(`detach ${describeRec(rec)}`, () => driver.detach(body, attached, this.ctx));
    return rec;
  }

  /** Define a mount (top level, or the definition part of resolveMount). */
  async createMount(spec: MountSpec, owner: Owner, tx: Tx, where: string): Promise<MountRec> {
    let [kind, body] = this.definition(spec as Record<string, unknown>, this.mountKinds, where);
    const alias = this.drivers.mountAliases?.[kind];
    if (alias) {
      where = `${where}.${kind}`;
      [kind, body] = [alias.of, alias.expand(body)];
    }
    const driver = this.drivers.mount[kind];
    if (!driver) throw unsupported(`${where}: mounts of kind "${kind}" are not supported by this build`);
    await driver.available?.(body, this.ctx).catch((err) => {
      throw at(where, err);
    });
    const me: Ref = { type: 'mount', id: -1 };
    const kids = await this.children(driver, kind, body, me, tx, where);
    me.id = this.store.nextId('mount');
    const mountpoint = join(this.mountsDir, `mount_${me.id}`);
    const rec: MountRec = {
      type: 'mount',
      id: me.id,
      owner,
      holds: kids.holds,
      kind: kind as MountRec['kind'],
      spec: kids.spec,
      mounted: { mountpoint, state: {} },
    };
    this.track(rec, tx);
    await mkdir(mountpoint, { recursive: true, mode: 0o755 });
    tx.onUndo(`remove ${mountpoint}`, () => removeDir(mountpoint));
    try {
      rec.mounted = await this.events.timed('mount', kind, () => driver.mount(body, kids.deps, mountpoint, this.ctx));
    } catch (err) {
      throw at(where, err);
    }
    const mounted = rec.mounted;
    tx.onUndo(`unmount ${describeRec(rec)}`, () => driver.unmount(body, mounted, this.ctx));
    return rec;
  }

  // ------------------------------------------------------------------ delete

  /**
   * Delete an object. Refused (409, naming the users) while others hold it, unless `force`, which
   * deletes the users first, top-down. Children it defined go with it unless others still use them.
   * Running containers a forced delete takes are stopped first. No lock is held across the
   * teardowns (see the class comment: the objects are marked); answered once the removal is durable.
   */
  async remove(ref: Ref, force: boolean, howToForce = 'or use force=true'): Promise<AnyRec> {
    this.store.get(ref.type, ref.id);
    if (force) await this.stopUsers(ref);
    try {
      return await this.removeOne(ref, force, howToForce, new Set());
    } finally {
      await this.retryStaleDirs();
      // Also when a child could not be torn down: the record went. The kernel objects are gone
      // whatever the disk says; a full disk must not turn a done delete into an error (deleting
      // is how space is freed): the next save writes it, and a start finds them vanished.
      await this.save().catch((err) => {
        if (toAgentError(err).kind !== 'INSUFFICIENT_STORAGE') throw err;
        this.ctx.log.error({ err }, 'deleted, but the state could not be saved (the run-dir is full)');
      });
    }
  }

  private async retryStaleDirs(): Promise<void> {
    for (const dir of [...this.staleDirs]) {
      await removeDir(dir).then(
        () => this.staleDirs.delete(dir),
        () => {},
      );
    }
  }

  private async stopUsers(ref: Ref): Promise<void> {
    const rec = this.store.find(ref.type, ref.id);
    if (!rec) return;
    if (rec.type === 'container') return this.containers.stop(rec);
    await Promise.all(this.store.holders(ref).map((u) => this.stopUsers(refOf(u))));
  }

  /**
   * Delete one object (its users first when forced), then release what it defined. The decision
   * (exists, who uses it) and the mark are one synchronous section; a delete of it already under
   * way, or a request in flight that uses it, is waited for first, then it is decided again.
   * `mine` holds what this delete has marked: met again (a child its user defined), it is left
   * to the level that marked it, never waited for.
   */
  private async removeOne(ref: Ref, force: boolean, howToForce: string, mine: Set<string>): Promise<AnyRec> {
    const k = keyOf(ref);
    for (;;) {
      const rec = this.store.get(ref.type, ref.id);
      if (mine.has(k)) return rec;
      const other = this.deleting.get(k) ?? this.pinnedBy(ref);
      if (other) {
        await other;
        continue;
      }
      const users = this.store.holders(ref);
      if (users.length && !force) {
        throw inUse(`${describeRec(rec)} is in use by ${users.map(describeRec).join(', ')} (delete those first, ${howToForce})`);
      }
      let done!: () => void;
      this.deleting.set(
        k,
        new Promise<void>((r) => (done = r)),
      );
      mine.add(k);
      try {
        // A user may already be gone with an earlier one (or with a delete of its own).
        for (const u of users) {
          if (!this.store.find(u.type, u.id)) continue;
          await this.removeOne(refOf(u), true, howToForce, mine).catch((err) => {
            if (toAgentError(err).kind !== 'NOT_FOUND') throw err;
          });
        }
        await this.teardown(rec);
        this.store.remove(ref);
        this.events.record('deleted', rec);
      } finally {
        mine.delete(k);
        this.deleting.delete(k);
        done();
      }
      await this.release(rec, mine);
      return rec;
    }
  }

  /** Undo the kernel side of one object (a container's under the lock, ordered with its state changes). */
  private async teardown(rec: AnyRec): Promise<void> {
    if (rec.type === 'container') return this.lock.run(() => this.containers.teardown(rec as ContainerRec));
    if (rec.type === 'image') return this.images?.teardown(rec);
    if (rec.type === 'attach') {
      await this.drivers.attach[rec.kind]!.detach(rec.spec, rec.attached, this.ctx);
      return;
    }
    await this.drivers.mount[rec.kind]!.unmount(rec.spec, rec.mounted, this.ctx);
    try {
      await removeDir(rec.mounted.mountpoint);
    } catch (err) {
      // The mount is gone, so the record goes; its directory is pinned by a copy of the mount held
      // elsewhere (another mount namespace, a recursive bind of a parent): removed later.
      this.staleDirs.add(rec.mounted.mountpoint);
      this.ctx.log.warn({ err, dir: rec.mounted.mountpoint }, 'unmounted, but the mountpoint cannot be removed yet: retried later');
    }
  }

  /**
   * After `rec` is gone: delete the children it defined, unless someone else still uses them (a
   * request in flight that uses one is waited for first; a delete of one under way, likewise).
   */
  private async release(rec: AnyRec, mine: Set<string>): Promise<void> {
    const kept: KeptChild[] = [];
    for (const h of rec.holds) {
      for (;;) {
        const child = this.store.find(h.type, h.id);
        if (!child || child.pending || child.owner === 'user' || !sameRef(child.owner, refOf(rec))) break;
        if (mine.has(keyOf(h))) break; // this delete is taking it down already (a level below)
        const other = this.deleting.get(keyOf(h)) ?? this.pinnedBy(h);
        if (other) {
          await other;
          continue;
        }
        // An image stays cached when what defined it goes (evicted later, least recently used first).
        if (child.type === 'image') {
          child.owner = 'user';
          break;
        }
        if (this.store.holders(h).length > 0) {
          child.owner = 'user'; // still in use elsewhere: it outlives its parent, and is now the user's
          break;
        }
        try {
          await this.removeOne(h, false, '', mine);
        } catch (err) {
          // The child itself went, only some of its own children stayed: those are what was kept.
          if (err instanceof PartlyReleased) {
            kept.push(...err.kept);
            break;
          }
          child.owner = 'user';
          const e = toAgentError(err);
          kept.push({ kind: e.kind, what: `${describeRec(child)}: ${e.message}` });
        }
        break;
      }
    }
    if (kept.length) throw new PartlyReleased(rec, kept);
  }

  // ------------------------------------------------------------------ restart

  /** An adopt that failed (a timeout, say) is no proof the object is gone: keep it, loudly. */
  private keptUnchecked<T>(rec: AnyRec, err: unknown, as: T): T {
    this.ctx.log.error({ err, object: describeRec(rec) }, 'cannot check it after the restart: kept as it was');
    return as;
  }

  /**
   * After a restart: adopt what still exists (same ids); drop what vanished, tearing down
   * whatever still stood on it, so nothing points at something gone.
   */
  async reconcile(adoptContainer: (rec: ContainerRec) => Promise<boolean>, recovery: Recovery = {}): Promise<void> {
    await this.lock.run(async () => {
      const gone: AnyRec[] = [];
      // Images first: a ready image whose cache file vanished takes what stands on it along.
      for (const rec of this.store.list('image')) {
        const ok = this.images ? await this.images.adopt(rec).catch((err) => this.keptUnchecked(rec, err, true)) : true;
        if (ok) this.events.record('adopted', rec);
        else gone.push(rec);
      }
      // Adoption only looks: one reading of the mount table serves every mount.
      await withMountSnapshot(async () => {
        for (const rec of this.store.list('attach')) {
          // A check that fails is not a vanished object: keep it (and what stands on it), and say so.
          const a = await this.drivers.attach[rec.kind]?.adopt(rec.spec, rec.attached, this.ctx).catch((err) => this.keptUnchecked(rec, err, rec.attached));
          if (a) {
            rec.attached = a;
            this.events.record('adopted', rec);
          } else gone.push(rec);
        }
        for (const rec of this.store.list('mount')) {
          const m = await this.drivers.mount[rec.kind]?.adopt(rec.spec, rec.mounted, this.ctx).catch((err) => this.keptUnchecked(rec, err, rec.mounted));
          if (m) {
            rec.mounted = m;
            this.events.record('adopted', rec);
          } else gone.push(rec);
        }
      });
      for (const rec of this.store.list('container')) {
        if (!(await adoptContainer(rec))) gone.push(rec);
      }
      for (const rec of gone) {
        if (!this.store.find(rec.type, rec.id)) continue;
        this.ctx.log.warn({ object: describeRec(rec) }, 'vanished while the agent was down: dropped');
        // Everything that stood on it goes too: name each one, not only what vanished.
        const above = (r: Ref): AnyRec[] => this.store.holders(r).flatMap((u) => [u, ...above(refOf(u))]);
        for (const u of new Set(above(refOf(rec)))) this.ctx.log.warn({ object: describeRec(u), stood_on: describeRec(rec) }, 'torn down: what it stood on vanished');
        for (const u of this.store.holders(refOf(rec))) {
          await this.removeOne(refOf(u), true, '', new Set()).catch((err) => this.ctx.log.error({ err, object: describeRec(u) }, 'cannot tear down'));
        }
        this.store.remove(refOf(rec));
        this.events.record('vanished', rec);
        await this.release(rec, new Set()).catch((err) => this.ctx.log.error({ err }, 'cannot release'));
      }
      // What no record owns: the leftovers of a request the last agent died in.
      await raiseSeqFromRunDir(this.store, this.ctx.runDir);
      const cleaned = await cleanOrphans(this.store, this.ctx.runDir, this.ctx.log, recovery);
      const n = cleaned.mounts.length + cleaned.loops.length + cleaned.cgroups.length + cleaned.supervisors.length;
      if (n || recovery.intent) this.ctx.log.warn({ ...cleaned, intent: recovery.intent }, `removed ${n} kernel objects no record owned (left by an unfinished request)`);
      // A full disk must not keep the agent from starting (and from deleting, which frees it).
      await this.save().catch((err) => {
        if (toAgentError(err).kind !== 'INSUFFICIENT_STORAGE') throw err;
        this.ctx.log.error({ err }, 'cannot save the state at start (the run-dir is full): serving anyway');
      });
    });
  }
}
