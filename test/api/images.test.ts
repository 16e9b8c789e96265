// Images from image servers through the API, for real: nginx on 127.0.0.1 (test/fixtures/
// image-servers.ts) serving a simplestreams tree, an IMGAPI tree and plain files over http and
// https (a test CA); the agent pulls, verifies and caches them as image objects, mounts them
// (a read-only loop device for squashfs, a tmpfs for a tar archive) and boots containers on them.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageServers } from '../fixtures/image-servers.js';
import { TestAgent } from '../helpers/agent.js';
import { forceCleanup, loopsOver, mountsUnder } from '../helpers/leaks.js';

/** Every file of the image cache (temp files included), relative to it. */
function cacheFiles(runDir: string): string[] {
  const dir = join(runDir, 'images');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => !d.isDirectory())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

/** A container that prints its image's version file and a word, then ends. */
function bootSpec(mount: unknown, word = 'booted') {
  return { state: 'running', mount, command: ['/bin/sh', '-c', `cat /etc/image-version 2>/dev/null; echo ${word}`] };
}
const overlayOn = (lower: unknown) => ({ kind: 'overlay', overlay: { lower: [lower] } });

/** A request whose 5xx answer is what the test looks at (TestAgent.req throws on those). */
async function raw(agent: TestAgent, method: string, path: string, body?: unknown): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(agent.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* text */
  }
  return { status: res.status, body: parsed, text };
}

describe('images from image servers', () => {
  let servers: ImageServers;
  let agent: TestAgent;
  let runDir: string;
  let configFile: string;

  const startAgent = async () => {
    agent = await new TestAgent(runDir, ['--config', configFile]).start();
  };

  before(async () => {
    servers = await ImageServers.start();
    runDir = TestAgent.newRunDir();
    configFile = join(runDir, '..', `${runDir.split('/').pop()}-config.yaml`);
    writeFileSync(
      configFile,
      [
        'image_sources:',
        `  - { name: ss, type: simplestreams, url: "${servers.simplestreams}" }`,
        `  - { name: joyent, type: imgapi, url: "${servers.imgapi}" }`,
        `loopback_roots: ["${servers.dir}"]`,
        '',
      ].join('\n'),
    );
    await startAgent();
  });
  after(async () => {
    await agent?.stop();
    forceCleanup(runDir, servers?.dir ?? '/nonexistent');
    await servers?.stop();
  });

  /** Boot a container on `mount`, wait for its end, return its log; delete it. */
  async function boot(mount: unknown, word = 'booted'): Promise<{ log: string; container: any }> {
    const c = await agent.post('/container', bootSpec(mount, word));
    assert.equal(c.status, 201, c.text);
    const w = await agent.get(`/container/wait?id=${c.body.id}&timeout=60`);
    assert.equal(w.status, 200, w.text);
    assert.equal(w.body.exit_code, 0, JSON.stringify(w.body));
    const log = await agent.get(`/container/log?id=${c.body.id}`);
    const d = await agent.del(`/container?id=${c.body.id}`);
    assert.equal(d.status, 200, d.text);
    return { log: log.text, container: c.body };
  }

  /** No attachment, mount, loop device or mount under the run-dir; the images left are `keep`. */
  async function nothingLeftBut(keep: number[] = []) {
    assert.deepEqual((await agent.get('/mount')).body, []);
    assert.deepEqual((await agent.get('/attach')).body, []);
    assert.deepEqual(
      (await agent.get('/image')).body.map((i: any) => i.id),
      keep,
    );
    assert.deepEqual(mountsUnder(join(runDir, 'mounts')).filter((m) => m !== join(runDir, 'mounts')), []);
    assert.deepEqual(loopsOver(runDir), []);
  }

  async function deleteAllImages() {
    for (const i of (await agent.get('/image')).body) {
      const d = await agent.del(`/image?id=${i.id}&force=true`);
      assert.equal(d.status, 200, d.text);
    }
    assert.deepEqual(cacheFiles(runDir), [], 'deleting the images removes their cache files');
  }

  it('a container boots from a uri mount of a file:// URL: image, loop attachment and mount are objects', async () => {
    const f = servers.files['busybox.sqsh']!;
    const { log, container } = await boot(overlayOn({ kind: 'uri', uri: { uri: f.file, checksum: f.digest } }));
    assert.match(log, /booted/);
    // The stack the container had: overlay → uri mount → (image, loopback base image → image).
    const uri = container.mount.overlay.lower[0];
    assert.equal(uri.kind, 'uri');
    assert.equal(uri.uri.image.state, 'ready');
    assert.equal(uri.uri.image.digest, f.digest);
    assert.equal(uri.uri.image.format, 'squashfs');
    assert.equal(uri.uri.attach.kind, 'loopback');
    assert.equal(uri.uri.attach.loopback.base, 'image');
    assert.equal(uri.uri.attach.loopback.readonly, true);
    assert.equal(uri.uri.attach.loopback.image.id, uri.uri.image.id);
    // The container, overlay, mount and loop device went with it; the image stays cached, the user's.
    const imgs = (await agent.get('/image')).body;
    assert.equal(imgs.length, 1);
    assert.equal(imgs[0].state, 'ready');
    assert.deepEqual(imgs[0].users, []);
    assert.equal(imgs[0].refs, 1);
    assert.equal(imgs[0].size, f.size);
    await nothingLeftBut([imgs[0].id]);
    assert.equal(cacheFiles(runDir).filter((n) => !n.startsWith('tmp/')).length, 2, 'the image and its sidecar');
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('boots from https with the test CA, a simplestreams alias and an IMGAPI uuid', async () => {
    const f = servers.files['busybox.sqsh']!;
    const https = await boot(overlayOn({ kind: 'uri', uri: { uri: f.https, checksum: f.digest, ca_file: servers.caFile } }), 'https-ok');
    assert.match(https.log, /https-ok/);
    // Without the CA the server's certificate is not trusted: refused, nothing left.
    await deleteAllImages();
    const untrusted = await raw(agent, 'POST', '/mount', { kind: 'uri', uri: { uri: f.https, checksum: f.digest } });
    assert.ok(untrusted.status >= 400 && ![500, 501].includes(untrusted.status), untrusted.text);
    assert.ok(untrusted.body.message.includes('127.0.0.1'), untrusted.body.message);
    await nothingLeftBut([]);

    const ss = await boot(overlayOn({ kind: 'uri', uri: { simplestreams: { source: 'ss', alias: servers.product.alias } } }), 'ss-ok');
    assert.match(ss.log, /ss-ok/);
    const newest = servers.versions.at(-1)!;
    const img = ss.container.mount.overlay.lower[0].uri.image;
    assert.equal(img.digest, `sha256:${newest.squashfs.sha256}`, 'the newest version');
    assert.match(ss.log, new RegExp(newest.version.replace(/[^0-9]/g, '').slice(0, 8)), 'its version file');

    const uuid = servers.imgapiImages.xz.uuid;
    const im = await boot(overlayOn({ kind: 'uri', uri: { imgapi: { source: 'joyent', uuid } } }), 'imgapi-ok');
    assert.match(im.log, /imgapi-ok/);
    const imgapiImg = im.container.mount.overlay.lower[0].uri.image;
    assert.equal(imgapiImg.digest, `sha1:${servers.imgapiImages.xz.sha1}`);
    assert.equal(imgapiImg.compression, 'xz');
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('a tar archive is unpacked into a writable tmpfs of the size asked for; too small a size is a 507 with nothing left', async () => {
    const f = servers.files['busybox.tar.xz']!;
    const m = await agent.post('/mount', { kind: 'uri', uri: { uri: f.http, checksum: f.digest, size: '64m' } });
    assert.equal(m.status, 201, m.text);
    assert.equal(m.body.uri.image.format, 'tar');
    assert.equal(m.body.uri.attach, undefined, 'no loop device for an archive');
    assert.deepEqual(m.body.uri.image.users, [{ type: 'mount', id: m.body.id, kind: 'uri' }]);
    const mi = mountsUnder(m.body.mountpoint);
    assert.equal(mi.length, 1);
    assert.ok(existsSync(join(m.body.mountpoint, 'bin/busybox')));
    writeFileSync(join(m.body.mountpoint, 'written'), 'x'); // a ramdisk: writable
    const { log } = await boot({ id: m.body.id, kind: 'uri' }, 'tar-ok');
    assert.match(log, /tar-ok/);
    assert.equal((await agent.del(`/mount?id=${m.body.id}`)).status, 200);
    const imgId = m.body.uri.image.id;
    await nothingLeftBut([imgId]);

    const small = await raw(agent, 'POST', '/mount', { kind: 'uri', uri: { image: { id: imgId }, size: '64k' } });
    assert.equal(small.status, 507, small.text);
    assert.match(small.body.message, /does not fit into a tmpfs of size 64k/);
    await nothingLeftBut([imgId]);
    await deleteAllImages();
  });

  it('two containers of one image share one image object and one download', async () => {
    const f = servers.files['busybox.sqsh.gz']!;
    const before = servers.downloads(f.http);
    const spec = () => bootSpec(overlayOn({ kind: 'uri', uri: { uri: f.http, checksum: f.digest } }));
    const [a, b] = await Promise.all([agent.post('/container', { ...spec(), state: 'created' }), agent.post('/container', { ...spec(), state: 'created' })]);
    assert.equal(a.status, 201, a.text);
    assert.equal(b.status, 201, b.text);
    const imgA = a.body.mount.overlay.lower[0].uri.image;
    const imgB = b.body.mount.overlay.lower[0].uri.image;
    assert.equal(imgA.id, imgB.id, 'one image object');
    assert.equal(imgA.compression, 'gzip');
    assert.equal(await servers.downloadsSettled(f.http, before + 1), before + 1, 'one download');
    const img = (await agent.get(`/image?id=${imgA.id}`)).body[0];
    assert.equal(img.users.length, 4, 'two loop attachments and two uri mounts');
    // In use: refused naming the users; forced: the users go first (the containers' mounts, loops).
    const refused = await agent.del(`/image?id=${img.id}`);
    assert.equal(refused.status, 409, refused.text);
    assert.match(refused.body.message, /in use by .*attachment \d+ \(loopback\)/);
    const forced = await agent.del(`/image?id=${img.id}&force=true`);
    assert.equal(forced.status, 200, forced.text);
    assert.deepEqual((await agent.get('/container')).body, []);
    await nothingLeftBut([]);
    assert.deepEqual(cacheFiles(runDir), []);
  });

  /** The image, once `pred` holds for it (bounded: a pull that never gets there fails the test). */
  async function imageWhen(id: number, pred: (i: any) => boolean, what: string): Promise<any> {
    for (let i = 0; i < 600; i++) {
      const r = await agent.get(`/image?id=${id}`);
      if (r.status === 200 && pred(r.body[0])) return r.body[0];
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`image ${id} never became ${what}`);
  }

  it('POST /image answers while the pull runs; GET shows its progress, events report it; a mount naming it waits for it', async () => {
    const f = servers.files['busybox.sqsh']!;
    const p = await agent.post('/image', { name: 'slowbox', uri: f.slow, checksum: f.digest });
    assert.equal(p.status, 201, p.text);
    assert.equal(p.body.state, 'pulling', 'answered before the pull ended');
    assert.equal(p.body.name, 'slowbox');
    assert.equal(p.body.refs, 1);
    const id = p.body.id;
    // A mount naming it now waits for it (within image_pull_timeout), then mounts the verified file.
    const mountP = agent.post('/mount', { kind: 'uri', uri: { image: { id } } });
    const during = await imageWhen(id, (i) => i.state !== 'pulling' || i.progress.done > 0, 'started');
    if (during.state === 'pulling') assert.ok(during.progress.done <= f.size);
    const m = await mountP;
    assert.equal(m.status, 201, m.text);
    assert.equal(m.body.uri.image.state, 'ready');
    assert.ok(existsSync(join(m.body.mountpoint, 'bin/busybox')));
    const w = await agent.get(`/image/wait?name=slowbox&state=ready&timeout=5`);
    assert.equal(w.status, 200, w.text);
    assert.deepEqual(w.body.progress, { done: f.size, total: f.size });
    // The events: progress, growing, then pulling → ready.
    const ev = await agent.get(`/events?type=image&id=${id}&stream=false`);
    const events = ev.text.trim().split('\n').map((l) => JSON.parse(l));
    const progress = events.filter((e) => e.action === 'progress').map((e) => e.progress.done);
    assert.ok(progress.length >= 2, `progress events: ${JSON.stringify(progress)}`);
    assert.deepEqual([...progress].sort((a, b) => a - b), progress, 'done only grows');
    const st = events.find((e) => e.action === 'state');
    assert.equal(st.old_state, 'pulling');
    assert.equal(st.state, 'ready');
    assert.match(agent.output, /image \d+: pulled \d+%/, 'progress reaches the log');
    // A second POST of the same image names the same object.
    const again = await agent.post('/image', { uri: f.http, checksum: f.digest });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.id, id);
    assert.equal((await agent.del(`/mount?id=${m.body.id}`)).status, 200);
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('a wrong checksum, a corrupted file, a 404 and a stopped server fail naming the URL, with nothing left', async () => {
    const f = servers.files['busybox.sqsh']!;
    const other = servers.files['busybox.sqsh.gz']!;
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['wrong checksum', { uri: f.http, checksum: other.digest }, /checksum|digest|sha256/i],
      ['corrupted file', { uri: servers.files['corrupt.sqsh']!.http, checksum: f.digest }, /checksum|digest|sha256/i],
      ['404', { uri: `${servers.http}no-such.sqsh`, checksum: f.digest }, /404/],
    ];
    for (const [what, uri, why] of cases) {
      const r = await raw(agent, 'POST', '/mount', overlayOn({ kind: 'uri', uri }));
      assert.ok(r.status >= 400 && ![500, 501].includes(r.status), `${what}: ${r.text}`);
      assert.ok(r.body.message.includes(String(uri.uri).replace(/^http:\/\//, '')), `${what} names the URL: ${r.body.message}`);
      assert.match(r.body.message, why, what);
      await nothingLeftBut([]);
      assert.deepEqual(cacheFiles(runDir), [], `${what}: no cache file`);
    }
    await servers.stopNginx();
    try {
      const r = await raw(agent, 'POST', '/mount', { kind: 'uri', uri: { uri: f.http, checksum: f.digest } });
      assert.ok([502, 504].includes(r.status), `stopped server: ${r.text}`);
      assert.ok(r.body.message.includes(new URL(f.http).host), r.body.message);
      await nothingLeftBut([]);
      assert.deepEqual(cacheFiles(runDir), []);
      // POST /image of it: answered at once; the object stays, failed, with the error.
      const p = await agent.post('/image', { uri: f.http, checksum: f.digest });
      assert.equal(p.status, 201, p.text);
      const failed = await imageWhen(p.body.id, (i) => i.state !== 'pulling', 'done');
      assert.equal(failed.state, 'failed');
      assert.ok(failed.error.includes(new URL(f.http).host), failed.error);
      const w = await raw(agent, 'GET', `/image/wait?id=${p.body.id}`);
      assert.ok([502, 504].includes(w.status), w.text);
      // A mount naming the failed image answers its error.
      const m = await raw(agent, 'POST', '/mount', { kind: 'uri', uri: { image: { id: p.body.id } } });
      assert.ok([502, 504].includes(m.status), m.text);
      assert.match(m.body.message, /failed/);
      await nothingLeftBut([p.body.id]);
    } finally {
      await servers.startNginx();
    }
    // Once the server is back, asking again pulls it again.
    const again = await agent.post('/image', { uri: f.http, checksum: f.digest });
    assert.equal(again.status, 200, again.text);
    assert.equal((await agent.get(`/image/wait?id=${again.body.id}&timeout=60`)).body.state, 'ready');
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('a mount that waits longer than image_pull_timeout is a 504 with nothing of it left; the pull goes on', async () => {
    await agent.stop();
    agent = await new TestAgent(runDir, ['--config', configFile, '--image-pull-timeout', '1']).start();
    try {
      const f = servers.files['busybox.sqsh.zst']!;
      const r = await raw(agent, 'POST', '/container', bootSpec(overlayOn({ kind: 'uri', uri: { uri: f.slow, checksum: f.digest } })));
      assert.equal(r.status, 504, r.text);
      assert.match(r.body.message, /still pulling after 1 s/);
      assert.deepEqual((await agent.get('/container')).body, []);
      assert.deepEqual((await agent.get('/mount')).body, []);
      assert.deepEqual((await agent.get('/attach')).body, []);
      const imgs = (await agent.get('/image')).body;
      assert.equal(imgs.length, 1, 'the image object stays: its pull goes on');
      const w = await agent.get(`/image/wait?id=${imgs[0].id}&timeout=60`);
      assert.equal(w.body.state, 'ready');
      assert.deepEqual(w.body.users, []);
      await deleteAllImages();
    } finally {
      await agent.stop();
      await startAgent();
    }
  });

  it('a restart adopts the images and every mount on them; a cache file gone meanwhile drops what stood on it', async () => {
    const sq = servers.files['busybox.sqsh']!;
    const tar = servers.files['busybox.tar.gz']!;
    const c = await agent.post('/container', {
      name: 'adopted',
      state: 'running',
      mount: overlayOn({ kind: 'uri', uri: { uri: sq.http, checksum: sq.digest } }),
      command: "/bin/sh -c \"trap 'exit 0' TERM; sleep infinity & wait\"",
    });
    assert.equal(c.status, 201, c.text);
    const t = await agent.post('/mount', { kind: 'uri', uri: { uri: tar.http, checksum: tar.digest } });
    assert.equal(t.status, 201, t.text);
    const before = { images: (await agent.get('/image')).body, mounts: (await agent.get('/mount')).body, attach: (await agent.get('/attach')).body };
    await agent.stop();
    await startAgent();
    const after = { images: (await agent.get('/image')).body, mounts: (await agent.get('/mount')).body, attach: (await agent.get('/attach')).body };
    assert.deepEqual(after.images.map((i: any) => [i.id, i.state, i.digest, i.users]), before.images.map((i: any) => [i.id, i.state, i.digest, i.users]));
    assert.deepEqual(after.mounts.map((m: any) => [m.id, m.kind, m.mountpoint]), before.mounts.map((m: any) => [m.id, m.kind, m.mountpoint]));
    assert.deepEqual(after.attach.map((a: any) => [a.id, a.device_file]), before.attach.map((a: any) => [a.id, a.device_file]));
    assert.equal((await agent.get('/container?name=adopted')).body[0].state, 'running');
    assert.match(agent.output, /"type":"image","action":"adopted"/);

    // The tar image's cache file goes while the agent is down: its image and its mount are dropped.
    await agent.stop();
    const tarImg = t.body.uri.image;
    const hex = tarImg.digest.split(':')[1];
    const { rmSync } = await import('node:fs');
    rmSync(join(runDir, 'images', 'sha256', hex));
    rmSync(join(runDir, 'images', 'sha256', `${hex}.json`));
    await startAgent();
    assert.deepEqual((await agent.get('/image')).body.map((i: any) => i.id), before.images.filter((i: any) => i.id !== tarImg.id).map((i: any) => i.id));
    assert.equal((await raw(agent, 'GET', `/mount?id=${t.body.id}`)).status, 404, 'the mount on it was dropped');
    assert.deepEqual(mountsUnder(t.body.mountpoint), []);
    assert.equal((await agent.del('/container?name=adopted&force=true')).status, 200);
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('kill -9 of the agent mid-pull: the partial file is never used, the pull is redone after the restart', async () => {
    const f = servers.files['busybox.sqsh.bz2']!;
    const p = await agent.post('/image', { uri: f.slow, checksum: f.digest });
    assert.equal(p.status, 201, p.text);
    await imageWhen(p.body.id, (i) => i.progress.done > 0 || i.state !== 'pulling', 'started');
    await agent.kill9();
    const partial = cacheFiles(runDir).filter((n) => n.startsWith('tmp/'));
    await startAgent();
    // The restarted agent removed the partial file and pulls again.
    for (const n of partial) assert.ok(!existsSync(join(runDir, 'images', n)), `${n} was removed`);
    const m = await agent.post('/mount', { kind: 'uri', uri: { image: { id: p.body.id } } });
    assert.equal(m.status, 201, m.text);
    const img = (await agent.get(`/image?id=${p.body.id}`)).body[0];
    assert.equal(img.state, 'ready');
    assert.equal(img.digest, f.digest);
    assert.match(agent.output, /pulling again/);
    const { execFileSync } = await import('node:child_process');
    const hex = f.digest.split(':')[1]!;
    // What is mounted is the verified file: the download's bytes decompress to busybox.sqsh's.
    assert.equal(execFileSync('sha256sum', [join(runDir, 'images', 'sha256', hex)], { encoding: 'utf8' }).split(' ')[0], servers.files['busybox.sqsh']!.sha256);
    assert.equal((await agent.del(`/mount?id=${m.body.id}`)).status, 200);
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('unused images are evicted least recently used first under image_cache_max (their objects deleted); images in use never are', async () => {
    await agent.stop();
    agent = await new TestAgent(runDir, ['--config', configFile, '--image-cache-max', '1500000']).start();
    try {
      const a = servers.files['busybox.sqsh']!;
      const b = servers.files['busybox.sqsh.xz']!;
      const pa = await agent.post('/image', { uri: a.http, checksum: a.digest });
      assert.equal((await agent.get(`/image/wait?id=${pa.body.id}&timeout=60`)).body.state, 'ready');
      const pb = await agent.post('/image', { uri: b.http, checksum: b.digest });
      assert.equal((await agent.get(`/image/wait?id=${pb.body.id}&timeout=60`)).body.state, 'ready');
      // A had to make room for B: its object went, with a `deleted` event.
      await imageWhen(pb.body.id, () => true, 'listed');
      let left: any[] = [];
      for (let i = 0; i < 100; i++) {
        left = (await agent.get('/image')).body;
        if (left.length === 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(left.map((i) => i.id), [pb.body.id]);
      const ev = (await agent.get(`/events?type=image&id=${pa.body.id}&stream=false`)).text;
      assert.match(ev, /"action":"deleted"/);
      assert.ok(!existsSync(join(runDir, 'images', 'sha256', a.sha256)), 'its cache file went');
      // B in use by a mount: pulling A again cannot evict it, and fails for lack of room.
      const m = await agent.post('/mount', { kind: 'uri', uri: { image: { id: pb.body.id } } });
      assert.equal(m.status, 201, m.text);
      const again = await agent.post('/image', { uri: a.http, checksum: a.digest });
      const failed = await imageWhen(again.body.id, (i) => i.state !== 'pulling', 'done');
      assert.equal(failed.state, 'failed');
      assert.match(failed.error, /cannot hold/);
      assert.equal((await agent.get(`/image?id=${pb.body.id}`)).body[0].state, 'ready');
      assert.equal((await agent.del(`/mount?id=${m.body.id}`)).status, 200);
      await deleteAllImages();
    } finally {
      await agent.stop();
      await startAgent();
    }
  });

  it('deleting an image while it is pulled stops the pull and leaves no file', async () => {
    const f = servers.files['busybox.tar']!;
    const p = await agent.post('/image', { uri: f.slow, checksum: f.digest });
    assert.equal(p.status, 201, p.text);
    const d = await agent.del(`/image?id=${p.body.id}`);
    assert.equal(d.status, 200, d.text);
    assert.equal(d.body.state, 'pulling');
    for (let i = 0; i < 100 && cacheFiles(runDir).length; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(cacheFiles(runDir), []);
    await nothingLeftBut([]);
  });

  it('the v0.1 typed overlay route takes a uri mount definition as a lower', async () => {
    const f = servers.files['busybox.sqsh']!;
    const o = await agent.post('/mount/overlay', { lower: [{ kind: 'uri', uri: { uri: f.http, checksum: f.digest } }] });
    assert.equal(o.status, 201, o.text);
    assert.ok(existsSync(join(o.body.mountpoint, 'bin/busybox')));
    const del = await agent.del(`/mount/overlay/${o.body.id}`);
    assert.equal(del.status, 204, del.text);
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('a file: URL is confined like a loopback file (loopback_roots)', async () => {
    const r = await agent.post('/image', { uri: 'file:///etc/hostname', checksum: `sha256:${'0'.repeat(64)}` });
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.message, /outside the allowed roots/);
    await nothingLeftBut([]);
  });

  it('an ext4 image (format found by its content) is mounted read-only with its own type', async () => {
    const f = servers.files['busybox-ext4.img.gz']!;
    const { log, container } = await boot(overlayOn({ kind: 'uri', uri: { uri: f.http, checksum: f.digest } }), 'ext4-ok');
    assert.match(log, /ext4-ok/);
    const uri = container.mount.overlay.lower[0];
    assert.equal(uri.uri.image.format, 'ext4');
    assert.equal(uri.uri.image.compression, 'gzip');
    assert.equal(uri.uri.attach.loopback.readonly, true);
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('a loopback attachment over an image (base: image): read-only, by definition or by reference', async () => {
    const f = servers.files['busybox.sqsh']!;
    const a = await agent.post('/attach', { kind: 'loopback', loopback: { base: 'image', image: { uri: f.http, checksum: f.digest } } });
    assert.equal(a.status, 201, a.text);
    assert.equal(a.body.loopback.readonly, true, 'always read-only');
    const img = a.body.loopback.image;
    assert.equal(img.state, 'ready');
    assert.deepEqual(img.users, [{ type: 'attach', id: a.body.id, kind: 'loopback' }]);
    assert.equal(loopsOver(join(runDir, 'images')).length, 1);
    // The same image by reference; a mount of either with the image's filesystem type.
    const b = await agent.post('/attach', { kind: 'loopback', loopback: { base: 'image', image: { id: img.id } } });
    assert.equal(b.status, 201, b.text);
    const m = await agent.post('/mount', { kind: 'attach', attach: { fs_type: 'squashfs', attach: { id: b.body.id } } });
    assert.equal(m.status, 201, m.text);
    assert.ok(existsSync(join(m.body.mountpoint, 'bin/busybox')));
    const refused = await agent.del(`/image?id=${img.id}`);
    assert.equal(refused.status, 409, refused.text);
    assert.match(refused.body.message, new RegExp(`attachment ${a.body.id} \\(loopback\\), attachment ${b.body.id} \\(loopback\\)`));
    assert.equal((await agent.del(`/mount?id=${m.body.id}`)).status, 200);
    assert.equal((await agent.del(`/attach?id=${b.body.id}`)).status, 200);
    assert.equal((await agent.del(`/attach?id=${a.body.id}`)).status, 200);
    // The image the first attachment defined stays cached, the user's now.
    const left = (await agent.get(`/image?id=${img.id}`)).body[0];
    assert.deepEqual([left.state, left.refs, left.users], ['ready', 1, []]);
    await deleteAllImages();
    await nothingLeftBut([]);
  });

  it('a server that stalls (bounded by image_stall_timeout) and a full image cache fail cleanly, nothing left', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, rmdirSync } = await import('node:fs');
    const small = mkdtempSync(join(runDir, '..', 'imageapi-test-smallcache-'));
    const stallConfig = `${configFile}.stall.yaml`;
    writeFileSync(stallConfig, 'image_stall_timeout: 2\nimage_connect_timeout: 2\n');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'imageapi-test', small]);
    await agent.stop();
    try {
      agent = await new TestAgent(runDir, ['--config', stallConfig, '--image-dir', small]).start();
      const f = servers.files['busybox.sqsh']!;
      for (const mode of ['silent', 'headers'] as const) {
        const url = await servers.misbehaving(mode);
        const r = await raw(agent, 'POST', '/mount', { kind: 'uri', uri: { uri: url, checksum: f.digest } });
        assert.equal(r.status, 504, `${mode}: ${r.text}`);
        assert.ok(r.body.message.includes(new URL(url).host), r.body.message);
        await nothingLeftBut([]);
      }
      // The cache's filesystem is full: 507 naming it, no object, no file.
      const r = await raw(agent, 'POST', '/mount', { kind: 'uri', uri: { uri: f.http, checksum: f.digest } });
      assert.equal(r.status, 507, r.text);
      assert.ok(r.body.message.includes(small), r.body.message);
      await nothingLeftBut([]);
      const left = readdirSync(small, { recursive: true, withFileTypes: true }).filter((d) => !d.isDirectory());
      assert.deepEqual(left, [], 'no partial file');
    } finally {
      await agent.stop();
      execFileSync('umount', [small]);
      rmdirSync(small);
      await startAgent();
    }
  });
});
