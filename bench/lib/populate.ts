// Giving an agent many objects cheaply, and deleting them all again.
//
// The base stack is what every benchmark with containers uses: one loop device over the busybox
// squashfs, the squashfs mounted on it, and an overlay on that (3 objects: 1 attachment, 2
// mounts; POST /mount with the whole stack nested). populate() then adds, up to `total` objects:
//   containers:   POST /container {"state":"created"} over the overlay (a record, a log file,
//                 no process, no cgroup)
//   mounts:       POST /mount {"kind":"bind","bind":{"path":DIR}} of one small directory of the
//                 work dir (one kernel bind mount each)
//   attachments:  POST /attach {"kind":"loopback","loopback":{"path":FILE,"readonly":true}} of a
//                 64 KiB file of its own (one loop device each)
// split by BENCH_MIX (percent of containers,mounts; the rest are attachments; default 45,45).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Agent } from './agent.js';
import { checkInterrupted, pool } from './common.js';

export interface Stack {
  overlay: number;
  /** The overlay's mountpoint (a container root). */
  root: string;
}

export interface Counts {
  containers: number;
  mounts: number;
  attachments: number;
}

/** The nested overlay spec of the base stack (loop → squashfs → overlay). */
export function overlaySpec(image: string): unknown {
  return {
    kind: 'overlay',
    overlay: {
      lower: [{ kind: 'attach', attach: { fs_type: 'squashfs', mount_options: ['ro'], attach: { kind: 'loopback', loopback: { path: image, readonly: true } } } }],
    },
  };
}

export async function baseStack(agent: Agent, image: string): Promise<Stack> {
  const m = await agent.must('POST', '/mount', overlaySpec(image), 201);
  return { overlay: m.id, root: m.mountpoint };
}

/** How many of each kind make `total` objects (the base stack included). */
export function mix(total: number): Counts {
  const [c, m] = (process.env.BENCH_MIX ?? '45,45').split(',').map(Number) as [number, number];
  if (!(c >= 0 && m >= 0 && c + m <= 100)) throw new Error(`BENCH_MIX=${process.env.BENCH_MIX}: two percentages (containers,mounts) adding up to at most 100`);
  const containers = Math.floor((total * c) / 100);
  const mounts = Math.max(2, Math.floor((total * m) / 100));
  const attachments = Math.max(1, total - containers - mounts);
  return { containers, mounts, attachments };
}

/**
 * Add objects to an agent that has the base stack until it holds `total` (see the header), with
 * `parallel` requests in flight. `dir` is a work directory for the bind source and loop files.
 */
export async function populate(agent: Agent, stack: Stack, dir: string, total: number, parallel = 4, progress?: (msg: string) => void): Promise<Counts> {
  const want = mix(total);
  const have = await counts(agent);
  mkdirSync(join(dir, 'bind-source'), { recursive: true });
  writeFileSync(join(dir, 'bind-source', 'file'), 'bench\n');
  const todo: Array<() => Promise<unknown>> = [];
  for (let i = have.containers; i < want.containers; i++) {
    todo.push(() => agent.must('POST', '/container', { command: '/bin/true', state: 'created', mount: { id: stack.overlay } }, 201));
  }
  for (let i = have.mounts; i < want.mounts; i++) {
    todo.push(() => agent.must('POST', '/mount', { kind: 'bind', bind: { path: join(dir, 'bind-source') } }, 201));
  }
  for (let i = have.attachments; i < want.attachments; i++) {
    const file = join(dir, `loop-${i}.img`);
    writeFileSync(file, Buffer.alloc(64 * 1024));
    todo.push(() => agent.must('POST', '/attach', { kind: 'loopback', loopback: { path: file, readonly: true } }, 201));
  }
  // Interleave the kinds, so that ids and records grow alike.
  const order = interleave(todo, want, have);
  let done = 0;
  await pool(order.length, parallel, async (i) => {
    await order[i]!();
    if (++done % 250 === 0) progress?.(`${done}/${order.length} objects created`);
  });
  const got = await counts(agent);
  const n = got.containers + got.mounts + got.attachments;
  if (n !== total && n !== want.containers + want.mounts + want.attachments) throw new Error(`populate: wanted ${total} objects, the agent lists ${n}`);
  return got;
}

function interleave<T>(todo: T[], want: Counts, have: Counts): T[] {
  const c = todo.slice(0, want.containers - have.containers);
  const m = todo.slice(c.length, c.length + Math.max(0, want.mounts - have.mounts));
  const a = todo.slice(c.length + m.length);
  const out: T[] = [];
  for (let i = 0; out.length < todo.length; i++) for (const l of [c, m, a]) if (i < l.length) out.push(l[i]!);
  return out;
}

export async function counts(agent: Agent): Promise<Counts> {
  const [c, m, a] = await Promise.all(['/container', '/mount', '/attach'].map((p) => agent.must('GET', p, undefined, 200)));
  return { containers: c.length, mounts: m.length, attachments: a.length };
}

/**
 * Delete every object of the agent: containers (stopped first), then mounts, then attachments,
 * `parallel` at a time, all with force=true (an object deleted with its parent answers 404).
 */
export async function deleteAll(agent: Agent, parallel = 4): Promise<void> {
  for (const kind of ['container', 'mount', 'attach'] as const) {
    checkInterrupted();
    const list: Array<{ id: number }> = await agent.must('GET', `/${kind}`, undefined, 200);
    list.sort((x, y) => y.id - x.id);
    await pool(list.length, parallel, async (i) => {
      const r = await agent.req('DELETE', `/${kind}?id=${list[i]!.id}&force=true`);
      if (r.status !== 200 && r.status !== 404) throw new Error(`DELETE /${kind}?id=${list[i]!.id} → ${r.status}: ${r.text}`);
    });
  }
  const left = await counts(agent);
  if (left.containers + left.mounts + left.attachments) throw new Error(`deleteAll: still listed: ${JSON.stringify(left)}`);
}
