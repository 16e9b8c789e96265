// The store owns ids, names, references and persistence. It does no kernel work itself.
import { join } from 'node:path';
import { conflict, notFound } from '../model/errors.js';
import { Mutex } from '../util/mutex.js';
import { Saver, readJson } from './persist.js';
import type { AnyRec, AttachRec, ContainerRec, MountRec, ObjType, Ref } from './records.js';
import { nounOf, sameRef, withoutSecrets } from './records.js';

interface Snapshot {
  version: 1;
  seq: Record<ObjType, number>;
  attach: AttachRec[];
  mount: MountRec[];
  container: ContainerRec[];
}

type RecOf<T extends ObjType> = T extends 'attach' ? AttachRec : T extends 'mount' ? MountRec : ContainerRec;

export class Store {
  readonly file: string;
  /** Serialises structural changes (create, delete, reconcile). */
  readonly mutex = new Mutex();
  private seq: Record<ObjType, number> = { attach: 0, mount: 0, container: 0 };
  private readonly maps = {
    attach: new Map<number, AttachRec>(),
    mount: new Map<number, MountRec>(),
    container: new Map<number, ContainerRec>(),
  };
  private readonly saver: Saver;

  constructor(runDir: string) {
    this.file = join(runDir, 'state.json');
    this.saver = new Saver(this.file, () => JSON.stringify(this.snapshot()));
  }

  async load(): Promise<void> {
    const snap = await readJson<Snapshot>(this.file);
    if (!snap) return;
    this.seq = { ...this.seq, ...snap.seq };
    for (const r of snap.attach) this.maps.attach.set(r.id, r);
    for (const r of snap.mount) this.maps.mount.set(r.id, r);
    for (const r of snap.container) this.maps.container.set(r.id, r);
  }

  private snapshot(): Snapshot {
    const live = <T extends AnyRec>(m: Map<number, T>) => [...m.values()].filter((r) => !r.pending);
    return {
      version: 1,
      seq: this.seq,
      // Keys never reach the disk: a restarted agent detaches and adopts without them.
      attach: live(this.maps.attach).map((r) => ({ ...r, spec: withoutSecrets(r.spec) })),
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
    (this.maps[rec.type] as Map<number, AnyRec>).set(rec.id, rec);
  }

  remove(ref: Ref): void {
    this.maps[ref.type].delete(ref.id);
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

  list<T extends ObjType>(type: T): RecOf<T>[] {
    return [...(this.maps[type] as Map<number, RecOf<T>>).values()].filter((r) => !r.pending).sort((a, b) => a.id - b.id);
  }

  all(): AnyRec[] {
    return [...this.maps.attach.values(), ...this.maps.mount.values(), ...this.maps.container.values()];
  }

  /** Records that hold `ref` (its users). */
  holders(ref: Ref): AnyRec[] {
    return this.all().filter((r) => r.holds.some((h) => sameRef(h, ref)));
  }

  /** `refs` as the API shows it: holders, plus the user for a top-level object. */
  refs(rec: AnyRec): number {
    return this.holders({ type: rec.type, id: rec.id }).length + (rec.owner === 'user' ? 1 : 0);
  }

  containerByName(name: string): ContainerRec | undefined {
    for (const c of this.maps.container.values()) if (c.name === name) return c;
    return undefined;
  }

  assertNameFree(name: string): void {
    const other = this.containerByName(name);
    if (other) throw conflict(`a container named "${name}" already exists (id ${other.id})`);
  }
}
