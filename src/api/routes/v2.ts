// The generic v0.2 routes: /attach, /mount, /container. Thin: select, call the engine or the
// container manager, render.
import { Router } from 'express';
import type { AttachSpec, ContainerSpec, MountSpec, RequestedState } from '../../api/types.js';
import { badRequest } from '../../errors.js';
import type { Services } from '../services.js';
import { q } from '../query.js';
import { sendLog } from './log.js';

export function v2Routes(s: Services): Router {
  const r = Router();
  const { engine, views, containers, store } = s;

  r.get('/attach', (req, res) => {
    const { id, kind } = q(req);
    const list = store.list('attach').filter((a) => (id === undefined || a.id === id) && (!kind || a.kind === kind));
    res.json(list.map((a) => views.attach(a)));
  });
  r.post('/attach', async (req, res) => {
    const spec = req.body as AttachSpec;
    if (spec.id !== undefined) throw badRequest('attach.id: ids are given by the agent; to read attachment ' + spec.id + ', GET /attach?id=' + spec.id);
    const rec = await engine.transaction((tx) => engine.createAttach(spec, 'user', tx, 'attach'));
    res.status(201).json(views.attach(rec));
  });
  r.delete('/attach', async (req, res) => {
    const { id, force } = q(req);
    const shown = views.attach(store.get('attach', id!));
    await store.mutex.run(() => engine.remove({ type: 'attach', id: id! }, force));
    res.json({ ...shown, refs: 0 });
  });

  r.get('/mount', (req, res) => {
    const { id, kind } = q(req);
    const list = store.list('mount').filter((m) => (id === undefined || m.id === id) && (!kind || m.kind === kind));
    res.json(list.map((m) => views.mount(m)));
  });
  r.post('/mount', async (req, res) => {
    const spec = req.body as MountSpec;
    if (spec.id !== undefined) throw badRequest('mount.id: ids are given by the agent; to read mount ' + spec.id + ', GET /mount?id=' + spec.id);
    const rec = await engine.transaction((tx) => engine.createMount(spec, 'user', tx, 'mount'));
    res.status(201).json(views.mount(rec));
  });
  r.delete('/mount', async (req, res) => {
    const { id, force } = q(req);
    const shown = views.mount(store.get('mount', id!));
    await store.mutex.run(() => engine.remove({ type: 'mount', id: id! }, force));
    res.json({ ...shown, refs: 0 });
  });

  r.get('/container/log', async (req, res) => {
    const { id, name } = q(req);
    await sendLog(containers.select({ id, name }), req, res, store);
  });
  r.get('/container', (req, res) => {
    const { id, name, state } = q(req);
    const list = store
      .list('container')
      .filter((c) => (id === undefined || c.id === id) && (name === undefined || c.name === name) && (!state || c.state === state));
    res.json(list.map((c) => containers.view(c)));
  });
  r.post('/container', async (req, res) => {
    const rec = await containers.create(req.body as ContainerSpec);
    res.status(201).json(containers.view(rec));
  });
  r.delete('/container', async (req, res) => {
    const { id, name, force } = q(req);
    res.json(await containers.remove(containers.select({ id, name }), force));
  });
  r.patch('/container', async (req, res) => {
    const { id, name, state } = q(req);
    const rec = await containers.setState(containers.select({ id, name }), state as RequestedState, false);
    res.json(containers.view(rec));
  });
  return r;
}
