// Paths that should not be images or bind sources: the kernel's trees (/proc, /sys, /dev), files
// that are not regular, paths outside the configured roots, a recursive bind of `/`, and a bind
// source that would put the agent's unix socket inside a container's root. Each is refused with
// a 400 that says why, and leaves nothing behind.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkBindSource, DEFAULT_POLICY } from '../../src/sys/paths.js';
import { TestAgent } from '../helpers/agent.js';
import { busyboxImage } from '../helpers/fixtures.js';
import { forceCleanup, loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite } from '../helpers/suite.js';

const loop = (path: string, extra: Record<string, unknown> = {}) => ({ kind: 'loopback', loopback: { path, ...extra } });
const bind = (path: string, extra: Record<string, unknown> = {}) => ({ kind: 'bind', bind: { path, ...extra } });

describe('paths that should not be images (default roots)', () => {
  const ctx = agentSuite();

  const refused: Array<[string, string, unknown, RegExp]> = [
    ['a sysfs file (/sys/kernel/notes, base root)', '/attach', loop('/sys/kernel/notes'), /under \/sys/],
    ['a procfs file', '/attach', loop('/proc/self/environ'), /under \/proc/],
    ['/proc/self/mem', '/attach', loop('/proc/self/mem'), /under \/proc/],
    ['a block device as a loopback file (that is the "local" kind)', '/attach', loop('/dev/loop0'), /under \/dev|not a regular file/],
    ['a character device', '/attach', loop('/dev/zero'), /under \/dev|not a regular file/],
    ['a directory', '/attach', loop('/etc'), /not a regular file/],
    ['a bind of /proc', '/mount', bind('/proc'), /under \/proc/],
    ['a bind of /sys/fs/cgroup', '/mount', bind('/sys/fs/cgroup'), /under \/sys/],
    ['a bind of /dev', '/mount', bind('/dev'), /under \/dev/],
    ['a recursive bind of /', '/mount', bind('/', { recursive: true }), /recursive bind of "\/".*allow_root_rbind/],
  ];
  for (const [what, route, body, msg] of refused) {
    it(`${what} → 400`, async () => {
      const r = await ctx.agent.post(route, body);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.code, 400);
      assert.match(r.body.message, msg);
      assert.deepEqual((await ctx.agent.get('/attach')).body, []);
      assert.deepEqual((await ctx.agent.get('/mount')).body, []);
      assert.deepEqual(mountsUnder(ctx.runDir), []);
    });
  }

  it('a regular file on /dev/shm (a tmpfs under /dev) → 400 too', async () => {
    const f = `/dev/shm/imageapi-escape-${process.pid}.img`;
    copyFileSync(ctx.image, f);
    try {
      const r = await ctx.agent.post('/attach', loop(f));
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.message, /under \/dev/);
      assert.deepEqual(loopsOver(f), []);
    } finally {
      rmSync(f, { force: true });
    }
  });

  it('a pseudo filesystem mounted elsewhere is refused by its type, not its path; a recursive bind may not carry it', async () => {
    const tree = join(ctx.runDir, 'tree');
    const dir = join(tree, 'proc-elsewhere');
    mkdirSync(dir, { recursive: true });
    const { execFileSync } = await import('node:child_process');
    execFileSync('mount', ['-t', 'proc', 'proc', dir]);
    try {
      const r = await ctx.agent.post('/attach', loop(join(dir, 'self/environ')));
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.message, /on a proc filesystem/);
      const b = await ctx.agent.post('/mount', bind(dir));
      assert.equal(b.status, 400, b.text);
      assert.match(b.body.message, /on a proc filesystem/);
      const rb = await ctx.agent.post('/mount', bind(tree, { recursive: true }));
      assert.equal(rb.status, 400, rb.text);
      assert.match(rb.body.message, /recursive bind of .* would carry the proc mount at .*proc-elsewhere/);
      assert.deepEqual(mountsUnder(join(ctx.runDir, 'mounts')), []);
      // A plain bind of the same tree carries no submount: allowed.
      const plain = await ctx.agent.post('/mount', bind(tree));
      assert.equal(plain.status, 201, plain.text);
      assert.equal((await ctx.agent.del(`/mount?id=${plain.body.id}`)).status, 200);
    } finally {
      execFileSync('umount', [dir]);
    }
  });

  it('ordinary files and directories still work: a loopback image and a plain bind', async () => {
    const a = await ctx.agent.post('/attach', loop(ctx.image, { readonly: true }));
    assert.equal(a.status, 201, a.text);
    const src = join(ctx.runDir, 'src');
    mkdirSync(src);
    const b = await ctx.agent.post('/mount', bind(src, { recursive: true }));
    assert.equal(b.status, 201, b.text);
    assert.equal((await ctx.agent.del(`/mount?id=${b.body.id}`)).status, 200);
    assert.equal((await ctx.agent.del(`/attach?id=${a.body.id}`)).status, 200);
    assert.deepEqual(loopsOver(ctx.image), []);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
  });

  it('a recursive bind of / is allowed only by allow_root_rbind (checked without making one: it would pin every mount of the host)', async () => {
    await assert.rejects(checkBindSource('/', '/', true, DEFAULT_POLICY, true), /allow_root_rbind/);
    await checkBindSource('/', '/', true, { roots: ['/'], allowRootRbind: true }, true);
    await checkBindSource('/', '/', false, DEFAULT_POLICY, true); // a plain bind of / carries no other mount
    // … but it holds the agent's socket when the socket is on the root filesystem: refused, unless allowed.
    const sock = [ctx.runDir]; // any path inside / stands for the socket here
    await assert.rejects(checkBindSource('/', '/', false, { roots: ['/'], hidden: sock }, true), /contains the agent's socket/);
    await checkBindSource('/', '/', false, { roots: ['/'], hidden: sock, allowRootRbind: true }, true);
  });
});

describe('allowed roots from the config file, and the agent\'s socket', () => {
  let agent: TestAgent;
  let runDir: string;
  let image: string;
  let images: string;
  let sockDir: string;

  before(async () => {
    image = busyboxImage();
    runDir = TestAgent.newRunDir();
    images = join(runDir, 'images');
    sockDir = join(runDir, 'sock');
    mkdirSync(join(images, 'trees/a'), { recursive: true });
    mkdirSync(join(runDir, 'elsewhere/tree'), { recursive: true });
    mkdirSync(sockDir);
    copyFileSync(image, join(images, 'ok.sqsh'));
    copyFileSync(image, join(runDir, 'elsewhere/no.sqsh'));
    const cfg = join(runDir, 'agent.yaml');
    writeFileSync(cfg, `loopback_roots: [${images}]\nbind_roots: [${join(images, 'trees')}, ${runDir}]\n`);
    agent = await new TestAgent(runDir, ['--config', cfg, '--scheme', 'unix', '--socket-path', join(sockDir, 'agent.sock')]).start();
  });
  after(async () => {
    await agent.stop();
    forceCleanup(runDir, dirname(image), runDir);
  });

  it('a loopback file inside loopback_roots is attached; one outside is refused naming the roots', async () => {
    const ok = await agent.post('/attach', loop(join(images, 'ok.sqsh'), { readonly: true }));
    assert.equal(ok.status, 201, ok.text);
    const no = await agent.post('/attach', loop(join(runDir, 'elsewhere/no.sqsh')));
    assert.equal(no.status, 400, no.text);
    assert.match(no.body.message, /outside the allowed roots \(.*images; set in the config file\)/);
    assert.deepEqual(loopsOver(join(runDir, 'elsewhere')), []);
    assert.equal((await agent.del(`/attach?id=${ok.body.id}`)).status, 200);
  });

  it('a bind source inside bind_roots is mounted; one outside is refused', async () => {
    const ok = await agent.post('/mount', bind(join(images, 'trees/a')));
    assert.equal(ok.status, 201, ok.text);
    const no = await agent.post('/mount', bind('/etc'));
    assert.equal(no.status, 400, no.text);
    assert.match(no.body.message, /outside the allowed roots/);
    assert.equal((await agent.del(`/mount?id=${ok.body.id}`)).status, 200);
  });

  it('a bind source that holds the agent\'s unix socket is refused: the socket stays outside every container root', async () => {
    for (const path of [sockDir, runDir]) {
      const r = await agent.post('/mount', bind(path));
      assert.equal(r.status, 400, r.text);
      assert.match(r.body.message, /contains the agent's socket/);
    }
    const fine = await agent.post('/mount', bind(join(runDir, 'elsewhere')));
    assert.equal(fine.status, 201, fine.text);
    assert.equal((await agent.del(`/mount?id=${fine.body.id}`)).status, 200);
    assert.deepEqual(mountsUnder(runDir), []);
  });
});
