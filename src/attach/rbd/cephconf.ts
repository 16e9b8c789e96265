// The client-side Ceph files for one cluster/user: a ceph.conf and a keyring, mode 0600, in a
// directory of the agent's run-dir. The key lives only in the keyring file.
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { internal } from '../../model/errors.js';
import { writeAtomic } from '../../sys/fs.js';
import { libradosSettings } from './options.js';
import type { Resolved } from './spec.js';

export interface ClientFiles {
  conf: string;
  keyring: string | undefined;
  log: string;
}

// Ceph reads `#`/`;` as comments and expands `$name`-style variables in values.
function confPath(p: string): string {
  if (/[\n#;$]/.test(p)) throw internal(`rbd: the path ${JSON.stringify(p)} cannot be written into a ceph.conf`);
  return p;
}

/** ceph.conf text for a librados client of `r`'s cluster. Pure: tests check it carries no key. */
export function clientConfText(r: Resolved, files: { keyring: string | undefined; log: string }): string {
  const lines = [
    '[global]',
    `mon_host = ${r.monHost}`,
    // Without a key: no cephx, and no keyring from the host's /etc/ceph either.
    ...(files.keyring ? [`keyring = ${confPath(files.keyring)}`] : ['keyring = /dev/null', 'auth_client_required = none']),
    'admin_socket =',
    'pid_file =',
    `log_file = ${confPath(files.log)}`,
    'log_to_stderr = false',
    'err_to_stderr = true',
    `client_mount_timeout = ${r.timeoutS}`,
  ];
  for (const [k, v] of Object.entries(libradosSettings(r.opts))) lines.push(`${k} = ${v}`);
  return lines.join('\n') + '\n';
}

export function keyringText(user: string, key: string): string {
  return `[client.${user}]\n\tkey = ${key}\n`;
}


/** Write ceph.conf and (with a key) the keyring into `dir` (created 0700). */
export async function writeClientFiles(dir: string, r: Resolved): Promise<ClientFiles> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const files: ClientFiles = {
    conf: join(dir, 'ceph.conf'),
    keyring: r.key !== undefined ? join(dir, 'keyring') : undefined,
    log: join(dir, 'client.log'),
  };
  if (files.keyring) await writeAtomic(files.keyring, keyringText(r.user, r.key!));
  await writeAtomic(files.conf, clientConfText(r, files));
  return files;
}
