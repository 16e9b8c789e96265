// Each source, against real servers (nginx on 127.0.0.1, test/fixtures/image-servers.ts):
// resolved, downloaded, decompressed and verified into a cache entry that is the image itself.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { ImageCache } from '../../src/image/cache.js';
import { resolve } from '../../src/image/sources/index.js';
import type { ImageRequest, SourceConfig } from '../../src/image/types.js';
import { ImageServers } from '../fixtures/image-servers.js';
import { filesIn, newCache, readInSquashfs, rejectsWith, sha256Of, tarList, tempDir } from './common.js';

describe('image sources, resolved and pulled from real servers', () => {
  let srv: ImageServers;
  let dir: string;
  let cache: ImageCache;
  let sources: SourceConfig[];
  const pull = async (req: ImageRequest) => cache.ensure(await resolve(req, sources, { connectTimeoutMs: 5000, stallTimeoutMs: 10_000 }));

  before(async () => {
    srv = await ImageServers.start();
    dir = tempDir();
    cache = newCache(dir);
    await cache.scan();
    sources = [
      { name: 'lxd', type: 'simplestreams', url: srv.simplestreams },
      { name: 'joyent', type: 'imgapi', url: srv.imgapi },
    ];
  });
  after(async () => {
    await srv?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('simplestreams by alias: the newest version, its squashfs item, verified by its sha256', async () => {
    const newest = srv.versions.at(-1)!;
    const img = await resolve({ simplestreams: { url: srv.simplestreams, alias: srv.product.alias } }, []);
    assert.equal(img.url, newest.squashfs.url);
    assert.equal(img.digest, `sha256:${newest.squashfs.sha256}`);
    assert.equal(img.size, newest.squashfs.size);
    assert.match(img.description, /20261201_0000/);
    const e = await cache.ensure(img);
    assert.equal(e.format, 'squashfs');
    assert.equal(e.size, newest.squashfs.size);
    assert.equal(sha256Of(e.path), newest.squashfs.sha256);
    assert.equal(readInSquashfs(e.path, 'etc/image-version').trim(), '20261201_0000', 'the newest version is the one mounted');
    assert.equal(await srv.downloadsSettled(newest.squashfs.url), 1);
  });

  it('simplestreams by os/release/arch/variant with a named version, through a configured source', async () => {
    const old = srv.versions[0]!;
    const p = srv.product;
    const e = await pull({ simplestreams: { source: 'lxd', os: p.os, release: p.release, arch: p.arch, variant: p.variant, version: old.version } });
    assert.equal(e.digest, `sha256:${old.squashfs.sha256}`);
    assert.equal(sha256Of(e.path), old.squashfs.sha256);
    assert.match(e.description ?? '', /source lxd/);
  });

  it('simplestreams ftype root.tar.xz: a tar archive, kept decompressed', async () => {
    const newest = srv.versions.at(-1)!;
    const e = await pull({ simplestreams: { source: 'lxd', alias: 'busybox', ftype: 'root.tar.xz' } });
    assert.equal(e.digest, `sha256:${newest.tar.sha256}`, 'the digest is of the bytes as downloaded');
    assert.equal(e.format, 'tar');
    assert.equal(e.compression, 'xz');
    assert.equal(e.download_size, newest.tar.size);
    assert.equal(sha256Of(e.path), srv.files['busybox.tar']!.sha256, 'the entry is the decompressed archive');
    assert.ok(tarList(e.path).includes('./bin/busybox'));
  });

  it('simplestreams: what the server does not have is INVALID listing what it has', async () => {
    await rejectsWith(resolve({ simplestreams: { source: 'lxd', alias: 'alpine/3.20' } }, sources), 'INVALID', 'alpine/3.20', 'busybox/1.36');
    await rejectsWith(resolve({ simplestreams: { source: 'lxd', alias: 'busybox', version: '20250101_0000' } }, sources), 'INVALID', '20250101_0000', '20261201_0000', '20261130_0000');
    await rejectsWith(resolve({ simplestreams: { source: 'lxd', alias: 'busybox', ftype: 'disk-kvm.img' } }, sources), 'INVALID', 'disk-kvm.img', 'root.tar.xz');
    await rejectsWith(resolve({ simplestreams: { source: 'nope', alias: 'busybox' } }, sources), 'INVALID', 'nope', 'configured: lxd');
    await rejectsWith(resolve({ simplestreams: { url: `${srv.http}`, alias: 'busybox' } }, sources), 'UPSTREAM', '404', 'streams/v1/index.json');
  });

  it('imgapi by uuid: the manifest\'s sha1 and size, a gzip file decompressed', async () => {
    const g = srv.imgapiImages.gzip;
    const img = await resolve({ imgapi: { source: 'joyent', uuid: g.uuid } }, sources);
    assert.equal(img.url, g.url);
    assert.equal(img.digest, `sha1:${g.sha1}`);
    assert.equal(img.size, g.size);
    assert.equal(img.compression, 'gzip');
    const e = await cache.ensure(img);
    assert.equal(e.format, 'squashfs');
    assert.equal(sha256Of(e.path), srv.files['busybox.sqsh']!.sha256);
    assert.ok(e.path.includes('/sha1/'), e.path);
  });

  it('imgapi by name: the newest published (xz); by name and version: that one', async () => {
    const { gzip, xz } = srv.imgapiImages;
    const newest = await resolve({ imgapi: { url: srv.imgapi, name: 'busybox' } }, []);
    assert.equal(newest.digest, `sha1:${xz.sha1}`);
    assert.equal(newest.compression, 'xz');
    const e = await cache.ensure(newest);
    assert.equal(sha256Of(e.path), srv.files['busybox.sqsh']!.sha256);
    const named = await resolve({ imgapi: { source: 'joyent', name: 'busybox', version: gzip.version } }, sources);
    assert.equal(named.url, gzip.url);
  });

  it('imgapi: a bzip2 tar archive', async () => {
    const t = srv.imgapiImages.tar;
    const e = await pull({ imgapi: { source: 'joyent', name: 'busybox-tar' } });
    assert.equal(e.digest, `sha1:${t.sha1}`);
    assert.equal(e.format, 'tar');
    assert.equal(e.compression, 'bzip2');
    assert.equal(sha256Of(e.path), srv.files['busybox.tar']!.sha256);
  });

  it('imgapi: an unknown uuid is INVALID naming it and the server; an unknown name lists the names', async () => {
    const uuid = '00000000-1111-4222-8333-444444444444';
    await rejectsWith(resolve({ imgapi: { source: 'joyent', uuid } }, sources), 'INVALID', uuid, srv.imgapi);
    await rejectsWith(resolve({ imgapi: { source: 'joyent', name: 'alpine' } }, sources), 'INVALID', 'alpine', 'busybox, busybox-tar');
    await rejectsWith(resolve({ imgapi: { source: 'joyent', name: 'busybox', version: '9' } }, sources), 'INVALID', '1.36-2, 1.36-1');
    await rejectsWith(resolve({ imgapi: { source: 'joyent', uuid: '../../etc/passwd' } }, sources), 'INVALID', 'not a UUID');
  });

  it('https with the test CA; without it the download fails cleanly (UPSTREAM naming the URL)', async () => {
    const f = srv.files['busybox.sqsh.zst']!;
    const withCa = await pull({ uri: f.https, checksum: f.digest, ca_file: srv.caFile });
    assert.equal(sha256Of(withCa.path), srv.files['busybox.sqsh']!.sha256);
    const other = srv.files['busybox.tar.zst']!;
    const before = filesIn(dir);
    await rejectsWith(pull({ uri: other.https, checksum: other.digest }), 'UPSTREAM', `cannot reach ${other.https}`, /certificate/i);
    assert.deepEqual(filesIn(dir), before, 'nothing left in the cache dir');
    // A configured source's CA file is used for its requests.
    const tlsSources: SourceConfig[] = [{ name: 'private', type: 'imgapi', url: srv.imgapi, ca_file: srv.caFile }];
    const r = await resolve({ imgapi: { source: 'private', uuid: srv.imgapiImages.xz.uuid } }, tlsSources);
    assert.equal(r.ca_file, srv.caFile);
  });

  it('file: URLs and compression by suffix (.tar.zst)', async () => {
    const f = srv.files['busybox.tar.zst']!;
    const img = await resolve({ uri: f.file, checksum: f.digest }, []);
    assert.equal(img.compression, 'zstd');
    assert.equal(img.format, 'tar');
    const e = await cache.ensure(img);
    assert.equal(e.format, 'tar');
    assert.equal(sha256Of(e.path), srv.files['busybox.tar']!.sha256);
    const s = srv.files['busybox.sqsh']!;
    const sq = await pull({ uri: s.file, checksum: `sha1:${s.sha1}` });
    assert.equal(sq.format, 'squashfs');
    assert.equal(sq.path, `${dir}/sha1/${s.sha1}`);
  });

  it('an ext4 image, gzip-compressed (.img.gz: the suffix tells the compression, not the format): its format by magic', async () => {
    const f = srv.files['busybox-ext4.img.gz']!;
    const img = await resolve({ uri: f.http, checksum: f.digest }, []);
    assert.equal(img.format, undefined);
    const e = await cache.ensure(img);
    assert.equal(e.format, 'ext4');
    assert.equal(e.compression, 'gzip');
    assert.equal(e.size, 8 << 20);
  });

  it('uri requests: checksum and scheme checked before anything is fetched', async () => {
    const f = srv.files['busybox.sqsh']!;
    await rejectsWith(resolve({ uri: f.http, checksum: 'md5:abc' }, []), 'INVALID', 'sha256:<64 hex digits>');
    await rejectsWith(resolve({ uri: f.http, checksum: `sha256:${f.sha256.slice(1)}` }, []), 'INVALID', 'checksum');
    await rejectsWith(resolve({ uri: 'ftp://127.0.0.1/x.sqsh', checksum: f.digest }, []), 'INVALID', 'only http, https, file');
    await rejectsWith(resolve({ uri: 'http://user:secret@127.0.0.1:1/x', checksum: 'md5:1' }, []), 'INVALID');
    const e = await rejectsWith(resolve({ uri: 'gopher://user:secret@127.0.0.1:1/x', checksum: f.digest }, []), 'INVALID');
    assert.ok(!e.message.includes('secret'), 'a password never reaches a message');
  });
});
