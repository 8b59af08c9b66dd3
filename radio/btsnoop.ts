// btsnoop capture (datalink 1002 = HCI UART/H4), the format Wireshark and btmon read, and a
// plain-text summariser for `locksync trace show FILE`.
import fs from 'node:fs';
import path from 'node:path';
import type { CaptureDirection, PacketTap } from './controller';
import { EventCode, H4_ACL, H4_COMMAND, H4_EVENT, eventName, opcodeName, parseH4, statusName } from './hci';

export const BTSNOOP_DATALINK_H4 = 1002;
/** Microseconds between 0000-01-01 (btsnoop epoch) and 1970-01-01. */
const BTSNOOP_EPOCH_OFFSET_US = 0x00dcddb30f2f8000n;

export function btsnoopHeader(): Buffer {
  const header = Buffer.alloc(16);
  header.write('btsnoop\0', 0, 'latin1');
  header.writeUInt32BE(1, 8);
  header.writeUInt32BE(BTSNOOP_DATALINK_H4, 12);
  return header;
}

export function btsnoopRecord(packet: Buffer, direction: CaptureDirection, unixTimeUs: bigint): Buffer {
  const record = Buffer.alloc(24 + packet.length);
  record.writeUInt32BE(packet.length, 0);
  record.writeUInt32BE(packet.length, 4);
  const received = direction === 'controller-to-host' ? 1 : 0;
  const commandOrEvent = packet[0] === H4_COMMAND || packet[0] === H4_EVENT ? 2 : 0;
  record.writeUInt32BE(received | commandOrEvent, 8);
  record.writeUInt32BE(0, 12);
  record.writeBigInt64BE(unixTimeUs + BTSNOOP_EPOCH_OFFSET_US, 16);
  packet.copy(record, 24);
  return record;
}

/** Appends every HCI packet of one controller to a btsnoop file, stamped with model time. */
export class BtsnoopWriter implements PacketTap {
  private fd: number | null;
  private readonly wallAtStartUs: bigint;
  packets = 0;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.fd = fs.openSync(file, 'w');
    fs.writeSync(this.fd, btsnoopHeader());
    this.wallAtStartUs = BigInt(Date.now()) * 1000n;
  }

  record(packet: Buffer, direction: CaptureDirection, timeUs: number): void {
    if (this.fd === null) return;
    fs.writeSync(this.fd, btsnoopRecord(packet, direction, this.wallAtStartUs + BigInt(Math.round(timeUs))));
    this.packets++;
  }

  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

export interface BtsnoopPacket {
  packet: Buffer;
  direction: CaptureDirection;
  /** Microseconds since the first record. */
  offsetUs: number;
}

export function parseBtsnoop(buf: Buffer): BtsnoopPacket[] {
  if (buf.length < 16 || buf.toString('latin1', 0, 8) !== 'btsnoop\0') throw new Error('not a btsnoop file');
  const datalink = buf.readUInt32BE(12);
  if (datalink !== BTSNOOP_DATALINK_H4) throw new Error(`unsupported btsnoop datalink ${datalink} (expected 1002, H4)`);
  const packets: BtsnoopPacket[] = [];
  let first: bigint | null = null;
  for (let offset = 16; offset + 24 <= buf.length; ) {
    const included = buf.readUInt32BE(offset + 4);
    const flags = buf.readUInt32BE(offset + 8);
    const timestamp = buf.readBigInt64BE(offset + 16);
    if (offset + 24 + included > buf.length) break; // truncated tail (capture still being written)
    first ??= timestamp;
    packets.push({
      packet: buf.subarray(offset + 24, offset + 24 + included),
      direction: flags & 1 ? 'controller-to-host' : 'host-to-controller',
      offsetUs: Number(timestamp - first),
    });
    offset += 24 + included;
  }
  return packets;
}

const ATT_OPCODES: Record<number, string> = {
  0x01: 'Error Response',
  0x02: 'Exchange MTU Request',
  0x03: 'Exchange MTU Response',
  0x04: 'Find Information Request',
  0x05: 'Find Information Response',
  0x06: 'Find By Type Value Request',
  0x07: 'Find By Type Value Response',
  0x08: 'Read By Type Request',
  0x09: 'Read By Type Response',
  0x0a: 'Read Request',
  0x0b: 'Read Response',
  0x0c: 'Read Blob Request',
  0x0d: 'Read Blob Response',
  0x0e: 'Read Multiple Request',
  0x0f: 'Read Multiple Response',
  0x10: 'Read By Group Type Request',
  0x11: 'Read By Group Type Response',
  0x12: 'Write Request',
  0x13: 'Write Response',
  0x16: 'Prepare Write Request',
  0x17: 'Prepare Write Response',
  0x18: 'Execute Write Request',
  0x19: 'Execute Write Response',
  0x1b: 'Handle Value Notification',
  0x1d: 'Handle Value Indication',
  0x1e: 'Handle Value Confirmation',
  0x52: 'Write Command',
  0xd2: 'Signed Write Command',
};

export function attOpcodeName(op: number): string {
  return ATT_OPCODES[op] ?? `ATT opcode 0x${op.toString(16).padStart(2, '0')}`;
}

const hex = (n: number, width: number): string => `0x${n.toString(16).padStart(width, '0')}`;

/** One line per HCI packet: commands, events (with status/reason), ACL with decoded ATT. */
export function describeHciPacket(packet: Buffer): string {
  const parsed = parseH4(packet);
  switch (parsed.type) {
    case 'command':
      return `CMD ${opcodeName(parsed.opcode)} (${hex(parsed.opcode, 4)}) plen=${parsed.params.length}`;
    case 'event': {
      const p = parsed.params;
      if (parsed.code === EventCode.COMMAND_COMPLETE && p.length >= 3) {
        const op = p.readUInt16LE(1);
        const status = p.length >= 4 ? ` status=${statusName(p[3]!)}` : '';
        return `EVT Command Complete: ${opcodeName(op)} (${hex(op, 4)})${status}`;
      }
      if (parsed.code === EventCode.COMMAND_STATUS && p.length >= 4) {
        const op = p.readUInt16LE(2);
        return `EVT Command Status: ${opcodeName(op)} (${hex(op, 4)}) status=${statusName(p[0]!)}`;
      }
      if (parsed.code === EventCode.DISCONNECTION_COMPLETE && p.length >= 4) {
        return `EVT Disconnection Complete handle=${hex(p.readUInt16LE(1), 4)} reason=${hex(p[3]!, 2)} (${statusName(p[3]!)})`;
      }
      if (parsed.code === EventCode.NUMBER_OF_COMPLETED_PACKETS && p.length >= 5) {
        const entries: string[] = [];
        for (let i = 0; i < p[0]!; i++) entries.push(`${hex(p.readUInt16LE(1 + i * 4), 4)}:${p.readUInt16LE(3 + i * 4)}`);
        return `EVT Number Of Completed Packets ${entries.join(' ')}`;
      }
      if (parsed.code === EventCode.LE_META && p.length >= 1) {
        const sub = p[0]!;
        let detail = '';
        if ((sub === 0x01 || sub === 0x0a) && p.length >= 4) detail = ` status=${statusName(p[1]!)} handle=${hex(p.readUInt16LE(2), 4)} role=${p[4] === 0 ? 'central' : 'peripheral'}`;
        if (sub === 0x07 && p.length >= 9) detail = ` handle=${hex(p.readUInt16LE(1), 4)} tx=${p.readUInt16LE(3)} rx=${p.readUInt16LE(7)}`;
        return `EVT ${eventName(parsed.code, sub)}${detail}`;
      }
      return `EVT ${eventName(parsed.code)}`;
    }
    case 'acl': {
      const head = `ACL handle=${hex(parsed.handle, 4)} pb=${parsed.pb.toString(2).padStart(2, '0')} len=${parsed.data.length}`;
      if (parsed.pb !== 0b01 && parsed.data.length >= 5) {
        const cid = parsed.data.readUInt16LE(2);
        const l2capLength = parsed.data.readUInt16LE(0);
        if (cid === 0x0004) {
          const op = parsed.data[4]!;
          const attHandle = parsed.data.length >= 7 && op !== 0x02 && op !== 0x03 ? ` attr=${hex(parsed.data.readUInt16LE(5), 4)}` : '';
          return `${head} ATT ${attOpcodeName(op)}${attHandle} (${l2capLength - 1} value octets)`;
        }
        if (cid === 0x0005) return `${head} L2CAP signaling code=${hex(parsed.data[4]!, 2)}`;
        if (cid === 0x0006) return `${head} SMP code=${hex(parsed.data[4]!, 2)}`;
        return `${head} L2CAP cid=${hex(cid, 4)}`;
      }
      return `${head} (continuation)`;
    }
    default:
      return `H4 type ${hex(packet[0] ?? 0, 2)} len=${packet.length}`;
  }
}

/** Human-readable summary of a btsnoop capture: one line per packet, then totals. */
export function summarizeBtsnoop(buf: Buffer): string[] {
  const packets = parseBtsnoop(buf);
  const lines: string[] = [];
  const counts = { commands: 0, events: 0, aclOut: 0, aclIn: 0, attByOpcode: new Map<string, number>() };
  for (const { packet, direction, offsetUs } of packets) {
    const arrow = direction === 'host-to-controller' ? '>' : '<';
    const line = describeHciPacket(packet);
    lines.push(`${(offsetUs / 1e6).toFixed(6).padStart(12)} ${arrow} ${line}`);
    if (packet[0] === H4_COMMAND) counts.commands++;
    else if (packet[0] === H4_EVENT) counts.events++;
    else if (packet[0] === H4_ACL) {
      if (direction === 'host-to-controller') counts.aclOut++;
      else counts.aclIn++;
      const att = /ATT (.+?)(?: attr=| \()/.exec(line)?.[1];
      if (att) counts.attByOpcode.set(att, (counts.attByOpcode.get(att) ?? 0) + 1);
    }
  }
  const durationS = packets.length > 0 ? packets[packets.length - 1]!.offsetUs / 1e6 : 0;
  lines.push(
    `-- ${packets.length} packets over ${durationS.toFixed(3)} s: ${counts.commands} commands, ${counts.events} events, ` +
      `${counts.aclOut} ACL host→controller, ${counts.aclIn} ACL controller→host`,
  );
  for (const [name, count] of [...counts.attByOpcode].sort((a, b) => b[1] - a[1])) lines.push(`-- ATT ${name}: ${count}`);
  return lines;
}
