// IMGAPI, as imgadm reads it (Joyent's IMGAPI, smartos-image-server, trondn's imgapi):
// GET <url>/images/<uuid> → a manifest with `files: [{sha1, size, compression}]`;
// GET <url>/images?name=<name>[&version=<v>] → a list of manifests, of which the newest
// `published_at` (among the active ones, of that version when named) is taken (the list is also
// filtered here: a server that ignores the query, a directory behind nginx say, still works);
// the file at GET <url>/images/<uuid>/file. The digest is the manifest's sha1 of the file as served.
// The selection is pure (unit-tested without a server).
import { invalid, upstream } from '../../model/errors.js';
import { fetchJson, shownUrl } from '../fetch.js';
import type { Compression, ImageRequest, ResolvedImage } from '../types.js';
import { joinUrl, serverContext, type ResolveOptions, type Server } from './common.js';

/** The request's `imgapi` part (src/image/types.ts). */
export type ImgapiQuery = Extract<ImageRequest, { imgapi: unknown }>['imgapi'];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const listed = (xs: string[], max = 20) => (xs.length === 0 ? 'none' : xs.slice(0, max).join(', ') + (xs.length > max ? `, … (${xs.length - max} more)` : ''));

export interface Manifest {
  uuid: string;
  name?: string;
  version?: string;
  published_at?: string;
  file: { sha1: string; size: number; compression: Compression };
}

/** Check a manifest's fields the pull depends on; a broken one is the server's fault. */
export function checkManifest(m: unknown, where: string): Manifest {
  if (!isObj(m)) throw upstream(`imgapi ${where}: the manifest is not an object`);
  const uuid = m.uuid;
  if (typeof uuid !== 'string' || !UUID.test(uuid)) throw upstream(`imgapi ${where}: a manifest without a valid uuid`);
  const files = m.files;
  const f = Array.isArray(files) ? files[0] : undefined;
  if (!isObj(f)) throw upstream(`imgapi ${where}: image ${uuid} has no files`);
  if (typeof f.sha1 !== 'string' || !/^[0-9a-f]{40}$/.test(f.sha1)) throw upstream(`imgapi ${where}: image ${uuid}: files[0].sha1 is not 40 hex digits`);
  if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) throw upstream(`imgapi ${where}: image ${uuid}: files[0].size is not a size`);
  const c = f.compression ?? 'none';
  if (!['gzip', 'bzip2', 'xz', 'none'].includes(c as string)) throw upstream(`imgapi ${where}: image ${uuid}: compression ${JSON.stringify(c)} is not gzip, bzip2, xz or none`);
  return {
    uuid,
    ...(typeof m.name === 'string' ? { name: m.name } : {}),
    ...(typeof m.version === 'string' ? { version: m.version } : {}),
    ...(typeof m.published_at === 'string' ? { published_at: m.published_at } : {}),
    file: { sha1: f.sha1, size: f.size, compression: c as Compression },
  };
}

/** The newest active image of `name` (of `version` when named) in an IMGAPI list answer. */
export function selectByName(list: unknown, name: string, version: string | undefined, where: string): Manifest {
  if (!Array.isArray(list)) throw upstream(`imgapi ${where}: GET /images did not answer a list`);
  const all = list.filter(isObj).filter((m) => m.state === undefined || m.state === 'active');
  const named = all.filter((m) => m.name === name);
  if (named.length === 0) {
    const names = [...new Set(all.map((m) => String(m.name)))].sort();
    throw invalid(`imgapi ${where}: no image named ${JSON.stringify(name)} (names there: ${listed(names)})`);
  }
  const of = version === undefined ? named : named.filter((m) => m.version === version);
  if (of.length === 0) {
    const versions = [...new Set(named.map((m) => String(m.version)))].sort().reverse();
    throw invalid(`imgapi ${where}: image ${JSON.stringify(name)} has no version ${JSON.stringify(version)} (versions: ${listed(versions)})`);
  }
  const time = (m: Record<string, unknown>) => {
    const t = Date.parse(String(m.published_at ?? ''));
    return Number.isNaN(t) ? -Infinity : t;
  };
  const newest = of.reduce((a, b) => (time(b) > time(a) ? b : a));
  return checkManifest(newest, where);
}

export async function resolveImgapi(q: ImgapiQuery, server: Server, opts: ResolveOptions = {}): Promise<ResolvedImage> {
  const { where, fetch: common } = serverContext(server, opts);
  let m: Manifest;
  if (q.uuid !== undefined) {
    if (q.name !== undefined || q.version !== undefined) throw invalid('imgapi: name a uuid, or a name (and version), not both');
    if (typeof q.uuid !== 'string' || !UUID.test(q.uuid)) throw invalid(`imgapi.uuid ${JSON.stringify(String(q.uuid).slice(0, 80))}: not a UUID`);
    const uuid = q.uuid;
    const doc = await fetchJson(joinUrl(server.url, `images/${uuid}`), {
      ...common,
      onStatus: (status) => (status === 404 ? invalid(`imgapi ${where}: no image ${uuid} (GET /images/${uuid}: 404)`) : undefined),
    });
    m = checkManifest(doc, where);
    if (m.uuid !== uuid) throw upstream(`imgapi ${where}: GET /images/${uuid} answered the manifest of ${m.uuid}`);
  } else if (q.name !== undefined) {
    if (typeof q.name !== 'string' || q.name === '') throw invalid('imgapi.name: a name is required');
    const qs = new URLSearchParams({ name: q.name, ...(q.version === undefined ? {} : { version: q.version }) });
    const list = await fetchJson(joinUrl(server.url, `images?${qs}`), common);
    m = selectByName(list, q.name, q.version, where);
  } else {
    throw invalid('imgapi: a uuid, or a name (and version), is required');
  }
  const what = [m.name, m.version].filter(Boolean).join(' ');
  return {
    url: joinUrl(server.url, `images/${m.uuid}/file`),
    digest: `sha1:${m.file.sha1}`,
    size: m.file.size,
    compression: m.file.compression,
    ...(server.ca_file === undefined ? {} : { ca_file: server.ca_file }),
    description: `imgapi ${m.uuid}${what ? ` (${what})` : ''} at ${where}`,
  };
}

