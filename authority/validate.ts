// Input validation for manager operations: every bad value becomes AuthorityError
// ('VALIDATION') naming the field, before anything is written.

import { type LockPolicy, type ScheduleWindow, ProtocolError, validateSchedule, LIMITS, isValidTimeZone, localTime } from '../protocol';
import { AuthorityError } from './errors';

export function invalid(message: string, details?: Record<string, unknown>): AuthorityError {
  return new AuthorityError('VALIDATION', message, details);
}

export function requireId(v: unknown, what: string): number {
  const n = typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw invalid(`${what} must be a positive integer id`);
  return n;
}

export function requireName(v: unknown, what: string, max = 120): string {
  if (typeof v !== 'string') throw invalid(`${what} must be a string`);
  const s = v.trim();
  if (s.length === 0 || s.length > max) throw invalid(`${what} must be 1..${max} characters`);
  return s;
}

export function requireBool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw invalid(`${what} must be true or false`);
  return v;
}

export function optTime(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > 0xffff_ffff) throw invalid(`${what} must be unix seconds`);
  return v;
}

export function requireValidity(from: number | undefined, until: number | undefined, what: string): void {
  if (from !== undefined && until !== undefined && until <= from) throw invalid(`${what}: validUntil must be after validFrom`);
}

export function requireHex(v: unknown, what: string, bytes?: { exact?: number; min?: number; max?: number }): Uint8Array {
  if (typeof v !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(v)) throw invalid(`${what} must be a hex string`);
  const b = new Uint8Array(Buffer.from(v, 'hex'));
  if (bytes?.exact !== undefined && b.length !== bytes.exact) throw invalid(`${what} must be ${bytes.exact} bytes`);
  if (bytes?.min !== undefined && b.length < bytes.min) throw invalid(`${what} must be at least ${bytes.min} bytes`);
  if (bytes?.max !== undefined && b.length > bytes.max) throw invalid(`${what} must be at most ${bytes.max} bytes`);
  return b;
}

export function requireTimeZone(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw invalid('timeZone must be an IANA time zone name');
  if (!isValidTimeZone(v)) throw invalid(`unknown IANA time zone ${JSON.stringify(v)}`);
  return v;
}

const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** Friendly or wire form of one weekly window. */
export interface ScheduleWindowInput {
  /** Bitmask (bit 0 = Monday) or day names ("mon".."sun", "weekdays", "weekend", "daily"). */
  days: number | string[];
  /** Minutes after local midnight, or "HH:MM" ("24:00" allowed as an end). */
  start: number | string;
  end: number | string;
}

function parseMinutes(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string') {
    const m = /^([0-9]{1,2}):([0-9]{2})$/.exec(v);
    if (m && Number(m[2]) < 60) return Number(m[1]) * 60 + Number(m[2]);
  }
  throw invalid(`${what} must be minutes after midnight or "HH:MM"`);
}

function parseDays(v: unknown, what: string): number {
  if (typeof v === 'number') return v;
  if (!Array.isArray(v)) throw invalid(`${what} must be a bitmask or a list of day names`);
  let mask = 0;
  for (const d of v) {
    const name = String(d).toLowerCase().slice(0, 3);
    if (d === 'weekdays') mask |= 0x1f;
    else if (d === 'weekend') mask |= 0x60;
    else if (d === 'daily') mask |= 0x7f;
    else {
      const i = DAY_NAMES.indexOf(name);
      if (i < 0) throw invalid(`${what}: unknown day ${JSON.stringify(d)}`);
      mask |= 1 << i;
    }
  }
  return mask;
}

/** A Key schedule: up to 8 windows on any one day, none crossing midnight. */
export function normalizeSchedule(v: unknown, what: string): ScheduleWindow[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(`${what} must be a list of windows`);
  if (v.length > LIMITS.maxWindowsPerDay * 7) throw invalid(`${what}: too many windows`, { limitPerDay: LIMITS.maxWindowsPerDay });
  const windows = v.map((w, i) => {
    if (typeof w !== 'object' || w === null) throw invalid(`${what}[${i}] must be {days, start, end}`);
    const o = w as Record<string, unknown>;
    return { days: parseDays(o.days, `${what}[${i}].days`), start: parseMinutes(o.start, `${what}[${i}].start`), end: parseMinutes(o.end, `${what}[${i}].end`) };
  });
  try {
    validateSchedule(windows, what);
  } catch (e) {
    if (e instanceof ProtocolError) throw invalid(e.detail, { reason: e.reason, limitPerDay: LIMITS.maxWindowsPerDay });
    throw e;
  }
  return windows;
}

export const POLICY_FIELDS = ['wrongCodeLimit', 'lockoutSeconds', 'leaseSeconds', 'relockSeconds', 'dailyCodeSlots'] as const;
const POLICY_RANGES: Record<(typeof POLICY_FIELDS)[number], [number, number]> = {
  wrongCodeLimit: [1, 255],
  lockoutSeconds: [1, 255],
  leaseSeconds: [0, 0xffff_ffff],
  relockSeconds: [1, 3600],
  dailyCodeSlots: [0, 256],
};

export function normalizePolicy(v: unknown, what: string): Partial<LockPolicy> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${what} must be an object`);
  const out: Partial<LockPolicy> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!(POLICY_FIELDS as readonly string[]).includes(k)) throw invalid(`${what}: unknown field ${k}`, { allowed: [...POLICY_FIELDS] });
    const [lo, hi] = POLICY_RANGES[k as (typeof POLICY_FIELDS)[number]];
    if (typeof val !== 'number' || !Number.isInteger(val) || val < lo || val > hi) throw invalid(`${what}.${k} must be an integer ${lo}..${hi}`);
    out[k as (typeof POLICY_FIELDS)[number]] = val;
  }
  return out;
}

export function requireDoorcode(v: unknown): string {
  if (typeof v !== 'string' || !/^[0-9]{7}$/.test(v)) throw invalid('doorcodes are exactly 7 digits');
  return v;
}

export function requireLocalDate(v: unknown): string {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`))) throw invalid('date must be YYYY-MM-DD');
  return v;
}

/** The property's local day, exactly as the lock computes it for daily codes. */
export function localDate(unixSeconds: number, timeZone: string): string {
  return localTime(timeZone, unixSeconds * 1000).date;
}
