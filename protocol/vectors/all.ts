// Every locksync test-vector file, generated in memory from fixed seeds (world.ts). The
// script generate.ts writes them to fixtures/vectors/; protocol/vectors.test.ts regenerates
// them and fails if any byte differs from what is committed.

import { type CborValue, CborError, decode, encode } from '../cbor';
import { SIGNING_CONTEXTS, type SigningContext, signatureInput, sign, verify } from '../crypto';
import { dailyCode, doorcodeVerifier, keycardVerifier, SINGLE_USE_WINDOW_SECONDS } from '../codes';
import { ERROR_CODES, ProtocolError } from '../errors';
import { AUDIT_GENESIS, MESSAGE_TYPES, chainAudit, decodeMessage, encodeAuditRecord, encodeMessage } from '../messages';
import { cmap } from '../schema';
import { type Op, applyOps, opToCbor } from '../ops';
import { encodeLockInfo, scanResponseEir, advertisingEir } from '../gatt';
import { type Entry, type Table, DEFAULT_LOCK_POLICY, emptyTable, encodeEntry, encodeTable, tableDigest, decodeTableBytes, entryToCbor } from '../table';
import { type TableState, encodeTableHead, keyCertToCbor } from '../update';
import { framingVectors } from './framing';
import { ed25519StrictVectors } from './ed25519-strict';
import { REFUSAL_CASES, RFC8949_APPENDIX_A } from './cbor-cases';
import { SAMPLE_AUDIT_RECORDS, messageSamples } from './message-samples';
import { hex, vectorFile, type VectorFile, type VectorGroup, type VectorTest } from './shape';
import { receiveUpdate, updateCases } from './update-cases';
import { timeCases } from './time-cases';
import { accessVectors, auditVectors } from './processing';
import { BOUNDARY_CBOR_ACCEPTED, BOUNDARY_CBOR_REFUSED, acceptedMessageCases, refusedMessageCases, refusedTableCases } from './clarifications';
import { EPOCH, KEYS, LOCK_ID, LOCK_SECRET, WORLD_SEED, baseTable, guestPhone, partnerCredential, residentPhone, staffDoorcode } from './world';

const t = (comment: string, flags: string[], result: 'valid' | 'invalid', fields: Record<string, unknown>): VectorTest => ({
  tcId: 0,
  comment,
  flags,
  result,
  ...fields,
});

const WORLD_NOTE = `All keys derive from seed "${WORLD_SEED}" (protocol/vectors/world.ts); they are test keys, never provision a lock with them.`;

// ---------------------------------------------------------------------------------------

function cborVectors(): VectorFile {
  const valid: VectorTest[] = RFC8949_APPENDIX_A.map((ex) => t(`RFC 8949 Appendix A: ${ex.comment}`, ['AppendixA'], 'valid', { input: ex.hex, requirements: ['R-CBOR-1'] }));
  for (const b of BOUNDARY_CBOR_ACCEPTED) {
    if (Buffer.from(encode(decode(Buffer.from(b.hex, 'hex')))).toString('hex') !== b.hex) throw new Error(`cbor boundary "${b.comment}" does not round-trip`);
    valid.push(t(b.comment, b.flags, 'valid', { input: b.hex, requirements: b.requirements }));
  }
  type Refusal = (typeof REFUSAL_CASES)[number] & { requirements?: string[] };
  const refusals: Refusal[] = [...REFUSAL_CASES, ...BOUNDARY_CBOR_REFUSED.map((b) => ({ hex: b.hex, code: b.code as Refusal['code'], comment: b.comment, flags: b.flags, requirements: b.requirements }))];
  const invalid: VectorTest[] = refusals.map((c) => {
    let got: string | undefined;
    try {
      decode(Buffer.from(c.hex, 'hex'), c.limits ?? {});
    } catch (e) {
      if (e instanceof CborError) got = e.code;
    }
    if (got !== c.code) throw new Error(`cbor case "${c.comment}": expected ${c.code}, got ${got}`);
    const fields: Record<string, unknown> = { input: c.hex, expectedError: c.code };
    if (c.limits !== undefined) fields.limits = c.limits;
    fields.requirements = c.requirements ?? (c.code.endsWith('_LIMIT') ? ['R-CBOR-1', 'R-CBOR-2'] : ['R-CBOR-1']);
    return t(c.comment, c.flags, 'invalid', fields);
  });
  return vectorFile(
    'locksync-deterministic-cbor',
    [
      'Strict deterministic-CBOR decoder (SPEC.md §2).',
      'valid: input decodes and re-encodes to exactly the same bytes.',
      'invalid: decoding must fail with expectedError; limits override the defaults (maxBytes 2097152, maxDepth 8, maxItems 400000, maxStringBytes 4096).',
    ],
    { AppendixA: 'example from RFC 8949 Appendix A inside the locksync subset' },
    [
      { type: 'CborRoundTrip', tests: valid },
      { type: 'CborDecodeInvalid', tests: invalid },
    ],
  );
}

// ---------------------------------------------------------------------------------------

function messageVectors(): VectorFile {
  const tests = messageSamples().map(({ comment, message }) =>
    t(comment, ['Message'], 'valid', { messageType: message.type, typeCode: MESSAGE_TYPES[message.type], msg: hex(encodeMessage(message)), requirements: ['R-CBOR-1'] }),
  );
  for (const a of acceptedMessageCases()) {
    const back = hex(encodeMessage(decodeMessage(Buffer.from(a.hex, 'hex'))));
    if (back !== a.hex) throw new Error(`message vector "${a.comment}" does not re-encode identically`);
    tests.push(t(a.comment, a.flags, 'valid', { messageType: a.messageType, typeCode: a.typeCode, msg: a.hex, requirements: a.requirements }));
  }
  const h = (v: CborValue): string => hex(encode(v));
  const hello = messageSamples()[0]?.message;
  if (hello?.type !== 'hello') throw new Error('first sample must be hello');
  const invalidInputs: [string, string[], string, string[]][] = [
    ['hello with protocol version 2', ['Version'], hex(encodeMessage({ ...hello, protocolVersion: 2 })), ['R-HELLO-1']],
    ['hello with a 15-byte nonce', ['Malformed'], hex(encodeMessage({ ...hello, nonce: hello.nonce.slice(0, 15) })), ['R-SCHEMA-3']],
    ['hello with battery 101', ['Range'], hex(encodeMessage({ ...hello, battery: 101 })), ['R-SCHEMA-2']],
    ['unknown message type 2', ['Malformed'], h(cmap([[0, 2]])), ['R-SCHEMA-5']],
    ['timeAck with an unknown key 2', ['Malformed'], h(cmap([[0, 14], [1, 5], [2, 0]])), ['R-SCHEMA-1', 'R-EXT-1']],
    ['decision granted=true with reason OUT_OF_SCHEDULE', ['Malformed'], h(cmap([[0, 10], [1, true], [2, 2], [3, 1]])), ['R-MSG-1']],
    ['error with unknown code 99', ['Malformed'], h(cmap([[0, 13], [1, 99]])), ['R-SCHEMA-5']],
    ['not a map', ['Malformed'], h([0, 14]), ['R-SCHEMA-1']],
    ['timeAck with lockTime as a non-preferred integer', ['Malformed', 'Cbor'], 'a2000e011a00000005', ['R-CBOR-1']],
    ['100 nested arrays (decoder depth limit)', ['OverLimit', 'Cbor'], '81'.repeat(100) + '00', ['R-CBOR-2']],
    ['batch with no items', ['Malformed', 'Batch'], h(cmap([[0, 19], [1, []]])), ['R-BATCH-1']],
    ['batch with 5 items (more than MAX_BATCH_ITEMS 4)', ['OverLimit', 'Batch'], h(cmap([[0, 19], [1, Array.from({ length: 5 }, () => encodeMessage({ type: 'receiptRequest' }))]])), ['R-BATCH-1']],
    ['batch item that is not a byte string', ['Malformed', 'Batch'], h(cmap([[0, 19], [1, [15]]])), ['R-BATCH-1']],
    ['batchReply with no answers', ['Malformed', 'Batch'], h(cmap([[0, 20], [1, []]])), ['R-BATCH-1']],
    ...refusedMessageCases().map((c): [string, string[], string, string[]] => [c.comment, c.flags, c.hex, c.requirements]),
  ];
  const expectedOf = new Map(refusedMessageCases().map((c) => [c.hex, c.expectedError]));
  const invalid = invalidInputs.map(([comment, flags, msg, requirements]) => {
    let reason: string | undefined;
    try {
      decodeMessage(Buffer.from(msg, 'hex'));
    } catch (e) {
      if (e instanceof ProtocolError) reason = e.reason;
    }
    if (reason === undefined) throw new Error(`message vector "${comment}" was accepted`);
    const want = expectedOf.get(msg);
    if (want !== undefined && want !== reason) throw new Error(`message vector "${comment}": expected ${want}, got ${reason}`);
    return t(comment, flags, 'invalid', { msg, expectedError: reason, requirements });
  });
  const recs = SAMPLE_AUDIT_RECORDS.map(encodeAuditRecord);
  const heads: string[] = [];
  let head = AUDIT_GENESIS;
  for (const r of recs) heads.push(hex((head = chainAudit(head, r))));
  return vectorFile(
    'locksync-session-messages',
    [
      'Session messages (SPEC.md §6). valid: decodeMessage(msg) has type messageType and re-encodes to msg.',
      'invalid: decodeMessage(msg) fails with ProtocolError expectedError.',
      'AuditChain: h0 = SHA-256("locksync/v1/audit-genesis"); h(n) = SHA-256(h(n-1) || record bytes).',
      WORLD_NOTE,
    ],
    { Gatt: 'GATT INFO value and advertising payloads (SPEC.md §13.1)', Message: 'one example per message type', Version: 'protocol version negotiation', Range: 'field beyond its range', Cbor: 'refused by the CBOR decoder' },
    [
      { type: 'MessageRoundTrip', tests },
      { type: 'MessageDecodeInvalid', tests: invalid },
      {
        type: 'GattLayout',
        tests: [
          t('INFO characteristic value: lk-0001, protocol 1, capabilities 0x6f, table v2', ['Gatt'], 'valid', { lockInfo: hex(encodeLockInfo({ lockId: LOCK_ID, protocolVersion: 1, capabilities: 0x6f, version: 2 })) }),
          t('advertising data: flags + 128-bit service UUID', ['Gatt'], 'valid', { advertisingData: hex(advertisingEir()) }),
          t('scan response: lk-0001, table v2, needs-sync flag', ['Gatt'], 'valid', { scanResponse: hex(scanResponseEir({ lockId: LOCK_ID, version: 2, flags: 1 })) }),
        ],
      },
      {
        type: 'AuditChain',
        genesis: hex(AUDIT_GENESIS),
        tests: [t('four records chained from the genesis hash', ['AuditChain'], 'valid', { records: recs.map(hex), heads })],
      },
    ],
  );
}

// ---------------------------------------------------------------------------------------

export function stateToVector(s: TableState): Record<string, unknown> {
  return {
    lockId: s.lockId,
    rootPublicKeys: s.trust.roots.map(hex),
    certs: s.trust.certs.map((c) => hex(encode(keyCertToCbor(c)))),
    certFloor: s.trust.certFloor,
    table: hex(encodeTable(s.table)),
    head: s.head === null ? null : hex(encodeTableHead(s.head)),
    versionFloor: s.versionFloor,
    newestIssuedAt: s.newestIssuedAt,
    leaseAnchor: s.leaseAnchor,
  };
}

function updateVectors(): VectorFile {
  const valid: VectorTest[] = [];
  const invalid: VectorTest[] = [];
  for (const c of updateCases()) {
    const r = receiveUpdate(c.state, c.message);
    const base = { state: stateToVector(c.state), msg: hex(c.message) };
    if ('error' in c.expected) {
      if (r.ok || r.error.reason !== c.expected.error) throw new Error(`update vector "${c.comment}": expected ${c.expected.error}`);
      invalid.push(t(c.comment, c.flags, 'invalid', { ...base, expectedError: c.expected.error, expectedErrorCode: ERROR_CODES[c.expected.error], requirements: c.requirements }));
    } else {
      if (!r.ok) throw new Error(`update vector "${c.comment}": ${r.error.message}`);
      valid.push(
        t(c.comment, c.flags, 'valid', {
          ...base,
          expected: {
            version: r.state.versionFloor,
            digest: hex(tableDigest(r.state.table)),
            table: hex(encodeTable(r.state.table)),
            head: r.state.head === null ? null : hex(encodeTableHead(r.state.head)),
            certFloor: r.state.trust.certFloor,
            certs: r.state.trust.certs.map((k) => hex(encode(keyCertToCbor(k)))),
            newestIssuedAt: r.state.newestIssuedAt,
            leaseAnchor: r.state.leaseAnchor,
          },
          requirements: c.requirements,
        }),
      );
    }
  }
  return vectorFile(
    'locksync-table-updates',
    [
      'Deltas and snapshots (SPEC.md §5) applied to a provisioned lock state.',
      'state: lockId, rootPublicKeys, accepted key certs ([certBytes, signature] CBOR) and certFloor, current table (canonical encoding),',
      'head (encoded table head, null on a fresh lock), versionFloor, newestIssuedAt. msg: the delta or snapshot message bytes.',
      'valid: the lock accepts; expected gives the whole new state: version (= version floor), digest, table, head, certFloor, the certs held',
      '(each [certBytes, signature] CBOR, in the order admitted), newestIssuedAt and leaseAnchor (SPEC.md §5.4 step 8).',
      'invalid: the lock refuses with expectedError (ERROR_CODES number expectedErrorCode) and keeps its state byte for byte.',
      WORLD_NOTE,
    ],
    {
      Valid: 'accepted update', Snapshot: 'full table', Delta: 'ops from the current version', RemovePartner: 'partner-wide removal',
      Cascade: 'removal cascading to guests', Rotation: 'online key rotation via a carried cert', BadSignature: 'signature does not verify',
      UntrustedKey: 'signer not trusted', WrongLock: 'bound to another lock', Rollback: 'version not above the floor', Replay: 'an accepted update again',
      BrokenChain: 'base version/digest mismatch', DigestMismatch: 'result differs from the signed head', OverLimit: 'beyond a limit',
      Malformed: 'not a valid message', Truncated: 'bytes missing', Float: 'CBOR float', InvalidOp: 'op cannot apply', WeakKey: 'phone public key of small order or not canonical (SPEC.md §3.3)', NotOnCurve: 'phone public key bytes that are no curve point: admitted, refused at unlock by the strict verifier (SPEC.md §3.3)',
    },
    [
      { type: 'UpdateAccepted', tests: valid },
      { type: 'UpdateRefused', tests: invalid },
    ],
  );
}

// ---------------------------------------------------------------------------------------

function entryFields(e: Entry): Record<string, unknown> {
  const f: Record<string, unknown> = { credId: e.credId, kind: e.kind, holder: e.holder, secret: hex(e.secret) };
  if (e.partnerId !== undefined) f.partnerId = e.partnerId;
  if (e.keyId !== undefined) f.keyId = e.keyId;
  if (e.parent !== undefined) f.parent = e.parent;
  if (e.schedule !== undefined) f.schedule = e.schedule;
  if (e.validFrom !== undefined) f.validFrom = e.validFrom;
  if (e.validUntil !== undefined) f.validUntil = e.validUntil;
  f.flags = e.flags;
  return f;
}

function tableVectors(): VectorFile {
  const entries: Entry[] = [residentPhone(1), guestPhone(2, 1), staffDoorcode(3), partnerCredential(1000), residentPhone(0xffff)];
  const entryTests = entries.map((e) => t(`${e.kind} credential of a ${e.holder}`, ['Entry'], 'valid', { entry: entryFields(e), encoded: hex(encodeEntry(e)), requirements: ['R-CBOR-1'] }));
  const tables: [string, Table][] = [
    ['empty table, default lock policy', emptyTable()],
    ['lk-0001 v1: resident, guest, staff doorcode, 3 partner keycards, one Key policy', baseTable(3)],
    ['lk-0001 with 10 partner keycards', baseTable(10)],
  ];
  {
    // Boundaries: exactly 4,096 Key policies, and 8 windows on every weekday of one schedule.
    const policies: Op[] = [];
    for (let k = 0; k < 4096; k++) policies.push({ op: 'setKeyPolicy', policy: { keyId: 10_000 + k, doorcodesEnabled: k % 2 === 0 } });
    tables.push(['exactly 4,096 Key policies (the limit)', applyOps(emptyTable(), policies)]);
    const eight = Array.from({ length: 8 }, (_, i) => ({ days: 0x7f, start: i * 120, end: i * 120 + 60 }));
    tables.push(['a resident with 8 windows on every weekday (the limit)', applyOps(emptyTable(), [{ op: 'put', entry: { ...residentPhone(1), schedule: eight } }])]);
  }
  const tableTests = tables.map(([comment, tb]) => t(comment, ['Table'], 'valid', { table: hex(encodeTable(tb)), digest: hex(tableDigest(tb)), requirements: ['R-CBOR-1', 'R-TABLE-5'] }));
  const e1 = entryToCbor(residentPhone(1));
  const g2 = entryToCbor(guestPhone(2, 1));
  const pol = encode(cmap([[1, 5], [2, 60], [3, 0], [4, 5], [5, 16]]));
  const tbl = (es: CborValue[], policy: Uint8Array = pol): string =>
    hex(encode(cmap([[1, es], [2, []], [3, decode(policy)]])));
  const tblRaw = (es: CborValue[], policy?: CborValue): string => (policy === undefined ? tbl(es) : tbl(es, encode(policy)));
  const withKey = (m: Map<number, CborValue>, k: number, v: CborValue): Map<number, CborValue> => new Map([...m, [k, v]]);
  const invalidCases: [string, string[], string, string[], string?][] = [
    ['entries not in ascending credId order', ['Order'], tbl([g2, e1]), ['R-CBOR-1']],
    ['guest whose parent is not in the table', ['Parent'], tbl([g2]), ['R-TABLE-3']],
    ['flags 0 written out (must be omitted)', ['Canonical'], tbl([withKey(e1, 9, 0)]), ['R-TABLE-7']],
    ['validity [0, 0] written out (must be omitted)', ['Canonical'], tbl([withKey(e1, 8, [0, 0])]), ['R-TABLE-2']],
    ['validity until before from', ['Range'], tbl([withKey(e1, 8, [200, 100])]), ['R-TABLE-2']],
    ['unknown entry key 10', ['Unknown'], tbl([withKey(e1, 10, 1)]), ['R-SCHEMA-1']],
    ['unknown kind 3', ['Unknown'], tbl([withKey(e1, 2, 12)]), ['R-SCHEMA-5']],
    ['phone secret of 16 bytes', ['Length'], tbl([withKey(e1, 3, new Uint8Array(16))]), ['R-SCHEMA-3']],
    ['schedule window with start >= end', ['Range'], tbl([withKey(e1, 7, [0x7f * 0x400000 + 600 * 0x800 + 600])]), ['R-TABLE-5']],
    ['nine windows on Monday', ['Range'], tbl([withKey(e1, 7, Array.from({ length: 9 }, (_, i) => 1 * 0x400000 + (60 + i * 10) * 0x800 + 65 + i * 10))]), ['R-TABLE-5', 'R-SCHEMA-2']],
    ['credId 0', ['Range'], tbl([withKey(e1, 1, 0)]), ['R-TABLE-6', 'R-SCHEMA-3']],
    ['wrongCodeLimit 0', ['Range'], tbl([e1], encode(cmap([[1, 0], [2, 60], [3, 0], [4, 5], [5, 16]]))), ['R-SCHEMA-3']],
    ...refusedTableCases(tblRaw).map((c): [string, string[], string, string[], string] => [c.comment, c.flags, c.hex, c.requirements, c.expectedError]),
  ];
  const invalid = invalidCases.map(([comment, flags, table, requirements, want]) => {
    let reason: string | undefined;
    try {
      decodeTableBytes(Buffer.from(table, 'hex'));
    } catch (e) {
      if (e instanceof ProtocolError) reason = e.reason;
    }
    if (reason === undefined) throw new Error(`table vector "${comment}" was accepted`);
    if (want !== undefined && want !== reason) throw new Error(`table vector "${comment}": expected ${want}, got ${reason}`);
    return t(comment, flags, 'invalid', { table, expectedError: reason, requirements });
  });
  const ops: [string, Op][] = [
    ['put the staff doorcode', { op: 'put', entry: staffDoorcode(3) }],
    ['remove credential 1 (cascades to its guests)', { op: 'remove', credId: 1 }],
    ['remove every credential of partner 7', { op: 'removePartner', partnerId: 7 }],
    ['remove every credential of Key 100 and its policy', { op: 'removeKey', keyId: 100 }],
    ['set Key 100 policy: doorcodes off, no schedule', { op: 'setKeyPolicy', policy: { keyId: 100, doorcodesEnabled: false } }],
    ['set the default lock policy', { op: 'setLockPolicy', policy: DEFAULT_LOCK_POLICY }],
  ];
  const opTests = ops.map(([comment, o]) => t(comment, ['Op'], 'valid', { op: o.op, encoded: hex(encode(opToCbor(o))), requirements: ['R-UPD-5'] }));
  return vectorFile(
    'locksync-credential-table',
    [
      'Credential entries and tables (SPEC.md §4). Entry: the entry fields and their canonical encoding.',
      'Table: canonical table encoding and digest = SHA-256("locksync/v1/table" || 0x00 || table bytes).',
      'TableDecodeInvalid: decoding the table must fail with expectedError.',
      WORLD_NOTE,
    ],
    { Entry: 'entry encoding', Table: 'table digest', Op: 'delta op encoding', Order: 'ordering rule', Parent: 'parent rule', Canonical: 'canonical-form rule', Range: 'value out of range', Unknown: 'unknown key or code', Length: 'wrong byte-string length' },
    [
      { type: 'EntryEncoding', tests: entryTests },
      { type: 'TableDigest', tests: tableTests },
      { type: 'OpEncoding', tests: opTests },
      { type: 'TableDecodeInvalid', tests: invalid },
    ],
  );
}

// ---------------------------------------------------------------------------------------

function signatureVectors(): VectorFile {
  const contexts = Object.keys(SIGNING_CONTEXTS) as SigningContext[];
  const msg = encodeTableHead({ lockId: LOCK_ID, version: 2, digest: tableDigest(baseTable(3)), issuedAt: EPOCH, keyId: KEYS.online1.keyId });
  const groups: VectorGroup[] = [];
  for (const c of contexts) {
    const sig = sign(c, msg, KEYS.online1.secretKey);
    const tests: VectorTest[] = [t(`signature made and checked under "${SIGNING_CONTEXTS[c]}"`, ['Context'], 'valid', { context: SIGNING_CONTEXTS[c], msg: hex(msg), signatureInput: hex(signatureInput(c, msg)), sig: hex(sig), requirements: ['R-SIG-1'] })];
    for (const o of contexts) {
      if (o === c) continue;
      if (verify(o, msg, sig, KEYS.online1.publicKey)) throw new Error('context separation broken');
      tests.push(t(`"${SIGNING_CONTEXTS[c]}" signature checked under "${SIGNING_CONTEXTS[o]}"`, ['CrossContext'], 'invalid', { context: SIGNING_CONTEXTS[o], msg: hex(msg), sig: hex(sig), requirements: ['R-SIG-1'] }));
    }
    const flipped = sig.slice();
    flipped[63] = (flipped[63] as number) ^ 0x10;
    tests.push(t('signature with one bit flipped', ['Modified'], 'invalid', { context: SIGNING_CONTEXTS[c], msg: hex(msg), sig: hex(flipped), requirements: ['R-SIG-1'] }));
    groups.push({ type: 'ContextSignature', publicKey: hex(KEYS.online1.publicKey), keyId: hex(KEYS.online1.keyId), tests });
  }
  return vectorFile(
    'locksync-ed25519-contexts',
    [
      'Ed25519 (RFC 8032, pure) over signatureInput = ASCII(context) || 0x00 || msg (SPEC.md §3.3).',
      'valid: sig verifies under publicKey for that context; invalid: it must not.',
      'keyId = first 4 bytes of SHA-256(publicKey).',
      WORLD_NOTE,
    ],
    { Context: 'matching context', CrossContext: 'signature replayed under another context', Modified: 'signature altered' },
    groups,
  );
}

// ---------------------------------------------------------------------------------------

function codeVectors(): VectorFile {
  const doorcodes = ['0000000', '4815162', '9999999', '1234567'].map((code) =>
    t(`doorcode ${code}`, ['Doorcode'], 'valid', { code, verifier: hex(doorcodeVerifier(LOCK_SECRET, code)) }),
  );
  const uids = ['04a1b2c3', '04a1b2c3d4e5f6', '04a1b2c3d4e5f60718a9'].map((u) =>
    t(`keycard UID of ${u.length / 2} bytes`, ['Keycard'], 'valid', { uid: u, verifier: hex(keycardVerifier(LOCK_SECRET, Buffer.from(u, 'hex'))) }),
  );
  const daily: VectorTest[] = [];
  for (const date of ['2025-03-30', '2025-12-31']) {
    for (const slot of [0, 1, 15, 255]) {
      for (const kind of ['daily', 'dailySingleUse'] as const) {
        daily.push(t(`${kind} code, ${date}, slot ${slot}`, ['DailyCode'], 'valid', { localDate: date, slot, kind, code: dailyCode(LOCK_SECRET, date, slot, kind), requirements: ['R-CODE-1'] }));
      }
    }
  }
  return vectorFile(
    'locksync-code-derivation',
    [
      'Doorcode/keycard verifiers and daily codes under the per-lock secret (SPEC.md §11).',
      'doorcode verifier = HMAC-SHA-256(lockSecret, "locksync/v1/doorcode" || 0x00 || ASCII code)[0..16]',
      'keycard verifier  = HMAC-SHA-256(lockSecret, "locksync/v1/keycard" || 0x00 || UID)[0..16]',
      'daily code = decimal(BE32(HMAC-SHA-256(lockSecret, label || 0x00 || ASCII YYYY-MM-DD || slot byte)[0..4]) mod 10^7), zero-padded to 7 digits;',
      `label "locksync/v1/daily-code" or "locksync/v1/daily-single-use-code"; single-use codes lapse ${SINGLE_USE_WINDOW_SECONDS} s after first use.`,
      WORLD_NOTE,
    ],
    { Doorcode: 'permanent doorcode verifier', Keycard: 'keycard verifier', DailyCode: 'daily code derivation' },
    [
      { type: 'DoorcodeVerifier', lockSecret: hex(LOCK_SECRET), tests: doorcodes },
      { type: 'KeycardVerifier', lockSecret: hex(LOCK_SECRET), tests: uids },
      { type: 'DailyCode', lockSecret: hex(LOCK_SECRET), tests: daily },
    ],
  );
}

// ---------------------------------------------------------------------------------------

function timeVectors(): VectorFile {
  const valid: VectorTest[] = [];
  const invalid: VectorTest[] = [];
  for (const c of timeCases()) {
    const requirements = c.flags.includes('Reset') ? ['R-TIME-3'] : c.flags.some((f) => f === 'LeaseRefresh' || f === 'StaleTable') ? ['R-TIME-1', 'R-TIME-2'] : ['R-TIME-1'];
    const base = { state: stateToVector(c.state), sessionNonce: hex(c.sessionNonce), nonceUsed: c.nonceUsed, msg: hex(c.message), requirements };
    if ('error' in c.expected) invalid.push(t(c.comment, c.flags, 'invalid', { ...base, expectedError: c.expected.error, expectedErrorCode: ERROR_CODES[c.expected.error] }));
    else valid.push(t(c.comment, c.flags, 'valid', { ...base, expected: c.expected }));
  }
  return vectorFile(
    'locksync-signed-time',
    [
      'Signed time and root-signed floor resets (SPEC.md §8) checked against a lock state at v1.',
      'state: as in updates.json, plus leaseAnchor. sessionNonce: the hello nonce; nonceUsed: a message of the same kind was already accepted in this session.',
      'valid signedTime: expected gives time, bound, leaseRefreshed, and the new newestIssuedAt and leaseAnchor.',
      'valid floorReset: expected gives time, versionFloor, and the new newestIssuedAt and leaseAnchor.',
      'invalid: the lock refuses with expectedError (ERROR_CODES number expectedErrorCode); clock, anchors and flash stay as they were.',
      WORLD_NOTE,
    ],
    {
      LeaseRefresh: 'names the lock\'s current version and digest: the lease anchor moves',
      StaleTable: 'names another table: the clock moves, the lease anchor does not',
      Unbound: 'no nonce: raises the clock floor only',
      Edge: 'boundary value',
      Rollback: 'older than the newest signed time the lock has seen',
      Nonce: 'not bound to this session, or its nonce already used',
      Binding: 'bound to another lock',
      Trust: 'signer the lock does not accept for this message',
      Reset: 'root-signed floor reset (SPEC.md §8.3)',
    },
    [
      { type: 'TimeAccepted', tests: valid },
      { type: 'TimeRefused', tests: invalid },
    ],
  );
}

// ---------------------------------------------------------------------------------------

/** File name → exact file contents. */
export function allVectorFiles(): Map<string, string> {
  const files: [string, VectorFile][] = [
    ['cbor-decoder.json', cborVectors()],
    ['messages.json', messageVectors()],
    ['updates.json', updateVectors()],
    ['table.json', tableVectors()],
    ['signatures.json', signatureVectors()],
    ['codes.json', codeVectors()],
    ['framing.json', framingVectors()],
    ['time.json', timeVectors()],
    ['ed25519-strict.json', ed25519StrictVectors()],
    ['access.json', accessVectors()],
    ['audit.json', auditVectors()],
  ];
  return new Map(files.map(([name, f]) => [name, `${JSON.stringify(f, null, 2)}\n`]));
}
