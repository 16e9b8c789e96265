// Configuration: one table of options (OPTIONS below) for the command-line flags, the YAML file
// given by --config and the environment. A value comes from the flag, else the environment, else
// the file, else the default. The file is checked like the API checks a body: an unknown or
// misspelt key, or a value of the wrong type, is an error that names it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { SourceConfig } from './image/types.js';

/** The YAML parser, loaded only when there is a file to read (it is ~0.05–0.1 s of a start). */
const parse = (text: string): unknown => (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);

export type Scheme = 'http' | 'https' | 'unix';

export interface Config {
  scheme: Scheme[];
  host: string;
  port: number;
  tls_host: string;
  tls_port: number;
  socket_path: string;
  tls_certificate?: string;
  tls_key?: string;
  tls_ca?: string;
  run_dir: string;
  log_level: string;
  helper: string;
  rbd_mode: 'auto' | 'krbd' | 'nbd' | 'fuse';
  validate_responses: boolean;
  /** Config-file only, for benchmarks: turning request validation off removes the API's guard rails. */
  validate_requests: boolean;
  /** Config-file only: the default size cap of a container's log file (bytes; K, M, G suffixes), 0 for none. */
  container_log_max_size: number;
  /** Config-file only: how many log files a container keeps, the current one included. */
  container_log_max_files: number;
  /** Config-file only: real paths under which `base: root` loopback files must lie (default `/`). */
  loopback_roots: string[];
  /** Config-file only: real paths under which `base: root` bind sources must lie (default `/`). */
  bind_roots: string[];
  /** Config-file only: allow a recursive bind of `/` (it exposes every mount of the host, the agent's socket too). */
  allow_root_rbind: boolean;
  /** Config-file only: refuse connections from containers to the agent's TCP listeners (nftables; default true). */
  guard_containers: boolean;
  /** Config-file only: host ids automatic user-namespace ranges (65536 each) come from, `START:COUNT`. */
  userns_pool: { start: number; count: number };
  /** The image cache (default <run_dir>/images). */
  image_dir?: string;
  /** The cache's size cap in bytes (K, M, G suffixes): least recently used unused images are evicted. */
  image_cache_max: number;
  /** Seconds a mount or attachment naming an image still pulling waits for it. */
  image_pull_timeout: number;
  /** Config-file only: image servers requests may name by `source` (like `imgadm sources`, or an LXD remote). */
  image_sources: SourceConfig[];
  /** Config-file only: seconds to connect to an image server, and that a transfer may stall without a byte. */
  image_connect_timeout: number;
  image_stall_timeout: number;
}

export const USAGE = `Usage: imageapi-server [options]

  --scheme SCHEME        listener to start: http, https or unix (repeatable;
                         default: http and unix)
  --host ADDR            address of the http listener (default 127.0.0.1)
  --port N               port of the http listener (default 8080; 0 picks a free one)
  --tls-host ADDR        address of the https listener (default 127.0.0.1)
  --tls-port N           port of the https listener (default 8443)
  --tls-certificate F    server certificate (PEM) for https
  --tls-key F            server key (PEM) for https
  --tls-ca F             CA (PEM) that client certificates must chain to (mutual TLS)
  --socket-path P        unix socket (default /var/run/imageapi.sock, mode 0600)
  --run-dir D            state, mounts and logs (default /var/run/imageapi)
  --config F             YAML file with the same keys (underscores: run_dir, log_level, …);
                         an unknown key is an error
  --log-level L          fatal, error, warn, info, debug, trace (also IMAGEAPI_LOGLEVEL)
  --rbd-mode M           auto, krbd, nbd or fuse (default auto)
  --helper F             the container init helper (default: the one built in native/)
  --image-dir D          the image cache (default RUN_DIR/images)
  --image-cache-max N    the cache's size cap in bytes, K/M/G suffixes (default 10G)
  --image-pull-timeout S seconds a mount waits for an image being pulled (default 600)
  --version              print the version and exit
  --help                 this text

Anyone who can reach a listener is root on this node: keep listeners on loopback or the
unix socket, or use https with --tls-ca.
`;

const DEFAULT_HELPER = fileURLToPath(new URL('../../native/build/imageapi-init', import.meta.url));

/** The agent's version, from the package.json it was installed with. */
export function agentVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Log levels by upstream's names (logrus-style) and numbers, mapped to pino's. */
export function logLevel(v: string | undefined): string {
  const s = (v ?? 'info').trim().toLowerCase();
  const names: Record<string, string> = {
    panic: 'fatal', fatal: 'fatal', error: 'error', warn: 'warn', warning: 'warn', info: 'info', debug: 'debug', trace: 'trace', silent: 'silent',
    '0': 'fatal', '1': 'fatal', '2': 'error', '3': 'warn', '4': 'info', '5': 'debug', '6': 'trace',
  };
  const l = names[s];
  if (!l) throw new Error(`unknown log level "${v}" (use fatal, error, warn, info, debug or trace)`);
  return l;
}

type Kind = 'string' | 'port' | 'schemes' | 'boolean' | 'log_level' | 'rbd_mode' | 'paths' | 'id_range' | 'uint' | 'sources';

interface Option {
  kind: Kind;
  default?: unknown;
  /** Has a command-line flag (the key with `-` for `_`). */
  flag?: boolean;
  /** Read from this environment variable too. */
  env?: string;
}

/** Every setting, once: its key in the file (snake case), its flag, its variable, its type. */
const OPTIONS: Record<keyof Config, Option> = {
  scheme: { kind: 'schemes', default: ['http', 'unix'], flag: true },
  host: { kind: 'string', default: '127.0.0.1', flag: true },
  port: { kind: 'port', default: 8080, flag: true },
  tls_host: { kind: 'string', default: '127.0.0.1', flag: true },
  tls_port: { kind: 'port', default: 8443, flag: true },
  socket_path: { kind: 'string', default: '/var/run/imageapi.sock', flag: true },
  tls_certificate: { kind: 'string', flag: true },
  tls_key: { kind: 'string', flag: true },
  tls_ca: { kind: 'string', flag: true },
  run_dir: { kind: 'string', default: '/var/run/imageapi', flag: true },
  log_level: { kind: 'log_level', default: 'info', flag: true, env: 'IMAGEAPI_LOGLEVEL' },
  helper: { kind: 'string', default: DEFAULT_HELPER, flag: true },
  rbd_mode: { kind: 'rbd_mode', default: 'auto', flag: true },
  validate_responses: { kind: 'boolean', default: false, env: 'IMAGEAPI_VALIDATE_RESPONSES' },
  validate_requests: { kind: 'boolean', default: true },
  container_log_max_size: { kind: 'uint', default: 64 * 1024 * 1024 },
  container_log_max_files: { kind: 'uint', default: 4 },
  loopback_roots: { kind: 'paths', default: ['/'] },
  bind_roots: { kind: 'paths', default: ['/'] },
  allow_root_rbind: { kind: 'boolean', default: false },
  guard_containers: { kind: 'boolean', default: true },
  // systemd-nspawn's range: 0x80000 up to 0x6FFFFFFF.
  userns_pool: { kind: 'id_range', default: { start: 0x80000, count: 0x70000000 - 0x80000 } },
  image_dir: { kind: 'string', flag: true },
  image_cache_max: { kind: 'uint', default: 10 * 1024 ** 3, flag: true },
  image_pull_timeout: { kind: 'uint', default: 600, flag: true },
  image_sources: { kind: 'sources', default: [] },
  image_connect_timeout: { kind: 'uint', default: 10 },
  image_stall_timeout: { kind: 'uint', default: 30 },
};

const flagOf = (key: string) => key.replace(/_/g, '-');

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

function suggest(key: string): string {
  const norm = key.toLowerCase().replace(/-/g, '_');
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of Object.keys(OPTIONS)) {
    const dd = distance(norm, k);
    if (dd < bestD) [best, bestD] = [k, dd];
  }
  return best && bestD <= Math.max(2, Math.floor(best.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** Checks and converts one value; `where` names its source in errors (`--port`, `c.yaml: port`). */
function convert(kind: Kind, v: unknown, where: string): unknown {
  const fromText = typeof v === 'string';
  switch (kind) {
    case 'string':
      if (typeof v !== 'string' || v === '') throw new Error(`${where}: must be a non-empty string`);
      return v;
    case 'port': {
      const n = fromText && /^\d+$/.test(v) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${where}: not a port number (0 to 65535): ${JSON.stringify(v)}`);
      return n;
    }
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (fromText && ['1', 'true'].includes(v)) return true;
      if (fromText && ['0', 'false', ''].includes(v)) return false;
      throw new Error(`${where}: must be true or false: ${JSON.stringify(v)}`);
    case 'schemes': {
      const list = [v].flat();
      const out: Scheme[] = [];
      for (const s of list) {
        const l = typeof s === 'string' ? s.toLowerCase() : s;
        if (l !== 'http' && l !== 'https' && l !== 'unix') throw new Error(`${where}: unknown scheme ${JSON.stringify(s)} (http, https or unix)`);
        if (!out.includes(l)) out.push(l);
      }
      if (out.length === 0) throw new Error(`${where}: at least one scheme`);
      return out;
    }
    case 'log_level':
      if (typeof v !== 'string' && typeof v !== 'number') throw new Error(`${where}: must be a log level`);
      try {
        return logLevel(String(v));
      } catch (err) {
        throw new Error(`${where}: ${(err as Error).message}`);
      }
    case 'paths': {
      const list = [v].flat();
      if (!list.length || list.some((p) => typeof p !== 'string' || !p.startsWith('/'))) throw new Error(`${where}: must be a list of absolute paths`);
      return list;
    }
    case 'id_range': {
      const m = typeof v === 'string' ? /^(\d+):(\d+)$/.exec(v) : null;
      const [start, count] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
      if (!(start > 0) || !(count >= 65536) || start + count > 2 ** 32 - 1) {
        throw new Error(`${where}: must be START:COUNT host ids, START > 0, COUNT >= 65536, ending below 2^32-1: ${JSON.stringify(v)}`);
      }
      return { start, count };
    }
    case 'uint': {
      const m = typeof v === 'number' ? [String(v), String(v), ''] : typeof v === 'string' ? /^(\d+)([KMG]?)$/i.exec(v) : null;
      const n = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${where}: must be a whole number >= 0 (K, M, G suffixes allowed): ${JSON.stringify(v)}`);
      return n;
    }
    case 'sources': {
      if (!Array.isArray(v)) throw new Error(`${where}: must be a list of {name, type, url[, ca_file]}`);
      const names = new Set<string>();
      return v.map((x: unknown, i: number) => {
        const at = `${where}[${i}]`;
        if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new Error(`${at}: must be a mapping {name, type, url[, ca_file]}`);
        const o = x as Record<string, unknown>;
        for (const k of Object.keys(o)) if (!['name', 'type', 'url', 'ca_file'].includes(k)) throw new Error(`${at}: unknown key "${k}" (name, type, url, ca_file)`);
        if (typeof o.name !== 'string' || !/^[A-Za-z0-9._-]{1,255}$/.test(o.name)) throw new Error(`${at}.name: letters, digits, . _ - (1 to 255)`);
        if (names.has(o.name)) throw new Error(`${at}.name: "${o.name}" is given twice`);
        names.add(o.name);
        if (o.type !== 'simplestreams' && o.type !== 'imgapi') throw new Error(`${at}.type: simplestreams or imgapi, not ${JSON.stringify(o.type)}`);
        if (typeof o.url !== 'string' || !/^(https?|file):\/\//.test(o.url)) throw new Error(`${at}.url: an http://, https:// or file:// URL`);
        if (o.ca_file !== undefined && (typeof o.ca_file !== 'string' || !o.ca_file.startsWith('/'))) throw new Error(`${at}.ca_file: an absolute path`);
        return { name: o.name, type: o.type, url: o.url, ...(o.ca_file !== undefined ? { ca_file: o.ca_file as string } : {}) } satisfies SourceConfig;
      });
    }
    case 'rbd_mode':
      if (v !== 'auto' && v !== 'krbd' && v !== 'nbd' && v !== 'fuse') throw new Error(`${where}: ${JSON.stringify(v)} is not auto, krbd, nbd or fuse`);
      return v;
  }
}

/** The --config file: a YAML mapping of known keys, each checked. */
function readFile(path: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`--config ${path}: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`--config ${path}: must be a mapping of keys to values`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(doc as Record<string, unknown>)) {
    const opt = (OPTIONS as Record<string, Option | undefined>)[key];
    if (!opt || !Object.hasOwn(OPTIONS, key)) throw new Error(`--config ${path}: unknown key "${key}"${suggest(key)}`);
    if (v === null) continue; // null means absent, as in the API
    out[key] = convert(opt.kind, v, `--config ${path}: ${key}`);
  }
  return out;
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' | 'version' {
  const flagOptions: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'V' },
  };
  for (const [key, opt] of Object.entries(OPTIONS)) {
    if (opt.flag) flagOptions[flagOf(key)] = { type: 'string', ...(opt.kind === 'schemes' ? { multiple: true } : {}) };
  }
  const { values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: flagOptions });
  if (values.help) return 'help';
  if (values.version) return 'version';
  const file = typeof values.config === 'string' ? readFile(values.config) : {};
  const cfg: Record<string, unknown> = {};
  for (const [key, opt] of Object.entries(OPTIONS)) {
    const flag = opt.flag ? (values as Record<string, unknown>)[flagOf(key)] : undefined;
    const fromEnv = opt.env ? env[opt.env] : undefined;
    if (flag !== undefined) cfg[key] = convert(opt.kind, flag, `--${flagOf(key)}`);
    else if (fromEnv !== undefined && fromEnv !== '') cfg[key] = convert(opt.kind, fromEnv, opt.env!);
    else if (key in file) cfg[key] = file[key];
    else if (opt.default !== undefined) cfg[key] = opt.kind === 'log_level' ? logLevel(String(opt.default)) : opt.default;
  }
  const c = cfg as unknown as Config;
  if (c.scheme.includes('https') && (!c.tls_certificate || !c.tls_key)) {
    throw new Error('--scheme https needs --tls-certificate and --tls-key');
  }
  return c;
}
