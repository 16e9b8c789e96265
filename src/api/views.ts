// How objects look through the API: the store's records rendered with their children expanded,
// `refs` counted, and secrets redacted by each driver's describe().
import type { AttachSpec, MountSpec } from '../model/types.js';
import type { Drivers } from '../core/engine.js';
import type { AttachRec, MountRec } from '../store/records.js';
import type { Store } from '../store/store.js';

export class Views {
  constructor(
    private readonly store: Store,
    private readonly drivers: Drivers,
  ) {}

  attach(rec: AttachRec): AttachSpec {
    const driver = this.drivers.attach[rec.kind];
    let body: Record<string, unknown> = driver?.describe ? driver.describe(rec.spec, rec.attached) : { ...rec.spec };
    const child = body.mount as { id: number } | undefined;
    if (child) body = { ...body, mount: this.mountById(child.id) };
    return { id: rec.id, kind: rec.kind, device_file: rec.attached.device_file, refs: this.store.refs(rec), [rec.kind]: body };
  }

  mount(rec: MountRec): MountSpec {
    const body: Record<string, unknown> = { ...rec.spec, ...(rec.mounted.shown ?? {}) };
    if (rec.kind === 'attach') body.attach = this.attachById((rec.spec.attach as { id: number }).id);
    if (rec.kind === 'overlay') body.lower = (rec.spec.lower as { id: number }[]).map((l) => this.mountById(l.id));
    if (body.mount) body.mount = this.mountById((body.mount as { id: number }).id);
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
}
