// Local time in the property's IANA zone, DST-correct through Intl (no tz database
// package). The lock evaluates schedules and derives daily codes with it, the authority
// issues daily codes for "today" with it: one implementation, so the two can never
// disagree about which local day it is.

export interface LocalTime {
  /** YYYY-MM-DD, the local calendar day (the daily-code input). */
  date: string;
  /** 0 = Monday … 6 = Sunday */
  weekday: number;
  /** Minutes after local midnight. */
  minute: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Local date, weekday and minute of `ms` (unix milliseconds) in `timeZone`. */
export function localTime(timeZone: string, ms: number): LocalTime {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      weekday: 'short',
      hourCycle: 'h23',
    });
    formatters.set(timeZone, f);
  }
  const p: Record<string, string> = {};
  for (const part of f.formatToParts(new Date(ms))) p[part.type] = part.value;
  const weekday = WEEKDAYS[p.weekday ?? ''];
  if (weekday === undefined) throw new Error(`unexpected weekday ${p.weekday}`);
  return { date: `${p.year}-${p.month}-${p.day}`, weekday, minute: Number(p.hour) * 60 + Number(p.minute) };
}
