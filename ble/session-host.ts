// What a transport needs from a lock: its identity for adverts and the info
// characteristic, and sessions that turn whole request messages into response messages.
// firmware-sim's Lock provides this; the transports never see tables or keys.

import type { LockAdvert, LockInfo } from '../protocol/index';

export interface HostedSession {
  /** The encoded hello message that opens the session (fresh nonce). */
  hello(): Uint8Array;
  /** Handle one encoded request; returns the encoded responses, in order. */
  handle(message: Uint8Array): Promise<Uint8Array[]> | Uint8Array[];
  /**
   * Optional: a request is arriving — the buffer it is assembled in (the one handle() will
   * get) with its first `held` bytes in. The lock decodes while the link carries the rest.
   */
  receiving?(buffer: Uint8Array, held: number): void;
  /** The link went away (or the lock ends the session). */
  close(): void;
}

export interface LockSessionHost {
  readonly lockId: string;
  advert(): LockAdvert;
  info(): LockInfo;
  openSession(): HostedSession;
}
