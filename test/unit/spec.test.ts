import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkSpec, loadSpec } from '../../src/api/spec.js';

describe('swagger.yaml', () => {
  it('is a valid OpenAPI 3.0 document with both API generations', () => {
    const { doc } = loadSpec();
    const paths = Object.keys(doc.paths as object);
    for (const p of ['/attach', '/mount', '/container', '/container/log', '/attach/rbd', '/attach/rbd/{id}', '/mount/rbd', '/mount/rbd/{id}', '/mount/overlay', '/mount/overlay/{id}', '/container/{id}', '/container/{id}/{state}', '/container/byname/{name}', '/container/byname/{name}/{state}']) {
      assert.ok(paths.includes(p), p);
    }
  });
  it('is valid, and a broken document is refused (CI checks the spec before anything serves it)', () => {
    const { doc } = loadSpec();
    checkSpec(doc);
    assert.throws(() => checkSpec({ ...doc, paths: { '/x': { get: { responses: 'nope' } } } }), /not a valid OpenAPI/);
    assert.throws(() => checkSpec({ ...doc, openapi: undefined }), /not a valid OpenAPI/);
  });
  it('fixes upstream\'s name pattern (it allowed only the digits 0 and 1)', () => {
    const { doc } = loadSpec();
    const re = new RegExp((doc as any).components.schemas.object_name.pattern);
    assert.ok(re.test('node-27.image_v9'));
    assert.ok(!re.test('a b') && !re.test('') && !re.test('x'.repeat(65)));
  });
});
