// The lock's side of a sync/unlock session, independent of any transport: encoded
// messages in, encoded messages out. BLE (framing over GATT), the uplink and tests all
// carry the same bytes through the same code.

import {
  type Message,
  CAPABILITIES,
  DEFAULT_LIMITS,
  MAX_AUDIT_RECORDS_PER_EXPORT,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  SESSION_ID_BYTES,
  currentDigest,
  currentVersion,
  decodeMessage,
  encodeMessage,
  MessageStreamDecoder,
} from '../protocol';
import { TableIndexBuilder } from './access';
import type { IssuedChallenge } from './access';
import type { Lock, TimeClaim } from './lock';

export const LOCK_CAPABILITIES =
  CAPABILITIES.delta |
  CAPABILITIES.snapshot |
  CAPABILITIES.unlock |
  CAPABILITIES.auditExport |
  // The framing resumes a message cut by a dropped link from the bytes already held (SPEC §13.2).
  CAPABILITIES.resume |
  CAPABILITIES.keypad |
  CAPABILITIES.keycard |
  CAPABILITIES.batch;
/** What a batch may carry (SPEC §6.5): the Door Sync requests, never unlock or another batch. */
const BATCHABLE = new Set<Message['type']>(['signedTime', 'delta', 'snapshot', 'auditRequest', 'receiptRequest', 'auditAnchor']);
/** A session (hello → last message) may not outlive this, in lock clock terms. */
export const SESSION_TIMEOUT_MS = 120_000;
/** Largest message accepted: a 20,000-entry snapshot fits (protocol DEFAULT_LIMITS). */
export const MAX_MESSAGE_BYTES = 2 * 1024 * 1024;
/** Outstanding challenges per session; the oldest is forgotten beyond this. */
export const MAX_CHALLENGES = 8;
/**
 * Messages at least this large are decoded while they arrive (a snapshot of a few hundred
 * entries and up): below it the whole decode takes well under a connection event anyway.
 */
export const STREAM_DECODE_MIN_BYTES = 8 * 1024;

export class LockSession {
  readonly nonce: Uint8Array;
  readonly sessionId: Uint8Array;
  private readonly openedAtMs: number;
  private challenges: IssuedChallenge[] = [];
  private timeNonceUsed = false;
  private resetNonceUsed = false;
  /** What the last accepted signed time said is current: lease evidence for an update
   *  that brings the lock to exactly that table later in this session. */
  private timeClaim: TimeClaim | undefined;
  private closed = false;
  /** The request arriving now, decoded as its bytes come (receiving()). */
  private incoming: { decoder: MessageStreamDecoder; index: TableIndexBuilder } | undefined;

  constructor(private readonly lock: Lock) {
    this.nonce = lock.random.bytes(NONCE_BYTES);
    this.sessionId = lock.random.bytes(SESSION_ID_BYTES);
    this.openedAtMs = lock.clock.nowMs();
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** The encoded hello that opens the session. */
  hello(): Uint8Array {
    const ts = this.lock.durable.tableState;
    return encodeMessage({
      type: 'hello',
      protocolVersion: PROTOCOL_VERSION,
      lockId: ts.lockId,
      version: currentVersion(ts),
      digest: currentDigest(ts),
      nonce: this.nonce,
      lockTime: this.lock.rtc.nowS(),
      capabilities: LOCK_CAPABILITIES,
      auditSeq: this.lock.storage.flushAudit(this.lock.rtc.nowS()).seq,
      battery: this.lock.machine.battery,
      // Announced whenever a certificate is held, serial 0 included (R-HELLO-2): otherwise
      // the authority would resend a serial-0 certificate in every update.
      ...(ts.trust.certs.length > 0 ? { certSerial: ts.trust.certFloor } : {}),
    });
  }

  /**
   * A request is arriving: `buffer` (its final size) holds its first `held` bytes. A large
   * one is decoded as it comes — a 10,000-entry snapshot's entries read and indexed during
   * the transfer instead of after its last frame. Only decoding: nothing is judged, kept or
   * changed until handle() gets the whole message, and handle() answers exactly as it
   * would have without this (MessageStreamDecoder.finish).
   */
  receiving(buffer: Uint8Array, held: number): void {
    if (this.closed || buffer.length < STREAM_DECODE_MIN_BYTES || buffer.length > MAX_MESSAGE_BYTES) return;
    if (this.incoming?.decoder.buffer !== buffer) {
      let index: TableIndexBuilder | undefined;
      const decoder = new MessageStreamDecoder(buffer, (e) => index?.add(e));
      index = new TableIndexBuilder(decoder.entries);
      this.incoming = { decoder, index };
    }
    this.incoming.decoder.feed(held);
  }

  /** Handle one encoded message; returns encoded responses in order. Never throws ProtocolError. */
  handle(bytes: Uint8Array): Uint8Array[] {
    const incoming = this.incoming?.decoder.buffer === bytes ? this.incoming : undefined;
    this.incoming = undefined;
    if (this.closed) return [errorMessage(new ProtocolError('SESSION_EXPIRED', 'session is closed'))];
    if (this.lock.clock.nowMs() - this.openedAtMs > SESSION_TIMEOUT_MS) {
      this.close();
      return [errorMessage(new ProtocolError('SESSION_EXPIRED', `session older than ${SESSION_TIMEOUT_MS} ms`))];
    }
    if (bytes.length > MAX_MESSAGE_BYTES) return [errorMessage(new ProtocolError('OVER_LIMIT', `message of ${bytes.length} bytes`))];
    let m: Message;
    try {
      if (incoming) {
        const early = incoming.decoder.decodedBytes;
        m = incoming.decoder.finish();
        this.lock.note('decodedWhileArriving', { bytes: bytes.length, early });
      } else m = decodeMessage(bytes);
    } catch (e) {
      if (e instanceof ProtocolError) {
        this.lock.note('messageRefused', { reason: e.reason, detail: e.detail });
        return [errorMessage(e)];
      }
      throw e;
    }
    return this.dispatch(m, incoming?.index).map(encodeMessage);
  }

  private dispatch(m: Message, index?: TableIndexBuilder): Message[] {
    switch (m.type) {
      case 'delta':
      case 'snapshot':
        return [this.lock.acceptUpdate(m.update, this.nonce, this.timeClaim, index)];
      case 'receiptRequest':
        return [this.lock.receipt(this.nonce)];
      case 'signedTime': {
        const elapsedMs = this.lock.clock.nowMs() - this.openedAtMs;
        const r = this.lock.acceptSignedTime(m, { nonce: this.nonce, used: this.timeNonceUsed, elapsedMs });
        if (r.claim !== undefined) {
          this.timeClaim = r.claim;
          if (m.body.nonce !== undefined) this.timeNonceUsed = true;
        }
        return [r.reply];
      }
      case 'floorReset': {
        const r = this.lock.acceptFloorReset(m, { nonce: this.nonce, used: this.resetNonceUsed });
        if (r.type === 'timeAck') this.resetNonceUsed = true;
        return [r];
      }
      case 'unlockRequest': {
        const c = this.lock.issueChallenge(this.sessionId, m.credId);
        this.challenges.push(c);
        if (this.challenges.length > MAX_CHALLENGES) this.challenges.shift();
        return [{ type: 'challenge', bodyBytes: c.bytes, body: c.body }];
      }
      case 'unlockResponse': {
        const d = this.lock.decideUnlockResponse(this.sessionId, this.challenges, m.challengeBytes, m.signature);
        return [{ type: 'decision', granted: d.reason === 'GRANTED', reason: d.reason, auditSeq: d.auditSeq }];
      }
      case 'auditRequest':
        return [this.lock.auditExport(m.fromSeq, MAX_AUDIT_RECORDS_PER_EXPORT)];
      case 'auditAnchor':
        return [this.lock.acceptAuditAnchor(m)];
      case 'batch':
        return [this.batch(m.messages)];
      default:
        return [{ type: 'error', reason: 'UNEXPECTED_MESSAGE', detail: `a lock does not accept ${m.type}` }];
    }
  }

  /**
   * Each item handled in order exactly as if it had come alone (same checks, same nonce);
   * the first refusal ends the batch: every later item is answered NOT_ATTEMPTED and
   * nothing of it is done, so the phone may send it again alone (SPEC §6.5).
   */
  private batch(items: Uint8Array[]): Message {
    const replies: Uint8Array[] = [];
    let refused = false;
    for (const bytes of items) {
      if (refused) {
        replies.push(encodeMessage({ type: 'error', reason: 'NOT_ATTEMPTED', detail: 'an earlier item of the batch was refused' }));
        continue;
      }
      let answer: Message;
      try {
        const m = decodeMessage(bytes);
        answer = BATCHABLE.has(m.type)
          ? (this.dispatch(m)[0] as Message)
          : { type: 'error', reason: 'UNEXPECTED_MESSAGE', detail: `a batch does not carry ${m.type}` };
        // An answer is one byte string of the batchReply, and no byte string may pass the
        // decoder's limit (SPEC §2, §6.5): an audit export that has outgrown it is refused
        // here (exporting changes nothing), and the phone asks for it alone, where a whole
        // message may be that large. No other answer comes near the limit.
        if (answer.type === 'auditExport') {
          const size = encodeMessage(answer).length;
          if (size > DEFAULT_LIMITS.maxStringBytes)
            answer = { type: 'error', reason: 'OVER_LIMIT', detail: `audit export of ${size} B does not fit a batch answer (${DEFAULT_LIMITS.maxStringBytes} B): ask alone` };
        }
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        this.lock.note('messageRefused', { reason: e.reason, detail: e.detail });
        answer = { type: 'error', reason: e.reason, detail: e.detail };
      }
      if (answer.type === 'error') refused = true;
      replies.push(encodeMessage(answer));
    }
    return { type: 'batchReply', replies };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.incoming = undefined; // a request cut with the link is decoded afresh by the next session
    for (const c of this.challenges) c.used = true;
    this.lock.sessionEnded(this);
  }
}

export function errorMessage(e: ProtocolError): Uint8Array {
  return encodeMessage({ type: 'error', reason: e.reason, detail: e.detail });
}
