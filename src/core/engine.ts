// The engine resolves references and nested definitions, calls the drivers in the right order,
// and keeps the store's references true: depth-first creation with rollback, top-down deletion.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttachSpec, MountSpec } from '../model/types.js';
import type { AttachDriver, DriverContext } from '../attach/driver.js';
import { ApiError, badRequest, conflict, notImplemented, toApiError } from '../model/errors.js';
import type { MountDeps, MountDriver } from '../mount/driver.js';
import { removeDir } from '../sys/mount.js';
import type { AnyRec, AttachRec, ContainerRec, MountRec, Owner, Ref } from '../store/records.js';
import { describeRec, refOf, sameRef } from '../store/records.js';
import type { Store } from '../store/store.js';
import { Tx } from './tx.js';

export interface Drivers {
  attach: Record<string, AttachDriver<any>>;
  mount: Record<string, MountDriver<any>>;
}

/** Container teardown is the container manager's job; the engine calls it when deleting one. */
export type ContainerTeardown = (rec: ContainerRec) => Promise<void>;

const ATTACH_KINDS = ['rbd', 'loopback', 'local', 'iscsi'] as const;
const MOUNT_KINDS = ['attach', 'bind', 'nfs', 'overlay', 'uri', 'rbd'] as const;

function at(where: string, err: unknown): ApiError {
  return toApiError(err).within(where);
}

export class Engine {
  containerTeardown: ContainerTeardown = async () => {
    throw new Error('no container manager');
  };

  constructor(
    readonly store: Store,
    readonly drivers: Drivers,
    readonly ctx: DriverContext,
  ) {}

  get mountsDir(): string {
    return join(this.ctx.runDir, 'mounts');
  }

  /** Run `fn` as one all-or-nothing change under the store's lock, then persist it. */
  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.store.mutex.run(async () => {
      const tx = new Tx();
      try {
        const out = await fn(tx);
        tx.commit();
        await this.store.save();
        return out;
      } catch (err) {
        await tx.rollback(this.ctx.log);
        throw err;
      }
    });
  }

  private track(rec: AnyRec, tx: Tx): void {
    rec.pending = true;
    this.store.put(rec);
    tx.created.push(rec);
    tx.onUndo(`forget ${describeRec(rec)}`, () => this.store.remove(refOf(rec)));
  }

  /** An `{id}` inside a spec: the object must exist (and be of the kind named, if one is). */
  private reference<T extends 'attach' | 'mount'>(type: T, id: number, kind: string | undefined, where: string) {
    try {
      const rec = this.store.get(type, id);
      const recKind = rec.kind as string;
      if (kind && kind !== recKind && !(kind === 'rbd' && recKind === 'attach')) {
        throw badRequest(`${describeRec(rec)} is not of kind "${kind}"`);
      }
      return rec;
    } catch (err) {
      throw at(where, err);
    }
  }

  /**
   * The id a nested spec references, or undefined when it is a definition. A spec without its
   * kind's definition object is a reference, and a missing `id` means 0: go-swagger clients drop
   * `id: 0` (omitempty), so `{}` or `{"kind": "overlay"}` is how they name the first object.
   */
  private referenced(spec: Record<string, unknown>, kinds: readonly string[], where: string): number | undefined {
    const defined = kinds.filter((k) => spec[k] !== undefined);
    if (spec.id !== undefined) {
      if (defined.length) throw badRequest(`${where}: give either "id" (a reference) or a definition ("${defined[0]}"), not both`);
      return spec.id as number;
    }
    return defined.length ? undefined : 0;
  }

  /** The kind-specific object of a definition, checking that it matches `kind` and nothing else is given. */
  private definition(spec: Record<string, unknown>, kinds: readonly string[], where: string): [string, Record<string, unknown>] {
    const kind = spec.kind as string | undefined;
    if (!kind) throw badRequest(`${where}: give "kind" (${kinds.join(', ')}) and its definition`);
    const body = spec[kind] as Record<string, unknown> | undefined;
    if (!body) throw badRequest(`${where}: kind is "${kind}" but "${where}.${kind}" is missing`);
    for (const k of kinds) {
      if (k !== kind && spec[k] !== undefined) throw badRequest(`${where}: "${k}" given but kind is "${kind}"`);
    }
    return [kind, body];
  }

  // ------------------------------------------------------------------ create

  /** A nested attachment: a reference to an existing one, or a definition owned by `owner`. */
  async resolveAttach(spec: AttachSpec, owner: Owner, tx: Tx, where: string): Promise<AttachRec> {
    const id = this.referenced(spec as Record<string, unknown>, ATTACH_KINDS, where);
    if (id !== undefined) return this.reference('attach', id, spec.kind, where);
    return this.createAttach(spec, owner, tx, where);
  }

  /** A nested mount: a reference to an existing one, or a definition owned by `owner`. */
  async resolveMount(spec: MountSpec, owner: Owner, tx: Tx, where: string): Promise<MountRec> {
    const id = this.referenced(spec as Record<string, unknown>, MOUNT_KINDS, where);
    if (id !== undefined) return this.reference('mount', id, spec.kind, where);
    return this.createMount(spec, owner, tx, where);
  }

  /** Define an attachment (top level, or the definition part of resolveAttach). */
  async createAttach(spec: AttachSpec, owner: Owner, tx: Tx, where: string): Promise<AttachRec> {
    const [kind, body] = this.definition(spec as Record<string, unknown>, ATTACH_KINDS, where);
    const driver = this.drivers.attach[kind];
    if (!driver) throw notImplemented(`${where}: attachments of kind "${kind}" are not supported by this build`);
    try {
      await driver.available?.(this.ctx);
    } catch (err) {
      throw at(where, err);
    }
    // Children first, so ids run depth-first; they name their owner through `me`, whose id is set below.
    const me: Ref = { type: 'attach', id: -1 };
    const holds: Ref[] = [];
    const spec2: Record<string, unknown> = { ...body };
    let driverSpec: Record<string, unknown> = body;
    if (kind === 'loopback') {
      const base = (body.base as string | undefined) ?? 'root';
      if (base === 'mount') {
        if (!body.mount) throw badRequest(`${where}.loopback: base is "mount" but no "mount" is given`);
        const child = await this.resolveMount(body.mount as MountSpec, me, tx, `${where}.loopback.mount`);
        holds.push(refOf(child));
        spec2.mount = { id: child.id };
        driverSpec = { ...body, base_dir: child.mounted.mountpoint };
      } else if (body.mount) {
        throw badRequest(`${where}.loopback: "mount" is given but base is "root" (set base to "mount")`);
      }
    }
    me.id = this.store.nextId('attach');
    const rec: AttachRec = {
      type: 'attach',
      id: me.id,
      owner,
      holds,
      kind: kind as AttachRec['kind'],
      spec: spec2,
      attached: { device_file: '', state: {} },
    };
    this.track(rec, tx);
    try {
      rec.attached = await driver.attach(driverSpec, this.ctx);
    } catch (err) {
      throw at(where, err);
    }
    const attached = rec.attached;
    tx.onUndo(`detach ${describeRec(rec)}`, () => driver.detach(driverSpec, attached, this.ctx));
    return rec;
  }

  /** Define a mount (top level, or the definition part of resolveMount). */
  async createMount(spec: MountSpec, owner: Owner, tx: Tx, where: string): Promise<MountRec> {
    let [kind, body] = this.definition(spec as Record<string, unknown>, MOUNT_KINDS, where);
    if (kind === 'rbd') {
      // v0.1: `{kind: rbd, rbd: {fs_type, mount_options, rbd: {...}}}` is an attach mount of an RBD attachment.
      const { rbd, id, fs_type, mount_options } = body as { rbd?: unknown; id?: number; fs_type: string; mount_options?: string[] };
      // As everywhere, no definition means a reference, and no id means 0 (the Go client drops it).
      const attach = rbd ? { kind: 'rbd', rbd } : { id: id ?? 0, kind: 'rbd' };
      [kind, body] = ['attach', { attach, fs_type, mount_options }];
      where = `${where}.rbd`;
    }
    const driver = this.drivers.mount[kind];
    if (!driver) throw notImplemented(`${where}: mounts of kind "${kind}" are not supported by this build`);
    try {
      await driver.available?.(body, this.ctx);
    } catch (err) {
      throw at(where, err);
    }
    // Children first (ids run depth-first); they name their owner through `me`, whose id is set below.
    const me: Ref = { type: 'mount', id: -1 };
    const rec = { holds: [] as Ref[], spec: { ...body } };
    const deps: MountDeps = {};
    if (kind === 'attach') {
      const child = await this.resolveAttach(body.attach as AttachSpec, me, tx, `${where}.attach.attach`);
      rec.holds.push(refOf(child));
      rec.spec.attach = { id: child.id };
      deps.device = { device_file: child.attached.device_file, readonly: child.attached.state.readonly === true };
    } else if (kind === 'overlay') {
      const lowers = body.lower as MountSpec[];
      deps.lowers = [];
      const ids: { id: number }[] = [];
      for (const [i, lower] of lowers.entries()) {
        const child = await this.resolveMount(lower, me, tx, `${where}.overlay.lower[${i}]`);
        if (rec.holds.some((h) => h.id === child.id)) throw badRequest(`${where}.overlay.lower[${i}]: mount ${child.id} is already a lower layer`);
        rec.holds.push(refOf(child));
        ids.push({ id: child.id });
        deps.lowers.push(child.mounted.mountpoint);
      }
      rec.spec.lower = ids;
    } else if (kind === 'bind') {
      const base = (body.base as string | undefined) ?? 'root';
      if (base === 'mount') {
        if (!body.mount) throw badRequest(`${where}.bind: base is "mount" but no "mount" is given`);
        const child = await this.resolveMount(body.mount as MountSpec, me, tx, `${where}.bind.mount`);
        rec.holds.push(refOf(child));
        rec.spec.mount = { id: child.id };
        deps.base = child.mounted.mountpoint;
      } else if (body.mount) {
        throw badRequest(`${where}.bind: "mount" is given but base is "root" (set base to "mount")`);
      }
    }
    me.id = this.store.nextId('mount');
    const mountpoint = join(this.mountsDir, `mount_${me.id}`);
    const full: MountRec = {
      type: 'mount',
      id: me.id,
      owner,
      holds: rec.holds,
      kind: kind as MountRec['kind'],
      spec: rec.spec,
      mounted: { mountpoint, state: {} },
    };
    this.track(full, tx);
    await mkdir(mountpoint, { recursive: true, mode: 0o755 });
    tx.onUndo(`remove ${mountpoint}`, () => removeDir(mountpoint));
    try {
      full.mounted = await driver.mount(body, deps, mountpoint, this.ctx);
    } catch (err) {
      throw at(where, err);
    }
    const mounted = full.mounted;
    tx.onUndo(`unmount ${describeRec(full)}`, () => driver.unmount(body, mounted, this.ctx));
    return full;
  }

  // ------------------------------------------------------------------ delete

  /**
   * Delete an object. Refused (409, naming the users) while others hold it, unless `force`, which
   * deletes the users first, top-down. Children it defined go with it unless others still use them.
   */
  async remove(ref: Ref, force: boolean, howToForce = 'or use force=true'): Promise<AnyRec> {
    const rec = this.store.get(ref.type, ref.id);
    const users = this.store.holders(ref);
    if (users.length && !force) {
      throw conflict(`${describeRec(rec)} is in use by ${users.map(describeRec).join(', ')} (delete those first, ${howToForce})`);
    }
    for (const u of users) await this.remove(refOf(u), true);
    await this.teardown(rec);
    this.store.remove(ref);
    await this.release(rec); // saves the store, with or without children left
    return rec;
  }

  /** Undo the kernel side of one object. */
  private async teardown(rec: AnyRec): Promise<void> {
    if (rec.type === 'container') return this.containerTeardown(rec);
    if (rec.type === 'attach') {
      const driver = this.drivers.attach[rec.kind]!;
      await driver.detach(rec.spec, rec.attached, this.ctx);
      return;
    }
    const driver = this.drivers.mount[rec.kind]!;
    await driver.unmount(rec.spec, rec.mounted, this.ctx);
    await removeDir(rec.mounted.mountpoint);
  }

  /** After `rec` is gone: delete the children it defined, unless someone else still uses them. */
  private async release(rec: AnyRec): Promise<void> {
    const errors: string[] = [];
    for (const h of rec.holds) {
      const child = this.store.find(h.type, h.id);
      if (!child || child.owner === 'user' || !sameRef(child.owner, refOf(rec))) continue;
      if (this.store.holders(h).length > 0) {
        child.owner = 'user'; // still in use elsewhere: it outlives its parent, and is now the user's
        continue;
      }
      try {
        await this.remove(h, false);
      } catch (err) {
        child.owner = 'user';
        errors.push(`${describeRec(child)}: ${toApiError(err).message}`);
      }
    }
    await this.store.save();
    if (errors.length) {
      throw new ApiError('INTERNAL', `${describeRec(rec)} was deleted, but what it defined could not all be torn down (kept as top-level objects): ${errors.join('; ')}`);
    }
  }

  // ------------------------------------------------------------------ restart

  /**
   * After a restart: adopt what still exists (same ids); drop what vanished, tearing down
   * whatever still stood on it, so nothing points at something gone.
   */
  async reconcile(adoptContainer: (rec: ContainerRec) => Promise<boolean>): Promise<void> {
    await this.store.mutex.run(async () => {
      const gone: AnyRec[] = [];
      for (const rec of this.store.list('attach')) {
        const a = await this.drivers.attach[rec.kind]?.adopt(rec.spec, rec.attached, this.ctx).catch(() => null);
        if (a) rec.attached = a;
        else gone.push(rec);
      }
      for (const rec of this.store.list('mount')) {
        const m = await this.drivers.mount[rec.kind]?.adopt(rec.spec, rec.mounted, this.ctx).catch(() => null);
        if (m) rec.mounted = m;
        else gone.push(rec);
      }
      for (const rec of this.store.list('container')) {
        if (!(await adoptContainer(rec))) gone.push(rec);
      }
      for (const rec of gone) {
        if (!this.store.find(rec.type, rec.id)) continue;
        this.ctx.log.warn({ object: describeRec(rec) }, 'vanished while the agent was down: dropped');
        for (const u of this.store.holders(refOf(rec))) {
          await this.remove(refOf(u), true).catch((err) => this.ctx.log.error({ err, object: describeRec(u) }, 'cannot tear down'));
        }
        this.store.remove(refOf(rec));
        await this.release(rec).catch((err) => this.ctx.log.error({ err }, 'cannot release'));
      }
      await this.store.save();
    });
  }
}
