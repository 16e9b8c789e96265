// A request for an image → one file on one server with its digest: a URL with its checksum
// needs no server; a simplestreams or IMGAPI reference asks the server (a configured source by
// name, or a URL) for its index or manifest.
import { invalid } from '../../model/errors.js';
import { parseDigest, shownUrl } from '../fetch.js';
import { COMPRESSIONS, FORMATS, fromSuffix } from '../format.js';
import type { ImageRequest, ResolvedImage, SourceConfig } from '../types.js';
import { checkUrl, type ResolveOptions, type Server } from './common.js';
import { resolveImgapi } from './imgapi.js';
import { resolveSimplestreams } from './simplestreams.js';

/** The server a simplestreams or imgapi reference names. */
export function serverOf(ref: { source?: string; url?: string }, type: SourceConfig['type'], sources: SourceConfig[]): Server {
  if (ref.source !== undefined && ref.url !== undefined) throw invalid(`${type}: name a source or a url, not both`);
  if (ref.source !== undefined) {
    const s = sources.find((x) => x.name === ref.source);
    if (!s || s.type !== type) {
      const names = sources.filter((x) => x.type === type).map((x) => x.name);
      throw invalid(
        `${type}.source ${JSON.stringify(String(ref.source).slice(0, 100))}: no such ${type} source is configured ` +
          `(configured: ${names.length ? names.join(', ') : 'none'})`,
      );
    }
    return { url: s.url, name: s.name, ...(s.ca_file === undefined ? {} : { ca_file: s.ca_file }) };
  }
  if (ref.url === undefined) throw invalid(`${type}: a source (a configured name) or a url is required`);
  return { url: checkUrl(ref.url, `${type}.url`, ['http:', 'https:', 'file:']) };
}

export { checkUrl, joinUrl, type ResolveOptions, type Server } from './common.js';

export async function resolve(req: ImageRequest, sources: SourceConfig[], opts: ResolveOptions = {}): Promise<ResolvedImage> {
  if (req === null || typeof req !== 'object') throw invalid('image: expected an object with uri, simplestreams or imgapi');
  const keys = ['uri', 'simplestreams', 'imgapi'].filter((k) => k in req);
  if (keys.length !== 1) throw invalid(`image: name exactly one of uri, simplestreams, imgapi (got ${keys.length ? keys.join(', ') : 'none'})`);
  if ('uri' in req) {
    const url = checkUrl(req.uri, 'uri');
    if (req.checksum === undefined) throw invalid(`uri ${shownUrl(url)}: a checksum (sha256:… or sha1:…) is required`);
    const { algo, hex } = parseDigest(req.checksum);
    const hint = fromSuffix(url);
    if (req.format !== undefined && !FORMATS.includes(req.format)) throw invalid(`format ${String(req.format)}: expected one of ${FORMATS.join(', ')}`);
    if (req.compression !== undefined && !COMPRESSIONS.includes(req.compression)) {
      throw invalid(`compression ${String(req.compression)}: expected one of ${COMPRESSIONS.join(', ')}`);
    }
    const format = req.format ?? hint.format;
    return {
      url,
      digest: `${algo}:${hex}`,
      compression: req.compression ?? hint.compression ?? 'none',
      ...(format ? { format } : {}),
      ...(req.ca_file === undefined ? {} : { ca_file: req.ca_file }),
      description: shownUrl(url),
    };
  }
  if ('simplestreams' in req) return resolveSimplestreams(req.simplestreams, serverOf(req.simplestreams ?? {}, 'simplestreams', sources), opts);
  return resolveImgapi(req.imgapi, serverOf(req.imgapi ?? {}, 'imgapi', sources), opts);
}
