// GATT framing for locksync (see protocol/SPEC.md §13.2 for the normative text).
//
// Pure: no I/O, no timers, no BLE imports. One FrameSender and one FrameReassembler per
// direction per connection; the same code runs on the lock (sender = notifications,
// reassembler = writes) and on the phone (sender = writes, reassembler = notifications).
//
// Frame types (first byte):
//   0x00-0x7F  DATA   continuation: [seq] payload...                         (1-byte header)
//   0x80       START  [0x80, seq, id_lo, id_hi, total(varint), offset(varint)] payload...
//   0x81       ACK    [0x81, seq]              cumulative: every frame up to seq received
//   0x82       HELLO  [0x82, ver, window, flags, maxMsg(varint), [partial], [completed], [resume token]]
//   0x83       ABORT  [0x83, id_lo, id_hi, reason]   receiver refuses message id
//   0x84-0xFF  reserved
// DATA/START travel sender -> reassembler; ACK/HELLO/ABORT travel reassembler -> sender.

export const FRAMING_VERSION = 1;
export const MIN_MTU = 23;
export const MAX_MTU = 517;
/** ATT header of a Write Command / Handle Value Notification (opcode + handle). */
export const ATT_HEADER_BYTES = 3;
/** Largest frame that can ever be valid (MAX_MTU - 3). */
export const MAX_FRAME_BYTES = MAX_MTU - ATT_HEADER_BYTES;
/** Sequence numbers are 7 bits. */
export const SEQ_MODULUS = 128;
export const MAX_WINDOW = 127;
export const DEFAULT_WINDOW = 32;
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
export const MAX_MESSAGE_ID = 0xffff;
export const MAX_VARINT = 0xffffffff;
/**
 * Length of the resume token a phone's HELLO may carry (SPEC §13.2, flags bit 2): the key
 * under which the lock keeps the phone's half-received message, chosen by the phone and
 * kept secret, so a resume does not depend on the phone's (rotating) Bluetooth address.
 */
export const RESUME_TOKEN_BYTES = 8;

export const FRAME_START = 0x80;
export const FRAME_ACK = 0x81;
export const FRAME_HELLO = 0x82;
export const FRAME_ABORT = 0x83;

/** Error registry. The numeric value (index + 1) is what an ABORT frame carries. */
export const FRAMING_ERROR_CODES = [
  'FRAME_TOO_SHORT', // 1  frame ends before a mandatory field / empty frame / DATA without payload
  'FRAME_TOO_LONG', // 2  frame longer than MAX_FRAME_BYTES (514)
  'UNKNOWN_FRAME_TYPE', // 3  first byte 0x84..0xFF
  'MALFORMED_FRAME', // 4  non-canonical varint, seq > 127, reserved bits, trailing bytes, offset > total
  'BAD_SEQUENCE', // 5  DATA/START seq is not the expected one (loss, duplicate, reorder)
  'UNEXPECTED_CONTINUATION', // 6  DATA while no message is in progress on this connection
  'UNEXPECTED_START', // 7  START while a message is still in progress on this connection
  'MESSAGE_TOO_LARGE', // 8  declared total > maxMessageBytes (refused before buffering)
  'LENGTH_OVERRUN', // 9  payload goes beyond the declared total
  'WINDOW_VIOLATION', // 10 ACK acknowledges nothing or frames never sent
  'RESUME_MISMATCH', // 11 START offset>0 does not match what the receiver holds / bad HELLO partial
  'UNSUPPORTED_VERSION', // 12 HELLO version != 1
  'UNEXPECTED_FRAME', // 13 control frame given to a reassembler or data frame given to a sender
  'PEER_ABORTED', // 14 peer sent ABORT for our current message (detail = its reason)
  'SENDER_BUSY', // 15 send() while a message is still pending
  'BAD_ARGUMENT', // 16 API misuse (mtu out of range, id out of range, ...)
] as const;
export type FramingErrorCode = (typeof FRAMING_ERROR_CODES)[number];

export function framingErrorNumber(code: FramingErrorCode): number {
  return FRAMING_ERROR_CODES.indexOf(code) + 1;
}

export class FramingError extends Error {
  readonly code: FramingErrorCode;
  /** For PEER_ABORTED: the reason code the peer sent (may be unknown to us). */
  readonly peerReason: number | undefined;
  constructor(code: FramingErrorCode, message?: string, peerReason?: number) {
    super(message ? `${code}: ${message}` : code);
    this.name = 'FramingError';
    this.code = code;
    this.peerReason = peerReason;
  }
}

const fail = (code: FramingErrorCode, msg?: string): never => {
  throw new FramingError(code, msg);
};

// ---------------------------------------------------------------------------------------
// Varint (unsigned LEB128, canonical, at most 5 bytes, value <= 2^32-1)

export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

class Reader {
  pos: number;
  constructor(
    readonly b: Uint8Array,
    pos: number,
  ) {
    this.pos = pos;
  }
  u8(): number {
    const v = this.b[this.pos];
    if (v === undefined) return fail('FRAME_TOO_SHORT');
    this.pos++;
    return v;
  }
  u16(): number {
    const lo = this.u8();
    return lo | (this.u8() << 8);
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 5; i++) {
      const byte = this.u8();
      v += (byte & 0x7f) * mul;
      if ((byte & 0x80) === 0) {
        if (i > 0 && byte === 0) fail('MALFORMED_FRAME', 'non-canonical varint');
        if (v > MAX_VARINT) fail('MALFORMED_FRAME', 'varint > 2^32-1');
        return v;
      }
      mul *= 128;
    }
    return fail('MALFORMED_FRAME', 'varint longer than 5 bytes');
  }
  end(): void {
    if (this.pos !== this.b.length) fail('MALFORMED_FRAME', 'trailing bytes');
  }
}

// ---------------------------------------------------------------------------------------
// Frame codecs

export interface ResumeState {
  version: number;
  /** Receiver window in frames (1..127). */
  window: number;
  maxMessageBytes: number;
  /** Partially received message the receiver still holds (offset = bytes held, < total). */
  partial?: { messageId: number; total: number; offset: number };
  /** Last message the receiver fully delivered (lets a sender whose final ACK was lost finish). */
  completed?: { messageId: number; total: number };
  /**
   * The phone's resume token (RESUME_TOKEN_BYTES): under it the lock keeps what it holds of
   * the phone's messages (SPEC §13.3). Only a phone's HELLO carries one.
   */
  resumeToken?: Uint8Array;
}

export type DecodedFrame =
  | { type: 'data'; seq: number; payload: Uint8Array }
  | { type: 'start'; seq: number; messageId: number; total: number; offset: number; payload: Uint8Array }
  | { type: 'ack'; seq: number }
  | { type: 'hello'; state: ResumeState }
  | { type: 'abort'; messageId: number; reason: number };

/** Which endpoint a received frame is for: data frames go to the local reassembler, control frames to the local sender. */
export function frameKind(frame: Uint8Array): 'data' | 'control' {
  const h = frame[0];
  if (h === undefined) return fail('FRAME_TOO_SHORT', 'empty frame');
  if (h < 0x80 || h === FRAME_START) return 'data';
  if (h === FRAME_ACK || h === FRAME_HELLO || h === FRAME_ABORT) return 'control';
  return fail('UNKNOWN_FRAME_TYPE', `0x${h.toString(16)}`);
}

function seqByte(r: Reader): number {
  const s = r.u8();
  if (s >= SEQ_MODULUS) fail('MALFORMED_FRAME', 'seq > 127');
  return s;
}

/** Decode any frame. Throws only FramingError. */
export function decodeFrame(frame: Uint8Array): DecodedFrame {
  if (!(frame instanceof Uint8Array)) return fail('BAD_ARGUMENT', 'frame must be a Uint8Array');
  if (frame.length === 0) return fail('FRAME_TOO_SHORT', 'empty frame');
  if (frame.length > MAX_FRAME_BYTES) return fail('FRAME_TOO_LONG', `${frame.length} > ${MAX_FRAME_BYTES}`);
  const h = frame[0] as number;
  const r = new Reader(frame, 1);
  if (h < 0x80) {
    if (frame.length < 2) fail('FRAME_TOO_SHORT', 'DATA frame without payload');
    return { type: 'data', seq: h, payload: frame.subarray(1) };
  }
  switch (h) {
    case FRAME_START: {
      const seq = seqByte(r);
      const messageId = r.u16();
      const total = r.varint();
      const offset = r.varint();
      if (offset > total) fail('MALFORMED_FRAME', 'offset > total');
      // Like a DATA frame, a START carries at least one byte unless nothing is left to send.
      if (r.pos === frame.length && offset < total) fail('FRAME_TOO_SHORT', 'START without payload');
      return { type: 'start', seq, messageId, total, offset, payload: frame.subarray(r.pos) };
    }
    case FRAME_ACK: {
      const seq = seqByte(r);
      r.end();
      return { type: 'ack', seq };
    }
    case FRAME_HELLO: {
      const version = r.u8();
      const window = r.u8();
      const flags = r.u8();
      const maxMessageBytes = r.varint();
      if (version !== FRAMING_VERSION) fail('UNSUPPORTED_VERSION', `version ${version}`);
      if (window < 1 || window > MAX_WINDOW) fail('MALFORMED_FRAME', `window ${window}`);
      if ((flags & ~0x07) !== 0) fail('MALFORMED_FRAME', 'reserved HELLO flag bits set');
      const state: ResumeState = { version, window, maxMessageBytes };
      if (flags & 0x01) {
        const messageId = r.u16();
        const total = r.varint();
        const offset = r.varint();
        if (offset >= total || offset === 0) fail('MALFORMED_FRAME', 'partial offset must be in 1..total-1');
        state.partial = { messageId, total, offset };
      }
      if (flags & 0x02) {
        const messageId = r.u16();
        const total = r.varint();
        state.completed = { messageId, total };
      }
      if (flags & 0x04) {
        const token = new Uint8Array(RESUME_TOKEN_BYTES);
        for (let i = 0; i < RESUME_TOKEN_BYTES; i++) token[i] = r.u8();
        state.resumeToken = token;
      }
      r.end();
      return { type: 'hello', state };
    }
    case FRAME_ABORT: {
      const messageId = r.u16();
      const reason = r.u8();
      r.end();
      return { type: 'abort', messageId, reason };
    }
    default:
      return fail('UNKNOWN_FRAME_TYPE', `0x${h.toString(16)}`);
  }
}

export function encodeAck(seq: number): Uint8Array {
  return Uint8Array.of(FRAME_ACK, seq & 0x7f);
}

export function encodeAbort(messageId: number, reason: FramingErrorCode | number): Uint8Array {
  const r = typeof reason === 'number' ? reason & 0xff : framingErrorNumber(reason);
  return Uint8Array.of(FRAME_ABORT, messageId & 0xff, (messageId >> 8) & 0xff, r);
}

export function encodeHello(state: ResumeState): Uint8Array {
  const out: number[] = [FRAME_HELLO, state.version, state.window];
  let flags = 0;
  if (state.partial) flags |= 0x01;
  if (state.completed) flags |= 0x02;
  if (state.resumeToken) {
    if (state.resumeToken.length !== RESUME_TOKEN_BYTES) fail('BAD_ARGUMENT', `resume token must be ${RESUME_TOKEN_BYTES} bytes`);
    flags |= 0x04;
  }
  out.push(flags);
  writeVarint(out, state.maxMessageBytes);
  if (state.partial) {
    out.push(state.partial.messageId & 0xff, state.partial.messageId >> 8);
    writeVarint(out, state.partial.total);
    writeVarint(out, state.partial.offset);
  }
  if (state.completed) {
    out.push(state.completed.messageId & 0xff, state.completed.messageId >> 8);
    writeVarint(out, state.completed.total);
  }
  if (state.resumeToken) out.push(...state.resumeToken);
  return Uint8Array.from(out);
}

/** Header length of a START frame. */
export function startHeaderLength(total: number, offset: number): number {
  return 4 + varintLength(total) + varintLength(offset);
}

function checkMtu(mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) fail('BAD_ARGUMENT', `mtu ${mtu} not in ${MIN_MTU}..${MAX_MTU}`);
}

function checkMessageId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > MAX_MESSAGE_ID) fail('BAD_ARGUMENT', `message id ${id}`);
}

/** Build one frame starting at `offset` of `bytes`; returns the frame and the new offset. */
function buildFrame(
  bytes: Uint8Array,
  messageId: number,
  seq: number,
  offset: number,
  start: boolean,
  mtu: number,
): { frame: Uint8Array; next: number } {
  const room = mtu - ATT_HEADER_BYTES;
  if (start) {
    const hdr: number[] = [FRAME_START, seq, messageId & 0xff, messageId >> 8];
    writeVarint(hdr, bytes.length);
    writeVarint(hdr, offset);
    const n = Math.min(bytes.length - offset, room - hdr.length);
    const f = new Uint8Array(hdr.length + n);
    f.set(hdr, 0);
    f.set(bytes.subarray(offset, offset + n), hdr.length);
    return { frame: f, next: offset + n };
  }
  const n = Math.min(bytes.length - offset, room - 1);
  const f = new Uint8Array(1 + n);
  f[0] = seq;
  f.set(bytes.subarray(offset, offset + n), 1);
  return { frame: f, next: offset + n };
}

/**
 * Segment a whole message into frames for a fresh connection (START then DATA), ignoring the
 * window. Used by vectors and benchmarks.
 */
export function segmentMessage(
  bytes: Uint8Array,
  mtu: number,
  opts: { messageId?: number; firstSeq?: number; offset?: number } = {},
): Uint8Array[] {
  checkMtu(mtu);
  const id = opts.messageId ?? 0;
  checkMessageId(id);
  let seq = (opts.firstSeq ?? 0) & 0x7f;
  let off = opts.offset ?? 0;
  if (bytes.length > MAX_VARINT) fail('BAD_ARGUMENT', 'message too long for framing');
  if (!Number.isInteger(off) || off < 0 || off > bytes.length) fail('BAD_ARGUMENT', 'offset');
  const frames: Uint8Array[] = [];
  let start = true;
  while (start || off < bytes.length) {
    const { frame, next } = buildFrame(bytes, id, seq, off, start, mtu);
    frames.push(frame);
    off = next;
    start = false;
    seq = (seq + 1) & 0x7f;
  }
  return frames;
}

// ---------------------------------------------------------------------------------------
// Sender

export interface FrameSenderOptions {
  /** Current ATT MTU (23..517). Frames are at most mtu-3 bytes. */
  mtu: number;
}

/**
 * Sends one message at a time. Drive it with:
 *   - onAck(frame) for every ACK / HELLO / ABORT frame received from the peer,
 *   - nextFrames() after send(), after onAck(), and whenever the link can take more
 *     (each returned frame is one Write Command / Notification, in order),
 *   - disconnected() when the link drops, setMtu() after an MTU exchange.
 * Nothing is sent until the peer's HELLO has been received on the current connection.
 */
export class FrameSender {
  private mtu: number;
  private connected = false;
  private window = 1;
  private peerMax = MAX_VARINT;
  private nextSeq = 0;
  private lastAckedSeq = SEQ_MODULUS - 1;
  private outstanding: { seq: number; end: number }[] = [];
  private msg: { id: number; bytes: Uint8Array } | undefined;
  private offset = 0;
  private acked = 0;
  private needStart = false;

  constructor(opts: FrameSenderOptions) {
    checkMtu(opts.mtu);
    this.mtu = opts.mtu;
  }

  /** True when no message is pending (never sent, or fully acknowledged). */
  get done(): boolean {
    return this.msg === undefined;
  }
  /** True once the peer's HELLO arrived on this connection. */
  get ready(): boolean {
    return this.connected;
  }
  get messageId(): number | undefined {
    return this.msg?.id;
  }
  /** Bytes of the current message the peer has acknowledged (or reported holding). */
  get ackedBytes(): number {
    return this.acked;
  }
  /** Bytes of the current message handed out in frames (on this connection, from the resume offset). */
  get sentBytes(): number {
    return this.offset;
  }
  get unackedFrames(): number {
    return this.outstanding.length;
  }
  get effectiveWindow(): number {
    return this.window;
  }

  send(messageId: number, bytes: Uint8Array): void {
    checkMessageId(messageId);
    if (!(bytes instanceof Uint8Array)) fail('BAD_ARGUMENT', 'bytes must be a Uint8Array');
    if (this.msg) fail('SENDER_BUSY', `message ${this.msg.id} still pending`);
    if (bytes.length > MAX_VARINT) fail('BAD_ARGUMENT', 'message too long for framing');
    if (this.connected && bytes.length > this.peerMax)
      fail('MESSAGE_TOO_LARGE', `${bytes.length} > peer limit ${this.peerMax}`);
    this.msg = { id: messageId, bytes };
    this.offset = 0;
    this.acked = 0;
    this.needStart = true;
  }

  /** Apply a new ATT MTU; frames already returned stay valid, later frames use the new size. */
  setMtu(mtu: number): void {
    checkMtu(mtu);
    this.mtu = mtu;
  }

  /** Link dropped: wait for the next HELLO. The message (if any) is kept. */
  disconnected(): void {
    this.connected = false;
    this.outstanding = [];
  }

  /** Frames the window allows now (possibly none). */
  nextFrames(): Uint8Array[] {
    const out: Uint8Array[] = [];
    const m = this.msg;
    if (!this.connected || !m) return out;
    while (this.outstanding.length < this.window && (this.needStart || this.offset < m.bytes.length)) {
      const seq = this.nextSeq;
      const { frame, next } = buildFrame(m.bytes, m.id, seq, this.offset, this.needStart, this.mtu);
      this.needStart = false;
      this.offset = next;
      this.outstanding.push({ seq, end: next });
      this.nextSeq = (seq + 1) & 0x7f;
      out.push(frame);
    }
    return out;
  }

  /** Feed a control frame (ACK, HELLO or ABORT) received from the peer. */
  onAck(frame: Uint8Array): void {
    const f = decodeFrame(frame);
    switch (f.type) {
      case 'ack': {
        const n = (f.seq - this.lastAckedSeq + SEQ_MODULUS) % SEQ_MODULUS;
        if (!this.connected || n === 0 || n > this.outstanding.length)
          fail('WINDOW_VIOLATION', `ack ${f.seq} with ${this.outstanding.length} outstanding`);
        const last = this.outstanding[n - 1] as { seq: number; end: number };
        this.outstanding.splice(0, n);
        this.lastAckedSeq = f.seq;
        this.acked = last.end;
        if (this.msg && !this.needStart && this.acked === this.msg.bytes.length) this.msg = undefined;
        return;
      }
      case 'hello':
        this.resumeFrom(f.state);
        return;
      case 'abort': {
        if (!this.msg || this.msg.id !== f.messageId) return; // stale abort: ignore
        this.msg = undefined;
        this.outstanding = [];
        this.lastAckedSeq = (this.nextSeq + SEQ_MODULUS - 1) % SEQ_MODULUS;
        throw new FramingError('PEER_ABORTED', `peer refused message ${f.messageId} (reason ${f.reason})`, f.reason);
      }
      default:
        fail('UNEXPECTED_FRAME', `${f.type} frame given to a sender`);
    }
  }

  /**
   * Start (or restart) a connection with the receiver's state, normally from its HELLO frame.
   * Continues the pending message from the offset the receiver holds; never resends bytes
   * the receiver has.
   */
  resumeFrom(state: ResumeState): void {
    if (state.version !== FRAMING_VERSION) fail('UNSUPPORTED_VERSION', `version ${state.version}`);
    if (!Number.isInteger(state.window) || state.window < 1 || state.window > MAX_WINDOW)
      fail('BAD_ARGUMENT', `window ${state.window}`);
    const p = state.partial;
    if (p && !(p.offset > 0 && p.offset < p.total)) fail('RESUME_MISMATCH', 'partial offset outside 1..total-1');
    this.connected = true;
    this.window = state.window;
    this.peerMax = state.maxMessageBytes;
    this.nextSeq = 0;
    this.lastAckedSeq = SEQ_MODULUS - 1;
    this.outstanding = [];
    const m = this.msg;
    if (!m) return;
    const total = m.bytes.length;
    if (p && p.messageId === m.id && p.total === total) {
      this.offset = p.offset;
      this.acked = p.offset;
      this.needStart = true;
    } else if (state.completed && state.completed.messageId === m.id && state.completed.total === total) {
      this.acked = total;
      this.offset = total;
      this.msg = undefined; // delivered before the disconnect, only the final ACK was lost
    } else {
      this.offset = 0;
      this.acked = 0;
      this.needStart = true;
      if (total > this.peerMax) {
        this.msg = undefined;
        fail('MESSAGE_TOO_LARGE', `${total} > peer limit ${this.peerMax}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Reassembler

export interface ReassemblerSnapshot {
  partial?: { messageId: number; total: number; bytes: Uint8Array };
  completed?: { messageId: number; total: number };
}

export interface FrameReassemblerOptions {
  maxMessageBytes?: number;
  /** Window advertised in HELLO (1..127, default 32). */
  window?: number;
  /** ACK after this many frames (default max(1, floor(window/2))); must be <= window. */
  ackEvery?: number;
  /** State recalled from persistent storage (see snapshot()). */
  restore?: ReassemblerSnapshot;
  /** A phone's resume token, sent in every HELLO (SPEC §13.2 flags bit 2). */
  resumeToken?: Uint8Array;
}

export interface PushResult {
  message?: Uint8Array;
  messageId?: number;
  ack?: Uint8Array;
}

/**
 * Receives one message at a time. Drive it with:
 *   - hello() at the start of every connection (send the returned frame to the peer),
 *   - push(frame) for every DATA / START frame; send result.ack if present; deliver result.message.
 * On a FramingError from push(): MESSAGE_TOO_LARGE -> send abortFrame(); anything else is a
 * protocol violation -> drop the connection (the partial is kept and resumed on reconnect).
 */
export class FrameReassembler {
  readonly maxMessageBytes: number;
  readonly window: number;
  readonly ackEvery: number;
  private expectedSeq = 0;
  private inProgress = false;
  private skipping = false;
  private sinceAck = 0;
  private partial: { messageId: number; total: number; buf: Uint8Array; held: number } | undefined;
  private completed: { messageId: number; total: number } | undefined;
  private refused: number | undefined;
  private readonly resumeToken: Uint8Array | undefined;

  constructor(opts: FrameReassemblerOptions = {}) {
    const max = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(max) || max < 0 || max > MAX_VARINT) fail('BAD_ARGUMENT', `maxMessageBytes ${max}`);
    const w = opts.window ?? DEFAULT_WINDOW;
    if (!Number.isInteger(w) || w < 1 || w > MAX_WINDOW) fail('BAD_ARGUMENT', `window ${w}`);
    const k = opts.ackEvery ?? Math.max(1, w >> 1);
    if (!Number.isInteger(k) || k < 1 || k > w) fail('BAD_ARGUMENT', `ackEvery ${k}`);
    this.maxMessageBytes = max;
    this.window = w;
    this.ackEvery = k;
    const r = opts.restore;
    if (r?.partial) {
      const { messageId, total, bytes } = r.partial;
      checkMessageId(messageId);
      if (bytes.length === 0 || bytes.length >= total || total > max) fail('BAD_ARGUMENT', 'bad restored partial');
      const buf = new Uint8Array(total);
      buf.set(bytes);
      this.partial = { messageId, total, buf, held: bytes.length };
    }
    if (r?.completed) this.completed = { ...r.completed };
    if (opts.resumeToken !== undefined) {
      if (opts.resumeToken.length !== RESUME_TOKEN_BYTES) fail('BAD_ARGUMENT', `resume token must be ${RESUME_TOKEN_BYTES} bytes`);
      this.resumeToken = Uint8Array.from(opts.resumeToken);
    }
  }

  /** What the receiver holds; this is what HELLO carries. */
  resumeState(): ResumeState {
    const s: ResumeState = { version: FRAMING_VERSION, window: this.window, maxMessageBytes: this.maxMessageBytes };
    if (this.partial && this.partial.held > 0)
      s.partial = { messageId: this.partial.messageId, total: this.partial.total, offset: this.partial.held };
    if (this.completed) s.completed = { ...this.completed };
    if (this.resumeToken) s.resumeToken = Uint8Array.from(this.resumeToken);
    return s;
  }

  /** Start of a connection: resets sequence state and returns the HELLO frame to send. */
  hello(): Uint8Array {
    this.expectedSeq = 0;
    this.inProgress = false;
    this.skipping = false;
    this.sinceAck = 0;
    this.refused = undefined;
    return encodeHello(this.resumeState());
  }

  /** Persistable state (the held prefix of a partial message and the last completed id). */
  snapshot(): ReassemblerSnapshot {
    const s: ReassemblerSnapshot = {};
    if (this.partial && this.partial.held > 0)
      s.partial = {
        messageId: this.partial.messageId,
        total: this.partial.total,
        bytes: this.partial.buf.slice(0, this.partial.held),
      };
    if (this.completed) s.completed = { ...this.completed };
    return s;
  }

  /** Bytes held of the message in progress (0 if none). */
  get heldBytes(): number {
    return this.partial?.held ?? 0;
  }

  /**
   * The message in progress: the buffer it is being assembled in (its final size; the
   * first `held` bytes are in and never change again, across a resume as well) — the same
   * buffer push() hands over as the message once complete. For a receiver that works on a
   * message while it arrives (MessageStreamDecoder).
   */
  get inProgressMessage(): { buffer: Uint8Array; held: number } | undefined {
    const p = this.partial;
    return p === undefined || p.held === p.total ? undefined : { buffer: p.buf, held: p.held };
  }

  /** ABORT frame for the message refused by the last MESSAGE_TOO_LARGE, if any. */
  abortFrame(): Uint8Array | undefined {
    return this.refused === undefined ? undefined : encodeAbort(this.refused, 'MESSAGE_TOO_LARGE');
  }

  push(frame: Uint8Array): PushResult {
    const f = decodeFrame(frame);
    if (f.type === 'data') {
      const p = this.partial;
      if (!this.inProgress || !p) {
        if (this.skipping) return {};
        return fail('UNEXPECTED_CONTINUATION', `seq ${f.seq} with no message in progress`);
      }
      if (f.seq !== this.expectedSeq) return fail('BAD_SEQUENCE', `got ${f.seq}, expected ${this.expectedSeq}`);
      if (f.payload.length > p.total - p.held) return fail('LENGTH_OVERRUN', `message ${p.messageId}`);
      p.buf.set(f.payload, p.held);
      p.held += f.payload.length;
      return this.accepted(f.seq);
    }
    if (f.type !== 'start') return fail('UNEXPECTED_FRAME', `${f.type} frame given to a reassembler`);
    if (!this.skipping && f.seq !== this.expectedSeq)
      return fail('BAD_SEQUENCE', `got ${f.seq}, expected ${this.expectedSeq}`);
    if (this.inProgress) return fail('UNEXPECTED_START', 'message still in progress');
    if (f.total > this.maxMessageBytes) {
      this.skipping = true;
      this.refused = f.messageId;
      return fail('MESSAGE_TOO_LARGE', `${f.total} > ${this.maxMessageBytes}`);
    }
    if (f.payload.length > f.total - f.offset) return fail('LENGTH_OVERRUN', `message ${f.messageId}`);
    if (f.offset > 0) {
      const p = this.partial;
      if (!p || p.messageId !== f.messageId || p.total !== f.total || p.held !== f.offset)
        return fail(
          'RESUME_MISMATCH',
          `START ${f.messageId}@${f.offset}/${f.total}, holding ${p ? `${p.messageId}@${p.held}/${p.total}` : 'nothing'}`,
        );
    } else {
      this.partial = { messageId: f.messageId, total: f.total, buf: new Uint8Array(f.total), held: 0 };
    }
    const p = this.partial as { messageId: number; total: number; buf: Uint8Array; held: number };
    p.buf.set(f.payload, p.held);
    p.held += f.payload.length;
    this.inProgress = true;
    this.skipping = false;
    this.refused = undefined;
    return this.accepted(f.seq);
  }

  private accepted(seq: number): PushResult {
    this.expectedSeq = (seq + 1) & 0x7f;
    this.sinceAck++;
    const p = this.partial as { messageId: number; total: number; buf: Uint8Array; held: number };
    if (p.held === p.total) {
      this.partial = undefined;
      this.inProgress = false;
      this.completed = { messageId: p.messageId, total: p.total };
      this.sinceAck = 0;
      return { message: p.buf, messageId: p.messageId, ack: encodeAck(seq) };
    }
    if (this.sinceAck >= this.ackEvery) {
      this.sinceAck = 0;
      return { ack: encodeAck(seq) };
    }
    return {};
  }
}

// ---------------------------------------------------------------------------------------
// Overhead accounting (ours vs Matter BTP vs mcumgr SMP), for benchmarks and the SPEC table.

export interface OverheadReport {
  scheme: string;
  messageBytes: number;
  mtu: number;
  /** PDUs carrying the message (sender -> receiver). */
  dataPdus: number;
  /** Framing header bytes in those PDUs (excluding ATT headers). */
  headerBytes: number;
  /** PDUs in the reverse direction (acks / responses), plus handshake PDUs. */
  controlPdus: number;
  /** Framing bytes of control PDUs (excluding ATT headers). */
  controlBytes: number;
  /** All ATT-payload + ATT-header bytes in both directions. */
  onAirBytes: number;
  /** (onAirBytes - messageBytes) / messageBytes. */
  overheadPerPayloadByte: number;
  /** headerBytes / messageBytes (framing only, data direction). */
  headerPerPayloadByte: number;
  note?: string;
}

function report(
  scheme: string,
  messageBytes: number,
  mtu: number,
  dataPdus: number,
  headerBytes: number,
  controlPdus: number,
  controlBytes: number,
  note?: string,
): OverheadReport {
  const onAir = messageBytes + headerBytes + controlBytes + ATT_HEADER_BYTES * (dataPdus + controlPdus);
  const d = Math.max(1, messageBytes);
  const r: OverheadReport = {
    scheme,
    messageBytes,
    mtu,
    dataPdus,
    headerBytes,
    controlPdus,
    controlBytes,
    onAirBytes: onAir,
    overheadPerPayloadByte: (onAir - messageBytes) / d,
    headerPerPayloadByte: headerBytes / d,
  };
  if (note !== undefined) r.note = note;
  return r;
}

/** Our framing: START + DATA frames, one ACK per `ackEvery` frames and at the end, HELLO once. */
export function framingOverhead(
  messageBytes: number,
  mtu: number,
  opts: { window?: number; ackEvery?: number; includeHello?: boolean } = {},
): OverheadReport {
  checkMtu(mtu);
  const window = opts.window ?? DEFAULT_WINDOW;
  const k = opts.ackEvery ?? Math.max(1, window >> 1);
  const room = mtu - ATT_HEADER_BYTES;
  const startHdr = startHeaderLength(messageBytes, 0);
  const first = Math.min(messageBytes, room - startHdr);
  const rest = messageBytes - first;
  const cont = Math.ceil(rest / (room - 1));
  const frames = 1 + cont;
  const header = startHdr + cont;
  const acks = Math.ceil(frames / k); // every k frames, and the final frame always acked
  let controlPdus = acks;
  let controlBytes = acks * 2;
  if (opts.includeHello ?? true) {
    controlPdus += 1;
    controlBytes += encodeHello({ version: 1, window, maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES }).length;
  }
  return report('locksync', messageBytes, mtu, frames, header, controlPdus, controlBytes);
}

/**
 * Matter BTP (Matter core spec §4.19; connectedhomeip BtpEngine): 1 flags + 1 seq on every
 * segment, +2 message length on the first; standalone ACK = 3 bytes (flags, ack, seq).
 * Default receive window 5 (BLE_MAX_RECEIVE_WINDOW_SIZE); a sender cannot use the last slot
 * without a piggybacked ack, so with one-way traffic a standalone ACK flows about every
 * window-1 = 4 segments. Handshake: 9-byte request + 6-byte response. An SDU is at most
 * 65535 bytes: larger messages are split into ceil(n/65535) SDUs (Matter would need BDX).
 * Note: Matter writes C1 with ATT Write Requests, each answered by a Write Response (not
 * counted here, which flatters BTP).
 */
export function btpOverhead(messageBytes: number, mtu: number, opts: { window?: number } = {}): OverheadReport {
  checkMtu(mtu);
  const window = opts.window ?? 5;
  const room = mtu - ATT_HEADER_BYTES;
  let remaining = messageBytes;
  let pdus = 0;
  let header = 0;
  const sdus = Math.max(1, Math.ceil(messageBytes / 65535));
  for (let s = 0; s < sdus; s++) {
    const sdu = Math.min(remaining, 65535);
    remaining -= sdu;
    const first = Math.min(sdu, room - 4);
    const cont = Math.ceil((sdu - first) / (room - 2));
    pdus += 1 + cont;
    header += 4 + 2 * cont;
  }
  const acks = Math.ceil(pdus / Math.max(1, window - 1));
  return report(
    'Matter BTP',
    messageBytes,
    mtu,
    pdus,
    header,
    acks + 2,
    acks * 3 + 9 + 6,
    sdus > 1 ? `${sdus} SDUs (BTP max 65535 B per SDU)` : undefined,
  );
}

/**
 * mcumgr SMP over BLE (Zephyr smp_bt): 8-byte SMP header per SMP packet, no per-fragment
 * header, but no window/acks/resume either; a packet must fit the server's buffer
 * (Zephyr CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE, default 384). Bulk data therefore moves as
 * image-upload-style requests: 8-byte header + CBOR {"off":u,"data":bstr} (~14 B) per
 * request of up to `bufferBytes`, each answered by a notification 8 + {"rc":0,"off":u} (~13 B).
 */
export function smpOverhead(messageBytes: number, mtu: number, opts: { bufferBytes?: number } = {}): OverheadReport {
  checkMtu(mtu);
  const buffer = opts.bufferBytes ?? 384;
  const room = mtu - ATT_HEADER_BYTES;
  const reqOverhead = 8 + 14;
  const rspBytes = 8 + 13;
  const perReq = buffer - reqOverhead;
  const reqs = Math.max(1, Math.ceil(messageBytes / perReq));
  let pdus = 0;
  let remaining = messageBytes;
  for (let i = 0; i < reqs; i++) {
    const n = Math.min(remaining, perReq);
    remaining -= n;
    pdus += Math.ceil((n + reqOverhead) / room);
  }
  const rspPdus = reqs * Math.ceil(rspBytes / room);
  return report('mcumgr SMP', messageBytes, mtu, pdus, reqs * reqOverhead, rspPdus, reqs * rspBytes,
    `${reqs} request/response round trips (${buffer}-byte SMP buffer)`);
}
