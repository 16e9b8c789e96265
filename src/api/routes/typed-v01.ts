// API v0.1, the typed routes (served under /imageapi/v1 and /), as adapters over the same store:
// /attach/rbd, /mount/rbd, /mount/overlay, /container/{id}, /container/byname/{name}. Deletes
// answer 204, and deleting a running container stops it first.
import { Router, type Response } from 'express';
import { notFound } from '../../model/errors.js';
import type { AttachSpec, MountOverlayV1, MountRbdV1, MountSpec, RbdV1, RequestedState } from '../../model/types.js';
import type { AttachRec, MountRec } from '../../store/records.js';
import { jsonBody } from '../body.js';
import { sendJsonTexts } from '../respond.js';
import type { Services } from '../services.js';

export function typedV01Routes(s: Services): Router {
  const r = Router();
  const { engine, views, containers, store } = s;

  const rbdAttach = (id: number): AttachRec => {
    const a = store.get('attach', id);
    if (a.kind !== 'rbd') throw notFound(`attachment ${id} is not an RBD attachment (it is ${a.kind})`);
    return a;
  };
  const rbdMount = (id: number): MountRec => {
    const m = store.get('mount', id);
    if (!views.isRbdMount(m)) throw notFound(`mount ${id} is not an RBD mount (it is ${m.kind})`);
    return m;
  };
  const overlay = (id: number): MountRec => {
    const m = store.get('mount', id);
    if (m.kind !== 'overlay') throw notFound(`mount ${id} is not an overlay mount (it is ${m.kind})`);
    return m;
  };
  // The typed routes have no force; the generic route does it in one request.
  const drop = async (type: 'attach' | 'mount', id: number, res: Response) => {
    await engine.remove({ type, id }, false, `or DELETE /${type}?id=${id}&force=true`);
    res.status(204).end();
  };
  const pid = (p: unknown) => Number(p);

  // --- attachments
  r.get('/attach/rbd', (_req, res) => {
    res.json(store.list('attach').filter((a) => a.kind === 'rbd').map((a) => views.rbd(a)));
  });
  r.post('/attach/rbd', async (req, res) => {
    const spec: AttachSpec = { kind: 'rbd', rbd: jsonBody<RbdV1>(req) };
    const rec = await engine.transaction((tx) => engine.createAttach(spec, 'user', tx, 'attach'), spec);
    res.status(201).json(views.rbd(rec));
  });
  r.get('/attach/rbd/:id', (req, res) => {
    res.json(views.rbd(rbdAttach(pid(req.params.id))));
  });
  r.delete('/attach/rbd/:id', async (req, res) => {
    await drop('attach', rbdAttach(pid(req.params.id)).id, res);
  });

  // --- RBD mounts
  r.get('/mount/rbd', (_req, res) => {
    res.json(store.list('mount').filter((m) => views.isRbdMount(m)).map((m) => views.rbdMount(m)));
  });
  r.post('/mount/rbd', async (req, res) => {
    const spec: MountSpec = { kind: 'rbd', rbd: jsonBody<MountRbdV1>(req) };
    const rec = await engine.transaction((tx) => engine.createMount(spec, 'user', tx, 'mount'), spec);
    res.status(201).json(views.rbdMount(rec));
  });
  r.get('/mount/rbd/:id', (req, res) => {
    res.json(views.rbdMount(rbdMount(pid(req.params.id))));
  });
  r.delete('/mount/rbd/:id', async (req, res) => {
    await drop('mount', rbdMount(pid(req.params.id)).id, res);
  });

  // --- overlay mounts
  r.get('/mount/overlay', (_req, res) => {
    res.json(store.list('mount').filter((m) => m.kind === 'overlay').map((m) => views.overlay(m)));
  });
  r.post('/mount/overlay', async (req, res) => {
    const body = jsonBody<MountOverlayV1>(req);
    const lower = body.lower.map((l) => (typeof l === 'number' ? { id: l } : l));
    const spec: MountSpec = { kind: 'overlay', overlay: { lower } };
    const rec = await engine.transaction((tx) => engine.createMount(spec, 'user', tx, 'overlay'), spec);
    res.status(201).json(views.overlay(rec));
  });
  r.get('/mount/overlay/:id', (req, res) => {
    res.json(views.overlay(overlay(pid(req.params.id))));
  });
  r.delete('/mount/overlay/:id', async (req, res) => {
    await drop('mount', overlay(pid(req.params.id)).id, res);
  });

  // --- containers (byname before {id}, which would otherwise take "byname" as an id)
  const setState = async (rec: ReturnType<typeof containers.select>, state: unknown) =>
    views.container(await containers.setState(rec, state as RequestedState));
  r.get('/container/byname/:name', async (req, res) => {
    await sendJsonTexts(res, [views.text(containers.select({ name: String(req.params.name) }))], true);
  });
  r.delete('/container/byname/:name', async (req, res) => {
    await containers.remove(containers.select({ name: String(req.params.name) }), true);
    res.status(204).end();
  });
  r.get('/container/byname/:name/:state', async (req, res) => {
    res.json(await setState(containers.select({ name: String(req.params.name) }), req.params.state));
  });
  r.get('/container/:id', async (req, res) => {
    await sendJsonTexts(res, [views.text(containers.select({ id: pid(req.params.id) }))], true);
  });
  r.delete('/container/:id', async (req, res) => {
    await containers.remove(containers.select({ id: pid(req.params.id) }), true);
    res.status(204).end();
  });
  r.get('/container/:id/:state', async (req, res) => {
    res.json(await setState(containers.select({ id: pid(req.params.id) }), req.params.state));
  });
  return r;
}
