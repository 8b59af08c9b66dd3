// The lock's side of its connections, independent of the radio: frames in (GATT writes),
// frames out (notifications), one protocol session at a time (SPEC.md §13.3).
//
// * One session at a time. A phone that connects while another phone holds the session
//   gets its framing HELLO (nothing held) and one `error BUSY` message, and its link is
//   dropped shortly after; the session in progress is not touched. A new connection from
//   the phone that holds the session replaces the old link (a phone cannot hold two links
//   to one lock: the old one is dead and only its supervision timeout has not fired yet).
//   The phone is recognised by its address, or — when its address changed, as a phone's
//   private address does — by its HELLO's resume token: a link from another address waits
//   for its HELLO before the lock answers it BUSY or hands it the session.
// * Held partial messages belong to their phone, not to its address. The incoming message a
//   dropped link left half-received is kept under the resume token the phone's framing
//   HELLO carries (SPEC §13.2, a secret the phone chose), or under the peer's address when
//   its HELLO has none: only a HELLO with the same token shows it and only that phone can
//   resume it — and a phone whose private address rotated between the drop and its retry
//   still resumes. The lock therefore picks the channel, and sends its own HELLO, when the
//   phone's HELLO arrives (its first frame: a sender sends nothing before the peer's
//   HELLO). Partials of the last MAX_PEER_CHANNELS phones are kept.
// * A link cannot be held for ever: it is closed after LINK_IDLE_TIMEOUT_MS without a
//   frame from the phone and when the session reaches LINK_SESSION_LIMIT_MS, each time
//   after an `error SESSION_EXPIRED` that says why. A transfer cut by the limit resumes on
//   the next connection from the bytes held.
// * A message larger than the lock accepts is refused with a framing ABORT
//   (MESSAGE_TOO_LARGE) and the link stays up (SPEC §13.2); every other framing violation
//   drops the link (the held partial is kept).
// Responses still queued when a link drops belong to the dead session and are dropped.

import { MessageChannel, ChannelClosedError, FramingError, decodeFrame, encodeMessage, toHex } from '../protocol/index';
import type { HostedSession, LockSessionHost } from './session-host';

/** A session link with no frame from the phone for this long is closed. */
export const LINK_IDLE_TIMEOUT_MS = 30_000;
/** A session link is closed when the session is this old (the reference lock's session lifetime). */
export const LINK_SESSION_LIMIT_MS = 120_000;
/** How long a refused (BUSY) or expiring link gets to receive its error before it is dropped. */
export const LINK_LINGER_MS = 2_000;
/** Peers whose held partial messages are kept (least recently connected evicted first). */
export const MAX_PEER_CHANNELS = 2;

export interface LockLinkEvents {
  onSessionOpened?: () => void;
  onMessageIn?: (bytes: Uint8Array) => void;
  onMessageOut?: (bytes: Uint8Array) => void;
  onProtocolError?: (e: FramingError) => void;
  /** A message was refused by the framing (MESSAGE_TOO_LARGE): ABORT sent, link kept. */
  onMessageRefused?: (e: FramingError) => void;
  /** The lock failed while handling a message (e.g. power cut mid-commit): the link drops. */
  onSessionFailure?: (e: unknown) => void;
  /** A second peer connected while a session was held: it was answered BUSY. */
  onBusy?: (peer: string, holder: string) => void;
  /** The lock closed a link: idle, session limit reached. */
  onLinkExpired?: (peer: string, why: 'idle' | 'session-limit') => void;
}

export interface LockLinkServerOptions {
  maxMessageBytes?: number;
  window?: number;
  idleTimeoutMs?: number;
  sessionLimitMs?: number;
  lingerMs?: number;
}

export interface LinkOptions {
  /**
   * The peer's identity as the link layer reports it: the phone's (identity) address on
   * BLE, the phone's name on the sim link. Partials are bound to it (SPEC §13.3).
   */
  peer?: string;
  /** Drops this link at the link layer; the transport then calls disconnect(). */
  drop?: () => void;
}

/** One connection as the lock sees it. */
export interface LockLink {
  readonly peer: string;
  /** Refused with BUSY: frames from it never reach a session. */
  readonly busy: boolean;
  receiveFrame(frame: Uint8Array): void;
  setMtu(mtu: number): void;
  /** The link went away (or the lock dropped it). Idempotent. */
  disconnect(): void;
}

const DEFAULT_PEER = 'peer';

interface SessionLink {
  link: LinkImpl;
  /** Chosen by the phone's HELLO (its resume token, else its address); undefined until then. */
  channel: MessageChannel | undefined;
  /** The key `channel` is kept under (`token:<hex>` or `peer:<address>`). */
  key: string | undefined;
  mtu: number;
  /** Messages the session produced before the phone's HELLO chose the channel. */
  early: Uint8Array[];
  session: HostedSession;
  idle: ReturnType<typeof setTimeout> | undefined;
  limit: ReturnType<typeof setTimeout> | undefined;
  /** Work queue: serialises handling so responses leave in request order. */
  work: Promise<void>;
  expiring: boolean;
}

interface LinkImpl extends LockLink {
  write: (frame: Uint8Array) => void;
  drop: (() => void) | undefined;
  closed: boolean;
  busyChannel: MessageChannel | undefined;
  lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Connected while another link holds the session, from another address: the lock waits
   * for this link's HELLO, whose resume token says whether it is the holder's phone again
   * (from a new private address) or another phone (BUSY).
   */
  awaitingHello: { mtu: number; timer: ReturnType<typeof setTimeout> } | undefined;
}

/**
 * A link's first frame must be the phone's framing HELLO (SPEC §13.2); its resume token, if
 * it carries one. Anything else is the FramingError to report.
 */
function phoneHello(frame: Uint8Array): { token: Uint8Array | undefined } | FramingError {
  try {
    const decoded = decodeFrame(frame);
    if (decoded.type !== 'hello') return new FramingError('UNEXPECTED_FRAME', `a ${decoded.type.toUpperCase()} frame before the phone's HELLO`);
    return { token: decoded.state.resumeToken };
  } catch (e) {
    if (e instanceof FramingError) return e;
    throw e;
  }
}

export class LockLinkServer {
  /** Per phone (`token:<hex>`, or `peer:<address>` without a token): the channel holding its partial message. */
  private readonly channels = new Map<string, MessageChannel>();
  /** The key each peer's last session used (heldBytesFor looks a peer up by it). */
  private readonly lastKeyOf = new Map<string, string>();
  private current: SessionLink | undefined;
  private readonly idleTimeoutMs: number;
  private readonly sessionLimitMs: number;
  private readonly lingerMs: number;

  constructor(
    readonly host: LockSessionHost,
    private readonly events: LockLinkEvents = {},
    private readonly opts: LockLinkServerOptions = {},
  ) {
    this.idleTimeoutMs = opts.idleTimeoutMs ?? LINK_IDLE_TIMEOUT_MS;
    this.sessionLimitMs = opts.sessionLimitMs ?? LINK_SESSION_LIMIT_MS;
    this.lingerMs = opts.lingerMs ?? LINK_LINGER_MS;
  }

  /** Fallback for links connected without their own `drop`: drops the current link. */
  requestDisconnect: (() => void) | undefined;

  /** A session is open on some link. */
  get connected(): boolean {
    return this.current !== undefined;
  }

  /** The peer holding the session, if any. */
  get sessionPeer(): string | undefined {
    return this.current?.link.peer;
  }

  /** Framing statistics of the current session's channel. */
  get stats() {
    return this.current?.channel?.stats;
  }

  /** Bytes of an incoming message held for the phone whose last session came from `peer` (0 if none). */
  heldBytesFor(peer: string): number {
    return this.channels.get(this.lastKeyOf.get(peer) ?? `peer:${peer}`)?.receivedPartialBytes ?? 0;
  }

  /** Bytes of an incoming message held under a phone's resume token (0 if none). */
  heldBytesForToken(token: Uint8Array): number {
    return this.channels.get(`token:${toHex(token)}`)?.receivedPartialBytes ?? 0;
  }

  /**
   * The phone subscribed to notifications: the link can carry frames both ways. Returns
   * the link; frames from it go to its receiveFrame.
   */
  connect(mtu: number, writeFrame: (frame: Uint8Array) => void, opts: LinkOptions = {}): LockLink {
    const peer = opts.peer ?? DEFAULT_PEER;
    const link: LinkImpl = {
      peer,
      busy: false,
      write: writeFrame,
      drop: opts.drop,
      closed: false,
      busyChannel: undefined,
      lingerTimer: undefined,
      awaitingHello: undefined,
      receiveFrame: (frame) => this.receiveOn(link, frame),
      setMtu: (m) => {
        if (link.awaitingHello) link.awaitingHello.mtu = m;
        if (link.busyChannel) return link.busyChannel.setMtu(m);
        if (this.current?.link !== link) return;
        this.current.mtu = m;
        this.current.channel?.setMtu(m);
      },
      disconnect: () => this.linkGone(link),
    };
    const holder = this.current;
    if (holder !== undefined && holder.link.peer === peer) {
      // The same phone again: its old link is dead, the lock just has not noticed yet.
      this.dropLink(holder.link);
    } else if (holder !== undefined && holder.key?.startsWith('token:')) {
      // Perhaps the holder's phone from a new private address: its HELLO will say.
      const timer = setTimeout(() => this.refuseAwaiting(link), this.idleTimeoutMs);
      timer.unref?.();
      link.awaitingHello = { mtu, timer };
      return link;
    } else if (holder !== undefined) {
      this.refuseBusy(link, mtu, holder.link.peer);
      return link;
    }
    this.openSessionOn(link, mtu);
    return link;
  }

  /** A new session on `link`: the lock's HELLO goes once the phone's HELLO picks the channel. */
  private openSessionOn(link: LinkImpl, mtu: number): void {
    const session = this.host.openSession();
    const s: SessionLink = { link, channel: undefined, key: undefined, mtu, early: [], session, idle: undefined, limit: undefined, work: Promise.resolve(), expiring: false };
    this.current = s;
    this.events.onSessionOpened?.();
    this.queueSend(s, session.hello());
    this.touch(s);
    s.limit = setTimeout(() => this.expire(s, 'session-limit', `session older than ${this.sessionLimitMs} ms`), this.sessionLimitMs);
    s.limit.unref?.();
  }

  /**
   * The first frame of a link that connected while the session was held: a HELLO with the
   * holder's resume token is the holder's phone again — its old link is dead, only its
   * supervision timeout has not fired (the phone's private address changed in between) — and
   * takes the session over; anything else is another phone, answered BUSY.
   */
  private helloWhileHeld(link: LinkImpl, frame: Uint8Array): void {
    const pending = link.awaitingHello!;
    clearTimeout(pending.timer);
    link.awaitingHello = undefined;
    const hello = phoneHello(frame);
    const holder = this.current;
    if (holder === undefined || (!(hello instanceof FramingError) && hello.token !== undefined && holder.key === `token:${toHex(hello.token)}`)) {
      if (holder !== undefined) this.dropLink(holder.link);
      this.openSessionOn(link, pending.mtu);
      this.receiveOn(link, frame);
      return;
    }
    this.refuseBusy(link, pending.mtu, holder.link.peer);
    link.busyChannel?.receiveFrame(frame);
  }

  /** A link that never sent its HELLO while the session was held: BUSY, then dropped. */
  private refuseAwaiting(link: LinkImpl): void {
    const pending = link.awaitingHello;
    if (pending === undefined || link.closed) return;
    link.awaitingHello = undefined;
    this.refuseBusy(link, pending.mtu, this.current?.link.peer ?? 'nobody');
  }

  /** Frames from the session's link (transports that track one link at a time). */
  receiveFrame(frame: Uint8Array): void {
    if (this.current) this.receiveOn(this.current.link, frame);
  }

  setMtu(mtu: number): void {
    if (!this.current) return;
    this.current.mtu = mtu;
    this.current.channel?.setMtu(mtu);
  }

  /** The session's link went away. */
  disconnect(): void {
    if (this.current) this.linkGone(this.current.link);
  }

  // -------------------------------------------------------------------------------------

  /** The phone's channel, most recently used last; the oldest idle phone's is evicted. */
  private channelFor(key: string): MessageChannel {
    let channel = this.channels.get(key);
    if (channel !== undefined) {
      this.channels.delete(key);
      this.channels.set(key, channel);
      return channel;
    }
    channel = new MessageChannel({
      write: (f) => {
        const s = this.current;
        if (s && s.channel === channel && !s.link.closed) s.link.write(f);
      },
      onMessage: (m) => {
        const s = this.current;
        if (s && s.channel === channel) this.onMessage(s, m);
      },
      onReceiving: (buffer, held) => {
        const s = this.current;
        if (s && s.channel === channel) s.session.receiving?.(buffer, held);
      },
      onProtocolError: (e) => {
        const s = this.current;
        if (!s || s.channel !== channel) return;
        this.events.onProtocolError?.(e);
        this.dropLink(s.link);
      },
      onMessageRefused: (e) => this.events.onMessageRefused?.(e),
      ...(this.opts.maxMessageBytes !== undefined ? { maxMessageBytes: this.opts.maxMessageBytes } : {}),
      ...(this.opts.window !== undefined ? { window: this.opts.window } : {}),
    });
    this.channels.set(key, channel);
    for (const [other, c] of this.channels) {
      if (this.channels.size <= MAX_PEER_CHANNELS) break;
      if (other === key || this.current?.channel === c) continue;
      c.close('evicted');
      this.channels.delete(other);
    }
    return channel;
  }

  private receiveOn(link: LinkImpl, frame: Uint8Array): void {
    if (link.closed) return;
    if (link.awaitingHello) {
      this.helloWhileHeld(link, frame);
      return;
    }
    if (link.busyChannel) {
      link.busyChannel.receiveFrame(frame);
      return;
    }
    const s = this.current;
    if (!s || s.link !== link) return;
    this.touch(s);
    if (s.channel === undefined && !this.chooseChannel(s, frame)) return;
    s.channel!.receiveFrame(frame);
  }

  /**
   * The phone's first frame is its HELLO (SPEC §13.2: a sender sends nothing before the
   * peer's HELLO): its resume token — else the link's peer address — picks the channel
   * holding that phone's partial; the lock's HELLO and what the session queued follow.
   * Anything else first is a framing violation: the link is dropped.
   */
  private chooseChannel(s: SessionLink, frame: Uint8Array): boolean {
    const hello = phoneHello(frame);
    if (hello instanceof FramingError) {
      this.events.onProtocolError?.(hello);
      this.dropLink(s.link);
      return false;
    }
    const token = hello.token;
    const key = token ? `token:${toHex(token)}` : `peer:${s.link.peer}`;
    this.lastKeyOf.delete(s.link.peer);
    this.lastKeyOf.set(s.link.peer, key);
    while (this.lastKeyOf.size > 64) this.lastKeyOf.delete(this.lastKeyOf.keys().next().value as string);
    const channel = this.channelFor(key);
    s.channel = channel;
    s.key = key;
    channel.linkUp(s.mtu);
    for (const bytes of s.early.splice(0)) this.sendOn(channel, bytes);
    return true;
  }

  /** Restart the idle timer: the phone sent a frame. */
  private touch(s: SessionLink): void {
    if (s.idle) clearTimeout(s.idle);
    s.idle = setTimeout(() => this.expire(s, 'idle', `no frame for ${this.idleTimeoutMs} ms`), this.idleTimeoutMs);
    s.idle.unref?.();
  }

  /** Tell the phone why, then drop the link (bounded: the phone may not read it). */
  private expire(s: SessionLink, why: 'idle' | 'session-limit', detail: string): void {
    if (this.current !== s || s.expiring) return;
    s.expiring = true;
    this.events.onLinkExpired?.(s.link.peer, why);
    const bytes = encodeMessage({ type: 'error', reason: 'SESSION_EXPIRED', detail });
    this.events.onMessageOut?.(bytes);
    // Before the phone's HELLO there is no channel to say it on: just drop.
    const sent = s.channel ? s.channel.send(bytes).catch(() => undefined) : Promise.resolve();
    this.lingerThenDrop(s.link, sent);
  }

  /** A second phone while a session is held: HELLO (nothing held), error BUSY, drop. */
  private refuseBusy(link: LinkImpl, mtu: number, holder: string): void {
    (link as { busy: boolean }).busy = true;
    const channel = new MessageChannel({
      write: (f) => {
        if (!link.closed) link.write(f);
      },
      onMessage: () => undefined,
      onProtocolError: () => this.dropLink(link),
    });
    link.busyChannel = channel;
    channel.linkUp(mtu);
    this.events.onBusy?.(link.peer, holder);
    const sent = channel.send(encodeMessage({ type: 'error', reason: 'BUSY', detail: 'another phone is in a session with this lock; try again shortly' })).catch(() => undefined);
    this.lingerThenDrop(link, sent);
  }

  private lingerThenDrop(link: LinkImpl, sent: Promise<unknown>): void {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      if (link.lingerTimer) clearTimeout(link.lingerTimer);
      this.dropLink(link);
    };
    link.lingerTimer = setTimeout(finish, this.lingerMs);
    link.lingerTimer.unref?.();
    void sent.then(finish);
  }

  /** The lock ends a link: at the link layer, then in its own state. */
  private dropLink(link: LinkImpl): void {
    if (link.closed) return;
    const drop = link.drop ?? (this.current?.link === link ? this.requestDisconnect : undefined);
    drop?.();
    this.linkGone(link);
  }

  private linkGone(link: LinkImpl): void {
    if (link.closed) return;
    link.closed = true;
    if (link.lingerTimer) clearTimeout(link.lingerTimer);
    if (link.awaitingHello) {
      clearTimeout(link.awaitingHello.timer);
      link.awaitingHello = undefined;
      return;
    }
    if (link.busyChannel) {
      link.busyChannel.close('link lost');
      link.busyChannel.linkDown();
      return;
    }
    const s = this.current;
    if (!s || s.link !== link) return;
    this.current = undefined;
    if (s.idle) clearTimeout(s.idle);
    if (s.limit) clearTimeout(s.limit);
    s.session.close();
    s.channel?.close('link lost'); // drops responses of the dead session; keeps incoming partials
    s.channel?.linkDown();
  }

  private onMessage(s: SessionLink, bytes: Uint8Array): void {
    this.events.onMessageIn?.(bytes);
    s.work = s.work
      .then(async () => {
        const responses = await s.session.handle(bytes);
        if (this.current !== s) return; // link dropped while handling
        for (const r of responses) this.queueSend(s, r);
      })
      .catch((e: unknown) => {
        // A lock that dies mid-message (power cut) answers nothing: the phone sees the
        // link go down, exactly as with real hardware.
        this.events.onSessionFailure?.(e);
        this.dropLink(s.link);
      });
  }

  private queueSend(s: SessionLink, bytes: Uint8Array): void {
    this.events.onMessageOut?.(bytes);
    if (s.channel) this.sendOn(s.channel, bytes);
    else s.early.push(bytes);
  }

  private sendOn(channel: MessageChannel, bytes: Uint8Array): void {
    channel.send(bytes).catch((e) => {
      if (!(e instanceof ChannelClosedError)) throw e;
    });
  }
}
