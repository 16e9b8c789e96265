// Wiring: the store, drivers, engine, container manager and HTTP listeners of one agent.
import { access, chmod, mkdir, open, readFile, realpath, rm, unlink } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createApp, guardServer } from './api/app.js';
import type { LoadedSpec } from './api/spec.js';
import { loadChecks } from './api/validate.js';
import { Views } from './api/views.js';
import { attachDrivers } from './attach/registry.js';
import type { Config } from './config.js';
import { ContainerManager } from './container/lifecycle.js';
import { Engine, secretFieldsOf } from './core/engine.js';
import { Images } from './core/images.js';
import { ImageCache } from './image/cache.js';
import { mountAliases, mountDrivers } from './mount/registry.js';
import { Store } from './store/store.js';
import { removeAgentGroup } from './sys/cgroups.js';
import { NetGuard } from './sys/netguard.js';
import { spawnerPath } from './sys/spawner.js';

export interface Agent {
  /** Addresses listened on, e.g. `http://127.0.0.1:8080`, `unix:/var/run/imageapi.sock`. */
  addresses: string[];
  stop(): Promise<void>;
}

/** One agent per run-dir: a second one would corrupt the first one's state. */
async function lockRunDir(runDir: string): Promise<string> {
  const file = join(runDir, 'agent.pid');
  for (let i = 0; i < 2; i++) {
    try {
      const fh = await open(file, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } catch (err) {
        // A full run-dir must not keep the agent from starting (it is how space gets freed): the
        // lock file exists but without its pid (so a second agent could take the run-dir over).
        if (!['ENOSPC', 'EDQUOT'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
      } finally {
        await fh.close();
      }
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      let alive = false;
      try {
        if (pid > 0) process.kill(pid, 0);
        alive = pid > 0;
      } catch {
        alive = false;
      }
      if (alive && pid !== process.pid) throw new Error(`another agent (pid ${pid}) is using the run-dir ${runDir}`);
      await rm(file, { force: true });
    }
  }
  throw new Error(`cannot lock the run-dir ${runDir}`);
}

/** The native programs the agent cannot work without: missing, it says so before it starts anything. */
async function requireNative(cfg: Config): Promise<void> {
  for (const [what, file] of [['the init helper (--helper)', cfg.helper], ['the fork server', spawnerPath]] as const) {
    await access(file, constants.X_OK).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`${what} ${file} cannot be run (${err.code}): build it with \`make -C native\` (npm run build does)`);
    });
  }
}

export async function startAgent(cfg: Config, log: Logger, spec?: LoadedSpec): Promise<Agent> {
  await requireNative(cfg);
  await mkdir(cfg.run_dir, { recursive: true, mode: 0o700 });
  // The run-dir by its real path: the kernel names mountpoints so (/proc/self/mountinfo), and a
  // restart finds its mounts only under that name (the default /var/run is a link to /run).
  cfg = { ...cfg, run_dir: await realpath(cfg.run_dir) };
  const lockFile = await lockRunDir(cfg.run_dir);
  const drivers = { attach: attachDrivers, mount: mountDrivers, mountAliases };
  const store = new Store(cfg.run_dir, { secretFields: secretFieldsOf(drivers) });
  const loaded = await store.load();
  if (loaded.damaged) {
    // Never forget silently: say what was wrong and where the file is; the kernel objects under
    // the run-dir that no record owns now are removed by reconcile, and the agent serves.
    const d = loaded.damaged;
    log.error(
      { reason: d.reason, moved_to: d.movedTo, rebuilt_from: d.rebuiltFrom ?? null },
      d.rebuiltFrom
        ? 'the state file is damaged: moved aside; rebuilt from its previous version (what the kernel no longer has is dropped, what no record owns is removed)'
        : 'the state file is damaged: moved aside; starting without records (what the kernel has under the run-dir is removed)',
    );
  }
  if (loaded.intent) log.warn({ intent: loaded.intent }, 'the last agent died during a request: undoing what it had made');
  const ctx = {
    runDir: cfg.run_dir,
    log,
    config: {
      rbd_mode: cfg.rbd_mode,
      loopback_roots: cfg.loopback_roots,
      bind_roots: cfg.bind_roots,
      allow_root_rbind: cfg.allow_root_rbind,
      // A bind source holding the agent's socket would put it inside a container's root.
      hidden_paths: cfg.scheme.includes('unix') ? [cfg.socket_path] : [],
    },
  };
  // The image cache: its scan removes what a pull cut by a crash left (a partial file is never used).
  const imageDir = cfg.image_dir ?? join(cfg.run_dir, 'images');
  const timeouts = { connectTimeoutMs: Math.max(1, cfg.image_connect_timeout) * 1000, stallTimeoutMs: Math.max(1, cfg.image_stall_timeout) * 1000 };
  const cache = new ImageCache({ dir: imageDir, maxBytes: cfg.image_cache_max, log, ...timeouts });
  await cache.scan();
  const guard = new NetGuard(cfg.run_dir, log, cfg.guard_containers);
  const containers = new ContainerManager({ helper: cfg.helper, guard, userns_pool: cfg.userns_pool });
  const engine = new Engine(store, drivers, ctx, { stop: (rec) => containers.stop(rec), teardown: (rec) => containers.teardown(rec) });
  containers.attach(engine);
  const images = new Images(engine, { cache, sources: cfg.image_sources, pullTimeoutMs: cfg.image_pull_timeout * 1000, log, ...timeouts });
  engine.images = images;
  containers.logCap = { max_size: cfg.container_log_max_size, max_files: Math.max(1, cfg.container_log_max_files) };
  engine.events.open(cfg.run_dir); // the event sequence goes on where the last run left it
  const views = new Views(store, drivers);
  await engine.reconcile((rec) => containers.adopt(rec), {
    intent: loaded.intent,
    damaged: loaded.damaged ? { loops: loaded.damaged.loops } : undefined,
    loopRoots: [imageDir],
  });
  images.resumePulls();
  log.info(
    { attachments: store.list('attach').length, mounts: store.list('mount').length, containers: store.list('container').length, images: store.list('image').length },
    'state loaded',
  );

  const checks = await loadChecks({ responses: cfg.validate_responses, log });
  const app = createApp({ store, engine, views, containers, images }, { log, spec, checks, validateRequests: cfg.validate_requests, runDir: cfg.run_dir });
  const servers: Server[] = [];
  const addresses: string[] = [];
  const listen = (srv: Server, ...args: unknown[]) =>
    new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      (srv.listen as (...a: unknown[]) => void)(...args, () => resolve());
    });
  for (const scheme of cfg.scheme) {
    if (scheme === 'http') {
      const srv = createHttpServer(app);
      await listen(srv, cfg.port, cfg.host);
      const a = srv.address();
      addresses.push(`http://${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host}:${typeof a === 'object' && a ? a.port : cfg.port}`);
      servers.push(guardServer(srv, log));
    } else if (scheme === 'https') {
      const srv = createHttpsServer(
        {
          cert: readFileSync(cfg.tls_certificate!),
          key: readFileSync(cfg.tls_key!),
          ...(cfg.tls_ca ? { ca: readFileSync(cfg.tls_ca), requestCert: true, rejectUnauthorized: true } : {}),
        },
        app,
      );
      await listen(srv, cfg.tls_port, cfg.tls_host);
      const a = srv.address();
      addresses.push(`https://${cfg.tls_host}:${typeof a === 'object' && a ? a.port : cfg.tls_port}`);
      servers.push(guardServer(srv, log));
    } else {
      await unlink(cfg.socket_path).catch(() => {});
      const srv = createHttpServer(app);
      // Only root may talk to the socket: whoever reaches it can mount anything.
      const old = process.umask(0o177);
      try {
        await listen(srv, cfg.socket_path);
      } finally {
        process.umask(old);
      }
      await chmod(cfg.socket_path, 0o600);
      addresses.push(`unix:${cfg.socket_path}`);
      servers.push(guardServer(srv, log));
    }
  }
  for (const a of addresses) log.info({ address: a }, 'listening');
  // Containers may not reach the TCP listeners (the unix socket is outside every container root).
  const tcp = servers.map((s) => s.address()).filter((a): a is AddressInfo => typeof a === 'object' && a !== null);
  if (cfg.guard_containers) await guard.setListeners(tcp.map((a) => ({ address: a.address, port: a.port })));
  else if (tcp.length) log.warn('guard_containers is off: processes in containers can connect to the agent\'s TCP listeners');

  return {
    addresses,
    async stop() {
      // Stop accepting, let what is in flight finish, save; attachments, mounts and containers stay.
      engine.events.shutdown(); // /events followers and waiters would hold their connections open
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeIdleConnections();
            }),
        ),
      );
      await images.close(); // pulls stop; their images stay `pulling`, pulled again at the next start
      await engine.update(() => {}); // after what is in flight, and saved
      engine.events.close();
      containers.close();
      await removeAgentGroup(cfg.run_dir); // if no container is left in it; then the guard goes too
      await guard.close();
      if (cfg.scheme.includes('unix')) await unlink(cfg.socket_path).catch(() => {});
      await rm(lockFile, { force: true });
    },
  };
}
