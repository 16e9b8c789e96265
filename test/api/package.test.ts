// Install as a package: `npm pack` of the source tree, then `npm install -g` of the tarball into a
// temporary prefix, gives an imageapi-server that starts and runs a container. The tree is packed
// from a copy (its prepack builds there), so the checkout's own dist/ is never touched.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver, mountsUnder } from '../helpers/leaks.js';
import { imageStack } from '../helpers/suite.js';

const sh = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000, env: { ...process.env, npm_config_update_notifier: 'false' } });

describe('npm pack + npm install -g gives a working imageapi-server', { timeout: 900_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'imageapi-pkg-'));
  const tree = join(work, 'tree');
  const prefix = join(work, 'prefix');
  const runDir = join(work, 'run');
  let tarball = '';
  let server: ChildProcess | undefined;
  let output = '';
  let url = '';
  let image = '';

  before(() => {
    image = busyboxImage();
    // The files git knows of (committed or not, not ignored): what a fresh clone has.
    const files = sh('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], ROOT).split('\0').filter(Boolean);
    for (const f of files) {
      if (!existsSync(join(ROOT, f))) continue; // deleted in the working tree
      mkdirSync(dirname(join(tree, f)), { recursive: true });
      cpSync(join(ROOT, f), join(tree, f));
    }
    symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
  });

  after(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    forceCleanup(runDir, dirname(image));
    rmSync(work, { recursive: true, force: true });
  });

  it('npm pack builds and carries the JS, swagger.yaml and the native helper', () => {
    const out = sh('npm', ['pack', '--json', '--pack-destination', work], tree);
    const info = JSON.parse(out.slice(out.search(/^\[$/m))) as { filename: string; files: { path: string }[] }[];
    tarball = join(work, info[0]!.filename);
    assert.ok(existsSync(tarball), out);
    const paths = info[0]!.files.map((f) => f.path);
    for (const p of ['bin/imageapi-server.js', 'dist/src/main.js', 'dist/src/agent.js', 'swagger.yaml', 'native/build/imageapi-init', 'native/build/imageapi-spawner', 'native/Makefile', 'package.json']) {
      assert.ok(paths.includes(p), `${p} in the tarball: ${paths.join(' ')}`);
    }
    assert.ok(!paths.some((p) => p.startsWith('dist/test/') || p.startsWith('test/') || p.startsWith('node_modules/')), 'no tests nor node_modules');
  });

  it('npm install -g of the tarball into a prefix: imageapi-server --version', () => {
    assert.ok(tarball, 'the pack step ran');
    sh('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], work);
    const bin = join(prefix, 'bin/imageapi-server');
    assert.ok(existsSync(bin), readdirSync(join(prefix, 'bin')).join(' '));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(sh(bin, ['--version'], work), `imageapi-server ${pkg.version}\n`);
  });

  it('the installed server starts on a free port with a temp run-dir, answers, and runs a container', async () => {
    const bin = join(prefix, 'bin/imageapi-server');
    assert.ok(existsSync(bin), 'installed');
    server = spawn(bin, ['--scheme', 'http', '--port', '0', '--run-dir', runDir], {
      cwd: work,
      env: { ...process.env, IMAGEAPI_VALIDATE_RESPONSES: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`did not start:\n${output}`)), 30_000);
      server!.stdout!.on('data', (b: Buffer) => {
        output += b.toString();
        const m = /"address":"(http:\/\/[^"]+)"/.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      server!.stderr!.on('data', (b: Buffer) => (output += b.toString()));
      server!.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited with ${code}:\n${output}`));
      });
    });
    // /_ping where the installed spec has it, and the list every build has.
    const installedSpec = readFileSync(join(prefix, 'lib/node_modules/imageapi/swagger.yaml'), 'utf8');
    if (/^  \/_ping:$/m.test(installedSpec)) {
      const ping = await fetch(`${url}/_ping`);
      assert.equal(ping.status, 200);
      assert.equal((await ping.text()).trim(), 'OK');
    }
    const list = await fetch(`${url}/imageapi/v1/container`);
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), []);
    // The helper from the package runs a container (swagger.yaml is found: the body is validated).
    const bad = await fetch(`${url}/imageapi/v1/container`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"bogus":1}' });
    assert.equal(bad.status, 400);
    const created = await fetch(`${url}/imageapi/v1/container`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'pkg', command: '/bin/sh -c "echo from-the-package"', state: 'running', mount: imageStack(image) }),
    });
    const c = (await created.json()) as { id: number; state: string };
    assert.equal(created.status, 201, JSON.stringify(c) + output.slice(-2000));
    let state = c.state;
    for (let i = 0; i < 200 && state !== 'exited'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      state = ((await (await fetch(`${url}/imageapi/v1/container?id=${c.id}`)).json()) as { state: string }[])[0]!.state;
    }
    assert.equal(state, 'exited');
    const log = await (await fetch(`${url}/imageapi/v1/container/log?id=${c.id}`)).text();
    assert.match(log, /from-the-package/);
    const del = await fetch(`${url}/imageapi/v1/container?id=${c.id}`, { method: 'DELETE' });
    assert.equal(del.status, 200, await del.text());
    assert.deepEqual(mountsUnder(runDir), []);
    assert.deepEqual(loopsOver(image), []);
    const exited = new Promise<number | null>((r) => server!.once('exit', (code) => r(code)));
    server.kill('SIGTERM');
    assert.equal(await exited, 0, output.slice(-2000));
  });
});
