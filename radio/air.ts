// The air interface shared by all controllers of one radio: advertising channel delivery
// (adverts, scan requests/responses, connection requests) and the set of live links.
import type { RadioClock } from './clock';
import { Link, type LinkEndOwner, type LinkParameters } from './link';
import type { Medium } from './medium';
import type { SeededRandom } from './prng';

/** Legacy advertising PDU types (Vol 6 Part B §2.3). */
export const AdvType = {
  ADV_IND: 0x00,
  ADV_DIRECT_IND: 0x01,
  ADV_SCAN_IND: 0x02,
  ADV_NONCONN_IND: 0x03,
} as const;

/** A device address as it appears on air: TxAdd/RxAdd (0 public, 1 random) and the 6 bytes (wire order). */
export interface AirAddress {
  type: number;
  address: Buffer;
}

/**
 * What a non-legacy extended advertising event carries (ADV_EXT_IND on the primary
 * channels pointing at an AUX_ADV_IND on a secondary channel, Vol 6 Part B §2.3.4),
 * condensed into one delivery: only extended scanners and initiators hear it.
 */
export interface ExtendedAdvertisingInfo {
  connectable: boolean;
  scannable: boolean;
  directed: boolean;
  sid: number;
  secondaryPhy: 1 | 2;
  /** Advertising Data Info's DID: changes whenever the set's data changes. */
  dataId: number;
  txPowerDbm: number;
}

export interface AdvertisingPdu {
  advertiser: AirParticipant;
  advType: number;
  addressType: number;
  address: Buffer;
  advData: Buffer;
  scanResponseData: Buffer;
  /** For ADV_DIRECT_IND (and directed extended advertising): the only initiator allowed to connect. */
  directAddress: Buffer | null;
  /** Present for non-legacy extended advertising PDUs; null for the legacy PDU types. */
  extended?: ExtendedAdvertisingInfo | null;
  /** The advertiser's advertising set (extended advertising commands), for its host's events. */
  setHandle?: number;
}

/** Who connected to whom, as the CONNECT_IND (or AUX_CONNECT_REQ) carried it. */
export interface ConnectionAddresses {
  /** InitA: the initiator's own address. */
  initiator: AirAddress;
  /** The advertising PDU the initiator answered. */
  pdu: AdvertisingPdu;
}

export interface AirParticipant extends LinkEndOwner {
  /** An advertising PDU was heard at rssiDbm; the scanner may answer with SCAN_REQ. */
  onAdvertisingPdu(pdu: AdvertisingPdu, rssiDbm: number, timeUs: number): void;
  /** Connection established as peripheral (advertiser side). */
  acceptConnection(link: Link, initiator: AirParticipant, addresses?: ConnectionAddresses): number;
  /** An active scanner's SCAN_REQ (or AUX_SCAN_REQ) reached this advertiser. */
  onScanRequest?(pdu: AdvertisingPdu, scanner: AirAddress): void;
  readonly address: Buffer;
}

export class Air {
  readonly links = new Set<Link>();
  readonly participants: AirParticipant[] = [];
  private nextLinkId = 1;
  /** Observers of link creation (the radio facade uses it for link-level faults). */
  onLinkCreated: ((link: Link) => void) | null = null;

  constructor(
    readonly clock: RadioClock,
    readonly medium: Medium,
    readonly random: SeededRandom,
  ) {}

  join(participant: AirParticipant): void {
    this.participants.push(participant);
  }

  /** One advertising event: every other participant that hears it gets the PDU. */
  broadcast(pdu: AdvertisingPdu, timeUs: number): void {
    for (const listener of this.participants) {
      if (listener === pdu.advertiser || !listener.isOnAir()) continue;
      const { received, rssiDbm } = this.medium.transmit(pdu.advertiser.name, listener.name, timeUs);
      if (!received) continue;
      listener.onAdvertisingPdu(pdu, rssiDbm, timeUs);
    }
  }

  /** A scan request or scan response round trip on the advertising channel. */
  exchange(a: AirParticipant, b: AirParticipant, timeUs: number): boolean {
    if (!a.isOnAir() || !b.isOnAir()) return false;
    return this.medium.transmit(a.name, b.name, timeUs).received && this.medium.transmit(b.name, a.name, timeUs + 150).received;
  }

  /** CONNECT_IND sent by initiator to advertiser at timeUs; returns the link if heard. */
  connect(
    initiator: AirParticipant,
    centralHandle: number,
    advertiser: AirParticipant,
    params: LinkParameters,
    timeUs: number,
    addresses?: ConnectionAddresses,
  ): Link | null {
    if (!this.medium.transmit(initiator.name, advertiser.name, timeUs).received) return null;
    const link = new Link(
      this.nextLinkId++,
      this.clock,
      this.medium,
      initiator,
      centralHandle,
      advertiser,
      0,
      params,
      timeUs,
      (closed) => this.links.delete(closed),
    );
    // The peripheral's controller picks its own handle before anyone sees the link.
    link.peripheral.handle = advertiser.acceptConnection(link, initiator, addresses);
    this.links.add(link);
    this.onLinkCreated?.(link);
    return link;
  }
}
