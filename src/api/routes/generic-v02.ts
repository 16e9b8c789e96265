// API v0.2, the generic routes (served under /imageapi/v1 and /): /attach, /mount, /container.
// Thin: select, call the core or the container manager, render (GETs from the views' kept texts).
import { Router } from 'express';
import { invalid } from '../../model/errors.js';
import type { AttachSpec, ContainerSpec, MountSpec, RequestedState } from '../../model/types.js';
import { jsonBody } from '../body.js';
import { sendJsonTexts } from '../respond.js';
import type { Services } from '../services.js';
import { q } from '../query.js';
import { sendLog } from './log.js';

/** A top-level create defines an object; an `id` there is a client mixing up create and read. */
function noId(spec: { id?: number }, noun: string, route: string): void {
  if (spec.id !== undefined) throw invalid(`${route}.id: ids are given by the agent; to read ${noun} ${spec.id}, GET /${route}?id=${spec.id}`);
}

export function genericV02Routes(s: Services): Router {
  const r = Router();
  const { engine, views, containers, store } = s;

  // Lookups by id (or name) answer 404 for an object that does not exist, as upstream does;
  // a kind or state filter that matches nothing is an empty list.
  r.get('/attach', async (req, res) => {
    const { id, kind } = q(req);
    const list = id !== undefined ? [store.get('attach', id)] : store.list('attach');
    await sendJsonTexts(res, views.texts(kind ? list.filter((a) => a.kind === kind) : list));
  });
  r.post('/attach', async (req, res) => {
    const spec = jsonBody<AttachSpec>(req);
    noId(spec, 'attachment', 'attach');
    const rec = await engine.transaction((tx) => engine.createAttach(spec, 'user', tx, 'attach'), spec);
    res.status(201).json(views.attach(rec));
  });
  r.delete('/attach', async (req, res) => {
    const { id, force } = q(req);
    const shown = views.attach(store.get('attach', id!));
    await engine.remove({ type: 'attach', id: id! }, force);
    res.json({ ...shown, refs: 0 });
  });

  r.get('/mount', async (req, res) => {
    const { id, kind } = q(req);
    const list = id !== undefined ? [store.get('mount', id)] : store.list('mount');
    await sendJsonTexts(res, views.texts(kind ? list.filter((m) => m.kind === kind) : list));
  });
  r.post('/mount', async (req, res) => {
    const spec = jsonBody<MountSpec>(req);
    noId(spec, 'mount', 'mount');
    const rec = await engine.transaction((tx) => engine.createMount(spec, 'user', tx, 'mount'), spec);
    res.status(201).json(views.mount(rec));
  });
  r.delete('/mount', async (req, res) => {
    const { id, force } = q(req);
    const shown = views.mount(store.get('mount', id!));
    await engine.remove({ type: 'mount', id: id! }, force);
    res.json({ ...shown, refs: 0 });
  });

  r.get('/container/log', async (req, res) => {
    const { id, name } = q(req);
    await sendLog(containers.select({ id, name }), req, res, store);
  });
  r.get('/container', async (req, res) => {
    const { id, name, state } = q(req);
    const list = id !== undefined || name !== undefined ? [containers.select({ id, name })] : store.list('container');
    await sendJsonTexts(res, views.texts(state ? list.filter((c) => c.state === state) : list));
  });
  r.post('/container', async (req, res) => {
    const rec = await containers.create(jsonBody<ContainerSpec>(req));
    res.status(201).json(views.container(rec));
  });
  r.delete('/container', async (req, res) => {
    const { id, name, force } = q(req);
    const rec = containers.select({ id, name });
    const shown = views.container(rec);
    await containers.remove(rec, force);
    res.json({ ...shown, refs: 0 });
  });
  r.patch('/container', async (req, res) => {
    const { id, name, state } = q(req);
    const rec = await containers.setState(containers.select({ id, name }), state as RequestedState);
    res.json(views.container(rec));
  });
  return r;
}
