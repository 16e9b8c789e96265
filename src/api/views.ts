// How objects look through the API, in both generations: the store's records rendered with
// their children expanded (the slots each driver declares), `refs` counted, keys redacted.
// The one place that renders.
import { type Drivers, secretFieldsOf } from '../core/engine.js';
import type { ChildSlot } from '../model/objects.js';
import { withoutSecrets } from '../model/secrets.js';
import type { AttachSpec, ContainerSpec, ImageSpec, MountOverlayV1, MountRbdV1, MountSpec, RbdV1 } from '../model/types.js';
import type { AttachRec, ContainerRec, ImageRec, MountRec } from '../store/records.js';
import { describeRec, refOf } from '../store/records.js';
import { shownUrl } from '../image/fetch.js';
import type { Store } from '../store/store.js';
import { ALL_CAPS } from '../container/spec.js';

type Id = { id: number };
type ImageView = ImageSpec;

export class Views {
  private readonly secrets: ReadonlySet<string>;

  constructor(
    private readonly store: Store,
    private readonly drivers: Drivers,
  ) {
    this.secrets = secretFieldsOf(drivers);
  }

  /** The spec with each child reference `{id}` replaced by the child as it looks now. */
  private expand(spec: Record<string, unknown>, slots: ChildSlot[]): Record<string, unknown> {
    const body = withoutSecrets(spec, this.secrets);
    for (const s of slots) {
      const one = (ref: Id) => (s.type === 'attach' ? this.attachById(ref.id) : s.type === 'image' ? this.imageById(ref.id) : this.mountById(ref.id));
      const v = body[s.field];
      if (v !== undefined) body[s.field] = s.many ? (v as Id[]).map(one) : one(v as Id);
    }
    return body;
  }

  attach(rec: AttachRec): AttachSpec {
    const driver = this.drivers.attach[rec.kind];
    const body = { ...this.expand(rec.spec, driver?.children?.(rec.spec) ?? []), ...driver?.describe?.(rec.spec, rec.attached) };
    return { id: rec.id, kind: rec.kind, device_file: rec.attached.device_file, refs: this.store.refs(rec), [rec.kind]: body };
  }

  mount(rec: MountRec): MountSpec {
    const driver = this.drivers.mount[rec.kind];
    const body = { ...this.expand(rec.spec, driver?.children?.(rec.spec) ?? []), ...(rec.mounted.shown ?? {}) };
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

  container(rec: ContainerRec): ContainerSpec {
    return {
      id: rec.id,
      ...(rec.name ? { name: rec.name } : {}),
      refs: this.store.refs(rec),
      mount: this.mountById(rec.holds[0]!.id),
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
