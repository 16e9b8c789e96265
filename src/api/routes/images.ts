// The images routes (v0.2 generic style, served under /imageapi/v1 and /): /image, /image/wait.
// Thin: select, call the core's image part, render.
import { Router } from 'express';
import type { ImageDefinition } from '../../core/images.js';
import { invalid, notFound } from '../../model/errors.js';
import type { ImageRec } from '../../store/records.js';
import { jsonBody } from '../body.js';
import { intParam, q } from '../query.js';
import type { Services } from '../services.js';

export function imageRoutes(s: Services): Router {
  const r = Router();
  const { engine, views, store, images } = s;

  const select = (id: number | undefined, name: string | undefined): ImageRec => {
    if (id === undefined && name === undefined) throw invalid('give the image\'s "id" or "name"');
    const rec = id !== undefined ? store.get('image', id) : store.imageByName(name!);
    if (!rec) throw notFound(`no image named "${name}"`);
    if (name !== undefined && rec.name !== name) throw invalid(`image ${rec.id} is not named "${name}"`);
    return rec;
  };

  r.get('/image', (req, res) => {
    const { id, name, state } = q(req);
    const list = id !== undefined || name !== undefined ? [select(id, name)] : store.list('image');
    res.json(list.filter((i) => !state || i.state === state).map((i) => views.image(i)));
  });
  r.post('/image', async (req, res) => {
    const spec = jsonBody<ImageDefinition & { id?: number }>(req);
    if (spec.id !== undefined) throw invalid(`image.id: ids are given by the agent; to read image ${spec.id}, GET /image?id=${spec.id}`);
    const { rec, created } = await images.define(spec, { implicit: false });
    res.status(created ? 201 : 200).json(views.image(rec));
  });
  r.delete('/image', async (req, res) => {
    const { id, name, force } = q(req);
    const rec = select(id, name);
    const shown = views.image(rec);
    await engine.remove({ type: 'image', id: rec.id }, force);
    res.json({ ...shown, refs: 0, users: [] });
  });
  r.get('/image/wait', async (req, res) => {
    const { id, name, state } = q(req);
    const rec = select(id, name);
    const seconds = intParam((req.query as Record<string, unknown>).timeout);
    const deadline = Date.now() + (seconds !== undefined ? seconds * 1000 : images.pullTimeoutMs);
    const done = await images.waitReady(rec.id, deadline, `image ${rec.id}`, (state as 'ready' | 'failed' | undefined) ?? 'ready');
    res.json(views.image(done));
  });
  return r;
}
