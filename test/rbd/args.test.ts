// Pure parts of the RBD driver: spec checks, krbd/nbd/probe arguments, option mapping, the
// client files' text, error classification, identity and redaction. No cluster needed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AgentError } from '../../src/model/errors.js';
import { withoutSecrets } from '../../src/model/secrets.js';
import { clientConfText, keyringText } from '../../src/attach/rbd/cephconf.js';
import { rbdDriver, rbdIdentity } from '../../src/attach/rbd/index.js';
import { krbdMapArgs, krbdUnmapArgs, parseMapOutput, sysfsMatches } from '../../src/attach/rbd/krbd.js';
import { nbdMapArgs } from '../../src/attach/rbd/nbd.js';
import { checkOptionsFor, krbdOptionList, libradosSettings } from '../../src/attach/rbd/options.js';
import { classifyProbeFailure, probeArgs } from '../../src/attach/rbd/probe.js';
import { normalizeMonitor, resolveSpec } from '../../src/attach/rbd/spec.js';
import type { RbdOptions, RbdSpec } from '../../src/attach/rbd/types.js';

const KEY = 'AQBWbAJrMNmSBRAAXsf/YdIt9HUloVcRvp1ILA==';
const FILES = { conf: '/run/x/ceph.conf', keyring: '/run/x/keyring' };
const MON = '[v2:10.0.0.1:3300,v1:10.0.0.1:6789]';

const spec = (over: Partial<RbdSpec> = {}, options: RbdOptions = {}): RbdSpec => ({
  monitors: ['10.0.0.1'],
  pool: 'rbd',
  image: 'img',
  ...over,
  options: { secret: KEY, ...options },
});

const kinds = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof AgentError, `not an AgentError: ${String(e)}`);
    return e.kind;
  }
  assert.fail('did not throw');
};

describe('krbd map arguments', () => {
  const cases: Array<[string, RbdSpec, string[]]> = [
    [
      'minimal: default user admin, read-write',
      spec(),
      ['device', 'map', '-c', FILES.conf, '--id', 'admin', '--keyring', FILES.keyring, '-m', MON, '--pool', 'rbd', '--image', 'img'],
    ],
    [
      'user, namespace, snapshot (always read-only)',
      spec({ namespace: 'ns', snapshot: 's1' }, { name: 'alice' }),
      [
        'device', 'map', '-c', FILES.conf, '--id', 'alice', '--keyring', FILES.keyring, '-m', MON,
        '--pool', 'rbd', '--namespace', 'ns', '--image', 'img', '--snap', 's1', '--read-only',
      ],
    ],
    [
      'options.namespace is the namespace too',
      spec({}, { namespace: 'ns2' }),
      ['device', 'map', '-c', FILES.conf, '--id', 'admin', '--keyring', FILES.keyring, '-m', MON, '--pool', 'rbd', '--namespace', 'ns2', '--image', 'img'],
    ],
    [
      'ro and exclusive use their own flags',
      spec({}, { ro: true, exclusive: true }),
      [
        'device', 'map', '-c', FILES.conf, '--id', 'admin', '--keyring', FILES.keyring, '-m', MON,
        '--pool', 'rbd', '--image', 'img', '--read-only', '--exclusive',
      ],
    ],
    [
      'every per-client option',
      spec(
        { monitors: ['10.0.0.1', '10.0.0.2:6789', '[fd00::1]:3300'] },
        {
          fsid: '11111111-2222-3333-4444-555555555555',
          ip: '10.0.0.9',
          noshare: true,
          nocrc: true,
          noceph_requires_signatures: true,
          notcp_nodelay: true,
          nocephx_sign_messages: true,
          mount_timeout: 30,
          osdkeepalive: 7,
          osd_idle_ttl: 90,
        },
      ),
      [
        'device', 'map', '-c', FILES.conf, '--id', 'admin', '--keyring', FILES.keyring,
        '-m', `${MON},10.0.0.2:6789,[fd00::1]:3300`, '--pool', 'rbd', '--image', 'img',
        '-o',
        'fsid=11111111-2222-3333-4444-555555555555,ip=10.0.0.9,noshare,nocrc,nocephx_require_signatures,notcp_nodelay,nocephx_sign_messages,mount_timeout=30,osdkeepalive=7,osd_idle_ttl=90',
      ],
    ],
    [
      'the positive forms and every per-mapping option',
      spec(
        {},
        {
          share: true,
          crc: true,
          ceph_requires_signatures: true,
          tcp_nodelay: true,
          cephx_sign_messages: true,
          rw: true,
          queue_depth: 256,
          lock_on_read: true,
          lock_timeout: 0,
          notrim: true,
          abort_on_full: true,
          alloc_size: 4096,
        },
      ),
      [
        'device', 'map', '-c', FILES.conf, '--id', 'admin', '--keyring', FILES.keyring, '-m', MON, '--pool', 'rbd', '--image', 'img',
        '-o',
        'share,crc,cephx_require_signatures,tcp_nodelay,cephx_sign_messages,rw,queue_depth=256,lock_on_read,lock_timeout=0,notrim,abort_on_full,alloc_size=4096',
      ],
    ],
    [
      'false booleans are not options; force is for unmap',
      spec({}, { crc: false, ro: false, exclusive: false, force: true }),
      ['device', 'map', '-c', FILES.conf, '--id', 'admin', '--keyring', FILES.keyring, '-m', MON, '--pool', 'rbd', '--image', 'img'],
    ],
  ];
  for (const [name, s, want] of cases) {
    test(name, () => {
      const args = krbdMapArgs(resolveSpec(s), FILES);
      assert.deepEqual(args, want);
      assert.ok(!args.join(' ').includes(KEY), 'the key is never in argv');
      assert.ok(!args.some((a) => /secret|key=/.test(a)));
    });
  }

  test('without a secret there is no --keyring', () => {
    const r = resolveSpec({ monitors: ['10.0.0.1'], pool: 'p', image: 'i' });
    assert.deepEqual(krbdMapArgs(r, { conf: FILES.conf, keyring: undefined }), [
      'device', 'map', '-c', FILES.conf, '--id', 'admin', '-m', MON, '--pool', 'p', '--image', 'i',
    ]);
  });

  test('unmap, with and without force', () => {
    assert.deepEqual(krbdUnmapArgs(3, false), ['device', 'unmap', '/dev/rbd3']);
    assert.deepEqual(krbdUnmapArgs(3, true), ['device', 'unmap', '-o', 'force', '/dev/rbd3']);
  });

  test('map output and sysfs matching', () => {
    assert.equal(parseMapOutput('/dev/rbd12\n'), 12);
    assert.throws(() => parseMapOutput('nothing'), AgentError);
    const r = resolveSpec(spec({ namespace: 'ns' }));
    assert.ok(sysfsMatches({ pool: 'rbd', name: 'img', current_snap: '-', pool_ns: 'ns' }, r));
    assert.ok(!sysfsMatches({ pool: 'rbd', name: 'img', current_snap: '-', pool_ns: '' }, r));
    assert.ok(!sysfsMatches({ pool: 'rbd', name: 'img', current_snap: 's', pool_ns: 'ns' }, r));
    const rs = resolveSpec(spec({ snapshot: 's' }));
    assert.ok(sysfsMatches({ pool: 'rbd', name: 'img', current_snap: 's', pool_ns: '' }, rs));
  });
});

describe('nbd and probe arguments', () => {
  test('rbd-nbd map', () => {
    const r = resolveSpec(spec({ namespace: 'ns', snapshot: 's' }, { exclusive: true, name: 'bob' }));
    assert.deepEqual(nbdMapArgs(r, FILES), [
      'map', '-c', FILES.conf, '--id', 'bob', '--keyring', FILES.keyring, '--read-only', '--exclusive', 'rbd/ns/img@s',
    ]);
  });
  test('probe: rbd info bounded by mount_timeout', () => {
    const r = resolveSpec(spec({ snapshot: 's' }, { mount_timeout: 5 }));
    const args = probeArgs(r, '/c', '/l');
    assert.deepEqual(args, [
      '-c', '/c', '--id', 'admin', '--log-file', '/l',
      '--client-mount-timeout', '4', '--rados-mon-op-timeout', '4', '--rados-osd-op-timeout', '4',
      'info', '--pool', 'rbd', '--image', 'img', '--snap', 's', '--format', 'json',
    ]);
    assert.ok(!args.join(' ').includes(KEY));
  });
});

describe('options per path', () => {
  test('userspace paths refuse kernel-only options with the reason', () => {
    for (const o of [{ queue_depth: 4 }, { ip: '1.2.3.4' }, { osdkeepalive: 3 }, { lock_on_read: true }, { force: true }, { alloc_size: 4096 }]) {
      const r = resolveSpec(spec({}, o));
      assert.throws(() => checkOptionsFor('fuse', r.opts), (e: AgentError) => e.kind === 'INVALID' && /krbd|kernel/.test(e.message));
      assert.doesNotThrow(() => checkOptionsFor('krbd', r.opts));
    }
    assert.throws(() => checkOptionsFor('fuse', { exclusive: true }), /exclusive/);
    assert.doesNotThrow(() => checkOptionsFor('nbd', { exclusive: true }));
    assert.doesNotThrow(() =>
      checkOptionsFor('fuse', { ro: true, mount_timeout: 3, name: 'a', secret: KEY, nocrc: true, notrim: true, noshare: true, crc: false, queue_depth: undefined }),
    );
  });
  test('librados settings', () => {
    assert.deepEqual(libradosSettings({ nocrc: true, notcp_nodelay: true, cephx_sign_messages: true, noceph_requires_signatures: true, fsid: 'x' }), {
      fsid: 'x',
      ms_crc_data: 'false',
      cephx_require_signatures: 'false',
      ms_tcp_nodelay: 'false',
      cephx_sign_messages: 'true',
    });
  });
  test('krbd option list is empty for no options', () => {
    assert.deepEqual(krbdOptionList({}), []);
  });
});

describe('spec checks', () => {
  test('bad input is a 400 naming the field', () => {
    assert.equal(kinds(() => resolveSpec(spec({ monitors: [] }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({ monitors: ['a b'] }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({ pool: 'a/b' }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({ image: '..' }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({ image: '-rf' }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({}, { ro: true, rw: true }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({}, { crc: true, nocrc: true }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({ snapshot: 's' }, { rw: true }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({ namespace: 'a' }, { namespace: 'b' }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({}, { mount_timeout: 0 }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({}, { fsid: 'nope' }))), 'INVALID');
    assert.equal(kinds(() => resolveSpec(spec({}, { name: 'a\nb' }))), 'INVALID');
  });
  test('a malformed secret is refused without being echoed', () => {
    const bad = 'not a key\n[client.x]';
    try {
      resolveSpec(spec({}, { secret: bad }));
      assert.fail('accepted');
    } catch (e) {
      assert.ok(e instanceof AgentError && e.kind === 'INVALID');
      assert.ok(!e.message.includes(bad));
    }
  });
  test('defaults: user admin, 10 s, read-write unless ro or a snapshot', () => {
    const r = resolveSpec(spec());
    assert.equal(r.user, 'admin');
    assert.equal(r.timeoutS, 10);
    assert.equal(r.readonly, false);
    assert.equal(resolveSpec(spec({}, { ro: true })).readonly, true);
    assert.equal(resolveSpec(spec({ snapshot: 's' })).readonly, true);
  });
  test('monitors in Ceph syntax', () => {
    assert.equal(normalizeMonitor('127.0.0.1'), '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]');
    assert.equal(normalizeMonitor('127.0.0.1:3300'), '127.0.0.1:3300');
    assert.equal(normalizeMonitor('::1'), '[v2:[::1]:3300,v1:[::1]:6789]');
    assert.equal(normalizeMonitor('[fd00::1]'), '[v2:[fd00::1]:3300,v1:[fd00::1]:6789]');
    assert.equal(normalizeMonitor('[fd00::1]:6789'), '[fd00::1]:6789');
    assert.equal(normalizeMonitor('Mon-A.example'), 'mon-a.example');
    assert.equal(normalizeMonitor('v2:10.1.1.1:3300'), 'v2:10.1.1.1:3300');
  });
});

describe('identity and redaction', () => {
  test('same monitor set, pool, namespace, image, snapshot = same identity', () => {
    const a = rbdIdentity({ monitors: ['10.0.0.1', '10.0.0.2'], pool: 'p', image: 'i' });
    assert.equal(a, rbdIdentity({ monitors: ['10.0.0.2', '10.0.0.1', '10.0.0.1'], pool: 'p', image: 'i', options: { secret: KEY } }));
    assert.notEqual(a, rbdIdentity({ monitors: ['10.0.0.1', '10.0.0.2'], pool: 'p', image: 'i', snapshot: 's' }));
    assert.notEqual(a, rbdIdentity({ monitors: ['10.0.0.1', '10.0.0.2'], pool: 'p', image: 'i', namespace: 'n' }));
    assert.equal(
      rbdIdentity({ monitors: ['m'], pool: 'p', image: 'i', namespace: 'n' }),
      rbdIdentity({ monitors: ['m'], pool: 'p', image: 'i', options: { namespace: 'n' } }),
    );
    assert.notEqual(a, rbdIdentity({ monitors: ['10.0.0.1'], pool: 'p', image: 'i' }));
  });
  test('the declared secret field hides the key, keeps the rest; describe adds the krbd device id', () => {
    const s = spec({}, { name: 'u', ro: true });
    const shown = withoutSecrets(s, new Set(rbdDriver.secretFields));
    assert.equal(shown.options?.secret, '<redacted>');
    assert.equal(shown.options?.name, 'u');
    assert.equal(s.options?.secret, KEY, 'the stored spec is untouched');
    assert.ok(!JSON.stringify(shown).includes(KEY));
    const k = rbdDriver.describe!(s, { device_file: '/dev/rbd4', state: { mode: 'krbd', device_id: 4 } });
    assert.equal(k.device_id, 4);
  });
});

describe('client files', () => {
  test('the conf names the keyring; only the keyring holds the key', () => {
    const r = resolveSpec(spec({ monitors: ['127.0.0.1'] }, { nocrc: true, mount_timeout: 7 }));
    const conf = clientConfText(r, { keyring: '/d/keyring', log: '/d/client.log' });
    assert.ok(!conf.includes(KEY));
    assert.match(conf, /^mon_host = \[v2:127\.0\.0\.1:3300,v1:127\.0\.0\.1:6789\]$/m);
    assert.match(conf, /^keyring = \/d\/keyring$/m);
    assert.match(conf, /^client_mount_timeout = 7$/m);
    assert.match(conf, /^ms_crc_data = false$/m);
    assert.equal(keyringText('admin', KEY), `[client.admin]\n\tkey = ${KEY}\n`);
  });
  test('no secret: no cephx and no host keyring', () => {
    const r = resolveSpec({ monitors: ['127.0.0.1'], pool: 'p', image: 'i' });
    const conf = clientConfText(r, { keyring: undefined, log: '/d/l' });
    assert.match(conf, /^keyring = \/dev\/null$/m);
    assert.match(conf, /^auth_client_required = none$/m);
  });
  test('paths that would break a ceph.conf are refused', () => {
    const r = resolveSpec(spec());
    assert.throws(() => clientConfText(r, { keyring: '/a#b/keyring', log: '/l' }), AgentError);
  });
});

describe('probe failures', () => {
  const r = resolveSpec(spec({ namespace: 'ns' }, { mount_timeout: 3 }));
  const cases: Array<[string, string, boolean, string, RegExp]> = [
    ['wrong key', 'monclient(hunting): handle_auth_bad_method server allowed_methods [2] but i only support [2,1]\nrbd: couldn\'t connect to the cluster!', false, 'INVALID', /authentication failed for client\.admin/],
    ['no such pool', "rbd: error opening pool 'p': (2) No such file or directory", false, 'NOT_FOUND', /pool "rbd"/],
    ['no such namespace', "rbd: namespace 'ns' does not exist.", false, 'NOT_FOUND', /namespace "ns"/],
    ['no such image', 'rbd: error opening image img: (2) No such file or directory', false, 'NOT_FOUND', /image "img"/],
    ['no such snapshot', 'error setting snapshot context: (2) No such file or directory', false, 'NOT_FOUND', /snapshot/],
    ['no caps', 'rbd: error opening image img: (1) Operation not permitted', false, 'INVALID', /not permitted/],
    ['unreachable', 'monclient(hunting): authenticate timed out after 2\nrbd: couldn\'t connect to the cluster!', false, 'TIMEOUT', /could not reach the monitors 10\.0\.0\.1 within 3 s/],
    ['killed at the deadline', 'rbd ...: timed out after 3000 ms', true, 'TIMEOUT', /could not reach/],
  ];
  for (const [name, text, timedOut, kind, msg] of cases) {
    test(name, () => {
      const e = classifyProbeFailure(text, r, timedOut);
      assert.equal(e.kind, kind);
      assert.match(e.message, msg);
    });
  }
});
