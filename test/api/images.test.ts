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
});
