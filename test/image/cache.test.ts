// The cache against real servers: one download for concurrent pulls of one image, a pull cut by
// kill -9 leaves a partial file that is never used and is removed at the next scan, entries and
// their order survive a restart, least-recently-used eviction under the cap skips what is in use.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolve } from '../../src/image/sources/index.js';
import type { Progress } from '../../src/image/types.js';
import { ROOT } from '../helpers/agent.js';
import { ImageServers } from '../fixtures/image-servers.js';
import { filesIn, newCache, rejectsWith, sha256Of, tempDir } from './common.js';

describe('the image cache', () => {
  let srv: ImageServers;
  const dirs: string[] = [];
  const newDir = () => {
    const d = tempDir();
    dirs.push(d);
    return d;
  };

  before(async () => {
    srv = await ImageServers.start();
  });
  after(async () => {
    await srv?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('concurrent ensure() of one digest: one download, one promise, progress for every caller', async () => {
    const c = newCache(newDir());
    await c.scan();
    const f = srv.files['busybox.tar.xz']!;
    const img = await resolve({ uri: f.http, checksum: f.digest }, []);
    const seen: Progress[][] = [[], [], []];
    const ps = seen.map((s) => c.ensure(img, { onProgress: (p) => s.push(p) }));
    assert.equal(ps[0], ps[1], 'the second caller gets the same promise');
    assert.equal(c.pulling().size, 1);
    const [a, b, d] = await Promise.all(ps);
    assert.equal(a, b);
    assert.equal(a, d);
    for (const s of seen) assert.deepEqual(s.at(-1), { done: f.size, total: f.size }, 'every caller saw the end');
    assert.ok(seen[1]!.length > 2, 'and progress on the way');
    assert.equal(await srv.downloadsSettled(f.http, 1), 1, 'one GET in the access log');
    // Present now: no download at all.
    const again = await c.ensure(img);
    assert.equal(again.digest, a!.digest);
    assert.equal(await srv.downloadsSettled(f.http, 1), 1);
    assert.equal(c.pulling().size, 0);
  });

  it('a caller that gives up (its signal) leaves the others\' pull going; the last one stops it, nothing left', async () => {
    const dir = newDir();
    const c = newCache(dir);
    await c.scan();
    const f = srv.files['busybox.sqsh.zst']!;
    const img = await resolve({ uri: f.slow, checksum: f.digest }, []);
    const ac1 = new AbortController();
    const ac2 = new AbortController();
    let started!: () => void;
    const first = new Promise<void>((r) => (started = r));
    const p1 = c.ensure(img, { signal: ac1.signal, onProgress: (p) => p.done > 0 && started() });
    const seen: Progress[] = [];
    const p2 = c.ensure(img, { signal: ac2.signal, onProgress: (p) => seen.push(p) });
    await first;
    assert.ok(seen.at(-1)!.done < f.size, 'given up mid-download');
    ac1.abort();
    await rejectsWith(p1, 'FAILED_PRECONDITION', 'cancelled');
    assert.equal(c.pulling().size, 1, 'the other caller still waits for it');
    ac2.abort();
    await rejectsWith(p2, 'FAILED_PRECONDITION', 'cancelled');
    // A caller right after (the given-up pull may still be ending) starts a pull of its own.
    const fast = await resolve({ uri: f.http, checksum: f.digest }, []);
    const e = await c.ensure(fast);
    assert.equal(sha256Of(e.path), srv.files['busybox.sqsh']!.sha256);
    for (let i = 0; i < 100 && c.pulling().size > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.pulling().size, 0);
    assert.deepEqual(filesIn(dir), [`sha256/${f.sha256}`, `sha256/${f.sha256}.json`], 'the entry, nothing of the given-up pull');
    assert.ok(seen.at(-1)!.done < f.size, 'the download stopped before its end');
  });

  it('kill -9 mid-download: the partial file is never an entry, scan() removes it, a second ensure() succeeds', async () => {
    const dir = newDir();
    const f = srv.files['busybox.tar']!; // about 2 MiB at 256 KiB/s: several seconds
    const script = `import { readdirSync } from 'node:fs';
import { pino } from 'pino';
import { ImageCache } from ${JSON.stringify(join(ROOT, 'dist/src/image/cache.js'))};
const c = new ImageCache({ dir: ${JSON.stringify(join(dir, 'cache'))}, maxBytes: 1 << 30, log: pino({ level: 'silent' }) });
await c.scan();
let said = false;
await c.ensure({ url: ${JSON.stringify(f.slow)}, digest: ${JSON.stringify(f.digest)}, compression: 'none', description: 'slow' }, {
  // Bytes are counted before the write stream has opened its file: say so once the .part exists.
  onProgress: (p) => { if (!said && p.done > 0 && readdirSync(${JSON.stringify(join(dir, 'cache/tmp'))}).length > 0) { said = true; console.log('downloading'); } },
});
console.log('done');
`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, sig) => r(sig)));
    try {
      await new Promise<void>((res, rej) => {
        let out = '';
        child.stdout!.on('data', (b: Buffer) => {
          out += b.toString();
          if (out.includes('downloading')) res();
          if (out.includes('done')) rej(new Error('the pull ended before the kill'));
        });
        child.once('exit', () => rej(new Error(`the pull exited first: ${out}`)));
      });
    } finally {
      child.kill('SIGKILL');
    }
    assert.equal(await exited, 'SIGKILL');
    const tmp = readdirSync(join(dir, 'cache/tmp'));
    assert.equal(tmp.length, 1, `a partial download is left: ${tmp}`);
    assert.match(tmp[0]!, /\.part$/);
    assert.ok(!existsSync(join(dir, 'cache/sha256', f.sha256)), 'never under its final name');
    const c = newCache(join(dir, 'cache'));
    assert.deepEqual(await c.scan(), [], 'no entry from a partial file');
    assert.deepEqual(readdirSync(join(dir, 'cache/tmp')), [], 'the partial is gone');
    const e = await c.ensure(await resolve({ uri: f.http, checksum: f.digest }, []));
    assert.equal(sha256Of(e.path), f.sha256);
  });

  it('scan() after a restart: entries and their order kept; an image without its sidecar, a stray temp file and a lying sidecar removed', async () => {
    const dir = newDir();
    const c1 = newCache(dir);
    await c1.scan();
    const [a, b] = ['busybox.sqsh', 'busybox.sqsh.gz'].map((n) => srv.files[n]!);
    const ea = await c1.ensure(await resolve({ uri: a!.http, checksum: a!.digest }, []));
    const eb = await c1.ensure(await resolve({ uri: b!.http, checksum: b!.digest }, []));
    await new Promise((r) => setTimeout(r, 5));
    c1.touch(ea.digest); // a is now the most recently used
    await c1.flush();
    // What a crash may leave: an image renamed but no sidecar yet, a sidecar's temp file.
    const orphan = join(dir, 'sha256', 'f'.repeat(64));
    writeFileSync(orphan, 'x');
    writeFileSync(join(dir, 'sha256', `${'e'.repeat(64)}.json.tmp-1234`), '{');
    writeFileSync(join(dir, 'tmp', `${'d'.repeat(64)}.1-1.part`), 'partial');
    // A sidecar whose size does not match its file (the file was cut short).
    const liar = join(dir, 'sha1', 'c'.repeat(40));
    writeFileSync(liar, 'short');
    writeFileSync(`${liar}.json`, JSON.stringify({ digest: `sha1:${'c'.repeat(40)}`, format: 'squashfs', size: 1000, last_used: new Date().toISOString() }));
    const c2 = newCache(dir);
    const list = await c2.scan();
    assert.deepEqual(
      list.map((e) => e.digest),
      [eb.digest, ea.digest],
      'least recently used first',
    );
    assert.deepEqual(filesIn(dir), [`sha256/${a!.sha256}`, `sha256/${a!.sha256}.json`, `sha256/${b!.sha256}`, `sha256/${b!.sha256}.json`].sort());
    assert.equal(c2.get(eb.digest)?.compression, 'gzip');
    assert.equal(c2.get(eb.digest)?.url, b!.http);
    assert.equal(c2.totalBytes(), ea.size + eb.size);
  });

  it('least-recently-used eviction under the cap, skipping entries in use; INSUFFICIENT_STORAGE when only used ones are left', async () => {
    const dir = newDir();
    const used = new Set<string>();
    const one = srv.files['busybox.sqsh']!.size; // every busybox.sqsh* is this once decompressed
    const c = newCache(dir, { maxBytes: Math.floor(2.5 * one), inUse: (d) => used.has(d) });
    await c.scan();
    const get = async (name: string) => {
      const f = srv.files[name]!;
      return c.ensure(await resolve({ uri: f.http, checksum: f.digest }, []));
    };
    const a = await get('busybox.sqsh');
    const b = await get('busybox.sqsh.gz');
    await new Promise((r) => setTimeout(r, 5));
    c.touch(a.digest); // b is the least recently used
    const d = await get('busybox.sqsh.zst');
    assert.deepEqual(
      c.list().map((e) => e.digest).sort(),
      [a.digest, d.digest].sort(),
      'b evicted',
    );
    assert.ok(!existsSync(b.path) && !existsSync(`${b.path}.json`));
    // a is the least recently used now, but in use: d goes instead.
    used.add(a.digest);
    const e = await get('busybox.sqsh.bz2');
    assert.deepEqual(c.list().map((x) => x.digest).sort(), [a.digest, e.digest].sort(), 'd evicted, a kept');
    // Everything in use: nothing to evict, the pull is refused and nothing is removed.
    used.add(e.digest);
    const x = srv.files['busybox.sqsh.xz']!;
    await rejectsWith(
      c.ensure(await resolve({ uri: x.http, checksum: x.digest }, [])),
      'INSUFFICIENT_STORAGE',
      dir,
      `cap of ${Math.floor(2.5 * one)} bytes`,
    );
    assert.deepEqual(c.list().map((y) => y.digest).sort(), [a.digest, e.digest].sort());
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
    // A file removed or cut under the cache: pulled again, not handed out.
    used.clear();
    const n0 = srv.downloads(srv.files['busybox.sqsh']!.http);
    rmSync(a.path);
    const a2 = await get('busybox.sqsh');
    assert.equal(sha256Of(a2.path), srv.files['busybox.sqsh']!.sha256);
    writeFileSync(a2.path, 'cut');
    const a3 = await get('busybox.sqsh');
    assert.equal(sha256Of(a3.path), srv.files['busybox.sqsh']!.sha256);
    assert.equal(await srv.downloadsSettled(srv.files['busybox.sqsh']!.http, n0 + 2), n0 + 2, 'two more downloads');
    // remove(): the entry and its sidecar.
    await c.remove(e.digest);
    assert.equal(c.get(e.digest), undefined);
    assert.ok(!existsSync(e.path) && !existsSync(`${e.path}.json`));
  });
});
