// A tap on the virtual radio's links: every delivered LL data PDU with its model time,
// reassembled into L2CAP/ATT PDUs, and the locksync frames inside ATT Write Commands
// (phone → lock) and Handle Value Notifications (lock → phone) decoded with the framing
// code itself. What the benchmark counts is what actually crossed the air.

import { decodeFrame, FramingError } from '../protocol/index';
import { dataPduAirtimeUs } from '../radio/airtime';
import type { Phy } from '../radio/airtime';
import type { Link, LinkEnd, LlPdu } from '../radio/link';
import { LLID_START } from '../radio/link';
import type { Radio } from '../radio/radio';

const ATT_WRITE_COMMAND = 0x52;
const ATT_NOTIFICATION = 0x1b;
const ATT_EXCHANGE_MTU_REQ = 0x02;
const ATT_EXCHANGE_MTU_RSP = 0x03;
const L2CAP_ATT_CID = 0x0004;

export type Direction = 'phoneToLock' | 'lockToPhone';

export interface DirectionCounts {
  /** Non-empty LL data PDUs delivered. */
  llPdus: number;
  /** LL payload octets (L2CAP header + ATT PDU). */
  llPayloadBytes: number;
  /** Octets on air for those PDUs: preamble + access address + LL header + payload + CRC. */
  onAirBytes: number;
  /** The same, only for PDUs that carried locksync frames. */
  locksyncLlPdus: number;
  locksyncOnAirBytes: number;
  /** locksync frames and their bytes (the ATT value). */
  frames: number;
  frameBytes: number;
  /** Message bytes announced by START frames at offset 0 (whole protocol messages). */
  messages: number;
  messageBytes: number;
  /** Data bytes inside DATA/START frames (message payload actually carried). */
  dataPayloadBytes: number;
  controlFrames: number;
  controlFrameBytes: number;
}

interface StartSeen {
  total: number;
  firstUs: number;
  lastUs: number;
  direction: Direction;
  carried: number;
}

function emptyCounts(): DirectionCounts {
  return { llPdus: 0, llPayloadBytes: 0, onAirBytes: 0, locksyncLlPdus: 0, locksyncOnAirBytes: 0, frames: 0, frameBytes: 0, messages: 0, messageBytes: 0, dataPayloadBytes: 0, controlFrames: 0, controlFrameBytes: 0 };
}

export interface LinkSeen {
  intervalMs: number;
  phy: Phy;
  /** Data length the phone (central) transmits with, at the end of the sync. */
  dataLength: number;
  attMtu: number | undefined;
}

export class AirTap {
  counts: Record<Direction, DirectionCounts> = { phoneToLock: emptyCounts(), lockToPhone: emptyCounts() };
  /** Messages seen, in order, with the model time of their first and last frame. */
  messages: StartSeen[] = [];
  link: LinkSeen | undefined;
  private readonly partial = new Map<LinkEnd, { need: number; chunks: Buffer[]; pduOnAir: number; pdus: number }>();
  private mtuRequested: number | undefined;
  private mtuResponded: number | undefined;
  private current: Map<Direction, StartSeen> = new Map();
  private lastLink: Link | undefined;

  constructor(radio: Radio) {
    radio.air.onLinkCreated = (link) => {
      this.lastLink = link;
      link.onPduDelivered = (from, pdu, atUs) => this.onPdu(link, from, pdu, atUs);
    };
  }

  reset(): void {
    this.counts = { phoneToLock: emptyCounts(), lockToPhone: emptyCounts() };
    this.messages = [];
    this.current.clear();
    this.partial.clear();
    this.link = undefined;
    this.mtuRequested = undefined;
    this.mtuResponded = undefined;
  }

  /** Snapshot of the link parameters in force (call at the end of a sync, before close). */
  linkSeen(): LinkSeen | undefined {
    const link = this.lastLink;
    if (!link) return this.link;
    const mtu = this.mtuRequested !== undefined && this.mtuResponded !== undefined ? Math.min(this.mtuRequested, this.mtuResponded) : undefined;
    return { intervalMs: link.params.intervalUs / 1000, phy: link.params.phy, dataLength: link.central.txOctets, attMtu: mtu };
  }

  private onPdu(link: Link, from: LinkEnd, pdu: LlPdu, atUs: number): void {
    const direction: Direction = from === link.central ? 'phoneToLock' : 'lockToPhone';
    const c = this.counts[direction];
    const onAir = dataPduAirtimeUs(link.params.phy, pdu.payload.length) / (link.params.phy === '2M' ? 4 : 8);
    c.llPdus++;
    c.llPayloadBytes += pdu.payload.length;
    c.onAirBytes += onAir;
    this.link = this.linkSeen();
    // L2CAP reassembly: a start PDU carries the 4-byte basic header with the SDU length.
    let state = this.partial.get(from);
    if (pdu.llid === LLID_START) {
      const need = pdu.payload.length >= 2 ? pdu.payload.readUInt16LE(0) + 4 : 0;
      state = { need, chunks: [], pduOnAir: 0, pdus: 0 };
      this.partial.set(from, state);
    }
    if (!state) return;
    state.chunks.push(pdu.payload);
    state.pduOnAir += onAir;
    state.pdus++;
    const have = state.chunks.reduce((n, b) => n + b.length, 0);
    if (have < state.need) return;
    this.partial.delete(from);
    const sdu = Buffer.concat(state.chunks);
    if (sdu.readUInt16LE(2) !== L2CAP_ATT_CID) return;
    const att = sdu.subarray(4);
    const opcode = att[0];
    if (opcode === ATT_EXCHANGE_MTU_REQ && att.length >= 3) this.mtuRequested = att.readUInt16LE(1);
    if (opcode === ATT_EXCHANGE_MTU_RSP && att.length >= 3) this.mtuResponded = att.readUInt16LE(1);
    const expected = direction === 'phoneToLock' ? ATT_WRITE_COMMAND : ATT_NOTIFICATION;
    if (opcode !== expected || att.length < 4) return;
    this.onFrame(direction, new Uint8Array(att.subarray(3)), atUs, state.pdus, state.pduOnAir);
  }

  private onFrame(direction: Direction, frame: Uint8Array, atUs: number, pdus: number, onAir: number): void {
    const c = this.counts[direction];
    let decoded;
    try {
      decoded = decodeFrame(frame);
    } catch (e) {
      if (e instanceof FramingError) return; // not a locksync frame
      throw e;
    }
    c.locksyncLlPdus += pdus;
    c.locksyncOnAirBytes += onAir;
    c.frames++;
    c.frameBytes += frame.length;
    if (decoded.type === 'start' || decoded.type === 'data') {
      c.dataPayloadBytes += decoded.payload.length;
      if (decoded.type === 'start') {
        if (decoded.offset === 0) {
          c.messages++;
          c.messageBytes += decoded.total;
        }
        const seen: StartSeen = { total: decoded.total, firstUs: atUs, lastUs: atUs, direction, carried: decoded.payload.length };
        this.messages.push(seen);
        this.current.set(direction, seen);
      } else {
        const seen = this.current.get(direction);
        if (seen) {
          seen.lastUs = atUs;
          seen.carried += decoded.payload.length;
        }
      }
    } else {
      c.controlFrames++;
      c.controlFrameBytes += frame.length;
    }
  }
}
