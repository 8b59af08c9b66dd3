// LE connections (link layer, Bluetooth Core Vol 6 Part B §4.5): connection events at the
// negotiated interval, packets exchanged in central/peripheral rounds with airtime from
// airtime.ts, acknowledgement and retransmission, LL control procedures, and supervision
// timeout. One Link object carries one connection between two controllers.
import { dataPduAirtimeUs, roundFits, roundTimeUs, T_IFS_US, type Phy } from './airtime';
import type { ClockTimer, RadioClock } from './clock';
import type { Medium } from './medium';

export type Role = 'central' | 'peripheral';

/** LLID of an LL data channel PDU. */
export const LLID_CONTINUATION = 0x01;
export const LLID_START = 0x02;
export const LLID_CONTROL = 0x03;

export interface LlPdu {
  llid: number;
  payload: Buffer;
  /** Model time at which the PDU became available to the link layer. */
  queuedAtUs: number;
  /** Called once when the peer has received it (first copy). */
  onDelivered?: () => void;
  /** Called once when the sender has seen the peer's acknowledgement. */
  onAcked?: () => void;
  delivered?: boolean;
}

/** What a link end needs from the controller that owns it. */
export interface LinkEndOwner {
  readonly name: string;
  /**
   * Data PDU received from the peer (LLID start/continuation). `atUs` is when its last bit
   * arrived: a connection event is evaluated at its anchor, but a packet later in the event
   * must not reach the host before it was on the air.
   */
  onLinkData(end: LinkEnd, llid: number, payload: Buffer, atUs: number): void;
  /** This end's view of the link is gone (its host must see Disconnection Complete). */
  onLinkClosed(end: LinkEnd, reason: number): void;
  /** A connection event finished at `atUs`: a chance to report Number Of Completed Packets. */
  onConnectionEventDone(end: LinkEnd, atUs: number): void;
  /** Whether this controller currently takes part in the air (false when hung/reset). */
  isOnAir(): boolean;
}

export class LinkEnd {
  readonly txQueue: LlPdu[] = [];
  /** Max payload octets this end sends per PDU (its connEffectiveMaxTxOctets). */
  txOctets = 27;
  lastRxUs: number;
  everReceived = false;
  open = true;
  /** Last RSSI this end measured on a packet from its peer. */
  lastRssiDbm = -127;
  packetsReceived = 0;
  bytesReceived = 0;
  /** Set while a terminate is in flight: the reason the local host will see once it's acked. */
  terminating = false;
  peer!: LinkEnd;

  constructor(
    readonly link: Link,
    readonly owner: LinkEndOwner,
    readonly role: Role,
    public handle: number,
    createdAtUs: number,
  ) {
    this.lastRxUs = createdAtUs;
  }

  /** Queues a PDU; control PDUs overtake queued data (but never the PDU in flight). */
  enqueue(pdu: LlPdu, priority = false): void {
    if (!this.open) return;
    if (priority && this.txQueue.length > 0) {
      let index = 1;
      while (index < this.txQueue.length && this.txQueue[index]!.llid === LLID_CONTROL) index++;
      this.txQueue.splice(index, 0, pdu);
    } else {
      this.txQueue.push(pdu);
    }
    this.link.wake();
  }
}

export interface LinkParameters {
  intervalUs: number;
  latency: number;
  supervisionTimeoutUs: number;
  phy: Phy;
  packetsPerEvent: number;
}

export interface PendingInstant {
  kind: 'connection' | 'phy';
  instant: number;
  apply: (current: LinkParameters) => LinkParameters;
  onApplied: () => void;
  delivered: boolean;
}

/** A change that took effect at its instant: the event counter, the anchor time and the parameters from then on. */
export interface AppliedInstant {
  kind: PendingInstant['kind'];
  instant: number;
  atUs: number;
  intervalUs: number;
  latency: number;
  supervisionTimeoutUs: number;
  phy: Phy;
}

/** Events between issuing an instant-based procedure and its instant (controllers use 6 or more). */
export const INSTANT_OFFSET_EVENTS = 6;

export interface LinkFaults {
  /** The radio path is gone: nothing is received in either direction. */
  silent: boolean;
  /** Go silent after this many more data PDUs have been delivered. */
  silentAfterPackets: number | null;
}

/** While idle, connection events are evaluated in batches this long (model µs). */
const IDLE_BATCH_US = 50_000;
/** At most this many overdue events are run in one go (keeps the event loop responsive). */
const MAX_CATCH_UP_EVENTS = 400;

export class Link {
  readonly central: LinkEnd;
  readonly peripheral: LinkEnd;
  params: LinkParameters;
  eventCounter = 0;
  nextAnchorUs: number;
  readonly firstAnchorUs: number;
  closed = false;
  readonly faults: LinkFaults = { silent: false, silentAfterPackets: null };
  /**
   * Changes taking effect at an instant (LL_CONNECTION_UPDATE_IND, LL_PHY_UPDATE_IND), in
   * the order they were issued. `delivered` says whether the peripheral has the PDU that
   * named the instant: one that has not got it by then is left on the old parameters, and
   * the link is lost (Vol 6 Part B §5.5.1, "instant passed").
   */
  pendingInstants: PendingInstant[] = [];
  /**
   * Procedures applied at their instant, oldest first (at most the last 16): what the link
   * layer itself reports about a change, as a sniffer would see it.
   */
  readonly appliedInstants: AppliedInstant[] = [];
  /** Data PDUs delivered in each direction, and connection events run. */
  stats = { eventsRun: 0, dataPdusDelivered: 0, retransmissions: 0, emptyRounds: 0 };
  /** Hook for taps (capture, tests): every delivered data PDU with its model time. */
  onPduDelivered: ((from: LinkEnd, pdu: LlPdu, atUs: number) => void) | null = null;
  private timer: ClockTimer | null = null;
  private timerAtUs = Infinity;

  constructor(
    readonly id: number,
    readonly clock: RadioClock,
    readonly medium: Medium,
    centralOwner: LinkEndOwner,
    centralHandle: number,
    peripheralOwner: LinkEndOwner,
    peripheralHandle: number,
    params: LinkParameters,
    connectIndAtUs: number,
    private readonly onClosed: (link: Link) => void,
  ) {
    this.params = { ...params };
    this.central = new LinkEnd(this, centralOwner, 'central', centralHandle, connectIndAtUs);
    this.peripheral = new LinkEnd(this, peripheralOwner, 'peripheral', peripheralHandle, connectIndAtUs);
    this.central.peer = this.peripheral;
    this.peripheral.peer = this.central;
    // transmitWindowDelay (1.25 ms) + transmitWindowOffset (one slot) after CONNECT_IND.
    this.firstAnchorUs = connectIndAtUs + 2500;
    this.nextAnchorUs = this.firstAnchorUs;
    this.schedule(this.nextAnchorUs);
  }

  /** The instant for a procedure issued now: six events ahead, after any already pending. */
  nextInstant(): number {
    const last = this.pendingInstants.at(-1);
    // An idle link runs its events in batches, so the counter may lag the clock: count the
    // events whose anchors have passed but are not run yet, or the instant could already be
    // behind the air (a PDU queued now goes out at the next anchor at or after now).
    const behind = Math.max(0, Math.ceil((this.clock.nowUs() - this.nextAnchorUs) / this.params.intervalUs));
    const soonest = this.eventCounter + behind + INSTANT_OFFSET_EVENTS;
    const afterLast = last ? last.instant + 1 : soonest;
    const instant = instantDistance(this.eventCounter, afterLast) > instantDistance(this.eventCounter, soonest) ? afterLast : soonest;
    return instant & 0xffff;
  }

  endFor(owner: LinkEndOwner): LinkEnd | null {
    if (this.central.owner === owner) return this.central;
    if (this.peripheral.owner === owner) return this.peripheral;
    return null;
  }

  /** Data or control waiting: make sure the next anchor point is evaluated on time. */
  wake(): void {
    if (this.closed) return;
    if (this.nextAnchorUs < this.timerAtUs) this.schedule(this.nextAnchorUs);
  }

  private schedule(atUs: number): void {
    this.timer?.cancel();
    this.timerAtUs = atUs;
    this.timer = this.clock.at(atUs, () => {
      this.timer = null;
      this.timerAtUs = Infinity;
      this.runDueEvents();
    });
  }

  private hasPendingTraffic(): boolean {
    return this.central.txQueue.length > 0 || this.peripheral.txQueue.length > 0 || this.pendingInstants.length > 0;
  }

  private runDueEvents(): void {
    const now = this.clock.nowUs();
    let ran = 0;
    while (!this.closed && this.nextAnchorUs <= now && ran < MAX_CATCH_UP_EVENTS) {
      this.runEvent(this.nextAnchorUs);
      this.nextAnchorUs += this.params.intervalUs;
      this.eventCounter = (this.eventCounter + 1) & 0xffff;
      ran++;
    }
    if (this.closed) return;
    const idle = !this.hasPendingTraffic();
    this.schedule(idle ? Math.max(this.nextAnchorUs, now + Math.min(IDLE_BATCH_US, this.params.supervisionTimeoutUs / 4)) : this.nextAnchorUs);
  }

  /** One connection event at anchor point anchorUs. */
  private runEvent(anchorUs: number): void {
    this.stats.eventsRun++;
    while (this.pendingInstants[0]?.instant === this.eventCounter) {
      const due = this.pendingInstants.shift()!;
      if (!due.delivered) {
        // The peripheral never heard the instant: the two ends now disagree and lose each other.
        this.closeBoth(0x08, 0x28);
        return;
      }
      this.params = due.apply(this.params);
      this.appliedInstants.push({ kind: due.kind, instant: due.instant, atUs: anchorUs, intervalUs: this.params.intervalUs, latency: this.params.latency, supervisionTimeoutUs: this.params.supervisionTimeoutUs, phy: this.params.phy });
      if (this.appliedInstants.length > 16) this.appliedInstants.shift();
      due.onApplied();
    }
    const { intervalUs, packetsPerEvent, phy } = this.params;
    let offsetUs = 0;
    let rounds = 0;
    for (;;) {
      const t = anchorUs + offsetUs;
      // The central's head is never acknowledged yet (it is dropped as soon as it is);
      // the peripheral's head may be delivered and merely awaiting the central's next
      // packet as acknowledgement, in which case it sends the PDU after it.
      const centralPdu = this.eligibleHead(this.central, t);
      const peripheralQueue = this.peripheral.txQueue;
      const peripheralCandidate = peripheralQueue[0]?.delivered ? peripheralQueue[1] : peripheralQueue[0];
      const peripheralPdu = peripheralCandidate && peripheralCandidate.queuedAtUs <= t ? peripheralCandidate : undefined;
      // More Data: after the first exchange the event continues only while someone has data.
      if (rounds > 0 && !centralPdu && !peripheralPdu) break;
      const centralLength = centralPdu?.payload.length ?? 0;
      const peripheralLength = peripheralPdu?.payload.length ?? 0;
      const round = roundTimeUs(phy, centralLength, peripheralLength);
      if (!roundFits(offsetUs, round, rounds, intervalUs, packetsPerEvent)) break;
      rounds++;
      if (!centralPdu && !peripheralPdu) this.stats.emptyRounds++;

      // Central → peripheral. A peripheral that misses it stays silent; the event closes.
      if (!this.carry(this.central, this.peripheral, t)) break;
      this.peripheral.lastRxUs = t + dataPduAirtimeUs(phy, centralLength);
      this.peripheral.everReceived = true;
      if (peripheralQueue[0]?.delivered) this.acknowledge(this.peripheral);
      if (centralPdu) this.deliver(this.central, this.peripheral, centralPdu, t + dataPduAirtimeUs(phy, centralLength));
      if (this.closed) return;

      // Peripheral → central, one inter frame space after the central's packet ends.
      const tResponse = t + dataPduAirtimeUs(phy, centralLength) + T_IFS_US;
      if (!this.carry(this.peripheral, this.central, tResponse)) {
        if (centralPdu) this.stats.retransmissions++;
        break;
      }
      this.central.lastRxUs = tResponse + dataPduAirtimeUs(phy, peripheralLength);
      this.central.everReceived = true;
      if (centralPdu?.delivered) this.acknowledge(this.central);
      if (peripheralPdu) {
        this.deliver(this.peripheral, this.central, peripheralPdu, tResponse + dataPduAirtimeUs(phy, peripheralLength));
        if (this.closed) return;
      }
      offsetUs += round;
    }
    const eventEndUs = anchorUs + offsetUs;
    this.central.owner.onConnectionEventDone(this.central, eventEndUs);
    this.peripheral.owner.onConnectionEventDone(this.peripheral, eventEndUs);
    this.checkSupervision(anchorUs + offsetUs);
  }

  private eligibleHead(end: LinkEnd, t: number): LlPdu | undefined {
    const head = end.txQueue[0];
    return head && head.queuedAtUs <= t ? head : undefined;
  }

  /** Whether a packet from a to b at time t gets through. */
  private carry(from: LinkEnd, to: LinkEnd, t: number): boolean {
    if (!from.open || !to.open || this.faults.silent) return false;
    if (!from.owner.isOnAir() || !to.owner.isOnAir()) return false;
    const { received, rssiDbm } = this.medium.transmit(from.owner.name, to.owner.name, t);
    if (received) to.lastRssiDbm = rssiDbm;
    return received;
  }

  private deliver(from: LinkEnd, to: LinkEnd, pdu: LlPdu, atUs: number): void {
    if (pdu.delivered) return; // a retransmission the receiver already has (same SN)
    pdu.delivered = true;
    to.packetsReceived++;
    to.bytesReceived += pdu.payload.length;
    if (pdu.llid !== LLID_CONTROL) {
      this.stats.dataPdusDelivered++;
      to.owner.onLinkData(to, pdu.llid, pdu.payload, atUs);
      this.onPduDelivered?.(from, pdu, atUs);
      if (this.faults.silentAfterPackets !== null && --this.faults.silentAfterPackets <= 0) {
        this.faults.silentAfterPackets = null;
        this.faults.silent = true;
      }
    }
    pdu.onDelivered?.();
  }

  private acknowledge(end: LinkEnd): void {
    const pdu = end.txQueue.shift();
    pdu?.onAcked?.();
  }

  private checkSupervision(nowUs: number): void {
    for (const end of [this.central, this.peripheral]) {
      if (!end.open) continue;
      if (!end.everReceived) {
        // Vol 6 Part B §4.5.2: no packet within six intervals of the first anchor → 0x3E.
        if (nowUs >= this.firstAnchorUs + 6 * this.params.intervalUs) this.closeEnd(end, 0x3e);
      } else if (nowUs - end.lastRxUs > this.params.supervisionTimeoutUs) {
        this.closeEnd(end, end.terminating ? 0x16 : 0x08);
      }
    }
  }

  /** One side of the link is gone; the link is gone once both sides are. */
  closeEnd(end: LinkEnd, reason: number): void {
    if (!end.open) return;
    end.open = false;
    // The owner frees the ACL buffers the unsent packets hold (its host reclaims them on
    // Disconnection Complete, Core Vol 4 Part E §4.3), so it must see the queue first.
    end.owner.onLinkClosed(end, reason);
    end.txQueue.length = 0;
    if (!this.central.open && !this.peripheral.open) this.close();
  }

  /** Tears down both ends at once (used for terminate procedures and immediate drops). */
  closeBoth(centralReason: number, peripheralReason: number): void {
    this.closeEnd(this.central, centralReason);
    this.closeEnd(this.peripheral, peripheralReason);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
    this.onClosed(this);
  }
}

/** Events from `counter` forward to `instant`, modulo the 16-bit event counter. */
export function instantDistance(counter: number, instant: number): number {
  return (instant - counter) & 0xffff;
}
