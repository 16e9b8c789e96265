// The one catalogue of error kinds. Every failure the API reports is an ApiError of one of these
// kinds; the HTTP layer maps kind -> status and renders {code, message}.

export const ErrorKinds = {
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  TOO_LARGE: 413,
  UNSUPPORTED_MEDIA: 415,
  UNPROCESSABLE: 422,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
} as const;

export type ErrorKind = keyof typeof ErrorKinds;

export class ApiError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = 'ApiError';
  }
  get status(): number {
    return ErrorKinds[this.kind];
  }
  /** Prefix the message with where it happened (used to name the failing level of a nested spec). */
  within(where: string): ApiError {
    const e = new ApiError(this.kind, `${where}: ${this.message}`, { cause: this.cause });
    return e;
  }
}

export const badRequest = (msg: string) => new ApiError('BAD_REQUEST', msg);
export const notFound = (msg: string) => new ApiError('NOT_FOUND', msg);
export const conflict = (msg: string) => new ApiError('CONFLICT', msg);
export const notImplemented = (msg: string) => new ApiError('NOT_IMPLEMENTED', msg);
export const internal = (msg: string, cause?: unknown) => new ApiError('INTERNAL', msg, { cause });

/** Turn anything thrown into an ApiError; unknown errors are genuine faults (500) but keep their message. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new ApiError('INTERNAL', msg, { cause: err });
}

/** Map an errno-style Node error from a user-supplied path to a user-facing error. */
export function fromFsError(err: unknown, what: string): ApiError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return badRequest(`${what}: no such file or directory`);
    case 'ENOTDIR':
      return badRequest(`${what}: not a directory`);
    case 'EACCES':
    case 'EPERM':
      return badRequest(`${what}: permission denied`);
    case 'ELOOP':
      return badRequest(`${what}: too many levels of symbolic links`);
    default:
      return toApiError(err);
  }
}
