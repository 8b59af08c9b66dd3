// btsnoop captures: the writer the radio uses (datalink 1002 = HCI UART/H4, the layout of
// Android's btsnoop_hci.log, read by Wireshark and btmon), and a strict reader for the H1,
// H4 and btmon datalinks. Decoding what is inside is radio/trace-show.ts.
import fs from 'node:fs';
import path from 'node:path';
import type { CaptureDirection, PacketTap } from './controller';
import { H4_ACL, H4_COMMAND, H4_EVENT } from './hci';

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

/** Datalinks `trace show` reads: the radio's own captures and Android's snoop logs are H4. */
export const BTSNOOP_DATALINKS = {
  1001: 'HCI un-encapsulated (H1)',
  1002: 'HCI UART (H4)',
  2001: 'Linux Bluetooth monitor (btmon)',
} as const;

/** A capture that cannot be read as a whole: where and why. */
export class BtsnoopFormatError extends Error {
  override readonly name = 'BtsnoopFormatError';
  constructor(
    readonly kind: 'not-btsnoop' | 'unsupported' | 'truncated' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

export interface BtsnoopPacket {
  /** 1-based record number, as Wireshark numbers frames. */
  n: number;
  /** The HCI packet with its H4 type byte (H1 and monitor records get one added). */
  packet: Buffer;
  direction: CaptureDirection;
  /** Microseconds since the first record. */
  offsetUs: number;
  /** Record timestamp, unix microseconds. */
  unixUs: bigint;
  /** Bytes the record's packet had on the wire; more than captured = cut by the snapshot length. */
  originalLength: number;
  /** btmon: controller index, and what a non-packet record says (new index, note, log). */
  adapter?: number;
  monitor?: { opcode: number; name: string; text?: string };
}

export interface BtsnoopCapture {
  datalink: number;
  datalinkName: string;
  packets: BtsnoopPacket[];
}

const MONITOR_OPCODES: Record<number, { name: string; h4?: number; direction?: CaptureDirection }> = {
  0: { name: 'New Index' },
  1: { name: 'Delete Index' },
  2: { name: 'Command', h4: H4_COMMAND, direction: 'host-to-controller' },
  3: { name: 'Event', h4: H4_EVENT, direction: 'controller-to-host' },
  4: { name: 'ACL TX', h4: H4_ACL, direction: 'host-to-controller' },
  5: { name: 'ACL RX', h4: H4_ACL, direction: 'controller-to-host' },
  6: { name: 'SCO TX', h4: 0x03, direction: 'host-to-controller' },
  7: { name: 'SCO RX', h4: 0x03, direction: 'controller-to-host' },
  8: { name: 'Open Index' },
  9: { name: 'Close Index' },
  10: { name: 'Index Info' },
  11: { name: 'Vendor Diagnostic' },
  12: { name: 'System Note' },
  13: { name: 'User Logging' },
  14: { name: 'Control Open' },
  15: { name: 'Control Close' },
  16: { name: 'Control Command' },
  17: { name: 'Control Event' },
  18: { name: 'ISO TX', h4: 0x05, direction: 'host-to-controller' },
  19: { name: 'ISO RX', h4: 0x05, direction: 'controller-to-host' },
};

/**
 * Reads a whole btsnoop file. Anything that makes the file unreadable as a whole — not a
 * btsnoop file, an unsupported datalink, a record cut short or running past the end —
 * throws BtsnoopFormatError naming the record and byte offset: a capture is never read
 * partially and silently.
 */
export function readBtsnoop(buf: Buffer): BtsnoopCapture {
  const magic = Buffer.from('btsnoop\0', 'latin1');
  if (buf.length < 16) {
    const isPrefix = buf.length > 0 && buf.equals(magic.subarray(0, Math.min(buf.length, 8))) || (buf.length > 8 && buf.subarray(0, 8).equals(magic));
    throw new BtsnoopFormatError(isPrefix ? 'truncated' : 'not-btsnoop', isPrefix ? `${buf.length} bytes, shorter than the 16-byte btsnoop file header` : `not a btsnoop file (${buf.length} bytes, no "btsnoop" header)`);
  }
  if (!buf.subarray(0, 8).equals(magic)) throw new BtsnoopFormatError('not-btsnoop', 'not a btsnoop file (it does not start with "btsnoop\\0")');
  const version = buf.readUInt32BE(8);
  if (version !== 1) throw new BtsnoopFormatError('unsupported', `btsnoop version ${version} (only version 1 exists)`);
  const datalink = buf.readUInt32BE(12);
  const datalinkName = (BTSNOOP_DATALINKS as Record<number, string>)[datalink];
  if (datalinkName === undefined) throw new BtsnoopFormatError('unsupported', `btsnoop datalink ${datalink} is not one trace show reads (1001 H1, 1002 H4, 2001 btmon)`);
  const packets: BtsnoopPacket[] = [];
  let first: bigint | null = null;
  for (let offset = 16, n = 1; offset < buf.length; n++) {
    if (buf.length - offset < 24) throw new BtsnoopFormatError('truncated', `record ${n} at byte ${offset} has ${buf.length - offset} of its 24 header bytes`);
    const originalLength = buf.readUInt32BE(offset);
    const included = buf.readUInt32BE(offset + 4);
    const flags = buf.readUInt32BE(offset + 8);
    const timestamp = buf.readBigInt64BE(offset + 16);
    if (included > originalLength) throw new BtsnoopFormatError('malformed', `record ${n} at byte ${offset} includes ${included} bytes of a ${originalLength}-byte packet`);
    if (offset + 24 + included > buf.length) throw new BtsnoopFormatError('truncated', `record ${n} at byte ${offset} declares ${included} packet bytes, ${buf.length - offset - 24} remain`);
    const data = buf.subarray(offset + 24, offset + 24 + included);
    first ??= timestamp;
    const base = { n, offsetUs: Number(timestamp - first), unixUs: timestamp - BTSNOOP_EPOCH_OFFSET_US, originalLength };
    if (datalink === 1002) {
      packets.push({ ...base, packet: data, direction: flags & 1 ? 'controller-to-host' : 'host-to-controller' });
    } else if (datalink === 1001) {
      // H1 has no type byte: the flags say command/event (bit 1) and direction (bit 0).
      const received = (flags & 1) === 1;
      const type = flags & 2 ? (received ? H4_EVENT : H4_COMMAND) : H4_ACL;
      packets.push({ ...base, originalLength: originalLength + 1, packet: Buffer.concat([Buffer.of(type), data]), direction: received ? 'controller-to-host' : 'host-to-controller' });
    } else {
      const opcode = flags & 0xffff;
      const adapter = flags >>> 16;
      const known = MONITOR_OPCODES[opcode] ?? { name: `monitor opcode ${opcode}` };
      if (known.h4 !== undefined && known.direction !== undefined) {
        packets.push({ ...base, originalLength: originalLength + 1, adapter, packet: Buffer.concat([Buffer.of(known.h4), data]), direction: known.direction });
      } else {
        const monitor: NonNullable<BtsnoopPacket['monitor']> = { opcode, name: known.name };
        if (opcode === 12) monitor.text = data.toString('utf8').replace(/\0+$/, '');
        if (opcode === 13 && data.length >= 2) {
          // User logging: priority, ident length, ident (NUL-terminated), message.
          const identLength = data[1]!;
          const ident = data.toString('utf8', 2, 2 + identLength).replace(/\0+$/, '');
          monitor.text = `${ident}: ${data.toString('utf8', 2 + identLength).replace(/\0+$/, '')}`;
        }
        packets.push({ ...base, adapter, packet: data, direction: 'controller-to-host', monitor });
      }
    }
    offset += 24 + included;
  }
  return { datalink, datalinkName, packets };
}
