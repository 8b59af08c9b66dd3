// The lock's rules for authority-signed time and the root-signed floor reset (SPEC.md §8),
// as pure functions of the lock's table state and its session: no clock, no flash. The
// lock (firmware-sim/lock.ts) applies the outcome to its RTC and persists the anchors;
// fixtures/vectors/time.json pins these rules.

import { bytesEqual } from './cbor';
import { keyIdOf, verify } from './crypto';
import { ProtocolError } from './errors';
import type { Message } from './messages';
import { type TableState, currentDigest, currentVersion, signingKeyFor } from './update';

/** What the session contributes: its hello nonce and whether a nonce-bound message of this
 *  kind was already accepted in it (each is good once per session). */
export interface SessionNonce {
  nonce: Uint8Array;
  used: boolean;
}

export interface SignedTimeOutcome {
  /** Authority time, unix s. */
  time: number;
  /** Bound to this session: the lock may set (not only raise) its clock and trust it. */
  bound: boolean;
  /** The time names the lock's own version and digest: the lease anchor moves to `time`. */
  leaseRefreshed: boolean;
  newestIssuedAt: number;
  leaseAnchor: number;
}

/**
 * Check a signed time against the lock's state (SPEC §8.1 order) and say what it changes.
 * Throws ProtocolError with the refusal; never mutates `state`.
 */
export function checkSignedTime(state: TableState, m: Extract<Message, { type: 'signedTime' }>, session: SessionNonce): SignedTimeOutcome {
  const key = signingKeyFor(state.trust, m.body.keyId);
  if (!verify('time', m.bodyBytes, m.signature, key)) throw new ProtocolError('BAD_SIGNATURE', 'signed time does not verify');
  const b = m.body;
  if (b.lockId !== state.lockId) throw new ProtocolError('WRONG_LOCK', `time for ${b.lockId}`);
  if (b.time < state.newestIssuedAt) throw new ProtocolError('TIME_ROLLBACK', `time ${b.time} < newest signed ${state.newestIssuedAt}`);
  const bound = b.nonce !== undefined;
  if (b.nonce !== undefined && (!bytesEqual(b.nonce, session.nonce) || session.used)) throw new ProtocolError('BAD_NONCE', 'signed time not bound to this session');
  const leaseRefreshed = namesTable(state, b.version, b.digest);
  return {
    time: b.time,
    bound,
    leaseRefreshed,
    newestIssuedAt: Math.max(state.newestIssuedAt, b.time),
    leaseAnchor: leaseRefreshed ? Math.max(state.leaseAnchor, b.time) : state.leaseAnchor,
  };
}

/** True when (version, digest) is exactly the table the lock holds. */
export function namesTable(state: TableState, version: number, digest: Uint8Array): boolean {
  return version === currentVersion(state) && bytesEqual(digest, currentDigest(state));
}

/**
 * A signed time that named a newer table than the lock held when it arrived is evidence
 * for that newer table: once an update in the same session brings the lock to exactly
 * that version and digest, the lease anchor may move to the time (SPEC §8.1). Returns the
 * new lease anchor.
 */
export function leaseAnchorAfterUpdate(state: TableState, claim: { time: number; version: number; digest: Uint8Array } | undefined): number {
  if (claim !== undefined && namesTable(state, claim.version, claim.digest)) return Math.max(state.leaseAnchor, Math.min(claim.time, state.newestIssuedAt));
  return state.leaseAnchor;
}

export interface FloorResetOutcome {
  time: number;
  versionFloor: number;
  newestIssuedAt: number;
  leaseAnchor: number;
}

/**
 * Check a root-signed floor reset (SPEC §8.3). Only a provisioned root key may sign one
 * (an online key, certified or not, is UNTRUSTED_KEY), for this lock, bound to this
 * session's hello nonce and unused in it. The outcome lowers (or raises) the clock floor
 * and version floor to the named values; the lease anchor never moves forward.
 */
export function checkFloorReset(state: TableState, m: Extract<Message, { type: 'floorReset' }>, session: SessionNonce): FloorResetOutcome {
  const b = m.body;
  const root = state.trust.roots.find((r) => bytesEqual(keyIdOf(r), b.keyId));
  if (root === undefined) throw new ProtocolError('UNTRUSTED_KEY', 'a floor reset must be signed by a provisioned root key');
  if (!verify('floorReset', m.bodyBytes, m.signature, root)) throw new ProtocolError('BAD_SIGNATURE', 'floor reset does not verify');
  if (b.lockId !== state.lockId) throw new ProtocolError('WRONG_LOCK', `floor reset for ${b.lockId}`);
  if (!bytesEqual(b.nonce, session.nonce) || session.used) throw new ProtocolError('BAD_NONCE', 'floor reset not bound to this session');
  return { time: b.time, versionFloor: b.versionFloor, newestIssuedAt: b.time, leaseAnchor: Math.min(state.leaseAnchor, b.time) };
}
