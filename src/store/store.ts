// The store owns ids, names, references and persistence. It does no kernel work itself, and it
// takes no lock: the core serialises every change.
import { join } from 'node:path';
import { alreadyExists, notFound } from '../model/errors.js';
import { withoutSecrets } from '../model/secrets.js';
import { Saver, readJson } from './persist.js';
import type { AnyRec, AttachRec, ContainerRec, MountRec, ObjType, Ref } from './records.js';
import { nounOf } from './records.js';

interface Snapshot {
  version: 1;
  seq: Record<ObjType, number>;
  attach: AttachRec[];
  mount: MountRec[];
  container: ContainerRec[];
}

type RecOf<T extends ObjType> = T extends 'attach' ? AttachRec : T extends 'mount' ? MountRec : ContainerRec;
const keyOf = (r: Ref) => `${r.type}:${r.id}`;

export interface StoreOptions {
  /** Spec fields that hold keys (declared by the drivers): never written to the state file. */
  secretFields?: ReadonlySet<string>;
}

export class Store {
  readonly file: string;
  private seq: Record<ObjType, number> = { attach: 0, mount: 0, container: 0 };
  private readonly maps = {
    attach: new Map<number, AttachRec>(),
    mount: new Map<number, MountRec>(),
    container: new Map<number, ContainerRec>(),
  };
  /** Reverse index of `holds`: who holds each object, so counting users never scans the store. */
  private readonly holdersOf = new Map<string, Set<AnyRec>>();
  private readonly names = new Map<string, ContainerRec>();
  private readonly saver: Saver;
  private readonly secretFields: ReadonlySet<string>;

  constructor(runDir: string, opts: StoreOptions = {}) {
    this.file = join(runDir, 'state.json');
    this.secretFields = opts.secretFields ?? new Set();
    this.saver = new Saver(this.file, () => JSON.stringify(this.snapshot()));
  }

  async load(): Promise<void> {
    const snap = await readJson<Snapshot>(this.file);
    if (!snap) return;
    this.seq = { ...this.seq, ...snap.seq };
    for (const r of [...snap.attach, ...snap.mount, ...snap.container]) this.put(r);
  }

  private snapshot(): Snapshot {
    const live = <T extends AnyRec>(m: Map<number, T>) => [...m.values()].filter((r) => !r.pending);
    return {
      version: 1,
      seq: this.seq,
      // Keys never reach the disk: a restarted agent detaches and adopts without them.
      attach: live(this.maps.attach).map((r) => ({ ...r, spec: withoutSecrets(r.spec, this.secretFields) })),
      mount: live(this.maps.mount),
      container: live(this.maps.container),
    };
  }

  save(): Promise<void> {
    return this.saver.save();
  }

  /** Hand out the next id of a kind; ids are never reused (the sequence is persisted). */
  nextId(type: ObjType): number {
    return this.seq[type]++;
  }

  put(rec: AnyRec): void {
    const old = this.maps[rec.type].get(rec.id);
    if (old) this.unindex(old);
    (this.maps[rec.type] as Map<number, AnyRec>).set(rec.id, rec);
    for (const h of rec.holds) {
      const k = keyOf(h);
      let set = this.holdersOf.get(k);
      if (!set) this.holdersOf.set(k, (set = new Set()));
      set.add(rec);
    }
    if (rec.type === 'container' && rec.name) this.names.set(rec.name, rec);
  }

  remove(ref: Ref): void {
    const rec = this.maps[ref.type].get(ref.id);
    if (!rec) return;
    this.unindex(rec);
    this.maps[ref.type].delete(ref.id);
  }

  private unindex(rec: AnyRec): void {
    for (const h of rec.holds) this.holdersOf.get(keyOf(h))?.delete(rec);
    if (rec.type === 'container' && rec.name && this.names.get(rec.name) === rec) this.names.delete(rec.name);
  }

  find<T extends ObjType>(type: T, id: number): RecOf<T> | undefined {
    return this.maps[type].get(id) as RecOf<T> | undefined;
  }

  /** The record, or 404. Pending records (of an unfinished request) are only visible to `inTx`. */
  get<T extends ObjType>(type: T, id: number, inTx = false): RecOf<T> {
    const r = this.find(type, id);
    if (!r || (r.pending && !inTx)) throw notFound(`no ${nounOf(type)} with id ${id}`);
    return r;
  }

  /** Committed records of a type, by id (maps keep insertion order, and ids only grow). */
  list<T extends ObjType>(type: T): RecOf<T>[] {
    const out: RecOf<T>[] = [];
    for (const r of (this.maps[type] as Map<number, RecOf<T>>).values()) if (!r.pending) out.push(r);
    return out;
  }

  /** Records that hold `ref` (its users). */
  holders(ref: Ref): AnyRec[] {
    return [...(this.holdersOf.get(keyOf(ref)) ?? [])];
  }

  /** `refs` as the API shows it: holders, plus the user for a top-level object. */
  refs(rec: AnyRec): number {
    return (this.holdersOf.get(keyOf(rec))?.size ?? 0) + (rec.owner === 'user' ? 1 : 0);
  }

  containerByName(name: string): ContainerRec | undefined {
    return this.names.get(name);
  }

  assertNameFree(name: string): void {
    const other = this.containerByName(name);
    if (other) throw alreadyExists(`a container named "${name}" already exists (id ${other.id})`);
  }
}
