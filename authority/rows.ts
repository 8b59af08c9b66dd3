// Stored rows as SQLite returns them, and the byte helpers every layer uses (internal).

import { createHash } from 'node:crypto';
import { type DoorKind, type PartnerStatus, type UserRole } from './types';

export interface DoorRow { id: number; name: string; kind: DoorKind; connected: number; policy: string | null }
export interface KeyRow { id: number; name: string; partner_id: number | null; guest_of: number | null }
export interface KeyDoorRow { key_id: number; door_id: number; doorcodes_enabled: number; schedule: string | null }
export interface UserRow { id: number; name: string; role: UserRole; invited_by: number | null }
export interface AssignmentRow { id: number; user_id: number; key_id: number; may_share: number; valid_from: number | null; valid_until: number | null }
export interface PartnerRow { id: number; name: string; status: PartnerStatus }
export interface LockRow {
  lock_id: string;
  door_id: number;
  secret_sealed: Buffer;
  device_public_key: Buffer | null;
  in_force_version: number;
  in_force_at: number | null;
}
export interface VersionRow {
  lock_id: string;
  version: number;
  digest: Buffer;
  issued_at: number;
  key_serial: number;
  head_bytes: Buffer;
  head_signature: Buffer;
  ops: Buffer | null;
  table_bytes: Buffer | null;
}
export interface SigningKeyRow { serial: number; public_key: Buffer; secret_sealed: Buffer; cert_bytes: Buffer; cert_signature: Buffer }

export const u8 = (b: Buffer | Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice();
export const blob = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
export const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
export const TOKEN_PREFIX = 'lst_';
