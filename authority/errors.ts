// Every refusal the authority can give has a name (code), a human message and, where
// useful, structured details (e.g. the doors a partner is still assigned to). The HTTP
// layer maps codes to statuses; the CLI prints them; nothing is ever half-applied because
// every operation runs in one SQLite transaction that an AuthorityError rolls back.

export const AUTHORITY_ERROR_STATUS = {
  VALIDATION: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  UNKNOWN_DOOR: 404,
  UNKNOWN_KEY: 404,
  UNKNOWN_USER: 404,
  UNKNOWN_PARTNER: 404,
  UNKNOWN_LOCK: 404,
  UNKNOWN_DEVICE: 404,
  UNKNOWN_KEYCARD: 404,
  UNKNOWN_DOORCODE: 404,
  UNKNOWN_ASSIGNMENT: 404,
  UNKNOWN_GRANT: 404,
  UNKNOWN_VERSION: 409,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  FORBIDDEN_TRANSITION: 409,
  PARTNER_STILL_ASSIGNED: 409,
  PARTNER_NOT_AUTHORIZED: 409,
  PARTNER_GRANT_OUT_OF_SCOPE: 409,
  SHARING_NOT_ALLOWED: 409,
  DOORCODES_DISABLED: 409,
  DAILY_CODES_EXHAUSTED: 409,
  NOT_CONNECTED: 409,
  LOCK_DEVICE_UNKNOWN: 409,
  AUDIT_CHAIN_MISMATCH: 409,
  AUDIT_CHAIN_GAP: 409,
  BAD_AUDIT: 422,
  WEAK_PUBLIC_KEY: 400,
  RATE_LIMITED: 429,
  BAD_RECEIPT: 422,
  BAD_MESSAGE: 422,
  NOT_INITIALIZED: 500,
  ALREADY_INITIALIZED: 409,
  KEY_FILE: 500,
  PAYLOAD_TOO_LARGE: 413,
  /** The authority's own database (PostgreSQL) is unreachable or stopped answering. */
  STORAGE_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type AuthorityErrorCode = keyof typeof AUTHORITY_ERROR_STATUS;

export class AuthorityError extends Error {
  override readonly name = 'AuthorityError';
  constructor(
    readonly code: AuthorityErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(`${code}: ${message}`);
  }

  get status(): number {
    return AUTHORITY_ERROR_STATUS[this.code];
  }

  /** The JSON error body of the HTTP contract. Never contains key material. */
  toJSON(): { code: AuthorityErrorCode; message: string; details?: Record<string, unknown> } {
    const message = this.message.slice(this.code.length + 2);
    return this.details === undefined ? { code: this.code, message } : { code: this.code, message, details: this.details };
  }
}

export function isAuthorityError(e: unknown): e is AuthorityError {
  return e instanceof AuthorityError;
}
