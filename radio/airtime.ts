// Airtime of LE packets (Bluetooth Core Vol 6 Part B §2.1 and Part A), shared by the link
// layer (which spends it) and the analytical bound (which predicts it), so the two cannot
// drift apart.

export type Phy = '1M' | '2M';

/** Inter frame space between packets of one connection event, µs. */
export const T_IFS_US = 150;
/** Microseconds per on-air octet. */
export function usPerOctet(phy: Phy): number {
  return phy === '2M' ? 4 : 8;
}

/**
 * On-air time of an LL data channel PDU with `payloadOctets` of payload:
 * preamble (1 octet on 1M, 2 on 2M) + access address 4 + header 2 + payload [+ MIC 4] + CRC 3.
 */
export function dataPduAirtimeUs(phy: Phy, payloadOctets: number, encrypted = false): number {
  const preamble = phy === '2M' ? 2 : 1;
  const mic = encrypted && payloadOctets > 0 ? 4 : 0;
  return (preamble + 4 + 2 + payloadOctets + mic + 3) * usPerOctet(phy);
}

/** One central→peripheral + peripheral→central exchange, including both inter frame spaces. */
export function roundTimeUs(phy: Phy, centralPayload: number, peripheralPayload: number): number {
  return dataPduAirtimeUs(phy, centralPayload) + T_IFS_US + dataPduAirtimeUs(phy, peripheralPayload) + T_IFS_US;
}

/**
 * Whether one more round fits in the current connection event: it must finish (with its
 * trailing inter frame space as guard) before the next anchor point, and the event must not
 * exceed the packets-per-event cap (0 = no cap, like a controller with no CE length limit).
 */
export function roundFits(
  offsetUs: number,
  roundUs: number,
  roundsSoFar: number,
  intervalUs: number,
  packetsPerEvent: number,
): boolean {
  if (packetsPerEvent > 0 && roundsSoFar >= packetsPerEvent) return false;
  if (roundsSoFar === 0) return true; // an event always carries at least one exchange
  return offsetUs + roundUs <= intervalUs - T_IFS_US;
}

/** L2CAP header (length + channel id) in front of every ATT PDU. */
export const L2CAP_HEADER_OCTETS = 4;
/** ATT Write Command / Handle Value Notification header: opcode + attribute handle. */
export const ATT_WRITE_HEADER_OCTETS = 3;

export interface LinkProfile {
  /** Connection interval in ms (7.5 ms … 4 s, multiple of 1.25 ms). */
  intervalMs: number;
  /** Negotiated ATT MTU (23 … 517). */
  attMtu: number;
  /** LL data length: max payload octets per LL PDU (27 … 251). */
  dataLength: number;
  phy: Phy;
  /** Cap on packets per direction per connection event; 0 = limited only by the interval. */
  packetsPerEvent: number;
}

export interface AirtimeBound {
  bytes: number;
  attPackets: number;
  llPdus: number;
  connectionEvents: number;
  /** Time from the first event's anchor to the end of the last data PDU, µs. */
  durationUs: number;
  /** Application bytes per second at that duration. */
  bytesPerSecond: number;
  /** Steady-state ceiling: full events back to back, bytes per second. */
  steadyStateBytesPerSecond: number;
  roundUs: number;
  roundsPerEvent: number;
}

/** LL PDU payload sizes carrying one ATT PDU of `attPayload` value octets. */
export function llPdusForAttPacket(attPayload: number, dataLength: number): number[] {
  let remaining = L2CAP_HEADER_OCTETS + ATT_WRITE_HEADER_OCTETS + attPayload;
  const sizes: number[] = [];
  while (remaining > 0) {
    const size = Math.min(remaining, dataLength);
    sizes.push(size);
    remaining -= size;
  }
  return sizes;
}

/**
 * Analytical airtime bound for streaming `bytes` of application data one way as ATT Write
 * Commands (or notifications) over a link with `profile`, with the other side answering
 * with empty PDUs and no packet loss. It packs LL PDUs into connection events with the same
 * rules the link layer uses, so an unimpeded transfer through the radio takes exactly this
 * long on the controller's clock. Writes flow central→peripheral; notifications
 * peripheral→central.
 */
export function transferAirtimeBound(
  bytes: number,
  profile: LinkProfile,
  direction: 'central-to-peripheral' | 'peripheral-to-central' = 'central-to-peripheral',
): AirtimeBound {
  const intervalUs = Math.round(profile.intervalMs * 1000);
  const valuePerPacket = profile.attMtu - ATT_WRITE_HEADER_OCTETS;
  if (valuePerPacket <= 0) throw new RangeError('ATT MTU must exceed 3');
  const pdus: number[] = [];
  let attPackets = 0;
  for (let sent = 0; sent < bytes; sent += valuePerPacket) {
    pdus.push(...llPdusForAttPacket(Math.min(valuePerPacket, bytes - sent), profile.dataLength));
    attPackets++;
  }
  let event = 0;
  let offsetUs = 0;
  let rounds = 0;
  let endUs = 0;
  for (const size of pdus) {
    const round = roundTimeUs(profile.phy, size, 0);
    if (!roundFits(offsetUs, round, rounds, intervalUs, profile.packetsPerEvent)) {
      event++;
      offsetUs = 0;
      rounds = 0;
    }
    // A peripheral's PDU follows the central's (empty) PDU and an inter frame space.
    const leadUs = direction === 'peripheral-to-central' ? dataPduAirtimeUs(profile.phy, 0) + T_IFS_US : 0;
    endUs = event * intervalUs + offsetUs + leadUs + dataPduAirtimeUs(profile.phy, size);
    offsetUs += round;
    rounds++;
  }
  const fullRound = roundTimeUs(profile.phy, Math.min(profile.dataLength, L2CAP_HEADER_OCTETS + profile.attMtu), 0);
  let roundsPerEvent = 0;
  for (let offset = 0; roundFits(offset, fullRound, roundsPerEvent, intervalUs, profile.packetsPerEvent); offset += fullRound) {
    roundsPerEvent++;
  }
  const pdusPerPacket = llPdusForAttPacket(valuePerPacket, profile.dataLength).length;
  const steadyStateBytesPerSecond = ((roundsPerEvent / pdusPerPacket) * valuePerPacket) / (intervalUs / 1e6);
  return {
    bytes,
    attPackets,
    llPdus: pdus.length,
    connectionEvents: pdus.length === 0 ? 0 : event + 1,
    durationUs: endUs,
    bytesPerSecond: endUs > 0 ? bytes / (endUs / 1e6) : Infinity,
    steadyStateBytesPerSecond,
    roundUs: fullRound,
    roundsPerEvent,
  };
}
