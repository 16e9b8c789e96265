// Answers made of JSON text the views keep (views.ts `texts`, UTF-8 bytes): joined, not
// serialized again. A large list goes out in chunks as the connection takes them, made from texts
// taken all at once (one moment's view, whatever changes while it is sent).
import type { Response } from 'express';

/** Up to this many bytes an answer is one write; larger ones go in chunks of about this size. */
const CHUNK = 1024 * 1024;
const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

/** Wait until the socket takes more (false: the connection is gone, the answer abandoned). */
function drained(res: Response): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/**
 * Answer `texts` (each one JSON value) as a JSON array, or the single text as it is (`one`).
 * With responses validated (the tests), through res.json, so that the validator sees the value.
 */
export async function sendJsonTexts(res: Response, texts: readonly Buffer[], one = false): Promise<void> {
  const parts: Buffer[] = one ? [texts[0]!] : [OPEN];
  if (!one) {
    texts.forEach((t, i) => (i ? parts.push(COMMA, t) : parts.push(t)));
    parts.push(CLOSE);
  }
  if (res.locals.checkedJson) {
    res.json(JSON.parse(Buffer.concat(parts).toString('utf8')));
    return;
  }
  let bytes = 0;
  for (const p of parts) bytes += p.length;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', bytes);
  if (bytes <= CHUNK) {
    res.end(Buffer.concat(parts, bytes));
    return;
  }
  let chunk: Buffer[] = [];
  let size = 0;
  for (const [i, p] of parts.entries()) {
    chunk.push(p);
    size += p.length;
    if (size < CHUNK && i < parts.length - 1) continue;
    const ok = res.write(Buffer.concat(chunk, size));
    chunk = [];
    size = 0;
    if (!ok && !(await drained(res))) return;
  }
  res.end();
}
