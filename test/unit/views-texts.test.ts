// The JSON texts the views keep per record (what GET lists answer from) are always what rendering
// the records now gives: after every kind of change a record, its children or its users go
// through (state, pid, refs, ownership, a child re-mounted, a child gone, a pending user), the
// kept text of the record and of everything that shows it is the fresh rendering.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import express from 'express';
import { sendJsonTexts } from '../../src/api/respond.js';
import type { AnyRec, ContainerRec, MountRec } from '../../src/store/records.js';
import { disk, fs, Harness, ref, stack, tmp } from './core/harness.js';

describe('views: kept JSON texts', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  const fresh = (r: AnyRec) =>
    r.type === 'attach' ? h.views.attach(r) : r.type === 'mount' ? h.views.mount(r) : r.type === 'image' ? h.views.image(r) : h.views.container(r);
  const parsed = (recs: AnyRec[]) => h.views.texts(recs).map((b) => JSON.parse(b.toString('utf8')));
  /** Every list the API shows, from the kept texts, equals a fresh rendering; returns the container list. */
  const same = (why: string) => {
    for (const t of ['attach', 'mount', 'container'] as const) {
      const recs = h.store.list(t);
      assert.deepEqual(parsed(recs), recs.map(fresh), `${t} list ${why}`);
      for (const r of recs) assert.deepEqual(JSON.parse(h.views.text(r).toString('utf8')), fresh(r), `${t} ${r.id} alone ${why}`);
    }
    return parsed(h.store.list('container'));
  };

  it('follow a container\'s state, pid and error, and its mount\'s refs, without a stale byte', async () => {
    const c = await h.createContainer(stack('s', [fs('f', disk('a'))]));
    const before = same('at first');
    assert.equal(before[0].state, 'created');
    Object.assign(c, { state: 'running', pid: 4242, started_at: new Date(1000).toISOString() });
    assert.equal(same('after the start')[0].pid, 4242);
    Object.assign(c, { state: 'dead', pid: null, exit_code: 137, error: 'killed' });
    const dead = same('after the end');
    assert.equal(dead[0].state, 'dead');
    assert.equal(dead[0].error, 'killed');
    // Another user of the container's mount: its refs change inside the first container's text.
    const m = h.store.get('mount', c.holds[0]!.id);
    const refs0 = dead[0].mount.refs;
    await h.createContainer(ref(m.id));
    const two = same('after a second user');
    assert.equal(two[0].mount.refs, refs0 + 1);
    assert.equal(two[1].mount.refs, refs0 + 1);
    await h.remove('container', 1);
    assert.equal(same('after the second user went')[0].mount.refs, refs0);
  });

  it('follow what changes below: a child re-mounted, owned by the user, gone', async () => {
    await h.createMount(tmp('t')); // mount 0
    const s = await h.createMount(stack('s', [fs('f', disk('a')), ref(0)]));
    const c = await h.createContainer(ref(s.id));
    same('at first');
    // The core replaces a record's fields (adopt, re-mount): a child's new mountpoint shows at every level.
    const f = h.store.get('mount', 1) as MountRec;
    f.mounted = { ...f.mounted, mountpoint: '/elsewhere' };
    assert.equal(same('after a child changed')[0].mount.stack.lower[0].mountpoint, '/elsewhere');
    // An attachment record replaced in the store (put of a new object with the same id).
    const a = h.store.get('attach', 0);
    h.store.put({ ...a, attached: { ...a.attached, device_file: '/dev/other' } });
    assert.equal(same('after the attachment was replaced')[0].mount.stack.lower[0].fs.attach.device_file, '/dev/other');
    // A child that belonged to its parent becomes the user's (its refs go up).
    const owned = h.store.get('mount', 1);
    const refsBefore = JSON.parse(h.views.text(owned).toString()).refs;
    owned.owner = 'user';
    assert.equal(JSON.parse(h.views.text(owned).toString()).refs, refsBefore + 1);
    same('after an ownership change');
    // A child gone from the store shows as its bare reference.
    h.store.remove({ type: 'mount', id: 0 });
    assert.deepEqual(same('after a child vanished')[0].mount.stack.lower[1], { id: 0 });
    assert.equal(c.id, 0);
  });

  it('a user still pending (a request in flight) is not counted, and counts once published', async () => {
    const m = await h.createMount(tmp('t'));
    same('at first');
    const c = await h.createContainer(ref(m.id));
    const n = JSON.parse(h.views.text(m).toString()).refs;
    (c as ContainerRec).pending = true;
    assert.equal(JSON.parse(h.views.text(m).toString()).refs, n - 1);
    delete (c as ContainerRec).pending;
    assert.equal(JSON.parse(h.views.text(m).toString()).refs, n);
    same('after the flip');
  });

  it('are sent whole: one write, or in chunks for a large list (the same bytes)', async () => {
    const app = express();
    const texts = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(JSON.stringify({ id: i, pad: 'x'.repeat(900), u: 'é€' })));
    app.get('/small', (_req, res) => void sendJsonTexts(res, texts(10)));
    app.get('/large', (_req, res) => void sendJsonTexts(res, texts(3000))); // ~2.8 MB: several chunks
    app.get('/one', (_req, res) => void sendJsonTexts(res, texts(1), true));
    app.get('/none', (_req, res) => void sendJsonTexts(res, []));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (const [path, want] of [['/small', 10], ['/large', 3000]] as const) {
        const res = await fetch(url + path);
        const body = Buffer.from(await res.arrayBuffer());
        assert.equal(Number(res.headers.get('content-length')), body.length, path);
        const list = JSON.parse(body.toString('utf8')) as Array<{ id: number; u: string }>;
        assert.deepEqual(list.map((x) => x.id), [...Array(want).keys()], path);
        assert.equal(list[want - 1]!.u, 'é€');
      }
      assert.deepEqual(await (await fetch(`${url}/one`)).json(), { id: 0, pad: 'x'.repeat(900), u: 'é€' });
      assert.deepEqual(await (await fetch(`${url}/none`)).json(), []);
    } finally {
      server.close();
    }
  });
});
