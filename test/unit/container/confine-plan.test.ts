// planContainer's confinement and limits (no root, no kernel): the capability sets, privileged,
// what systemd gets, user namespaces and their maps, limits and their refusals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_CAPS, DEFAULT_CAPS, planContainer, poolMap, SYSTEMD_CAPS, USERNS_POOL_START } from '../../../src/container/spec.js';
import type { ContainerSpec } from '../../../src/model/types.js';

const plan = (extra: Partial<ContainerSpec>) => planContainer({ mount: { id: 0 }, command: '/bin/true', ...extra } as ContainerSpec);
const inOrder = (names: string[]) => ALL_CAPS.filter((c) => names.includes(c));

describe('planContainer: confinement', () => {
  it('defaults: the OCI set, no_new_privs, the seccomp filter, masked paths, root in /', () => {
    const c = plan({}).confine;
    assert.deepEqual(c.caps, inOrder(DEFAULT_CAPS));
    assert.equal(c.caps.length, 14);
    assert.deepEqual([c.privileged, c.no_new_privs, c.seccomp, c.mask_paths, c.working_dir, c.user], [false, true, 'default', true, '/', undefined]);
  });

  it('cap_add and cap_drop, with or without CAP_, ALL; unknown names refused', () => {
    assert.deepEqual(plan({ cap_add: ['CAP_NET_ADMIN'], cap_drop: ['CHOWN', 'CAP_KILL'] }).confine.caps, inOrder([...DEFAULT_CAPS.filter((n) => n !== 'CHOWN' && n !== 'KILL'), 'NET_ADMIN']));
    assert.deepEqual(plan({ cap_drop: ['ALL'], cap_add: ['KILL'] }).confine.caps, [], 'drop comes after add');
    assert.deepEqual(plan({ cap_add: ['ALL'] }).confine.caps, [...ALL_CAPS]);
    assert.throws(() => plan({ cap_add: ['NOPE'] }), /cap_add: unknown capability "NOPE"/);
  });

  it('privileged: every capability, nothing else; not with cap_add or seccomp', () => {
    const c = plan({ privileged: true }).confine;
    assert.deepEqual([c.caps, c.no_new_privs, c.seccomp, c.mask_paths], [[...ALL_CAPS], false, 'unconfined', false]);
    assert.throws(() => plan({ privileged: true, cap_add: ['KILL'] }), /privileged: cannot be combined/);
    assert.throws(() => plan({ privileged: true, seccomp: 'default' }), /privileged: cannot be combined/);
  });

  it('systemd: what systemd needs (nspawn\'s set without SYS_BOOT), NET_ADMIN with a net namespace', () => {
    assert.deepEqual(plan({ systemd: true }).confine.caps, inOrder(SYSTEMD_CAPS));
    assert.ok(!plan({ systemd: true }).confine.caps.includes('SYS_BOOT'));
    assert.ok(plan({ systemd: true, namespaces: ['mnt', 'net'] }).confine.caps.includes('NET_ADMIN'));
    assert.ok(!plan({ systemd: true }).confine.caps.includes('NET_ADMIN'));
  });

  it('user: UID or UID:GID', () => {
    assert.deepEqual(plan({ user: '1000:100' }).confine.user, { uid: 1000, gid: 100 });
    assert.deepEqual(plan({ user: '7' }).confine.user, { uid: 7, gid: 0 });
    assert.throws(() => plan({ user: '4294967295' }), /ids go up to 4294967294/);
  });

  it('an argv command is taken as it is', () => {
    assert.deepEqual(plan({ command: ['/bin/sh', '-c', 'a b'] }).argv, ['/bin/sh', '-c', 'a b']);
    assert.throws(() => plan({ command: [''] }), /first word/);
  });
});

describe('planContainer: user namespaces', () => {
  it('adds pid and ipc; an automatic range unless maps are given', () => {
    const p = plan({ namespaces: ['mnt', 'user'] });
    assert.deepEqual(p.namespaces, ['mnt', 'user', 'pid', 'ipc']);
    assert.equal(p.autoUserns, true);
    assert.deepEqual(poolMap(2), [{ container_id: 0, host_id: USERNS_POOL_START + 2 * 65536, size: 65536 }]);
    const m = plan({ namespaces: ['mnt', 'user'], uid_map: [{ container_id: 0, host_id: 100000, size: 65536 }] });
    assert.equal(m.autoUserns, false);
    assert.deepEqual(m.confine.gid_map, m.confine.uid_map, 'gid_map defaults to uid_map');
  });

  it('refuses maps to host root, maps without the user namespace, a root left unmapped, an unmapped user', () => {
    assert.throws(() => plan({ namespaces: ['mnt', 'user'], uid_map: [{ container_id: 0, host_id: 0, size: 1 }] }), /host's root/);
    assert.throws(() => plan({ uid_map: [{ container_id: 0, host_id: 100000, size: 1 }] }), /need the "user" namespace/);
    assert.throws(() => plan({ namespaces: ['mnt', 'user'], uid_map: [{ container_id: 1, host_id: 100000, size: 1 }] }), /container's id 0/);
    assert.throws(() => plan({ namespaces: ['mnt', 'user'], user: '5000', uid_map: [{ container_id: 0, host_id: 100000, size: 100 }] }), /not mapped/);
    assert.throws(() => plan({ namespaces: ['mnt', 'user'], user: '70000' }), /outside the automatic range/);
  });
});

describe('planContainer: limits', () => {
  it('memory (swap 0 by default), pids, cpu (period 100000 by default), io', () => {
    assert.deepEqual(plan({ memory: { max: 1 << 30 }, pids: { max: 5 }, cpu: { quota: 50000 }, io: { weight: 10 } }).limits, {
      memory: { max: 1 << 30, swap: 0 },
      pids: { max: 5 },
      cpu: { quota: 50000, period: 100000 },
      io: { weight: 10 },
    });
    assert.deepEqual(plan({}).limits, {});
  });

  it('refuses a swap or a period alone', () => {
    assert.throws(() => plan({ memory: { swap: 1 } }), /memory.swap: needs memory.max/);
    assert.throws(() => plan({ cpu: { period: 20000 } }), /cpu.period: needs cpu.quota/);
    assert.throws(() => plan({ cpu: { weight: 5, period: 20000 } }), /cpu.period: needs cpu.quota/);
  });
});
