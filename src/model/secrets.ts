// Keys (RBD's `secret`, iSCSI's `chap_secret`) never reach an answer, a log line, an error message
// or state.json. Drivers declare which of their spec fields hold keys; these helpers hide them.

export const REDACTED = '<redacted>';

/** A copy of `value` with every field named in `fields` (at any depth) replaced by REDACTED. */
export function withoutSecrets<T>(value: T, fields: ReadonlySet<string>): T {
  if (Array.isArray(value)) return value.map((v) => withoutSecrets(v, fields)) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = fields.has(k) && v !== undefined ? REDACTED : withoutSecrets(v, fields);
  return out as T;
}

/** `text` with every occurrence of each secret replaced (command lines, a tool's stderr). */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join(REDACTED);
  return out;
}
