// A whole-message channel over the GATT framing (framing.ts), identical on both ends.
//
// Each end owns one FrameSender (its outgoing messages) and one FrameReassembler (the
// peer's). Data frames (DATA/START) go to the reassembler; control frames (ACK/HELLO/
// ABORT) go to the sender — frameKind() tells which. On the lock the frames leave as
// notifications and arrive as writes; on the phone the other way round.
//
// The channel survives disconnects: call linkDown() when the link drops and linkUp(mtu)
// on the next connection; both sides exchange HELLO frames and the pending message
// continues from the bytes the receiver already holds. Pure: no timers, no I/O — the
// caller supplies `write` and feeds received frames to `receiveFrame`.

import {
  FrameReassembler,
  FrameSender,
  FramingError,
  type FrameReassemblerOptions,
  frameKind,
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_MESSAGE_ID,
} from './framing';
import { hash } from './crypto';

export interface MessageChannelOptions {
  /** Called for every frame to put on the air, in order. */
  write: (frame: Uint8Array) => void;
  /** Called once per complete message received. */
  onMessage: (message: Uint8Array) => void;
  /**
   * After each data frame of a message still arriving: the buffer it is assembled in (the
   * one onMessage will get) and how many of its first bytes are in (see
   * FrameReassembler.inProgressMessage).
   */
  onReceiving?: (buffer: Uint8Array, held: number) => void;
  /** Bytes of the outgoing message acknowledged so far, after every ACK/HELLO. */
  onProgress?: (acked: number, total: number) => void;
  /** A framing violation by the peer: the owner should drop the link (partials are kept). */
  onProtocolError?: (error: FramingError) => void;
  /**
   * A message refused without a violation (MESSAGE_TOO_LARGE): the ABORT is already sent
   * and the link stays up (SPEC §13.2) — the peer may send something else.
   */
  onMessageRefused?: (error: FramingError) => void;
  maxMessageBytes?: number;
  window?: number;
  ackEvery?: number;
  /** ATT MTU before linkUp() (23 until an MTU exchange says otherwise). */
  mtu?: number;
  /** A phone's resume token for this lock, carried in its every HELLO (SPEC §13.2, §13.3). */
  resumeToken?: Uint8Array;
}

export interface ChannelStats {
  framesOut: number;
  bytesOut: number;
  framesIn: number;
  bytesIn: number;
  messagesOut: number;
  messagesIn: number;
  /** Bytes of our messages the peer already held when a connection resumed. */
  resumedBytes: number;
}

interface Pending {
  bytes: Uint8Array;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Message ids come from the content: the same message re-sent over a fresh channel (a
 * retried Door Sync) gets the same id, so the receiver's HELLO lets it resume from the
 * bytes it already holds; a different message practically never matches a held partial
 * (and if it did, signatures above the framing would refuse the result). Two consecutive
 * messages never share an id.
 */
export function messageIdFor(bytes: Uint8Array, previousId: number): number {
  const h = hash(bytes);
  let id = ((h[0] as number) << 8) | (h[1] as number);
  if (id === previousId) id = (id + 1) & MAX_MESSAGE_ID;
  return id;
}

export class ChannelClosedError extends Error {
  override readonly name = 'ChannelClosedError';
}

export class MessageChannel {
  private sender: FrameSender;
  private mtu: number;
  private readonly reassembler: FrameReassembler;
  private readonly queue: Pending[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private current: Pending | undefined;
  private lastId = -1;
  private up = false;
  readonly stats: ChannelStats = { framesOut: 0, bytesOut: 0, framesIn: 0, bytesIn: 0, messagesOut: 0, messagesIn: 0, resumedBytes: 0 };

  constructor(private readonly opts: MessageChannelOptions) {
    this.mtu = opts.mtu ?? 23;
    this.sender = new FrameSender({ mtu: this.mtu });
    const ro: FrameReassemblerOptions = { maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES };
    if (opts.window !== undefined) ro.window = opts.window;
    if (opts.ackEvery !== undefined) ro.ackEvery = opts.ackEvery;
    if (opts.resumeToken !== undefined) ro.resumeToken = opts.resumeToken;
    this.reassembler = new FrameReassembler(ro);
  }

  get connected(): boolean {
    return this.up;
  }

  /** Bytes held of the incoming message in progress. */
  get receivedPartialBytes(): number {
    return this.reassembler.heldBytes;
  }

  /** A connection is up (after MTU exchange and subscription): announce our receiver state. */
  linkUp(mtu: number): void {
    this.mtu = mtu;
    this.sender.setMtu(mtu);
    this.up = true;
    this.emit(this.reassembler.hello());
    // The peer's HELLO may have arrived before we were told the link is up (a notification
    // can beat the subscribe confirmation): its resume state is already applied, so send.
    this.pump();
  }

  setMtu(mtu: number): void {
    this.mtu = mtu;
    this.sender.setMtu(mtu);
  }

  /** The link dropped. Pending sends stay queued and resume on the next linkUp(). */
  linkDown(): void {
    this.up = false;
    this.sender.disconnected();
  }

  /**
   * Resolves when nothing is left to send: every queued message fully acknowledged (a
   * message resumed on a new connection included), or the channel closed.
   */
  drained(): Promise<void> {
    if (!this.current && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private notifyDrained(): void {
    if (this.current || this.queue.length > 0) return;
    for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Give up: reject every pending send. */
  close(reason = 'channel closed'): void {
    this.up = false;
    // A fresh sender: the abandoned message must not resume on the next connection.
    this.sender = new FrameSender({ mtu: this.mtu });
    const all = [...(this.current ? [this.current] : []), ...this.queue.splice(0)];
    this.current = undefined;
    for (const p of all) p.reject(new ChannelClosedError(reason));
    this.notifyDrained();
  }

  /** Queue a message; resolves when the peer has acknowledged every byte. */
  send(message: Uint8Array): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes: message, resolve, reject });
      this.pump();
    });
  }

  receiveFrame(frame: Uint8Array): void {
    this.stats.framesIn++;
    this.stats.bytesIn += frame.length;
    try {
      if (frameKind(frame) === 'data') {
        const r = this.reassembler.push(frame);
        if (r.ack) this.emit(r.ack);
        if (r.message) {
          this.stats.messagesIn++;
          this.opts.onMessage(r.message);
        } else if (this.opts.onReceiving) {
          const m = this.reassembler.inProgressMessage;
          if (m) this.opts.onReceiving(m.buffer, m.held);
        }
      } else {
        const wasHello = frame[0] === 0x82;
        this.sender.onAck(frame);
        // After a HELLO, what the sender counts as acknowledged is what the peer kept
        // from an earlier connection: bytes a resume did not have to send again.
        if (wasHello && this.current) this.stats.resumedBytes += this.sender.ackedBytes;
        if (this.current) this.opts.onProgress?.(this.sender.ackedBytes, this.current.bytes.length);
        this.settle();
        this.pump();
      }
    } catch (e) {
      if (!(e instanceof FramingError)) throw e;
      if (e.code === 'MESSAGE_TOO_LARGE' && frameKind(frame) === 'data') {
        // Refused from its START, before buffering: answer ABORT and keep the link.
        const abort = this.reassembler.abortFrame();
        if (abort) this.emit(abort);
        this.opts.onMessageRefused?.(e);
        return;
      }
      if (e.code === 'PEER_ABORTED' && this.current) {
        const p = this.current;
        this.current = undefined;
        p.reject(e);
        this.pump();
        return;
      }
      this.opts.onProtocolError?.(e);
    }
  }

  private settle(): void {
    if (this.current && this.sender.done) {
      const p = this.current;
      this.current = undefined;
      this.stats.messagesOut++;
      p.resolve();
      this.notifyDrained();
    }
  }

  private pump(): void {
    if (!this.current && this.queue.length > 0) {
      const next = this.queue.shift() as Pending;
      const id = messageIdFor(next.bytes, this.lastId);
      this.lastId = id;
      try {
        this.sender.send(id, next.bytes);
      } catch (e) {
        next.reject(e as Error); // e.g. MESSAGE_TOO_LARGE for the peer's advertised limit
        this.pump();
        return;
      }
      this.current = next;
    }
    if (!this.up) return;
    for (const f of this.sender.nextFrames()) this.emit(f);
    this.settle();
    if (!this.current && this.queue.length > 0) this.pump();
  }

  private emit(frame: Uint8Array): void {
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
    this.opts.write(frame);
  }
}
