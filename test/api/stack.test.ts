// Attachments and mounts for real: loop devices, squashfs, overlayfs and bind mounts on this
// kernel, through both API generations.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync, symlinkSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite } from '../helpers/suite.js';

const loop = (path: string) => ({ kind: 'loopback', loopback: { path } });
const sqsh = (attach: unknown) => ({ kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach } });

describe('attachments and mounts on the real kernel', () => {
  const ctx = agentSuite();



  it('loopback → squashfs → 3-layer overlay: writable, image untouched', async () => {
    const a = await ctx.agent.post('/attach', loop(ctx.image));
    assert.equal(a.status, 201, a.text);
    assert.match(a.body.device_file, /^\/dev\/loop\d+$/);
    assert.equal(a.body.refs, 1);
    const m = await ctx.agent.post('/mount', sqsh({ id: a.body.id }));
    assert.equal(m.status, 201, m.text);
    assert.ok(existsSync(join(m.body.mountpoint, 'bin/busybox')));
    // Three lowers, lower[0] on top: two plain directories (bind mounts) over the image.
    const dirs = ['layer-a', 'layer-b'].map((d) => join(ctx.runDir, d));
    dirs.forEach((d, i) => {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'layer'), `layer ${i}`);
    });
    const b0 = await ctx.agent.post('/mount', { kind: 'bind', bind: { path: dirs[0], ro: true } });
    const b1 = await ctx.agent.post('/mount', { kind: 'bind', bind: { path: dirs[1], ro: true } });
    assert.equal(b1.status, 201, b1.text);
    const top = await ctx.agent.post('/mount', { kind: 'overlay', overlay: { lower: [{ id: b0.body.id }, { id: b1.body.id }, { id: m.body.id }] } });
    assert.equal(top.status, 201, top.text);
    assert.equal(top.body.overlay.lower.length, 3);
    assert.equal(readFileSync(join(top.body.mountpoint, 'layer'), 'utf8'), 'layer 0', 'lower[0] is on top');
    const f = join(top.body.mountpoint, 'etc/written-by-test');
    writeFileSync(f, 'hello');
    assert.equal(readFileSync(f, 'utf8'), 'hello');
    assert.ok(!existsSync(join(m.body.mountpoint, 'etc/written-by-test')), 'the image is untouched');
    assert.ok(existsSync(join(top.body.overlay.upperdir, 'etc/written-by-test')), 'the write landed in the upper dir');
    assert.throws(() => writeFileSync(join(m.body.mountpoint, 'x'), 'x'), /EROFS|read-only/);

    // In use: refused, naming the users; then deleted top-down.
    const refused = await ctx.agent.del(`/attach?id=${a.body.id}`);
    assert.equal(refused.status, 409);
    assert.match(refused.body.message, new RegExp(`mount ${m.body.id}`));
    const refusedM = await ctx.agent.del(`/mount?id=${m.body.id}`);
    assert.equal(refusedM.status, 409);
    assert.match(refusedM.body.message, new RegExp(`mount ${top.body.id} \\(overlay\\)`));
    assert.equal((await ctx.agent.get(`/mount?id=${m.body.id}`)).body[0].refs, 2, 'the user and the overlay');

    const forced = await ctx.agent.del(`/attach?id=${a.body.id}&force=true`);
    assert.equal(forced.status, 200, forced.text);
    assert.equal(forced.body.id, a.body.id);
    assert.deepEqual((await ctx.agent.get('/attach')).body, []);
    // The force cascade took the overlay with it; the binds were the user's and stay.
    assert.deepEqual((await ctx.agent.get('/mount')).body.map((x: { id: number }) => x.id), [b0.body.id, b1.body.id]);
    for (const b of [b0, b1]) assert.equal((await ctx.agent.del(`/mount?id=${b.body.id}`)).status, 200);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('bind mount with ro refuses writes; without ro it writes through', async () => {
    const src = join(ctx.runDir, 'bind-src');
    mkdirSync(src, { recursive: true });
    const ro = await ctx.agent.post('/mount', { kind: 'bind', bind: { path: src, base: 'root', ro: true } });
    assert.equal(ro.status, 201, ro.text);
    assert.throws(() => writeFileSync(join(ro.body.mountpoint, 'f'), 'x'), /EROFS|read-only/);
    const rw = await ctx.agent.post('/mount', { kind: 'bind', bind: { path: src } });
    assert.equal(rw.status, 201, rw.text);
    writeFileSync(join(rw.body.mountpoint, 'f'), 'x');
    assert.equal(readFileSync(join(src, 'f'), 'utf8'), 'x');
    // A bind inside another mount, confined to it.
    const img = await ctx.agent.post('/mount', sqsh(loop(ctx.image)));
    const inner = await ctx.agent.post('/mount', { kind: 'bind', bind: { path: '/etc', base: 'mount', mount: { id: img.body.id } } });
    assert.equal(inner.status, 201, inner.text);
    assert.ok(existsSync(join(inner.body.mountpoint, 'passwd')));
    for (const m of [ro, rw, inner, img]) assert.equal((await ctx.agent.del(`/mount?id=${m.body.id}`)).status, 200);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('the whole stack as one nested v0.2 request, seen with the same ids through v0.1', async () => {
    const nested = { kind: 'overlay', overlay: { lower: [sqsh(loop(ctx.image))] } };
    const r = await ctx.agent.post('/imageapi/v1/mount', nested);
    assert.equal(r.status, 201, r.text);
    const lowerMount = r.body.overlay.lower[0];
    const att = lowerMount.attach.attach;
    assert.ok(att.id >= 0 && lowerMount.id >= 0);
    assert.ok(lowerMount.id < r.body.id, 'ids are given depth-first');
    // The typed route sees the same overlay, with the same ids.
    const v1 = await ctx.agent.get(`/mount/overlay/${r.body.id}`);
    assert.equal(v1.status, 200, v1.text);
    assert.deepEqual(v1.body.lower, [lowerMount.id]);
    assert.equal(v1.body.mountpoint, r.body.mountpoint);
    // A typed v0.1 overlay over the mount created through the generic routes.
    const t = await ctx.agent.post('/mount/overlay', { lower: [lowerMount.id] });
    assert.equal(t.status, 201, t.text);
    assert.deepEqual(t.body.lower, [lowerMount.id]);
    assert.ok(t.body.upperdir && t.body.workdir);
    const g = await ctx.agent.get(`/imageapi/v1/mount?id=${t.body.id}`);
    assert.equal(g.body[0].kind, 'overlay');
    assert.equal(g.body[0].overlay.lower[0].id, lowerMount.id);
    assert.equal(g.body[0].overlay.lower[0].refs, 2, 'held by both overlays');
    // Deleting the nested overlay keeps its lower (still used by the typed one), now the user's.
    assert.equal((await ctx.agent.del(`/mount?id=${r.body.id}`)).status, 200);
    const kept = await ctx.agent.get(`/mount?id=${lowerMount.id}`);
    assert.equal(kept.body.length, 1);
    assert.equal((await ctx.agent.del(`/mount/overlay/${t.body.id}`)).status, 204);
    assert.equal((await ctx.agent.del(`/mount?id=${lowerMount.id}`)).status, 200);
    assert.deepEqual((await ctx.agent.get('/attach')).body, [], 'the attachment went with the mount that defined it');
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
  });

  it('rolls back every level when the topmost one fails', async () => {
    const before = (await ctx.agent.get('/attach')).body.length;
    // The loop device and the squashfs mount are made, then the overlay fails (lower[1] is wrong).
    const r = await ctx.agent.post('/mount', {
      kind: 'overlay',
      overlay: { lower: [sqsh(loop(ctx.image)), { kind: 'attach', attach: { fs_type: 'ext4', attach: loop(ctx.image) } }] },
    });
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.message, /mount\.overlay\.lower\[1\]/, 'names the level that failed');
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual(loopsOver(ctx.image), []);
    assert.equal((await ctx.agent.get('/attach')).body.length, before);
    assert.deepEqual((await ctx.agent.get('/mount')).body, []);
  });

  it('loopback paths cannot leave their base', async () => {
    const base = await ctx.agent.post('/mount', { kind: 'bind', bind: { path: ctx.runDir } });
    assert.equal(base.status, 201, base.text);
    mkdirSync(join(ctx.runDir, 'img'), { recursive: true });
    copyFileSync(ctx.image, join(ctx.runDir, 'img/ok.sqsh'));
    symlinkSync('/etc/passwd', join(ctx.runDir, 'img/escape'));
    const esc = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: 'img/escape', base: 'mount', mount: { id: base.body.id } } });
    assert.equal(esc.status, 400, esc.text);
    assert.match(esc.body.message, /outside its base/);
    const dots = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: '../etc/passwd', base: 'mount', mount: { id: base.body.id } } });
    assert.equal(dots.status, 400);
    assert.match(dots.body.message, /\.\./);
    const ok = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: 'img/ok.sqsh', base: 'mount', mount: { id: base.body.id }, readonly: true } });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(readFileSync(`/sys/block/${ok.body.device_file.slice(5)}/ro`, 'utf8').trim(), '1', 'read-only when asked');
    assert.equal((await ctx.agent.del(`/attach?id=${ok.body.id}`)).status, 200);
    assert.equal((await ctx.agent.del(`/mount?id=${base.body.id}`)).status, 200);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
  });
});
