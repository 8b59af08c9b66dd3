// One registry of process exit codes for every `locksync` subcommand, and one way to end a
// command on a failure: a single line `error CODE: what happened — what to do` on stderr,
// the code's exit status, and no stack trace for anything a user can cause. A stack trace is
// printed only for an internal error (a bug), and only with LOCKSYNC_DEBUG=1.
//
// The README's exit-code table is this table; test/failure-paths/ exercises every row.

export const EXIT_CODES = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  LOCK_NOT_FOUND: 3,
  LINK_LOST: 4,
  REFUSED_BY_LOCK: 5,
  AUTHORITY_UNREACHABLE: 6,
  NOTHING_TO_DELIVER: 7,
  PROTOCOL_VIOLATION: 8,
  TIMEOUT: 9,
  TRANSPORT_UNAVAILABLE: 10,
  UNLOCK_REFUSED: 11,
  /** The authority refused the request's credentials (HTTP 401/403). */
  AUTHORITY_AUTH_REFUSED: 12,
  /** The authority answered a permanent refusal other than authentication (HTTP 404, 409, 4xx). */
  AUTHORITY_REFUSED: 13,
  /** The lock committed the update but its receipt is only queued, not yet at the authority. */
  RECEIPT_QUEUED: 14,
  /** A state directory, radio directory or port is owned by another live process. */
  IN_USE: 15,
  /** A file or state directory is missing, malformed or corrupt (bundle, flash image, credential). */
  BAD_STATE: 16,
  /** A long-running command's transport died under it (the radio went away). */
  TRANSPORT_LOST: 17,
  /** A scenario ran to the end and at least one of its expectations did not hold. */
  EXPECTATION_FAILED: 18,
} as const;

export type ExitCodeName = keyof typeof EXIT_CODES;

/** A failure the user can act on. `what` says what happened; `todo` what to do about it. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: ExitCodeName,
    readonly what: string,
    readonly todo: string,
  ) {
    super(`${code}: ${what}`);
  }
  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
  /** The one line printed on stderr. */
  get line(): string {
    return formatErrorLine(this.code, this.what, this.todo);
  }
}

/** `error CODE: what — what to do`, folded onto one line whatever the inputs hold. */
export function formatErrorLine(code: string, what: string, todo: string): string {
  const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim();
  return `error ${code}: ${oneLine(what)} — ${oneLine(todo)}`;
}

/** Parses a numeric option strictly; a bad value is a usage error naming the option. */
export function parseIntegerOption(name: string, raw: string, range: { min?: number; max?: number } = {}): number {
  const n = /^-?\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  const min = range.min ?? Number.MIN_SAFE_INTEGER;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const bounds = range.min !== undefined && range.max !== undefined ? ` from ${min} to ${max}` : range.min !== undefined ? ` ≥ ${min}` : range.max !== undefined ? ` ≤ ${max}` : '';
    throw new CliError('USAGE', `${name} must be an integer${bounds}, got "${raw}"`, `pass a number, e.g. ${name} ${Math.max(min, Math.min(max, 1))}`);
  }
  return n;
}

/** Ends the process's command with the failure `e`: one line on stderr, its exit code. */
export function reportFailure(e: unknown): number {
  if (e instanceof CliError) {
    process.stderr.write(`${e.line}\n`);
    return e.exitCode;
  }
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`${formatErrorLine('INTERNAL', message, 'this is a bug in locksync: rerun with LOCKSYNC_DEBUG=1 for the stack trace and report it')}\n`);
  if (process.env.LOCKSYNC_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return EXIT_CODES.INTERNAL;
}
