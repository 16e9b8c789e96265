// The README's "Walkthrough with curl", run as written: its ```sh blocks, in order, in one bash,
// against an agent on a free port with a temp run-dir. Only the two assignments that say where
// things are (BASE=, IMAGES=) are left out: the test sets them. Every `# → …` line is checked
// against what the commands since the previous one printed (`…` stands for anything; the other
// pieces must appear in that order).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, TestAgent } from '../helpers/agent.js';
import { forceCleanup, loopsOver, mountsUnder } from '../helpers/leaks.js';

const MARK = '@@walkthrough-step@@';
const SET_BY_TEST = /^(BASE|IMAGES)=/;

interface Walkthrough {
  script: string;
  expectations: string[];
  assigned: string[];
}

/** The walkthrough's shell blocks → one script with a marker after each `# →` line. */
export function walkthrough(readme: string): Walkthrough {
  const start = readme.indexOf('## Walkthrough with curl');
  assert.ok(start >= 0, 'README has a "Walkthrough with curl" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const blocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  const lines = ['set -euo pipefail', 'exec 2>&1'];
  const expectations: string[] = [];
  const assigned: string[] = [];
  for (const block of blocks) {
    for (const line of block.split('\n')) {
      if (SET_BY_TEST.test(line)) {
        assigned.push(line.split('=')[0]!);
        continue;
      }
      lines.push(line);
      const m = /^# → (.*)$/.exec(line);
      if (m) {
        expectations.push(m[1]!);
        lines.push(`echo; echo '${MARK}'`);
      }
    }
  }
  return { script: lines.join('\n') + '\n', expectations, assigned };
}

/** `…` is anything; the other pieces appear in order. */
export function matches(output: string, expected: string): boolean {
  let at = 0;
  for (const piece of expected.split('…').map((p) => p.trim()).filter(Boolean)) {
    const i = output.indexOf(piece, at);
    if (i < 0) return false;
    at = i + piece.length;
  }
  return true;
}

describe('the README walkthrough, run as written', { timeout: 300_000 }, () => {
  let agent: TestAgent;
  const runDir = TestAgent.newRunDir();
  const work = mkdtempSync(join(tmpdir(), 'imageapi-walk-'));
  const images = join(work, 'images'); // not made yet: the walkthrough makes it

  before(async () => {
    agent = await new TestAgent(runDir).start();
  });
  after(async () => {
    await agent?.stop();
    forceCleanup(runDir, work);
    rmSync(work, { recursive: true, force: true });
  });

  it('the matcher is strict about what it checks', () => {
    assert.ok(matches('{"id":0,"kind":"loopback","refs":1}', '{"id":0,…"refs":1}'));
    assert.ok(!matches('{"id":1,"kind":"loopback","refs":1}', '{"id":0,…"refs":1}'));
    assert.ok(!matches('{"refs":1,"id":0}', '{"id":0…"refs":1'), 'in order');
    const w = walkthrough('## Walkthrough with curl\n```sh\nBASE=x\necho hi\n# → hi\n```\n## Next\n```sh\necho never\n```\n');
    assert.deepEqual(w.assigned, ['BASE']);
    assert.deepEqual(w.expectations, ['hi']);
    assert.doesNotMatch(w.script, /never|BASE=x/);
  });

  it('every command works and every answer is the one shown', () => {
    const w = walkthrough(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    assert.deepEqual(w.assigned.sort(), ['BASE', 'IMAGES'], 'the walkthrough says where the agent and the images are, once each');
    assert.ok(w.expectations.length >= 15, `answers shown: ${w.expectations.length}`);
    assert.doesNotMatch(w.script, /localhost:\d+|127\.0\.0\.1:\d+/, 'no hard-coded agent address outside BASE=');
    const r = spawnSync('bash', ['-c', w.script], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, BASE: `${agent.url}/imageapi/v1`, IMAGES: images },
    });
    const steps = r.stdout.split(`${MARK}\n`);
    const report = () => `script exit ${r.status}${r.signal ? ` (${r.signal})` : ''}; output:\n${r.stdout}${r.stderr}\nagent:\n${agent.output.slice(-3000)}`;
    for (const [i, want] of w.expectations.entries()) {
      const got = steps[i];
      assert.ok(got !== undefined, `step ${i + 1} (# → ${want}) never ran\n${report()}`);
      assert.ok(matches(got, want), `step ${i + 1}: expected\n  ${want}\ngot\n  ${got.trim()}\n\n${report()}`);
    }
    assert.equal(r.status, 0, report());
    assert.equal(steps.length, w.expectations.length + 1, 'every step was checked');
    // The walkthrough ends with everything deleted.
    assert.deepEqual(mountsUnder(runDir), []);
    assert.deepEqual(loopsOver(images), []);
  });
});
