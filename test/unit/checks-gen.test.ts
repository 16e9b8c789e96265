// The request checks the agent runs are generated from swagger.yaml at build time
// (scripts/gen-checks.mjs, `npm run gen`): the committed files must be what the spec gives now,
// and a change of the spec must change them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/agent.js';

const GEN = join(ROOT, 'scripts/gen-checks.mjs');

describe('generated request checks', () => {
  it('are what swagger.yaml gives (else: npm run gen, and commit src/api/checks*.gen.ts with the spec)', () => {
    execFileSync(process.execPath, [GEN, '--check'], { stdio: 'pipe' });
  });

  it('change with the spec, and carry its sha256', async () => {
    const { generate } = (await import(pathToFileURL(GEN).href)) as { generate: (t: string) => { main: string; sha: string } };
    const text = readFileSync(join(ROOT, 'swagger.yaml'), 'utf8');
    const now = generate(text);
    assert.match(now.main, new RegExp(`SPEC_SHA256 = '${now.sha}'`));
    const changed = generate(text.replace('enum: [iscsi, local, loopback, rbd]', 'enum: [iscsi, local, loopback, rbd, floppy]'));
    assert.notEqual(changed.sha, now.sha);
    assert.notEqual(changed.main, now.main);
    assert.match(changed.main, /"floppy"/);
  });
});
