// What can go wrong in a Door Sync or an unlock, named for the person holding the phone.
// Each reason maps to its own process exit code (one registry for every subcommand:
// cli/errors.ts) so scripts and CI can branch on it.

import { EXIT_CODES } from '../cli/errors';

export const AGENT_FAILURES = {
  LOCK_NOT_FOUND: { exit: EXIT_CODES.LOCK_NOT_FOUND, advice: 'No lock with that id is advertising nearby: walk to the door (within ~3 m) and repeat the Door Sync.' },
  LINK_LOST: { exit: EXIT_CODES.LINK_LOST, advice: 'The Bluetooth link dropped and retries ran out: stay near the door and repeat the Door Sync.' },
  REFUSED_BY_LOCK: { exit: EXIT_CODES.REFUSED_BY_LOCK, advice: 'The lock refused the update; the code says why. Report it to the property manager if it repeats.' },
  AUTHORITY_UNREACHABLE: {
    exit: EXIT_CODES.AUTHORITY_UNREACHABLE,
    advice: 'check the network and the --authority URL and repeat',
  },
  AUTHORITY_AUTH_REFUSED: {
    exit: EXIT_CODES.AUTHORITY_AUTH_REFUSED,
    advice: 'pass the device token this phone got at enrolment (`authority device enrol`) with --token or LOCKSYNC_TOKEN',
  },
  AUTHORITY_REFUSED: { exit: EXIT_CODES.AUTHORITY_REFUSED, advice: 'the authority refused the request for the reason given; retrying will not change it' },
  NOTHING_TO_DELIVER: { exit: EXIT_CODES.NOTHING_TO_DELIVER, advice: 'The agent carries no update for this lock; fetch from the authority first.' },
  PROTOCOL_VIOLATION: { exit: EXIT_CODES.PROTOCOL_VIOLATION, advice: 'The lock answered something the protocol does not allow; capture a trace and file a bug.' },
  TIMEOUT: { exit: EXIT_CODES.TIMEOUT, advice: 'The lock stopped answering: repeat the Door Sync; if it persists the lock may need a reboot.' },
  TRANSPORT_UNAVAILABLE: {
    exit: EXIT_CODES.TRANSPORT_UNAVAILABLE,
    advice: 'The Bluetooth transport could not start: check the transport string and that the adapter or radio is up.',
  },
} as const;

export type AgentFailure = keyof typeof AGENT_FAILURES;

/** What the authority answered, when a failure is an HTTP answer rather than no answer. */
export interface AuthorityAnswer {
  status: number;
  /** The authority's error code (e.g. AUDIT_CHAIN_MISMATCH), when its body named one. */
  code?: string;
  message?: string;
}

export class AgentError extends Error {
  override readonly name = 'AgentError';
  /** Set when the failure is an HTTP answer from the authority. */
  readonly authority?: AuthorityAnswer;
  private readonly adviceOverride?: string;
  constructor(
    readonly reason: AgentFailure,
    detail: string,
    /** Lock's error code name when the lock refused (REFUSED_BY_LOCK). */
    readonly lockError?: string,
    extra: { advice?: string; authority?: AuthorityAnswer } = {},
  ) {
    super(`${reason}: ${detail}`);
    if (extra.authority !== undefined) this.authority = extra.authority;
    if (extra.advice !== undefined) this.adviceOverride = extra.advice;
  }
  /** What happened, without the reason prefix. */
  get detail(): string {
    return this.message.slice(this.reason.length + 2);
  }
  get exitCode(): number {
    return AGENT_FAILURES[this.reason].exit;
  }
  get advice(): string {
    return this.adviceOverride ?? AGENT_FAILURES[this.reason].advice;
  }
}
