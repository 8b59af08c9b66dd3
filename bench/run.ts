// npm run bench — every figure the project reports, measured on this machine.
//
//   npm run bench                         everything (4–6 minutes on 2 cores)
//   npm run bench -- --quick              without the component benches (radio, authority), fleet up to 1,000 locks
//   npm run bench -- --only door-sync,fleet
//   npm run bench -- --json out/x.json    where the JSON goes (default out/bench-results.json)
//   npm run bench -- --worst-scale 8      time scale of the worst-profile 10,000-credential sync (0 = skip it)
//
// Sections: door-sync (Door Sync over bleno ↔ noble through the virtual radio, with the
// protocol overhead and bytes per credential measured on the air), lock (decision latency
// and delta apply at 10,000 entries), fleet (simulated locks per process), radio and
// authority (the component benches). Benchmarks print figures; they assert nothing.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { benchDoorSync, CASE_NAMES, LINK_PROFILES, type CaseName, type DoorSyncCase, type DoorSyncOptions } from './door-sync';
import { benchFleet, type FleetResult } from './fleet';
import { formatTable, machineInfo, round, type Cell } from './util';
import { DEVICE_PROFILE_NAMES, type DeviceProfileName, isDeviceProfileName } from '../firmware-sim/device-profile';
import { ADVERTISING_INTERVALS_MS, DEFAULT_WAN, benchRevocationMatrix, revocationMatrixTable, type MatrixOptions, type WanModel } from './revocation-matrix';

const SECTIONS = ['door-sync', 'revocation-matrix', 'lock', 'radio', 'authority', 'fleet'] as const;
type Section = (typeof SECTIONS)[number];

interface BenchOptions {
  sections: Set<Section>;
  quick: boolean;
  json: string;
  worstScale: number;
  devices: DeviceProfileName[];
  matrixRuns: number;
  wan: WanModel;
  /** Link profiles (door-sync, revocation-matrix); undefined = all. */
  profiles?: string[];
  /** Door Sync cases; undefined = all. */
  cases?: CaseName[];
  /** Advertising intervals of the revocation matrix, ms; undefined = all. */
  intervals?: number[];
}

function parseOptions(): BenchOptions {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      json: { type: 'string', default: 'out/bench-results.json' },
      'worst-scale': { type: 'string', default: '8' },
      devices: { type: 'string', default: 'nrf52840,esp32-c3' },
      'matrix-runs': { type: 'string', default: '3' },
      'wan-rtt': { type: 'string', default: String(DEFAULT_WAN.rttMs) },
      'wan-jitter': { type: 'string', default: String(DEFAULT_WAN.jitterMs) },
      profiles: { type: 'string' },
      cases: { type: 'string' },
      intervals: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(`usage: npm run bench -- [--quick] [--only ${SECTIONS.join(',')}] [--json FILE] [--worst-scale N] [--devices nrf52840,esp32-c3|none] [--matrix-runs N] [--wan-rtt MS] [--wan-jitter MS] [--profiles ${LINK_PROFILES.map((p) => p.name).join(',')}] [--cases ${CASE_NAMES.join(',')}] [--intervals ${ADVERTISING_INTERVALS_MS.join(',')}]`);
    process.exit(0);
  }
  let sections: Set<Section>;
  if (values.only !== undefined) {
    const asked = values.only.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = asked.filter((s) => !(SECTIONS as readonly string[]).includes(s));
    if (unknown.length > 0) throw new Error(`--only: unknown section(s) ${unknown.join(', ')}; known: ${SECTIONS.join(', ')}`);
    sections = new Set(asked as Section[]);
  } else {
    sections = new Set(values.quick ? ['door-sync', 'lock', 'fleet'] : SECTIONS);
  }
  const worstScale = Number(values['worst-scale']);
  if (!Number.isFinite(worstScale) || worstScale < 0) throw new Error(`--worst-scale must be a number ≥ 0, got ${values['worst-scale']}`);
  const devices = (values.devices ?? '').split(',').map((d) => d.trim()).filter((d) => d !== '' && d !== 'none');
  const badDevice = devices.find((d) => !isDeviceProfileName(d));
  if (badDevice !== undefined) throw new Error(`--devices: unknown device profile ${badDevice}; known: ${DEVICE_PROFILE_NAMES.join(', ')} (or none)`);
  const number = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}, got ${v}`);
    return n;
  };
  const matrixRuns = Math.floor(number('matrix-runs', values['matrix-runs'], 1));
  const wan: WanModel = { rttMs: number('wan-rtt', values['wan-rtt'], 0), jitterMs: number('wan-jitter', values['wan-jitter'], 0) };
  const list = (name: string, v: string | undefined, known: readonly string[]): string[] | undefined => {
    if (v === undefined) return undefined;
    const asked = v.split(',').map((x) => x.trim()).filter(Boolean);
    const bad = asked.find((x) => !known.includes(x));
    if (bad !== undefined || asked.length === 0) throw new Error(`--${name}: unknown value ${bad ?? '(empty)'}; known: ${known.join(', ')}`);
    return asked;
  };
  const out: BenchOptions = { sections, quick: values.quick ?? false, json: values.json ?? 'out/bench-results.json', worstScale, devices: devices as DeviceProfileName[], matrixRuns, wan };
  const profiles = list('profiles', values.profiles, LINK_PROFILES.map((p) => p.name));
  if (profiles) out.profiles = profiles;
  const cases = list('cases', values.cases, CASE_NAMES);
  if (cases) out.cases = cases as CaseName[];
  const intervals = list('intervals', values.intervals, ADVERTISING_INTERVALS_MS.map(String));
  if (intervals) out.intervals = intervals.map(Number);
  return out;
}

const progress = (line: string): void => void process.stderr.write(`${line}\n`);
const s = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : round(ms / 1000, ms < 10_000 ? 3 : 1));

function doorSyncTables(all: DoorSyncCase[]): string {
  const cases = all.filter((c) => c.device === 'host');
  const main = formatTable(
    'Door Sync over bleno ↔ noble through the virtual radio: scan start → receipt at authority',
    ['profile', 'case', 'update', 'update B', 'model s', 'wall s', 'bound(update) s', 'ratio', 'bound(all frames) s', 'ratio', 'update on air / bound', 'time scale'],
    cases.map((c): Cell[] =>
      c.ok
        ? [c.profile, c.case, c.updateType, c.updateBytes, s(c.modelMs), s(c.wallMs), s(c.boundUpdateMs), c.ratioTotalOverUpdateBound, s(c.boundAllFramesMs), c.ratioTotalOverAllFramesBound, c.ratioUpdateOnAirOverBound, c.timeScale]
        : [c.profile, c.case, c.skipped ? 'SKIPPED' : 'FAILED', null, null, null, null, null, null, null, null, c.timeScale],
    ),
    [
      'model s: the radio controllers\' clock (link-layer timing); wall s: real time. At time scale 8 the model runs 8× faster than the wall, so host (JS) latency counts 8× in model time: a pessimistic figure.',
      'bound(update): analytical airtime of the update message bytes alone, streamed one way phone → lock as ATT Write Commands at the profile (radio/airtime.ts transferAirtimeBound).',
      'bound(all frames): the same for every locksync frame byte that crossed (update, signed time, audit request, acks phone → lock + hello, time ack, receipt, audit export, acks lock → phone), the two directions added.',
      'ratio = model s / bound — the headline (goal ≤ 1.10× for the 10,000-credential snapshot). Neither bound contains connection set-up (scan, connect, MTU exchange, GATT discovery, subscribe), which the measured time does.',
      'Conditions: the lock advertises every 20 ms; the authority (SQLite, HTTP on 127.0.0.1) serves from its own worker thread, as a cloud runs on its own machine; each world first syncs a second door once (one credential) and switches it off, so the authority thread and the phone have run their code before the timed syncs.',
      'update on air / bound: first to last frame of the update message on the air (plus the first PDU\'s airtime) over bound(update): link efficiency of the framing alone.',
      ...cases.filter((c) => !c.ok).map((c) => `${c.profile} ${c.case}: ${c.skipped ?? c.error}`),
    ],
  );
  const phaseOrder = ['connecting', 'connected', 'fetched', 'receipt', 'audit', 'relayed'];
  const phases = formatTable(
    'Door Sync phases (model ms, each from the previous mark)',
    ['profile', 'case', 'scan+connect+GATT+hello', 'fetch updates + signed time (HTTP, in parallel)', 'signed time + update on air + apply + receipt', 'audit export', 'relay to authority (HTTP)'],
    cases
      .filter((c) => c.ok && c.phasesModelMs)
      .map((c): Cell[] => {
        const p = c.phasesModelMs as Record<string, number>;
        const row: Cell[] = [c.profile, c.case];
        let prev = 0;
        for (const name of phaseOrder.slice(1)) {
          const at = p[name];
          if (at === undefined) row.push(null);
          else {
            row.push(round(at - prev, 1));
            prev = at;
          }
        }
        return row;
      }),
    ['The signed time goes to the lock right ahead of the update and both answers are read in order (one round trip). A fresh lock (version 0) holds no certificate for the authority\'s online key until its first update, so the signed time follows the update (with the audit request, in one batch sent right behind it) and is answered after the receipt: counted in the audit-export phase there.'],
  );
  return `${main}\n${phases}\n${deviceTable(all)}`;
}

/** Door Sync with the lock on each device profile, beside the same case on this host. */
function deviceTable(all: DoorSyncCase[]): string {
  const onDevice = all.filter((c) => c.device !== 'host');
  if (onDevice.length === 0) return '';
  const hostOf = (c: DoorSyncCase) => all.find((h) => h.device === 'host' && h.profile === c.profile && h.case === c.case && h.ok);
  const rows = onDevice.map((c): Cell[] => {
    const h = hostOf(c);
    const w = c.lockWork;
    return [
      c.profile,
      c.case,
      c.device,
      h ? s(h.modelMs) : null,
      c.ok ? s(c.modelMs) : c.error ?? 'FAILED',
      c.ok && h?.modelMs !== undefined && c.modelMs !== undefined ? s(c.modelMs - h.modelMs) : null,
      c.lockDeviceMs !== undefined ? s(c.lockDeviceMs) : null,
      w ? `${w.verifies} verify, ${w.signs} sign, ${w.sha256Blocks} SHA blocks, ${w.bytesProgrammed} B programmed, ${w.erases} erases` : null,
    ];
  });
  return formatTable(
    'Door Sync with the lock on a device profile: scan start → receipt at authority (model s), on this host beside on this profile',
    ['profile', 'case', 'device', 'on this host s', 'on this profile s', 'difference s', 'lock work priced s', 'lock work during the sync'],
    rows,
    [
      'on this profile: the same world with World option device: every answer of the lock waits, on the radio clock, the device time its work costs (firmware-sim/device-profile.ts; sources in firmware-sim/README.md). Host runs and profile runs are separate worlds, so the difference also holds run-to-run noise.',
      'lock work priced: the lock\'s metered work during the sync (Ed25519 verifies and signs, SHA-256 blocks, bytes programmed, block erases) at the profile\'s figures; CBOR decoding and map look-ups are not modelled (a new phone key is checked on its bytes, no point decompression: SPEC §3.3).',
    ],
  );
}

function overheadTable(cases: DoorSyncCase[]): string {
  const ok = cases.filter((c) => c.ok && c.air);
  const rows = ok.map((c): Cell[] => {
    const a = c.air as NonNullable<DoorSyncCase['air']>;
    const msg = a.phoneToLock.messageBytes + a.lockToPhone.messageBytes;
    const frames = a.phoneToLock.frameBytes + a.lockToPhone.frameBytes;
    const onAir = a.phoneToLock.locksyncOnAirBytes + a.lockToPhone.locksyncOnAirBytes;
    return [
      c.profile,
      c.case,
      c.link ? `${c.link.intervalMs} ms/${c.link.phy}/DL ${c.link.dataLength}/MTU ${c.link.attMtu ?? '?'}` : null,
      msg,
      frames,
      onAir,
      c.overheadFramesOverMessages,
      c.overheadOnAirOverMessages,
      round(a.phoneToLock.locksyncOnAirBytes / a.phoneToLock.messageBytes, 3),
    ];
  });
  const perCredential = formatTable(
    'Bytes per credential (phone credentials, measured at the lock after the sync)',
    ['profile', 'case', 'entries', 'update B', 'update B / entry', 'encoded entry B (mean)', 'table B', 'table B / entry'],
    cases
      .filter((c) => c.ok && c.case !== 'revocation')
      .map((c): Cell[] => [c.profile, c.case, c.credentials, c.updateBytes, c.bytesPerCredential, c.entryBytes, c.tableBytes, c.tableBytes !== undefined ? round(c.tableBytes / c.credentials, 1) : null]),
  );
  return (
    formatTable(
      'Protocol overhead on the air (captured on the radio link during each Door Sync)',
      ['profile', 'case', 'link as negotiated', 'message B', 'frame B', 'on-air B', 'frames / payload', 'on air / payload', 'phone→lock on air / payload'],
      rows,
      [
        'message B: protocol messages both ways (sizes announced by the framing START frames); frame B: locksync frames (framing headers, acks, HELLOs);',
        'on-air B: every LL data PDU that carried a frame: ATT header 3 + L2CAP 4 + LL header 2 + CRC 3 + access address 4 + preamble (1 on 1M, 2 on 2M). Empty LL PDUs (polls/acks) are airtime but not counted as bytes.',
      ],
    ) + `\n${perCredential}`
  );
}

function lockTable(r: Record<string, any>): string {
  const u = r.unlockDecisions ?? {};
  const host = formatTable(
    `Lock side with a 10,000-entry table (${Number(r.entries).toLocaleString('en-US')} after the delta-apply run; firmware-sim/bench.ts benchLock) — on this host`,
    ['figure', 'p50 / value', 'p99', 'max', 'note'],
    [
      ['unlock decision, phone', r.unlockPhoneMs?.p50, r.unlockPhoneMs?.p99, r.unlockPhoneMs?.max, `ms; challenge response → decision, incl. Ed25519 verify (${r.ed25519Backend}) + audit append; ${u.measured} decisions after ${u.warmup} warm-up`],
      ['  first decision after a delta', r.unlockAfterDeltaMs?.p50, null, r.unlockAfterDeltaMs?.max, `ms; a 1-op delta every ${u.deltaEvery} decisions (${r.unlockAfterDeltaMs?.n} of them): the secret index is carried, not rebuilt`],
      ['unlock decision, keycard', r.keycardMs?.p50, r.keycardMs?.p99, null, 'ms'],
      ['unlock decision, doorcode', r.doorcodeMs?.p50, r.doorcodeMs?.p99, null, 'ms'],
      ['delta apply (10 ops each)', r.deltaApply?.deltasPerSec, null, null, 'deltas/s incl. verify + flash commit'],
      ['delta apply, ops', r.deltaApply?.opsPerSec, null, null, 'ops/s'],
      ['flash programmed per delta', r.deltaApply?.flashBytesProgrammedPerDelta, null, null, `bytes; ${r.deltaApply?.erasesPerDelta} block erases per delta`],
      ['bulk delta of 10,000 entries', r.bulkDelta10kEntriesMs, null, null, 'ms, one apply + commit'],
      ['snapshot of 10,000 entries to a fresh lock', r.snapshot10kToFreshLockMs?.min, null, null, `ms, fastest of 5 fresh locks (median ${r.snapshot10kToFreshLockMs?.median}): decode, verify, digest, commit, index, receipt`],
      ['flash bytes per credential', r.flashBytesPerCredential, null, null, `table ${r.tableBytes} bytes`],
    ],
    ['Host figures are wall-clock and move with the machine\'s load (see uptime beside the run).'],
  );
  const w = r.unlockPhoneWork ?? {};
  const rows: Cell[][] = Object.entries((r.unlockPhoneOnProfileMs ?? {}) as Record<string, any>).map(([name, x]): Cell[] => [
    name,
    x.p50,
    x.p99,
    x.max,
    `${x.decisionsWithErase} / ${u.measured}`,
    x.busyP99,
    x.busyMax,
    `${x.busyDecisionsWithErase} / ${x.busyDecisions}`,
  ]);
  const device = formatTable(
    'Phone unlock decision on the device profiles (the same decisions\' work priced by firmware-sim/device-profile.ts), ms',
    ['profile', 'p50', 'p99', 'max', 'decisions paying an erase', 'p99, never idle', 'max, never idle', 'paying an erase, never idle'],
    rows,
    [
      `work per decision (mean): ${w.verifies} Ed25519 verify, ${w.sha256Blocks} SHA-256 blocks, ${w.bytesProgrammed} bytes programmed (audit record), ${w.erases} erases. CBOR and look-ups are not modelled.`,
      'idle: the lock has no session open for ≥ 0.5 s between decisions, so erase-ahead prepares the next audit block; never idle: another phone keeps a session open, so the erase lands in the unlock path (before erase-ahead: every lock, one decision in ~63).',
    ],
  );
  return `${host}\n${device}`;
}

function fleetTable(r: FleetResult): string {
  const rows = r.steps.map((st, i): Cell[] => {
    const prev = r.steps.slice(0, i).reverse().find((p) => p.ok);
    const marginalRss = prev && st.ok ? round(((st.rssMiB - prev.rssMiB) * 1024) / (st.locks - prev.locks), 1) : null;
    const marginalHeap = prev && st.ok ? round(((st.heapUsedMiB - prev.heapUsedMiB) * 1024) / (st.locks - prev.locks), 1) : null;
    return [st.locks, st.ok ? 'ok' : 'FAILED', st.createSeconds, st.syncSeconds, st.syncsPerSecond, st.heapUsedMiB, st.rssMiB, st.heapPerLockKiB, st.rssPerLockKiB, marginalHeap, marginalRss, st.externalPerLockKiB];
  });
  return formatTable(
    'Fleet: simulated locks held and synced by one process (transport sim, authority over HTTP)',
    ['locks', 'status', 'create s', 'sync s', 'syncs/s', 'heap MiB', 'rss MiB', 'heap/lock KiB', 'rss/lock KiB', 'marginal heap/lock KiB', 'marginal rss/lock KiB', 'external/lock KiB'],
    rows,
    [
      `each lock: its own emulated 2 MiB NOR flash, sparse — it holds ${round((r.steps.at(-1)?.flashBytesPerLock ?? 0) / 1024, 1)} KiB (the blocks it wrote), outside the JS heap — ${r.steps[0]?.credentialsPerLock ?? '?'} credentials, synced once (HTTP fetch, snapshot, receipt, audit relay), one after another.`,
      'per-lock figures: (after − before) / locks, measured after a full GC with the whole world still open; marginal: between this step and the previous one.',
      `stopped: ${r.stoppedBecause}.`,
    ],
  );
}

function radioTable(r: Record<string, any>): string {
  const rows: Cell[][] = [];
  for (const [k, v] of Object.entries(r.launchToConnected ?? {})) {
    const x = v as Record<string, number>;
    rows.push([`launch → connected, ${k.replace('advertising', 'advertising ')}`, `${x.medianMs} ms median (min ${x.minMs}, max ${x.maxMs}, ${x.runs} runs)`]);
  }
  for (const t of (r.throughput100KiB ?? []) as Record<string, any>[]) {
    rows.push([`100 KiB, ${t.profile}`, `${t.measuredKiBps} KiB/s vs bound ${t.boundKiBps} KiB/s = ${t.measuredOverBound}× the bound time (model ${t.modelSeconds} s, wall ${t.wallSeconds} s, time scale ${t.timeScale})`]);
  }
  const links = r.simultaneousLinks as Record<string, any> | undefined;
  if (links) {
    rows.push(['simultaneous links streaming at ≥ 90 % of bound', `${links.maxLinksAtFullBound} (7.5 ms, 2M, DL 251; tried ${links.runs.map((x: any) => x.links).join(', ')})`]);
    rows.push(['simultaneous links, light sync-like traffic', `${links.lightTraffic?.maxLinksHeld} held with every packet delivered (tried ${links.lightTraffic?.runs.map((x: any) => x.links).join(', ')})`]);
  }
  return formatTable('Radio (radio/bench.ts benchRadio)', ['figure', 'value'], rows);
}

function authorityTable(r: Record<string, any>): string {
  const d = r.deltaBytes ?? {};
  return formatTable(
    `Authority (authority/bench.ts benchAuthority) on ${r.engine}: ${r.property?.doors} doors, ${r.property?.users} users, ${r.property?.credentials} credentials`,
    ['figure', 'value'],
    [
      ['compile + sign after a Key change, unit door', `${r.compileAndSignAfterKeyChangeMs?.unitDoor?.median} ms median (${r.compileAndSignAfterKeyChangeMs?.unitDoor?.entriesAtLock} entries)`],
      ['compile + sign after a Key change, communal door', `${r.compileAndSignAfterKeyChangeMs?.communalDoor?.median} ms median (${r.compileAndSignAfterKeyChangeMs?.communalDoor?.entriesAtLock} entries)`],
      ['serve a delta (GET updates)', `${r.serveDeltaMs?.median} ms median`],
      ...Object.entries(d).map(([k, v]): Cell[] => [`update size: ${k}`, `${(v as any).bytes} bytes (${(v as any).type}${(v as any).ops ? `, ${(v as any).ops} ops` : ''})`]),
      ['certificate bytes (only to a lock that lacks the current one)', r.certificateBytesWhenLockLacksIt],
      ['database size per 1,000 credentials', `${r.database?.bytesPer1000Credentials} bytes (${r.database?.bytes} bytes total)`],
      ['property set-up (one transaction)', `${r.property?.setupSeconds} s`],
    ],
  );
}

async function main(): Promise<number> {
  const opts = parseOptions();
  const started = performance.now();
  const machine = machineInfo();
  const results: Record<string, unknown> = { machine, startedAt: new Date().toISOString(), options: { sections: [...opts.sections], quick: opts.quick, worstScale: opts.worstScale } };
  const failures: string[] = [];
  console.log(`locksync benchmarks — ${machine.cpuModel}, ${machine.cores} cores, ${machine.ramGiB} GiB RAM, Node ${machine.node}, ${machine.platform}`);

  const run = async <T>(section: Section, body: () => Promise<T>, print: (r: T) => string, key: string = section): Promise<void> => {
    if (!opts.sections.has(section)) return;
    const t0 = performance.now();
    progress(`[bench] ${section} …`);
    try {
      const r = await body();
      results[key] = r;
      console.log(print(r));
    } catch (e) {
      const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
      failures.push(`${section}: ${message}`);
      results[section] = { error: message };
      console.log(`\n== ${section}: FAILED\n${message}`);
    }
    progress(`[bench] ${section} done in ${round((performance.now() - t0) / 1000, 1)} s`);
  };

  await run(
    'door-sync',
    async () => {
      const ds: DoorSyncOptions = { worstLargeTimeScale: opts.worstScale, devices: opts.devices, log: progress };
      if (opts.profiles) ds.profiles = opts.profiles;
      if (opts.cases) ds.cases = opts.cases;
      const cases = await benchDoorSync(ds);
      for (const c of cases) if (!c.ok && !c.skipped) failures.push(`door-sync ${c.profile} ${c.case}${c.device === 'host' ? '' : ` (${c.device})`}: ${c.error}`);
      return { profiles: LINK_PROFILES, cases };
    },
    (r) => `${doorSyncTables(r.cases)}\n${overheadTable(r.cases.filter((c) => c.device === 'host'))}`,
  );
  const matrix: MatrixOptions = { runs: opts.matrixRuns, wan: opts.wan, log: progress };
  if (opts.profiles) matrix.profiles = opts.profiles;
  if (opts.intervals) matrix.intervals = opts.intervals;
  await run('revocation-matrix', () => benchRevocationMatrix(matrix), revocationMatrixTable);
  await run('lock', async () => (await import('../firmware-sim/bench')).benchLock(), lockTable);
  await run('radio', async () => (await import('../radio/bench')).benchRadio(), radioTable);
  await run('authority', async () => (await import('../authority/bench')).benchAuthority(), authorityTable);
  // The same property on PostgreSQL, printed beside SQLite's, when a server is named.
  const postgresUrl = process.env.LOCKSYNC_BENCH_POSTGRES_URL;
  if (postgresUrl) await run('authority', async () => (await import('../authority/bench')).benchAuthority({ postgresUrl }), authorityTable, 'authority-postgres');
  // Last: it leaves the process with gigabytes of freed flash images, which slows what follows.
  await run('fleet', () => benchFleet({ steps: opts.quick ? [100, 500, 1000] : [100, 1000, 4000, 10_000, 12_000], stepBudgetSeconds: opts.quick ? 150 : 900, log: progress }), fleetTable);

  results.durationSeconds = round((performance.now() - started) / 1000, 1);
  results.failures = failures;
  const jsonPath = resolve(opts.json);
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(results, null, 2) + '\n');
  console.log(`\nJSON: ${jsonPath}  (${results.durationSeconds} s)`);
  if (failures.length > 0) {
    console.log(`\n${failures.length} failure(s):\n${failures.map((f) => `  - ${f.split('\n')[0]}`).join('\n')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(2);
  },
);
