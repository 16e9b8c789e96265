// GET /container/log: the log file, its last N lines, or followed while the container runs.
import { open, stat } from 'node:fs/promises';
import type { Request, Response } from 'express';
import { invalid, notFound } from '../../model/errors.js';
import { isLive } from '../../container/states.js';
import type { ContainerRec } from '../../store/records.js';
import type { Store } from '../../store/store.js';
import { boolParam, intParam } from '../query.js';

const FOLLOW_POLL_MS = 250;
const MAX_READ = 16 * 1024 * 1024;

async function readFrom(file: string, offset: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const len = Math.min(size - offset, MAX_READ);
    if (len <= 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

// The lines of the file: the agent's, init's, and the output (stamped with its stream when the
// container has log_timestamps; otherwise as it came, with no stream or time of its own).
const STAMP = /^(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{6}))? (container\(\d+\)|init|stdout|stderr): /;

type Stream = 'stdout' | 'stderr' | 'init' | 'agent';

/** Keeps the lines of `stream` (if given) stamped after `since` (ms, if given); unstamped lines take the time before them. */
class LineFilter {
  private last = -Infinity;
  private partial = '';
  constructor(
    private readonly stream: Stream | undefined,
    private readonly since: number | undefined,
  ) {}
  get active() {
    return this.stream !== undefined || this.since !== undefined;
  }
  push(chunk: string, end = false): string {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = end ? '' : lines.pop()!;
    if (end && lines[lines.length - 1] === '') lines.pop();
    const out: string[] = [];
    for (const l of lines) {
      const m = STAMP.exec(l);
      let stream: Stream | undefined;
      if (m) {
        const [, y, mo, d, h, mi, sec, us] = m;
        this.last = new Date(+y!, +mo! - 1, +d!, +h!, +mi!, +sec!).getTime() + (us ? Math.floor(+us / 1000) : 0);
        stream = m[8]!.startsWith('container') ? 'agent' : (m[8] as Stream);
      }
      if (this.stream && stream !== this.stream) continue;
      if (this.since !== undefined && !(this.last >= this.since)) continue;
      out.push(l + '\n');
    }
    return out.join('');
  }
}

function sinceParam(v: unknown): number | undefined {
  if (v === undefined || v === '') return undefined;
  const s = String(v);
  const t = /^\d+(\.\d+)?$/.test(s) ? Number(s) * 1000 : Date.parse(s);
  if (Number.isNaN(t)) throw invalid(`query.since: give a time (RFC 3339, or unix seconds), not ${JSON.stringify(s)}`);
  return t;
}

/** The rotated files (LOG.N … LOG.1, oldest first) that exist, then the current one. */
async function logFiles(logfile: string, keep: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = Math.max(1, keep) - 1; i >= 1; i--) if (await stat(`${logfile}.${i}`).catch(() => null)) out.push(`${logfile}.${i}`);
  return [...out, logfile];
}

export async function sendLog(rec: ContainerRec, req: Request, res: Response, store: Store): Promise<void> {
  const query = req.query as Record<string, unknown>;
  const tail = intParam(query.tail);
  const follow = boolParam(query.follow);
  const filter = new LineFilter(query.stream as Stream | undefined, sinceParam(query.since));
  const st = await stat(rec.logfile).catch(() => null);
  if (!st) throw notFound(`container ${rec.id} has no log file (${rec.logfile})`);
  // The whole story: the rotated files first (the last MAX_READ bytes of it all).
  let text = '';
  for (const f of (await logFiles(rec.logfile, rec.log_max_files ?? 1)).reverse()) {
    if (text.length >= MAX_READ) break;
    const size = f === rec.logfile ? st.size : ((await stat(f).catch(() => null))?.size ?? 0);
    text = (await readFrom(f, Math.max(0, size - (MAX_READ - text.length)))).toString() + text;
  }
  if (filter.active) text = filter.push(text, true);
  if (tail !== undefined) {
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    text = lines.slice(Math.max(0, lines.length - tail)).join('\n') + (lines.length && tail > 0 ? '\n' : '');
  }
  res.status(200).type('text/plain');
  if (!follow) {
    res.send(text);
    return;
  }
  res.write(text);
  let offset = st.size;
  let ino = st.ino;
  let closed = false;
  let endedQuiet = false;
  req.on('close', () => (closed = true));
  const live = () => {
    const c = store.find('container', rec.id);
    return !!c && (isLive(c.state) || c.state === 'created'); // a created one may still be started
  };
  while (!closed) {
    // Rotated (a new file under the name, or emptied): go on from its start.
    const now = await stat(rec.logfile).catch(() => null);
    if (now && (now.ino !== ino || now.size < offset)) {
      ino = now.ino;
      offset = 0;
    }
    const more = await readFrom(rec.logfile, offset).catch(() => Buffer.alloc(0));
    if (more.length) {
      offset += more.length;
      res.write(filter.active ? filter.push(more.toString()) : more);
    } else if (!live()) {
      // Ended. What is written after the end is recorded (the log writer's last flush, the
      // agent's "container exited (exit code N)") still comes: the follow ends only after a
      // poll interval with nothing new since the end was seen.
      if (endedQuiet) break;
      endedQuiet = true;
    }
    if (more.length) endedQuiet = false;
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
  }
  if (filter.active) res.write(filter.push('', true)); // a last line without its newline
  res.end();
}
