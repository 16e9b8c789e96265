// The one catalogue of error kinds, named by what went wrong (as containerd's errdefs), not by
// transport. Every failure the agent reports is an AgentError of one of these kinds; only api/
// maps a kind to an HTTP status.

export const ERROR_KINDS = [
  'INVALID', // the request is wrong (a field, a path, a command, a filesystem that does not fit)
  'NOT_FOUND', // no such object
  'ALREADY_EXISTS', // a name or an image already taken
  'IN_USE', // other objects still use it
  'FAILED_PRECONDITION', // not in a state that allows this (a stopping container, say)
  'UNSUPPORTED', // a kind this build or kernel cannot do
  'TIMEOUT', // a tool or a peer did not answer in time
  'UPSTREAM', // a server the agent fetches from answered wrongly (an image server's 404 or 5xx, a bad checksum)
  'INSUFFICIENT_STORAGE', // the run-dir (or another filesystem the agent writes to) is full
  'INTERNAL', // a genuine fault of the node or the agent
] as const;

export type ErrorKind = (typeof ERROR_KINDS)[number];

export class AgentError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = 'AgentError';
  }
  /** Prefix the message with where it happened (used to name the failing level of a nested spec). */
  within(where: string): AgentError {
    return new AgentError(this.kind, `${where}: ${this.message}`, { cause: this.cause });
  }
  /** The same message under another kind (a caller that knows what a tool's failure means). */
  as(kind: ErrorKind): AgentError {
    return new AgentError(kind, this.message, { cause: this.cause });
  }
}

export const invalid = (msg: string) => new AgentError('INVALID', msg);
export const notFound = (msg: string) => new AgentError('NOT_FOUND', msg);
export const alreadyExists = (msg: string) => new AgentError('ALREADY_EXISTS', msg);
export const inUse = (msg: string) => new AgentError('IN_USE', msg);
export const wrongState = (msg: string) => new AgentError('FAILED_PRECONDITION', msg);
export const unsupported = (msg: string) => new AgentError('UNSUPPORTED', msg);
export const internal = (msg: string, cause?: unknown) => new AgentError('INTERNAL', msg, { cause });
export const upstream = (msg: string, cause?: unknown) => new AgentError('UPSTREAM', msg, { cause });
export const timeout = (msg: string, cause?: unknown) => new AgentError('TIMEOUT', msg, { cause });
export const noSpace = (msg: string, cause?: unknown) => new AgentError('INSUFFICIENT_STORAGE', msg, { cause });

/** A full filesystem (or quota): the request could not be recorded, nothing is wrong with it. */
export const isNoSpace = (err: unknown) => ['ENOSPC', 'EDQUOT'].includes((err as NodeJS.ErrnoException | undefined)?.code ?? '');

/** Turn anything thrown into an AgentError; unknown errors are genuine faults but keep their message. */
export function toAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new AgentError(isNoSpace(err) ? 'INSUFFICIENT_STORAGE' : 'INTERNAL', msg, { cause: err });
}

/** Map an errno-style Node error from a user-supplied path to what it means for the request. */
export function fromFsError(err: unknown, what: string): AgentError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return invalid(`${what}: no such file or directory`);
    case 'ENOTDIR':
      return invalid(`${what}: not a directory`);
    case 'EACCES':
    case 'EPERM':
      return invalid(`${what}: permission denied`);
    case 'ELOOP':
      return invalid(`${what}: too many levels of symbolic links`);
    default:
      return toAgentError(err);
  }
}
