// One agent's core on a temporary run-dir, wired as src/agent.ts wires it, over the fake drivers;
// plus the brute-force checks the store's bookkeeping is compared against.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Views } from '../../../src/api/views.js';
import { type ContainerHooks, Engine, secretFieldsOf } from '../../../src/core/engine.js';
import { AgentError, type ErrorKind } from '../../../src/model/errors.js';
import type { AnyRec, AttachRec, ContainerRec, MountRec, ObjType, Ref } from '../../../src/store/records.js';
import { describeRec, refOf } from '../../../src/store/records.js';
import { Store } from '../../../src/store/store.js';
import { FakeWorld, fakeDrivers } from './fakes.js';

export type Spec = Record<string, unknown>;
const TYPES: ObjType[] = ['attach', 'mount', 'container'];

export class Harness {
  readonly world = new FakeWorld();
  readonly drivers = fakeDrivers(this.world);
  /** Every id the store handed out, per type, across reloads (to prove none is given twice). */
  readonly given: Record<ObjType, number[]> = { attach: [], mount: [], container: [], image: [] };
  /** Log lines the agent wrote (pino JSON, parsed). */
  readonly logs: Array<Record<string, unknown>> = [];
  store!: Store;
  engine!: Engine;
  views!: Views;

  private constructor(readonly dir: string) {}

  static async create(): Promise<Harness> {
    const h = new Harness(await mkdtemp(join(tmpdir(), 'imageapi-core-')));
    await h.open();
    return h;
  }

  /** A new Store and Engine on the same run-dir, as after an agent restart (load, then reconcile). */
  async reopen(adoptContainer: (rec: ContainerRec) => Promise<boolean> = async () => true): Promise<void> {
    await this.open();
    await this.engine.reconcile(adoptContainer);
  }

  private async open(): Promise<void> {
    const log = pino({ level: 'debug' }, { write: (line: string) => void this.logs.push(JSON.parse(line)) });
    this.store = new Store(this.dir, { secretFields: secretFieldsOf(this.drivers) });
    await this.store.load();
    const store = this.store;
    const nextId = store.nextId.bind(store);
    store.nextId = (type) => {
      const id = nextId(type);
      this.given[type].push(id);
      return id;
    };
    const hooks: ContainerHooks = {
      stop: (rec) => this.world.enter({ op: 'stop', kind: 'container', name: String(rec.id), spec: {} }),
      teardown: (rec) => this.world.enter({ op: 'teardown', kind: 'container', name: String(rec.id), spec: {} }),
    };
    this.engine = new Engine(store, this.drivers, { runDir: this.dir, log, config: {} }, hooks);
    this.views = new Views(store, this.drivers);
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  createAttach(spec: Spec): Promise<AttachRec> {
    return this.engine.transaction((tx) => this.engine.createAttach(spec as never, 'user', tx, 'attach'));
  }

  createMount(spec: Spec): Promise<MountRec> {
    return this.engine.transaction((tx) => this.engine.createMount(spec as never, 'user', tx, 'mount'));
  }

  /** A container record on a mount, made the way the container layer makes one (no process). */
  createContainer(mount: Spec, name?: string): Promise<ContainerRec> {
    return this.engine.transaction(async (tx) => {
      const me: Ref = { type: 'container', id: -1 };
      const m = await this.engine.resolveMount(mount as never, me, tx, 'container.mount');
      me.id = this.store.nextId('container');
      const rec: ContainerRec = {
        type: 'container',
        id: me.id,
        owner: 'user',
        holds: [refOf(m)],
        ...(name ? { name } : {}),
        command: '/bin/true',
        argv: ['/bin/true'],
        systemd: false,
        namespaces: ['mnt'],
        hostname: `c${me.id}`,
        env: [],
        stop_timeout: 1,
        state: 'created',
        logfile: join(this.dir, `${me.id}.log`),
        pid: null,
        shim_pid: null,
        pid_start: null,
        exit_code: null,
        stop_requested: false,
        created_at: new Date(0).toISOString(),
        started_at: null,
        finished_at: null,
        cgroups: [],
      };
      this.engine.track(rec, tx);
      return rec;
    });
  }

  remove(type: ObjType, id: number, force = false): Promise<AnyRec> {
    return this.engine.remove({ type, id }, force);
  }

  /** The state file as written. */
  async saved(): Promise<{ seq: Record<ObjType, number>; attach: AttachRec[]; mount: MountRec[]; container: ContainerRec[] }> {
    return JSON.parse(await readFile(this.store.file, 'utf8'));
  }

  async savedText(): Promise<string> {
    return readFile(this.store.file, 'utf8');
  }

  /** Every record of the store, committed or not. */
  all(): AnyRec[] {
    const out: AnyRec[] = [];
    for (const t of TYPES) for (const id of this.ids(t)) {
      const r = this.store.find(t, id);
      if (r) out.push(r);
    }
    return out;
  }

  /** The name a definition was given (records keep it in their spec). */
  nameOf(rec: AnyRec): string {
    return rec.type === 'container' || rec.type === 'image' ? `${rec.type}:${rec.id}` : String(rec.spec.name);
  }

  byName(name: string): AttachRec | MountRec | undefined {
    return this.all().find((r): r is AttachRec | MountRec => (r.type === 'attach' || r.type === 'mount') && r.spec.name === name);
  }

  private ids(type: ObjType): number[] {
    const max = Math.max(-1, ...this.given[type]);
    return Array.from({ length: max + 1 }, (_, i) => i);
  }

  /**
   * The store's reverse index and counts against a scan of every record, and the references
   * themselves: nothing pending at rest, no hold on a missing record, an owner holds what it owns.
   */
  checkIndex(): void {
    const recs = this.all();
    for (const r of recs) {
      assert.ok(!r.pending, `${describeRec(r)} is still pending after every request settled`);
      const keys = r.holds.map((h) => `${h.type}:${h.id}`);
      assert.equal(new Set(keys).size, keys.length, `${describeRec(r)} holds a child twice`);
      for (const h of r.holds) assert.ok(this.store.find(h.type, h.id), `${describeRec(r)} holds ${h.type} ${h.id}, which does not exist`);
      if (r.owner !== 'user') {
        const owner = this.store.find(r.owner.type, r.owner.id);
        assert.ok(owner, `${describeRec(r)} is owned by ${r.owner.type} ${r.owner.id}, which does not exist`);
        assert.ok(owner.holds.some((h) => h.type === r.type && h.id === r.id), `${describeRec(r)}'s owner does not hold it`);
      }
    }
    for (const t of TYPES) {
      for (const id of this.ids(t)) {
        const ref = { type: t, id };
        const brute = recs.filter((r) => r.holds.some((h) => h.type === t && h.id === id)).map(describeRec).sort();
        assert.deepEqual(this.store.holders(ref).map(describeRec).sort(), brute, `holders of ${t} ${id}`);
        const rec = this.store.find(t, id);
        if (rec) assert.equal(this.store.refs(rec), brute.length + (rec.owner === 'user' ? 1 : 0), `refs of ${describeRec(rec)}`);
      }
    }
  }
}

/** `fn` rejects with an AgentError of `kind` whose message matches `message`. */
export async function rejectsWith(fn: Promise<unknown> | (() => Promise<unknown>), kind: ErrorKind, message?: RegExp | string): Promise<AgentError> {
  let caught: unknown;
  try {
    await (typeof fn === 'function' ? fn() : fn);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected a ${kind} error, got success`);
  assert.ok(caught instanceof AgentError, `expected an AgentError, got ${String(caught)}`);
  assert.equal(caught.kind, kind, `kind of "${caught.message}"`);
  if (typeof message === 'string') assert.equal(caught.message, message);
  else if (message) assert.match(caught.message, message);
  return caught;
}

// Spec builders: a definition of `kind` named `name`, with the rest of its fields.
export const disk = (name: string, more: Spec = {}): Spec => ({ kind: 'disk', disk: { name, ...more } });
export const file = (name: string, more: Spec = {}): Spec => ({ kind: 'file', file: { name, ...more } });
export const tmp = (name: string, more: Spec = {}): Spec => ({ kind: 'tmp', tmp: { name, ...more } });
export const fs = (name: string, attach: Spec): Spec => ({ kind: 'fs', fs: { name, attach } });
export const stack = (name: string, lower: Spec[]): Spec => ({ kind: 'stack', stack: { name, lower } });
export const sub = (name: string, mount?: Spec): Spec => ({ kind: 'sub', sub: { name, ...(mount ? { base: 'mount', mount } : {}) } });
export const ref = (id: number, kind?: string): Spec => ({ id, ...(kind ? { kind } : {}) });

/** A view of a fake kind, indexable by the kind's name (the API's types only know the real kinds). */
export const shown = (view: unknown) => view as Record<string, any>;
