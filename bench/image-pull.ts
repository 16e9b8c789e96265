// bench/image-pull: pull + verify + mount of a BENCH_IMAGE_MB (200) MB squashfs from a local
// nginx (test/fixtures/image-servers.ts, 127.0.0.1), against doing it by hand: `curl -o` +
// `sha256sum` (compared) + `losetup --read-only` + `mount -t squashfs`. Measured three ways,
// interleaved after a warm-up, each round starting from an empty cache (the image deleted, untimed):
//   agent   POST /mount {kind: uri, uri: {uri, checksum}} until its 201 (the agent pulls the image
//           into its cache, attaches a read-only loop device and mounts it), then DELETE of the
//           mount and the image (untimed);
//   cache   the image layer alone: ImageCache.ensure() + losetup + mount (src/sys), in this process;
//   by hand the four tools, one after the other.
// The image is uncompressed random data (squashfs -noI -noD -noF -noX): the cost is the
// transfer, the hashing and the disk write (the agent fsyncs before it renames; curl does not).
//   node dist/bench/image-pull.js          (root; bench/run.sh builds and runs it)
// Environment: BENCH_N (rounds, 3), BENCH_WARMUP (1), BENCH_IMAGE_MB (200).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { ImageCache } from '../src/image/cache.js';
import { resolve } from '../src/image/sources/index.js';
import { loopAttach, loopDetach } from '../src/sys/loop.js';
import { mount, unmount } from '../src/sys/mount.js';
import { ImageServers, infoOfLarge } from '../test/fixtures/image-servers.js';
import { runBench } from './lib/bench.js';
import { checkInterrupted, envNum, f2, fmt, median, now, quantile, resultLine, table } from './lib/common.js';

const N = envNum('BENCH_N', 3);
const WARMUP = envNum('BENCH_WARMUP', 1);
const MB = envNum('BENCH_IMAGE_MB', 200);

const sh = (file: string, args: string[]) => execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 }).trim();

runBench('image-pull', async (b) => {
  // The image: MB of random data in a squashfs without compression.
  const src = join(b.work, 'src');
  mkdirSync(src);
  sh('dd', ['if=/dev/urandom', `of=${join(src, 'data')}`, 'bs=1M', `count=${MB}`, 'status=none']);
  const big = join(b.work, 'big.sqsh');
  sh('mksquashfs', [src, big, '-noappend', '-noI', '-noD', '-noF', '-noX', '-quiet', '-no-progress']);
  rmSync(src, { recursive: true, force: true });
  const fi = infoOfLarge(big);
  b.log(`image: ${fmt(fi.size / 2 ** 20)} MiB, ${fi.digest}`);
  const srv = await ImageServers.start({ extraFiles: { 'big.sqsh': big } });
  try {
    const url = srv.files['big.sqsh']!.http;
    const agent = b.agent('run');
    await agent.start();
    const cacheDir = join(b.work, 'cache');
    const handDir = join(b.work, 'hand');
    const mnt = join(b.work, 'mnt');
    mkdirSync(handDir);
    mkdirSync(mnt);
    const log = pino({ level: 'silent' });
    const s = { agent: [] as number[], cache: [] as number[], hand: [] as number[] };

    const steps: Array<[keyof typeof s, () => Promise<number>]> = [
      [
        'agent',
        async () => {
          const t0 = now();
          const m = await agent.must('POST', '/mount', { kind: 'uri', uri: { uri: url, checksum: fi.digest } }, 201);
          const ms = now() - t0;
          if (!sh('findmnt', ['-n', '-o', 'FSTYPE', m.mountpoint]).includes('squashfs')) throw new Error(`${m.mountpoint} is not a squashfs mount`);
          await agent.must('DELETE', `/mount?id=${m.id}`, undefined, 200);
          const images = (await agent.must('GET', '/image', undefined, 200)) as { id: number }[];
          for (const i of images) await agent.must('DELETE', `/image?id=${i.id}`, undefined, 200);
          return ms;
        },
      ],
      [
        'cache',
        async () => {
          rmSync(cacheDir, { recursive: true, force: true });
          const c = new ImageCache({ dir: cacheDir, maxBytes: 4 * fi.size, log });
          await c.scan();
          const t0 = now();
          const e = await c.ensure(await resolve({ uri: url, checksum: fi.digest }, []));
          const dev = await loopAttach(e.path, { readonly: true });
          try {
            await mount({ source: dev, target: mnt, fstype: 'squashfs', options: ['ro'] });
            const ms = now() - t0;
            await unmount(mnt);
            return ms;
          } finally {
            await loopDetach(dev);
            rmSync(cacheDir, { recursive: true, force: true });
          }
        },
      ],
      [
        'hand',
        async () => {
          const file = join(handDir, 'big.sqsh');
          const t0 = now();
          sh('curl', ['-sS', '--fail', '-o', file, url]);
          const sum = sh('sha256sum', [file]).split(' ')[0];
          if (`sha256:${sum}` !== fi.digest) throw new Error(`by hand: checksum ${sum}`);
          const dev = sh('losetup', ['--find', '--show', '--read-only', file]);
          try {
            sh('mount', ['-t', 'squashfs', '-o', 'ro', dev, mnt]);
            const ms = now() - t0;
            sh('umount', [mnt]);
            return ms;
          } finally {
            sh('losetup', ['-d', dev]);
            rmSync(file, { force: true });
          }
        },
      ],
    ];
    for (let i = 0; i < WARMUP + N; i++) {
      for (let k = 0; k < steps.length; k++) {
        checkInterrupted();
        const [name, fn] = steps[(i + k) % steps.length]!;
        const t = await fn();
        if (i >= WARMUP) s[name].push(t);
      }
      b.log(`${i + 1}/${WARMUP + N} rounds: ${(['agent', 'cache', 'hand'] as const).map((k) => `${k} ${fmt(s[k].at(-1) ?? NaN)} ms`).join(', ')}`);
    }
    const downloads = srv.downloads(url);
    if (downloads !== 3 * (WARMUP + N)) throw new Error(`${downloads} GETs of the image in nginx's log, not ${3 * (WARMUP + N)} (one per side and round: none shared, none retried)`);
    await agent.stop();
    const row = (label: string, xs: number[]) => [label, f2(median(xs)), f2(quantile(xs, 0.9)), f2(Math.min(...xs)), f2(Math.max(...xs)), f2((fi.size / 2 ** 20) / (median(xs) / 1000))];
    return [
      `image-pull: pull + verify + mount of a ${fmt(fi.size / 2 ** 20)} MiB squashfs from nginx on 127.0.0.1, ${N} rounds after ${WARMUP} warm-up, rotating; times in ms`,
      table([
        ['what', 'median', 'p90', 'min', 'max', 'MiB/s'],
        row('agent: POST /mount kind uri → 201 (pull, verify, fsync, loop, mount)', s.agent),
        row('image layer: ImageCache.ensure + losetup + mount', s.cache),
        row('by hand: curl -o + sha256sum + losetup -r + mount', s.hand),
      ]),
      '',
      `image layer alone: ${fmt(median(s.cache))} ms, ${(median(s.cache) / median(s.hand)).toFixed(2)}x by hand`,
      resultLine('image-pull', median(s.agent), median(s.hand), 'ms', '≤ 1.1x; ref: curl + sha256sum + losetup + mount by hand'),
    ].join('\n');
  } finally {
    await srv.stop();
  }
});
