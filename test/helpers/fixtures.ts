// Test fixtures built at run time (no committed binaries): a busybox squashfs image.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './agent.js';

/** A busybox squashfs image, built once per test process. */
export function busyboxImage(): string {
  const dir = join(tmpdir(), `imageapi-fixtures-${process.pid}`);
  const file = join(dir, 'busybox.sqsh');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    // Gone with the test process (suites detach their loop devices in their after hooks).
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    execFileSync('bash', [join(ROOT, 'test/fixtures/busybox-image.sh'), file], { stdio: 'inherit' });
  }
  return file;
}
