// The phone's view of a lock connection, independent of the transport (sim, BLE via noble).
// A connector finds locks and opens connections; a connection carries whole protocol
// messages over a MessageChannel that outlives the connection, so a transfer cut by a
// disconnect resumes on the next connection to the same lock.

import { randomBytes } from 'node:crypto';
import { type Message, RESUME_TOKEN_BYTES, concatBytes, decodeMessage, encodeMessage, hash, MESSAGE_TYPES, MessageChannel, ProtocolError } from '../protocol/index';
import { AgentError } from './errors';

export interface DiscoveredLock {
  lockId: string;
  rssi: number;
  /** Table version from the advert, when the lock advertises one. */
  version?: number;
  flags?: number;
  /** Transport-specific address (BD_ADDR on BLE). */
  address?: string;
}

export interface DisconnectInfo {
  /** HCI reason code on BLE (0x08 supervision timeout, 0x13 remote user, 0x16 local host). */
  reason: number;
  description: string;
}

export interface LockConnection {
  readonly lockId: string;
  readonly mtu: number;
  /**
   * Send one message; resolves when the lock has acknowledged all of its frames, rejects
   * with LINK_LOST if the link drops first — the message then stays queued and resumes on
   * the next connection to this lock (see drained()).
   */
  send(m: Message): Promise<void>;
  /** Send already-encoded message bytes exactly as received from the authority. */
  sendRaw(bytes: Uint8Array): Promise<void>;
  /** Resolves when everything queued for this lock — a resumed message too — is acknowledged. */
  drained(): Promise<void>;
  /** Next message from the lock; rejects with LINK_LOST on disconnect, TIMEOUT after timeoutMs. */
  next(timeoutMs: number): Promise<Message>;
  /** Resolves when the link goes down, for whatever reason. */
  readonly closed: Promise<DisconnectInfo>;
  readonly isOpen: boolean;
  rssi(): Promise<number>;
  disconnect(): Promise<void>;
}

export interface ConnectOptions {
  timeoutMs?: number;
  /** Progress of an outgoing message in flight (bytes acknowledged / total). */
  onProgress?: (acked: number, total: number) => void;
  /** ATT MTU to ask for on this connection (the transport's default when left out). */
  mtu?: number;
  /**
   * The lock's advertisement, when the connector hears one before it connects (a scan for
   * the lock); not called when it connects to a known address directly. Called before the
   * connection is set up, at most once per connect; must not throw.
   */
  onAdvert?: (advertised: DiscoveredLock) => void;
}

export interface LockConnector {
  readonly transport: string;
  scan(timeoutMs: number, filterLockId?: string): Promise<DiscoveredLock[]>;
  connect(lockId: string, opts?: ConnectOptions): Promise<LockConnection>;
  /** Abandon whatever is still queued for this lock (a sync that gave up). */
  forget(lockId: string): void;
  close(): Promise<void>;
}

/**
 * Queue of decoded incoming messages with waiters; shared by the connection
 * implementations. A message that fails to decode fails the waiter with PROTOCOL_VIOLATION.
 */
export class MessageInbox {
  private readonly queue: (Message | Error)[] = [];
  private waiter: { resolve: (m: Message) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private failure: Error | undefined;

  deliver(bytes: Uint8Array): void {
    let item: Message | Error;
    try {
      item = decodeMessage(bytes);
    } catch (e) {
      item = new AgentError('PROTOCOL_VIOLATION', e instanceof ProtocolError ? e.message : String(e));
    }
    this.push(item);
  }

  /** Every current and future waiter fails with `error` (link lost). */
  fail(error: Error): void {
    // Kept past the link (a late next() must still hear LINK_LOST): format its stack now, so
    // V8 lets go of the call sites it captured — they reach the whole async context of the
    // sync or unlock that was running (its updates, its connection), for as long as the
    // channel lives.
    void error.stack;
    this.failure = error;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(error);
    }
  }

  /**
   * A new connection is a new lock session: forget the previous link's failure and any
   * message of the old session not read yet (its answers are bound to the old nonce).
   */
  reopen(): void {
    this.failure = undefined;
    this.queue.length = 0;
  }

  next(timeoutMs: number): Promise<Message> {
    const item = this.queue.shift();
    if (item !== undefined) return item instanceof Error ? Promise.reject(item) : Promise.resolve(item);
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new Error('MessageInbox: only one reader at a time'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new AgentError('TIMEOUT', `no message from the lock within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  private push(item: Message | Error): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      if (item instanceof Error) w.reject(item);
      else w.resolve(item);
    } else this.queue.push(item);
  }
}

/** Where a lock's long-lived channel sends its frames and reports, on the current link. */
export interface ChannelHooks {
  write: (frame: Uint8Array) => void;
  progress: (acked: number, total: number) => void;
  violation: (e: Error) => void;
}

export interface LockChannelState {
  channel: MessageChannel;
  inbox: MessageInbox;
  hooks: ChannelHooks;
  /**
   * Sends not yet acknowledged, each marked resumable (a lone update) or not: a request
   * whose answer only means something in the session it was sent in is abandoned by the
   * next connection (see open()).
   */
  unacked: Map<Promise<void>, { resumable: boolean }>;
  /** Connections over this state that are still up. */
  live: number;
}

/**
 * Lock channels kept per connector once their connections have ended with nothing left to
 * resume (least recently opened dropped first): a phone that meets hundreds of locks over
 * its life must not keep a channel for each. An idle channel holds nothing worth keeping
 * (a lock never resumes its answers: its channel drops them with the link), so few are kept.
 * A channel with a message still queued, or a connection still up, is never dropped.
 */
export const MAX_IDLE_LOCK_CHANNELS = 2;

/**
 * A lone update (delta or snapshot) is the one request a later session may finish: the
 * lock judges it on its signatures alone and answers it with a receipt bound to the new
 * session's nonce (SPEC §14.1). Every other request belongs to the session it was sent in
 * — signed time and floor reset carry its nonce, a batch carries signed time, and the
 * answers to the rest (decision, timeAck, auditAnchored, auditExport…) carry no binding at
 * all, so only the order on one connection says which request they answer. Read from the
 * envelope's first entry (deterministic CBOR: map head, key 0, type code; SPEC §6.1).
 */
export function isResumableRequest(bytes: Uint8Array): boolean {
  const head = bytes[0] ?? 0;
  if (head < 0xa1 || head > 0xb7 || bytes[1] !== 0) return false;
  return bytes[2] === MESSAGE_TYPES.delta || bytes[2] === MESSAGE_TYPES.snapshot;
}

const idleHooks = (): ChannelHooks => ({ write: () => undefined, progress: () => undefined, violation: () => undefined });

/**
 * One MessageChannel and inbox per lock, outliving connections, so a transfer cut by a
 * disconnect resumes on the next connection. Each connector (sim, noble) points the
 * hooks at its current link.
 */
export class LockChannels {
  private readonly states = new Map<string, LockChannelState>();

  /**
   * `secret` is the phone's: each lock's resume token (SPEC §13.2 HELLO flags bit 2) is
   * derived from it and the lock id, so the lock keeps a dropped transfer for this phone
   * whatever Bluetooth address the phone connects from next, and no other phone can name
   * it. A random one when left out (it only has to outlive the retries of a sync).
   */
  constructor(private readonly secret: Uint8Array = randomBytes(32)) {}

  /** The token this phone's HELLOs carry to `lockId`. */
  resumeToken(lockId: string): Uint8Array {
    return hash(concatBytes(this.secret, new TextEncoder().encode(`locksync-resume-token:${lockId}`))).slice(0, RESUME_TOKEN_BYTES);
  }

  /** The lock's state for a new connection (created on first use). */
  open(lockId: string): LockChannelState {
    let state = this.states.get(lockId);
    if (!state) {
      const inbox = new MessageInbox();
      const hooks = idleHooks();
      const channel = new MessageChannel({
        write: (f) => hooks.write(f),
        onMessage: (m) => inbox.deliver(m),
        onProgress: (a, t) => hooks.progress(a, t),
        onProtocolError: (e) => hooks.violation(e),
        resumeToken: this.resumeToken(lockId),
      });
      state = { channel, inbox, hooks, unacked: new Map(), live: 0 };
    } else {
      this.states.delete(lockId); // re-inserted below: most recently opened last
      if ([...state.unacked.values()].some((u) => !u.resumable)) {
        // A request of the dead session is still queued: resumed here, the lock would answer
        // it in the new session, and that answer would be read as the reply to the new
        // session's own request (an auditAnchored taken for a decision). Abandon what is
        // queued; a lone update never queues behind such a request (the agent awaits each).
        state.channel.close('a request of an earlier session is not resumed');
        state.unacked.clear();
      }
    }
    this.states.set(lockId, state);
    state.inbox.reopen();
    this.dropIdle(state);
    return state;
  }

  /** Channels kept (tests). */
  get size(): number {
    return this.states.size;
  }

  private dropIdle(keep: LockChannelState): void {
    let idle = 0;
    for (const st of this.states.values()) if (st !== keep && st.live === 0 && st.unacked.size === 0) idle++;
    for (const [id, st] of this.states) {
      if (idle <= MAX_IDLE_LOCK_CHANNELS) break;
      if (st === keep || st.live > 0 || st.unacked.size > 0) continue;
      this.states.delete(id);
      idle--;
    }
  }

  /** Abandon whatever is queued for this lock. */
  forget(lockId: string): void {
    this.states.get(lockId)?.channel.close('abandoned');
    this.states.delete(lockId);
  }

  forgetAll(): void {
    for (const id of [...this.states.keys()]) this.forget(id);
  }
}

/**
 * A send fails with TIMEOUT when the lock acknowledges nothing of it (no HELLO, no ACK) for
 * this long while the link stays up: a lock that stopped reading must not hold the phone
 * for ever. The lock acknowledges at least every half window (16 frames), well within it.
 */
export const ACK_STALL_TIMEOUT_MS = 20_000;

/** A LockConnection over a lock's channel; the transport supplies the link-level parts. */
export function connectionOver(
  state: LockChannelState,
  link: { lockId: string; mtu: number; isOpen: () => boolean; closed: Promise<DisconnectInfo>; rssi: () => Promise<number>; disconnect: () => Promise<void>; stallTimeoutMs?: number },
): LockConnection {
  const { channel, inbox, unacked } = state;
  const stallMs = link.stallTimeoutMs ?? ACK_STALL_TIMEOUT_MS;
  state.live++;
  link.closed.then(
    () => void state.live--,
    () => void state.live--,
  );
  const send = (bytes: Uint8Array): Promise<void> => {
    const p = channel.send(bytes);
    unacked.set(p, { resumable: isResumableRequest(bytes) });
    const settled = (): void => void unacked.delete(p);
    p.then(settled, settled);
    return onThisLink(p);
  };
  const lost = link.closed.then((d) => {
    throw new AgentError('LINK_LOST', `${d.description} (HCI reason 0x${d.reason.toString(16).padStart(2, '0')})`);
  });
  lost.catch(() => undefined);
  let lastProgressAt = Date.now();
  const reportProgress = state.hooks.progress;
  state.hooks.progress = (acked, total) => {
    lastProgressAt = Date.now();
    reportProgress(acked, total);
  };
  /**
   * Acknowledged on this link, LINK_LOST, or TIMEOUT after stallMs without an ACK; the
   * channel keeps the message for a resume either way.
   */
  const onThisLink = (p: Promise<void>): Promise<void> => {
    p.catch(() => undefined); // rejected only by close(): nobody else waits for it
    lastProgressAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout;
      const check = (): void => {
        const idle = Date.now() - lastProgressAt;
        if (idle >= stallMs) reject(new AgentError('TIMEOUT', `the lock acknowledged nothing for ${stallMs} ms`));
        else timer = setTimeout(check, stallMs - idle);
      };
      timer = setTimeout(check, stallMs);
      Promise.race([p, lost]).then(
        () => (clearTimeout(timer), resolve()),
        (e: unknown) => (clearTimeout(timer), reject(e)),
      );
    });
  };
  return {
    lockId: link.lockId,
    mtu: link.mtu,
    get isOpen() {
      return link.isOpen();
    },
    closed: link.closed,
    send: (m: Message) => send(encodeMessage(m)),
    sendRaw: (b: Uint8Array) => send(b),
    drained: () => onThisLink(channel.drained()),
    next: (t) => inbox.next(t),
    rssi: link.rssi,
    disconnect: link.disconnect,
  };
}
