// Edges of input: what node or the validator would otherwise answer with a stack overflow, a
// reset connection or a long wait gets a JSON {code, message} at once, and changes nothing.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite } from '../helpers/suite.js';

/** One raw HTTP exchange: write `head` (and `body`), read until the server closes or answers fully. */
function raw(url: string, head: string, body = ''): Promise<{ status: number; headers: string; body: any; ms: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const sock = connect(Number(port), hostname);
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no complete answer within 10 s; got: ${JSON.stringify(got.slice(0, 300))}`));
    }, 10_000);
    const finish = () => {
      const m = /^HTTP\/1\.1 (\d+)[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(got);
      if (!m) return false;
      const len = /content-length: (\d+)/i.exec(m[2]!);
      if (!len || Buffer.byteLength(m[3]!) < Number(len[1])) return false;
      clearTimeout(timer);
      sock.destroy();
      resolve({ status: Number(m[1]), headers: m[2]!, body: JSON.parse(m[3]!.slice(0, Number(len[1]))), ms: Date.now() - started });
      return true;
    };
    sock.on('data', (b) => {
      got += b.toString();
      finish();
    });
    sock.on('error', (err) => {
      if (!finish()) {
        clearTimeout(timer);
        reject(new Error(`${err.message} after ${JSON.stringify(got.slice(0, 300))}`));
      }
    });
    sock.on('close', () => {
      if (!finish()) {
        clearTimeout(timer);
        reject(new Error(`closed without a complete answer; got: ${JSON.stringify(got.slice(0, 300))}`));
      }
    });
    sock.write(head);
    if (body) sock.write(body);
  });
}

describe('edges of input', () => {
  const ctx = agentSuite();

  /** An overlay whose only lower is an overlay whose only lower is … `depth` times, as JSON text
   * (built as text: JSON.stringify itself recurses). */
  const nested = (depth: number) => '{"kind":"overlay","overlay":{"lower":['.repeat(depth) + '{"id":0}' + ']}}'.repeat(depth);

  for (const depth of [1000, 5000]) {
    it(`an overlay nested ${depth} levels deep → 400 naming the depth, nothing created`, async () => {
      const r = await ctx.agent.post('/mount', nested(depth));
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.code, 400);
      assert.match(r.body.message, /nested deeper than \d+ levels/);
      assert.deepEqual((await ctx.agent.get('/mount')).body, []);
      assert.deepEqual(mountsUnder(ctx.runDir), []);
    });
  }

  it('a container spec nested deep (through the generic route) → 400 too', async () => {
    const r = await ctx.agent.post('/imageapi/v1/container', `{"command":"/bin/sh","mount":${nested(2000)}}`);
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.message, /nested deeper/);
  });

  it('a legitimately nested stack (overlay over attach over loopback inside a mount) is not refused for its depth', async () => {
    const r = await ctx.agent.post('/mount', nested(10));
    // id 0 does not exist: the answer is about that, not about depth.
    assert.equal(r.status, 404, r.text);
    assert.doesNotMatch(r.body.message, /nested deeper/);
    assert.deepEqual(loopsOver(ctx.runDir, ctx.image), []);
  });

  it('a 70 KB URL → JSON 431, not a reset connection; the agent still answers afterwards', async () => {
    const long = `/mount?id=0&x=${'a'.repeat(70 * 1024)}`;
    const r = await raw(ctx.agent.url, `GET ${long} HTTP/1.1\r\nhost: x\r\n\r\n`);
    assert.ok(r.status === 431 || r.status === 414, `status ${r.status}`);
    assert.equal(r.body.code, r.status);
    assert.match(r.body.message, /larger than the limit/);
    // fetch sees the answer too (no ECONNRESET)
    const viaFetch = await fetch(ctx.agent.url + long);
    assert.equal(viaFetch.status, r.status);
    assert.equal(((await viaFetch.json()) as { code: number }).code, r.status);
    assert.equal((await ctx.agent.get('/mount')).status, 200);
  });

  it('a request announcing a 100 MB body → 413 at once, before the body is sent', async () => {
    const head = `POST /attach HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${100 * 1024 * 1024}\r\n\r\n`;
    // Only 10 bytes of the 100 MB are ever sent: an answer means the agent did not wait for the rest.
    const r = await raw(ctx.agent.url, head, '{"kind": "');
    assert.equal(r.status, 413);
    assert.equal(r.body.code, 413);
    assert.match(r.body.message, /104857600 bytes announced.*limit of 1048576/);
    assert.deepEqual((await ctx.agent.get('/attach')).body, []);
  });

  it('a body just over the limit sent in full → 413 as before', async () => {
    const r = await ctx.agent.post('/attach', JSON.stringify({ kind: 'loopback', loopback: { path: 'x'.repeat(1024 * 1024 + 10) } }));
    assert.equal(r.status, 413, r.text);
    assert.equal(r.body.code, 413);
  });

  it('a malformed request line → JSON 400', async () => {
    const r = await raw(ctx.agent.url, 'GET\x01 / HTTP/1.1\r\n\r\n');
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 400);
    assert.match(r.body.message, /malformed HTTP request/);
  });
});
