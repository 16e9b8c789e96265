// The request/response validator generated from swagger.yaml, in process (no root, no kernel):
// route lookup, each kind of refusal, and answers checked against the spec when asked.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { pino } from 'pino';
import { errorHandler } from '../../src/api/errors.js';
import { loadChecks, SpecValidator } from '../../src/api/validate.js';

describe('the spec validator', () => {
  let url = '';
  let server: import('node:http').Server;
  const hits: string[] = [];

  before(async () => {
    const app = express();
    app.set('query parser', 'simple');
    app.use(express.json());
    app.use(new SpecValidator({ base: '/imageapi/v1', checks: await loadChecks({ responses: true }) }).middleware);
    // Stand-in handlers: they say which route the validator let through, and one breaks the spec.
    app.get(['/container/log', '/imageapi/v1/container/log'], (_req, res) => void (hits.push('log'), res.type('text/plain').send('x')));
    app.get('/container/:id', (req, res) => {
      hits.push(`container ${req.params.id}`);
      if (req.params.id === '9') res.json({ id: 'nine' }); // not what the spec says
      else res.json({ id: Number(req.params.id), command: '/bin/true', mount: { id: 0 }, state: 'created' });
    });
    app.post('/attach', (_req, res) => void res.status(201).json({ id: 0, kind: 'loopback' }));
    app.use(errorHandler(pino({ level: 'silent' })));
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const call = async (method: string, path: string, body?: string, type = 'application/json') => {
    const res = await fetch(url + path, { method, body, headers: body === undefined ? {} : { 'content-type': type } });
    return { status: res.status, allow: res.headers.get('allow'), body: (await res.json().catch(() => null)) as { message: string } | null };
  };

  it('finds literal routes before parameter ones, with and without the base path', async () => {
    hits.length = 0;
    assert.equal((await call('GET', '/container/log?id=1')).status, 200);
    assert.equal((await call('GET', '/imageapi/v1/container/log?name=x')).status, 200);
    assert.equal((await call('GET', '/container/3')).status, 200);
    assert.deepEqual(hits, ['log', 'log', 'container 3']);
  });

  it('refuses, naming the field or the route', async () => {
    const cases: Array<[string, string, string | undefined, number, RegExp]> = [
      ['GET', '/container/abc', undefined, 400, /^path\.id: must be integer/],
      ['GET', '/container/log?id=1&color=red', undefined, 400, /query\.color: is not a parameter of GET \/container\/log/],
      ['GET', '/attach?id=x', undefined, 400, /query\.id: must be integer/],
      ['POST', '/attach', '{"kind":"floppy"}', 400, /^body\.kind: must be equal to one of the allowed values/],
      ['POST', '/attach', '{"kind":"loopback","loopback":{"pth":"/x"}}', 400, /body\.loopback: must NOT have additional properties \(unknown field "pth"\)/],
      ['POST', '/attach', '{"device_file":"/dev/sda"}', 400, /body\.device_file: is read-only/],
      ['POST', '/attach', 'x=1', 415, /takes a JSON object as its body.*got content-type application\/x-www-form-urlencoded/],
      ['GET', '/nothing/here', undefined, 404, /^no route GET \/nothing\/here: see \/docs/],
    ];
    for (const [m, p, b, status, msg] of cases) {
      const r = await call(m, p, b, b === 'x=1' ? 'application/x-www-form-urlencoded' : 'application/json');
      assert.equal(r.status, status, `${m} ${p}: ${JSON.stringify(r.body)}`);
      assert.match(r.body!.message, msg);
    }
    const r = await call('PUT', '/attach', '{}');
    assert.equal(r.status, 405);
    assert.equal(r.allow, 'GET, POST, DELETE');
  });

  it('lets a valid request through, and turns an answer that breaks the spec into a 500', async () => {
    assert.equal((await call('POST', '/attach', '{"kind":"loopback","loopback":{"path":"/x"}}')).status, 201);
    const bad = await call('GET', '/container/9');
    assert.equal(bad.status, 500);
    assert.match(bad.body!.message, /the answer of GET \/container\/\{id\} does not match the spec: .*\/response\/id: must be integer/);
  });
});
