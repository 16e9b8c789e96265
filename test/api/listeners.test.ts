// The listeners: a unix socket only root can use, https with mutual TLS, and concurrent
// requests that never get the same id.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { statSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, TestAgent } from '../helpers/agent.js';
import { forceCleanup } from '../helpers/leaks.js';

const MAIN = join(ROOT, 'dist/src/main.js');

function startRaw(args: string[]): Promise<{ proc: ReturnType<typeof spawn>; out: () => string }> {
  const proc = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b));
  proc.stderr!.on('data', (b: Buffer) => (out += b));
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if ((out.match(/"listening"/g) ?? []).length >= args.filter((a) => a === '--scheme').length) {
        clearInterval(t);
        resolve({ proc, out: () => out });
      }
    }, 50);
    proc.once('exit', (c) => {
      clearInterval(t);
      reject(new Error(`exited ${c}: ${out}`));
    });
  });
}

function get(opts: Record<string, unknown>, secure = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)({ method: 'GET', ...opts }, (res) => {
      let body = '';
      res.on('data', (b) => (body += b));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('listeners', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => forceCleanup(d)));

  it('unix socket: mode 0600, serves the API, removed on stop', async () => {
    const runDir = TestAgent.newRunDir();
    dirs.push(runDir);
    const sock = join(runDir, 'api.sock');
    const { proc } = await startRaw(['--scheme', 'unix', '--socket-path', sock, '--run-dir', runDir]);
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    const r = await get({ socketPath: sock, path: '/imageapi/v1/container' });
    assert.equal(r.status, 200);
    assert.equal(r.body, '[]');
    proc.kill('SIGTERM');
    await new Promise((res) => proc.once('exit', res));
    assert.throws(() => statSync(sock));
  });

  it('https with --tls-ca: a client certificate from that CA is required', async () => {
    const runDir = TestAgent.newRunDir();
    dirs.push(runDir);
    const o = (...a: string[]) => execFileSync('openssl', a, { cwd: runDir, stdio: 'ignore' });
    o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test-ca');
    for (const n of ['server', 'client']) {
      o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n === 'server' ? '127.0.0.1' : 'client'}`);
      o('x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n}.pem`, '-days', '1');
    }
    const f = (n: string) => join(runDir, n);
    const { proc, out } = await startRaw(['--scheme', 'https', '--tls-port', '0', '--tls-certificate', f('server.pem'), '--tls-key', f('server.key'), '--tls-ca', f('ca.pem'), '--run-dir', runDir]);
    const port = Number(/https:\/\/127\.0\.0\.1:(\d+)/.exec(out())![1]);
    const base = { host: '127.0.0.1', port, path: '/attach', ca: readFileSync(f('ca.pem')), servername: 'localhost', checkServerIdentity: () => undefined };
    const ok = await get({ ...base, cert: readFileSync(f('client.pem')), key: readFileSync(f('client.key')) }, true);
    assert.equal(ok.status, 200);
    await assert.rejects(get(base, true), 'no client certificate → no connection');
    proc.kill('SIGTERM');
    await new Promise((res) => proc.once('exit', res));
  });

  it('concurrent creates never hand out an id twice', async () => {
    const runDir = TestAgent.newRunDir();
    dirs.push(runDir);
    const agent = await new TestAgent(runDir).start();
    execFileSync('mkdir', ['-p', join(runDir, 'src')]);
    const rs = await Promise.all(Array.from({ length: 12 }, () => agent.post('/mount', { kind: 'bind', bind: { path: join(runDir, 'src'), ro: true } })));
    assert.ok(rs.every((r) => r.status === 201));
    const ids = rs.map((r) => r.body.id).sort((a: number, b: number) => a - b);
    assert.deepEqual(ids, [...Array(12).keys()]);
    const dels = await Promise.all(ids.map((id: number) => agent.del(`/mount?id=${id}`)));
    assert.ok(dels.every((r) => r.status === 200));
    assert.deepEqual((await agent.get('/mount')).body, []);
    await agent.stop();
  });
});
