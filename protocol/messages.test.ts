import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encode } from './cbor';
import { toHex } from './crypto';
import { ProtocolError } from './errors';
import {
  AUDIT_GENESIS, MESSAGE_TYPES, NONCE_BYTES, auditRecordFromBytes, decodeMessage, encodeAuditRecord, encodeMessage,
  verifyAuditChain, verifyReceipt, chainAudit,
} from './messages';
import { verify } from './crypto';
import { cmap } from './schema';
import { messageSamples, SAMPLE_AUDIT_RECORDS } from './vectors/message-samples';
import { KEYS } from './vectors/world';
import { FC_RUNS, FUZZ_PROPERTIES, propertyTimeout, toFcProperty } from './fuzz/properties';

const samples = messageSamples();
const encoded = samples.map((s) => encodeMessage(s.message));

describe('every message type round-trips byte-identically', () => {
  for (const [i, s] of samples.entries()) {
    it(`${s.message.type}: ${s.comment}`, () => {
      const b = encoded[i] as Uint8Array;
      const m = decodeMessage(b);
      expect(m.type).toBe(s.message.type);
      expect(toHex(encodeMessage(m))).toBe(toHex(b));
    });
  }
  it('the samples cover every message type', () => {
    expect(new Set(samples.map((s) => s.message.type))).toEqual(new Set(Object.keys(MESSAGE_TYPES)));
  });
});

describe('signed session messages', () => {
  it('receipts verify under the device key only, over the exact body bytes', () => {
    const r = samples.find((s) => s.message.type === 'receipt')?.message;
    if (r?.type !== 'receipt') throw new Error('no receipt sample');
    expect(verifyReceipt(r, KEYS.device.publicKey)).toBe(true);
    expect(verifyReceipt(r, KEYS.online1.publicKey)).toBe(false);
    expect(verify('time', r.bodyBytes, r.signature, KEYS.device.publicKey)).toBe(false);
  });
  it('unlock responses are signatures over the challenge bytes under the unlock context', () => {
    const u = samples.find((s) => s.message.type === 'unlockResponse')?.message;
    if (u?.type !== 'unlockResponse') throw new Error('no response sample');
    expect(verify('unlock', u.challengeBytes, u.signature, KEYS.phoneResident.publicKey)).toBe(true);
    expect(verify('head', u.challengeBytes, u.signature, KEYS.phoneResident.publicKey)).toBe(false);
  });
  it('hello refuses another protocol version as UNSUPPORTED_VERSION and short nonces as MALFORMED', () => {
    const h = samples[0]?.message;
    if (h?.type !== 'hello') throw new Error('no hello');
    expect(() => decodeMessage(encodeMessage({ ...h, protocolVersion: 2 }))).toThrow(expect.objectContaining({ reason: 'UNSUPPORTED_VERSION' }));
    expect(() => decodeMessage(encodeMessage({ ...h, nonce: h.nonce.slice(0, NONCE_BYTES - 1) }))).toThrow(expect.objectContaining({ reason: 'MALFORMED' }));
  });
  it('unknown keys, unknown types and contradictory decisions are MALFORMED', () => {
    expect(() => decodeMessage(encode(cmap([[0, 14], [1, 5], [2, 0]])))).toThrow(expect.objectContaining({ reason: 'MALFORMED' }));
    expect(() => decodeMessage(encode(cmap([[0, 2]])))).toThrow(expect.objectContaining({ reason: 'MALFORMED' }));
    expect(() => decodeMessage(encode(cmap([[0, 10], [1, true], [2, 2], [3, 1]])))).toThrow(expect.objectContaining({ reason: 'MALFORMED' }));
    expect(() => decodeMessage(new Uint8Array(100_000).fill(0x81))).toThrow(expect.objectContaining({ reason: 'OVER_LIMIT' }));
  });
  it('error details are capped at 120 UTF-16 units without splitting a surrogate pair', () => {
    const detail = 'x'.repeat(119) + '\u{1F512}tail';
    const m = decodeMessage(encodeMessage({ type: 'error', reason: 'INTERNAL', detail }));
    expect(m).toEqual({ type: 'error', reason: 'INTERNAL', detail: 'x'.repeat(119) });
  });
});

describe('audit chain', () => {
  it('h(n) = SHA-256(h(n-1) || record bytes) from the genesis hash; gaps are refused', () => {
    const recs = SAMPLE_AUDIT_RECORDS.map(encodeAuditRecord);
    let h = AUDIT_GENESIS;
    for (const r of recs) h = chainAudit(h, r);
    expect(toHex(verifyAuditChain(AUDIT_GENESIS, recs).head)).toBe(toHex(h));
    expect(verifyAuditChain(AUDIT_GENESIS, recs).lastSeq).toBe(44);
    expect(() => verifyAuditChain(AUDIT_GENESIS, [recs[0] as Uint8Array, recs[2] as Uint8Array])).toThrow(ProtocolError);
    for (const [i, r] of recs.entries()) expect(auditRecordFromBytes(r)).toEqual(SAMPLE_AUDIT_RECORDS[i]);
  });
});

describe('decodeMessage never throws anything but ProtocolError (properties shared with `npm run fuzz`)', () => {
  for (const p of FUZZ_PROPERTIES.filter((x) => x.group === 'messages')) {
    it(`${p.name} (${FC_RUNS} runs)`, () => {
      fc.assert(toFcProperty(p), { numRuns: FC_RUNS });
    }, propertyTimeout(FC_RUNS, p.msPerRunBudget));
  }
});
