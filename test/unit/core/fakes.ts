// In-memory drivers that keep the AttachDriver/MountDriver contracts without a kernel: every call
// is logged in one shared order, any call can be told to fail, adopt can be told what vanished.
// Each definition carries a `name` so the log reads "mount stack:s" rather than opaque ids.
import { stat } from 'node:fs/promises';
import type { AttachDriver } from '../../../src/attach/driver.js';
import { AgentError, type ErrorKind, invalid } from '../../../src/model/errors.js';
import { type Attached, baseMountSlot, type ChildSlot, type Dep, type Mounted, type Resolved } from '../../../src/model/objects.js';
import type { MountAlias, MountDriver } from '../../../src/mount/driver.js';

// `stop` and `teardown` are the container hooks' calls (the harness logs them here too, so one
// log shows the order across layers).
export type Op = 'attach' | 'detach' | 'mount' | 'unmount' | 'adopt' | 'stop' | 'teardown';

export interface Call {
  op: Op;
  kind: string;
  /** The definition's `name` (the test's label for it). */
  name: string;
  spec: Record<string, unknown>;
  deps?: Resolved;
  /** The device (attach side) or mountpoint (mount side) the call is about, when known. */
  target?: string;
}

export interface FailRule {
  op: Op;
  /** Only calls about this name (any name if absent). */
  name?: string;
  /** Only the nth matching call, 1-based (the first if absent). */
  nth?: number;
  kind?: ErrorKind;
  message?: string;
}

type Spec = Record<string, unknown>;
const nameOf = (spec: Spec) => String(spec.name ?? '?');

/** The shared state of all fake drivers of one test: the call log, failures, what vanished. */
export class FakeWorld {
  readonly calls: Call[] = [];
  /** Devices attached and mountpoints mounted right now (what a real kernel would hold). */
  readonly live = new Set<string>();
  /** Names whose adopt returns null (the object vanished while the agent was down). */
  readonly vanished = new Set<string>();
  /** Names whose adopt throws (a transient fault, not a disappearance). */
  readonly adoptThrows = new Set<string>();
  private readonly rules: Array<FailRule & { seen: number; spent: boolean }> = [];
  private readonly gates: Array<{ op: Op; name?: string; reached: () => void; opened: Promise<void> }> = [];
  private serial = 0;
  /** Milliseconds each call waits before doing anything (0: no await at all). */
  delay: () => number = () => 0;

  failAt(rule: FailRule): void {
    this.rules.push({ ...rule, seen: 0, spent: false });
  }

  /**
   * Hold the next matching call until `release()`: `reached` resolves once it is waiting. Tests
   * use it to put a second request exactly in the middle of a first one.
   */
  gate(op: Op, name?: string): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const r = new Promise<void>((res) => (reached = res));
    const opened = new Promise<void>((res) => (release = res));
    this.gates.push({ op, ...(name !== undefined ? { name } : {}), reached, opened });
    return { reached: r, release };
  }

  /** The log as short lines: "attach disk:a", "unmount stack:s". */
  lines(ops?: readonly Op[]): string[] {
    return this.calls.filter((c) => !ops || ops.includes(c.op)).map((c) => `${c.op} ${c.kind}:${c.name}`);
  }

  reset(): void {
    this.calls.length = 0;
  }

  async enter(call: Call): Promise<void> {
    const ms = this.delay();
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    this.calls.push(call);
    const g = this.gates.findIndex((x) => x.op === call.op && (x.name === undefined || x.name === call.name));
    if (g >= 0) {
      const [gate] = this.gates.splice(g, 1);
      gate!.reached();
      await gate!.opened;
    }
    for (const r of this.rules) {
      if (r.spent || r.op !== call.op || (r.name !== undefined && r.name !== call.name)) continue;
      r.seen++;
      if (r.seen < (r.nth ?? 1)) continue;
      r.spent = true;
      throw new AgentError(r.kind ?? 'INTERNAL', r.message ?? `${call.kind} ${call.name}: ${call.op} failed as told`);
    }
  }

  nextDevice(): string {
    return `/dev/fake${this.serial++}`;
  }
}

function depsOk(slots: ChildSlot[], deps: Resolved): void {
  for (const s of slots) {
    const d = deps[s.field];
    const list = s.many ? (d as Dep[]) : [d as Dep];
    if (!d || list.some((x) => !x || x.type !== s.type)) throw new Error(`fake: slot ${s.field} not resolved to ${s.type}`);
  }
}

function fakeAttach(world: FakeWorld, kind: string, children: (spec: Spec) => ChildSlot[], secretFields?: string[]): AttachDriver<Spec> {
  return {
    kind,
    ...(secretFields ? { secretFields } : {}),
    children,
    async attach(spec, deps) {
      depsOk(children(spec), deps);
      const device_file = world.nextDevice();
      await world.enter({ op: 'attach', kind, name: nameOf(spec), spec, deps, target: device_file });
      world.live.add(device_file);
      return { device_file, readonly: spec.readonly === true, state: { name: nameOf(spec) } };
    },
    async detach(spec, attached) {
      await world.enter({ op: 'detach', kind, name: nameOf(spec), spec, target: attached.device_file });
      world.live.delete(attached.device_file); // idempotent: gone already is fine
    },
    async adopt(spec, attached): Promise<Attached | null> {
      await world.enter({ op: 'adopt', kind, name: nameOf(spec), spec, target: attached.device_file });
      if (world.adoptThrows.has(nameOf(spec))) throw new AgentError('TIMEOUT', `${kind} ${nameOf(spec)}: cannot tell`);
      if (world.vanished.has(nameOf(spec))) return null;
      world.live.add(attached.device_file);
      return { ...attached, state: { ...attached.state, adopted: true } };
    },
  };
}

function fakeMount(world: FakeWorld, kind: string, children: (spec: Spec) => ChildSlot[], secretFields?: string[]): MountDriver<Spec> {
  return {
    kind,
    ...(secretFields ? { secretFields } : {}),
    children,
    async mount(spec, deps, mountpoint): Promise<Mounted> {
      depsOk(children(spec), deps);
      await world.enter({ op: 'mount', kind, name: nameOf(spec), spec, deps, target: mountpoint });
      // The core promised an empty directory; a real mount(8) would fail without one.
      if (!(await stat(mountpoint)).isDirectory()) throw new Error(`fake: ${mountpoint} is not a directory`);
      if (kind === 'stack' && !(deps.lower as Dep[]).length) throw invalid('stack.lower: at least one lower mount is needed');
      world.live.add(mountpoint);
      return { mountpoint, state: { name: nameOf(spec) }, ...(kind === 'stack' ? { shown: { upperdir: `${mountpoint}.upper` } } : {}) };
    },
    async unmount(spec, mounted) {
      await world.enter({ op: 'unmount', kind, name: nameOf(spec), spec, target: mounted.mountpoint });
      world.live.delete(mounted.mountpoint);
    },
    async adopt(spec, mounted) {
      await world.enter({ op: 'adopt', kind, name: nameOf(spec), spec, target: mounted.mountpoint });
      if (world.adoptThrows.has(nameOf(spec))) throw new AgentError('TIMEOUT', `${kind} ${nameOf(spec)}: cannot tell`);
      if (world.vanished.has(nameOf(spec))) return null;
      world.live.add(mounted.mountpoint);
      return mounted;
    },
  };
}

/** A child slot present only with `base: "mount"`, the rule loopback and bind share. */
const optionalMountChild = (kind: string) => (spec: Spec) => baseMountSlot(spec as { base?: string; mount?: unknown }, kind);

/**
 * The fake kinds:
 * - attach `disk` {name, secret?}: no children, `secret` is a key;
 * - attach `file` {name, base?, mount?}: an optional mount child (like loopback);
 * - mount `tmp` {name, password?}: no children, `password` is a key;
 * - mount `fs` {name, attach}: one attachment (like the attach mount);
 * - mount `stack` {name, lower: [...]}: a `many` slot of mounts (like overlay);
 * - mount `sub` {name, base?, mount?}: an optional mount child (like bind);
 * - alias `diskfs` {name, disk: {...}} = fs over a disk defined in place (like v0.1's rbd mount).
 */
export function fakeDrivers(world: FakeWorld) {
  const none = () => [];
  const attach = {
    disk: fakeAttach(world, 'disk', none, ['secret']),
    file: fakeAttach(world, 'file', optionalMountChild('file')),
  };
  const mount = {
    tmp: fakeMount(world, 'tmp', none, ['password']),
    fs: fakeMount(world, 'fs', () => [{ field: 'attach', type: 'attach' }]),
    stack: fakeMount(world, 'stack', () => [{ field: 'lower', type: 'mount', many: true }]),
    sub: fakeMount(world, 'sub', optionalMountChild('sub')),
  };
  const diskfs: MountAlias = {
    kind: 'diskfs',
    of: 'fs',
    expand: (spec) => ({ name: spec.name, attach: spec.disk ? { kind: 'disk', disk: spec.disk } : { kind: 'disk', id: spec.id ?? 0 } }),
  };
  return { attach, mount, mountAliases: { diskfs } };
}
