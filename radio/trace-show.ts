// `locksync trace show FILE`: decodes a btsnoop capture layer by layer — HCI commands and
// events, ACL reassembled into L2CAP PDUs, the LE signalling channel, SMP, every ATT PDU
// with its real fields (Core spec Vol 3 Part F §3.4), and on locksync's characteristics the
// framing (SPEC §13.2) and the CBOR session messages it carries (SPEC §6), reassembled.
//
// Output: one line per packet (indented lines under it for what a packet completes: an
// L2CAP PDU spread over fragments, a locksync message spread over frames), then totals;
// or with --json one JSON object per packet (JSON Lines) and a final summary object.

import fs from 'node:fs';
import type { Command } from 'commander';
import { decode as decodeCbor } from '../protocol/cbor';
import { CAPABILITIES, decodeMessage, auditRecordFromBytes, type Message } from '../protocol/messages';
import { FRAMING_ERROR_CODES, decodeFrame, type DecodedFrame } from '../protocol/framing';
import { GATT, decodeLockInfo } from '../protocol/gatt';
import { toHex } from '../protocol/crypto';
import { CliError, reportFailure } from '../cli/errors';
import type { CaptureDirection } from './controller';
import { BtsnoopFormatError, readBtsnoop, type BtsnoopPacket } from './btsnoop';
import { EventCode, H4_ACL, H4_COMMAND, H4_EVENT, eventName, opcodeName, parseH4, statusName, wireToAddress } from './hci';

const hex = (n: number, width = 4): string => `0x${n.toString(16).padStart(width, '0')}`;

// ---------------------------------------------------------------------------------------
// ATT (Core spec Vol 3 Part F §3.4)

export const ATT_OPCODES: Record<number, string> = {
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
  0x20: 'Read Multiple Variable Request',
  0x21: 'Read Multiple Variable Response',
  0x23: 'Multiple Handle Value Notification',
  0x52: 'Write Command',
  0xd2: 'Signed Write Command',
};

export function attOpcodeName(op: number): string {
  return ATT_OPCODES[op] ?? `Unknown ATT opcode ${hex(op, 2)}`;
}

/** ATT error codes (Vol 3 Part F §3.4.1.1, and Supplement Part B §1.2 for 0xFC..0xFF). */
export const ATT_ERRORS: Record<number, string> = {
  0x01: 'Invalid Handle',
  0x02: 'Read Not Permitted',
  0x03: 'Write Not Permitted',
  0x04: 'Invalid PDU',
  0x05: 'Insufficient Authentication',
  0x06: 'Request Not Supported',
  0x07: 'Invalid Offset',
  0x08: 'Insufficient Authorization',
  0x09: 'Prepare Queue Full',
  0x0a: 'Attribute Not Found',
  0x0b: 'Attribute Not Long',
  0x0c: 'Encryption Key Size Too Short',
  0x0d: 'Invalid Attribute Value Length',
  0x0e: 'Unlikely Error',
  0x0f: 'Insufficient Encryption',
  0x10: 'Unsupported Group Type',
  0x11: 'Insufficient Resources',
  0x12: 'Database Out Of Sync',
  0x13: 'Value Not Allowed',
  0xfc: 'Write Request Rejected',
  0xfd: 'Client Characteristic Configuration Descriptor Improperly Configured',
  0xfe: 'Procedure Already in Progress',
  0xff: 'Out of Range',
};

export function attErrorName(code: number): string {
  return ATT_ERRORS[code] ?? (code >= 0x80 && code <= 0x9f ? `Application Error ${hex(code, 2)}` : code >= 0xe0 ? `Common Profile and Service Error ${hex(code, 2)}` : `Reserved ${hex(code, 2)}`);
}

/** 16-bit UUIDs the GATT layer itself uses, and the ones of the services stacks add. */
const UUID16: Record<number, string> = {
  0x1800: 'Generic Access',
  0x1801: 'Generic Attribute',
  0x2800: 'Primary Service',
  0x2801: 'Secondary Service',
  0x2802: 'Include',
  0x2803: 'Characteristic',
  0x2900: 'Characteristic Extended Properties',
  0x2901: 'Characteristic User Description',
  0x2902: 'Client Characteristic Configuration',
  0x2903: 'Server Characteristic Configuration',
  0x2904: 'Characteristic Presentation Format',
  0x2a00: 'Device Name',
  0x2a01: 'Appearance',
  0x2a04: 'Peripheral Preferred Connection Parameters',
  0x2a05: 'Service Changed',
  0x2aa6: 'Central Address Resolution',
  0x2b29: 'Client Supported Features',
  0x2b2a: 'Database Hash',
  0x2b3a: 'Server Supported Features',
};

const LOCKSYNC_UUIDS: Record<string, { name: string; role: LocksyncRole | 'service' }> = {
  [GATT.service]: { name: 'locksync service', role: 'service' },
  [GATT.rx]: { name: 'locksync RX', role: 'rx' },
  [GATT.tx]: { name: 'locksync TX', role: 'tx' },
  [GATT.info]: { name: 'locksync INFO', role: 'info' },
};
type LocksyncRole = 'rx' | 'tx' | 'info';

/** A UUID in ATT's little-endian wire form (2 or 16 bytes) → its usual text form. */
export function uuidText(wire: Buffer): string {
  if (wire.length === 2) return hex(wire.readUInt16LE(0));
  const h = Buffer.from(wire).reverse().toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function uuidName(uuid: string): string | undefined {
  if (/^0x[0-9a-f]{4}$/.test(uuid)) return UUID16[parseInt(uuid, 16)];
  const base = /^0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb$/.exec(uuid);
  if (base) return UUID16[parseInt(base[1]!, 16)];
  return LOCKSYNC_UUIDS[uuid]?.name;
}

const withName = (uuid: string): string => {
  const name = uuidName(uuid);
  return name ? `${name} (${uuid})` : uuid;
};

const CHAR_PROPERTIES = ['Broadcast', 'Read', 'Write Without Response', 'Write', 'Notify', 'Indicate', 'Authenticated Signed Writes', 'Extended Properties'];

class Malformed extends Error {}

/** Reads fields off a PDU; running short is a malformed PDU, never a silent misread. */
class Fields {
  pos = 0;
  constructor(
    readonly b: Buffer,
    readonly what: string,
  ) {}
  need(n: number, field: string): void {
    if (this.pos + n > this.b.length) throw new Malformed(`${this.what}: ${field} needs ${n} bytes at offset ${this.pos}, ${this.b.length - this.pos} remain`);
  }
  u8(field: string): number {
    this.need(1, field);
    return this.b[this.pos++]!;
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.b.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  rest(): Buffer {
    const v = this.b.subarray(this.pos);
    this.pos = this.b.length;
    return v;
  }
  get remaining(): number {
    return this.b.length - this.pos;
  }
  end(): void {
    if (this.pos !== this.b.length) throw new Malformed(`${this.what}: ${this.b.length - this.pos} unexpected trailing bytes`);
  }
}

function uuidField(f: Fields, field: string): string {
  const n = f.remaining;
  if (n !== 2 && n !== 16) throw new Malformed(`${f.what}: ${field} is ${n} bytes (a UUID is 2 or 16)`);
  return uuidText(f.rest());
}

/** One decoded ATT PDU: its fields as plain JSON, and a one-line rendering. */
export interface AttDecoded {
  opcode: number;
  name: string;
  fields: Record<string, unknown>;
  text: string;
  /** The attribute handle the PDU reads, writes or carries (for naming and locksync). */
  handle?: number;
  value?: Buffer;
}

/** What a response needs from its request (ATT: one request outstanding per direction). */
interface PendingRequest {
  opcode: number;
  handle?: number;
  type?: string;
}

/** The attributes learned from discovery on one connection: handle → what it is. */
class GattMap {
  readonly byHandle = new Map<number, { uuid: string; name?: string; role?: LocksyncRole; cccdOf?: number }>();
  /** Characteristic value handles, sorted, so a descriptor can be tied to its characteristic. */
  private readonly valueHandles: number[] = [];

  addCharacteristic(valueHandle: number, uuid: string): void {
    const known = LOCKSYNC_UUIDS[uuid];
    const entry: { uuid: string; name?: string; role?: LocksyncRole } = { uuid };
    const name = uuidName(uuid);
    if (name) entry.name = name;
    if (known && known.role !== 'service') entry.role = known.role;
    this.byHandle.set(valueHandle, entry);
    this.valueHandles.push(valueHandle);
    this.valueHandles.sort((a, b) => a - b);
  }

  addDescriptor(handle: number, uuid: string): void {
    if (this.byHandle.has(handle) && uuid !== '0x2902') return;
    const owner = [...this.valueHandles].reverse().find((h) => h < handle);
    const entry: { uuid: string; name?: string; cccdOf?: number } = { uuid };
    const name = uuidName(uuid);
    if (name) entry.name = name;
    if (uuid === '0x2902' && owner !== undefined) entry.cccdOf = owner;
    this.byHandle.set(handle, entry);
  }

  describe(handle: number): string | undefined {
    const a = this.byHandle.get(handle);
    if (!a) return undefined;
    if (a.cccdOf !== undefined) {
      const owner = this.byHandle.get(a.cccdOf);
      return `Client Characteristic Configuration of ${owner?.name ?? hex(a.cccdOf)}`;
    }
    return a.name ?? a.uuid;
  }

  role(handle: number): LocksyncRole | undefined {
    return this.byHandle.get(handle)?.role;
  }
}

function handleText(handle: number, gatt: GattMap): string {
  const d = gatt.describe(handle);
  return d ? `Handle: ${hex(handle)} (${d})` : `Handle: ${hex(handle)}`;
}

const shortHex = (b: Uint8Array, max = 16): string => (b.length <= max ? toHex(b) : `${toHex(b.subarray(0, max))}…`);

/**
 * Decodes one ATT PDU. `pending` is the last request the other side sent on this
 * connection (a response's meaning depends on it); `gatt` learns from discovery.
 */
export function decodeAtt(pdu: Buffer, pending: PendingRequest | undefined, gatt: GattMap): AttDecoded {
  const f = new Fields(pdu, 'ATT');
  const opcode = f.u8('opcode');
  const name = attOpcodeName(opcode);
  const out = (fields: Record<string, unknown>, text: string, extra: Partial<AttDecoded> = {}): AttDecoded => ({ opcode, name, fields, text: text ? `${name}, ${text}` : name, ...extra });
  switch (opcode) {
    case 0x01: {
      const request = f.u8('request opcode in error');
      const handle = f.u16('attribute handle in error');
      const code = f.u8('error code');
      f.end();
      return {
        opcode,
        name,
        fields: { requestOpcode: request, requestName: attOpcodeName(request), handle, errorCode: code, error: attErrorName(code) },
        text: `${name} - ${attErrorName(code)}, ${handleText(handle, gatt)}, in reply to ${attOpcodeName(request)}`,
        handle,
      };
    }
    case 0x02:
    case 0x03: {
      const mtu = f.u16('MTU');
      f.end();
      const key = opcode === 0x02 ? 'clientRxMtu' : 'serverRxMtu';
      return out({ [key]: mtu }, `${opcode === 0x02 ? 'Client' : 'Server'} Rx MTU: ${mtu}`);
    }
    case 0x04: {
      const start = f.u16('starting handle');
      const end = f.u16('ending handle');
      f.end();
      return out({ startingHandle: start, endingHandle: end }, `Handles: ${hex(start)}..${hex(end)}`);
    }
    case 0x05: {
      const format = f.u8('format');
      const uuidBytes = format === 1 ? 2 : format === 2 ? 16 : 0;
      if (uuidBytes === 0) throw new Malformed(`ATT: Find Information Response format ${format} (1 = 16-bit, 2 = 128-bit)`);
      const list: { handle: number; uuid: string; name?: string }[] = [];
      while (f.remaining > 0) {
        const handle = f.u16('handle');
        const uuid = uuidText(f.bytes(uuidBytes, 'UUID'));
        gatt.addDescriptor(handle, uuid);
        const n = uuidName(uuid);
        list.push(n ? { handle, uuid, name: n } : { handle, uuid });
      }
      if (list.length === 0) throw new Malformed('ATT: Find Information Response with no entry');
      return out({ format, information: list }, list.map((e) => `${hex(e.handle)} ${e.name ?? e.uuid}`).join(', '));
    }
    case 0x06: {
      const start = f.u16('starting handle');
      const end = f.u16('ending handle');
      const type = uuidText(f.bytes(2, 'attribute type'));
      const value = f.rest();
      const valueText = value.length === 2 || value.length === 16 ? uuidText(value) : toHex(value);
      return out({ startingHandle: start, endingHandle: end, type, value: toHex(value) }, `${uuidName(type) ?? type} = ${uuidName(valueText) ?? valueText}, Handles: ${hex(start)}..${hex(end)}`);
    }
    case 0x07: {
      const list: { handle: number; groupEndHandle: number }[] = [];
      while (f.remaining > 0) list.push({ handle: f.u16('found attribute handle'), groupEndHandle: f.u16('group end handle') });
      if (list.length === 0) throw new Malformed('ATT: Find By Type Value Response with no entry');
      return out({ handles: list }, list.map((e) => `${hex(e.handle)}..${hex(e.groupEndHandle)}`).join(', '));
    }
    case 0x08:
    case 0x10: {
      const start = f.u16('starting handle');
      const end = f.u16('ending handle');
      const type = uuidField(f, 'attribute type');
      return out({ startingHandle: start, endingHandle: end, type, typeName: uuidName(type) ?? null }, `${withName(type)}, Handles: ${hex(start)}..${hex(end)}`, {});
    }
    case 0x09: {
      const length = f.u8('length');
      if (length < 2) throw new Malformed(`ATT: Read By Type Response length ${length} < 2`);
      const type = pending?.opcode === 0x08 ? pending.type : undefined;
      const list: Record<string, unknown>[] = [];
      const parts: string[] = [];
      while (f.remaining > 0) {
        const handle = f.u16('handle');
        const value = f.bytes(length - 2, 'attribute value');
        if (type === '0x2803' && (value.length === 5 || value.length === 19)) {
          const properties = value[0]!;
          const valueHandle = value.readUInt16LE(1);
          const uuid = uuidText(value.subarray(3));
          gatt.addCharacteristic(valueHandle, uuid);
          const props = CHAR_PROPERTIES.filter((_, i) => properties & (1 << i));
          list.push({ handle, properties, propertyNames: props, valueHandle, uuid, name: uuidName(uuid) ?? null });
          parts.push(`${hex(handle)}: ${withName(uuid)} value ${hex(valueHandle)} [${props.join(', ')}]`);
        } else {
          if (type !== undefined && type !== '0x2803') gatt.addDescriptor(handle, type);
          list.push({ handle, value: toHex(value) });
          parts.push(`${hex(handle)} = ${shortHex(value)}`);
        }
      }
      if (list.length === 0) throw new Malformed('ATT: Read By Type Response with no entry');
      return out({ length, attributeType: type ?? null, attributes: list }, `${type ? `${uuidName(type) ?? type}: ` : ''}${parts.join('; ')}`);
    }
    case 0x0a: {
      const handle = f.u16('handle');
      f.end();
      return out({ handle }, handleText(handle, gatt), { handle });
    }
    case 0x0c: {
      const handle = f.u16('handle');
      const offset = f.u16('value offset');
      f.end();
      return out({ handle, offset }, `${handleText(handle, gatt)}, Offset: ${offset}`, { handle });
    }
    case 0x0b:
    case 0x0d: {
      const value = f.rest();
      const handle = pending?.handle;
      const fields: Record<string, unknown> = { value: toHex(value) };
      if (handle !== undefined) fields['handle'] = handle;
      return out(fields, `${handle !== undefined ? `${handleText(handle, gatt)}, ` : ''}Value: ${shortHex(value)} (${value.length} bytes)`, handle !== undefined ? { handle, value } : { value });
    }
    case 0x0e:
    case 0x20: {
      const handles: number[] = [];
      while (f.remaining > 0) handles.push(f.u16('handle'));
      if (handles.length < 2) throw new Malformed(`ATT: ${name} names ${handles.length} handle(s), at least 2`);
      return out({ handles }, `Handles: ${handles.map((h) => hex(h)).join(', ')}`);
    }
    case 0x0f: {
      const value = f.rest();
      return out({ values: toHex(value) }, `Values: ${shortHex(value)} (${value.length} bytes)`);
    }
    case 0x21: {
      const values: string[] = [];
      while (f.remaining > 0) {
        const length = f.u16('value length');
        values.push(toHex(f.bytes(length, 'value')));
      }
      return out({ values }, `${values.length} values`);
    }
    case 0x11: {
      const length = f.u8('length');
      if (length !== 6 && length !== 20) throw new Malformed(`ATT: Read By Group Type Response length ${length} (6 or 20)`);
      const list: { handle: number; endGroupHandle: number; uuid: string; name: string | null }[] = [];
      while (f.remaining > 0) {
        const handle = f.u16('attribute handle');
        const endGroupHandle = f.u16('end group handle');
        const uuid = uuidText(f.bytes(length - 4, 'attribute value'));
        list.push({ handle, endGroupHandle, uuid, name: uuidName(uuid) ?? null });
      }
      if (list.length === 0) throw new Malformed('ATT: Read By Group Type Response with no entry');
      return out({ length, groups: list }, list.map((g) => `${hex(g.handle)}..${hex(g.endGroupHandle)} ${withName(g.uuid)}`).join(', '));
    }
    case 0x12:
    case 0x52:
    case 0xd2: {
      const handle = f.u16('handle');
      const rest = f.rest();
      if (opcode === 0xd2 && rest.length < 12) throw new Malformed('ATT: Signed Write Command without its 12-byte signature');
      const value = opcode === 0xd2 ? rest.subarray(0, rest.length - 12) : rest;
      const fields: Record<string, unknown> = { handle, value: toHex(value) };
      if (opcode === 0xd2) fields['signature'] = toHex(rest.subarray(rest.length - 12));
      return out(fields, `${handleText(handle, gatt)}, ${cccdText(handle, value, gatt) ?? `Value: ${shortHex(value)} (${value.length} bytes)`}`, { handle, value });
    }
    case 0x13: {
      f.end();
      const handle = pending?.opcode === 0x12 ? pending.handle : undefined;
      return out(handle !== undefined ? { handle } : {}, handle !== undefined ? handleText(handle, gatt) : '', handle !== undefined ? { handle } : {});
    }
    case 0x16:
    case 0x17: {
      const handle = f.u16('handle');
      const offset = f.u16('value offset');
      const value = f.rest();
      return out({ handle, offset, value: toHex(value) }, `${handleText(handle, gatt)}, Offset: ${offset}, Value: ${shortHex(value)} (${value.length} bytes)`, { handle });
    }
    case 0x18: {
      const flags = f.u8('flags');
      f.end();
      const meaning = flags === 0 ? 'Cancel all prepared writes' : flags === 1 ? 'Immediately write all pending values' : `reserved flags ${hex(flags, 2)}`;
      return out({ flags, meaning }, `Flags: ${meaning}`);
    }
    case 0x19:
    case 0x1e: {
      f.end();
      return out({}, '');
    }
    case 0x1b:
    case 0x1d: {
      const handle = f.u16('handle');
      const value = f.rest();
      return out({ handle, value: toHex(value) }, `${handleText(handle, gatt)}, Value: ${shortHex(value)} (${value.length} bytes)`, { handle, value });
    }
    case 0x23: {
      const list: { handle: number; value: string }[] = [];
      while (f.remaining > 0) {
        const handle = f.u16('handle');
        const length = f.u16('length');
        list.push({ handle, value: toHex(f.bytes(length, 'value')) });
      }
      return out({ values: list }, list.map((e) => `${hex(e.handle)} (${e.value.length / 2} bytes)`).join(', '));
    }
    default:
      return out({ parameters: toHex(f.rest()) }, `${pdu.length - 1} parameter bytes`);
  }
}

function cccdText(handle: number, value: Buffer, gatt: GattMap): string | undefined {
  if (gatt.byHandle.get(handle)?.uuid !== '0x2902' || value.length !== 2) return undefined;
  const v = value.readUInt16LE(0);
  const on = [v & 1 ? 'Notification' : '', v & 2 ? 'Indication' : ''].filter(Boolean);
  return `Value: ${on.length ? `${on.join(' and ')} enabled` : 'notifications and indications off'} (${hex(v)})`;
}

// ---------------------------------------------------------------------------------------
// L2CAP LE signalling (Vol 3 Part A §4) and SMP (Vol 3 Part H §3)

const L2CAP_SIGNALS: Record<number, string> = {
  0x01: 'Command Reject',
  0x06: 'Disconnection Request',
  0x07: 'Disconnection Response',
  0x12: 'Connection Parameter Update Request',
  0x13: 'Connection Parameter Update Response',
  0x14: 'LE Credit Based Connection Request',
  0x15: 'LE Credit Based Connection Response',
  0x16: 'Flow Control Credit Indication',
  0x17: 'Credit Based Connection Request',
  0x18: 'Credit Based Connection Response',
  0x19: 'Credit Based Reconfigure Request',
  0x1a: 'Credit Based Reconfigure Response',
};

const LE_CREDIT_RESULTS: Record<number, string> = {
  0x0000: 'Connection successful',
  0x0002: 'SPSM not supported',
  0x0004: 'No resources available',
  0x0005: 'Insufficient Authentication',
  0x0006: 'Insufficient Authorization',
  0x0007: 'Encryption Key Size Too Short',
  0x0008: 'Insufficient Encryption',
  0x0009: 'Invalid Source CID',
  0x000a: 'Source CID already allocated',
  0x000b: 'Unacceptable parameters',
};

export function decodeSignalling(pdu: Buffer): { fields: Record<string, unknown>; text: string } {
  const f = new Fields(pdu, 'L2CAP signalling');
  const code = f.u8('code');
  const identifier = f.u8('identifier');
  const length = f.u16('length');
  if (length !== f.remaining) throw new Malformed(`L2CAP signalling: length ${length}, ${f.remaining} data bytes`);
  const name = L2CAP_SIGNALS[code] ?? `signalling code ${hex(code, 2)}`;
  const fields: Record<string, unknown> = { code, name, identifier };
  let detail = '';
  switch (code) {
    case 0x01: {
      const reason = f.u16('reason');
      fields['reason'] = reason;
      detail = ['Command not understood', 'Signaling MTU exceeded', 'Invalid CID in request'][reason] ?? `reason ${hex(reason)}`;
      break;
    }
    case 0x06:
    case 0x07:
      fields['dcid'] = f.u16('destination CID');
      fields['scid'] = f.u16('source CID');
      detail = `DCID ${hex(fields['dcid'] as number)}, SCID ${hex(fields['scid'] as number)}`;
      break;
    case 0x12: {
      const min = f.u16('interval min');
      const max = f.u16('interval max');
      const latency = f.u16('latency');
      const timeout = f.u16('timeout');
      Object.assign(fields, { intervalMin: min, intervalMax: max, latency, timeout });
      detail = `interval ${(min * 1.25).toFixed(2)}–${(max * 1.25).toFixed(2)} ms, latency ${latency}, timeout ${timeout * 10} ms`;
      break;
    }
    case 0x13: {
      const result = f.u16('result');
      fields['result'] = result;
      detail = result === 0 ? 'Accepted' : result === 1 ? 'Rejected' : `result ${hex(result)}`;
      break;
    }
    case 0x14: {
      const v = { spsm: f.u16('SPSM'), scid: f.u16('source CID'), mtu: f.u16('MTU'), mps: f.u16('MPS'), initialCredits: f.u16('initial credits') };
      Object.assign(fields, v);
      detail = `SPSM ${hex(v.spsm)}, SCID ${hex(v.scid)}, MTU ${v.mtu}, MPS ${v.mps}, credits ${v.initialCredits}`;
      break;
    }
    case 0x15: {
      const v = { dcid: f.u16('destination CID'), mtu: f.u16('MTU'), mps: f.u16('MPS'), initialCredits: f.u16('initial credits'), result: f.u16('result') };
      Object.assign(fields, v, { resultName: LE_CREDIT_RESULTS[v.result] ?? null });
      detail = `DCID ${hex(v.dcid)}, MTU ${v.mtu}, MPS ${v.mps}, credits ${v.initialCredits}, ${LE_CREDIT_RESULTS[v.result] ?? `result ${hex(v.result)}`}`;
      break;
    }
    case 0x16: {
      const v = { cid: f.u16('CID'), credits: f.u16('credits') };
      Object.assign(fields, v);
      detail = `CID ${hex(v.cid)}, credits ${v.credits}`;
      break;
    }
    case 0x17: {
      const v = { spsm: f.u16('SPSM'), mtu: f.u16('MTU'), mps: f.u16('MPS'), initialCredits: f.u16('initial credits') };
      const scids: number[] = [];
      while (f.remaining > 0) scids.push(f.u16('source CID'));
      Object.assign(fields, v, { scids });
      detail = `SPSM ${hex(v.spsm)}, MTU ${v.mtu}, MPS ${v.mps}, credits ${v.initialCredits}, SCIDs ${scids.map((c) => hex(c)).join(' ')}`;
      break;
    }
    case 0x18: {
      const v = { mtu: f.u16('MTU'), mps: f.u16('MPS'), initialCredits: f.u16('initial credits'), result: f.u16('result') };
      const dcids: number[] = [];
      while (f.remaining > 0) dcids.push(f.u16('destination CID'));
      Object.assign(fields, v, { dcids });
      detail = `MTU ${v.mtu}, MPS ${v.mps}, credits ${v.initialCredits}, result ${hex(v.result)}, DCIDs ${dcids.map((c) => hex(c)).join(' ')}`;
      break;
    }
    case 0x19: {
      const v = { mtu: f.u16('MTU'), mps: f.u16('MPS') };
      const dcids: number[] = [];
      while (f.remaining > 0) dcids.push(f.u16('destination CID'));
      Object.assign(fields, v, { dcids });
      detail = `MTU ${v.mtu}, MPS ${v.mps}, DCIDs ${dcids.map((c) => hex(c)).join(' ')}`;
      break;
    }
    case 0x1a: {
      const result = f.u16('result');
      fields['result'] = result;
      detail = `result ${hex(result)}`;
      break;
    }
    default:
      fields['data'] = toHex(f.rest());
  }
  f.end();
  return { fields, text: `${name} (id ${identifier})${detail ? `: ${detail}` : ''}` };
}

const SMP_CODES: Record<number, string> = {
  0x01: 'Pairing Request',
  0x02: 'Pairing Response',
  0x03: 'Pairing Confirm',
  0x04: 'Pairing Random',
  0x05: 'Pairing Failed',
  0x06: 'Encryption Information',
  0x07: 'Central Identification',
  0x08: 'Identity Information',
  0x09: 'Identity Address Information',
  0x0a: 'Signing Information',
  0x0b: 'Security Request',
  0x0c: 'Pairing Public Key',
  0x0d: 'Pairing DHKey Check',
  0x0e: 'Pairing Keypress Notification',
};

// ---------------------------------------------------------------------------------------
// locksync framing and messages (SPEC §13.2, §6)

export interface FrameDecoded {
  type: DecodedFrame['type'];
  fields: Record<string, unknown>;
  text: string;
}

export function describeFrame(frame: DecodedFrame): FrameDecoded {
  switch (frame.type) {
    case 'start':
      return {
        type: 'start',
        fields: { seq: frame.seq, messageId: frame.messageId, total: frame.total, offset: frame.offset, payloadBytes: frame.payload.length },
        text: `START seq ${frame.seq} id ${hex(frame.messageId)} total ${frame.total} offset ${frame.offset}${frame.offset > 0 ? ' (resume)' : ''}, ${frame.payload.length} payload bytes`,
      };
    case 'data':
      return { type: 'data', fields: { seq: frame.seq, payloadBytes: frame.payload.length }, text: `DATA seq ${frame.seq}, ${frame.payload.length} payload bytes` };
    case 'ack':
      return { type: 'ack', fields: { seq: frame.seq }, text: `ACK seq ${frame.seq}` };
    case 'hello': {
      const s = frame.state;
      const fields: Record<string, unknown> = { version: s.version, window: s.window, maxMessageBytes: s.maxMessageBytes };
      let text = `HELLO v${s.version} window ${s.window} maxMsg ${s.maxMessageBytes}`;
      if (s.partial) {
        fields['partial'] = s.partial;
        text += `, holds ${s.partial.offset}/${s.partial.total} of id ${hex(s.partial.messageId)}`;
      }
      if (s.completed) {
        fields['completed'] = s.completed;
        text += `, completed id ${hex(s.completed.messageId)} (${s.completed.total} B)`;
      }
      if (s.resumeToken) {
        // A phone's resume token (SPEC §13.2): the lock keys what it holds of the phone's messages by it.
        fields['resumeToken'] = toHex(s.resumeToken);
        text += `, resume token ${toHex(s.resumeToken)}`;
      }
      return { type: 'hello', fields, text };
    }
    case 'abort': {
      const reason = FRAMING_ERROR_CODES[frame.reason - 1] ?? `reason ${frame.reason}`;
      return { type: 'abort', fields: { messageId: frame.messageId, reason: frame.reason, reasonName: reason }, text: `ABORT id ${hex(frame.messageId)} ${reason}` };
    }
  }
}

const unixIso = (s: number): string => new Date(s * 1000).toISOString().replace('.000Z', 'Z');

const capabilityNames = (bits: number): string[] => Object.entries(CAPABILITIES).filter(([, b]) => bits & b).map(([n]) => n);

/** A session message's fields by their SPEC names, as plain JSON, and a one-line summary. */
export function describeMessage(m: Message): { fields: Record<string, unknown>; text: string } {
  switch (m.type) {
    case 'hello':
      return {
        fields: { protocolVersion: m.protocolVersion, lockId: m.lockId, version: m.version, digest: toHex(m.digest), nonce: toHex(m.nonce), lockTime: m.lockTime, capabilities: capabilityNames(m.capabilities), auditSeq: m.auditSeq, battery: m.battery, ...(m.certSerial !== undefined ? { certSerial: m.certSerial } : {}) },
        text: `hello lockId=${m.lockId} version=${m.version} digest=${toHex(m.digest).slice(0, 16)}… lockTime=${unixIso(m.lockTime)} auditSeq=${m.auditSeq} battery=${m.battery}% capabilities=${capabilityNames(m.capabilities).join(',')}${m.certSerial !== undefined ? ` certSerial=${m.certSerial}` : ''}`,
      };
    case 'delta':
    case 'snapshot': {
      const u = m.update;
      const head = u.head.head;
      const common = { lockId: head.lockId, version: head.version, digest: toHex(head.digest), issuedAt: head.issuedAt, keyId: toHex(head.keyId), certs: u.certs.length };
      if (u.type === 'delta') {
        const ops = u.ops.map((o) => (o.op === 'put' ? `put ${o.entry.credId}` : o.op === 'remove' ? `remove ${o.credId}` : o.op === 'removePartner' ? `removePartner ${o.partnerId}` : o.op === 'removeKey' ? `removeKey ${o.keyId}` : o.op));
        return { fields: { ...common, baseVersion: u.baseVersion, baseDigestPrefix: toHex(u.baseDigestPrefix), ops }, text: `delta ${head.lockId} v${u.baseVersion}→v${head.version}, ${u.ops.length} op(s): ${ops.join(', ')}; issuedAt=${unixIso(head.issuedAt)} certs=${u.certs.length}` };
      }
      return { fields: { ...common, entries: u.table.entries.size, keyPolicies: u.table.keyPolicies.size }, text: `snapshot ${head.lockId} v${head.version}, ${u.table.entries.size} entries, ${u.table.keyPolicies.size} key policies; issuedAt=${unixIso(head.issuedAt)} certs=${u.certs.length}` };
    }
    case 'receipt': {
      const b = m.body;
      return {
        fields: { lockId: b.lockId, version: b.version, digest: toHex(b.digest), nonce: toHex(b.nonce), lockTime: b.lockTime, auditSeq: b.auditSeq, auditHead: toHex(b.auditHead), bodyBytes: m.bodyBytes.length, signature: toHex(m.signature) },
        text: `receipt lockId=${b.lockId} version=${b.version} lockTime=${unixIso(b.lockTime)} auditSeq=${b.auditSeq} (body ${m.bodyBytes.length} B, signed)`,
      };
    }
    case 'signedTime': {
      const b = m.body;
      return {
        fields: { lockId: b.lockId, time: b.time, keyId: toHex(b.keyId), ...(b.nonce ? { nonce: toHex(b.nonce) } : {}), version: b.version, digest: toHex(b.digest), signature: toHex(m.signature) },
        text: `signedTime lockId=${b.lockId} time=${unixIso(b.time)} names v${b.version}${b.nonce ? ' (session-bound)' : ''}`,
      };
    }
    case 'floorReset': {
      const b = m.body;
      return {
        fields: { lockId: b.lockId, time: b.time, versionFloor: b.versionFloor, keyId: toHex(b.keyId), nonce: toHex(b.nonce), signature: toHex(m.signature) },
        text: `floorReset lockId=${b.lockId} time=${unixIso(b.time)} versionFloor=${b.versionFloor} (root-signed, session-bound)`,
      };
    }
    case 'unlockRequest':
      return { fields: { credId: m.credId }, text: `unlockRequest credId=${m.credId}` };
    case 'challenge': {
      const b = m.body;
      return { fields: { lockId: b.lockId, sessionId: toHex(b.sessionId), nonce: toHex(b.nonce), credId: b.credId, expiresAtMs: b.expiresAtMs }, text: `challenge lockId=${b.lockId} credId=${b.credId} expires=${new Date(b.expiresAtMs).toISOString()}` };
    }
    case 'unlockResponse':
      return { fields: { challengeBytes: m.challengeBytes.length, signature: toHex(m.signature) }, text: `unlockResponse (challenge ${m.challengeBytes.length} B, signature)` };
    case 'decision':
      return { fields: { granted: m.granted, reason: m.reason, auditSeq: m.auditSeq }, text: `decision ${m.granted ? 'granted' : 'refused'} reason=${m.reason} auditSeq=${m.auditSeq}` };
    case 'auditRequest':
      return { fields: { fromSeq: m.fromSeq }, text: `auditRequest fromSeq=${m.fromSeq}` };
    case 'auditExport': {
      const records = m.records.map((r) => auditRecordFromBytes(r));
      const events = records.map((r) => `${r.seq}:${r.event}${r.count !== undefined ? `×${r.count + 1}` : ''}`);
      const head = m.head ? { head: { lockId: m.head.body.lockId, seq: m.head.body.seq, hash: toHex(m.head.body.hash), oldestSeq: m.head.body.oldestSeq, signature: toHex(m.head.signature) } } : {};
      return {
        fields: { prevHash: toHex(m.prevHash), records: records.map((r) => ({ ...r })), ...head },
        text: `auditExport ${records.length} record(s)${events.length ? `: ${events.join(' ')}` : ''}${m.head ? ` (lock-signed through seq ${m.head.body.seq})` : ' (unsigned)'}`,
      };
    }
    case 'auditAnchor': {
      const b = m.body;
      return { fields: { lockId: b.lockId, seq: b.seq, hash: toHex(b.hash), keyId: toHex(b.keyId), signature: toHex(m.signature) }, text: `auditAnchor lockId=${b.lockId} anchored through seq ${b.seq} (authority-signed)` };
    }
    case 'auditAnchored':
      return { fields: { anchoredSeq: m.anchoredSeq }, text: `auditAnchored through seq ${m.anchoredSeq}` };
    case 'error':
      return { fields: { code: m.reason, detail: m.detail }, text: `error ${m.reason}${m.detail ? ` "${m.detail}"` : ''}` };
    case 'timeAck':
      return { fields: { lockTime: m.lockTime }, text: `timeAck lockTime=${unixIso(m.lockTime)}` };
    case 'receiptRequest':
      return { fields: {}, text: 'receiptRequest' };
    case 'batch':
    case 'batchReply': {
      const items = m.type === 'batch' ? m.messages : m.replies;
      const inner = items.map((b) => {
        try {
          return describeMessage(decodeMessage(b));
        } catch {
          return { fields: { undecodable: b.length }, text: `(${b.length} B, not a message)` };
        }
      });
      const types = items.map((b) => {
        try {
          return decodeMessage(b).type as string;
        } catch {
          return 'undecodable';
        }
      });
      return { fields: { items: inner.map((d, i) => ({ type: types[i], ...d.fields })) }, text: `${m.type} of ${items.length}: ${inner.map((d) => d.text).join(' | ')}` };
    }
  }
}

export interface MessageDecoded {
  direction: 'phone-to-lock' | 'lock-to-phone';
  messageId: number;
  bytes: number;
  type: string;
  fields: Record<string, unknown>;
  text: string;
  /** Frames it came in (over every connection, when resumed). */
  frames: number;
  malformed?: string;
  /** The reassembled message bytes (not enumerable: JSON output leaves them out; replay reads them). */
  readonly raw?: Buffer;
}

/** Attaches the reassembled bytes to a decoded message without putting them in its JSON. */
function withRaw(m: MessageDecoded, raw: Buffer): MessageDecoded {
  Object.defineProperty(m, 'raw', { value: raw, enumerable: false });
  return m;
}

/**
 * Reassembles messages from frames: one message in flight per connection and direction;
 * a resuming START (offset > 0) continues the matching partial message of any earlier
 * connection in the same direction (the link dropped, the phone came back).
 */
class LocksyncReassembly {
  /** Messages in progress by `${connection}/${direction}`. */
  private readonly partial = new Map<string, { direction: MessageDecoded['direction']; messageId: number; total: number; chunks: Buffer[]; held: number; frames: number }>();

  push(connection: string, direction: MessageDecoded['direction'], frame: DecodedFrame): { message?: MessageDecoded; note?: string } {
    const key = `${connection}/${direction}`;
    if (frame.type === 'start') {
      let state: { direction: MessageDecoded['direction']; messageId: number; total: number; chunks: Buffer[]; held: number; frames: number } | undefined;
      let note: string | undefined;
      const abandoned = this.partial.get(key);
      if (abandoned && frame.offset === 0) note = `message ${hex(abandoned.messageId)} was left at ${abandoned.held}/${abandoned.total} bytes`;
      if (frame.offset === 0) {
        state = { direction, messageId: frame.messageId, total: frame.total, chunks: [], held: 0, frames: 0 };
      } else {
        // Resumption: the receiver said it holds `offset` bytes; bytes after it are resent.
        const match = [...this.partial].find(([, p]) => p.direction === direction && p.messageId === frame.messageId && p.total === frame.total && frame.offset <= p.held);
        if (!match) {
          this.partial.delete(key);
          return { note: `resumes message ${hex(frame.messageId)} at byte ${frame.offset}: its first bytes are not in this capture` };
        }
        this.partial.delete(match[0]);
        state = match[1];
        state.chunks = [Buffer.concat(state.chunks).subarray(0, frame.offset)];
        state.held = frame.offset;
        note = `resumes message ${hex(frame.messageId)} at byte ${frame.offset}`;
      }
      this.partial.set(key, state);
      const r = this.append(key, state, Buffer.from(frame.payload));
      return note ? { ...r, note } : r;
    }
    if (frame.type === 'data') {
      const state = this.partial.get(key);
      if (!state) return { note: 'continuation of a message whose START is not in this capture' };
      return this.append(key, state, Buffer.from(frame.payload));
    }
    return {};
  }

  private append(key: string, state: { direction: MessageDecoded['direction']; messageId: number; total: number; chunks: Buffer[]; held: number; frames: number }, payload: Buffer): { message?: MessageDecoded; note?: string } {
    state.chunks.push(payload);
    state.held += payload.length;
    state.frames++;
    if (state.held < state.total) return {};
    this.partial.delete(key);
    const direction = state.direction;
    const bytes = Buffer.concat(state.chunks);
    const base = { direction, messageId: state.messageId, bytes: bytes.length, frames: state.frames };
    if (state.held > state.total) return { message: { ...base, type: 'overrun', fields: {}, text: `message ${hex(state.messageId)}: ${state.held} bytes arrived for a declared ${state.total}`, malformed: 'LENGTH_OVERRUN' } };
    try {
      const m = decodeMessage(bytes, { maxBytes: Math.max(bytes.length, 1) });
      const d = describeMessage(m);
      return { message: withRaw({ ...base, type: m.type, fields: d.fields, text: d.text }, bytes) };
    } catch (e) {
      let type = 'unknown';
      try {
        const v = decodeCbor(bytes, { maxBytes: bytes.length });
        if (v instanceof Map && typeof v.get(0) === 'number') type = `type ${String(v.get(0))}`;
      } catch {
        /* not CBOR at all */
      }
      return { message: withRaw({ ...base, type, fields: { hex: shortHex(bytes, 64) }, text: `undecodable message (${type}): ${(e as Error).message}`, malformed: (e as Error).message }, bytes) };
    }
  }
}

// ---------------------------------------------------------------------------------------
// HCI, ACL → L2CAP reassembly, and the per-packet record

export interface PacketRecord {
  n: number;
  /** Seconds since the first record. */
  t: number;
  /** Record timestamp (ISO), null when out of range. */
  time: string | null;
  direction: CaptureDirection;
  adapter?: number;
  hci: Record<string, unknown>;
  l2cap?: Record<string, unknown>;
  att?: { opcode: number; name: string } & Record<string, unknown>;
  signalling?: Record<string, unknown>;
  smp?: Record<string, unknown>;
  locksync?: { characteristic: string; frame?: FrameDecoded; message?: MessageDecoded; info?: Record<string, unknown>; note?: string };
  /** Why this packet (or the PDU it completes) is not what its headers say. */
  malformed?: string;
  /** The packet's lines in the text output (the first is the packet, the others indented). */
  lines: string[];
}

interface Connection {
  /** Unique per connection (handles are reused after a disconnection). */
  id: string;
  gatt: GattMap;
  /** Last request per requesting direction. */
  pending: Map<CaptureDirection, PendingRequest>;
  /** L2CAP PDUs being reassembled from ACL fragments, per direction. */
  fragments: Map<CaptureDirection, { need: number; parts: Buffer[]; have: number }>;
}

const other = (d: CaptureDirection): CaptureDirection => (d === 'host-to-controller' ? 'controller-to-host' : 'host-to-controller');

export interface CaptureSummary {
  file?: string;
  datalink: number;
  datalinkName: string;
  packets: number;
  durationS: number;
  commands: number;
  events: number;
  aclOut: number;
  aclIn: number;
  att: Record<string, number>;
  locksyncFrames: number;
  locksyncMessages: Record<string, number>;
  malformed: number;
}

/** Decodes a whole capture (throws BtsnoopFormatError when the file cannot be read whole). */
export function decodeCapture(buf: Buffer): { records: PacketRecord[]; summary: CaptureSummary } {
  const capture = readBtsnoop(buf);
  const connections = new Map<string, Connection>();
  const reassembly = new LocksyncReassembly();
  let opened = 0;
  // A phone that knows the lock skips discovery (cached handles, SPEC §13.1): a connection
  // inherits what earlier ones learnt of the same database — the adapter's own when it is
  // the peripheral, the peer's when it is the central.
  const learnt = new Map<string, GattMap>();
  const databaseOf = new Map<string, string>();
  const connection = (key: string): Connection => {
    let c = connections.get(key);
    if (!c) {
      const db = databaseOf.get(key);
      let gatt = db !== undefined ? learnt.get(db) : undefined;
      if (gatt === undefined) {
        gatt = new GattMap();
        if (db !== undefined) learnt.set(db, gatt);
      }
      c = { id: `${key}#${++opened}`, gatt, pending: new Map(), fragments: new Map() };
      connections.set(key, c);
    }
    return c;
  };
  const opening = (key: string, database: string): void => void databaseOf.set(key, database);
  const summary: CaptureSummary = { datalink: capture.datalink, datalinkName: capture.datalinkName, packets: capture.packets.length, durationS: 0, commands: 0, events: 0, aclOut: 0, aclIn: 0, att: {}, locksyncFrames: 0, locksyncMessages: {}, malformed: 0 };
  const records: PacketRecord[] = [];
  for (const p of capture.packets) {
    const record = decodePacket(p, { connection, connections, reassembly, opening });
    if (p.packet[0] === H4_COMMAND && !p.monitor) summary.commands++;
    else if (p.packet[0] === H4_EVENT && !p.monitor) summary.events++;
    else if (p.packet[0] === H4_ACL && !p.monitor) {
      if (p.direction === 'host-to-controller') summary.aclOut++;
      else summary.aclIn++;
    }
    if (record.att) summary.att[record.att.name] = (summary.att[record.att.name] ?? 0) + 1;
    if (record.locksync?.frame) summary.locksyncFrames++;
    const m = record.locksync?.message;
    if (m) summary.locksyncMessages[m.type] = (summary.locksyncMessages[m.type] ?? 0) + 1;
    if (record.malformed || m?.malformed) summary.malformed++;
    records.push(record);
  }
  summary.durationS = capture.packets.length > 0 ? capture.packets[capture.packets.length - 1]!.offsetUs / 1e6 : 0;
  return { records, summary };
}

interface DecodeContext {
  connection: (key: string) => Connection;
  connections: Map<string, Connection>;
  reassembly: LocksyncReassembly;
  /** A connection completed: whose attribute database its handles index. */
  opening: (key: string, database: string) => void;
}

function decodePacket(p: BtsnoopPacket, ctx: DecodeContext): PacketRecord {
  const arrow = p.direction === 'host-to-controller' ? '>' : '<';
  const stamp = `${(p.offsetUs / 1e6).toFixed(6).padStart(12)} ${arrow}`;
  const ms = Number(p.unixUs / 1000n);
  // A record's timestamp is whatever the writer put there: out of Date's range it is shown as null.
  const time = Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : null;
  const record: PacketRecord = { n: p.n, t: p.offsetUs / 1e6, time, direction: p.direction, hci: {}, lines: [] };
  if (p.adapter !== undefined) record.adapter = p.adapter;
  const adapterKey = p.adapter ?? 0;
  if (p.monitor) {
    record.hci = { type: 'monitor', opcode: p.monitor.opcode, name: p.monitor.name, ...(p.monitor.text !== undefined ? { text: p.monitor.text } : {}) };
    record.lines.push(`${stamp} MONITOR hci${adapterKey} ${p.monitor.name}${p.monitor.text ? `: ${p.monitor.text}` : ''}`);
    return record;
  }
  const malformed = (why: string): void => {
    record.malformed = record.malformed ? `${record.malformed}; ${why}` : why;
  };
  const packet = p.packet;
  if (p.originalLength > packet.length) malformed(`capture kept ${packet.length} of ${p.originalLength} bytes (snapshot length)`);
  const parsed = parseH4(packet);
  let line: string;
  switch (parsed.type) {
    case 'command': {
      const declared = packet.length >= 4 ? packet[3]! : -1;
      if (declared !== packet.length - 4) malformed(`HCI command declares ${declared} parameter bytes, has ${packet.length - 4}`);
      record.hci = { type: 'command', opcode: parsed.opcode, name: opcodeName(parsed.opcode), parameters: toHex(parsed.params) };
      line = `CMD ${opcodeName(parsed.opcode)} (${hex(parsed.opcode)}) plen=${parsed.params.length}`;
      break;
    }
    case 'event': {
      const declared = packet[2]!;
      if (declared !== packet.length - 3) malformed(`HCI event declares ${declared} parameter bytes, has ${packet.length - 3}`);
      const d = describeEvent(parsed.code, parsed.params);
      record.hci = { type: 'event', code: parsed.code, ...d.fields };
      line = `EVT ${d.text}`;
      // A connection starts or ends: its GATT handles and reassembly state do too.
      if (d.connectionHandle !== undefined) {
        const key = `${adapterKey}:${d.connectionHandle}`;
        ctx.connections.delete(key);
        const f = d.fields as { peer?: string; role?: string };
        if (typeof f.peer === 'string') ctx.opening(key, f.role === 'peripheral' ? String(adapterKey) : `${adapterKey}>${f.peer}`);
      }
      break;
    }
    case 'acl': {
      const declared = packet.readUInt16LE(3);
      if (declared !== packet.length - 5) malformed(`ACL header declares ${declared} bytes, has ${packet.length - 5}`);
      record.hci = { type: 'acl', handle: parsed.handle, pb: parsed.pb, bc: parsed.bc, length: parsed.data.length };
      line = `ACL handle=${hex(parsed.handle)} pb=${parsed.pb.toString(2).padStart(2, '0')} len=${parsed.data.length}`;
      const conn = ctx.connection(`${adapterKey}:${parsed.handle}`);
      const l2cap = reassembleL2cap(conn, p.direction, parsed.pb, parsed.data);
      if (l2cap.dropped) malformed(l2cap.dropped);
      if (l2cap.error) {
        malformed(l2cap.error);
        line += ` [${l2cap.error}]`;
      } else if (!l2cap.pdu) {
        line += ` (L2CAP fragment, ${l2cap.have}/${l2cap.need} bytes)`;
      } else {
        const continued = l2cap.fragments > 1;
        const detail = decodeL2cap(l2cap.cid, l2cap.pdu, p.direction, conn, ctx.reassembly, record);
        if (continued) {
          record.lines.push(`${stamp} ${line} (last of ${l2cap.fragments} fragments)`);
          line = `${' '.repeat(stamp.length)}  └ L2CAP ${l2cap.pdu.length + 4} bytes reassembled: ${detail[0]}`;
          record.lines.push(line, ...detail.slice(1));
          if (record.malformed) record.lines[0] += ` [malformed: ${record.malformed}]`;
          return record;
        }
        line += ` ${detail[0]}`;
        if (record.malformed) line += ` [malformed: ${record.malformed}]`;
        record.lines.push(`${stamp} ${line}`, ...detail.slice(1));
        return record;
      }
      break;
    }
    default:
      record.hci = { type: 'other', h4Type: packet[0] ?? null, length: packet.length };
      line = `H4 type ${hex(packet[0] ?? 0, 2)} len=${packet.length}`;
  }
  if (record.malformed) line += ` [malformed: ${record.malformed}]`;
  record.lines.push(`${stamp} ${line}`);
  return record;
}

function describeEvent(code: number, p: Buffer): { fields: Record<string, unknown>; text: string; connectionHandle?: number } {
  const name = eventName(code);
  if (code === EventCode.COMMAND_COMPLETE && p.length >= 3) {
    const op = p.readUInt16LE(1);
    const status = p.length >= 4 ? p[3]! : undefined;
    return { fields: { name, opcode: op, command: opcodeName(op), ...(status !== undefined ? { status, statusName: statusName(status) } : {}) }, text: `Command Complete: ${opcodeName(op)} (${hex(op)})${status !== undefined ? ` status=${statusName(status)}` : ''}` };
  }
  if (code === EventCode.COMMAND_STATUS && p.length >= 4) {
    const op = p.readUInt16LE(2);
    return { fields: { name, opcode: op, command: opcodeName(op), status: p[0]!, statusName: statusName(p[0]!) }, text: `Command Status: ${opcodeName(op)} (${hex(op)}) status=${statusName(p[0]!)}` };
  }
  if (code === EventCode.DISCONNECTION_COMPLETE && p.length >= 4) {
    const handle = p.readUInt16LE(1);
    return { fields: { name, status: p[0]!, handle, reason: p[3]!, reasonName: statusName(p[3]!) }, text: `Disconnection Complete handle=${hex(handle)} reason=${hex(p[3]!, 2)} (${statusName(p[3]!)})`, connectionHandle: handle };
  }
  if (code === EventCode.NUMBER_OF_COMPLETED_PACKETS && p.length >= 1) {
    const entries: { handle: number; packets: number }[] = [];
    for (let i = 0; i < p[0]! && 5 + i * 4 <= p.length; i++) entries.push({ handle: p.readUInt16LE(1 + i * 4), packets: p.readUInt16LE(3 + i * 4) });
    return { fields: { name, entries }, text: `Number Of Completed Packets ${entries.map((e) => `${hex(e.handle)}:${e.packets}`).join(' ')}` };
  }
  if (code === EventCode.LE_META && p.length >= 1) {
    const sub = p[0]!;
    const subName = eventName(code, sub);
    if ((sub === 0x01 || sub === 0x0a) && p.length >= 11) {
      const handle = p.readUInt16LE(2);
      const role = p[4] === 0 ? 'central' : 'peripheral';
      const peer = wireToAddress(p.subarray(6, 12));
      // Peer_Address_Type: 0 public, 1 random (a phone's resolvable private address), 2/3 resolved identities.
      const peerAddressType = p[5]!;
      const typeText = peerAddressType === 0 ? '' : ` (${['public', 'random', 'public identity', 'random identity'][peerAddressType] ?? `type ${peerAddressType}`})`;
      const fields = { name: subName, subevent: sub, status: p[1]!, statusName: statusName(p[1]!), handle, role, peer, peerAddressType };
      return { fields, text: `${subName} status=${statusName(p[1]!)} handle=${hex(handle)} role=${role} peer=${peer}${typeText}`, ...(p[1] === 0 ? { connectionHandle: handle } : {}) };
    }
    if (sub === 0x07 && p.length >= 9) {
      const handle = p.readUInt16LE(1);
      return { fields: { name: subName, subevent: sub, handle, maxTxOctets: p.readUInt16LE(3), maxRxOctets: p.readUInt16LE(7) }, text: `${subName} handle=${hex(handle)} tx=${p.readUInt16LE(3)} rx=${p.readUInt16LE(7)}` };
    }
    if (sub === 0x03 && p.length >= 10) {
      const handle = p.readUInt16LE(2);
      const interval = p.readUInt16LE(4);
      return { fields: { name: subName, subevent: sub, status: p[1]!, handle, interval, latency: p.readUInt16LE(6), timeout: p.readUInt16LE(8) }, text: `${subName} handle=${hex(handle)} interval=${(interval * 1.25).toFixed(2)} ms latency=${p.readUInt16LE(6)} timeout=${p.readUInt16LE(8) * 10} ms` };
    }
    return { fields: { name: subName, subevent: sub }, text: subName };
  }
  return { fields: { name }, text: name };
}

/** ACL fragments → whole L2CAP PDUs (Vol 3 Part A §3; pb 00/10 start, 01 continue). */
function reassembleL2cap(conn: Connection, direction: CaptureDirection, pb: number, data: Buffer): { pdu?: Buffer; cid: number; fragments: number; have: number; need: number; error?: string; dropped?: string } {
  const frag = conn.fragments.get(direction);
  let dropped: string | undefined;
  if (pb === 0b01) {
    if (!frag) return { cid: 0, fragments: 0, have: 0, need: 0, error: 'continuation fragment without a start' };
    frag.parts.push(data);
    frag.have += data.length;
  } else {
    const abandoned = frag ? `an L2CAP PDU was left at ${frag.have}/${frag.need} bytes when this one started` : undefined;
    conn.fragments.delete(direction);
    if (data.length < 4) return { cid: 0, fragments: 1, have: data.length, need: 4, error: `L2CAP start fragment of ${data.length} bytes (header is 4)` };
    conn.fragments.set(direction, { need: data.readUInt16LE(0) + 4, parts: [data], have: data.length });
    if (abandoned) dropped = abandoned;
  }
  const cur = conn.fragments.get(direction)!;
  const note = dropped ? { dropped } : {};
  if (cur.have < cur.need) return { cid: 0, fragments: cur.parts.length, have: cur.have, need: cur.need, ...note };
  conn.fragments.delete(direction);
  const whole = Buffer.concat(cur.parts);
  if (cur.have > cur.need) return { cid: whole.readUInt16LE(2), fragments: cur.parts.length, have: cur.have, need: cur.need, error: `L2CAP length ${cur.need - 4}, ${cur.have - 4} bytes arrived`, ...note };
  return { pdu: whole.subarray(4), cid: whole.readUInt16LE(2), fragments: cur.parts.length, have: cur.have, need: cur.need, ...note };
}

/** Decodes one whole L2CAP PDU; returns its text (first line) and indented lines under it. */
function decodeL2cap(cid: number, pdu: Buffer, direction: CaptureDirection, conn: Connection, reassembly: LocksyncReassembly, record: PacketRecord): string[] {
  const indent = ' '.repeat(16);
  record.l2cap = { cid, length: pdu.length };
  const malformed = (why: string): void => {
    record.malformed = record.malformed ? `${record.malformed}; ${why}` : why;
  };
  try {
    if (cid === 0x0004) {
      const pending = conn.pending.get(other(direction));
      const att = decodeAtt(pdu, pending, conn.gatt);
      record.att = { opcode: att.opcode, name: att.name, ...att.fields };
      // Requests are remembered for their responses; a response or error clears it.
      const op = att.opcode;
      const isRequest = [0x02, 0x04, 0x06, 0x08, 0x0a, 0x0c, 0x0e, 0x10, 0x12, 0x16, 0x18, 0x20].includes(op);
      if (isRequest) {
        const req: PendingRequest = { opcode: op };
        if (att.handle !== undefined) req.handle = att.handle;
        if (op === 0x08 || op === 0x10) req.type = att.fields['type'] as string;
        conn.pending.set(direction, req);
      } else if ([0x01, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x0f, 0x11, 0x13, 0x17, 0x19, 0x21].includes(op)) {
        conn.pending.delete(other(direction));
      }
      const lines = [`ATT ${att.text}`];
      const handle = att.handle;
      const role = handle !== undefined ? conn.gatt.role(handle) : undefined;
      if (role && att.value && (op === 0x52 || op === 0x12 || op === 0x1b || op === 0x1d || op === 0x0b)) {
        lines.push(...decodeLocksync(role, att.value, reassembly, record, indent, conn.id));
      }
      return lines;
    }
    if (cid === 0x0005) {
      const s = decodeSignalling(pdu);
      record.signalling = s.fields;
      return [`L2CAP LE signalling ${s.text}`];
    }
    if (cid === 0x0006) {
      const code = pdu[0];
      const name = code === undefined ? 'empty' : (SMP_CODES[code] ?? `code ${hex(code, 2)}`);
      record.smp = { code: code ?? null, name };
      return [`SMP ${name} (${pdu.length} bytes)`];
    }
    if (cid >= 0x0040 && cid <= 0x007f) return [`L2CAP dynamic channel cid=${hex(cid)} (LE credit-based K-frame, ${pdu.length} bytes)`];
    return [`L2CAP cid=${hex(cid)} (${pdu.length} bytes)`];
  } catch (e) {
    if (!(e instanceof Malformed)) throw e;
    malformed(e.message);
    if (cid === 0x0004 && pdu.length > 0) record.att = { opcode: pdu[0]!, name: attOpcodeName(pdu[0]!) };
    const name = cid === 0x0004 && pdu.length > 0 ? `ATT ${attOpcodeName(pdu[0]!)}` : `L2CAP cid=${hex(cid)}`;
    return [`${name} (${pdu.length} bytes)`];
  }
}

function decodeLocksync(role: LocksyncRole, value: Buffer, reassembly: LocksyncReassembly, record: PacketRecord, indent: string, connection: string): string[] {
  const characteristic = role === 'rx' ? 'locksync RX' : role === 'tx' ? 'locksync TX' : 'locksync INFO';
  if (role === 'info') {
    try {
      const info = decodeLockInfo(value);
      record.locksync = { characteristic, info: { ...info, capabilities: capabilityNames(info.capabilities) } };
      return [`${indent}└ locksync lockInfo lockId=${info.lockId} protocol=${info.protocolVersion} version=${info.version} capabilities=${capabilityNames(info.capabilities).join(',')}`];
    } catch (e) {
      record.locksync = { characteristic, note: (e as Error).message };
      record.malformed = `locksync INFO: ${(e as Error).message}`;
      return [`${indent}└ locksync INFO value is not a lockInfo: ${(e as Error).message}`];
    }
  }
  let frame: DecodedFrame;
  try {
    frame = decodeFrame(value);
  } catch (e) {
    record.locksync = { characteristic, note: (e as Error).message };
    record.malformed = `locksync frame: ${(e as Error).message}`;
    return [`${indent}└ locksync frame malformed: ${(e as Error).message}`];
  }
  const described = describeFrame(frame);
  record.locksync = { characteristic, frame: described };
  const lines = [`${indent}└ locksync ${described.text}`];
  // Data frames travel in the sender's direction: RX carries phone → lock, TX lock → phone.
  const direction = role === 'rx' ? 'phone-to-lock' : 'lock-to-phone';
  const r = reassembly.push(connection, direction, frame);
  if (r.note) {
    record.locksync.note = r.note;
    lines.push(`${indent}  (${r.note})`);
  }
  if (r.message) {
    record.locksync.message = r.message;
    if (r.message.malformed) record.malformed = `locksync message: ${r.message.malformed}`;
    lines.push(`${indent}  ═ ${direction === 'phone-to-lock' ? 'phone → lock' : 'lock → phone'} message ${hex(r.message.messageId)} (${r.message.bytes} B in ${r.message.frames} frame${r.message.frames === 1 ? '' : 's'}): ${r.message.text}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------
// Rendering and the command

export function summaryLines(s: CaptureSummary): string[] {
  const lines = [
    `-- ${s.packets} packets over ${s.durationS.toFixed(3)} s (${s.datalinkName}): ${s.commands} commands, ${s.events} events, ${s.aclOut} ACL host→controller, ${s.aclIn} ACL controller→host`,
  ];
  for (const [name, count] of Object.entries(s.att).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) lines.push(`-- ATT ${name}: ${count}`);
  if (s.locksyncFrames > 0) {
    const messages = Object.entries(s.locksyncMessages).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    lines.push(`-- locksync: ${s.locksyncFrames} frames, ${messages.reduce((n, [, c]) => n + c, 0)} messages (${messages.map(([t, c]) => `${t} ${c}`).join(', ')})`);
  }
  if (s.malformed > 0) lines.push(`-- MALFORMED: ${s.malformed} packet(s) marked [malformed] above`);
  return lines;
}

/** Text form: every packet's lines, then the totals. */
export function summarizeBtsnoop(buf: Buffer): string[] {
  const { records, summary } = decodeCapture(buf);
  return [...records.flatMap((r) => r.lines), ...summaryLines(summary)];
}

export interface TraceShowOptions {
  json?: boolean;
}

export interface TraceIo {
  stdout: (line: string) => void;
}

/** A capture file's bytes, or BAD_STATE naming why it cannot be read (trace show, replay). */
export function readCaptureFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError('BAD_STATE', `cannot read capture ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`, 'pass a btsnoop file (the radio writes them with --capture DIR; Android as btsnoop_hci.log)');
  }
}

/**
 * `locksync trace show FILE [--json]`. A file that is missing, not a btsnoop capture, of an
 * unsupported datalink, or truncated/malformed as a whole is a BAD_STATE CliError, raised
 * before anything is printed.
 */
export function traceShow(file: string, opts: TraceShowOptions = {}, io: TraceIo = { stdout: (l) => process.stdout.write(`${l}\n`) }): number {
  const buf = readCaptureFile(file);
  let decoded: ReturnType<typeof decodeCapture>;
  try {
    decoded = decodeCapture(buf);
  } catch (e) {
    if (!(e instanceof BtsnoopFormatError)) throw e;
    const todo =
      e.kind === 'truncated'
        ? 'the capture was cut short (copied while being written, or a full disk): capture again, or stop the radio before reading it'
        : e.kind === 'unsupported'
          ? 'convert it to a btsnoop H4 capture (Wireshark: File → Export, or btmon -w)'
          : 'pass a btsnoop capture (datalink 1001, 1002 or 2001)';
    throw new CliError('BAD_STATE', `${file} is ${e.kind === 'truncated' ? 'a truncated btsnoop capture' : e.kind === 'malformed' ? 'a malformed btsnoop capture' : 'not a capture trace show reads'}: ${e.message}`, todo);
  }
  const { records, summary } = decoded;
  if (opts.json) {
    for (const r of records) {
      const { lines, ...rest } = r;
      io.stdout(JSON.stringify({ kind: 'packet', ...rest, text: lines.map((l) => l.trim()).join(' | ') }));
    }
    io.stdout(JSON.stringify({ kind: 'summary', file, ...summary }));
  } else {
    for (const r of records) for (const l of r.lines) io.stdout(l);
    for (const l of summaryLines(summary)) io.stdout(l);
  }
  return 0;
}

/** `locksync trace show`: a commander subcommand with described options. */
export function registerTraceCommands(program: Command): void {
  const trace = program.command('trace').description('btsnoop captures: HCI, L2CAP, ATT, locksync frames and messages');
  trace
    .command('show')
    .description('decode a btsnoop capture (the radio\'s, Android\'s btsnoop_hci.log, btmon -w): one line per packet with ATT fields, locksync framing headers and reassembled CBOR messages, then totals')
    .argument('<file>', 'btsnoop capture: datalink 1002 (H4; the radio\'s and Android\'s), 1001 (H1) or 2001 (btmon)')
    .option('--json', 'JSON Lines: one {"kind":"packet",…} object per record (hci, l2cap, att, signalling, locksync frame/message fields), then one {"kind":"summary",…}')
    .addHelpText('after', '\nExit codes: 0 decoded; 16 BAD_STATE when the file is missing, not btsnoop, of another datalink, or truncated/malformed as a whole (nothing is printed then).\nPackets that are malformed inside a readable file are marked [malformed: why] (JSON: "malformed") and counted in the totals.')
    .action((file: string, opts: { json?: boolean }) => {
      try {
        process.exitCode = traceShow(file, opts.json ? { json: true } : {});
      } catch (e) {
        process.exitCode = reportFailure(e);
      }
    });
}
