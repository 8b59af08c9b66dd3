// The HTML timeline of a run: one self-contained file (inline CSS and SVG, no script, no
// external assets) that shows at a glance what happened between phones, locks and the
// authority. Time runs down; each event gets a row (a sequence diagram, not a linear
// time scale, so a 10-minute wait and a 3 ms exchange both stay readable); gaps are
// shown as axis breaks with their length. Long runs of frames between the same two
// actors collapse into one row when a trace is large.

import { formatDuration } from './time';
import { traceHash, type Trace, type TraceEvent } from './trace';

export interface TimelineOptions {
  /** Most rows drawn; beyond it message runs collapse, then the tail is summarised. Default 900. */
  maxRows?: number;
  /** Shown in the header (defaults to traceHash(trace)). */
  hash?: string;
  /** Command that reproduces the run, shown in the header. */
  replayCommand?: string;
  /** Display names by actor ('lock:lk-0001' → 'Unit 4B'): a door is shown by name beside its lock id. */
  names?: Readonly<Record<string, string>>;
}

/** Escape text for HTML and SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const COL_W = 190;
const LEFT = 120;
const HEAD_H = 64;
const ROW_H = 28;
const BREAK_H = 30;
const RIGHT = 300;
const GAP_BREAK_MS = 5_000;
const CHAR_W = 6.4;

const GREEN = '#1a7f37';
const RED = '#cf222e';
const AMBER = '#bf8700';
const BLUE = '#0969da';
const PURPLE = '#8250df';
const GREY = '#57606a';
const VERSION_COLOURS = ['#ddf4ff', '#fff8c5', '#dafbe1', '#fbefff', '#ffebe9', '#fff1e5', '#eaeef2'];

interface Row {
  /** First event of the row. */
  e: TraceEvent;
  /** Collapsed rows: how many events and total bytes they stand for. */
  count: number;
  bytes: number;
  lastT: number;
}

function actorKind(a: string): 'authority' | 'phone' | 'lock' {
  return a === 'authority' ? 'authority' : a.startsWith('phone:') ? 'phone' : 'lock';
}

function actorName(a: string): string {
  return a === 'authority' ? 'authority' : a.slice(a.indexOf(':') + 1);
}

/** Phone actors a decision was made for: the phone that asked ('to'), or the one named in its input. */
function decisionPhone(e: TraceEvent): string | undefined {
  if (e.to !== undefined && actorKind(e.to) === 'phone') return e.to;
  const input = e.detail?.['input'];
  const m = typeof input === 'string' ? /^phone (\S+)$/.exec(input) : null;
  return m ? `phone:${m[1]}` : undefined;
}

function clip(s: string, maxPx: number): string {
  const max = Math.max(4, Math.floor(maxPx / CHAR_W));
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function isGranted(e: TraceEvent): boolean {
  return e.ok ?? e.label === 'GRANTED';
}

function pairKey(e: TraceEvent): string | undefined {
  if (e.kind !== 'message' || e.from === undefined || e.to === undefined) return undefined;
  return [e.from, e.to].sort().join('|');
}

function bytesOf(e: TraceEvent): number {
  const b = e.detail?.['bytes'];
  return typeof b === 'number' ? b : 0;
}

/** Rows for the diagram, collapsing message runs when there are too many events. */
export function layoutRows(events: readonly TraceEvent[], maxRows: number): { rows: Row[]; omitted: number; collapsed: boolean } {
  let rows: Row[] = events.map((e) => ({ e, count: 1, bytes: bytesOf(e), lastT: e.t }));
  let collapsed = false;
  if (rows.length > maxRows) {
    collapsed = true;
    const out: Row[] = [];
    for (const r of rows) {
      const prev = out[out.length - 1];
      const k = pairKey(r.e);
      if (prev !== undefined && k !== undefined && pairKey(prev.e) === k && r.e.ok !== false && prev.e.ok !== false) {
        prev.count += 1;
        prev.bytes += r.bytes;
        prev.lastT = r.e.t;
      } else out.push({ ...r });
    }
    rows = out;
  }
  if (rows.length > maxRows) {
    // Keep what matters most; notes and connection chatter go first.
    const important = rows.filter((r) => r.e.kind !== 'note');
    rows = important.length <= maxRows ? important : important.slice(0, maxRows);
  }
  const drawn = rows.reduce((n, r) => n + r.count, 0);
  return { rows, omitted: events.length - drawn, collapsed };
}

function bolt(x: number, y: number, colour: string): string {
  const p = [
    [x + 2, y - 10],
    [x - 5, y + 1],
    [x - 0.5, y + 1],
    [x - 3, y + 10],
    [x + 5, y - 2],
    [x + 0.5, y - 2],
  ]
    .map(([a, b]) => `${(a as number).toFixed(1)},${(b as number).toFixed(1)}`)
    .join(' ');
  return `<polygon points="${p}" fill="${colour}" stroke="#000" stroke-width="0.6"><title>fault</title></polygon>`;
}

/** Render the trace as a self-contained HTML document. */
export function renderTimeline(trace: Trace, options: TimelineOptions = {}): string {
  const maxRows = options.maxRows ?? 900;
  const hash = options.hash ?? traceHash(trace);
  const events = trace.events;

  // Actors: authority, then phones, then locks, each in order of first appearance.
  const seen: string[] = [];
  for (const e of events) for (const a of [e.from, e.to, e.kind === 'decision' ? decisionPhone(e) : undefined]) if (a !== undefined && !seen.includes(a)) seen.push(a);
  const order = { authority: 0, phone: 1, lock: 2 } as const;
  const actors = seen.sort((a, b) => order[actorKind(a)] - order[actorKind(b)] || seen.indexOf(a) - seen.indexOf(b));
  const colX = new Map(actors.map((a, i) => [a, LEFT + COL_W / 2 + i * COL_W] as const));
  const width = LEFT + Math.max(1, actors.length) * COL_W + RIGHT;
  const checksX = LEFT + Math.max(1, actors.length) * COL_W + 16;

  const { rows, omitted, collapsed } = layoutRows(events, maxRows);

  // Vertical positions, with breaks for long gaps.
  const ys: number[] = [];
  const breaks: { y: number; gap: number }[] = [];
  let y = HEAD_H + 20;
  let prevT: number | undefined;
  for (const r of rows) {
    if (prevT !== undefined && r.e.t - prevT >= GAP_BREAK_MS) {
      breaks.push({ y, gap: r.e.t - prevT });
      y += BREAK_H;
    }
    ys.push(y + ROW_H / 2);
    y += ROW_H;
    prevT = r.lastT;
  }
  const bottom = y + 20 + (omitted > 0 ? ROW_H : 0);
  const height = bottom + 10;

  const svg: string[] = [];
  svg.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="ui-sans-serif, system-ui, sans-serif" font-size="11">`,
    '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#24292f"/></marker><marker id="arr-red" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="${RED}"/></marker></defs>',
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
  );

  // Version bands (drawn first, under everything).
  const versionAt = new Map<string, { v: number; y: number }>();
  const bandSegs: string[] = [];
  const versionIndex = new Map<number, number>();
  const colourFor = (v: number): string => {
    if (!versionIndex.has(v)) versionIndex.set(v, versionIndex.size);
    return VERSION_COLOURS[(versionIndex.get(v) as number) % VERSION_COLOURS.length] as string;
  };
  const closeBand = (lock: string, yEnd: number): void => {
    const cur = versionAt.get(lock);
    const x = colX.get(lock);
    if (cur === undefined || x === undefined) return;
    bandSegs.push(
      `<rect x="${x - 7}" y="${cur.y}" width="14" height="${Math.max(1, yEnd - cur.y)}" fill="${colourFor(cur.v)}" stroke="#8c959f" stroke-width="0.5"><title>${escapeXml(`${actorName(lock)}: table v${cur.v}`)}</title></rect>`,
      `<text x="${x + 10}" y="${cur.y + 11}" fill="${GREY}" font-size="10" font-weight="600">v${cur.v}</text>`,
    );
  };
  rows.forEach((r, i) => {
    if (r.e.kind !== 'version' || r.e.from === undefined) return;
    const v = r.e.detail?.['version'];
    if (typeof v !== 'number') return;
    const yy = (ys[i] as number) - ROW_H / 2;
    closeBand(r.e.from, yy);
    versionAt.set(r.e.from, { v, y: yy });
  });
  for (const lock of versionAt.keys()) closeBand(lock, bottom);

  // Lifelines and headers.
  for (const a of actors) {
    const x = colX.get(a) as number;
    const kind = actorKind(a);
    const colour = kind === 'authority' ? PURPLE : kind === 'phone' ? BLUE : '#24292f';
    const displayName = options.names?.[a];
    svg.push(`<line x1="${x}" y1="${HEAD_H}" x2="${x}" y2="${bottom}" stroke="#afb8c1" stroke-dasharray="4 4"/>`);
    svg.push(
      `<rect x="${x - COL_W / 2 + 12}" y="10" width="${COL_W - 24}" height="${HEAD_H - 18}" rx="8" fill="${colour}"/>`,
      `<text x="${x}" y="28" text-anchor="middle" fill="#ffffff" font-size="10" letter-spacing="1">${kind.toUpperCase()}</text>`,
      displayName === undefined
        ? `<text x="${x}" y="45" text-anchor="middle" fill="#ffffff" font-size="13" font-weight="600">${escapeXml(clip(actorName(a), COL_W - 36))}</text>`
        : `<text x="${x}" y="45" text-anchor="middle" fill="#ffffff" font-size="13" font-weight="600">${escapeXml(clip(`${displayName} · ${actorName(a)}`, COL_W - 36))}<title>${escapeXml(`${displayName} (${actorName(a)})`)}</title></text>`,
    );
  }
  svg.push(...bandSegs);
  svg.push(`<line x1="${LEFT - 8}" y1="${HEAD_H}" x2="${LEFT - 8}" y2="${bottom}" stroke="#d0d7de"/>`);
  svg.push(`<text x="${checksX}" y="40" fill="${GREY}" font-weight="600">expectations</text>`);

  for (const b of breaks) {
    const yy = b.y + BREAK_H / 2;
    svg.push(
      `<rect x="0" y="${b.y + 4}" width="${width}" height="${BREAK_H - 8}" fill="#f6f8fa"/>`,
      `<path d="M${LEFT - 20},${yy - 5} l6,10 l6,-10 l6,10" stroke="${GREY}" fill="none"/>`,
      `<text x="${LEFT + 8}" y="${yy + 4}" fill="${GREY}" font-style="italic">⋯ ${escapeXml(formatDuration(b.gap))} later</text>`,
    );
  }

  rows.forEach((r, i) => {
    const yy = ys[i] as number;
    const e = r.e;
    svg.push(`<text x="8" y="${yy + 4}" fill="${GREY}" font-family="ui-monospace, monospace" font-size="10">${escapeXml(formatTime(e.t))}</text>`);
    const fx = e.from === undefined ? undefined : colX.get(e.from);
    const tx = e.to === undefined ? undefined : colX.get(e.to);
    const title = `<title>${escapeXml(describe(e, r))}</title>`;
    switch (e.kind) {
      case 'message': {
        if (fx === undefined || tx === undefined) break;
        const failed = e.ok === false;
        const colour = failed ? RED : '#24292f';
        const label = r.count > 1 ? `${r.count} messages${r.bytes ? ` (${formatBytes(r.bytes)})` : ''}` : e.label;
        const sx = fx + (tx > fx ? 8 : -8);
        const ex = tx + (tx > fx ? -8 : 8);
        svg.push(
          `<g>${title}<line x1="${sx}" y1="${yy + 4}" x2="${ex}" y2="${yy + 4}" stroke="${colour}" stroke-width="${r.count > 1 ? 3 : 1.3}"${failed ? ' stroke-dasharray="5 3"' : ''} marker-end="url(#${failed ? 'arr-red' : 'arr'})"/>`,
          `<text x="${(fx + tx) / 2}" y="${yy - 2}" text-anchor="middle" fill="${colour}">${escapeXml(clip(label, Math.abs(tx - fx) - 12))}</text></g>`,
        );
        break;
      }
      case 'connection': {
        const bad = /lost|range|refus|fail/i.test(e.label) || e.ok === false;
        const colour = bad ? AMBER : GREY;
        const xs = [fx, tx].filter((x): x is number => x !== undefined);
        if (xs.length === 2) svg.push(`<line x1="${xs[0]}" y1="${yy}" x2="${xs[1]}" y2="${yy}" stroke="${colour}" stroke-dasharray="2 3"/>`);
        for (const x of xs) svg.push(`<circle cx="${x}" cy="${yy}" r="4" fill="#ffffff" stroke="${colour}" stroke-width="2"/>`);
        const mid = xs.length === 2 ? ((xs[0] as number) + (xs[1] as number)) / 2 : (xs[0] ?? LEFT + 40) + 12;
        svg.push(`<g>${title}<text x="${mid}" y="${yy - 5}" text-anchor="${xs.length === 2 ? 'middle' : 'start'}" fill="${colour}" font-style="italic">${escapeXml(clip(e.label, COL_W - 20))}</text></g>`);
        break;
      }
      case 'decision': {
        const x = fx ?? tx;
        if (x === undefined) break;
        const granted = isGranted(e);
        const text = clip(e.label, 150);
        // Bold text plus the ✔/✖ mark: wider than the plain-text character estimate.
        const w = Math.ceil((text.length + 2) * CHAR_W * 1.15) + 16;
        const who = typeof e.detail?.['credential'] === 'string' ? (e.detail['credential'] as string) : '';
        // The phone that asked gets the decision on its own lane too: a dashed line to the
        // lock's badge and a small mark, so a partner's unlocks are visible on the partner's lane.
        const asker = decisionPhone(e);
        const px = asker === undefined ? undefined : colX.get(asker);
        if (px !== undefined && px !== x) {
          const edge = px < x ? x - w / 2 : x + w / 2;
          svg.push(
            `<g class="asker">${title}<line x1="${px}" y1="${yy}" x2="${edge}" y2="${yy}" stroke="${granted ? GREEN : RED}" stroke-width="1.2" stroke-dasharray="3 3"/>`,
            `<circle cx="${px}" cy="${yy}" r="7" fill="${granted ? GREEN : RED}"/><text x="${px}" y="${yy + 4}" text-anchor="middle" fill="#ffffff" font-size="10" font-weight="700">${granted ? '✔' : '✖'}</text>`,
            `<text x="${px + (px < x ? 10 : -10)}" y="${yy - 5}" text-anchor="${px < x ? 'start' : 'end'}" fill="${GREY}" font-size="10">unlock</text></g>`,
          );
        }
        svg.push(
          `<g>${title}<rect x="${x - w / 2}" y="${yy - 10}" width="${w}" height="20" rx="10" fill="${granted ? GREEN : RED}"/>`,
          `<text x="${x}" y="${yy + 4}" text-anchor="middle" fill="#ffffff" font-weight="700">${granted ? '✔ ' : '✖ '}${escapeXml(text)}</text>`,
          who === '' ? '</g>' : `<text x="${x - w / 2 - 6}" y="${yy + 4}" text-anchor="end" fill="${GREY}" font-size="10">${escapeXml(clip(who, COL_W / 2))}</text></g>`,
        );
        break;
      }
      case 'fault': {
        const xs = [fx, tx].filter((x): x is number => x !== undefined);
        if (xs.length === 2) svg.push(`<line x1="${xs[0]}" y1="${yy}" x2="${xs[1]}" y2="${yy}" stroke="${RED}" stroke-width="2" stroke-dasharray="1 4"/>`);
        if (xs.length === 0) xs.push(LEFT + 20);
        for (const x of xs) svg.push(bolt(x, yy, '#ffd33d'));
        svg.push(`<g>${title}<text x="${(xs[0] as number) + 10}" y="${yy - 3}" fill="${RED}" font-weight="700">⚡ ${escapeXml(clip(e.label, COL_W * 1.5))}</text></g>`);
        break;
      }
      case 'version': {
        const x = fx ?? tx;
        if (x === undefined) break;
        svg.push(`<g>${title}<rect x="${x - 9}" y="${yy - 2}" width="18" height="4" fill="#24292f"/><text x="${x + 12}" y="${yy + 4}" fill="#24292f" font-weight="700">${escapeXml(clip(e.label, COL_W / 2 - 14))}</text></g>`);
        break;
      }
      case 'manager': {
        const x = fx ?? colX.get('authority') ?? LEFT + COL_W / 2;
        const refused = e.ok === false;
        const text = clip(e.label, COL_W * 1.4);
        const w = text.length * CHAR_W + 16;
        svg.push(
          `<g>${title}<rect x="${x - w / 2}" y="${yy - 10}" width="${w}" height="20" rx="3" fill="${refused ? '#ffebe9' : '#fbefff'}" stroke="${refused ? RED : PURPLE}"/>`,
          `<text x="${x}" y="${yy + 4}" text-anchor="middle" fill="${refused ? RED : '#24292f'}">${escapeXml(text)}</text></g>`,
        );
        break;
      }
      case 'expectation': {
        const pass = e.ok === true;
        svg.push(
          `<g>${title}<circle cx="${checksX + 8}" cy="${yy}" r="8" fill="${pass ? GREEN : RED}"/>`,
          `<text x="${checksX + 8}" y="${yy + 4}" text-anchor="middle" fill="#ffffff" font-weight="700">${pass ? '✔' : '✖'}</text>`,
          `<text x="${checksX + 22}" y="${yy + 4}" fill="${pass ? '#24292f' : RED}">${escapeXml(clip(e.label, RIGHT - 40))}</text></g>`,
        );
        break;
      }
      case 'note': {
        svg.push(`<g>${title}<text x="${LEFT + 4}" y="${yy + 4}" fill="${GREY}" font-style="italic">${escapeXml(clip(`— ${e.label}`, width - LEFT - 20))}</text></g>`);
        break;
      }
    }
  });
  if (omitted > 0)
    svg.push(`<text x="${LEFT + 4}" y="${bottom - 6}" fill="${RED}" font-weight="600">… ${omitted} further events not drawn (see the JSON trace)</text>`);
  svg.push('</svg>');

  const expectations = events.filter((e) => e.kind === 'expectation');
  const failed = expectations.filter((e) => e.ok !== true);
  const decisions = events.filter((e) => e.kind === 'decision');
  const verdict = expectations.length === 0 ? 'NO CHECKS' : failed.length === 0 ? 'PASS' : 'FAIL';
  const verdictColour = verdict === 'PASS' ? GREEN : verdict === 'FAIL' ? RED : GREY;
  const duration = events.length === 0 ? 0 : (events[events.length - 1] as TraceEvent).t;

  const expRows = expectations
    .map(
      (e) =>
        `<tr class="${e.ok === true ? 'pass' : 'fail'}"><td>${e.ok === true ? '✔ pass' : '✖ FAIL'}</td><td class="mono">${escapeXml(formatTime(e.t))}</td><td>${escapeXml(e.label)}</td><td class="mono">${escapeXml(valueText(e.detail?.['expected']))}</td><td class="mono">${escapeXml(valueText(e.detail?.['actual']))}</td></tr>`,
    )
    .join('\n');

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(`locksync timeline — ${trace.scenario}`)}</title>
<style>
body { font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #24292f; background: #f6f8fa; }
header { padding: 16px 24px; background: #ffffff; border-bottom: 1px solid #d0d7de; display: flex; gap: 24px; align-items: center; flex-wrap: wrap; }
h1 { font-size: 20px; margin: 0; }
.verdict { font-weight: 800; color: #ffffff; padding: 6px 14px; border-radius: 6px; font-size: 18px; }
.meta { color: #57606a; font-size: 13px; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
main { padding: 16px 24px; }
.diagram { overflow: auto; background: #ffffff; border: 1px solid #d0d7de; border-radius: 6px; }
.legend { display: flex; gap: 18px; flex-wrap: wrap; font-size: 12px; color: #57606a; margin: 8px 0 12px; }
.legend span b { display: inline-block; width: 12px; height: 12px; border-radius: 6px; vertical-align: -2px; margin-right: 4px; }
table { border-collapse: collapse; width: 100%; background: #ffffff; margin-top: 16px; font-size: 13px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid #d0d7de; vertical-align: top; }
tr.fail td { background: #ffebe9; color: #82071e; }
tr.pass td:first-child { color: #1a7f37; font-weight: 600; }
</style>
</head>
<body>
<header>
<span class="verdict" style="background:${verdictColour}">${verdict}</span>
<div><h1>${escapeXml(trace.scenario)}</h1>
<div class="meta">seed <span class="mono">${escapeXml(String(trace.seed))}</span> · ${expectations.length - failed.length}/${expectations.length} expectations passed · ${decisions.length} access decisions · ${events.length} events over ${escapeXml(formatDuration(duration))} (simulated) · started ${escapeXml(trace.startedAt)}</div>
<div class="meta">trace hash <span class="mono">${escapeXml(hash)}</span></div>
${options.replayCommand === undefined ? '' : `<div class="meta">replay: <span class="mono">${escapeXml(options.replayCommand)}</span></div>`}
</div>
</header>
<main>
<div class="legend">
<span><b style="background:${GREEN}"></b>granted</span><span><b style="background:${RED}"></b>refused / failed</span>
<span><b style="background:${AMBER}"></b>connection trouble</span><span><b style="background:#ffd33d"></b>⚡ injected fault</span>
<span><b style="background:${PURPLE}"></b>manager operation</span><span><b style="background:${VERSION_COLOURS[0]};border:1px solid #8c959f"></b>table version in force at the lock</span>
${collapsed ? '<span>runs of frames between the same two actors are collapsed into one thick arrow</span>' : ''}
</div>
<div class="diagram">
${svg.join('\n')}
</div>
<table>
<thead><tr><th>result</th><th>time</th><th>expectation</th><th>expected</th><th>actual</th></tr></thead>
<tbody>
${expRows === '' ? '<tr><td colspan="5">no expectations recorded</td></tr>' : expRows}
</tbody>
</table>
</main>
</body>
</html>
`;
}

function formatTime(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `+${s.toFixed(3)}s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : m}:${sec.toFixed(3).padStart(6, '0')}`;
}

function formatBytes(n: number): string {
  return n < 10_000 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`;
}

function valueText(v: unknown): string {
  if (v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function describe(e: TraceEvent, r: Row): string {
  const parts = [`${formatTime(e.t)} ${e.kind}`, e.from !== undefined ? `${e.from}${e.to !== undefined ? ` → ${e.to}` : ''}` : '', e.label];
  if (r.count > 1) parts.push(`${r.count} events until ${formatTime(r.lastT)}`);
  if (e.detail !== undefined) parts.push(JSON.stringify(e.detail));
  return parts.filter((p) => p !== '').join(' · ');
}
