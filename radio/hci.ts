// HCI wire format (Bluetooth Core Vol 4 Part E) and H4 framing (Part A): packet types,
// opcodes, event codes, status codes, a stream framer and event builders.

export const H4_COMMAND = 0x01;
export const H4_ACL = 0x02;
export const H4_SCO = 0x03;
export const H4_EVENT = 0x04;
export const H4_ISO = 0x05;

/** HCI status / error codes used by this controller. */
export const Status = {
  SUCCESS: 0x00,
  UNKNOWN_COMMAND: 0x01,
  UNKNOWN_CONNECTION_ID: 0x02,
  HARDWARE_FAILURE: 0x03,
  PAGE_TIMEOUT: 0x04,
  MEMORY_CAPACITY_EXCEEDED: 0x07,
  CONNECTION_TIMEOUT: 0x08,
  CONNECTION_LIMIT_EXCEEDED: 0x09,
  CONNECTION_ALREADY_EXISTS: 0x0b,
  COMMAND_DISALLOWED: 0x0c,
  UNSUPPORTED_FEATURE: 0x11,
  INVALID_PARAMETERS: 0x12,
  REMOTE_USER_TERMINATED: 0x13,
  REMOTE_LOW_RESOURCES: 0x14,
  REMOTE_POWER_OFF: 0x15,
  LOCAL_HOST_TERMINATED: 0x16,
  UNSUPPORTED_REMOTE_FEATURE: 0x1a,
  INVALID_LL_PARAMETERS: 0x1e,
  UNSPECIFIED_ERROR: 0x1f,
  LMP_RESPONSE_TIMEOUT: 0x22,
  INSTANT_PASSED: 0x28,
  PAIRING_WITH_UNIT_KEY_NOT_SUPPORTED: 0x29,
  UNACCEPTABLE_CONNECTION_PARAMETERS: 0x3b,
  ADVERTISING_TIMEOUT: 0x3c,
  MIC_FAILURE: 0x3d,
  CONNECTION_FAILED_TO_ESTABLISH: 0x3e,
  UNKNOWN_ADVERTISING_ID: 0x42,
  LIMIT_REACHED: 0x43,
  PACKET_TOO_LONG: 0x45,
} as const;

export const EventCode = {
  DISCONNECTION_COMPLETE: 0x05,
  ENCRYPTION_CHANGE: 0x08,
  READ_REMOTE_VERSION_COMPLETE: 0x0c,
  COMMAND_COMPLETE: 0x0e,
  COMMAND_STATUS: 0x0f,
  HARDWARE_ERROR: 0x10,
  NUMBER_OF_COMPLETED_PACKETS: 0x13,
  DATA_BUFFER_OVERFLOW: 0x1a,
  LE_META: 0x3e,
} as const;

export const LeSubevent = {
  CONNECTION_COMPLETE: 0x01,
  ADVERTISING_REPORT: 0x02,
  CONNECTION_UPDATE_COMPLETE: 0x03,
  READ_REMOTE_FEATURES_COMPLETE: 0x04,
  REMOTE_CONNECTION_PARAMETER_REQUEST: 0x06,
  DATA_LENGTH_CHANGE: 0x07,
  ENHANCED_CONNECTION_COMPLETE: 0x0a,
  PHY_UPDATE_COMPLETE: 0x0c,
  EXTENDED_ADVERTISING_REPORT: 0x0d,
  SCAN_TIMEOUT: 0x11,
  ADVERTISING_SET_TERMINATED: 0x12,
  SCAN_REQUEST_RECEIVED: 0x13,
  CHANNEL_SELECTION_ALGORITHM: 0x14,
} as const;

export function opcode(ogf: number, ocf: number): number {
  return ((ogf & 0x3f) << 10) | (ocf & 0x3ff);
}

/** Opcodes this controller implements, with their names (also used by the trace printer). */
export const Op = {
  DISCONNECT: 0x0406,
  READ_REMOTE_VERSION: 0x041d,
  SET_EVENT_MASK: 0x0c01,
  RESET: 0x0c03,
  SET_EVENT_FILTER: 0x0c05,
  READ_TX_POWER_LEVEL: 0x0c2d,
  SET_EVENT_MASK_PAGE_2: 0x0c63,
  READ_LE_HOST_SUPPORTED: 0x0c6c,
  WRITE_LE_HOST_SUPPORTED: 0x0c6d,
  READ_LOCAL_VERSION: 0x1001,
  READ_LOCAL_COMMANDS: 0x1002,
  READ_LOCAL_FEATURES: 0x1003,
  READ_BUFFER_SIZE: 0x1005,
  READ_BD_ADDR: 0x1009,
  READ_RSSI: 0x1405,
  LE_SET_EVENT_MASK: 0x2001,
  LE_READ_BUFFER_SIZE: 0x2002,
  LE_READ_LOCAL_FEATURES: 0x2003,
  LE_SET_RANDOM_ADDRESS: 0x2005,
  LE_SET_ADV_PARAMS: 0x2006,
  LE_READ_ADV_TX_POWER: 0x2007,
  LE_SET_ADV_DATA: 0x2008,
  LE_SET_SCAN_RSP_DATA: 0x2009,
  LE_SET_ADV_ENABLE: 0x200a,
  LE_SET_SCAN_PARAMS: 0x200b,
  LE_SET_SCAN_ENABLE: 0x200c,
  LE_CREATE_CONNECTION: 0x200d,
  LE_CREATE_CONNECTION_CANCEL: 0x200e,
  LE_READ_ACCEPT_LIST_SIZE: 0x200f,
  LE_CLEAR_ACCEPT_LIST: 0x2010,
  LE_CONNECTION_UPDATE: 0x2013,
  LE_READ_REMOTE_FEATURES: 0x2016,
  LE_RAND: 0x2018,
  LE_START_ENCRYPTION: 0x2019,
  LE_LTK_REPLY: 0x201a,
  LE_LTK_NEGATIVE_REPLY: 0x201b,
  LE_READ_SUPPORTED_STATES: 0x201c,
  LE_REMOTE_CONN_PARAM_REPLY: 0x2020,
  LE_REMOTE_CONN_PARAM_NEGATIVE_REPLY: 0x2021,
  LE_SET_DATA_LENGTH: 0x2022,
  LE_READ_SUGGESTED_DATA_LENGTH: 0x2023,
  LE_WRITE_SUGGESTED_DATA_LENGTH: 0x2024,
  LE_READ_MAX_DATA_LENGTH: 0x202f,
  LE_READ_PHY: 0x2030,
  LE_SET_DEFAULT_PHY: 0x2031,
  LE_SET_PHY: 0x2032,
  LE_SET_ADV_SET_RANDOM_ADDRESS: 0x2035,
  LE_SET_EXT_ADV_PARAMS: 0x2036,
  LE_SET_EXT_ADV_DATA: 0x2037,
  LE_SET_EXT_SCAN_RSP_DATA: 0x2038,
  LE_SET_EXT_ADV_ENABLE: 0x2039,
  LE_READ_MAX_ADV_DATA_LENGTH: 0x203a,
  LE_READ_NUM_ADV_SETS: 0x203b,
  LE_REMOVE_ADV_SET: 0x203c,
  LE_CLEAR_ADV_SETS: 0x203d,
  LE_SET_EXT_SCAN_PARAMS: 0x2041,
  LE_SET_EXT_SCAN_ENABLE: 0x2042,
  LE_EXT_CREATE_CONNECTION: 0x2043,
  VENDOR_WRITE_BD_ADDR: 0xfc06,
} as const;

const OPCODE_NAMES: Record<number, string> = {
  0x0406: 'Disconnect',
  0x041d: 'Read Remote Version Information',
  0x0c01: 'Set Event Mask',
  0x0c03: 'Reset',
  0x0c05: 'Set Event Filter',
  0x0c2d: 'Read Transmit Power Level',
  0x0c63: 'Set Event Mask Page 2',
  0x0c6c: 'Read LE Host Supported',
  0x0c6d: 'Write LE Host Supported',
  0x1001: 'Read Local Version Information',
  0x1002: 'Read Local Supported Commands',
  0x1003: 'Read Local Supported Features',
  0x1005: 'Read Buffer Size',
  0x1009: 'Read BD_ADDR',
  0x1405: 'Read RSSI',
  0x2001: 'LE Set Event Mask',
  0x2002: 'LE Read Buffer Size',
  0x2003: 'LE Read Local Supported Features',
  0x2005: 'LE Set Random Address',
  0x2006: 'LE Set Advertising Parameters',
  0x2007: 'LE Read Advertising Channel Tx Power',
  0x2008: 'LE Set Advertising Data',
  0x2009: 'LE Set Scan Response Data',
  0x200a: 'LE Set Advertising Enable',
  0x200b: 'LE Set Scan Parameters',
  0x200c: 'LE Set Scan Enable',
  0x200d: 'LE Create Connection',
  0x200e: 'LE Create Connection Cancel',
  0x200f: 'LE Read Filter Accept List Size',
  0x2010: 'LE Clear Filter Accept List',
  0x2013: 'LE Connection Update',
  0x2016: 'LE Read Remote Features',
  0x2018: 'LE Rand',
  0x2019: 'LE Enable Encryption',
  0x201a: 'LE Long Term Key Request Reply',
  0x201b: 'LE Long Term Key Request Negative Reply',
  0x201c: 'LE Read Supported States',
  0x2020: 'LE Remote Connection Parameter Request Reply',
  0x2021: 'LE Remote Connection Parameter Request Negative Reply',
  0x2022: 'LE Set Data Length',
  0x2023: 'LE Read Suggested Default Data Length',
  0x2024: 'LE Write Suggested Default Data Length',
  0x202f: 'LE Read Maximum Data Length',
  0x2030: 'LE Read PHY',
  0x2031: 'LE Set Default PHY',
  0x2032: 'LE Set PHY',
  0x2035: 'LE Set Advertising Set Random Address',
  0x2036: 'LE Set Extended Advertising Parameters',
  0x2037: 'LE Set Extended Advertising Data',
  0x2038: 'LE Set Extended Scan Response Data',
  0x2039: 'LE Set Extended Advertising Enable',
  0x203a: 'LE Read Maximum Advertising Data Length',
  0x203b: 'LE Read Number of Supported Advertising Sets',
  0x203c: 'LE Remove Advertising Set',
  0x203d: 'LE Clear Advertising Sets',
  0x2041: 'LE Set Extended Scan Parameters',
  0x2042: 'LE Set Extended Scan Enable',
  0x2043: 'LE Extended Create Connection',
  0xfc06: 'Vendor Write BD_ADDR (Linux Foundation)',
};

export function opcodeName(op: number): string {
  return OPCODE_NAMES[op] ?? `Unknown opcode 0x${op.toString(16).padStart(4, '0')}`;
}

const EVENT_NAMES: Record<number, string> = {
  0x05: 'Disconnection Complete',
  0x08: 'Encryption Change',
  0x0c: 'Read Remote Version Information Complete',
  0x0e: 'Command Complete',
  0x0f: 'Command Status',
  0x10: 'Hardware Error',
  0x13: 'Number Of Completed Packets',
  0x1a: 'Data Buffer Overflow',
  0x3e: 'LE Meta',
};

const LE_SUBEVENT_NAMES: Record<number, string> = {
  0x01: 'LE Connection Complete',
  0x02: 'LE Advertising Report',
  0x03: 'LE Connection Update Complete',
  0x04: 'LE Read Remote Features Complete',
  0x06: 'LE Remote Connection Parameter Request',
  0x07: 'LE Data Length Change',
  0x0a: 'LE Enhanced Connection Complete',
  0x0c: 'LE PHY Update Complete',
  0x0d: 'LE Extended Advertising Report',
  0x11: 'LE Scan Timeout',
  0x12: 'LE Advertising Set Terminated',
  0x13: 'LE Scan Request Received',
  0x14: 'LE Channel Selection Algorithm',
};

export function eventName(code: number, subevent?: number): string {
  if (code === EventCode.LE_META && subevent !== undefined) {
    return LE_SUBEVENT_NAMES[subevent] ?? `LE Meta subevent 0x${subevent.toString(16)}`;
  }
  return EVENT_NAMES[code] ?? `Event 0x${code.toString(16).padStart(2, '0')}`;
}

const STATUS_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Status).map(([name, code]) => [code, name.toLowerCase().replace(/_/g, ' ')]),
);

export function statusName(status: number): string {
  return STATUS_NAMES[status] ?? `status 0x${status.toString(16).padStart(2, '0')}`;
}

export type HciPacket =
  | { type: 'command'; opcode: number; params: Buffer; raw: Buffer }
  | { type: 'acl'; handle: number; pb: number; bc: number; data: Buffer; raw: Buffer }
  | { type: 'event'; code: number; params: Buffer; raw: Buffer }
  | { type: 'other'; h4Type: number; raw: Buffer };

/** Parses one complete H4 packet (type byte included). */
export function parseH4(raw: Buffer): HciPacket {
  const h4Type = raw[0];
  if (h4Type === H4_COMMAND && raw.length >= 4) {
    return { type: 'command', opcode: raw.readUInt16LE(1), params: raw.subarray(4, 4 + raw[3]!), raw };
  }
  if (h4Type === H4_ACL && raw.length >= 5) {
    const word = raw.readUInt16LE(1);
    return {
      type: 'acl',
      handle: word & 0x0fff,
      pb: (word >> 12) & 0x3,
      bc: (word >> 14) & 0x3,
      data: raw.subarray(5, 5 + raw.readUInt16LE(3)),
      raw,
    };
  }
  if (h4Type === H4_EVENT && raw.length >= 3) {
    return { type: 'event', code: raw[1]!, params: raw.subarray(3, 3 + raw[2]!), raw };
  }
  return { type: 'other', h4Type: h4Type ?? -1, raw };
}

/**
 * Splits a byte stream into H4 packets. Unknown type bytes are skipped one at a time
 * (the host side of a UART resynchronises the same way after line noise).
 */
export class H4Framer {
  private pending: Buffer = Buffer.alloc(0);
  /** Count of bytes discarded because they did not start a known packet type. */
  discardedBytes = 0;

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const packets: Buffer[] = [];
    for (;;) {
      const size = this.frameSize(this.pending);
      if (size === null) break;
      if (size === 0) {
        this.pending = this.pending.subarray(1);
        this.discardedBytes++;
        continue;
      }
      packets.push(Buffer.from(this.pending.subarray(0, size)));
      this.pending = this.pending.subarray(size);
    }
    return packets;
  }

  /** Total size of the packet at the head of buf, null if incomplete, 0 if not a packet start. */
  private frameSize(buf: Buffer): number | null {
    if (buf.length === 0) return null;
    const type = buf[0];
    let headerLength: number;
    let payloadLength: (b: Buffer) => number;
    switch (type) {
      case H4_COMMAND:
        headerLength = 4;
        payloadLength = (b) => b[3]!;
        break;
      case H4_ACL:
        headerLength = 5;
        payloadLength = (b) => b.readUInt16LE(3);
        break;
      case H4_EVENT:
        headerLength = 3;
        payloadLength = (b) => b[2]!;
        break;
      case H4_SCO:
        headerLength = 4;
        payloadLength = (b) => b[3]!;
        break;
      case H4_ISO:
        headerLength = 5;
        payloadLength = (b) => b.readUInt16LE(3) & 0x3fff;
        break;
      default:
        return 0;
    }
    if (buf.length < headerLength) return null;
    const total = headerLength + payloadLength(buf);
    return buf.length >= total ? total : null;
  }
}

export function eventPacket(code: number, params: Buffer): Buffer {
  const packet = Buffer.alloc(3 + params.length);
  packet[0] = H4_EVENT;
  packet[1] = code;
  packet[2] = params.length;
  params.copy(packet, 3);
  return packet;
}

export function commandComplete(credits: number, op: number, returnParams: Buffer): Buffer {
  const params = Buffer.alloc(3 + returnParams.length);
  params[0] = credits;
  params.writeUInt16LE(op, 1);
  returnParams.copy(params, 3);
  return eventPacket(EventCode.COMMAND_COMPLETE, params);
}

export function commandStatus(status: number, credits: number, op: number): Buffer {
  const params = Buffer.alloc(4);
  params[0] = status;
  params[1] = credits;
  params.writeUInt16LE(op, 2);
  return eventPacket(EventCode.COMMAND_STATUS, params);
}

export function leMetaEvent(subevent: number, params: Buffer): Buffer {
  return eventPacket(EventCode.LE_META, Buffer.concat([Buffer.from([subevent]), params]));
}

export function disconnectionComplete(handle: number, reason: number): Buffer {
  const params = Buffer.alloc(4);
  params[0] = Status.SUCCESS;
  params.writeUInt16LE(handle, 1);
  params[3] = reason;
  return eventPacket(EventCode.DISCONNECTION_COMPLETE, params);
}

export function numberOfCompletedPackets(entries: Array<[handle: number, count: number]>): Buffer {
  const params = Buffer.alloc(1 + entries.length * 4);
  params[0] = entries.length;
  entries.forEach(([handle, count], i) => {
    params.writeUInt16LE(handle, 1 + i * 4);
    params.writeUInt16LE(count, 3 + i * 4);
  });
  return eventPacket(EventCode.NUMBER_OF_COMPLETED_PACKETS, params);
}

export function aclPacket(handle: number, pb: number, data: Buffer): Buffer {
  const packet = Buffer.alloc(5 + data.length);
  packet[0] = H4_ACL;
  packet.writeUInt16LE((handle & 0x0fff) | ((pb & 0x3) << 12), 1);
  packet.writeUInt16LE(data.length, 3);
  data.copy(packet, 5);
  return packet;
}

export function commandPacket(op: number, params: Buffer = Buffer.alloc(0)): Buffer {
  const packet = Buffer.alloc(4 + params.length);
  packet[0] = H4_COMMAND;
  packet.writeUInt16LE(op, 1);
  packet[3] = params.length;
  params.copy(packet, 4);
  return packet;
}

/** "aa:bb:cc:dd:ee:ff" → 6 bytes little-endian as on the wire. */
export function addressToWire(address: string): Buffer {
  const bytes = address.split(':').map((part) => parseInt(part, 16));
  if (bytes.length !== 6 || bytes.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) {
    throw new Error(`invalid Bluetooth address: ${address}`);
  }
  return Buffer.from(bytes.reverse());
}

export function wireToAddress(wire: Buffer): string {
  return [...wire.subarray(0, 6)]
    .reverse()
    .map((b) => b.toString(16).padStart(2, '0'))
    .join(':');
}
