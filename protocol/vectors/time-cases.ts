// Signed time and floor resets over the fixed world (world.ts): the cases time.json
// publishes (SPEC.md §8). Each case is a lock state at v1 (lease anchor one hour behind its
// newest signed time), the session's hello nonce and whether it was already used, the
// message bytes, and what the lock must do: the new anchors, or the refusal.

import { type ErrorName, ProtocolError } from '../errors';
import { decodeMessage, encodeMessage, makeFloorReset, makeSignedTime, type SignedTimeBody } from '../messages';
import { deriveSeed32 } from '../random';
import { tableDigest } from '../table';
import { type FloorResetOutcome, type SignedTimeOutcome, checkFloorReset, checkSignedTime } from '../time';
import { type TableState, applyUpdate, initialTableState } from '../update';
import { EPOCH, KEYS, LOCK_ID, OTHER_LOCK_ID, WORLD_SEED, baseTable, snapshotOf } from './world';

export interface TimeCase {
  comment: string;
  flags: string[];
  state: TableState;
  sessionNonce: Uint8Array;
  nonceUsed: boolean;
  message: Uint8Array;
  expected: { error: ErrorName } | SignedTimeOutcome | FloorResetOutcome;
}

/** What a lock does with time bytes from the courier: decode, then the protocol rule. */
export function receiveTime(state: TableState, bytes: Uint8Array, sessionNonce: Uint8Array, used: boolean): SignedTimeOutcome | FloorResetOutcome | { error: ErrorName } {
  try {
    const m = decodeMessage(bytes);
    if (m.type === 'signedTime') return checkSignedTime(state, m, { nonce: sessionNonce, used });
    if (m.type === 'floorReset') return checkFloorReset(state, m, { nonce: sessionNonce, used });
    return { error: 'UNEXPECTED_MESSAGE' };
  } catch (e) {
    if (e instanceof ProtocolError) return { error: e.reason };
    throw e;
  }
}

export function timeCases(): TimeCase[] {
  const r = applyUpdate(initialTableState(LOCK_ID, [KEYS.root.publicKey]), snapshotOf(baseTable(3), { version: 1 }));
  if (!r.ok) throw r.error;
  // v1 issued at EPOCH + 3600; a later signed time (EPOCH + 7200) moved the clock floor but
  // named a newer table, so the lease anchor stayed at the head's issuedAt.
  const state: TableState = { ...r.state, newestIssuedAt: EPOCH + 7200, leaseAnchor: EPOCH + 3600 };
  const v1 = { version: 1, digest: tableDigest(baseTable(3)) };
  const v2 = { version: 2, digest: tableDigest(baseTable(2)) };
  const nonce = deriveSeed32(WORLD_SEED, 'nonce:hello').slice(0, 16);
  const otherNonce = deriveSeed32(WORLD_SEED, 'nonce:other-session').slice(0, 16);
  const time = (b: Partial<SignedTimeBody>, signer = KEYS.online1): Uint8Array =>
    encodeMessage(makeSignedTime({ lockId: LOCK_ID, time: EPOCH + 9000, keyId: signer.keyId, ...v1, nonce, ...b }, signer.secretKey));
  const unbound = (b: Partial<SignedTimeBody>): Uint8Array => {
    const { nonce: _n, ...rest } = { lockId: LOCK_ID, time: EPOCH + 9000, keyId: KEYS.online1.keyId, ...v1, ...b };
    return encodeMessage(makeSignedTime(rest, KEYS.online1.secretKey));
  };
  const reset = (b: Partial<{ lockId: string; time: number; versionFloor: number; nonce: Uint8Array }>, signer = KEYS.root): Uint8Array =>
    encodeMessage(makeFloorReset({ lockId: LOCK_ID, time: EPOCH + 5000, versionFloor: 0, keyId: signer.keyId, nonce, ...b }, signer.secretKey));
  const c = (comment: string, flags: string[], message: Uint8Array, nonceUsed = false): TimeCase => {
    const expected = receiveTime(state, message, nonce, nonceUsed);
    return { comment, flags, state, sessionNonce: nonce, nonceUsed, message, expected };
  };
  return [
    c('bound time naming the lock\'s own v1 and digest: clock set and trusted, lease refreshed', ['LeaseRefresh'], time({})),
    c('bound time naming v2 (a revocation the courier withholds): clock set, lease NOT refreshed', ['StaleTable'], time(v2)),
    c('bound time naming v1 with another digest: lease NOT refreshed', ['StaleTable'], time({ digest: v2.digest })),
    c('unbound time naming v1: raises the clock only, lease refreshed to its time', ['LeaseRefresh', 'Unbound'], unbound({})),
    c('time equal to the newest signed time is accepted (not a rollback)', ['Edge'], time({ time: EPOCH + 7200 })),
    c('time one second older than the newest signed time', ['Rollback'], time({ time: EPOCH + 7199 })),
    c('bound to another session\'s nonce', ['Nonce'], time({ nonce: otherNonce })),
    c('bound to this session\'s nonce, which a time already used', ['Nonce'], time({}), true),
    c('time for another lock', ['Binding'], time({ lockId: OTHER_LOCK_ID })),
    c('time signed by a key the lock does not trust', ['Trust'], time({}, KEYS.stranger)),
    c('floor reset by the root: clock floor EPOCH+5000 (below the newest), version floor 0, lease anchor lowered to at most the time', ['Reset'], reset({})),
    c('floor reset signed by the (certified) online key', ['Reset', 'Trust'], reset({}, KEYS.online1)),
    c('floor reset bound to another session\'s nonce', ['Reset', 'Nonce'], reset({ nonce: otherNonce })),
    c('floor reset for another lock', ['Reset', 'Binding'], reset({ lockId: OTHER_LOCK_ID })),
  ];
}
