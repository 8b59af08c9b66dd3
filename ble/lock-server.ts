// The lock's side of a connection, independent of the radio: frames in (GATT writes),
// frames out (notifications), one protocol session per connection.
//
// The MessageChannel lives as long as the lock, not the connection: a phone whose link
// dropped mid-update reconnects and the framing resumes from the bytes already held.
// Responses still queued when a link drops belong to the dead session and are dropped.

import { MessageChannel, ChannelClosedError, type FramingError } from '../protocol/index';
import type { HostedSession, LockSessionHost } from './session-host';

export interface LockLinkEvents {
  onSessionOpened?: () => void;
  onMessageIn?: (bytes: Uint8Array) => void;
  onMessageOut?: (bytes: Uint8Array) => void;
  onProtocolError?: (e: FramingError) => void;
  /** The lock failed while handling a message (e.g. power cut mid-commit): the link drops. */
  onSessionFailure?: (e: unknown) => void;
}

export class LockLinkServer {
  private readonly channel: MessageChannel;
  private session: HostedSession | undefined;
  /** Serialises handling so responses leave in request order. */
  private work: Promise<void> = Promise.resolve();
  private writeFrame: ((frame: Uint8Array) => void) | undefined;

  constructor(
    readonly host: LockSessionHost,
    private readonly events: LockLinkEvents = {},
    opts: { maxMessageBytes?: number; window?: number } = {},
  ) {
    this.channel = new MessageChannel({
      write: (f) => this.writeFrame?.(f),
      onMessage: (m) => this.onMessage(m),
      onProtocolError: (e) => {
        this.events.onProtocolError?.(e);
        this.requestDisconnect?.();
      },
      ...(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {}),
      ...(opts.window !== undefined ? { window: opts.window } : {}),
    });
  }

  /** Set by the transport: how to drop the current link (framing violation). */
  requestDisconnect: (() => void) | undefined;

  get connected(): boolean {
    return this.session !== undefined;
  }

  get stats() {
    return this.channel.stats;
  }

  /** The phone subscribed to notifications: the link can carry frames both ways. */
  connect(mtu: number, writeFrame: (frame: Uint8Array) => void): void {
    if (this.session) this.disconnect();
    this.writeFrame = writeFrame;
    this.channel.linkUp(mtu);
    this.session = this.host.openSession();
    this.events.onSessionOpened?.();
    this.queueSend(this.session.hello());
  }

  setMtu(mtu: number): void {
    this.channel.setMtu(mtu);
  }

  receiveFrame(frame: Uint8Array): void {
    this.channel.receiveFrame(frame);
  }

  disconnect(): void {
    this.session?.close();
    this.session = undefined;
    this.writeFrame = undefined;
    this.channel.close('link lost'); // drops responses of the dead session; keeps incoming partials
    this.channel.linkDown();
  }

  private onMessage(bytes: Uint8Array): void {
    const session = this.session;
    if (!session) return;
    this.events.onMessageIn?.(bytes);
    this.work = this.work
      .then(async () => {
        const responses = await session.handle(bytes);
        if (this.session !== session) return; // link dropped while handling
        for (const r of responses) this.queueSend(r);
      })
      .catch((e: unknown) => {
        // A lock that dies mid-message (power cut) answers nothing: the phone sees the
        // link go down, exactly as with real hardware.
        this.events.onSessionFailure?.(e);
        this.requestDisconnect?.();
        this.disconnect();
      });
  }

  private queueSend(bytes: Uint8Array): void {
    this.events.onMessageOut?.(bytes);
    this.channel.send(bytes).catch((e) => {
      if (!(e instanceof ChannelClosedError)) throw e;
    });
  }
}
