// Vectors that pin what SPEC.md once left to the reader (issue 13's fifteen items): which
// error a receiver gives for a registry value of any size, a range error inside a signed
// body, a fixed-size array of the wrong length, a value below its minimum, credId 0, the
// largest window integer, text length units, empty details, reserved capability bits, a
// parent on a non-guest, schedule window order, and empty containers and the depth limit.
// Every case names the requirement ids (SPEC.md) it checks.

import { type CborValue, encode } from '../cbor';
import { encodeMessage, makeReceipt, makeSignedTime, encodeChallengeBody, type Message, AUDIT_GENESIS, AUDIT_EVENTS } from '../messages';
import { DECISION_REASONS, ERROR_CODES } from '../errors';
import { cmap } from '../schema';
import { MAX_WINDOW_INTEGER, entryToCbor } from '../table';
import { deriveSeed32 } from '../random';
import { EPOCH, KEYS, LOCK_ID, WORLD_SEED, residentPhone, guestPhone } from './world';

export interface RawCase {
  comment: string;
  flags: string[];
  hex: string;
  requirements: string[];
}

const h = (v: CborValue): string => Buffer.from(encode(v)).toString('hex');
const m = (msg: Message): string => Buffer.from(encodeMessage(msg)).toString('hex');
const nonce = deriveSeed32(WORLD_SEED, 'nonce:hello').slice(0, 16);
const zero32 = new Uint8Array(32);

function hello(over: Partial<Record<number, CborValue>> = {}): string {
  const base: [number, CborValue][] = [
    [0, 1], [1, 1], [2, LOCK_ID], [3, 1], [4, zero32], [5, nonce], [6, EPOCH], [7, 0x1f], [8, 44], [9, 87],
  ];
  const map = new Map<number, CborValue>(base);
  for (const [k, v] of Object.entries(over)) if (v !== undefined) map.set(Number(k), v);
  return h(new Map([...map.entries()].sort((a, b) => a[0] - b[0])));
}

/** Messages a receiver must accept and re-encode byte for byte. */
export function acceptedMessageCases(): (RawCase & { messageType: string; typeCode: number })[] {
  const emoji60 = '\u{1F511}'.repeat(60); // 120 UTF-16 code units, 240 UTF-8 bytes
  return [
    { comment: 'hello with certSerial 1 (the lock holds the online-key cert of serial 1)', flags: ['CertSerial'], hex: hello({ 10: 1 }), messageType: 'hello', typeCode: 1, requirements: ['R-HELLO-2'] },
    { comment: 'hello with certSerial 2^32-1 (largest serial)', flags: ['CertSerial', 'Edge'], hex: hello({ 10: 0xffff_ffff }), messageType: 'hello', typeCode: 1, requirements: ['R-HELLO-2', 'R-SCHEMA-2'] },
    { comment: 'hello announcing reserved capability bits 7..15: accepted, the bits ignored, re-encoded as received', flags: ['Reserved'], hex: hello({ 7: 0xff9f }), messageType: 'hello', typeCode: 1, requirements: ['R-HELLO-3', 'R-CBOR-1'] },
    { comment: 'error detail of exactly 120 UTF-16 code units (60 astral characters, 240 UTF-8 bytes)', flags: ['TextLength', 'Edge'], hex: m({ type: 'error', reason: 'INTERNAL', detail: emoji60 }), messageType: 'error', typeCode: 13, requirements: ['R-MSG-2', 'R-SCHEMA-7'] },
    { comment: 'error detail of exactly 120 ASCII characters', flags: ['TextLength', 'Edge'], hex: m({ type: 'error', reason: 'INTERNAL', detail: 'x'.repeat(120) }), messageType: 'error', typeCode: 13, requirements: ['R-MSG-2', 'R-SCHEMA-7'] },
    { comment: 'timeAck with lockTime 2^53-1 (largest integer)', flags: ['Edge'], hex: m({ type: 'timeAck', lockTime: Number.MAX_SAFE_INTEGER }), messageType: 'timeAck', typeCode: 14, requirements: ['R-CBOR-1', 'R-SCHEMA-2'] },
    { comment: 'unlockRequest for credId 2^32-1 (largest credId)', flags: ['Edge'], hex: m({ type: 'unlockRequest', credId: 0xffff_ffff }), messageType: 'unlockRequest', typeCode: 7, requirements: ['R-TABLE-6', 'R-SCHEMA-2'] },
    { comment: 'lock id of exactly 32 characters in hello', flags: ['TextLength', 'Edge'], hex: hello({ 2: 'a'.repeat(32) }), messageType: 'hello', typeCode: 1, requirements: ['R-SCHEMA-7'] },
  ];
}

/** Messages a receiver must refuse with exactly this code. */
export function refusedMessageCases(): (RawCase & { expectedError: string })[] {
  const long = 'a'.repeat(33);
  const receiptBody = { lockId: long, version: 1, digest: zero32, nonce, lockTime: EPOCH, auditSeq: 1, auditHead: zero32 };
  const record = (over: Partial<Record<number, CborValue>>): Uint8Array => {
    const base = new Map<number, CborValue>([[1, 41], [2, EPOCH], [3, 1]]);
    for (const [k, v] of Object.entries(over)) if (v !== undefined) base.set(Number(k), v);
    return encode(new Map([...base.entries()].sort((a, b) => a[0] - b[0])));
  };
  const exportOf = (records: CborValue[]): string => h(cmap([[0, 12], [1, AUDIT_GENESIS], [2, records]]));
  const c = (comment: string, flags: string[], hex: string, expectedError: string, requirements: string[]): RawCase & { expectedError: string } =>
    ({ comment, flags, hex, expectedError, requirements });
  // The first value each registry leaves unassigned (registries grow: never a literal here).
  const unassigned = (r: Record<string, number>): number => Math.max(...Object.values(r)) + 1;
  const freeError = unassigned(ERROR_CODES);
  const freeReason = unassigned(DECISION_REASONS);
  const freeEvent = unassigned(AUDIT_EVENTS);
  return [
    // 1. empty detail
    c('error with detail "" written out (an empty detail is omitted)', ['Canonical'], h(cmap([[0, 13], [1, 13], [2, '']])), 'MALFORMED', ['R-MSG-2', 'R-CBOR-1']),
    // 2. registry values of any size
    c('message type 256', ['Registry'], h(cmap([[0, 256]])), 'MALFORMED', ['R-SCHEMA-5']),
    c('message type 2^32', ['Registry'], h(cmap([[0, 2 ** 32]])), 'MALFORMED', ['R-SCHEMA-5']),
    c('error code 256', ['Registry'], h(cmap([[0, 13], [1, 256]])), 'MALFORMED', ['R-SCHEMA-5']),
    c(`error code ${freeError} (unassigned)`, ['Registry'], h(cmap([[0, 13], [1, freeError]])), 'MALFORMED', ['R-SCHEMA-5']),
    c('decision reason 256', ['Registry'], h(cmap([[0, 10], [1, false], [2, 256], [3, 1]])), 'MALFORMED', ['R-SCHEMA-5']),
    c(`decision reason ${freeReason} (unassigned)`, ['Registry'], h(cmap([[0, 10], [1, false], [2, freeReason], [3, 1]])), 'MALFORMED', ['R-SCHEMA-5']),
    c('audit record with event 256 in an export', ['Registry'], exportOf([record({ 3: 256 })]), 'MALFORMED', ['R-SCHEMA-5', 'R-MSG-3']),
    c(`audit record with event ${freeEvent} (unassigned) in an export`, ['Registry'], exportOf([record({ 3: freeEvent })]), 'MALFORMED', ['R-SCHEMA-5', 'R-MSG-3']),
    c('hello with protocol version 256', ['Version'], hello({ 1: 256 }), 'UNSUPPORTED_VERSION', ['R-HELLO-1']),
    // 3. range errors inside signed bodies
    c('receipt whose body has a 33-character lock id (inside a signed body)', ['SignedBody'], m(makeReceipt(receiptBody, KEYS.device.secretKey)), 'MALFORMED', ['R-SCHEMA-6']),
    c('signed time whose body has a 33-character lock id', ['SignedBody'], m(makeSignedTime({ lockId: long, time: EPOCH, keyId: KEYS.online1.keyId, version: 1, digest: zero32 }, KEYS.online1.secretKey)), 'MALFORMED', ['R-SCHEMA-6']),
    c('challenge whose body names credId 2^32', ['SignedBody'], h(cmap([[0, 8], [1, encodeChallengeBody({ lockId: LOCK_ID, sessionId: new Uint8Array(8), nonce, credId: 2 ** 32, expiresAtMs: EPOCH * 1000 })]])), 'MALFORMED', ['R-SCHEMA-6']),
    c('audit record with reason 256 (range error inside the record)', ['SignedBody'], exportOf([record({ 4: 1, 5: 256 })]), 'MALFORMED', ['R-SCHEMA-6', 'R-MSG-3']),
    // 5. audit export records
    c('audit export record of 65 bytes (longer than 64)', ['OverLimit'], exportOf([new Uint8Array(65)]), 'OVER_LIMIT', ['R-MSG-3', 'R-SCHEMA-2']),
    c('audit export record that is not CBOR (0xff)', ['Malformed'], exportOf([new Uint8Array([0xff])]), 'MALFORMED', ['R-MSG-3', 'R-SCHEMA-6']),
    c('audit export record that is a text string', ['Malformed'], exportOf(['a']), 'MALFORMED', ['R-MSG-3', 'R-SCHEMA-1']),
    // 6/7. below a minimum, credId 0
    c('unlockRequest for credId 0 (reserved)', ['Minimum'], h(cmap([[0, 7], [1, 0]])), 'MALFORMED', ['R-TABLE-6', 'R-SCHEMA-3']),
    c('unlockRequest for credId 2^32', ['Range'], h(cmap([[0, 7], [1, 2 ** 32]])), 'OVER_LIMIT', ['R-SCHEMA-2']),
    c('challenge whose body names credId 0', ['Minimum', 'SignedBody'], h(cmap([[0, 8], [1, encodeChallengeBody({ lockId: LOCK_ID, sessionId: new Uint8Array(8), nonce, credId: 0, expiresAtMs: EPOCH * 1000 })]])), 'MALFORMED', ['R-TABLE-6', 'R-SCHEMA-3']),
    // 13. text length: UTF-16 units, length before pattern
    c('hello with a 33-character lock id', ['TextLength'], hello({ 2: long }), 'OVER_LIMIT', ['R-SCHEMA-7', 'R-SCHEMA-2']),
    c('hello with a 33-character upper-case lock id: length is checked before the pattern', ['TextLength'], hello({ 2: 'A'.repeat(33) }), 'OVER_LIMIT', ['R-SCHEMA-7']),
    c('hello with lock id "LK-1" (pattern)', ['Pattern'], hello({ 2: 'LK-1' }), 'MALFORMED', ['R-SCHEMA-7']),
    c('hello with an empty lock id (pattern)', ['Pattern'], hello({ 2: '' }), 'MALFORMED', ['R-SCHEMA-7']),
    c('error detail of 121 ASCII characters', ['TextLength'], h(cmap([[0, 13], [1, 14], [2, 'x'.repeat(121)]])), 'OVER_LIMIT', ['R-MSG-2', 'R-SCHEMA-7']),
    c('error detail of 61 astral characters (122 UTF-16 code units, 244 bytes)', ['TextLength'], h(cmap([[0, 13], [1, 14], [2, '\u{1F511}'.repeat(61)]])), 'OVER_LIMIT', ['R-MSG-2', 'R-SCHEMA-7']),
    // 15. capabilities above 16 bits
    c('hello with capabilities 0x10000 (above 16 bits)', ['Range'], hello({ 7: 0x10000 }), 'OVER_LIMIT', ['R-HELLO-3', 'R-SCHEMA-2']),
    c('hello with certSerial 2^32', ['CertSerial', 'Range'], hello({ 10: 2 ** 32 }), 'OVER_LIMIT', ['R-HELLO-2', 'R-SCHEMA-2']),
    c('hello with certSerial as a byte string', ['CertSerial'], hello({ 10: new Uint8Array(1) }), 'MALFORMED', ['R-HELLO-2', 'R-SCHEMA-1']),
    c('timeAck with lockTime 2^53 (decoder INTEGER_RANGE)', ['Edge', 'Cbor'], 'a2000e011b0020000000000000', 'MALFORMED', ['R-CBOR-1']),
  ];
}

/** Tables (table.json) whose decoding must fail with this code. */
export function refusedTableCases(tbl: (entries: CborValue[], policy?: CborValue) => string): (RawCase & { expectedError: string })[] {
  const e1 = entryToCbor(residentPhone(1));
  const g2 = entryToCbor(guestPhone(2, 1));
  const withKey = (mm: Map<number, CborValue>, k: number, v: CborValue): Map<number, CborValue> =>
    new Map<number, CborValue>([...[...mm].filter(([key]) => key !== k), [k, v] as [number, CborValue]].sort((a, b) => a[0] - b[0]));
  const without = (mm: Map<number, CborValue>, k: number): Map<number, CborValue> => new Map([...mm].filter(([key]) => key !== k));
  const policy = (over: Record<number, number>): CborValue => new Map<number, CborValue>([[1, 5], [2, 60], [3, 0], [4, 5], [5, 16]].map(([k, v]) => [k as number, (over[k as number] ?? v) as number]));
  const win = (days: number, start: number, end: number): number => days * 0x400000 + start * 0x800 + end;
  const c = (comment: string, flags: string[], hex: string, expectedError: string, requirements: string[]): RawCase & { expectedError: string } =>
    ({ comment, flags, hex, expectedError, requirements });
  return [
    c('entry type 256 (registry value above a byte)', ['Registry'], tbl([withKey(e1, 2, 256)]), 'MALFORMED', ['R-SCHEMA-5']),
    c('entry type 16 (kind 4, unassigned)', ['Registry'], tbl([withKey(e1, 2, 16)]), 'MALFORMED', ['R-SCHEMA-5']),
    c('validity with 3 elements (fixed-size pair)', ['FixedArray'], tbl([withKey(e1, 8, [1, 2, 3])]), 'MALFORMED', ['R-SCHEMA-4']),
    c('validity with 1 element (fixed-size pair)', ['FixedArray'], tbl([withKey(e1, 8, [1])]), 'MALFORMED', ['R-SCHEMA-4']),
    c('lockoutSeconds 0 (below its minimum 1)', ['Minimum'], tbl([e1], policy({ 2: 0 })), 'MALFORMED', ['R-SCHEMA-3']),
    c('relockSeconds 0 (below its minimum 1)', ['Minimum'], tbl([e1], policy({ 4: 0 })), 'MALFORMED', ['R-SCHEMA-3']),
    c('dailyCodeSlots 257 (above its maximum 256)', ['Range'], tbl([e1], policy({ 5: 257 })), 'OVER_LIMIT', ['R-SCHEMA-2']),
    c('guest whose parent is credId 0', ['Minimum'], tbl([e1, withKey(g2, 6, 0)]), 'MALFORMED', ['R-TABLE-6', 'R-SCHEMA-3']),
    c(`schedule window ${MAX_WINDOW_INTEGER + 1} (2^29, above the largest window integer)`, ['Range'], tbl([withKey(e1, 7, [MAX_WINDOW_INTEGER + 1])]), 'OVER_LIMIT', ['R-TABLE-5', 'R-SCHEMA-2']),
    c(`schedule window ${MAX_WINDOW_INTEGER} (2^29-1: start 2047 > 1440)`, ['Range'], tbl([withKey(e1, 7, [MAX_WINDOW_INTEGER])]), 'MALFORMED', ['R-TABLE-5']),
    c('schedule windows in descending order', ['Order'], tbl([withKey(e1, 7, [win(0x1f, 600, 700), win(0x1f, 420, 500)])]), 'MALFORMED', ['R-TABLE-5']),
    c('schedule with the same window twice', ['Order'], tbl([withKey(e1, 7, [win(0x1f, 420, 500), win(0x1f, 420, 500)])]), 'MALFORMED', ['R-TABLE-5']),
    c('resident credential with a parent (only guests have one)', ['Parent'], tbl([e1, withKey(withKey(without(g2, 6), 2, 0), 6, 1)]), 'MALFORMED', ['R-TABLE-4']),
    c('guest credential without a parent', ['Parent'], tbl([e1, without(g2, 6)]), 'MALFORMED', ['R-TABLE-4']),
    c('guest credential naming itself as parent', ['Parent'], tbl([e1, withKey(g2, 6, 2)]), 'MALFORMED', ['R-TABLE-1']),
    c('partner keycard without partnerId', ['Parent'], tbl([withKey(withKey(without(e1, 5), 2, 0x0b), 3, new Uint8Array(16))]), 'MALFORMED', ['R-TABLE-4']),
    c('entry flags with reserved bit 1 set', ['Reserved'], tbl([withKey(e1, 9, 2)]), 'MALFORMED', ['R-TABLE-7', 'R-SCHEMA-5']),
    c('doorcode verifier of 15 bytes', ['Length'], tbl([withKey(withKey(without(without(e1, 7), 8), 2, 0x04), 3, new Uint8Array(15))]), 'MALFORMED', ['R-SCHEMA-3']),
  ];
}

/** CBOR inputs at the depth and integer boundaries: accepted ones re-encode identically. */
export const BOUNDARY_CBOR_ACCEPTED: RawCase[] = [
  { comment: '2^53-1, the largest integer', flags: ['Boundary'], hex: '1b001fffffffffffff', requirements: ['R-CBOR-1'] },
  { comment: '-(2^53-1), the smallest integer', flags: ['Boundary'], hex: '3b001ffffffffffffe', requirements: ['R-CBOR-1'] },
  { comment: 'nesting depth exactly 8: 8 nested arrays around 0 (an integer is not a level)', flags: ['Boundary'], hex: '8181818181818181' + '00', requirements: ['R-CBOR-2'] },
  { comment: 'depth exactly 8 where the innermost level is an empty array', flags: ['Boundary'], hex: '81818181818181' + '80', requirements: ['R-CBOR-2'] },
  { comment: 'depth exactly 8 where the innermost level is an empty map', flags: ['Boundary'], hex: '81818181818181' + 'a0', requirements: ['R-CBOR-2'] },
];

export const BOUNDARY_CBOR_REFUSED: (RawCase & { code: string })[] = [
  { comment: 'depth 9 where the innermost level is an empty array (an empty container is a level)', flags: ['Boundary', 'Limits'], hex: '8181818181818181' + '80', code: 'DEPTH_LIMIT', requirements: ['R-CBOR-2'] },
  { comment: 'depth 9 where the innermost level is an empty map', flags: ['Boundary', 'Limits'], hex: '8181818181818181' + 'a0', code: 'DEPTH_LIMIT', requirements: ['R-CBOR-2'] },
];

