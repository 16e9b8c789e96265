// What the sources share: the options of a resolution, the server a request names, URL checks.
import { invalid } from '../../model/errors.js';
import { shownUrl } from '../fetch.js';

export interface ResolveOptions {
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  signal?: AbortSignal;
  /** Bound on an index or manifest document (default 16 MiB). */
  maxJsonBytes?: number;
}

/** A server named by a request: a configured source of the right type, or a URL (http/https). */
export interface Server {
  url: string;
  ca_file?: string;
  /** The source's name, when configured, for messages. */
  name?: string;
}

const SCHEMES = ['http:', 'https:', 'file:'];

/** Check a URL a request names: parseable, http/https/file, no fragment games; INVALID naming the field. */
export function checkUrl(url: unknown, field: string, schemes = SCHEMES): string {
  if (typeof url !== 'string' || url.length === 0) throw invalid(`${field}: a URL is required`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalid(`${field}: ${JSON.stringify(url.slice(0, 200))} is not a URL`);
  }
  if (!schemes.includes(u.protocol)) {
    throw invalid(`${field}: ${shownUrl(u)}: only ${schemes.map((s) => s.slice(0, -1)).join(', ')} URLs are supported`);
  }
  if (u.protocol === 'file:' && u.host !== '' && u.host !== 'localhost') throw invalid(`${field}: ${shownUrl(u)}: a file URL names a local file (file:///path)`);
  return url;
}

/** `base` + a relative path, as a directory URL would join it (a base without a trailing slash still keeps its last segment). */
export function joinUrl(base: string, path: string): string {
  const b = base.endsWith('/') ? base : `${base}/`;
  return new URL(path.replace(/^\/+/, ''), b).toString();
}


/** How a source names its server in messages, and the options of its document fetches. */
export function serverContext(server: Server, opts: ResolveOptions) {
  return {
    where: server.name ? `source ${server.name} (${shownUrl(server.url)})` : shownUrl(server.url),
    fetch: {
      ...(server.ca_file === undefined ? {} : { ca_file: server.ca_file }),
      connectTimeoutMs: opts.connectTimeoutMs,
      stallTimeoutMs: opts.stallTimeoutMs,
      maxBytes: opts.maxJsonBytes,
      signal: opts.signal,
    },
  };
}
