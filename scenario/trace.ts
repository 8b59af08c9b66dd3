// The run trace: what happened, on the simulated clock, in a JSON shape the timeline
// renders and the trace hash pins. Same scenario + same seed ⇒ same events ⇒ same hash;
// wall-clock fields (startedAt) are excluded from the hash for exactly that reason.

import { hash, toHex } from '../protocol';

export const TRACE_EVENT_KINDS = ['message', 'connection', 'decision', 'fault', 'version', 'manager', 'expectation', 'note'] as const;
export type TraceEventKind = (typeof TRACE_EVENT_KINDS)[number];

/**
 * One thing that happened. Actors are 'phone:<id>', 'lock:<id>' or 'authority'.
 * Conventions the timeline relies on:
 * - message:    from → to, label like "delta v7→v8", detail.bytes = encoded size
 * - connection: from = phone, to = lock, label "connected" | "disconnected" | "out of range" | "link lost"
 * - decision:   from = lock, label = DECISION_REASONS name, ok = granted, detail.credential / holder
 * - fault:      from/to = where it strikes, label like "link drop at packet 12"
 * - version:    from = lock, detail.version = table version now in force at that lock
 * - manager:    from = 'authority', label = operation, ok = accepted
 * - expectation: label = "steps[3] decision", ok = passed, detail {expected, actual, step}
 */
export interface TraceEvent {
  /** Milliseconds since scenario start, simulated clock. */
  t: number;
  kind: TraceEventKind;
  from?: string;
  to?: string;
  label: string;
  detail?: Record<string, unknown>;
  ok?: boolean;
}

export interface Trace {
  scenario: string;
  seed: number | string;
  /** Wall-clock ISO time the run started (not hashed). */
  startedAt: string;
  events: TraceEvent[];
}

const ACTOR_RE = /^(?:authority|phone:[^\s]+|lock:[^\s]+)$/;

export class TraceError extends Error {
  override readonly name = 'TraceError';
}

/**
 * Append-only recorder. Events must arrive in non-decreasing `t`; every value is
 * normalised to plain JSON (Uint8Array → hex, bigint → decimal string, Map → object,
 * keys sorted) so the trace serialises and hashes identically on every run.
 */
export class TraceRecorder {
  private readonly events: TraceEvent[] = [];
  private lastT = 0;

  constructor(
    readonly scenario: string,
    readonly seed: number | string,
    readonly startedAt: string = new Date().toISOString(),
  ) {}

  record(event: TraceEvent): TraceEvent {
    if (!Number.isFinite(event.t) || event.t < 0) throw new TraceError(`event time ${event.t} must be a finite number ≥ 0`);
    if (event.t < this.lastT) throw new TraceError(`event at ${event.t} ms recorded after one at ${this.lastT} ms; traces are in time order`);
    if (!(TRACE_EVENT_KINDS as readonly string[]).includes(event.kind)) throw new TraceError(`unknown event kind "${String(event.kind)}"`);
    for (const end of ['from', 'to'] as const) {
      const v = event[end];
      if (v !== undefined && !ACTOR_RE.test(v)) throw new TraceError(`event ${end} "${v}" is not 'authority', 'phone:<id>' or 'lock:<id>'`);
    }
    const e: TraceEvent = { t: event.t, kind: event.kind, label: String(event.label) };
    if (event.from !== undefined) e.from = event.from;
    if (event.to !== undefined) e.to = event.to;
    if (event.ok !== undefined) e.ok = event.ok;
    if (event.detail !== undefined) e.detail = normalise(event.detail, 'detail') as Record<string, unknown>;
    const sorted = sortKeys(e) as TraceEvent;
    this.events.push(sorted);
    this.lastT = event.t;
    return sorted;
  }

  /** Shorthands for the common kinds. */
  message(t: number, from: string, to: string, label: string, detail?: Record<string, unknown>, ok?: boolean): TraceEvent {
    return this.record(withOptional({ t, kind: 'message', from, to, label }, detail, ok));
  }
  note(t: number, label: string, detail?: Record<string, unknown>): TraceEvent {
    return this.record(withOptional({ t, kind: 'note', label }, detail, undefined));
  }

  get length(): number {
    return this.events.length;
  }

  trace(): Trace {
    return { scenario: this.scenario, seed: this.seed, startedAt: this.startedAt, events: this.events.map((e) => structuredClone(e)) };
  }

  toJSON(): Trace {
    return this.trace();
  }
}

function withOptional(e: TraceEvent, detail: Record<string, unknown> | undefined, ok: boolean | undefined): TraceEvent {
  if (detail !== undefined) e.detail = detail;
  if (ok !== undefined) e.ok = ok;
  return e;
}

function normalise(v: unknown, path: string): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TraceError(`${path}: ${v} is not representable in JSON`);
    return Object.is(v, -0) ? 0 : v;
  }
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map((x, i) => (x === undefined ? null : normalise(x, `${path}[${i}]`)));
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) if (x !== undefined) o[String(k)] = normalise(x, `${path}.${String(k)}`);
    return sortKeys(o);
  }
  if (typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x !== undefined) o[k] = normalise(x, `${path}.${k}`);
    return sortKeys(o);
  }
  throw new TraceError(`${path}: ${typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v} cannot go into a trace`);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) o[k] = sortKeys((v as Record<string, unknown>)[k]);
    return o;
  }
  return v;
}

/** JSON with keys sorted at every level and no whitespace. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

/** SHA-256 (hex) over the canonical JSON of the trace without wall-clock fields. */
export function traceHash(trace: Trace): string {
  const { startedAt: _wallClock, ...rest } = trace;
  void _wallClock;
  return toHex(hash(new TextEncoder().encode(canonicalJson(rest))));
}

/** Parse and check a trace file's JSON. */
export function parseTrace(json: string): Trace {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    throw new TraceError(`trace is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TraceError('trace must be an object');
  const o = v as Record<string, unknown>;
  if (typeof o['scenario'] !== 'string') throw new TraceError('trace.scenario must be a string');
  if (typeof o['seed'] !== 'string' && typeof o['seed'] !== 'number') throw new TraceError('trace.seed must be a number or string');
  if (typeof o['startedAt'] !== 'string') throw new TraceError('trace.startedAt must be an ISO string');
  if (!Array.isArray(o['events'])) throw new TraceError('trace.events must be a list');
  const rec = new TraceRecorder(o['scenario'], o['seed'], o['startedAt']);
  o['events'].forEach((e, i) => {
    if (typeof e !== 'object' || e === null) throw new TraceError(`events[${i}] must be an object`);
    try {
      rec.record(e as TraceEvent);
    } catch (err) {
      throw new TraceError(`events[${i}]: ${(err as Error).message}`);
    }
  });
  return rec.trace();
}
