// What a failed mount or unmount means for the mount drivers' requests: the filesystem, device or
// options given do not fit (INVALID); something still uses the mount (IN_USE).
import { toAgentError } from '../model/errors.js';
import { mount, unmountTree, type MountArgs } from '../sys/mount.js';

export async function mountOrInvalid(a: MountArgs): Promise<void> {
  await mount(a).catch((e) => {
    throw toAgentError(e).as('INVALID');
  });
}

export async function unmountOrInUse(target: string): Promise<void> {
  await unmountTree(target).catch((e) => {
    throw toAgentError(e).as('IN_USE');
  });
}
