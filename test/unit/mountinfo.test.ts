import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeError } from '../../src/api/errors.js';
import { AgentError } from '../../src/model/errors.js';
import { parseMountinfo } from '../../src/sys/mountinfo.js';

describe('mountinfo parsing', () => {
  it('reads targets, types and sources, with octal escapes', () => {
    const text =
      '36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n' +
      '40 36 0:33 / /run/x rw shared:2 - overlay overlay rw,lowerdir=a:b\n';
    const m = parseMountinfo(text);
    assert.equal(m.length, 2);
    assert.equal(m[0]!.target, '/mnt with space');
    assert.equal(m[0]!.fstype, 'ext3');
    assert.equal(m[1]!.source, 'overlay');
    assert.equal(m[1]!.parent, 36);
  });
});

describe('error rendering', () => {
  it('maps kinds to statuses and names validator fields', () => {
    assert.deepEqual(describeError(new AgentError('IN_USE', 'in use')), { status: 409, message: 'in use' });
    const v = describeError({ status: 400, errors: [{ path: '/body/overlay/lower/0/id', message: 'must be integer' }] });
    assert.deepEqual(v, { status: 400, message: 'body.overlay.lower[0].id: must be integer' });
    assert.equal(describeError({ type: 'entity.parse.failed', message: 'x' }).status, 400);
    assert.equal(describeError(new Error('boom')).status, 500);
  });
});
