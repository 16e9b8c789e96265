// sd_notify for Type=notify units: READY=1 once the agent serves, STOPPING=1 when it stops. Node
// has no unix datagram sockets, so systemd-notify (the systemd package) sends the message; the
// unit file says NotifyAccess=all, since the sender is that child, not the agent itself.
import { run } from './exec.js';

/** Send `assignments` (`READY=1`, `STOPPING=1`, `STATUS=…`) when started by systemd (NOTIFY_SOCKET set); false otherwise. */
export async function sdNotify(...assignments: string[]): Promise<boolean> {
  if (!process.env.NOTIFY_SOCKET) return false;
  await run('systemd-notify', [`--pid=${process.pid}`, ...assignments], { timeoutMs: 5000 });
  return true;
}
