// The locksync GATT service and advertisement layout (SPEC.md §GATT).
//
// One primary service with three characteristics:
//   RX     phone → lock   Write Without Response (and Write): framing frames
//   TX     lock → phone   Notify: framing frames
//   INFO   read-only      CBOR map: lock id, protocol version, capabilities, table version
// Adverts carry the service UUID (so phones can scan by service); the scan response carries
// the lock id as the complete local name and a 7-byte manufacturer-data record with the
// table version and state flags. Nothing in them is secret: a table version reveals only
// that the door changed, which anybody standing there learns anyway by trying a credential.

import { encode, decode, type CborValue } from './cbor';
import { hash } from './crypto';
import { ProtocolError } from './errors';
import { MapReader, cmap } from './schema';
import { LOCK_ID_PATTERN } from './update';
import { PROTOCOL_VERSION } from './messages';

export const GATT = {
  service: '4c4b0001-5359-4e43-8000-6c6f636b7379',
  rx: '4c4b0002-5359-4e43-8000-6c6f636b7379',
  tx: '4c4b0003-5359-4e43-8000-6c6f636b7379',
  info: '4c4b0004-5359-4e43-8000-6c6f636b7379',
} as const;

/** Same UUIDs without dashes, lower case: the form noble and bleno compare. */
export const GATT_SHORT = Object.fromEntries(Object.entries(GATT).map(([k, v]) => [k, v.replace(/-/g, '')])) as {
  [K in keyof typeof GATT]: string;
};

/** Bluetooth SIG company id 0xFFFF is reserved for testing; products replace it with theirs. */
export const ADVERT_COMPANY_ID = 0xffff;
export const ADVERT_FORMAT = 1;

export const ADVERT_FLAGS = {
  /** The lock has had no authority-signed time for longer than its lease: please sync. */
  needsSync: 1 << 0,
  lowBattery: 1 << 1,
  keypadLockout: 1 << 2,
} as const;

export interface LockAdvert {
  lockId: string;
  version: number;
  flags: number;
}

/** Manufacturer-specific data: company id (LE u16), format, flags, version (LE u32). */
export function encodeAdvertData(a: LockAdvert): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = ADVERT_COMPANY_ID & 0xff;
  b[1] = ADVERT_COMPANY_ID >> 8;
  b[2] = ADVERT_FORMAT;
  b[3] = a.flags & 0xff;
  new DataView(b.buffer).setUint32(4, a.version >>> 0, true);
  return b;
}

export function decodeAdvertData(lockId: string, data: Uint8Array | undefined): LockAdvert | undefined {
  if (!LOCK_ID_PATTERN.test(lockId)) return undefined;
  if (data === undefined || data.length !== 8) return undefined;
  if ((data[0] as number) !== (ADVERT_COMPANY_ID & 0xff) || (data[1] as number) !== ADVERT_COMPANY_ID >> 8) return undefined;
  if (data[2] !== ADVERT_FORMAT) return undefined;
  return { lockId, flags: data[3] as number, version: new DataView(data.buffer, data.byteOffset).getUint32(4, true) };
}

/** Scan response AD structures: complete local name + manufacturer data (≤ 31 bytes). */
export function scanResponseEir(a: LockAdvert): Uint8Array {
  const name = new TextEncoder().encode(a.lockId);
  const mfg = encodeAdvertData(a);
  const out = new Uint8Array(2 + name.length + 2 + mfg.length);
  out[0] = name.length + 1;
  out[1] = 0x09; // Complete Local Name
  out.set(name, 2);
  out[2 + name.length] = mfg.length + 1;
  out[3 + name.length] = 0xff; // Manufacturer Specific Data
  out.set(mfg, 4 + name.length);
  if (out.length > 31) throw new RangeError('scan response exceeds 31 bytes');
  return out;
}

/** Advertising data: flags + complete list of 128-bit service UUIDs. */
export function advertisingEir(): Uint8Array {
  const uuid = GATT_SHORT.service;
  const out = new Uint8Array(3 + 18);
  out.set([0x02, 0x01, 0x06, 0x11, 0x07]); // LE General Discoverable, BR/EDR not supported
  for (let i = 0; i < 16; i++) out[5 + i] = parseInt(uuid.slice(30 - 2 * i, 32 - 2 * i), 16); // little-endian
  return out;
}

/**
 * The GATT Database Hash characteristic (Core v5.1+ Vol 3 Part G §7.3, UUID 0x2B2A): 16
 * bytes that change whenever the lock's attribute database changes. A phone that cached the
 * attribute handles reads it first and skips discovery when it is unchanged (SPEC §13.1).
 */
export const DATABASE_HASH_UUID = '2b2a';
export const DATABASE_HASH_BYTES = 16;

/** One characteristic as it stands in the database, in order (what the hash covers). */
export interface GattLayoutCharacteristic {
  uuid: string;
  properties: string[];
}

/**
 * The database hash of a locksync GATT database: SHA-256 over the canonical CBOR of every
 * service and characteristic in handle order (the host stack's Generic Access and Generic
 * Attribute services first), first 16 bytes. Not the Core's AES-CMAC over the raw attribute
 * values — a host stack that builds its own database cannot always expose those — but it
 * has the property a client relies on: any change of handles, types or properties changes it.
 */
export function gattDatabaseHash(services: { uuid: string; characteristics: GattLayoutCharacteristic[] }[]): Uint8Array {
  const layout = services.map((s) => [s.uuid, s.characteristics.map((c) => [c.uuid, [...c.properties].sort()])]);
  return hash(encode(layout as CborValue)).slice(0, DATABASE_HASH_BYTES);
}

export interface LockInfo {
  lockId: string;
  protocolVersion: number;
  capabilities: number;
  version: number;
}

export function encodeLockInfo(i: LockInfo): Uint8Array {
  return encode(cmap([[1, i.lockId], [2, i.protocolVersion], [3, i.capabilities], [4, i.version]]));
}

export function decodeLockInfo(bytes: Uint8Array): LockInfo {
  let v: CborValue;
  try {
    v = decode(bytes, { maxBytes: 128, maxDepth: 2, maxItems: 16 });
  } catch (e) {
    throw new ProtocolError('MALFORMED', `lock info: ${(e as Error).message}`);
  }
  const r = MapReader.of(v, 'lockInfo');
  const info: LockInfo = {
    lockId: r.text(1, 'lockId', 32, LOCK_ID_PATTERN),
    protocolVersion: r.uint(2, 'protocolVersion', 0xff),
    capabilities: r.uint(3, 'capabilities', 0xffff),
    version: r.uint(4, 'version'),
  };
  r.done();
  if (info.protocolVersion !== PROTOCOL_VERSION) throw new ProtocolError('UNSUPPORTED_VERSION', `lock speaks protocol ${info.protocolVersion}`);
  return info;
}
