// The network guard: processes of the agent's containers may not connect to the agent's TCP
// listeners. Containers keep the host's network by default (no `net` namespace, as upstream:
// system images need it), and whoever reaches a listener is root on the node, so an nftables
// rule in the host's network namespace refuses connections from the agent's cgroup-v2 group
// (`imageapi-<hash>`, every container's parent) to the agent's listen addresses and ports.
//
// Why nftables and not a cgroup connect4/connect6 BPF program: the same kernel facility (a
// socket's cgroup-v2 membership) without a loader of our own (node cannot call bpf(2)); the
// cost is one rule set per agent, refreshed only when the parent group is made anew, not a
// program attach per container. nft resolves `socket cgroupv2` paths under /sys/fs/cgroup, which
// on a hybrid host is not the v2 hierarchy: it then runs in a private mount namespace where
// cgroup2 is mounted there. The rule holds the group's id, so it is refreshed whenever the
// group's id changes (the group goes when its last container goes).
import { stat } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { unsupported } from '../model/errors.js';
import { cgroupLayout, groupName } from './cgroups.js';
import { run } from './exec.js';

const NFT_TIMEOUT_MS = 10_000;

/** A TCP listener of the agent, as the server reports it (`server.address()`). */
export interface Listener {
  address: string;
  port: number;
}

/** The nftables ruleset (one `nft -f` transaction: the table is replaced atomically). */
export function guardRuleset(table: string, group: string, listeners: readonly Listener[]): string {
  const rules: string[] = [];
  for (const l of listeners) {
    const port = `tcp dport ${l.port}`;
    const match = `socket cgroupv2 level 1 "${group}"`;
    const refuse = 'counter reject with tcp reset';
    if (l.address === '0.0.0.0' || l.address === '::') {
      // A wildcard listener answers on every local address (and `::` on IPv4 ones too).
      rules.push(`${match} fib daddr type local ${port} ${refuse}`);
      if (l.address === '::') rules.push(`${match} meta nfproto ipv4 fib daddr type local ${port} ${refuse}`);
    } else if (isIPv4(l.address)) {
      rules.push(`${match} ip daddr ${l.address} ${port} ${refuse}`);
    } else if (isIPv6(l.address)) {
      rules.push(`${match} ip6 daddr ${l.address} ${port} ${refuse}`);
      const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(l.address)?.[1];
      if (v4) rules.push(`${match} ip daddr ${v4} ${port} ${refuse}`);
    }
  }
  return [
    `table inet ${table} {}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    '  chain to_agent {',
    '    type filter hook output priority -10; policy accept;',
    ...rules.map((r) => `    ${r}`),
    '  }',
    '}',
    '',
  ].join('\n');
}

export class NetGuard {
  readonly table: string;
  readonly group: string;
  private listeners: Listener[] = [];
  /** The cgroup id (inode of the group's directory) the installed rule names; null: none installed. */
  private installedFor: bigint | null = null;
  /** Time spent installing rules (ms), for the measurement in the README. */
  readonly timings: number[] = [];

  constructor(
    runDir: string,
    private readonly log: Logger,
    readonly enabled = true,
  ) {
    this.group = groupName(runDir);
    this.table = this.group.replace(/-/g, '_');
  }

  /** The v2 directory of the agent's group, or null on a host without cgroup v2. */
  private async groupDir(): Promise<string | null> {
    const l = await cgroupLayout();
    return l.v2 ? join(l.v2, this.group) : null;
  }

  /** The agent's TCP listeners, once they listen (ports may be chosen by the kernel). */
  async setListeners(listeners: Listener[]): Promise<void> {
    this.listeners = listeners;
    this.installedFor = null;
    const dir = await this.groupDir();
    if (!this.enabled || !dir) return;
    // Containers that outlived a restart are already in the group: guard them with the new ports.
    const st = await stat(dir, { bigint: true }).catch(() => null);
    if (!st) return this.close(); // no container: a table left by an agent killed earlier goes
    // A guard that cannot be installed must not keep the agent from starting: the next start of
    // a container tries again and fails, naming why.
    await this.install(st.ino).catch((err) => this.log.error({ err }, 'network guard not installed: containers running now can reach the agent'));
  }

  /**
   * Before a container's first process starts (its cgroup exists): make sure the rule names the
   * current id of the parent group. Almost always a stat; an `nft` run when the group is new.
   */
  async protect(): Promise<void> {
    if (!this.enabled || this.listeners.length === 0) return;
    const dir = await this.groupDir();
    if (!dir) throw unsupported('the network guard needs cgroup v2 (a pure v2 or hybrid host); set guard_containers: false to run containers unguarded');
    const st = await stat(dir, { bigint: true });
    if (st.ino !== this.installedFor) await this.install(st.ino);
  }

  /** On agent shutdown: the rule stays while containers run (they outlive the agent); else it goes. */
  async close(): Promise<void> {
    if (!this.enabled) return;
    const dir = await this.groupDir();
    if (dir && (await stat(dir).then(() => true, () => false))) return;
    await run('nft', ['delete', 'table', 'inet', this.table], { timeoutMs: NFT_TIMEOUT_MS }).catch(() => {}); // none installed
  }

  private async install(id: bigint): Promise<void> {
    const started = process.hrtime.bigint();
    const ruleset = guardRuleset(this.table, this.group, this.listeners);
    const l = await cgroupLayout();
    try {
      if (l.mode === 'v2') await run('nft', ['-f', '-'], { input: ruleset, timeoutMs: NFT_TIMEOUT_MS });
      else {
        // nft looks group paths up under /sys/fs/cgroup: show it the v2 hierarchy there, privately.
        await run('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec nft -f -'], {
          input: ruleset,
          timeoutMs: NFT_TIMEOUT_MS,
        });
      }
    } catch (err) {
      const msg = (err as Error).message;
      if (/ENOENT|not found|No such file/.test(msg) && !/cgroupv2/.test(msg)) {
        throw unsupported('the network guard needs nftables (`nft`, Debian package nftables); set guard_containers: false to run containers unguarded');
      }
      throw err;
    }
    this.installedFor = id;
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    this.timings.push(ms);
    this.log.info({ table: `inet ${this.table}`, group: this.group, listeners: this.listeners.map((x) => `${x.address}:${x.port}`), ms: Math.round(ms * 10) / 10 }, 'network guard installed: containers cannot connect to the agent');
  }
}
