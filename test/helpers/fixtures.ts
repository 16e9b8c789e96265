// Test fixtures built at run time (no committed binaries): a busybox squashfs image.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './agent.js';

/** A busybox squashfs image, built once per test process. */
export function busyboxImage(): string {
  const dir = join(tmpdir(), `imageapi-fixtures-${process.pid}`);
  const file = join(dir, 'busybox.sqsh');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    execFileSync('bash', [join(ROOT, 'test/fixtures/busybox-image.sh'), file], { stdio: 'inherit' });
  }
  return file;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}
