import { describe, expect, it } from 'vitest';
import { toHex } from './crypto';
import { ERROR_CODES } from './errors';
import { applyUpdate, currentVersion, initialTableState } from './update';
import { tableDigest } from './table';
import { decodeMessage } from './messages';
import { receiveUpdate, updateCases, messageOf } from './vectors/update-cases';
import { CERT1, CERT2, KEYS, LOCK_ID, PARTNER_ID, baseTable, deltaFrom, encodeState, snapshotOf } from './vectors/world';

const cases = updateCases();

describe('applyUpdate: one case per outcome, state byte-identical after every refusal', () => {
  for (const c of cases) {
    const label = 'error' in c.expected ? c.expected.error : `accepts v${c.expected.version}`;
    it(`${label}: ${c.comment}`, () => {
      const stored = toHex(encodeState(c.state));
      const r = receiveUpdate(c.state, c.message);
      expect(toHex(encodeState(c.state))).toBe(stored); // never mutates what the lock holds
      if ('error' in c.expected) {
        expect(r.ok ? 'accepted' : r.error.reason).toBe(c.expected.error);
        if (!r.ok) expect(r.error.code).toBe(ERROR_CODES[c.expected.error]);
      } else {
        if (!r.ok) throw r.error;
        expect(currentVersion(r.state)).toBe(c.expected.version);
        expect(r.state.versionFloor).toBe(c.expected.version);
        expect(toHex(tableDigest(r.state.table))).toBe(toHex(r.state.head?.digest ?? new Uint8Array()));
      }
    });
  }

  it('covers every refusal reason applyUpdate can give', () => {
    const reasons = new Set(cases.flatMap((c) => ('error' in c.expected ? [c.expected.error] : [])));
    for (const r of ['BAD_SIGNATURE', 'UNTRUSTED_KEY', 'WRONG_LOCK', 'ROLLBACK', 'BROKEN_CHAIN', 'DIGEST_MISMATCH', 'OVER_LIMIT', 'MALFORMED', 'INVALID_OP'])
      expect(reasons.has(r as never), r).toBe(true);
  });
});

describe('key rotation and trust', () => {
  const s0 = initialTableState(LOCK_ID, [KEYS.root.publicKey]);
  const s1r = applyUpdate(s0, snapshotOf(baseTable(3), { version: 1 }));
  if (!s1r.ok) throw s1r.error;
  const s1 = s1r.state;

  it('a carried cert is admitted, raises the cert floor and retires the older online key', () => {
    const r = applyUpdate(s1, deltaFrom(s1, [{ op: 'removePartner', partnerId: PARTNER_ID }], { version: 2, signer: KEYS.online2 }, [CERT2]));
    if (!r.ok) throw r.error;
    expect(r.state.trust.certFloor).toBe(2);
    expect(r.state.trust.certs.map((c) => c.cert.serial)).toEqual([2]);
    const old = applyUpdate(r.state, deltaFrom(r.state, [{ op: 'remove', credId: 3 }], { version: 3 }));
    expect(old.ok ? 'accepted' : old.error.reason).toBe('UNTRUSTED_KEY');
    // The root still signs.
    const byRoot = applyUpdate(r.state, deltaFrom(r.state, [{ op: 'remove', credId: 3 }], { version: 3, signer: KEYS.root }));
    expect(byRoot.ok).toBe(true);
  });

  it('R-UPD-3: a refused update never admits its carried cert', () => {
    const d = deltaFrom(s1, [], { version: 2, signer: KEYS.online2, lockId: 'lk-0002' }, [CERT2]);
    const r = applyUpdate(s1, d);
    expect(r.ok ? 'accepted' : r.error.reason).toBe('WRONG_LOCK');
    expect(s1.trust.certFloor).toBe(1);
  });

  it('R-UPD-4: the accepted head raises newestIssuedAt, never lowers it', () => {
    const d = deltaFrom(s1, [], { version: 2, issuedAt: 5 });
    const r = applyUpdate(s1, d);
    if (!r.ok) throw r.error;
    expect(r.state.newestIssuedAt).toBe(s1.newestIssuedAt);
  });

  it('an empty delta whose head repeats the digest is a valid version bump', () => {
    const r = applyUpdate(s1, deltaFrom(s1, [], { version: 2 }, [CERT1]));
    expect(r.ok).toBe(true);
  });

  it('messages carrying updates round-trip byte-identically', () => {
    for (const c of cases) {
      let m;
      try {
        m = decodeMessage(c.message);
      } catch {
        continue;
      }
      if (m.type !== 'delta' && m.type !== 'snapshot') continue;
      expect(toHex(messageOf(m.update))).toBe(toHex(c.message));
    }
  });
});
