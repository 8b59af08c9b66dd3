import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../protocol';
import { canonicalJson, parseTrace, renderTimeline, traceHash, TraceError, TraceRecorder, type Trace } from './index';

/** A plausible run: partner revoked at an offline lock, seeded jitter and frame counts. */
function sampleTrace(seed: number, frames = 8, startedAt = '2025-01-01T00:00:00.000Z'): Trace {
  const rnd = new SeededRandom(seed);
  const rec = new TraceRecorder('partner unassigned <offline> & "quoted"', seed, startedAt);
  let t = 0;
  const tick = (): number => (t += rnd.int(1, 40));
  rec.record({ t, kind: 'version', from: 'lock:lk-0001', label: 'v1', detail: { version: 1 } });
  rec.record({ t: tick(), kind: 'connection', from: 'phone:courier-1', to: 'lock:lk-0001', label: 'connected' });
  rec.record({ t: tick(), kind: 'decision', from: 'lock:lk-0001', label: 'GRANTED', ok: true, detail: { credential: 'partner parcelco' } });
  rec.record({ t: (t += 60_000), kind: 'manager', from: 'authority', label: 'unassignPartner parcelco from lk-0001', ok: true });
  rec.record({ t: (t += 600_000), kind: 'connection', from: 'phone:alice-phone', to: 'lock:lk-0001', label: 'connected' });
  rec.message(tick(), 'phone:alice-phone', 'authority', 'GET updates?from=1');
  rec.message(tick(), 'authority', 'phone:alice-phone', 'delta v1→v2 (212 B)', { bytes: 212, raw: new Uint8Array([1, 2, 0xff]) });
  rec.record({ t: tick(), kind: 'fault', from: 'phone:alice-phone', to: 'lock:lk-0001', label: 'link drop at packet 12' });
  for (let i = 0; i < frames; i++) rec.message(tick(), i % 2 ? 'lock:lk-0001' : 'phone:alice-phone', i % 2 ? 'phone:alice-phone' : 'lock:lk-0001', `frame ${i}`, { bytes: rnd.int(20, 244) });
  rec.record({ t: tick(), kind: 'version', from: 'lock:lk-0001', label: 'v2', detail: { version: 2 } });
  rec.message(tick(), 'phone:alice-phone', 'authority', 'receipt v2', { bytes: 120 }, true);
  rec.record({ t: tick(), kind: 'decision', from: 'lock:lk-0001', label: 'UNKNOWN_CREDENTIAL', ok: false, detail: { credential: '<script>alert(1)</script>' } });
  rec.record({ t: tick(), kind: 'expectation', label: 'steps[4] decision', ok: true, detail: { expected: 'UNKNOWN_CREDENTIAL', actual: 'UNKNOWN_CREDENTIAL' } });
  rec.record({ t: tick(), kind: 'expectation', label: 'steps[5] versionAtLock', ok: false, detail: { expected: '>= 3', actual: 2 } });
  rec.note(tick(), 'resident <b>taps</b> Sync');
  return rec.trace();
}

describe('TraceRecorder and traceHash', () => {
  it('same seed gives the same hash; startedAt does not count; another seed differs', () => {
    const a = sampleTrace(1, 8, '2025-01-01T00:00:00.000Z');
    const b = sampleTrace(1, 8, '2030-06-01T12:00:00.000Z');
    expect(traceHash(a)).toBe(traceHash(b));
    expect(traceHash(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(traceHash(sampleTrace(2))).not.toBe(traceHash(a));
  });

  it('hash does not depend on key insertion order, and detail is normalised', () => {
    const r1 = new TraceRecorder('s', 1, 'x');
    const r2 = new TraceRecorder('s', 1, 'y');
    r1.record({ t: 0, kind: 'note', label: 'n', detail: { b: 1, a: { d: 2, c: 3 } } });
    r2.record({ label: 'n', detail: { a: { c: 3, d: 2 }, b: 1 }, kind: 'note', t: 0 });
    expect(traceHash(r1.trace())).toBe(traceHash(r2.trace()));
    const e = r1.record({ t: 1, kind: 'note', label: 'bytes', detail: { z: new Uint8Array([0, 255]), big: 10n, m: new Map([[2, 'two']]), u: undefined } });
    expect(e.detail).toEqual({ big: '10', m: { '2': 'two' }, z: '00ff' });
    expect(canonicalJson(e)).toBe('{"detail":{"big":"10","m":{"2":"two"},"z":"00ff"},"kind":"note","label":"bytes","t":1}');
  });

  it('refuses out-of-order times, bad actors, bad kinds and non-JSON values', () => {
    const r = new TraceRecorder('s', 1);
    r.note(10, 'a');
    expect(() => r.note(5, 'b')).toThrow(TraceError);
    expect(() => r.record({ t: 11, kind: 'message', from: 'bob', label: 'x' })).toThrow(/not 'authority'/);
    expect(() => r.record({ t: 11, kind: 'gossip' as never, label: 'x' })).toThrow(/unknown event kind/);
    expect(() => r.note(11, 'x', { n: Number.NaN })).toThrow(/not representable/);
    expect(() => r.note(11, 'x', { d: new Date(0) })).toThrow(/Date cannot go into a trace/);
    expect(r.length).toBe(1);
  });

  it('round-trips through JSON with the same hash', () => {
    const t = sampleTrace(3);
    const back = parseTrace(JSON.stringify(t));
    expect(back).toEqual(t);
    expect(traceHash(back)).toBe(traceHash(t));
    expect(() => parseTrace('{"scenario":1}')).toThrow(/scenario must be a string/);
    expect(() => parseTrace('{"scenario":"s","seed":1,"startedAt":"x","events":[{"t":-1,"kind":"note","label":"x"}]}')).toThrow(/events\[0\]/);
  });
});

describe('renderTimeline', () => {
  it('is one self-contained document with one inline SVG and no script or external assets', () => {
    const html = renderTimeline(sampleTrace(1));
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html.match(/<svg\b/g)).toHaveLength(1);
    expect(html.match(/<\/svg>/g)).toHaveLength(1);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\b(?:src|href)\s*=\s*["'](?!#)/i);
    expect(html).not.toMatch(/url\((?!#)/);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
  });

  it('escapes every label', () => {
    const html = renderTimeline(sampleTrace(1));
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('partner unassigned &lt;offline&gt; &amp; &quot;quoted&quot;');
    expect(html).toContain('resident &lt;b&gt;taps&lt;/b&gt; Sync');
    expect(html).not.toContain('<b>taps</b>');
    expect(html).not.toMatch(/&(?!amp;|lt;|gt;|quot;|#39;)/);
  });

  it('shows decisions with their reasons, versions, faults, messages and expectations', () => {
    const t = sampleTrace(1);
    const html = renderTimeline(t, { replayCommand: 'locksync scenario run x.yaml --seed 1' });
    expect(html).toContain('✔ GRANTED');
    expect(html).toContain('✖ UNKNOWN_CREDENTIAL');
    expect(html).toContain('delta v1→v2 (212 B)');
    expect(html).toContain('link drop at packet 12');
    expect(html).toMatch(/>v1<\/text>/);
    expect(html).toMatch(/>v2<\/text>/);
    expect(html).toContain('1/2 expectations passed');
    expect(html).toContain('>FAIL<');
    expect(html).toContain(traceHash(t));
    expect(html).toContain('locksync scenario run x.yaml --seed 1');
    expect(html).toContain('10m later'); // the 10-minute gap is an axis break, not 10 minutes of pixels
    expect(html).toContain('<polygon'); // lightning bolt
  });

  it('draws a phone unlock on the asking phone\'s lane too, and doors by name beside their ids', () => {
    const t: Trace = {
      scenario: 'lanes',
      seed: 1,
      startedAt: 'x',
      events: [
        // The demo names the phone in `to`; the scenario runner in detail.input.
        { t: 0, kind: 'decision', from: 'lock:lk-0001', to: 'phone:partner', label: 'GRANTED', ok: true },
        { t: 10, kind: 'decision', from: 'lock:lk-0001', label: 'UNKNOWN_CREDENTIAL', ok: false, detail: { input: 'phone courier-1' } },
        { t: 20, kind: 'decision', from: 'lock:lk-0001', label: 'GRANTED', ok: true, detail: { input: 'keypad 1234567' } },
      ],
    };
    const html = renderTimeline(t, { names: { 'lock:lk-0001': 'Unit 4B' } });
    // Both phones get a lane (a header) and a mark per unlock on it; the keypad entry does not.
    expect(html).toContain('>partner</text>');
    expect(html).toContain('>courier-1</text>');
    expect(html.match(/<g class="asker">/g)).toHaveLength(2);
    expect(html).toContain('Unit 4B · lk-0001');
    expect(renderTimeline(t)).not.toContain('Unit 4B');
  });

  it('renders an empty trace', () => {
    const html = renderTimeline({ scenario: 'empty', seed: 0, startedAt: 'x', events: [] });
    expect(html).toContain('NO CHECKS');
    expect(html).toContain('no expectations recorded');
    expect(html.match(/<svg\b/g)).toHaveLength(1);
  });

  it('collapses 2,000 events into a bounded diagram, keeping decisions and expectations', () => {
    const big = sampleTrace(4, 2_000);
    expect(big.events.length).toBeGreaterThan(2_000);
    const html = renderTimeline(big);
    const height = Number(/<svg[^>]* height="(\d+(?:\.\d+)?)"/.exec(html)?.[1]);
    expect(height).toBeLessThan(900 * 40);
    expect(html).toMatch(/\d+ messages \(\d+(?:\.\d)? (?:B|KiB)\)/);
    expect(html).toContain('✖ UNKNOWN_CREDENTIAL');
    expect(html).toContain('steps[5] versionAtLock');
    expect(html.length).toBeLessThan(2_000_000);
  });
});

function findChromium(): string | undefined {
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  for (const dir of (process.env['PATH'] ?? '').split(delimiter))
    for (const name of ['chromium', 'chromium-browser']) {
      const p = join(dir, name);
      if (dir !== '' && existsSync(p)) return p;
    }
  return undefined;
}

const chromium = findChromium();
if (chromium === undefined) console.warn('NOTICE: no chromium on this machine (/usr/bin/chromium, chromium, chromium-browser): skipping the headless rendering check of the timeline');

describe('timeline in headless Chromium', () => {
  it.skipIf(chromium === undefined)('renders to a non-blank screenshot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'locksync-timeline-'));
    try {
      const htmlPath = join(dir, 'timeline.html');
      const png = join(dir, 'shot.png');
      writeFileSync(htmlPath, renderTimeline(sampleTrace(1, 30)));
      execFileSync(
        chromium as string,
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          `--user-data-dir=${join(dir, 'profile')}`,
          `--screenshot=${png}`,
          '--window-size=1400,900',
          `file://${htmlPath}`,
        ],
        { stdio: 'pipe', timeout: 50_000 },
      );
      expect(existsSync(png)).toBe(true);
      const bytes = readFileSync(png);
      expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
      expect(bytes.readUInt32BE(16)).toBe(1400);
      expect(bytes.readUInt32BE(20)).toBe(900);
      // A blank 1400×900 page compresses to a few KB; a drawn diagram does not.
      expect(statSync(png).size).toBeGreaterThan(20_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
