// How objects look through the API, in both generations: the store's records rendered with
// their children expanded (the slots each driver declares), `refs` counted, keys redacted.
// The one place that renders.
//
// The generic GETs answer from JSON text (UTF-8 bytes) kept per record (see `Views.texts`): a
// record's own text is rendered once and kept until one of its top-level fields or its `refs`
// changes, its children's texts are joined in; a list is a join of those texts, O(n) in the
// objects listed, with nothing serialized or encoded again.
import { randomBytes } from 'node:crypto';
import { type Drivers, secretFieldsOf } from '../core/engine.js';
import type { ChildSlot } from '../model/objects.js';
import { withoutSecrets } from '../model/secrets.js';
import type { AttachSpec, ContainerSpec, ImageSpec, MountOverlayV1, MountRbdV1, MountSpec, RbdV1 } from '../model/types.js';
import type { AnyRec, AttachRec, ContainerRec, ImageRec, MountRec } from '../store/records.js';
import { describeRec, refOf } from '../store/records.js';
import { shownUrl } from '../image/fetch.js';
import type { Store } from '../store/store.js';
import { ALL_CAPS } from '../container/spec.js';

type Id = { id: number };
type Kid = 'attach' | 'mount' | 'image';
/** What a child slot is rendered as: the child's view (objects), or a placeholder (texts). */
type ChildOf = (type: Kid, id: number) => unknown;

/**
 * A record's JSON text, kept between requests. Valid while the record's top-level fields are the
 * same values (the core changes a record by assigning its fields, never inside them) and its
 * `refs` is the same; its children are joined in at each use, so a child's change reaches every
 * parent without re-rendering the parent.
 */
interface Entry {
  keys: string[];
  vals: unknown[];
  refs: number;
  /** The text around the children: parts[0] child 0 parts[1] … child k-1 parts[k]. */
  parts: Buffer[];
  kids: Array<{ type: Kid; id: number }>;
  /** The pass (one list or lookup) the text was last checked in, the children's texts it was made from, and the text. */
  pass: number;
  kidTexts: Buffer[] | null;
  text: Buffer;
}
type ImageView = ImageSpec;

export class Views {
  private readonly secrets: ReadonlySet<string>;

  constructor(
    private readonly store: Store,
    private readonly drivers: Drivers,
  ) {
    this.secrets = secretFieldsOf(drivers);
  }

  /** Each child as it looks now (the object views). */
  private readonly asObject: ChildOf = (type, id) => (type === 'attach' ? this.attachById(id) : type === 'image' ? this.imageById(id) : this.mountById(id));

  /** The spec with each child reference `{id}` replaced by what `child` makes of it. */
  private expand(spec: Record<string, unknown>, slots: ChildSlot[], child: ChildOf): Record<string, unknown> {
    const body = withoutSecrets(spec, this.secrets);
    for (const s of slots) {
      const one = (ref: Id) => child(s.type, ref.id);
      const v = body[s.field];
      if (v !== undefined) body[s.field] = s.many ? (v as Id[]).map(one) : one(v as Id);
    }
    return body;
  }

  attach(rec: AttachRec, child: ChildOf = this.asObject): AttachSpec {
    const driver = this.drivers.attach[rec.kind];
    const body = { ...this.expand(rec.spec, driver?.children?.(rec.spec) ?? [], child), ...driver?.describe?.(rec.spec, rec.attached) };
    return { id: rec.id, kind: rec.kind, device_file: rec.attached.device_file, refs: this.store.refs(rec), [rec.kind]: body };
  }

  mount(rec: MountRec, child: ChildOf = this.asObject): MountSpec {
    const driver = this.drivers.mount[rec.kind];
    const body = { ...this.expand(rec.spec, driver?.children?.(rec.spec) ?? [], child), ...(rec.mounted.shown ?? {}) };
    return { id: rec.id, kind: rec.kind, mountpoint: rec.mounted.mountpoint, refs: this.store.refs(rec), [rec.kind]: body };
  }

  attachById(id: number): AttachSpec {
    const r = this.store.find('attach', id);
    return r ? this.attach(r) : { id };
  }

  mountById(id: number): MountSpec {
    const r = this.store.find('mount', id);
    return r ? this.mount(r) : { id };
  }

  imageById(id: number): ImageView {
    const r = this.store.find('image', id);
    return r ? this.image(r) : { id };
  }

  /** An image: where it comes from, what it is, how far its pull is, who holds it. */
  image(rec: ImageRec): ImageView {
    const source = { ...rec.source };
    // A URL's user and password are never shown back.
    if (typeof source.uri === 'string' && /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(source.uri)) source.uri = shownUrl(source.uri);
    return {
      id: rec.id,
      ...(rec.name ? { name: rec.name } : {}),
      refs: this.store.refs(rec),
      state: rec.state,
      source,
      digest: rec.digest,
      url: shownUrl(rec.resolved.url),
      description: rec.resolved.description,
      format: (rec.format as ImageView['format']) ?? null,
      compression: rec.resolved.compression,
      size: rec.size,
      progress: { ...rec.progress },
      ...(rec.error ? { error: rec.error } : {}),
      last_used: rec.last_used,
      created_at: rec.created_at,
      users: this.store.holders(refOf(rec)).map((u) => ({ type: u.type as 'attach' | 'mount', id: u.id, ...('kind' in u ? { kind: u.kind } : {}) })),
    };
  }

  /** For messages: who holds an image. */
  imageUsers(rec: ImageRec): string {
    return this.store.holders(refOf(rec)).map(describeRec).join(', ');
  }

  container(rec: ContainerRec, child: ChildOf = this.asObject): ContainerSpec {
    return {
      id: rec.id,
      ...(rec.name ? { name: rec.name } : {}),
      refs: this.store.refs(rec),
      mount: child('mount', rec.holds[0]!.id) as MountSpec,
      command: rec.command,
      systemd: rec.systemd,
      state: rec.state,
      namespaces: rec.namespaces,
      hostname: rec.hostname,
      env: rec.env,
      stop_timeout: rec.stop_timeout,
      ...(rec.log_max_size !== undefined ? { log_max_size: rec.log_max_size, log_max_files: rec.log_max_files ?? 1, log_timestamps: rec.log_timestamps === true } : {}),
      ...this.confinement(rec),
      logfile: rec.logfile,
      pid: rec.pid,
      exit_code: rec.exit_code,
      created_at: rec.created_at,
      started_at: rec.started_at,
      finished_at: rec.finished_at,
      ...(rec.error ? { error: rec.error } : {}),
    };
  }

  /** Confinement and limits as the container runs with them (a record from before they existed: privileged). */
  private confinement(rec: ContainerRec) {
    const c = rec.confine;
    const l = rec.limits ?? {};
    return {
      privileged: c ? c.privileged : true,
      capabilities: c ? c.caps : [...ALL_CAPS],
      ...(c?.cap_add ? { cap_add: c.cap_add } : {}),
      ...(c?.cap_drop ? { cap_drop: c.cap_drop } : {}),
      no_new_privs: c ? c.no_new_privs : false,
      seccomp: c ? c.seccomp : ('unconfined' as const),
      ...(c?.user ? { user: `${c.user.uid}:${c.user.gid}` } : {}),
      ...(c && c.working_dir !== '/' ? { working_dir: c.working_dir } : {}),
      ...(c?.uid_map ? { uid_map: c.uid_map, gid_map: c.gid_map } : {}),
      ...(l.memory ? { memory: l.memory } : {}),
      ...(l.pids ? { pids: l.pids } : {}),
      ...(l.cpu ? { cpu: l.cpu } : {}),
      ...(l.io ? { io: l.io } : {}),
    };
  }

  // ------------------------------------------------------------------ kept JSON texts

  private readonly kept = new WeakMap<AnyRec, Entry>();
  private pass = 0;
  /** Placeholders for the children in a record's own text: not guessable by a client. */
  private readonly token = `@@imageapi-child-${randomBytes(12).toString('hex')}-`;

  /** The JSON texts (UTF-8) of `recs` as `attach`, `mount`, `container` would render them, in order. */
  texts(recs: readonly AnyRec[]): Buffer[] {
    this.pass++;
    return recs.map((r) => this.textOf(r));
  }

  /** The JSON text of one record (as `texts([rec])[0]`). */
  text(rec: AnyRec): Buffer {
    this.pass++;
    return this.textOf(rec);
  }

  private textOfChild(type: Kid, id: number): Buffer {
    const r = this.store.find(type, id);
    return r ? this.textOf(r) : Buffer.from(JSON.stringify({ id }));
  }

  private textOf(rec: AnyRec): Buffer {
    let e = this.kept.get(rec);
    if (e && e.pass === this.pass) return e.text;
    const refs = this.store.refs(rec);
    // An image's text names its users (not only their count): rendered afresh (images are few).
    if (!e || e.refs !== refs || rec.type === 'image' || !sameFields(e, rec)) {
      e = this.render(rec, refs);
      this.kept.set(rec, e);
    }
    e.pass = this.pass;
    if (!e.kids.length) return e.text;
    const kidTexts = e.kids.map((k) => this.textOfChild(k.type, k.id));
    const was = e.kidTexts;
    if (!was || kidTexts.some((t, i) => t !== was[i])) {
      const all: Buffer[] = [e.parts[0]!];
      for (let i = 0; i < kidTexts.length; i++) all.push(kidTexts[i]!, e.parts[i + 1]!);
      e.kidTexts = kidTexts;
      e.text = Buffer.concat(all);
    }
    return e.text;
  }

  /** A record's own text, each child a placeholder that textOf replaces by the child's text. */
  private render(rec: AnyRec, refs: number): Entry {
    const kids: Entry['kids'] = [];
    const child: ChildOf = (type, id) => `${this.token}${kids.push({ type, id }) - 1}`;
    const view =
      rec.type === 'attach' ? this.attach(rec, child) : rec.type === 'mount' ? this.mount(rec, child) : rec.type === 'image' ? this.image(rec) : this.container(rec, child);
    const json = JSON.stringify(view);
    const parts: Buffer[] = [];
    let from = 0;
    for (let i = 0; i < kids.length; i++) {
      const mark = JSON.stringify(`${this.token}${i}`);
      const at = json.indexOf(mark, from);
      parts.push(Buffer.from(json.slice(from, at)));
      from = at + mark.length;
    }
    parts.push(Buffer.from(json.slice(from)));
    const keys: string[] = [];
    const vals: unknown[] = [];
    for (const k in rec) {
      keys.push(k);
      vals.push((rec as unknown as Record<string, unknown>)[k]);
    }
    return { keys, vals, refs, parts, kids, pass: -1, kidTexts: null, text: parts[0]! };
  }

  // ------------------------------------------------------------------ the typed v0.1 shapes

  rbd(a: AttachRec): RbdV1 {
    const v = this.attach(a);
    return { id: a.id, refs: v.refs, device_file: v.device_file, ...(v.rbd as RbdV1) };
  }

  /** v0.1's RBD mount: an attach mount whose attachment is an RBD one. */
  isRbdMount(m: MountRec): boolean {
    return m.kind === 'attach' && this.store.find('attach', (m.spec.attach as Id).id)?.kind === 'rbd';
  }

  rbdMount(m: MountRec): MountRbdV1 {
    const a = this.store.find('attach', (m.spec.attach as Id).id);
    return {
      id: m.id,
      refs: this.store.refs(m),
      mountpoint: m.mounted.mountpoint,
      fs_type: m.spec.fs_type as string,
      ...(m.spec.mount_options ? { mount_options: m.spec.mount_options as string[] } : {}),
      ...(a ? { rbd: this.rbd(a) } : {}),
    };
  }

  overlay(m: MountRec): MountOverlayV1 {
    return {
      id: m.id,
      refs: this.store.refs(m),
      mountpoint: m.mounted.mountpoint,
      upperdir: m.mounted.shown?.upperdir as string,
      workdir: m.mounted.shown?.workdir as string,
      lower: (m.spec.lower as Id[]).map((l) => l.id),
    };
  }
}

/** The record's top-level fields are the values (and keys, in order) the entry was rendered from. */
function sameFields(e: Entry, rec: AnyRec): boolean {
  let i = 0;
  for (const k in rec) {
    if (e.keys[i] !== k || e.vals[i] !== (rec as unknown as Record<string, unknown>)[k]) return false;
    i++;
  }
  return i === e.keys.length;
}
