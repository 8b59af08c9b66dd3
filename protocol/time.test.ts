// The signed-time and floor-reset rules of SPEC §8 beyond the published vectors.
import { describe, expect, it } from 'vitest';
import { makeFloorReset, makeSignedTime, type SignedTimeBody } from './messages';
import { checkFloorReset, checkSignedTime, leaseAnchorAfterUpdate, namesTable } from './time';
import { type TableState, applyUpdate, initialTableState, currentDigest } from './update';
import { tableDigest } from './table';
import { EPOCH, KEYS, LOCK_ID, baseTable, deltaFrom, snapshotOf } from './vectors/world';

const nonce = new Uint8Array(16).fill(9);

function atV1(): TableState {
  const r = applyUpdate(initialTableState(LOCK_ID, [KEYS.root.publicKey]), snapshotOf(baseTable(3), { version: 1 }));
  if (!r.ok) throw r.error;
  return r.state;
}
const time = (s: TableState, b: Partial<SignedTimeBody>) =>
  makeSignedTime({ lockId: LOCK_ID, time: EPOCH + 9000, keyId: KEYS.online1.keyId, version: 1, digest: currentDigest(s), nonce, ...b }, KEYS.online1.secretKey);

describe('lease anchor', () => {
  it('an accepted head sets it to the head issuedAt; a fresh lock has none', () => {
    expect(initialTableState(LOCK_ID, []).leaseAnchor).toBe(0);
    const s = atV1();
    expect(s.leaseAnchor).toBe(EPOCH + 3600);
    expect(s.newestIssuedAt).toBe(EPOCH + 3600);
  });

  it('moves only for a time naming exactly the lock\'s version and digest, never backwards', () => {
    const s = atV1();
    expect(checkSignedTime(s, time(s, {}), { nonce, used: false })).toMatchObject({ leaseRefreshed: true, leaseAnchor: EPOCH + 9000 });
    expect(checkSignedTime(s, time(s, { version: 2 }), { nonce, used: false })).toMatchObject({ leaseRefreshed: false, leaseAnchor: EPOCH + 3600, newestIssuedAt: EPOCH + 9000 });
    expect(checkSignedTime(s, time(s, { version: 0 }), { nonce, used: false }).leaseRefreshed).toBe(false);
    expect(checkSignedTime(s, time(s, { digest: tableDigest(baseTable(1)) }), { nonce, used: false }).leaseRefreshed).toBe(false);
    // An anchor already newer than the time stays (a later time then arrives older but ≥ floor).
    const ahead = { ...s, newestIssuedAt: EPOCH + 9000, leaseAnchor: EPOCH + 9000 };
    expect(checkSignedTime(ahead, time(s, {}), { nonce, used: false }).leaseAnchor).toBe(EPOCH + 9000);
  });

  it('a time naming a newer table counts once an update brings exactly that table, capped by the clock floor', () => {
    const s1 = atV1();
    const d = deltaFrom(s1, [{ op: 'removePartner', partnerId: 7 }], { version: 2 });
    const r = applyUpdate(s1, d);
    if (!r.ok) throw r.error;
    const s2 = { ...r.state, newestIssuedAt: EPOCH + 9000 };
    const claim = { time: EPOCH + 9000, version: 2, digest: d.head.head.digest };
    expect(namesTable(s2, 2, d.head.head.digest)).toBe(true);
    expect(leaseAnchorAfterUpdate(s2, claim)).toBe(EPOCH + 9000);
    expect(leaseAnchorAfterUpdate(s2, { ...claim, version: 3 })).toBe(s2.leaseAnchor);
    expect(leaseAnchorAfterUpdate(s2, undefined)).toBe(s2.leaseAnchor);
    expect(leaseAnchorAfterUpdate({ ...s2, newestIssuedAt: EPOCH + 8000 }, claim)).toBe(EPOCH + 8000);
  });

  it('an unbound time is accepted anywhere, a bound one only once and only in its session', () => {
    const s = atV1();
    const { nonce: _n, ...unbound } = time(s, {}).body;
    const u = makeSignedTime(unbound, KEYS.online1.secretKey);
    expect(checkSignedTime(s, u, { nonce, used: true }).bound).toBe(false);
    expect(() => checkSignedTime(s, time(s, {}), { nonce, used: true })).toThrow(expect.objectContaining({ reason: 'BAD_NONCE' }));
    expect(() => checkSignedTime(s, time(s, {}), { nonce: new Uint8Array(16), used: false })).toThrow(expect.objectContaining({ reason: 'BAD_NONCE' }));
  });
});

describe('floor reset', () => {
  it('root-signed: sets both floors, lowers the lease anchor, never raises it', () => {
    const s = { ...atV1(), newestIssuedAt: EPOCH + 10 ** 9, leaseAnchor: EPOCH + 10 ** 9, versionFloor: Number.MAX_SAFE_INTEGER };
    const m = makeFloorReset({ lockId: LOCK_ID, time: EPOCH + 9000, versionFloor: 1, keyId: KEYS.root.keyId, nonce }, KEYS.root.secretKey);
    expect(checkFloorReset(s, m, { nonce, used: false })).toEqual({ time: EPOCH + 9000, versionFloor: 1, newestIssuedAt: EPOCH + 9000, leaseAnchor: EPOCH + 9000 });
    expect(checkFloorReset(atV1(), m, { nonce, used: false }).leaseAnchor).toBe(EPOCH + 3600);
    expect(() => checkFloorReset(s, m, { nonce, used: true })).toThrow(expect.objectContaining({ reason: 'BAD_NONCE' }));
  });

  it('a certified online key cannot sign one, nor a key that is no root', () => {
    const s = atV1(); // holds CERT1 for online1
    const by = (k: typeof KEYS.root) => makeFloorReset({ lockId: LOCK_ID, time: EPOCH, versionFloor: 0, keyId: k.keyId, nonce }, k.secretKey);
    expect(() => checkFloorReset(s, by(KEYS.online1), { nonce, used: false })).toThrow(expect.objectContaining({ reason: 'UNTRUSTED_KEY' }));
    expect(() => checkFloorReset(s, by(KEYS.stranger), { nonce, used: false })).toThrow(expect.objectContaining({ reason: 'UNTRUSTED_KEY' }));
    // Root keyId with another key's signature.
    const forged = { ...by(KEYS.root), signature: by(KEYS.stranger).signature };
    expect(() => checkFloorReset(s, forged, { nonce, used: false })).toThrow(expect.objectContaining({ reason: 'BAD_SIGNATURE' }));
  });
});
