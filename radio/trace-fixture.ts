// A btsnoop capture built byte by byte for trace show's tests: the lock's side of one
// connection with every ATT opcode the stacks use, L2CAP signalling and an LE credit-based
// channel, ACL fragments, locksync frames and messages, and two malformed PDUs.
import { GATT } from '../protocol/gatt';
import { encodeHello } from '../protocol/framing';
import { btsnoopHeader, btsnoopRecord } from './btsnoop';
import type { CaptureDirection } from './controller';
import { aclPacket, addressToWire, commandPacket, disconnectionComplete, leMetaEvent, Op } from './hci';

const IN: CaptureDirection = 'controller-to-host'; // from the phone, as the lock's controller hands it up
const OUT: CaptureDirection = 'host-to-controller'; // the lock sending
const CONN = 0x0040;

const u16 = (...values: number[]): Buffer => {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return b;
};
const uuid128 = (uuid: string): Buffer => Buffer.from(uuid.replace(/-/g, ''), 'hex').reverse();
const l2cap = (cid: number, pdu: Buffer): Buffer => Buffer.concat([u16(pdu.length, cid), pdu]);
const att = (...parts: (number | Buffer)[]): Buffer => l2cap(0x0004, Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.of(p) : p))));

/**
 * The lock's side of one connection, as its controller captures it: discovery, the INFO
 * read, subscribing, both framing HELLOs, a hello message in ACL fragments, an unlock
 * request, a decision in two frames, an ABORT, prepare/execute write, an indication, read
 * blob, read multiple refused, L2CAP signalling and an LE credit-based channel, and two
 * malformed PDUs.
 */
export function sampleCapture(): Buffer {
  const records: [Buffer, CaptureDirection][] = [];
  const acl = (dir: CaptureDirection, l2: Buffer): void => void records.push([aclPacket(CONN, dir === OUT ? 0b00 : 0b10, l2), dir]);
  records.push([commandPacket(Op.LE_SET_ADV_ENABLE, Buffer.of(1)), OUT]);
  records.push([Buffer.from('040e0401 0a2000'.replace(/ /g, ''), 'hex'), IN]);
  const connection = Buffer.concat([Buffer.of(0x00), u16(CONN), Buffer.of(0x01, 0x00), addressToWire('c0:1d:3a:f4:00:03'), u16(24, 0, 72), Buffer.of(0)]);
  records.push([leMetaEvent(0x01, connection), IN]);
  acl(IN, att(0x02, u16(185)));
  acl(OUT, att(0x03, u16(185)));
  acl(IN, att(0x10, u16(0x0001, 0xffff, 0x2800)));
  acl(OUT, att(0x11, 6, u16(0x0001, 0x0005, 0x1800, 0x0006, 0x0009, 0x1801)));
  acl(IN, att(0x10, u16(0x000a, 0xffff, 0x2800)));
  acl(OUT, att(0x11, 20, u16(0x000a, 0x0011), uuid128(GATT.service)));
  acl(IN, att(0x10, u16(0x0012, 0xffff, 0x2800)));
  acl(OUT, att(0x01, 0x10, u16(0x0012), 0x0a));
  acl(IN, att(0x08, u16(0x000a, 0x0011, 0x2803)));
  acl(
    OUT,
    att(0x09, 21, u16(0x000b), 0x0c, u16(0x000c), uuid128(GATT.rx), u16(0x000d), 0x10, u16(0x000e), uuid128(GATT.tx), u16(0x0010), 0x02, u16(0x0011), uuid128(GATT.info)),
  );
  acl(IN, att(0x04, u16(0x000f, 0x000f)));
  acl(OUT, att(0x05, 0x01, u16(0x000f, 0x2902)));
  acl(IN, att(0x06, u16(0x0001, 0xffff, 0x2800, 0x1801)));
  acl(OUT, att(0x07, u16(0x0006, 0x0009)));
  acl(IN, att(0x0a, u16(0x0011)));
  acl(OUT, att(0x0b, Buffer.from('a401676c6b2d30303031020103186f0402', 'hex')));
  acl(IN, att(0x12, u16(0x000f, 0x0001)));
  acl(OUT, att(0x13));
  const hello = Buffer.from(encodeHello({ version: 1, window: 32, maxMessageBytes: 1 << 20 }));
  acl(OUT, att(0x1b, u16(0x000e), hello));
  acl(IN, att(0x52, u16(0x000c), hello));
  // The lock's hello message (SPEC §6.2 example, 84 B) in one START frame, carried by a
  // notification that the host splits into three ACL fragments.
  const helloMessage = Buffer.from('aa0001010102676c6b2d303030310301045820f91a5086e16e0926ab244c691a7676963e911f4f544f1a2be8308d0fb627e0d205509f662a24d694ec6dc884f3aa9decb139061a6774a1a007181f08182c091857', 'hex');
  const start = Buffer.concat([Buffer.of(0x80, 0x00), u16(0x0101), Buffer.of(helloMessage.length, 0x00), helloMessage]);
  const notification = att(0x1b, u16(0x000e), start);
  records.push([aclPacket(CONN, 0b00, notification.subarray(0, 27)), OUT]);
  records.push([aclPacket(CONN, 0b01, notification.subarray(27, 54)), OUT]);
  records.push([aclPacket(CONN, 0b01, notification.subarray(54)), OUT]);
  acl(IN, att(0x52, u16(0x000c), Buffer.from('8100', 'hex')));
  // unlockRequest credId 1, one START frame.
  acl(IN, att(0x52, u16(0x000c), Buffer.concat([Buffer.of(0x80, 0x00), u16(0x0202), Buffer.of(5, 0), Buffer.from('a200070101', 'hex')])));
  acl(OUT, att(0x1b, u16(0x000e), Buffer.from('8100', 'hex')));
  // decision granted, seq 45 (10 B), in a START and a DATA frame.
  const decision = Buffer.from('a4000a01f5020003182d', 'hex');
  acl(OUT, att(0x1b, u16(0x000e), Buffer.concat([Buffer.of(0x80, 0x01), u16(0x0303), Buffer.of(10, 0), decision.subarray(0, 6)])));
  acl(OUT, att(0x1b, u16(0x000e), Buffer.concat([Buffer.of(0x02), decision.subarray(6)])));
  acl(IN, att(0x52, u16(0x000c), Buffer.from('8102', 'hex')));
  acl(IN, att(0x52, u16(0x000c), Buffer.concat([Buffer.of(0x83), u16(0x0404), Buffer.of(8)])));
  acl(IN, att(0x16, u16(0x0011, 0), Buffer.from('abcd', 'hex')));
  acl(OUT, att(0x17, u16(0x0011, 0), Buffer.from('abcd', 'hex')));
  acl(IN, att(0x18, 0x01));
  acl(OUT, att(0x19));
  acl(OUT, att(0x1d, u16(0x0008, 0x0001, 0xffff)));
  acl(IN, att(0x1e));
  acl(IN, att(0x0c, u16(0x0011, 4)));
  acl(OUT, att(0x0d, Buffer.from('6b2d30303031', 'hex')));
  acl(IN, att(0x0e, u16(0x000c, 0x0011)));
  acl(OUT, att(0x01, 0x0e, u16(0x000c), 0x02));
  acl(OUT, l2cap(0x0005, Buffer.concat([Buffer.of(0x12, 0x01), u16(8, 6, 12, 0, 200)])));
  acl(IN, l2cap(0x0005, Buffer.concat([Buffer.of(0x13, 0x01), u16(2, 0)])));
  acl(IN, l2cap(0x0005, Buffer.concat([Buffer.of(0x14, 0x02), u16(10, 0x0080, 0x0040, 256, 247, 10)])));
  acl(OUT, l2cap(0x0005, Buffer.concat([Buffer.of(0x15, 0x02), u16(10, 0x0041, 256, 247, 10, 0)])));
  acl(OUT, l2cap(0x0005, Buffer.concat([Buffer.of(0x16, 0x03), u16(4, 0x0041, 5)])));
  acl(IN, l2cap(0x0041, Buffer.concat([u16(3), Buffer.from('010203', 'hex')])));
  // Malformed: a Read Request with half a handle, and a frame of a reserved type on RX.
  acl(IN, att(0x0a, 0x11));
  acl(IN, att(0x52, u16(0x000c), Buffer.of(0x90, 0x00)));
  records.push([disconnectionComplete(CONN, 0x13), IN]);
  const base = 1_790_000_000_000_000n; // 2026-09-21T14:13:20Z, µs
  return Buffer.concat([btsnoopHeader(), ...records.map(([p, d], i) => btsnoopRecord(p, d, base + BigInt(i) * 1250n))]);
}

/**
 * A phone's delta (SPEC §6.3 example, 151 B) cut by a link drop after 100 bytes and
 * resumed on the next connection — same connection handle, new discovery — from byte 100,
 * as the lock's HELLO asks.
 */
export function resumeCapture(): Buffer {
  const records: [Buffer, CaptureDirection][] = [];
  const acl = (dir: CaptureDirection, l2: Buffer): void => void records.push([aclPacket(CONN, dir === OUT ? 0b00 : 0b10, l2), dir]);
  const delta = Buffer.from(
    'a2000301a401010248f91a5086e16e092603818203070482583ba501676c6b2d303030310202035820e35f39404ac8d4fbb8f93b1521bc26ea130b89cbeff7db1b2243867c0db519d8041a6774a1a0054496fde2ca58409971280ade524a8c630683b2aad394ef0f01e44688818e978dd2e2adcdbbd4e53fc249f279a27542d17b277d8585d443cfc06c555ceddf45fe7f45f82cbbcb04',
    'hex',
  );
  const connect = (): void => {
    const params = Buffer.concat([Buffer.of(0x00), u16(CONN), Buffer.of(0x01, 0x00), addressToWire('c0:1d:3a:f4:00:03'), u16(24, 0, 72), Buffer.of(0)]);
    records.push([leMetaEvent(0x01, params), IN]);
    acl(IN, att(0x08, u16(0x000a, 0x0011, 0x2803)));
    acl(OUT, att(0x09, 21, u16(0x000b), 0x0c, u16(0x000c), uuid128(GATT.rx), u16(0x000d), 0x10, u16(0x000e), uuid128(GATT.tx)));
  };
  connect();
  acl(IN, att(0x52, u16(0x000c), Buffer.concat([Buffer.of(0x80, 0x00), u16(0x5151), Buffer.of(0x97, 0x01, 0x00), delta.subarray(0, 60)])));
  acl(IN, att(0x52, u16(0x000c), Buffer.concat([Buffer.of(0x01), delta.subarray(60, 100)])));
  records.push([disconnectionComplete(CONN, 0x08), IN]);
  connect();
  acl(OUT, att(0x1b, u16(0x000e), Buffer.from(encodeHello({ version: 1, window: 32, maxMessageBytes: 1 << 20, partial: { messageId: 0x5151, total: 151, offset: 100 } }))));
  acl(IN, att(0x52, u16(0x000c), Buffer.concat([Buffer.of(0x80, 0x00), u16(0x5151), Buffer.of(0x97, 0x01, 100), delta.subarray(100)])));
  const base = 1_790_000_000_000_000n;
  return Buffer.concat([btsnoopHeader(), ...records.map(([p, d], i) => btsnoopRecord(p, d, base + BigInt(i) * 1250n))]);
}
