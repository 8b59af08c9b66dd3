// What can go wrong in a Door Sync or an unlock, named for the person holding the phone.
// Each reason maps to its own process exit code so scripts and CI can branch on it.

export const AGENT_FAILURES = {
  LOCK_NOT_FOUND: { exit: 3, advice: 'No lock with that id is advertising nearby: walk to the door (within ~3 m) and repeat the Door Sync.' },
  LINK_LOST: { exit: 4, advice: 'The Bluetooth link dropped and retries ran out: stay near the door and repeat the Door Sync.' },
  REFUSED_BY_LOCK: { exit: 5, advice: 'The lock refused the update; the code says why. Report it to the property manager if it repeats.' },
  AUTHORITY_UNREACHABLE: { exit: 6, advice: 'The authority could not be reached: check the network, or carry cached updates with --offline.' },
  NOTHING_TO_DELIVER: { exit: 7, advice: 'The agent carries no update for this lock; fetch from the authority first.' },
  PROTOCOL_VIOLATION: { exit: 8, advice: 'The lock answered something the protocol does not allow; capture a trace and file a bug.' },
  TIMEOUT: { exit: 9, advice: 'The lock stopped answering: repeat the Door Sync; if it persists the lock may need a reboot.' },
  TRANSPORT_UNAVAILABLE: { exit: 10, advice: 'The Bluetooth transport could not start: check the transport string and that the adapter or radio is up.' },
} as const;

export type AgentFailure = keyof typeof AGENT_FAILURES;

export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly reason: AgentFailure,
    detail: string,
    /** Lock's error code name when the lock refused (REFUSED_BY_LOCK). */
    readonly lockError?: string,
  ) {
    super(`${reason}: ${detail}`);
  }
  get exitCode(): number {
    return AGENT_FAILURES[this.reason].exit;
  }
  get advice(): string {
    return AGENT_FAILURES[this.reason].advice;
  }
}
