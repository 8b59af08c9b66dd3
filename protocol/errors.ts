// One registry for every refusal the protocol can express on the wire. Codes are stable
// numbers (SPEC.md §Error registry); names are what logs, tests and people read.
// Adding a code is backward compatible; renumbering one never is.

export const ERROR_CODES = {
  MALFORMED: 1, // bytes are not a valid message of the expected type (decoder or schema)
  BAD_SIGNATURE: 2, // a signature does not verify over the exact bytes
  UNTRUSTED_KEY: 3, // signing key unknown, not certified by a trusted root, or superseded
  WRONG_LOCK: 4, // the update or challenge is bound to another lock
  ROLLBACK: 5, // version not above the lock's version floor
  BROKEN_CHAIN: 6, // delta does not continue from the lock's current version/digest
  DIGEST_MISMATCH: 7, // the table after apply does not match the signed head
  OVER_LIMIT: 8, // too many entries/ops/bytes, or a field beyond its range
  UNSUPPORTED_VERSION: 9, // protocol version not spoken by this side
  UNEXPECTED_MESSAGE: 10, // valid message, wrong moment in the session
  SESSION_EXPIRED: 11, // challenge or session past its expiry
  BAD_NONCE: 12, // nonce does not match the one this side issued, or was already used
  BUSY: 13, // another session holds the lock
  INTERNAL: 14, // the lock failed (e.g. flash error); nothing was changed
  TIME_ROLLBACK: 15, // signed time older than the newest signed time already seen
  INVALID_OP: 16, // an op is well-formed but cannot apply (e.g. guest without parent)
  NOT_ATTEMPTED: 17, // a batch item after a refused one: not handled, nothing changed (send it again alone)
} as const;

export type ErrorName = keyof typeof ERROR_CODES;
export type ErrorCode = (typeof ERROR_CODES)[ErrorName];

const NAME_BY_CODE = new Map<number, ErrorName>(
  (Object.entries(ERROR_CODES) as [ErrorName, number][]).map(([n, c]) => [c, n]),
);

export function errorName(code: number): ErrorName | undefined {
  return NAME_BY_CODE.get(code);
}

/** A refusal with a registry name. `detail` is for humans and logs only, never parsed. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ErrorCode;
  constructor(
    readonly reason: ErrorName,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`);
    this.code = ERROR_CODES[reason];
  }
}

/**
 * Reasons an access decision returns. Stable numbers, carried in unlock decisions and
 * audit records.
 */
export const DECISION_REASONS = {
  GRANTED: 0,
  UNKNOWN_CREDENTIAL: 1,
  OUT_OF_SCHEDULE: 2,
  NOT_YET_VALID: 3,
  EXPIRED: 4,
  LOCKED_OUT: 5,
  LEASE_STALE: 6,
  BAD_RESPONSE: 7, // signature over the challenge does not verify
  CHALLENGE_EXPIRED: 8,
  REPLAYED: 9, // challenge already answered, or never issued in this session
  DOORCODES_DISABLED: 10,
  PARENT_MISSING: 11, // guest whose sharing resident is gone (defence in depth)
  WRONG_CODE: 12, // keypad code matches nothing
  LOW_BATTERY: 13,
  WRONG_LOCK: 14, // challenge bound to another lock or session
  CODE_USED_UP: 15, // single-use daily code past its 15-minute window
  KEYPAD_TIMEOUT: 16, // inter-digit timeout expired, entry discarded
  CLOCK_UNTRUSTED: 17, // validity window or daily code while the clock is known to be behind (after power loss)
} as const;

export type DecisionReason = keyof typeof DECISION_REASONS;

const REASON_BY_CODE = new Map<number, DecisionReason>(
  (Object.entries(DECISION_REASONS) as [DecisionReason, number][]).map(([n, c]) => [c, n]),
);

export function decisionReasonName(code: number): DecisionReason | undefined {
  return REASON_BY_CODE.get(code);
}
