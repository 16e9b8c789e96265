// Configuration: command-line flags, then the YAML file given by --config (same keys), then
// defaults. Flags win over the file.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';

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
  --config F             YAML file with the same keys (underscores: run_dir, log_level, …)
  --log-level L          fatal, error, warn, info, debug, trace (also IMAGEAPI_LOGLEVEL)
  --rbd-mode M           auto, krbd, nbd or fuse (default auto)
  --helper F             the container init helper (default: the one built in native/)
  --help                 this text

Anyone who can reach a listener is root on this node: keep listeners on loopback or the
unix socket, or use https with --tls-ca.
`;

const DEFAULT_HELPER = fileURLToPath(new URL('../../native/build/imageapi-init', import.meta.url));

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

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      scheme: { type: 'string', multiple: true },
      host: { type: 'string' },
      port: { type: 'string' },
      'tls-host': { type: 'string' },
      'tls-port': { type: 'string' },
      'tls-certificate': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      'socket-path': { type: 'string' },
      'run-dir': { type: 'string' },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      'rbd-mode': { type: 'string' },
      helper: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const file: Record<string, unknown> = values.config ? ((parse(readFileSync(values.config, 'utf8')) as Record<string, unknown>) ?? {}) : {};
  const pick = (flag: string, key: string): unknown => (values as Record<string, unknown>)[flag] ?? file[key];
  const str = (flag: string, key: string, dflt: string) => String(pick(flag, key) ?? dflt);
  const int = (flag: string, key: string, dflt: number) => {
    const n = Number(pick(flag, key) ?? dflt);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${flag}: not a port number`);
    return n;
  };
  const schemes = ([pick('scheme', 'scheme') ?? ['http', 'unix']].flat() as string[]).map((s) => s.toLowerCase());
  for (const s of schemes) if (!['http', 'https', 'unix'].includes(s)) throw new Error(`--scheme: unknown scheme "${s}" (http, https or unix)`);
  const rbdMode = str('rbd-mode', 'rbd_mode', 'auto');
  if (!['auto', 'krbd', 'nbd', 'fuse'].includes(rbdMode)) throw new Error(`--rbd-mode: "${rbdMode}" is not auto, krbd, nbd or fuse`);
  const cfg: Config = {
    scheme: [...new Set(schemes)] as Scheme[],
    host: str('host', 'host', '127.0.0.1'),
    port: int('port', 'port', 8080),
    tls_host: str('tls-host', 'tls_host', '127.0.0.1'),
    tls_port: int('tls-port', 'tls_port', 8443),
    socket_path: str('socket-path', 'socket_path', '/var/run/imageapi.sock'),
    tls_certificate: pick('tls-certificate', 'tls_certificate') as string | undefined,
    tls_key: pick('tls-key', 'tls_key') as string | undefined,
    tls_ca: pick('tls-ca', 'tls_ca') as string | undefined,
    run_dir: str('run-dir', 'run_dir', '/var/run/imageapi'),
    log_level: logLevel((values['log-level'] as string | undefined) ?? env.IMAGEAPI_LOGLEVEL ?? (file.log_level as string | undefined)),
    helper: str('helper', 'helper', DEFAULT_HELPER),
    rbd_mode: rbdMode as Config['rbd_mode'],
    validate_responses: env.IMAGEAPI_VALIDATE_RESPONSES === '1' || file.validate_responses === true,
    validate_requests: file.validate_requests !== false,
  };
  if (cfg.scheme.includes('https') && (!cfg.tls_certificate || !cfg.tls_key)) {
    throw new Error('--scheme https needs --tls-certificate and --tls-key');
  }
  return cfg;
}
