// Confining user-supplied paths to their base directory: no `..`, no escape through symlinks.
import { realpath } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { invalid, fromFsError } from '../model/errors.js';

/**
 * Resolve `path` (relative to `base`, a leading `/` meaning the base itself) to a real path that
 * lies inside `base`. `what` names the field for error messages.
 */
export async function resolveWithin(base: string, path: string, what: string): Promise<string> {
  if (path.includes('\0')) throw invalid(`${what}: contains a NUL byte`);
  if (path.split('/').includes('..')) throw invalid(`${what}: "${path}" may not contain ".."`);
  const realBase = await realpath(base).catch((e) => {
    throw fromFsError(e, `${what}: base ${base}`);
  });
  const joined = normalize(join(realBase, isAbsolute(path) ? path.slice(1) : path));
  const real = await realpath(joined).catch((e) => {
    throw fromFsError(e, `${what}: "${path}"`);
  });
  if (!isInside(realBase, real)) {
    throw invalid(`${what}: "${path}" leads outside its base through a symbolic link (to ${real})`);
  }
  return real;
}

export function isInside(base: string, p: string): boolean {
  if (base === '/') return true;
  return p === base || p.startsWith(base.endsWith(sep) ? base : base + sep);
}
