// The typed v0.1 routes, as adapters over the same store: /attach/rbd, /mount/rbd,
// /mount/overlay, /container/{id}, /container/byname/{name}. Deletes answer 204, and deleting a
// running container stops it first.
import { Router, type Response } from 'express';
import type { AttachSpec, MountOverlayV1, MountRbdV1, MountSpec, RbdV1, RequestedState } from '../../model/types.js';
import { notFound } from '../../model/errors.js';
import { jsonBody } from '../body.js';
import type { AttachRec, MountRec } from '../../store/records.js';
import type { Services } from '../services.js';

export function v1Routes(s: Services): Router {
  const r = Router();
  const { engine, views, containers, store } = s;

  const rbdView = (a: AttachRec): RbdV1 => {
    const v = views.attach(a);
    return { id: a.id, refs: v.refs, device_file: v.device_file, ...(v.rbd as RbdV1) };
  };
  const rbdAttach = (id: number): AttachRec => {
    const a = store.get('attach', id);
    if (a.kind !== 'rbd') throw notFound(`attachment ${id} is not an RBD attachment (it is ${a.kind})`);
    return a;
  };
  const isRbdMount = (m: MountRec) => m.kind === 'attach' && store.find('attach', (m.spec.attach as { id: number }).id)?.kind === 'rbd';
  const rbdMountView = (m: MountRec): MountRbdV1 => {
    const a = store.find('attach', (m.spec.attach as { id: number }).id);
    return {
      id: m.id,
      refs: store.refs(m),
      mountpoint: m.mounted.mountpoint,
      fs_type: m.spec.fs_type as string,
      ...(m.spec.mount_options ? { mount_options: m.spec.mount_options as string[] } : {}),
      ...(a ? { rbd: rbdView(a) } : {}),
    };
  };
  const rbdMount = (id: number): MountRec => {
    const m = store.get('mount', id);
    if (!isRbdMount(m)) throw notFound(`mount ${id} is not an RBD mount (it is ${m.kind})`);
    return m;
  };
  const overlayView = (m: MountRec): MountOverlayV1 => ({
    id: m.id,
    refs: store.refs(m),
    mountpoint: m.mounted.mountpoint,
    upperdir: m.mounted.shown?.upperdir as string,
    workdir: m.mounted.shown?.workdir as string,
    lower: (m.spec.lower as { id: number }[]).map((l) => l.id),
  });
  const overlay = (id: number): MountRec => {
    const m = store.get('mount', id);
    if (m.kind !== 'overlay') throw notFound(`mount ${id} is not an overlay mount (it is ${m.kind})`);
    return m;
  };
  // The typed routes have no force; the generic route does it in one request.
  const drop = async (type: 'attach' | 'mount', id: number, res: Response) => {
    await store.mutex.run(() => engine.remove({ type, id }, false, `or DELETE /${type}?id=${id}&force=true`));
    res.status(204).end();
  };
  const pid = (p: unknown) => Number(p);

  // --- attachments
  r.get('/attach/rbd', (_req, res) => {
    res.json(store.list('attach').filter((a) => a.kind === 'rbd').map(rbdView));
  });
  r.post('/attach/rbd', async (req, res) => {
    const spec: AttachSpec = { kind: 'rbd', rbd: jsonBody<RbdV1>(req) };
    const rec = await engine.transaction((tx) => engine.createAttach(spec, 'user', tx, 'attach'));
    res.status(201).json(rbdView(rec));
  });
  r.get('/attach/rbd/:id', (req, res) => {
    res.json(rbdView(rbdAttach(pid(req.params.id))));
  });
  r.delete('/attach/rbd/:id', async (req, res) => {
    await drop('attach', rbdAttach(pid(req.params.id)).id, res);
  });

  // --- RBD mounts
  r.get('/mount/rbd', (_req, res) => {
    res.json(store.list('mount').filter(isRbdMount).map(rbdMountView));
  });
  r.post('/mount/rbd', async (req, res) => {
    const spec: MountSpec = { kind: 'rbd', rbd: jsonBody<MountRbdV1>(req) };
    const rec = await engine.transaction((tx) => engine.createMount(spec, 'user', tx, 'mount'));
    res.status(201).json(rbdMountView(rec));
  });
  r.get('/mount/rbd/:id', (req, res) => {
    res.json(rbdMountView(rbdMount(pid(req.params.id))));
  });
  r.delete('/mount/rbd/:id', async (req, res) => {
    await drop('mount', rbdMount(pid(req.params.id)).id, res);
  });

  // --- overlay mounts
  r.get('/mount/overlay', (_req, res) => {
    res.json(store.list('mount').filter((m) => m.kind === 'overlay').map(overlayView));
  });
  r.post('/mount/overlay', async (req, res) => {
    const body = jsonBody<MountOverlayV1>(req);
    const lower = body.lower.map((l) => (typeof l === 'number' ? { id: l } : l));
    const spec: MountSpec = { kind: 'overlay', overlay: { lower } };
    const rec = await engine.transaction((tx) => engine.createMount(spec, 'user', tx, 'overlay'));
    res.status(201).json(overlayView(rec));
  });
  r.get('/mount/overlay/:id', (req, res) => {
    res.json(overlayView(overlay(pid(req.params.id))));
  });
  r.delete('/mount/overlay/:id', async (req, res) => {
    await drop('mount', overlay(pid(req.params.id)).id, res);
  });

  // --- containers (byname before {id}, which would otherwise take "byname" as an id)
  r.get('/container/byname/:name', (req, res) => {
    res.json(containers.view(containers.select({ name: String(req.params.name) })));
  });
  r.delete('/container/byname/:name', async (req, res) => {
    await containers.remove(containers.select({ name: String(req.params.name) }), true);
    res.status(204).end();
  });
  r.get('/container/byname/:name/:state', async (req, res) => {
    const rec = containers.select({ name: String(req.params.name) });
    res.json(containers.view(await containers.setState(rec, req.params.state as RequestedState, false)));
  });
  r.get('/container/:id', (req, res) => {
    res.json(containers.view(containers.select({ id: pid(req.params.id) })));
  });
  r.delete('/container/:id', async (req, res) => {
    await containers.remove(containers.select({ id: pid(req.params.id) }), true);
    res.status(204).end();
  });
  r.get('/container/:id/:state', async (req, res) => {
    const rec = containers.select({ id: pid(req.params.id) });
    res.json(containers.view(await containers.setState(rec, req.params.state as RequestedState, false)));
  });
  return r;
}
