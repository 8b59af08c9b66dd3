// "When will this revocation be in force everywhere?" — the manager's what-if.
//
// A revocation reaches an offline door only when a phone syncs there; a connected door when
// its uplink next polls. A lease (the lock policy's leaseSeconds, on partner and guest
// credentials) bounds the wait: a lock stops honouring a leased credential once its last
// proof of a current table is older than the lease, and no proof can be current after the
// revocation. This module predicts, for each door, the probability that the revocation is in
// force t seconds after the change, and the property-wide curve and its quantiles.
//
// Traffic model (per door): residents pass at `passagesPerHour` (a Poisson process), and a
// fraction `appSyncShare` of passages carry a background Door Sync (the resident's app syncs
// when it sees the lock). Syncs are then a Poisson process of rate μ = passages × share. For
// an offline door, with F the time to the first sync after the change and B the time since
// the last sync before it (both Exp(μ), by memorylessness), the credential stops at
//   T = min(F, max(0, L − B))        (L = lease; without a lease T = F).
// So P(T > t) = e^(−μt) · (1 − e^(−μ(L−t))) for t < L, and 0 from L on. A connected door
// polling every P seconds with a random phase: P(T ≤ t) = min(1, t / P).
// No I/O here: the CLI reads the property, world/whatif-sim.ts checks this against the world.

export interface WhatIfDoor {
  name: string;
  kind: 'communal' | 'private';
  connected: boolean;
  /** Resident passages per hour (Poisson). */
  passagesPerHour: number;
  /** Share of passages whose app syncs in the background, 0..1. */
  appSyncShare: number;
}

export interface WhatIfModel {
  doors: WhatIfDoor[];
  /** Connected doors' uplink poll interval, seconds. */
  pollSeconds: number;
  /** Lease on the revoked credential, seconds; 0 = no lease. */
  leaseSeconds: number;
}

export interface SpreadQuantiles {
  /** Seconds after the change until the revocation is in force at 50 / 90 / 99 / 100 % of the doors (Infinity: never). */
  p50: number;
  p90: number;
  p99: number;
  all: number;
}

/** Syncs per second at an offline door. */
export function syncRate(d: WhatIfDoor): number {
  return (Math.max(0, d.passagesPerHour) * Math.min(1, Math.max(0, d.appSyncShare))) / 3600;
}

/** P(the revocation is in force at door d by t seconds after the change). */
export function inForceProbability(d: WhatIfDoor, t: number, model: Pick<WhatIfModel, 'pollSeconds' | 'leaseSeconds'>): number {
  if (t < 0) return 0;
  if (d.connected) return model.pollSeconds <= 0 ? 1 : Math.min(1, t / model.pollSeconds);
  const mu = syncRate(d);
  const L = model.leaseSeconds;
  if (L > 0 && t >= L) return 1;
  if (mu === 0) return 0; // nobody syncs here: only the lease ends it (at L, handled above)
  const noSync = Math.exp(-mu * t);
  const leaseStillValid = L > 0 ? 1 - Math.exp(-mu * (L - t)) : 1;
  return 1 - noSync * leaseStillValid;
}

/** Fraction of the doors where the revocation is in force by t (the expected curve). */
export function spreadAt(model: WhatIfModel, t: number): number {
  if (model.doors.length === 0) return 1;
  let sum = 0;
  for (const d of model.doors) sum += inForceProbability(d, t, model);
  return sum / model.doors.length;
}

/** The worst case: the time by which every door is certain to have it (Infinity without a bound). */
export function worstCaseSeconds(model: WhatIfModel): number {
  let worst = 0;
  for (const d of model.doors) {
    const bound = d.connected ? model.pollSeconds : model.leaseSeconds > 0 ? model.leaseSeconds : Infinity;
    worst = Math.max(worst, bound);
  }
  return worst;
}

/** Smallest t with spreadAt(t) ≥ q (bisection; the curve never decreases). */
export function timeToFraction(model: WhatIfModel, q: number): number {
  if (spreadAt(model, 0) >= q) return 0;
  let hi = 60;
  const limit = 10 * 365 * 86400;
  while (spreadAt(model, hi) < q) {
    hi *= 2;
    if (hi > limit) return Infinity;
  }
  let lo = 0;
  for (let i = 0; i < 60 && hi - lo > 0.5; i++) {
    const mid = (lo + hi) / 2;
    if (spreadAt(model, mid) >= q) hi = mid;
    else lo = mid;
  }
  return hi;
}

export function quantiles(model: WhatIfModel): SpreadQuantiles {
  return { p50: timeToFraction(model, 0.5), p90: timeToFraction(model, 0.9), p99: timeToFraction(model, 0.99), all: worstCaseSeconds(model) };
}

/** The curve sampled at `points` times up to `untilSeconds`. */
export function spreadCurve(model: WhatIfModel, untilSeconds: number, points = 200): { t: number; fraction: number }[] {
  return Array.from({ length: points + 1 }, (_, i) => {
    const t = (untilSeconds * i) / points;
    return { t, fraction: spreadAt(model, t) };
  });
}

/** The largest vertical gap between the predicted curve and an observed set of in-force times. */
export function maxCurveGap(model: WhatIfModel, observedSeconds: readonly number[]): number {
  const xs = [...observedSeconds].sort((a, b) => a - b);
  const n = xs.length;
  if (n === 0) return 0;
  let gap = 0;
  // The empirical step function jumps at each observation: compare just before and at it.
  for (let i = 0; i < n; i++) {
    const x = xs[i] as number;
    if (!Number.isFinite(x)) break;
    const p = spreadAt(model, x);
    gap = Math.max(gap, Math.abs(p - i / n), Math.abs(p - (i + 1) / n));
  }
  const finite = xs.filter(Number.isFinite).length;
  // Doors never reached: the empirical curve stays below 1 forever.
  if (finite < n) gap = Math.max(gap, Math.abs(spreadAt(model, 10 * 365 * 86400) - finite / n));
  return gap;
}

// ---------------------------------------------------------------------------------------------
// Presentation

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return 'never';
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${(s / 60).toFixed(s < 600 ? 1 : 0)} min`;
  if (s < 48 * 3600) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export interface WhatIfReport {
  partner?: string;
  doors: number;
  offlineDoors: number;
  connectedDoors: number;
  pollSeconds: number;
  leaseSeconds: number;
  quantiles: SpreadQuantiles;
  /** The same property under other lease lengths (seconds; 0 = none). */
  leases: { leaseSeconds: number; quantiles: SpreadQuantiles }[];
  curve: { t: number; fraction: number }[];
}

export function whatIfReport(model: WhatIfModel, opts: { partner?: string; leaseChoices?: number[] } = {}): WhatIfReport {
  const choices = [...new Set([0, model.leaseSeconds, ...(opts.leaseChoices ?? [86400, 3 * 86400, 7 * 86400])])].sort((a, b) => a - b);
  const q = quantiles(model);
  const horizon = Math.max(3600, Number.isFinite(q.p99) ? q.p99 * 1.25 : Number.isFinite(q.p90) ? q.p90 * 3 : 7 * 86400);
  return {
    ...(opts.partner !== undefined ? { partner: opts.partner } : {}),
    doors: model.doors.length,
    offlineDoors: model.doors.filter((d) => !d.connected).length,
    connectedDoors: model.doors.filter((d) => d.connected).length,
    pollSeconds: model.pollSeconds,
    leaseSeconds: model.leaseSeconds,
    quantiles: q,
    leases: choices.map((leaseSeconds) => ({ leaseSeconds, quantiles: quantiles({ ...model, leaseSeconds }) })),
    curve: spreadCurve(model, horizon),
  };
}

export function renderWhatIfText(r: WhatIfReport): string {
  const lease = (s: number): string => (s === 0 ? 'no lease' : `lease ${formatDuration(s)}`);
  const lines = [
    `Revocation${r.partner ? ` of ${r.partner}` : ''} at ${r.doors} door(s): ${r.offlineDoors} offline (in force at the first background sync or when the lease runs out), ${r.connectedDoors} connected (uplink every ${formatDuration(r.pollSeconds)}).`,
    `In force at 50 % of the doors after ${formatDuration(r.quantiles.p50)}, 90 % after ${formatDuration(r.quantiles.p90)}, 99 % after ${formatDuration(r.quantiles.p99)}, every door ${Number.isFinite(r.quantiles.all) ? `by ${formatDuration(r.quantiles.all)} at the latest` : 'not guaranteed (a door nobody syncs at keeps honouring the credential; a lease bounds it)'} (${lease(r.leaseSeconds)}).`,
    '',
    'lease        50 %       90 %       99 %       every door (worst case)',
    ...r.leases.map((l) => `${lease(l.leaseSeconds).padEnd(12)} ${formatDuration(l.quantiles.p50).padEnd(10)} ${formatDuration(l.quantiles.p90).padEnd(10)} ${formatDuration(l.quantiles.p99).padEnd(10)} ${Number.isFinite(l.quantiles.all) ? formatDuration(l.quantiles.all) : 'unbounded'}`),
  ];
  return lines.join('\n');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
}

/** A self-contained HTML page: the curve as SVG, the quantiles and the lease table. */
export function renderWhatIfHtml(r: WhatIfReport, observed?: { label: string; seconds: number[] }): string {
  const W = 640;
  const H = 320;
  const pad = { l: 56, r: 16, t: 16, b: 40 };
  const tMax = r.curve.at(-1)?.t ?? 1;
  const x = (t: number): number => pad.l + (Math.min(t, tMax) / tMax) * (W - pad.l - pad.r);
  const y = (f: number): number => H - pad.b - f * (H - pad.t - pad.b);
  const path = r.curve.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.t).toFixed(1)},${y(p.fraction).toFixed(1)}`).join(' ');
  let observedPath = '';
  if (observed !== undefined && observed.seconds.length > 0) {
    const xs = [...observed.seconds].sort((a, b) => a - b);
    let d = `M${x(0)},${y(0)}`;
    xs.forEach((s, i) => {
      if (!Number.isFinite(s) || s > tMax) return;
      d += ` L${x(s).toFixed(1)},${y(i / xs.length).toFixed(1)} L${x(s).toFixed(1)},${y((i + 1) / xs.length).toFixed(1)}`;
    });
    observedPath = `<path d="${d}" fill="none" stroke="#d9480f" stroke-width="1.5" stroke-dasharray="4 3"/>`;
  }
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<line x1="${pad.l}" x2="${W - pad.r}" y1="${y(f)}" y2="${y(f)}" stroke="#eee"/><text x="${pad.l - 6}" y="${y(f) + 4}" text-anchor="end" font-size="11">${f * 100} %</text>`).join('');
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${x(f * tMax)}" y="${H - pad.b + 16}" text-anchor="middle" font-size="11">${escapeHtml(formatDuration(f * tMax))}</text>`).join('');
  const marks = (['p50', 'p90', 'p99'] as const)
    .filter((k) => Number.isFinite(r.quantiles[k]) && r.quantiles[k] <= tMax)
    .map((k) => `<line x1="${x(r.quantiles[k])}" x2="${x(r.quantiles[k])}" y1="${pad.t}" y2="${H - pad.b}" stroke="#adb5bd" stroke-dasharray="2 3"/><text x="${x(r.quantiles[k]) + 3}" y="${pad.t + 12}" font-size="10">${k.slice(1)} %</text>`)
    .join('');
  const rows = r.leases
    .map((l) => `<tr><td>${l.leaseSeconds === 0 ? 'none' : escapeHtml(formatDuration(l.leaseSeconds))}</td>${(['p50', 'p90', 'p99', 'all'] as const).map((k) => `<td>${escapeHtml(Number.isFinite(l.quantiles[k]) ? formatDuration(l.quantiles[k]) : k === 'all' ? 'unbounded' : 'never')}</td>`).join('')}</tr>`)
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>locksync what-if: revocation spread</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;color:#212529}table{border-collapse:collapse}td,th{border:1px solid #dee2e6;padding:4px 10px;text-align:right}th{background:#f1f3f5}</style></head><body>
<h1>When will the revocation${r.partner ? ` of ${escapeHtml(r.partner)}` : ''} be in force everywhere?</h1>
<p>${r.doors} doors: ${r.offlineDoors} offline (in force at the first background Door Sync, or when the lease runs out), ${r.connectedDoors} connected (uplink every ${escapeHtml(formatDuration(r.pollSeconds))}). Lease: ${r.leaseSeconds === 0 ? 'none' : escapeHtml(formatDuration(r.leaseSeconds))}.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="share of doors where the revocation is in force over time">
${ticks}${xTicks}${marks}<line x1="${pad.l}" x2="${pad.l}" y1="${pad.t}" y2="${H - pad.b}" stroke="#495057"/><line x1="${pad.l}" x2="${W - pad.r}" y1="${H - pad.b}" y2="${H - pad.b}" stroke="#495057"/>
<path d="${path}" fill="none" stroke="#1c7ed6" stroke-width="2"/>${observedPath}
<text x="${W / 2}" y="${H - 6}" text-anchor="middle" font-size="12">time after the change</text></svg>
<p><span style="color:#1c7ed6">━</span> predicted${observed ? ` &nbsp; <span style="color:#d9480f">┅</span> ${escapeHtml(observed.label)}` : ''}</p>
<table><tr><th>lease</th><th>50 % of doors</th><th>90 %</th><th>99 %</th><th>every door (worst case)</th></tr>${rows}</table>
</body></html>
`;
}
