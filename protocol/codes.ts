// Doorcode and keycard verifiers, and the daily codes a lock derives from its own secret.
//
// A 7-digit code has only 10^7 values: a salted hash in a delta would fall to the phone
// carrying it in seconds. So every verifier is an HMAC under the lock's 32-byte secret,
// which only the authority and that lock hold (set at provisioning). The courier sees
// 16 opaque bytes and learns nothing it can test offline.

import { concatBytes, mac } from './crypto';

export const LOCK_SECRET_BYTES = 32;
export const VERIFIER_BYTES = 16;
export const DOORCODE_DIGITS = 7;
export const DOORCODE_PATTERN = /^[0-9]{7}$/;

const utf8 = new TextEncoder();
const label = (s: string): Uint8Array => utf8.encode(`locksync/v1/${s}\0`);

export function doorcodeVerifier(lockSecret: Uint8Array, code: string): Uint8Array {
  if (!DOORCODE_PATTERN.test(code)) throw new RangeError('doorcodes are exactly 7 digits');
  return mac(lockSecret, concatBytes(label('doorcode'), utf8.encode(code))).slice(0, VERIFIER_BYTES);
}

export function keycardVerifier(lockSecret: Uint8Array, uid: Uint8Array): Uint8Array {
  if (uid.length < 4 || uid.length > 10) throw new RangeError('keycard UIDs are 4, 7 or 10 bytes (ISO 14443)');
  return mac(lockSecret, concatBytes(label('keycard'), uid)).slice(0, VERIFIER_BYTES);
}

export type DailyCodeKind = 'daily' | 'dailySingleUse';

/**
 * The daily code for one slot of one local calendar day (YYYY-MM-DD in the property's
 * time zone). The authority hands slot i to a visitor; the lock recomputes slots 0..n-1
 * for today and needs no sync. Single-use codes come from a separate label so the two
 * kinds never collide by construction.
 */
export function dailyCode(lockSecret: Uint8Array, localDate: string, slot: number, kind: DailyCodeKind): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(localDate)) throw new RangeError(`local date must be YYYY-MM-DD: ${localDate}`);
  if (!Number.isInteger(slot) || slot < 0 || slot > 255) throw new RangeError('daily code slot must be 0..255');
  const m = mac(lockSecret, concatBytes(label(kind === 'daily' ? 'daily-code' : 'daily-single-use-code'), utf8.encode(localDate), new Uint8Array([slot])));
  const n = (((m[0] as number) << 24) | ((m[1] as number) << 16) | ((m[2] as number) << 8) | (m[3] as number)) >>> 0;
  return String(n % 10_000_000).padStart(DOORCODE_DIGITS, '0');
}

/** Single-use daily codes expire this long after their first use (seed articles). */
export const SINGLE_USE_WINDOW_SECONDS = 15 * 60;
