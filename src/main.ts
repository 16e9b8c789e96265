// imageapi-server: flags, environment and config file → the agent's listeners.
import { pino } from 'pino';
import { startAgent } from './agent.js';
import { agentVersion, loadConfig, USAGE } from './config.js';
import { sdNotify } from './sys/notify.js';

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`imageapi-server: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (cfg === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (cfg === 'version') {
    process.stdout.write(`imageapi-server ${agentVersion()}\n`);
    return;
  }
  const log = pino({ level: cfg.log_level, base: { pid: process.pid } });
  // A promise nobody awaited failed (a background stop, say): say so loudly, and keep serving the
  // containers this agent supervises rather than exit and leave them unwatched.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled failure in the background'));
  if (process.getuid?.() !== 0) log.warn('not running as root: attaching and mounting will fail');
  // Until it listens, nothing keeps the event loop alive but the start-up itself: a wait that only
  // an unref'd timer could end would empty it and exit 0, silently, with the work half-done (and
  // a Restart=on-failure unit would not restart it). Hold it open, and never exit 0 unasked.
  const holdOpen = setInterval(() => {}, 1 << 30);
  let stopping = false;
  process.on('beforeExit', () => {
    if (stopping) return;
    log.fatal('the agent ran out of work without being asked to stop (an internal fault): exiting 1');
    process.exit(1);
  });
  // The handlers come first: a SIGTERM during the start (or just after "listening") is a stop, not death.
  const starting = startAgent(cfg, log);
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing requests in flight, leaving attachments, mounts and containers in place');
    sdNotify('STOPPING=1')
      .catch((err) => log.warn({ err }, 'cannot tell systemd that the agent stops'))
      .then(() => starting)
      .then((agent) => agent.stop())
      .then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  let agent;
  try {
    agent = await starting;
  } finally {
    clearInterval(holdOpen);
  }
  // Reconciled and listening: under systemd (Type=notify) the unit becomes active only now.
  await sdNotify('READY=1', `STATUS=serving ${agent.addresses.join(' ')}`).catch((err) => log.warn({ err }, 'cannot tell systemd that the agent is ready'));
}

main().catch((err) => {
  process.stderr.write(`imageapi-server: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
