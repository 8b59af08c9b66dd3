// Session messages (SPEC.md §6). Every message is one CBOR map; key 0 is the message type
// from MESSAGE_TYPES. Anything that is signed travels as a byte string beside its signature,
// so the receiver verifies exactly the bytes it received.

import { type CborValue, CborStreamDecoder, decode, encode, peekHead, type CborLimits } from './cbor';
import { CborError, bytesEqual } from './cbor';
import { sign, verify, hash, concatBytes } from './crypto';
import { ERROR_CODES, type ErrorName, ProtocolError, errorName, DECISION_REASONS, type DecisionReason, decisionReasonName } from './errors';
import { MapReader, cmap, insideSignedBody } from './schema';
import { type SignedHead, type SignedKeyCert, type Snapshot, type Update, LOCK_ID_PATTERN, DIGEST_BYTES, decodeNested, keyCertFromCbor, keyCertToCbor, phoneKeyWeakness, signedHeadFromCbor, signedHeadToCbor, updateFromCbor, updateToCbor } from './update';
import { type Entry, TableEntriesBuilder, encodeTable, entryFromCbor, tableDigestOfEncoding } from './table';
import { KEY_ID_BYTES } from './crypto';

export const PROTOCOL_VERSION = 1;
export const NONCE_BYTES = 16; // 128-bit nonces everywhere
export const SESSION_ID_BYTES = 8;

export const MESSAGE_TYPES = {
  hello: 1,
  delta: 3,
  snapshot: 4,
  receipt: 5,
  signedTime: 6,
  unlockRequest: 7,
  challenge: 8,
  unlockResponse: 9,
  decision: 10,
  auditRequest: 11,
  auditExport: 12,
  error: 13,
  timeAck: 14,
  receiptRequest: 15,
  floorReset: 16,
  auditAnchor: 17,
  auditAnchored: 18,
  batch: 19,
  batchReply: 20,
} as const;
export type MessageTypeName = keyof typeof MESSAGE_TYPES;

export const CAPABILITIES = {
  delta: 1 << 0,
  snapshot: 1 << 1,
  unlock: 1 << 2,
  auditExport: 1 << 3,
  resume: 1 << 4,
  keypad: 1 << 5,
  keycard: 1 << 6,
  /** The lock answers `batch` (SPEC §6.5): several requests in one flight, one reply. */
  batch: 1 << 7,
} as const;

/** Most messages one batch carries (signed time, two updates, audit request). */
export const MAX_BATCH_ITEMS = 4;

// ---------------------------------------------------------------------------
// Signed bodies

export interface ReceiptBody {
  lockId: string;
  version: number;
  digest: Uint8Array;
  /** The session nonce from the lock's hello: ties the receipt to one session. */
  nonce: Uint8Array;
  /** Lock clock when committed, unix seconds. */
  lockTime: number;
  /** Audit chain head at commit: sequence of the newest record and its chain hash. */
  auditSeq: number;
  auditHead: Uint8Array;
}

export interface SignedTimeBody {
  lockId: string;
  /** Authority time, unix seconds. */
  time: number;
  keyId: Uint8Array;
  /** Present when relayed online within a session: the lock's hello nonce. Without it the
   *  time can only raise the lock's clock floor (it may be stale). */
  nonce?: Uint8Array;
  /** The table version and digest the authority holds as current for this lock at `time`.
   *  Only a signed time naming the lock's own version and digest refreshes its lease: it is
   *  evidence that no revocation was pending for that lock at `time` (SPEC §8). */
  version: number;
  digest: Uint8Array;
}

/** Root-signed recovery from a bad far-future time or version (SPEC §8.3). */
export interface FloorResetBody {
  lockId: string;
  /** New clock floor and clock, unix s (the lock's newest signed time becomes this). */
  time: number;
  /** New version floor: the lock accepts a head with a higher version next. */
  versionFloor: number;
  /** keyId of the root key that signed (online keys cannot sign a reset). */
  keyId: Uint8Array;
  /** The lock's hello nonce: a reset is good for one session only. */
  nonce: Uint8Array;
}

export interface ChallengeBody {
  lockId: string;
  sessionId: Uint8Array;
  nonce: Uint8Array;
  credId: number;
  /** Lock clock, unix milliseconds, after which the response is refused. */
  expiresAtMs: number;
}

/**
 * What the lock signs (device key, context `locksync/v1/audit-export`) about an audit
 * export: the chain hash after its last record, for this lock. With it an export cannot be
 * fabricated or replayed under another lock's id, whoever carries it (SPEC §10).
 */
export interface AuditHeadBody {
  lockId: string;
  /** Seq of the export's last record (the lock's newest record when the export is empty). */
  seq: number;
  /** Chain hash after that record. */
  hash: Uint8Array;
  /** Oldest record the lock still holds (0 when it holds none): an export that starts
   *  there starts where the lock's own log starts. */
  oldestSeq: number;
}

/**
 * The authority's acknowledgement (online key or root, context `locksync/v1/audit-anchor`):
 * it holds this lock's audit records through `seq`, whose chain hash is `hash`. The lock
 * may then recycle ring blocks holding only records up to `seq` (SPEC §10.2).
 */
export interface AuditAnchorBody {
  lockId: string;
  seq: number;
  hash: Uint8Array;
  keyId: Uint8Array;
}

export interface AuditRecord {
  seq: number;
  /** Lock clock, unix seconds. */
  time: number;
  event: AuditEvent;
  credId?: number;
  /** Decision reason (access events) or error code (refused updates). */
  reason?: number;
  /** Table version (updates), or method (access: 0 phone, 1 doorcode, 2 keycard, 3 daily code),
   *  or how many records were lost (recordsLost, refusalsNotLogged, flashDataLost). */
  value?: number;
  /** This record stands for `count` (≥ 2) further refusals identical to the record before it
   *  (same event, credId, reason, method), coalesced so a flood cannot fill the ring. */
  count?: number;
}

export const AUDIT_EVENTS = {
  access: 1,
  updateApplied: 2,
  updateRefused: 3,
  timeSet: 4,
  boot: 5,
  powerLossRecovered: 6,
  lockoutStarted: 7,
  lowBattery: 8,
  relocked: 9,
  provisioned: 10,
  floorReset: 11,
  recordsLost: 12,
  refusalsNotLogged: 13,
  /** Flash data that no longer verified at boot (bit rot): value = commit + audit records lost. */
  flashDataLost: 14,
} as const;
export type AuditEvent = keyof typeof AUDIT_EVENTS;
const AUDIT_EVENT_BY_CODE = new Map<number, AuditEvent>(
  (Object.entries(AUDIT_EVENTS) as [AuditEvent, number][]).map(([n, c]) => [c, n]),
);

// ---------------------------------------------------------------------------
// Messages

export type Message =
  | {
      type: 'hello';
      protocolVersion: number;
      lockId: string;
      version: number;
      digest: Uint8Array;
      nonce: Uint8Array;
      lockTime: number;
      capabilities: number;
      auditSeq: number;
      battery: number;
      /** Serial of the newest online-key certificate the lock holds (absent: none). The
       *  authority then leaves that certificate out of updates: 119 bytes a delta saves. */
      certSerial?: number;
    }
  | { type: 'delta' | 'snapshot'; update: Update }
  | { type: 'receipt'; bodyBytes: Uint8Array; body: ReceiptBody; signature: Uint8Array }
  | { type: 'signedTime'; bodyBytes: Uint8Array; body: SignedTimeBody; signature: Uint8Array }
  | { type: 'floorReset'; bodyBytes: Uint8Array; body: FloorResetBody; signature: Uint8Array }
  | { type: 'unlockRequest'; credId: number }
  | { type: 'challenge'; bodyBytes: Uint8Array; body: ChallengeBody }
  | { type: 'unlockResponse'; challengeBytes: Uint8Array; signature: Uint8Array }
  | { type: 'decision'; granted: boolean; reason: DecisionReason; auditSeq: number }
  | { type: 'auditRequest'; fromSeq: number }
  | {
      type: 'auditExport';
      prevHash: Uint8Array;
      records: Uint8Array[];
      /** The lock's signature over the export's chain head (absent only in pre-signing exports,
       *  which an authority refuses). */
      head?: { bodyBytes: Uint8Array; body: AuditHeadBody; signature: Uint8Array };
    }
  | { type: 'auditAnchor'; bodyBytes: Uint8Array; body: AuditAnchorBody; signature: Uint8Array }
  /** The lock's answer to auditAnchor: the seq through which its ring now counts as anchored. */
  | { type: 'auditAnchored'; anchoredSeq: number }
  | { type: 'error'; reason: ErrorName; detail: string }
  | { type: 'timeAck'; lockTime: number }
  /** Ask for a receipt of the table in force, bound to this session's nonce: a courier whose
   *  link dropped after the lock committed (receipt lost) gets proof without resending. */
  | { type: 'receiptRequest' }
  /** Several requests in one flight (SPEC §6.5): each item is one encoded message, handled
   *  in order as if sent alone; the lock answers with one batchReply. */
  | { type: 'batch'; messages: Uint8Array[] }
  /** One encoded answer per batch item, in order; items after a refusal: error NOT_ATTEMPTED. */
  | { type: 'batchReply'; replies: Uint8Array[] };

export const MAX_AUDIT_RECORDS_PER_EXPORT = 4096;
export const MAX_AUDIT_RECORD_BYTES = 64;

/** A credId field at message level: 1..2^32-1 (0 is reserved: MALFORMED). */
function credIdField(r: MapReader, key: number, name: string): number {
  const id = r.uint(key, name, 0xffff_ffff);
  if (id === 0) throw new ProtocolError('MALFORMED', `${name}: credId 0 is reserved`);
  return id;
}

export function encodeMessage(m: Message): Uint8Array {
  const t = MESSAGE_TYPES[m.type];
  switch (m.type) {
    case 'hello':
      return encode(
        cmap([
          [0, t],
          [1, m.protocolVersion],
          [2, m.lockId],
          [3, m.version],
          [4, m.digest],
          [5, m.nonce],
          [6, m.lockTime],
          [7, m.capabilities],
          [8, m.auditSeq],
          [9, m.battery],
          [10, m.certSerial],
        ]),
      );
    case 'delta':
    case 'snapshot':
      if (m.type === 'snapshot' && m.update.type === 'snapshot') return encodeSnapshotMessage(t, m.update);
      return encode(cmap([[0, t], [1, updateToCbor(m.update)]]));
    case 'receipt':
    case 'signedTime':
    case 'floorReset':
      return encode(cmap([[0, t], [1, m.bodyBytes], [2, m.signature]]));
    case 'unlockRequest':
      return encode(cmap([[0, t], [1, m.credId]]));
    case 'challenge':
      return encode(cmap([[0, t], [1, m.bodyBytes]]));
    case 'unlockResponse':
      return encode(cmap([[0, t], [1, m.challengeBytes], [2, m.signature]]));
    case 'decision':
      return encode(cmap([[0, t], [1, m.granted], [2, DECISION_REASONS[m.reason]], [3, m.auditSeq]]));
    case 'auditRequest':
      return encode(cmap([[0, t], [1, m.fromSeq]]));
    case 'auditExport':
      return encode(cmap([[0, t], [1, m.prevHash], [2, m.records], [3, m.head?.bodyBytes], [4, m.head?.signature]]));
    case 'auditAnchor':
      return encode(cmap([[0, t], [1, m.bodyBytes], [2, m.signature]]));
    case 'auditAnchored':
      return encode(cmap([[0, t], [1, m.anchoredSeq]]));
    case 'error':
      return encode(cmap([[0, t], [1, ERROR_CODES[m.reason]], [2, m.detail.length > 0 ? truncateDetail(m.detail) : undefined]]));
    case 'timeAck':
      return encode(cmap([[0, t], [1, m.lockTime]]));
    case 'receiptRequest':
      return encode(cmap([[0, t]]));
    case 'batch':
      return encode(cmap([[0, t], [1, m.messages]]));
    case 'batchReply':
      return encode(cmap([[0, t], [1, m.replies]]));
  }
}

/** Error details are capped at 120 UTF-16 units, never splitting a surrogate pair (a lone
 *  surrogate has no UTF-8 encoding). */
export const MAX_ERROR_DETAIL = 120;
function truncateDetail(d: string): string {
  let s = d.slice(0, MAX_ERROR_DETAIL);
  const last = s.charCodeAt(s.length - 1);
  if (s.length < d.length && last >= 0xd800 && last <= 0xdbff) s = s.slice(0, -1);
  return s.replace(/\p{Cs}/gu, '\ufffd');
}

/**
 * Decode one message that crossed the air. Throws only ProtocolError: decoder failures
 * become MALFORMED/OVER_LIMIT with the decoder's code in the detail.
 */
export function decodeMessage(bytes: Uint8Array, limits: Partial<CborLimits> = {}): Message {
  let v: CborValue;
  // The bytes a snapshot's table and each of its entries came from (keepEncoding), so the
  // lock's digest and flash write of the new table reuse them instead of encoding 10,000
  // entries again (decodeTable; the decoder accepts only the one encoding).
  const encodings = new WeakMap<object, Uint8Array>();
  try {
    v = decode(bytes, limits, (value, raw, depth) => keepEncoding(encodings, value, raw, depth));
  } catch (e) {
    if (e instanceof CborError) throw refusalOfCbor(e);
    throw e;
  }
  return messageFromCbor(v, encodings);
}

/**
 * A snapshot message, byte for byte what encode() gives for {0: type, 1: {1: table, 4:
 * head, ?5: certs}}, with the table's encoding (encodeTable: one copy of each entry's cached
 * bytes) spliced in whole instead of encoding a tree of 10,000 entry maps again — the
 * authority serves a 10,000-credential snapshot in a copy, not ~20–40 ms of encoding.
 */
function encodeSnapshotMessage(type: number, u: Snapshot): Uint8Array {
  return spliceSnapshot(type, encodeTable(u.table), u.head, u.certs);
}

/**
 * The snapshot message for a table held as its encoding (an authority's stored table),
 * without decoding it: what encodeMessage gives for the decoded table, provided `tableBytes`
 * is encodeTable's output. That is checked here only as far as the head's digest covers it
 * (tableDigestOfEncoding), which is what the lock checks too; the caller vouches that the
 * bytes came from encodeTable. Throws ProtocolError DIGEST_MISMATCH otherwise.
 */
export function encodeSnapshotOfEncodedTable(tableBytes: Uint8Array, head: SignedHead, certs: readonly SignedKeyCert[]): Uint8Array {
  if (!bytesEqual(tableDigestOfEncoding(tableBytes), head.head.digest))
    throw new ProtocolError('DIGEST_MISMATCH', `snapshot: the table's encoding does not hash to the digest its head (v${head.head.version}) signs`);
  return spliceSnapshot(MESSAGE_TYPES.snapshot, tableBytes, head, certs);
}

function spliceSnapshot(type: number, tableBytes: Uint8Array, signedHead: SignedHead, signedCerts: readonly SignedKeyCert[]): Uint8Array {
  const head = encode(signedHeadToCbor(signedHead));
  const certs = signedCerts.length > 0 ? encode(signedCerts.map(keyCertToCbor)) : undefined;
  return concatBytes(
    new Uint8Array([0xa2, 0x00]),
    encode(type),
    new Uint8Array([0x01, certs ? 0xa3 : 0xa2, 0x01]),
    tableBytes,
    new Uint8Array([0x04]),
    head,
    ...(certs ? [new Uint8Array([0x05]), certs] : []),
  );
}

/**
 * The bytes decodeTable reuses, by container: a snapshot's table (depth 2: its digest and
 * flash write) and each table entry (depth 4: message → update → table → entries → entry).
 * True for a depth-4 map (a table entry or a key policy).
 */
function keepEncoding(encodings: WeakMap<object, Uint8Array>, value: CborValue[] | Map<number, CborValue>, raw: Uint8Array, depth: number): boolean {
  if (!(value instanceof Map) || (depth !== 4 && depth !== 2)) return false;
  encodings.set(value, raw);
  return depth === 4;
}

function refusalOfCbor(e: CborError): ProtocolError {
  const overLimit = e.code.endsWith('_LIMIT');
  return new ProtocolError(overLimit ? 'OVER_LIMIT' : 'MALFORMED', `cbor ${e.message}`);
}

function messageFromCbor(v: CborValue, encodings: WeakMap<object, Uint8Array>, prebuilt?: TableEntriesBuilder): Message {
  const r = MapReader.of(v, 'message');
  // Registry values (type, error code, decision reason, audit event) are read at any size:
  // an unknown one is MALFORMED however large (SPEC §2.3), never OVER_LIMIT.
  const type = r.uint(0, 'type');
  const m = readMessage(type, r, encodings, prebuilt);
  r.done();
  return m;
}

/** The first bytes of every snapshot message: map(2) {0: 4 (snapshot), 1: …}. */
const SNAPSHOT_PREFIX = [0xa2, 0x00, MESSAGE_TYPES.snapshot, 0x01];

/**
 * Whether encoded message bytes are a snapshot, from their first four bytes: a message is
 * a deterministic map {0: type, 1: …} (SPEC §6.1), so a snapshot starts so and no other
 * message does. Judges nothing else about the bytes.
 */
export function isSnapshotMessage(bytes: Uint8Array): boolean {
  return SNAPSHOT_PREFIX.every((b, i) => bytes[i] === b);
}

/**
 * decodeMessage for a message that is still arriving. The receiver feeds it the bytes held
 * so far (`feed(held)`, the message's buffer filling from the front, as the framing's
 * reassembler does) and calls `finish()` once the message is complete. Meanwhile the
 * decoding is done as the bytes come (CborStreamDecoder), and a snapshot's table entries
 * are read as each one completes; `onEntry` sees each such entry (a lock builds its index
 * with them). `finish()` returns exactly what decodeMessage(buffer) returns and throws
 * exactly what it throws: what was done early is the same work on the same bytes, and any
 * surprise on the way (an error, a callback that threw) makes `finish()` decode the whole
 * message again the ordinary way. Nothing here is trusted before the signature: it is
 * decoding only, and the message is judged as a whole after `finish()`.
 */
export class MessageStreamDecoder {
  private readonly encodings = new WeakMap<object, Uint8Array>();
  private readonly prebuilt = new TableEntriesBuilder();
  private readonly cbor: CborStreamDecoder | undefined;
  private failed = false;
  private snapshot: boolean | undefined;

  constructor(
    readonly buffer: Uint8Array,
    /** Each entry as it joins `entries` (the map the table gets if decodeTable takes it). */
    private readonly onEntry?: (e: Entry) => void,
  ) {
    try {
      this.cbor = new CborStreamDecoder(buffer.length, {}, (value, raw, depth) => this.container(value, raw, depth));
    } catch {
      this.failed = true; // refused by its size alone: finish() says how, as decodeMessage does
    }
  }

  /** The credId → entry map the snapshot's table gets when decodeTable takes what was read early. */
  get entries(): ReadonlyMap<number, Entry> {
    return this.prebuilt.entries;
  }

  /** Bytes decoded so far. */
  get decodedBytes(): number {
    return this.cbor?.decodedBytes ?? 0;
  }

  /** The first `held` bytes of the buffer are in. Never throws. */
  feed(held: number): void {
    if (this.failed || this.cbor === undefined) return;
    try {
      this.cbor.advance(this.buffer, held);
    } catch {
      this.failed = true;
    }
  }

  /** The whole message is in: decodeMessage(buffer), finished from where feeding got to. */
  finish(): Message {
    if (this.failed || this.cbor === undefined) return decodeMessage(this.buffer);
    let v: CborValue;
    try {
      v = this.cbor.finish(this.buffer);
    } catch (e) {
      if (e instanceof CborError) throw refusalOfCbor(e);
      throw e;
    }
    return messageFromCbor(v, this.encodings, this.prebuilt);
  }

  private container(value: CborValue[] | Map<number, CborValue>, raw: Uint8Array, depth: number): void {
    if (!keepEncoding(this.encodings, value, raw, depth) || !(value instanceof Map)) return;
    this.snapshot ??= isSnapshotMessage(this.buffer);
    if (!this.snapshot) return;
    // A map at depth 4 of a snapshot is a table entry or a key policy. Read as an entry; one
    // that does not read is left for finish() to judge in its place and order.
    let e: Entry;
    try {
      e = entryFromCbor(value);
    } catch (err) {
      if (err instanceof ProtocolError) return;
      throw err;
    }
    if (e.kind === 'phone') phoneKeyWeakness(e);
    if (this.prebuilt.add(value, e, raw)) this.onEntry?.(e);
  }
}

function readMessage(type: number, r: MapReader, encodings: WeakMap<object, Uint8Array>, prebuilt?: TableEntriesBuilder): Message {
  switch (type) {
    case MESSAGE_TYPES.hello: {
      const protocolVersion = r.uint(1, 'protocolVersion');
      if (protocolVersion !== PROTOCOL_VERSION) throw new ProtocolError('UNSUPPORTED_VERSION', `protocol version ${protocolVersion}`);
      const hello: Extract<Message, { type: 'hello' }> = {
        type: 'hello',
        protocolVersion,
        lockId: r.text(2, 'lockId', 32, LOCK_ID_PATTERN),
        version: r.uint(3, 'version'),
        digest: r.bytes(4, 'digest', { exact: DIGEST_BYTES }),
        nonce: r.bytes(5, 'nonce', { exact: NONCE_BYTES }),
        lockTime: r.uint(6, 'lockTime'),
        capabilities: r.uint(7, 'capabilities', 0xffff),
        auditSeq: r.uint(8, 'auditSeq'),
        battery: r.uint(9, 'battery', 100),
      };
      const certSerial = r.optUint(10, 'certSerial', 0xffff_ffff);
      if (certSerial !== undefined) hello.certSerial = certSerial;
      return hello;
    }
    case MESSAGE_TYPES.delta:
      return { type: 'delta', update: updateFromCbor(r.raw(1, 'delta'), 'delta') };
    case MESSAGE_TYPES.snapshot:
      return { type: 'snapshot', update: updateFromCbor(r.raw(1, 'snapshot'), 'snapshot', 'snapshot', encodings, prebuilt) };
    case MESSAGE_TYPES.receipt: {
      const bodyBytes = r.bytes(1, 'body', { max: 256 });
      const signature = r.bytes(2, 'signature', { exact: 64 });
      return { type: 'receipt', bodyBytes, body: receiptBodyFromBytes(bodyBytes), signature };
    }
    case MESSAGE_TYPES.signedTime: {
      const bodyBytes = r.bytes(1, 'body', { max: 128 });
      const signature = r.bytes(2, 'signature', { exact: 64 });
      return { type: 'signedTime', bodyBytes, body: signedTimeBodyFromBytes(bodyBytes), signature };
    }
    case MESSAGE_TYPES.floorReset: {
      const bodyBytes = r.bytes(1, 'body', { max: 128 });
      const signature = r.bytes(2, 'signature', { exact: 64 });
      return { type: 'floorReset', bodyBytes, body: floorResetBodyFromBytes(bodyBytes), signature };
    }
    case MESSAGE_TYPES.unlockRequest:
      return { type: 'unlockRequest', credId: credIdField(r, 1, 'credId') };
    case MESSAGE_TYPES.challenge: {
      const bodyBytes = r.bytes(1, 'body', { max: 128 });
      return { type: 'challenge', bodyBytes, body: challengeBodyFromBytes(bodyBytes) };
    }
    case MESSAGE_TYPES.unlockResponse:
      return { type: 'unlockResponse', challengeBytes: r.bytes(1, 'challenge', { max: 128 }), signature: r.bytes(2, 'signature', { exact: 64 }) };
    case MESSAGE_TYPES.decision: {
      const granted = r.bool(1, 'granted');
      const code = r.uint(2, 'reason');
      const reason = decisionReasonName(code);
      if (reason === undefined) throw new ProtocolError('MALFORMED', `decision: unknown reason ${code}`);
      if (granted !== (reason === 'GRANTED')) throw new ProtocolError('MALFORMED', 'decision: granted flag contradicts reason');
      return { type: 'decision', granted, reason, auditSeq: r.uint(3, 'auditSeq') };
    }
    case MESSAGE_TYPES.auditRequest:
      return { type: 'auditRequest', fromSeq: r.uint(1, 'fromSeq') };
    case MESSAGE_TYPES.auditExport: {
      const prevHash = r.bytes(1, 'prevHash', { exact: 32 });
      const raw = r.array(2, 'records', MAX_AUDIT_RECORDS_PER_EXPORT);
      const records = raw.map((x, i) => {
        if (!(x instanceof Uint8Array)) throw new ProtocolError('MALFORMED', `auditExport.records[${i}]: expected a byte string`);
        if (x.length > MAX_AUDIT_RECORD_BYTES) throw new ProtocolError('OVER_LIMIT', `auditExport.records[${i}]: ${x.length} bytes > ${MAX_AUDIT_RECORD_BYTES}`);
        auditRecordFromBytes(x); // each record is an embedded body (bstr .cbor auditRecord): validated at decode, failures MALFORMED
        return x;
      });
      const headBytes = r.optBytes(3, 'head', { max: 128 });
      const headSig = r.optBytes(4, 'signature', { exact: 64 });
      if ((headBytes === undefined) !== (headSig === undefined)) throw new ProtocolError('MALFORMED', 'auditExport: head and signature go together');
      const m: Extract<Message, { type: 'auditExport' }> = { type: 'auditExport', prevHash, records };
      if (headBytes !== undefined && headSig !== undefined) m.head = { bodyBytes: headBytes, body: auditHeadBodyFromBytes(headBytes), signature: headSig };
      return m;
    }
    case MESSAGE_TYPES.auditAnchor: {
      const bodyBytes = r.bytes(1, 'body', { max: 128 });
      const signature = r.bytes(2, 'signature', { exact: 64 });
      return { type: 'auditAnchor', bodyBytes, body: auditAnchorBodyFromBytes(bodyBytes), signature };
    }
    case MESSAGE_TYPES.auditAnchored:
      return { type: 'auditAnchored', anchoredSeq: r.uint(1, 'anchoredSeq') };
    case MESSAGE_TYPES.error: {
      const code = r.uint(1, 'code');
      const reason = errorName(code);
      if (reason === undefined) throw new ProtocolError('MALFORMED', `error: unknown code ${code}`);
      const detail = r.optText(2, 'detail', MAX_ERROR_DETAIL);
      // An empty detail is omitted by the encoder, so `2: ""` would not re-encode identically.
      if (detail === '') throw new ProtocolError('MALFORMED', 'error.detail: an empty detail must be omitted');
      return { type: 'error', reason, detail: detail ?? '' };
    }
    case MESSAGE_TYPES.timeAck:
      return { type: 'timeAck', lockTime: r.uint(1, 'lockTime') };
    case MESSAGE_TYPES.receiptRequest:
      return { type: 'receiptRequest' };
    case MESSAGE_TYPES.batch:
      return { type: 'batch', messages: batchItems(r, 'batch.messages') };
    case MESSAGE_TYPES.batchReply:
      return { type: 'batchReply', replies: batchItems(r, 'batchReply.replies') };
    default:
      throw new ProtocolError('MALFORMED', `unknown message type ${type}`);
  }
}

/** 1..MAX_BATCH_ITEMS byte strings at key 1 (the items are decoded by whoever handles them). */
function batchItems(r: MapReader, name: string): Uint8Array[] {
  const raw = r.array(1, name, MAX_BATCH_ITEMS);
  if (raw.length === 0) throw new ProtocolError('MALFORMED', `${name}: empty`);
  return raw.map((x, i) => {
    if (!(x instanceof Uint8Array)) throw new ProtocolError('MALFORMED', `${name}[${i}]: expected bstr`);
    return x;
  });
}

// ---------------------------------------------------------------------------
// Receipts

export function encodeReceiptBody(b: ReceiptBody): Uint8Array {
  return encode(
    cmap([
      [1, b.lockId],
      [2, b.version],
      [3, b.digest],
      [4, b.nonce],
      [5, b.lockTime],
      [6, b.auditSeq],
      [7, b.auditHead],
    ]),
  );
}

export function receiptBodyFromBytes(bytes: Uint8Array): ReceiptBody {
  return insideSignedBody((): ReceiptBody => {
    const r = MapReader.of(decodeNested(bytes, 'receipt.body'), 'receipt.body');
    const b: ReceiptBody = {
      lockId: r.text(1, 'lockId', 32, LOCK_ID_PATTERN),
      version: r.uint(2, 'version'),
      digest: r.bytes(3, 'digest', { exact: DIGEST_BYTES }),
      nonce: r.bytes(4, 'nonce', { exact: NONCE_BYTES }),
      lockTime: r.uint(5, 'lockTime'),
      auditSeq: r.uint(6, 'auditSeq'),
      auditHead: r.bytes(7, 'auditHead', { exact: 32 }),
    };
    r.done();
    return b;
  });
}

export function makeReceipt(body: ReceiptBody, deviceSecret: Uint8Array): Extract<Message, { type: 'receipt' }> {
  const bodyBytes = encodeReceiptBody(body);
  return { type: 'receipt', bodyBytes, body, signature: sign('receipt', bodyBytes, deviceSecret) };
}

export function verifyReceipt(m: Extract<Message, { type: 'receipt' }>, devicePublic: Uint8Array): boolean {
  return verify('receipt', m.bodyBytes, m.signature, devicePublic);
}

// ---------------------------------------------------------------------------
// Signed time

export function encodeSignedTimeBody(b: SignedTimeBody): Uint8Array {
  return encode(cmap([[1, b.lockId], [2, b.time], [3, b.keyId], [4, b.nonce], [5, b.version], [6, b.digest]]));
}

export function signedTimeBodyFromBytes(bytes: Uint8Array): SignedTimeBody {
  return insideSignedBody((): SignedTimeBody => {
    const r = MapReader.of(decodeNested(bytes, 'signedTime.body'), 'signedTime.body');
    const b: SignedTimeBody = {
      lockId: r.text(1, 'lockId', 32, LOCK_ID_PATTERN),
      time: r.uint(2, 'time'),
      keyId: r.bytes(3, 'keyId', { exact: KEY_ID_BYTES }),
      version: 0,
      digest: new Uint8Array(0),
    };
    const nonce = r.optBytes(4, 'nonce', { exact: NONCE_BYTES });
    if (nonce !== undefined) b.nonce = nonce;
    b.version = r.uint(5, 'version');
    b.digest = r.bytes(6, 'digest', { exact: DIGEST_BYTES });
    r.done();
    return b;
  });
}

export function makeSignedTime(body: SignedTimeBody, signingSecret: Uint8Array): Extract<Message, { type: 'signedTime' }> {
  const bodyBytes = encodeSignedTimeBody(body);
  return { type: 'signedTime', bodyBytes, body, signature: sign('time', bodyBytes, signingSecret) };
}

// ---------------------------------------------------------------------------
// Floor reset (root-signed)

export function encodeFloorResetBody(b: FloorResetBody): Uint8Array {
  return encode(cmap([[1, b.lockId], [2, b.time], [3, b.versionFloor], [4, b.keyId], [5, b.nonce]]));
}

export function floorResetBodyFromBytes(bytes: Uint8Array): FloorResetBody {
  return insideSignedBody((): FloorResetBody => {
    const r = MapReader.of(decodeNested(bytes, 'floorReset.body'), 'floorReset.body');
    const b: FloorResetBody = {
      lockId: r.text(1, 'lockId', 32, LOCK_ID_PATTERN),
      time: r.uint(2, 'time'),
      versionFloor: r.uint(3, 'versionFloor'),
      keyId: r.bytes(4, 'keyId', { exact: KEY_ID_BYTES }),
      nonce: r.bytes(5, 'nonce', { exact: NONCE_BYTES }),
    };
    r.done();
    return b;
  });
}

export function makeFloorReset(body: FloorResetBody, rootSecret: Uint8Array): Extract<Message, { type: 'floorReset' }> {
  const bodyBytes = encodeFloorResetBody(body);
  return { type: 'floorReset', bodyBytes, body, signature: sign('floorReset', bodyBytes, rootSecret) };
}

// ---------------------------------------------------------------------------
// Unlock challenge–response

export function encodeChallengeBody(b: ChallengeBody): Uint8Array {
  return encode(cmap([[1, b.lockId], [2, b.sessionId], [3, b.nonce], [4, b.credId], [5, b.expiresAtMs]]));
}

export function challengeBodyFromBytes(bytes: Uint8Array): ChallengeBody {
  return insideSignedBody((): ChallengeBody => {
    const r = MapReader.of(decodeNested(bytes, 'challenge.body'), 'challenge.body');
    const b: ChallengeBody = {
      lockId: r.text(1, 'lockId', 32, LOCK_ID_PATTERN),
      sessionId: r.bytes(2, 'sessionId', { exact: SESSION_ID_BYTES }),
      nonce: r.bytes(3, 'nonce', { exact: NONCE_BYTES }),
      credId: credIdField(r, 4, 'credId'),
      expiresAtMs: r.uint(5, 'expiresAtMs'),
    };
    r.done();
    return b;
  });
}

/** Phone side: sign the challenge bytes exactly as received. */
export function answerChallenge(challengeBytes: Uint8Array, phoneSecret: Uint8Array): Extract<Message, { type: 'unlockResponse' }> {
  return { type: 'unlockResponse', challengeBytes, signature: sign('unlock', challengeBytes, phoneSecret) };
}

// ---------------------------------------------------------------------------
// Audit records and the hash chain

export function encodeAuditRecord(a: AuditRecord): Uint8Array {
  return encode(
    cmap([
      [1, a.seq],
      [2, a.time],
      [3, AUDIT_EVENTS[a.event]],
      [4, a.credId],
      [5, a.reason],
      [6, a.value],
      [7, a.count],
    ]),
  );
}

export function auditRecordFromBytes(bytes: Uint8Array): AuditRecord {
  return insideSignedBody((): AuditRecord => {
    const r = MapReader.of(decodeNested(bytes, 'auditRecord'), 'auditRecord');
    const seq = r.uint(1, 'seq');
    const time = r.uint(2, 'time');
    const code = r.uint(3, 'event');
    const event = AUDIT_EVENT_BY_CODE.get(code);
    if (event === undefined) throw new ProtocolError('MALFORMED', `auditRecord: unknown event ${code}`);
    const a: AuditRecord = { seq, time, event };
    const credId = r.optUint(4, 'credId', 0xffff_ffff);
    const reason = r.optUint(5, 'reason', 0xff);
    const value = r.optUint(6, 'value');
    const count = r.optUint(7, 'count', 0xffff_ffff);
    if (count !== undefined && count < 2) throw new ProtocolError('MALFORMED', `auditRecord: count ${count} < 2`);
    if (credId !== undefined) a.credId = credId;
    if (reason !== undefined) a.reason = reason;
    if (value !== undefined) a.value = value;
    if (count !== undefined) a.count = count;
    r.done();
    return a;
  });
}

/** Chain hash before the first record. */
export const AUDIT_GENESIS = hash(new TextEncoder().encode('locksync/v1/audit-genesis'));

/** h(n) = SHA-256(h(n-1) || record bytes). */
export function chainAudit(prevHash: Uint8Array, recordBytes: Uint8Array): Uint8Array {
  return hash(concatBytes(prevHash, recordBytes));
}

/** Verify an export's records form a contiguous chain from prevHash; returns the final hash. */
export function verifyAuditChain(prevHash: Uint8Array, records: readonly Uint8Array[]): { head: Uint8Array; lastSeq: number | undefined } {
  let h = prevHash;
  let expectSeq: number | undefined;
  let lastSeq: number | undefined;
  for (const rb of records) {
    const rec = auditRecordFromBytes(rb);
    if (expectSeq !== undefined && rec.seq !== expectSeq) throw new ProtocolError('MALFORMED', `audit export: seq ${rec.seq}, expected ${expectSeq}`);
    expectSeq = rec.seq + 1;
    lastSeq = rec.seq;
    h = chainAudit(h, rb);
  }
  return { head: h, lastSeq };
}

// ---------------------------------------------------------------------------
// Signed audit exports and the authority's anchor (SPEC §10.1, §10.2)

export function encodeAuditHeadBody(b: AuditHeadBody): Uint8Array {
  return encode(cmap([[1, b.lockId], [2, b.seq], [3, b.hash], [4, b.oldestSeq]]));
}

export function auditHeadBodyFromBytes(bytes: Uint8Array): AuditHeadBody {
  return insideSignedBody((): AuditHeadBody => {
    const r = MapReader.of(decodeNested(bytes, 'auditExport.head'), 'auditExport.head');
    const b: AuditHeadBody = {
      lockId: r.text(1, 'lockId', 32, LOCK_ID_PATTERN),
      seq: r.uint(2, 'seq'),
      hash: r.bytes(3, 'hash', { exact: DIGEST_BYTES }),
      oldestSeq: r.uint(4, 'oldestSeq'),
    };
    r.done();
    return b;
  });
}

/** Lock side: an export of `records` (consecutive, chained from prevHash), signed with the device key. */
export function makeSignedAuditExport(
  lockId: string,
  prevHash: Uint8Array,
  records: Uint8Array[],
  oldestSeq: number,
  headSeq: number,
  deviceSecret: Uint8Array,
): Extract<Message, { type: 'auditExport' }> {
  const { head, lastSeq } = verifyAuditChain(prevHash, records);
  const body: AuditHeadBody = { lockId, seq: lastSeq ?? headSeq, hash: head, oldestSeq };
  const bodyBytes = encodeAuditHeadBody(body);
  return { type: 'auditExport', prevHash, records, head: { bodyBytes, body, signature: sign('audit', bodyBytes, deviceSecret) } };
}

/**
 * Verifier side (the authority): the export is signed by `devicePublic`, names `lockId`, and
 * its records chain from prevHash to the signed hash, ending at the signed seq. Throws
 * ProtocolError: MALFORMED (unsigned, seq gap), BAD_SIGNATURE, WRONG_LOCK, BROKEN_CHAIN.
 */
export function verifyAuditExport(
  m: Extract<Message, { type: 'auditExport' }>,
  lockId: string,
  devicePublic: Uint8Array,
): { firstSeq: number | undefined; lastSeq: number; head: Uint8Array; oldestSeq: number } {
  if (m.head === undefined) throw new ProtocolError('MALFORMED', 'audit export is not signed by the lock');
  if (!verify('audit', m.head.bodyBytes, m.head.signature, devicePublic)) throw new ProtocolError('BAD_SIGNATURE', 'audit export head does not verify with the lock device key');
  const b = m.head.body;
  if (b.lockId !== lockId) throw new ProtocolError('WRONG_LOCK', `audit export is from ${b.lockId}, not ${lockId}`);
  const { head, lastSeq } = verifyAuditChain(m.prevHash, m.records);
  if (!bytesEqual(head, b.hash) || (lastSeq !== undefined && lastSeq !== b.seq))
    throw new ProtocolError('BROKEN_CHAIN', 'audit records do not chain to the head the lock signed');
  const first = m.records[0];
  return { firstSeq: first === undefined ? undefined : auditRecordFromBytes(first).seq, lastSeq: b.seq, head, oldestSeq: b.oldestSeq };
}

export function encodeAuditAnchorBody(b: AuditAnchorBody): Uint8Array {
  return encode(cmap([[1, b.lockId], [2, b.seq], [3, b.hash], [4, b.keyId]]));
}

export function auditAnchorBodyFromBytes(bytes: Uint8Array): AuditAnchorBody {
  return insideSignedBody((): AuditAnchorBody => {
    const r = MapReader.of(decodeNested(bytes, 'auditAnchor.body'), 'auditAnchor.body');
    const b: AuditAnchorBody = {
      lockId: r.text(1, 'lockId', 32, LOCK_ID_PATTERN),
      seq: r.uint(2, 'seq'),
      hash: r.bytes(3, 'hash', { exact: DIGEST_BYTES }),
      keyId: r.bytes(4, 'keyId', { exact: KEY_ID_BYTES }),
    };
    r.done();
    return b;
  });
}

/** Authority side: "I hold this lock's audit records through seq", signed with the online key. */
export function makeAuditAnchor(body: AuditAnchorBody, signingSecret: Uint8Array): Extract<Message, { type: 'auditAnchor' }> {
  const bodyBytes = encodeAuditAnchorBody(body);
  return { type: 'auditAnchor', bodyBytes, body, signature: sign('auditAnchor', bodyBytes, signingSecret) };
}

// ---------------------------------------------------------------------------
// Reading the target version and certificates of an encoded update without decoding it

/**
 * The version an encoded `delta` or `snapshot` message brings a lock to, read from its
 * signed head while the table (or the ops) is only stepped over, not built: a phone needs
 * the target of an update it is about to send (to ask for the receipt after a lost link),
 * and decoding a 10,000-entry snapshot for it costs tens of milliseconds on the critical
 * path. Only the shape is read — nothing is verified, the lock checks everything — and
 * anything else (another message, malformed or truncated bytes) gives undefined.
 */
export function peekUpdateVersion(bytes: Uint8Array): number | undefined {
  return peekUpdate(bytes, { headOnly: true })?.version;
}

/**
 * As peekUpdateVersion, with the serials of the key certificates the update carries (its
 * key 5, after the head): what a phone remembers the lock holds once it committed the
 * update, without building 10,000 entries for it.
 */
export function peekUpdate(bytes: Uint8Array, opts: { headOnly?: boolean } = {}): { version: number; certSerials: number[] } | undefined {
  let pos = 0;
  /** Header at `pos`, stepped over: major type and argument; undefined if cut or indefinite. */
  const header = (): { major: number; arg: number } | undefined => {
    const h = peekHead(bytes, pos);
    if (h !== undefined) pos = h.end;
    return h;
  };
  /** Step over one whole item (containers iteratively); false if the bytes end first. */
  const skip = (): boolean => {
    let items = 1;
    while (items > 0) {
      const h = header();
      if (h === undefined) return false;
      items--;
      if (h.major === 2 || h.major === 3) {
        if (h.arg > bytes.length - pos) return false;
        pos += h.arg;
      } else if (h.major === 4) items += h.arg;
      else if (h.major === 5) items += 2 * h.arg;
      else if (h.major === 6) return false;
      if (items > bytes.length - pos) return false; // every item needs a byte
    }
    return true;
  };
  /** The whole item at `pos`, decoded with small limits (a head or the certificates). */
  const small = (): CborValue | undefined => {
    const start = pos;
    if (!skip()) return undefined;
    try {
      return decode(bytes.subarray(start, pos), { maxBytes: 8192, maxDepth: 3, maxItems: 64 });
    } catch {
      return undefined;
    }
  };
  const message = header();
  if (message === undefined || message.major !== 5) return undefined;
  let isUpdate = false;
  for (let i = 0; i < message.arg; i++) {
    const key = header();
    if (key === undefined || key.major !== 0) return undefined;
    if (key.arg === 0) {
      const type = header();
      if (type === undefined || type.major !== 0) return undefined;
      isUpdate = type.arg === MESSAGE_TYPES.delta || type.arg === MESSAGE_TYPES.snapshot;
      continue;
    }
    if (key.arg !== 1 || !isUpdate) {
      if (!skip()) return undefined;
      continue;
    }
    const update = header();
    if (update === undefined || update.major !== 5) return undefined;
    let version: number | undefined;
    const certSerials: number[] = [];
    for (let j = 0; j < update.arg; j++) {
      const k = header();
      if (k === undefined || k.major !== 0) return undefined;
      if (k.arg === 4 || k.arg === 5) {
        const v = small();
        if (v === undefined) return undefined;
        try {
          if (k.arg === 4) {
            version = signedHeadFromCbor(v).head.version;
            if (opts.headOnly) return { version, certSerials };
          } else if (Array.isArray(v)) for (const [n, c] of v.entries()) certSerials.push(keyCertFromCbor(c, `certs[${n}]`).cert.serial);
          else return undefined;
        } catch {
          return undefined;
        }
      } else if (!skip()) return undefined;
    }
    return version === undefined ? undefined : { version, certSerials };
  }
  return undefined;
}
