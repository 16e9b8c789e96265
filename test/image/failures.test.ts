// Pulls that must fail, against real servers: each with the right kind, a message naming the
// URL, and nothing left in the cache dir (no temp file, no entry).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ImageCache } from '../../src/image/cache.js';
import { fetchJson } from '../../src/image/fetch.js';
import { resolve } from '../../src/image/sources/index.js';
import type { ImageRequest } from '../../src/image/types.js';
import { ImageServers } from '../fixtures/image-servers.js';
import { mountsUnder, processesWith } from '../helpers/leaks.js';
import { filesIn, newCache, rejectsWith, tempDir } from './common.js';

describe('image pulls that fail, cleanly', () => {
  let srv: ImageServers;
  let dir: string;
  let cache: ImageCache;
  let quick: ImageCache;
  const pull = async (req: ImageRequest, c = cache) => c.ensure(await resolve(req, []));
  const assertEmpty = (d = dir) => assert.deepEqual(filesIn(d), [], 'nothing left in the cache dir');

  before(async () => {
    srv = await ImageServers.start();
    dir = tempDir();
    cache = newCache(dir);
    await cache.scan();
    // The same directory with short timeouts, only for the servers that misbehave on purpose.
    quick = newCache(dir, { stallTimeoutMs: 400, connectTimeoutMs: 1000 });
  });
  after(async () => {
    await srv?.stop();
    if (dir) {
      for (const m of mountsUnder(dir).reverse()) execFileSync('umount', ['-l', m]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a corrupted file: UPSTREAM checksum mismatch naming the URL and both digests', async () => {
    const good = srv.files['busybox.sqsh']!;
    const bad = srv.files['corrupt.sqsh']!;
    await rejectsWith(pull({ uri: bad.http, checksum: good.digest }), 'UPSTREAM', `checksum mismatch for ${bad.http}`, `expected ${good.digest}`, `got ${bad.digest}`);
    assertEmpty();
    assert.equal(cache.get(good.digest), undefined);
  });

  it('a wrong checksum (sha1): UPSTREAM checksum mismatch', async () => {
    const f = srv.files['busybox.sqsh.gz']!;
    await rejectsWith(pull({ uri: f.http, checksum: `sha1:${'ab'.repeat(20)}` }), 'UPSTREAM', `checksum mismatch for ${f.http}`, `got sha1:${f.sha1}`);
    assertEmpty();
  });

  it('a 404: UPSTREAM "GET <url>: 404 Not Found"', async () => {
    const url = `${srv.http}no-such-image.sqsh`;
    await rejectsWith(pull({ uri: url, checksum: srv.files['busybox.sqsh']!.digest }), 'UPSTREAM', `GET ${url}: 404 Not Found`);
    assertEmpty();
  });

  it('a stopped server: UPSTREAM "cannot reach <url>"', async () => {
    const f = srv.files['busybox.sqsh']!;
    await srv.stopNginx();
    try {
      await rejectsWith(pull({ uri: f.http, checksum: f.digest }), 'UPSTREAM', `cannot reach ${f.http}`, 'ECONNREFUSED');
      await rejectsWith(resolve({ simplestreams: { url: srv.simplestreams, alias: 'busybox' } }, []), 'UPSTREAM', 'cannot reach', 'streams/v1/index.json');
    } finally {
      await srv.startNginx();
    }
    assertEmpty();
  });

  it('a server that accepts and sends nothing, or headers and then nothing: TIMEOUT (bounded by stallTimeoutMs)', async () => {
    const silent = await srv.misbehaving('silent');
    await rejectsWith(pull({ uri: silent, checksum: srv.files['busybox.sqsh']!.digest }, quick), 'TIMEOUT', silent, 'sent nothing for 400 ms');
    const headers = await srv.misbehaving('headers');
    await rejectsWith(pull({ uri: headers, checksum: srv.files['busybox.sqsh']!.digest }, quick), 'TIMEOUT', headers, 'sent nothing for 400 ms');
    assertEmpty();
  });

  it('an https server that accepts the connection but never completes TLS: TIMEOUT (bounded by connectTimeoutMs)', async () => {
    const silent = (await srv.misbehaving('silent')).replace('http:', 'https:');
    await rejectsWith(pull({ uri: silent, checksum: srv.files['busybox.sqsh']!.digest }, quick), 'TIMEOUT', `cannot reach ${silent}`, 'no connection within 1000 ms');
    assertEmpty();
  });

  it('redirects: followed (a few), a loop and a redirect to a file: URL are UPSTREAM', async () => {
    const f = srv.files['busybox.sqsh']!;
    const e = await pull({ uri: `${srv.http}redirect/busybox.sqsh`, checksum: f.digest });
    assert.equal(e.size, f.size);
    await cache.remove(e.digest);
    await rejectsWith(pull({ uri: `${srv.http}redirect/loop`, checksum: f.digest }), 'UPSTREAM', `GET ${srv.http}redirect/loop: more than 5 redirects`);
    await rejectsWith(pull({ uri: `${srv.http}redirect/file`, checksum: f.digest }), 'UPSTREAM', 'to a file: URL, refused');
    assert.equal(await srv.downloadsSettled(`${srv.http}redirect/loop`, 6), 6, 'the first request and 5 redirects');
    assertEmpty();
  });

  it('a server that sends fewer bytes than it announced: UPSTREAM truncated', async () => {
    const short = await srv.misbehaving('short', 100_000);
    await rejectsWith(pull({ uri: short, checksum: srv.files['busybox.sqsh']!.digest }), 'UPSTREAM', `truncated download of ${short}`);
    assertEmpty();
  });

  it('a size the index announces that the file does not have: UPSTREAM truncated', async () => {
    const f = srv.files['busybox.sqsh']!;
    const img = { ...(await resolve({ uri: f.http, checksum: f.digest }, [])), size: f.size + 10 };
    await rejectsWith(cache.ensure(img), 'UPSTREAM', `truncated download of ${f.http}`);
    const small = { ...img, size: f.size - 10 };
    await rejectsWith(cache.ensure(small), 'UPSTREAM', `truncated download of ${f.http}`);
    assertEmpty();
  });

  it('index documents: bounded in size, JSON or UPSTREAM', async () => {
    const f = srv.files['busybox.tar']!;
    await rejectsWith(fetchJson(f.http, { maxBytes: 4096 }), 'UPSTREAM', f.http, 'larger than 4096 bytes');
    await rejectsWith(fetchJson(f.http), 'UPSTREAM', f.http, 'not a JSON document');
    assert.deepEqual(await fetchJson(`${srv.imgapi}images/${srv.imgapiImages.xz.uuid}`).then((m) => (m as { uuid: string }).uuid), srv.imgapiImages.xz.uuid);
  });

  it('a file of no known format (its checksum right): INVALID naming the URL', async () => {
    const f = srv.files['not-an-image.bin']!;
    await rejectsWith(pull({ uri: f.http, checksum: f.digest }), 'INVALID', f.http, 'unknown format');
    assertEmpty();
  });

  it('a compressed file that is not what it says inside (its checksum right): UPSTREAM naming the URL', async () => {
    const f = srv.files['busybox.sqsh']!;
    await rejectsWith(pull({ uri: f.http, checksum: f.digest, compression: 'gzip' }), 'UPSTREAM', f.http, 'not a valid gzip stream');
    assertEmpty();
    // The same through a tool (xz, zstd, bzip2 run as processes): none is left running.
    for (const c of ['xz', 'zstd', 'bzip2'] as const) {
      await rejectsWith(pull({ uri: f.http, checksum: f.digest, compression: c }), 'UPSTREAM', f.http, `not a valid ${c} stream`);
      assertEmpty();
    }
    for (const c of ["xz", "zstd", "bzip2"]) assert.deepEqual(processesWith(`${c} -d -c`), []);
  });

  it('a cache dir on a full filesystem (1 MiB tmpfs): INSUFFICIENT_STORAGE naming the directory; a smaller image still fits after', async () => {
    const small = join(dir, 'small');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'imageapi-test', small]);
    try {
      const c = newCache(join(small, 'cache'));
      await c.scan();
      const tar = srv.files['busybox.tar']!; // about 2 MiB: the download itself does not fit
      assert.ok(tar.size > 1 << 20);
      await rejectsWith(pull({ uri: tar.http, checksum: tar.digest }, c), 'INSUFFICIENT_STORAGE', join(small, 'cache'));
      assertEmpty(small);
      const xz = srv.files['busybox.tar.xz']!; // under 1 MiB downloaded, about 2 MiB once decompressed
      assert.ok(xz.size < 1 << 20);
      await rejectsWith(pull({ uri: xz.http, checksum: xz.digest }, c), 'INSUFFICIENT_STORAGE', join(small, 'cache'));
      assertEmpty(small);
      const gz = srv.files['busybox.tar.gz']!; // gzip -1: about 1.1 MiB, again the download
      await rejectsWith(pull({ uri: gz.http, checksum: gz.digest }, c), 'INSUFFICIENT_STORAGE', join(small, 'cache'));
      assertEmpty(small);
      assert.equal(c.totalBytes(), 0);
      const sq = srv.files['busybox.sqsh']!; // 960 KiB: fits
      const e = await pull({ uri: sq.http, checksum: sq.digest }, c);
      assert.equal(e.size, sq.size);
      assert.deepEqual(filesIn(small), [`cache/sha256/${sq.sha256}`, `cache/sha256/${sq.sha256}.json`]);
    } finally {
      execFileSync('umount', [small]);
      rmSync(small, { recursive: true, force: true });
    }
  });

  it('a cap the image cannot fit under: INSUFFICIENT_STORAGE naming the cache dir and the cap, before any download', async () => {
    const capped = join(dir, 'capped');
    const c = newCache(capped, { maxBytes: 100_000 });
    await c.scan();
    const v = srv.versions.at(-1)!;
    const n = srv.downloads(v.squashfs.url);
    const img = await resolve({ simplestreams: { url: srv.simplestreams, alias: 'busybox' } }, []);
    await rejectsWith(c.ensure(img), 'INSUFFICIENT_STORAGE', capped, 'cap of 100000 bytes');
    assert.equal(await srv.downloadsSettled(v.squashfs.url, n), n, 'nothing was downloaded');
    // Size unknown beforehand (a uri without size): refused after the download, the file removed.
    const f = srv.files['busybox.sqsh']!;
    await rejectsWith(pull({ uri: f.http, checksum: f.digest }, c), 'INSUFFICIENT_STORAGE', capped, 'cap of 100000 bytes');
    assert.deepEqual(filesIn(capped), []);
    rmSync(capped, { recursive: true, force: true });
  });
});
