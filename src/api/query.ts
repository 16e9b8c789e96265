// Reading validated query and path parameters (the validator has checked their types).
import type { Request } from 'express';

export function intParam(v: unknown): number | undefined {
  if (v === undefined || v === '') return undefined;
  return Number(v);
}

export function boolParam(v: unknown): boolean {
  return v === true || v === 'true' || v === '1';
}

export function q(req: Request) {
  const query = req.query as Record<string, unknown>;
  return {
    id: intParam(query.id),
    name: query.name as string | undefined,
    kind: query.kind as string | undefined,
    state: query.state as string | undefined,
    force: boolParam(query.force),
  };
}
