// The store owns ids, names, references and persistence. It does no kernel work itself, and it
// takes no lock: the core serialises every change.
import { join } from 'node:path';
import { alreadyExists, isNoSpace, noSpace, notFound } from '../model/errors.js';
import { withoutSecrets } from '../model/secrets.js';
import { Saver, moveAside, previousOf, readText } from './persist.js';
import type { AnyRec, AttachRec, ContainerRec, ImageRec, MountRec, ObjType, Ref } from './records.js';
import { nounOf } from './records.js';

/**
 * What a request is about to do to the kernel, written (with the id sequence advanced past every
 * id it may take) before it touches anything; the request's commit writes the state without it.
 * A state file that still holds one after a crash tells the next start which loop devices may be
 * the crashed request's (mounts, cgroups and supervisors are found by their names in the run-dir).
 */
export interface Intent {
  at: string;
  /** Real paths of the files the request may attach loop devices over (outside the run-dir). */
  loop_files: string[];
  /** The loop devices (`/dev/loopN`) already over those files when the request began: not its own. */
  loops_before: string[];
}

interface Snapshot {
  version: 1;
  seq: Record<ObjType, number>;
  intent?: Intent | null;
  attach: AttachRec[];
  mount: MountRec[];
  container: ContainerRec[];
  /** Absent in files of agents before images existed. */
  image?: ImageRec[];
}

const TYPES: readonly ObjType[] = ['attach', 'mount', 'container', 'image'];
/** What every agent version wrote (a file without images is not damaged). */
const FIRST_TYPES: readonly ObjType[] = ['attach', 'mount', 'container'];

/** What load() found: a damaged file is moved aside (never silently forgotten), the agent starts empty. */
export interface Loaded {
  /** Why the state file could not be used, and where it was moved. */
  damaged?: { reason: string; movedTo: string | null; loops: Array<[dev: string, file: string]>; rebuiltFrom?: string };
  /** The intent of a request that never finished (the agent died during it). */
  intent?: Intent;
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isId = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;

/** The shape every part of the agent relies on; the first thing wrong, or null. */
function checkSnapshot(x: unknown): string | null {
  if (!isObj(x)) return `the state is ${x === null ? 'null' : typeof x}, not an object`;
  if (x.version !== 1) return `unknown version ${JSON.stringify(x.version)}`;
  if (!isObj(x.seq) || !FIRST_TYPES.every((t) => isId((x.seq as Record<string, unknown>)[t]))) return '"seq" is not a sequence per kind';
  if ((x.seq as Record<string, unknown>).image !== undefined && !isId((x.seq as Record<string, unknown>).image)) return '"seq.image" is not a sequence';
  if (x.intent !== undefined && x.intent !== null) {
    const i = x.intent;
    if (!isObj(i) || !Array.isArray(i.loop_files) || !Array.isArray(i.loops_before)) return '"intent" is malformed';
  }
  for (const t of TYPES) {
    const list = x[t] ?? (t === 'image' ? [] : undefined);
    if (!Array.isArray(list)) return `"${t}" is not a list`;
    for (const [n, r] of list.entries()) {
      const where = `${t}[${n}]`;
      if (!isObj(r) || r.type !== t || !isId(r.id)) return `${where} is not a ${nounOf(t)} record`;
      if (!Array.isArray(r.holds) || !r.holds.every((h) => isObj(h) && TYPES.includes(h.type as ObjType) && isId(h.id))) return `${where}.holds is malformed`;
      if (r.owner !== 'user' && !(isObj(r.owner) && TYPES.includes(r.owner.type as ObjType) && isId(r.owner.id))) return `${where}.owner is malformed`;
      if (t === 'image' && (typeof r.digest !== 'string' || typeof r.state !== 'string' || !isObj(r.source))) return `${where} is malformed`;
      if (typeof r.kind !== 'string' && t !== 'container' && t !== 'image') return `${where}.kind is missing`;
      if (t !== 'container' && t !== 'image' && !isObj(r.spec)) return `${where}.spec is not an object`;
      if (t === 'attach' && !(isObj(r.attached) && typeof r.attached.device_file === 'string' && isObj(r.attached.state))) return `${where}.attached is malformed`;
      if (t === 'mount' && !(isObj(r.mounted) && typeof r.mounted.mountpoint === 'string' && isObj(r.mounted.state))) return `${where}.mounted is malformed`;
      // Only what every agent wrote (a field a later version added must not make an older file "damaged").
      if (t === 'container' && (typeof r.state !== 'string' || typeof r.logfile !== 'string' || !Array.isArray(r.argv) || !Array.isArray(r.cgroups))) {
        return `${where} is malformed`;
      }
      if (r.id >= ((x.seq as Record<string, number>)[t] ?? 0)) return `${where} has id ${r.id}, not below the sequence`;
    }
  }
  return null;
}

function parse(text: string): { snap?: Snapshot; reason?: string } {
  try {
    const snap = JSON.parse(text) as unknown;
    const reason = checkSnapshot(snap);
    return reason ? { reason } : { snap: snap as Snapshot };
  } catch (err) {
    return { reason: text.trim() === '' ? 'the file is empty' : `not JSON (${(err as Error).message})` };
  }
}

/** The sequence of a damaged file, when enough of its beginning survived (it is written first). */
function salvageSeq(text: string): Partial<Record<ObjType, number>> {
  const m = /"seq"\s*:\s*\{([^}]*)\}/.exec(text);
  const out: Partial<Record<ObjType, number>> = {};
  for (const t of TYPES) {
    const n = m && new RegExp(`"${t}"\\s*:\\s*(\\d+)`).exec(m[1]!);
    if (n) out[t] = Number(n[1]);
  }
  return out;
}

/** The loop devices (and their files) a damaged file still names: the agent's, once. */
function salvageLoops(text: string): Array<[string, string]> {
  const re = /"device_file":"(\/dev\/loop\d+)"[^{}]*"state":\{"file":"((?:[^"\\]|\\.)*)"/g;
  const out: Array<[string, string]> = [];
  for (const m of text.matchAll(re)) {
    try {
      out.push([m[1]!, JSON.parse(`"${m[2]}"`) as string]);
    } catch {
      /* cut in the middle */
    }
  }
  return out;
}

type RecOf<T extends ObjType> = T extends 'attach' ? AttachRec : T extends 'mount' ? MountRec : T extends 'image' ? ImageRec : ContainerRec;
const keyOf = (r: Ref) => `${r.type}:${r.id}`;

export interface StoreOptions {
  /** Spec fields that hold keys (declared by the drivers): never written to the state file. */
  secretFields?: ReadonlySet<string>;
}

export class Store {
  readonly file: string;
  private seq: Record<ObjType, number> = { attach: 0, mount: 0, container: 0, image: 0 };
  /** The open request's intent, and the sequence it reserved (saved instead of `seq` while open). */
  private intent: Intent | null = null;
  private reserved: Record<ObjType, number> | null = null;
  private readonly maps = {
    attach: new Map<number, AttachRec>(),
    mount: new Map<number, MountRec>(),
    container: new Map<number, ContainerRec>(),
    image: new Map<number, ImageRec>(),
  };
  /** Reverse index of `holds`: who holds each object, so counting users never scans the store. */
  private readonly holdersOf = new Map<string, Set<AnyRec>>();
  private readonly names = new Map<string, ContainerRec>();
  private readonly imageNames = new Map<string, ImageRec>();
  private readonly saver: Saver;
  private readonly secretFields: ReadonlySet<string>;

  constructor(
    readonly runDir: string,
    opts: StoreOptions = {},
  ) {
    this.file = join(runDir, 'state.json');
    this.secretFields = opts.secretFields ?? new Set();
    this.saver = new Saver(this.file, () => JSON.stringify(this.snapshot()));
  }

  /**
   * Read the state file. One that cannot be used (truncated, empty, not JSON, `null`, the wrong
   * shape) is moved aside and reported, never half-read: the agent starts with no records (and
   * the sequence salvaged from it where possible), and the core cleans the run-dir's kernel objects.
   */
  async load(): Promise<Loaded> {
    const text = await readText(this.file);
    const prev = previousOf(this.file);
    const prevText = await readText(prev).catch(() => null);
    if (text === null && prevText === null) return {};
    const parsed = text === null ? { reason: 'the file is missing (its previous version is there)' } : parse(text);
    if (!parsed.snap) {
      const damaged = {
        reason: parsed.reason!,
        movedTo: text === null ? null : await moveAside(this.file),
        loops: text === null ? [] : salvageLoops(text),
      };
      const salvaged = text === null ? {} : salvageSeq(text);
      for (const t of TYPES) this.seq[t] = Math.max(this.seq[t], salvaged[t] ?? 0);
      // Rebuild from the version before it (one write behind): the core then adopts what of it
      // the kernel still has, drops what vanished, and removes what no record owns.
      const older = prevText === null ? {} : parse(prevText);
      if (!older.snap) return { damaged };
      this.use(older.snap);
      return { damaged: { ...damaged, rebuiltFrom: prev }, ...(older.snap.intent ? { intent: older.snap.intent } : {}) };
    }
    this.use(parsed.snap);
    return parsed.snap.intent ? { intent: parsed.snap.intent } : {};
  }

  private use(snap: Snapshot): void {
    for (const t of TYPES) this.seq[t] = Math.max(this.seq[t], snap.seq[t] ?? 0);
    for (const r of [...snap.attach, ...snap.mount, ...snap.container, ...(snap.image ?? [])]) this.put(r);
  }

  /** Never hand out an id below `n` (evidence of ids in use found in the run-dir). */
  raiseSeq(type: ObjType, n: number): void {
    if (n > this.seq[type]) this.seq[type] = n;
  }

  /**
   * Open a request's intent: the next save records it, with the sequence advanced by `reserve`
   * ids of each kind, so that a crash during the request never lets an id be given twice.
   */
  beginIntent(intent: Intent, reserve: number): void {
    this.intent = intent;
    this.reserved = { attach: this.seq.attach + reserve, mount: this.seq.mount + reserve, container: this.seq.container + reserve, image: this.seq.image };
  }

  /** The request finished (committed or undone): the next save drops its intent. */
  endIntent(): void {
    this.intent = null;
    this.reserved = null;
  }

  private snapshot(): Snapshot {
    // Committed records, and those of a commit being written (without their flags): they become
    // visible once this write is durable.
    const live = <T extends AnyRec>(m: Map<number, T>) => {
      const out: T[] = [];
      for (const r of m.values()) {
        if (!r.pending) out.push(r);
        else if (r.committing) {
          const { pending: _p, committing: _c, ...rest } = r;
          out.push(rest as T);
        }
      }
      return out;
    };
    const r = this.reserved;
    return {
      version: 1,
      seq: r
        ? { attach: Math.max(r.attach, this.seq.attach), mount: Math.max(r.mount, this.seq.mount), container: Math.max(r.container, this.seq.container), image: this.seq.image }
        : this.seq,
      ...(this.intent ? { intent: this.intent } : {}),
      // Keys never reach the disk: a restarted agent detaches and adopts without them.
      attach: live(this.maps.attach).map((r) => ({ ...r, spec: withoutSecrets(r.spec, this.secretFields) })),
      mount: live(this.maps.mount).map((r) => ({ ...r, spec: withoutSecrets(r.spec, this.secretFields) })),
      container: live(this.maps.container),
      image: live(this.maps.image),
    };
  }

  /** Write the state durably. A full disk is INSUFFICIENT_STORAGE naming the run-dir. */
  save(): Promise<void> {
    return this.saver.save().catch((err) => {
      if (!isNoSpace(err)) throw err;
      throw noSpace(`the run-dir ${this.runDir} is full: cannot save the agent's state (${(err as NodeJS.ErrnoException).code}); free space there`, err);
    });
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
    if (rec.type === 'image' && rec.name) this.imageNames.set(rec.name, rec);
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
    if (rec.type === 'image' && rec.name && this.imageNames.get(rec.name) === rec) this.imageNames.delete(rec.name);
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

  /** Records that hold `ref` (its users); with `pending`, also those of a request not finished yet. */
  holders(ref: Ref, pending = false): AnyRec[] {
    return [...(this.holdersOf.get(keyOf(ref)) ?? [])].filter((h) => pending || !h.pending);
  }

  /** `refs` as the API shows it: holders, plus the user for a top-level object. */
  refs(rec: AnyRec): number {
    let n = rec.owner === 'user' ? 1 : 0;
    for (const h of this.holdersOf.get(keyOf(rec)) ?? []) if (!h.pending) n++; // a request in flight is not visible yet
    return n;
  }

  containerByName(name: string): ContainerRec | undefined {
    return this.names.get(name);
  }

  imageByName(name: string): ImageRec | undefined {
    return this.imageNames.get(name);
  }

  /** The image object of a digest (one per digest). */
  imageByDigest(digest: string): ImageRec | undefined {
    for (const r of this.maps.image.values()) if (r.digest === digest) return r;
    return undefined;
  }

  assertNameFree(name: string): void {
    const other = this.containerByName(name);
    if (other) throw alreadyExists(`a container named "${name}" already exists (id ${other.id})`);
  }
}
