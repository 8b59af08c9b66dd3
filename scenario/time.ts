// Time in scenario files: step times ("+5s", "00:10:00", "2025-03-10T18:00:00") and the
// property's wall-clock start, resolved in its IANA zone with Intl only (no tz database
// package), DST-correct: a local time in a spring-forward gap is refused, an ambiguous
// one in the autumn overlap resolves to the earlier instant.

export { isValidTimeZone } from '../protocol/localtime';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

export interface LocalDateTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
}

/** The wall-clock reading in `tz` at Unix millisecond `epochMs`. */
export function localDateTime(epochMs: number, tz: string): LocalDateTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(new Date(epochMs))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const ms = ((epochMs % 1000) + 1000) % 1000;
  return {
    year: parts['year'] ?? 0,
    month: parts['month'] ?? 0,
    day: parts['day'] ?? 0,
    hour: parts['hour'] ?? 0,
    minute: parts['minute'] ?? 0,
    second: parts['second'] ?? 0,
    ms,
  };
}

/** Offset of `tz` from UTC at `epochMs`, in ms (local − UTC). */
export function zoneOffsetMs(epochMs: number, tz: string): number {
  const l = localDateTime(epochMs, tz);
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second, l.ms);
  return asUtc - epochMs;
}

/** Unix ms of a local wall-clock time in `tz`; undefined when it does not exist (DST gap). */
export function zonedToEpochMs(l: LocalDateTime, tz: string): number | undefined {
  const naive = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second, l.ms);
  const candidates = new Set<number>();
  for (const probe of [naive - 36 * 3600_000, naive, naive + 36 * 3600_000]) candidates.add(naive - zoneOffsetMs(probe, tz));
  const matches = [...candidates].filter((e) => zoneOffsetMs(e, tz) === naive - e).sort((a, b) => a - b);
  return matches[0];
}

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * Parse an ISO date-time. Without Z/offset it is local time in `tz`.
 * Returns Unix ms, or a string saying what is wrong.
 */
export function parseIsoInZone(text: string, tz: string): number | string {
  const m = ISO_RE.exec(text);
  if (m === null) return `"${text}" is not an ISO date-time like 2025-03-10T09:00:00`;
  const [year, month, day, hour, minute] = [1, 2, 3, 4, 5].map((i) => Number(m[i]));
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const ms = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0'));
  const l = { year, month, day, hour, minute, second, ms } as LocalDateTime;
  if (l.month < 1 || l.month > 12 || l.day < 1 || l.day > 31 || l.hour > 23 || l.minute > 59 || l.second > 59)
    return `"${text}" has a field out of range`;
  const check = new Date(Date.UTC(l.year, l.month - 1, l.day));
  if (check.getUTCDate() !== l.day) return `"${text}": ${l.year}-${m[2]} has no day ${l.day}`;
  const zone = m[8];
  if (zone !== undefined) {
    const naive = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second, l.ms);
    if (zone === 'Z') return naive;
    const sign = zone[0] === '-' ? -1 : 1;
    const offMin = Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6));
    return naive - sign * offMin * 60_000;
  }
  const e = zonedToEpochMs(l, tz);
  if (e === undefined) return `"${text}" does not exist in ${tz} (daylight-saving gap)`;
  return e;
}

const DURATION_RE = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/;

/** "1h30m", "5s", "250ms", "2d", "1.5s" → ms; undefined if not a duration. */
export function parseDurationMs(text: string): number | undefined {
  if (text === '') return undefined;
  const m = DURATION_RE.exec(text);
  if (m === null || m.slice(1).every((g) => g === undefined)) return undefined;
  const [d, h, mi, s, ms] = m.slice(1).map((g) => (g === undefined ? 0 : Number(g))) as [number, number, number, number, number];
  const total = (((d * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms;
  return Number.isFinite(total) && Number.isInteger(total) ? total : undefined;
}

const OFFSET_RE = /^(\d{1,3}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?$/;

/**
 * Resolve a step time to ms since scenario start.
 *   "+<duration>"   relative to `previousMs` (the end of the previous step)
 *   "HH:MM:SS[.mmm]" offset from the scenario start (hours may exceed 23)
 *   ISO date-time   absolute; local to `tz` unless it carries Z or an offset
 * Returns ms or a message.
 */
export function resolveAt(text: string, previousMs: number, startEpochMs: number, tz: string): number | string {
  if (text.startsWith('+')) {
    const d = parseDurationMs(text.slice(1));
    return d === undefined ? `"${text}" is not a relative time like +5s, +1m30s, +250ms, +2h` : previousMs + d;
  }
  const o = OFFSET_RE.exec(text);
  if (o !== null) {
    const [h, mi, s] = [Number(o[1]), Number(o[2]), Number(o[3])];
    if (mi > 59 || s > 59) return `"${text}": minutes and seconds must be below 60`;
    return ((h * 60 + mi) * 60 + s) * 1000 + (o[4] === undefined ? 0 : Number(o[4].padEnd(3, '0')));
  }
  if (/^\d{4}-/.test(text)) {
    const e = parseIsoInZone(text, tz);
    return typeof e === 'string' ? e : e - startEpochMs;
  }
  return `"${text}" is not a step time (use +5s, 00:10:00 or 2025-03-10T18:00:00)`;
}

/** "2h 3m 4.250s" for humans (trace labels, timeline axis). */
export function formatDuration(ms: number): string {
  const neg = ms < 0;
  let rest = Math.abs(Math.round(ms));
  const d = Math.floor(rest / 86_400_000);
  rest -= d * 86_400_000;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = rest / 1000;
  const parts: string[] = [];
  if (d) parts.push(`${d}d`);
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  if (s || parts.length === 0) parts.push(`${Number.isInteger(s) ? s : s.toFixed(3).replace(/0+$/, '')}s`);
  return (neg ? '-' : '') + parts.join(' ');
}
