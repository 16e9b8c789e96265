// Loading swagger.yaml (when its document is asked for: /swagger.json, /docs, tests); checking it
// is a valid OpenAPI 3.0 document (the tests do, in CI).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** swagger.yaml at the package root (src/api → ../../, dist/src/api → ../../../). */
export function specPath(): string {
  for (const rel of ['../../swagger.yaml', '../../../swagger.yaml']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    try {
      readFileSync(p);
      return p;
    } catch {
      /* try the next */
    }
  }
  throw new Error('swagger.yaml not found beside the package');
}

export interface LoadedSpec {
  text: string;
  doc: Record<string, unknown>;
}

export function loadSpec(): LoadedSpec {
  const text = readFileSync(specPath(), 'utf8');
  // The document is checked against the OpenAPI schema by the tests (test/unit/spec.test.ts),
  // not at every start: that check alone took 0.3 s of the agent's start-up.
  // YAML is parsed only here: the agent's start needs none of it (validate.ts has the checks).
  const { parse } = require('yaml') as typeof import('yaml');
  return { text, doc: parse(text) as Record<string, unknown> };
}

/** Validate the document against the OpenAPI 3.0 schema: a broken spec fails here, at start-up. */
export function checkSpec(doc: Record<string, unknown>): void {
  const Ajv = require('ajv-draft-04') as new (o: object) => { compile: (s: object) => ((d: unknown) => boolean) & { errors?: unknown[] } };
  const schema = require('express-openapi-validator/dist/framework/openapi.v3.schema.json') as object;
  const validate = new Ajv({ strict: false, allErrors: true, logger: false }).compile(schema);
  if (!validate(doc)) {
    throw new Error(`swagger.yaml is not a valid OpenAPI 3.0 document: ${JSON.stringify(validate.errors?.slice(0, 5))}`);
  }
}
