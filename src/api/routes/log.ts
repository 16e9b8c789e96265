// GET /container/log: the log file, its last N lines, or followed while the container runs.
import { open, stat } from 'node:fs/promises';
import type { Request, Response } from 'express';
import { notFound } from '../../model/errors.js';
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

export async function sendLog(rec: ContainerRec, req: Request, res: Response, store: Store): Promise<void> {
  const tail = intParam((req.query as Record<string, unknown>).tail);
  const follow = boolParam((req.query as Record<string, unknown>).follow);
  const st = await stat(rec.logfile).catch(() => null);
  if (!st) throw notFound(`container ${rec.id} has no log file (${rec.logfile})`);
  const start = Math.max(0, st.size - MAX_READ);
  let text = (await readFrom(rec.logfile, start)).toString();
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
  let closed = false;
  req.on('close', () => (closed = true));
  const live = () => {
    const c = store.find('container', rec.id);
    return !!c && (isLive(c.state) || c.state === 'created'); // a created one may still be started
  };
  while (!closed) {
    const more = await readFrom(rec.logfile, offset).catch(() => Buffer.alloc(0));
    if (more.length) {
      offset += more.length;
      res.write(more);
    } else if (!live()) break;
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
  }
  res.end();
}
