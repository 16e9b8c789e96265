// Every bad input gets a 4xx JSON {code, message} that names the problem, and changes nothing:
// no object, no loop device, no mount.
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { loopsOver, mountsUnder } from '../helpers/leaks.js';
import { agentSuite } from '../helpers/suite.js';

describe('bad input', () => {
  const ctx = agentSuite();

  before(() => {
    mkdirSync(join(ctx.runDir, 'files'));
    symlinkSync('/etc', join(ctx.runDir, 'files/out'));
  });

  const sqshOn = (attach: unknown, fs_type = 'squashfs', mount_options = ['ro']) => ({ kind: 'attach', attach: { fs_type, mount_options, attach } });
  const cases: Array<[string, string, string, unknown, number, RegExp]> = [
    ['unknown kind', 'POST', '/attach', { kind: 'floppy' }, 400, /kind.*allowed values/],
    ['unknown mount kind', 'POST', '/mount', { kind: 'zip' }, 400, /kind.*allowed values/],
    ['missing required field', 'POST', '/attach', { kind: 'loopback', loopback: {} }, 400, /loopback.*path/],
    ['missing command', 'POST', '/container', { mount: { id: 0 } }, 400, /command/],
    ['wrong type', 'POST', '/attach', { kind: 'loopback', loopback: { path: ['x'] } }, 400, /body\.loopback\.path: must be string/],
    ['wrong type in a query', 'GET', '/attach?id=zero', undefined, 400, /query\.id: must be integer/],
    ['unknown field (a typo)', 'POST', '/attach', { kind: 'loopback', loopback: { pth: '/x' } }, 400, /pth|additional/],
    ['read-only field', 'POST', '/attach', { kind: 'loopback', device_file: '/dev/sda', loopback: { path: '/x' } }, 400, /device_file.*read-only/],
    ['".." in a loopback path', 'POST', '/attach', { kind: 'loopback', loopback: { path: '/tmp/../etc/shadow' } }, 400, /\.\./],
    ['a file that does not exist', 'POST', '/attach', { kind: 'loopback', loopback: { path: '/nonexistent/image.sqsh' } }, 400, /no such file/],
    ['a directory as loopback file', 'POST', '/attach', { kind: 'loopback', loopback: { path: '/etc' } }, 400, /not a regular file/],
    ['local path not a block device', 'POST', '/attach', { kind: 'local', local: { path: '/etc/passwd' } }, 400, /not a block device/],
    ['local path missing', 'POST', '/attach', { kind: 'local', local: { path: '/dev/nonexistent' } }, 400, /no such file/],
    ['filesystem the kernel lacks', 'POST', '/mount', { kind: 'attach', attach: { fs_type: 'hfsplus', attach: { kind: 'local', local: { path: '/dev/null' } } } }, 501, /hfsplus/],
    ['overlay overriding lowerdir', 'POST', '/mount', { kind: 'overlay', overlay: { lower: [{ id: 0 }], mount_options: ['lowerdir=/etc'] } }, 400, /lowerdir/],
    ['a mount option smuggling another', 'POST', '/mount', sqshOn({ kind: 'local', local: { path: '/dev/null' } }, 'squashfs', ['ro,exec']), 400, /comma/],
    ['reference to a missing attachment', 'POST', '/mount', sqshOn({ id: 4242 }), 404, /no attachment with id 4242/],
    ['reference to a missing mount', 'POST', '/mount', { kind: 'overlay', overlay: { lower: [{ id: 4242 }] } }, 404, /no mount with id 4242/],
    ['kind without its definition', 'POST', '/mount', { kind: 'overlay' }, 400, /mount\.overlay.*missing/],
    ['neither id nor kind', 'POST', '/mount', {}, 400, /^mount: give "kind" \((\w+, )+rbd\) and its definition/],
    ['malformed JSON', 'POST', '/attach', '{"kind": "loopback", ', 400, /malformed JSON/],
    ['NFS without a kernel client', 'POST', '/mount', { kind: 'nfs', nfs: { host: '127.0.0.1', path: '/export' } }, 501, /NFS client/],
    ['iSCSI without an initiator', 'POST', '/attach', { kind: 'iscsi', iscsi: { host: '127.0.0.1', target: 'iqn.2020-01.x:y' } }, 501, /iSCSI initiator/],
    ['uri without its checksum', 'POST', '/mount', { kind: 'uri', uri: { uri: 'http://127.0.0.1/x.tar' } }, 400, /uri\.checksum: required/],
    ['uri naming two images', 'POST', '/mount', { kind: 'uri', uri: { uri: 'http://127.0.0.1/x.tar', image: { id: 0 } } }, 400, /exactly one of/],
    ['loopback over an image with a path', 'POST', '/attach', { kind: 'loopback', loopback: { base: 'image', path: 'x', image: { id: 0 } } }, 400, /"path" is given but base is "image"/],
    ['image with an id', 'POST', '/image', { id: 3, uri: 'http://127.0.0.1/x.sqsh' }, 400, /ids are given by the agent/],
    ['image with a bad checksum', 'POST', '/image', { uri: 'http://127.0.0.1/x.sqsh', checksum: 'md5:00' }, 400, /checksum/],
    ['delete without id', 'DELETE', '/attach', undefined, 400, /id/],
    ['delete of a missing object', 'DELETE', '/mount?id=999', undefined, 404, /no mount with id 999/],
    ['unknown route', 'GET', '/imageapi/v1/nothing-here', undefined, 404, /^no route GET \/imageapi\/v1\/nothing-here: see \/docs/],
    ['a REST-style path that does not exist', 'DELETE', '/attach/1', undefined, 404, /^no route DELETE \/attach\/1: see \/docs/],
    ['no body', 'POST', '/attach', undefined, 415, /^POST \/attach takes a JSON object as its body \(content-type: application\/json\); got no body/],
    ['no body on the typed route', 'POST', '/mount/overlay', undefined, 415, /takes a JSON object as its body/],
    ['a JSON array as body', 'POST', '/mount', '[]', 400, /body.*must be object|must be a JSON object/],
    ['bad container name', 'POST', '/container', { name: 'a b', command: '/bin/sh', mount: { id: 0 } }, 400, /name/],
    ['unterminated quote in the command', 'POST', '/container', { command: '/bin/sh -c "echo', mount: { id: 0 } }, 400, /quote/],
  ];

  for (const [what, method, path, body, status, msg] of cases) {
    it(`${what} → ${status}`, async () => {
      const r = await ctx.agent.req(method, path, body);
      assert.equal(r.status, status, r.text);
      assert.equal(r.body.code, status);
      assert.match(r.body.message, msg);
      assert.deepEqual((await ctx.agent.get('/attach')).body, []);
      assert.deepEqual((await ctx.agent.get('/mount')).body, []);
      assert.deepEqual((await ctx.agent.get('/container')).body, []);
      assert.deepEqual(mountsUnder(ctx.runDir), []);
      assert.deepEqual(loopsOver(ctx.image, ctx.runDir), []);
    });
  }

  it('a method the route does not have → 405 with an Allow header', async () => {
    for (const base of ['', '/imageapi/v1']) {
      const res = await fetch(`${ctx.agent.url}${base}/attach`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' });
      const body = (await res.json()) as { code: number; message: string };
      assert.equal(res.status, 405);
      assert.equal(body.code, 405);
      assert.match(body.message, /PUT is not allowed on .*attach \(allowed: /);
      assert.deepEqual(res.headers.get('allow')?.split(', ').sort(), ['DELETE', 'GET', 'POST']);
    }
  });

  it('an empty JSON body → 400 on every create route, nothing created', async () => {
    for (const route of ['/attach', '/mount', '/container', '/attach/rbd', '/mount/rbd', '/mount/overlay']) {
      const res = await fetch(`${ctx.agent.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      const body = (await res.json()) as { code: number; message: string };
      assert.equal(res.status, 400, `${route}: ${JSON.stringify(body)}`);
      assert.match(body.message, /needs a JSON object as its body|give "kind"|must have required property/);
    }
    assert.deepEqual((await ctx.agent.get('/attach')).body, []);
    assert.deepEqual((await ctx.agent.get('/mount')).body, []);
  });

  it('the 409 of a typed delete advises what works on that route, and the advice works', async () => {
    const m = await ctx.agent.post('/mount', sqshOn({ kind: 'loopback', loopback: { path: ctx.image, readonly: true } }));
    assert.equal(m.status, 201, m.text);
    const ov = await ctx.agent.post('/mount/overlay', { lower: [m.body.id] });
    assert.equal(ov.status, 201, ov.text);
    const c = await ctx.agent.post('/container', { mount: { id: ov.body.id, kind: 'overlay' }, command: '/bin/true' });
    assert.equal(c.status, 201, c.text);
    const refused = await ctx.agent.del(`/mount/overlay/${ov.body.id}`);
    assert.equal(refused.status, 409, refused.text);
    const advice = `DELETE /mount?id=${ov.body.id}&force=true`;
    assert.ok(refused.body.message.includes(advice), refused.body.message);
    assert.equal((await ctx.agent.del(advice.slice(7))).status, 200);
    assert.equal((await ctx.agent.get(`/container?id=${c.body.id}`)).status, 404, 'force took the container with it');
    assert.equal((await ctx.agent.del(`/mount?id=${m.body.id}`)).status, 200);
  });

  it('a symlink out of a mount base → 400', async () => {
    const base = await ctx.agent.post('/mount', { kind: 'bind', bind: { path: join(ctx.runDir, 'files') } });
    assert.equal(base.status, 201, base.text);
    const r = await ctx.agent.post('/attach', { kind: 'loopback', loopback: { path: 'out/passwd', base: 'mount', mount: { id: base.body.id } } });
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.message, /outside its base/);
    assert.equal((await ctx.agent.get('/attach')).body.length, 0);
    assert.equal((await ctx.agent.del(`/mount?id=${base.body.id}`)).status, 200);
  });

  it('a 10 MB body → 413, and nothing is created', async () => {
    const big = JSON.stringify({ kind: 'loopback', loopback: { path: 'x'.repeat(10 * 1024 * 1024) } });
    const r = await ctx.agent.post('/attach', big);
    assert.equal(r.status, 413);
    assert.match(r.body.message, /larger than/);
  });

  it('a wrong filesystem type fails at mount time, and the loop device it made is gone', async () => {
    const r = await ctx.agent.post('/mount', sqshOn({ kind: 'loopback', loopback: { path: ctx.image } }, 'ext4', []));
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.message, /^mount: .*wrong fs type/);
    assert.deepEqual(loopsOver(ctx.image), []);
    assert.deepEqual(mountsUnder(ctx.runDir), []);
    assert.deepEqual((await ctx.agent.get('/attach')).body, []);
  });
});
