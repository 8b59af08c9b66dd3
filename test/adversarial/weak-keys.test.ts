// Weak Ed25519 keys. A phone credential's public key of small order (the identity, say)
// verifies one constant signature (R = identity, S = 0) for every challenge under a lenient
// (ZIP-215) verifier: anyone in BLE range would open that door. The lock refuses such keys
// when a table would admit them, and its verifier refuses the constant signature even if a
// table somehow held one.

import { afterAll, describe, expect, it } from 'vitest';
import * as ed from '@noble/ed25519';
import {
  type Entry,
  type Table,
  type Update,
  encodeTableHead,
  issueKeyCert,
  keyIdOf,
  signatureInput,
  emptyTable,
  isStrictEd25519PublicKey,
  keyPairFromSeed,
  deriveSeed32,
  smallOrderEncodings,
  toHex,
  weakEd25519PublicKeyReason,
} from '../../protocol';
import { setEd25519Backend } from '../../protocol/ed25519-strict';
import { decidePhone, makeChallenge, type AccessContext } from '../../firmware-sim/access';
import { attack, attackLog, buildWorld, deliver, forkAuthority, unlockWith, updateMessage } from './harness';

const { canonical, nonCanonical } = smallOrderEncodings();
const constantSignature = (): Uint8Array => {
  const sig = new Uint8Array(64);
  sig[0] = 1; // R = identity, S = 0
  return sig;
};

afterAll(() => {
  const refused = attackLog.filter((a) => !a.refusal.startsWith('accepted')).length;
  console.log(`adversarial/weak-keys: ${attackLog.length} attacks, ${refused} refused`);
});

describe('weak phone keys never enter a lock’s table', () => {
  const weak: [string, Uint8Array][] = [
    ...canonical.map((k): [string, Uint8Array] => [`small-order ${toHex(k)}`, k]),
    ...nonCanonical.map((k): [string, Uint8Array] => [`non-canonical ${toHex(k)}`, k]),
  ];
  it('all 8 canonical and 6 non-canonical small-order encodings, in an authority-signed delta → INVALID_OP', () => {
    const w = buildWorld('weak-delta');
    for (const [name, key] of weak) {
      const d = forkAuthority(w.auth).delta([{ op: 'put', entry: w.auth.phoneEntry(500, key) }]);
      attack(w, `delta with ${name}`, () => deliver(w, updateMessage(d)), 'INVALID_OP', { thenValid: false });
    }
    expect(attackLog.filter((a) => a.name.startsWith('delta with')).length).toBe(14);
  });

  it('in an authority-signed snapshot → INVALID_OP; then the next valid update is accepted', () => {
    const w = buildWorld('weak-snapshot');
    const a = forkAuthority(w.auth);
    a.delta([{ op: 'put', entry: a.phoneEntry(501, canonical[2] as Uint8Array) }]);
    attack(w, 'snapshot with the identity as a phone key', () => deliver(w, updateMessage(a.snapshot())), 'INVALID_OP');
  });

  it('replacing a good key by a weak one under the same credId → INVALID_OP', () => {
    const w = buildWorld('weak-replace');
    const d = forkAuthority(w.auth).delta([{ op: 'put', entry: w.auth.phoneEntry(1, nonCanonical[0] as Uint8Array) }]);
    attack(w, 'resident key replaced by a non-canonical one', () => deliver(w, updateMessage(d)), 'INVALID_OP');
  });

  it('good keys still enter (the check can pass)', () => {
    const w = buildWorld('weak-good');
    const k = keyPairFromSeed(deriveSeed32('weak-good', 'new phone'));
    expect(deliver(w, updateMessage(w.auth.delta([{ op: 'put', entry: w.auth.phoneEntry(600, k.publicKey) }])))).toMatchObject({ messages: [{ type: 'receipt' }] });
    const s = w.lock.openSession();
    expect(unlockWith(w, s, 600, k.secretKey)).toMatchObject({ type: 'decision', granted: true });
    s.close();
  });
});

describe('the constant signature opens nothing', () => {
  it("noble's default (ZIP-215) accepts it for any challenge; the lock's verifier refuses it", () => {
    const w = buildWorld('weak-verify');
    const identity = canonical[2] as Uint8Array;
    // A table written before this check could hold such a key: build one directly.
    const entry: Entry = { credId: 9, kind: 'phone', holder: 'resident', secret: identity, flags: 0 };
    const table: Table = { ...emptyTable(), entries: new Map([[9, entry]]) };
    const ctx: AccessContext = { ...w.lock.accessContext(), table };
    const sessionId = new Uint8Array(8).fill(3);
    for (let i = 0; i < 16; i++) {
      const c = makeChallenge(ctx.lockId, sessionId, new Uint8Array(16).fill(i), 9, ctx.nowMs, ctx.monotonicMs);
      expect(ed.verify(constantSignature(), c.bytes, identity)).toBe(true); // the hole, pinned
      const d = decidePhone(ctx, sessionId, [c], c.bytes, constantSignature());
      expect(d.reason).toBe('BAD_RESPONSE');
    }
  });

  it('through a session: the constant signature for a real credential → BAD_RESPONSE; the real key still opens', () => {
    const w = buildWorld('weak-session');
    const s = w.lock.openSession();
    expect(unlockWith(w, s, 1, { signature: constantSignature() })).toMatchObject({ type: 'decision', granted: false, reason: 'BAD_RESPONSE' });
    expect(unlockWith(w, s, 1, w.phones.resident.secretKey)).toMatchObject({ type: 'decision', granted: true });
    s.close();
  });
});

describe('phone key bytes that are no curve point (the lock checks keys on their bytes, SPEC §3.3)', () => {
  it('enter the table, yet no signature opens with them, on either verifier backend; the constant signature neither', () => {
    const w = buildWorld('weak-off-curve');
    const offCurve = new Uint8Array(32);
    offCurve[0] = 2; // y = 2: canonical, no small-order point, no x on the curve
    expect(weakEd25519PublicKeyReason(offCurve)).toBe('NOT_ON_CURVE');
    expect(deliver(w, updateMessage(w.auth.delta([{ op: 'put', entry: w.auth.phoneEntry(601, offCurve) }])))).toMatchObject({ messages: [{ type: 'receipt' }] });
    const anyone = keyPairFromSeed(deriveSeed32('weak-off-curve', 'anyone'));
    for (const backend of ['native', 'noble'] as const) {
      setEd25519Backend(backend);
      try {
        const s = w.lock.openSession();
        expect(unlockWith(w, s, 601, { signature: constantSignature() }), backend).toMatchObject({ type: 'decision', granted: false, reason: 'BAD_RESPONSE' });
        expect(unlockWith(w, s, 601, anyone.secretKey), backend).toMatchObject({ type: 'decision', granted: false, reason: 'BAD_RESPONSE' });
        s.close();
      } finally {
        setEd25519Backend('native');
      }
    }
  });
});

describe('a small-order online key, even if the root certified one by mistake', () => {
  it('a head "signed" with the constant signature under a root-certified identity key → BAD_SIGNATURE', () => {
    const w = buildWorld('weak-online');
    const identity = canonical[2] as Uint8Array;
    const a = forkAuthority(w.auth);
    const cert = issueKeyCert(50, identity, a.root.secretKey, a.root.publicKey);
    const honest = a.delta([{ op: 'remove', credId: 2 }]) as Extract<Update, { type: 'delta' }>;
    const head = { ...honest.head.head, keyId: keyIdOf(identity) };
    const headBytes = encodeTableHead(head);
    expect(ed.verify(constantSignature(), signatureInput('head', headBytes), identity)).toBe(true); // lenient verifiers accept
    const forged = { ...honest, certs: [cert], head: { head, headBytes, signature: constantSignature() } };
    attack(w, 'head under a small-order online key', () => deliver(w, updateMessage(forged)), 'BAD_SIGNATURE');
  });
});

describe('enrolment check exported for the authority (protocol/ed25519-strict.ts)', () => {
  it('isStrictEd25519PublicKey refuses small-order, non-canonical, off-curve and mixed-order keys', () => {
    for (const k of [...canonical, ...nonCanonical]) expect(isStrictEd25519PublicKey(k)).toBe(false);
    const good = keyPairFromSeed(deriveSeed32('enrol', 'phone')).publicKey;
    expect(isStrictEd25519PublicKey(good)).toBe(true);
    const T = ed.Point.fromBytes(canonical.find((c) => !ed.Point.fromBytes(c, false).double().double().is0()) as Uint8Array, false);
    const mixed = ed.Point.fromBytes(good, false).add(T).toBytes();
    expect(weakEd25519PublicKeyReason(mixed)).toBe('MIXED_ORDER');
    expect(weakEd25519PublicKeyReason(mixed, { primeOrder: false })).toBeNull(); // the lock's cheaper check
    const offCurve = new Uint8Array(32);
    offCurve[0] = 2;
    expect(weakEd25519PublicKeyReason(offCurve)).toBe('NOT_ON_CURVE');
    expect(weakEd25519PublicKeyReason(good.subarray(1))).toBe('BAD_LENGTH');
  });
});
