// Expected flash lifetime from the wear counters of a long simulated run.
//
//   npm run flash-lifetime -- [--syncs 10] [--unlocks 50] [--days 60] [--seed 1]
//
// A lock on the default device (2 MiB: 512 × 4 KiB blocks, 16 B programs; 2-block metadata
// slots, 241-block table regions, 24-block audit ring) lives `days` simulated days. Each
// day: `syncs` Door Syncs as a phone runs them (nonce-bound signed time, a delta of two
// changes — one new keycard, one removed once the table holds 50 — the receipt, an audit
// export and the authority's anchor through the exported head), and `unlocks` card
// unlocks spread over the day. The erase counters per block give the hottest block's
// erases per day, and so the days until it reaches the part's endurance.

import { parseArgs } from 'node:util';
import { SeededRandom, decodeMessage, makeAuditAnchor, encodeMessage, type Message } from '../protocol';
import { CliError, EXIT_CODES, parseIntegerOption, reportFailure } from '../cli/errors';
import { DEFAULT_GEOMETRY } from './flash';
import { defaultLayoutParams } from './storage';
import { TestAuthority, createTestRig } from './test-authority';

export interface LifetimeOptions {
  syncsPerDay: number;
  unlocksPerDay: number;
  days: number;
  seed?: string | number;
}

export interface LifetimeReport extends LifetimeOptions {
  erases: number;
  /** Hottest block: which region it is in and how often it was erased. */
  hottest: { block: number; region: string; erases: number };
  erasesPerDayHottest: number;
  byRegion: Record<string, { blocks: number; maxErases: number; totalErases: number }>;
  /** Days until the hottest block reaches 10,000 / 100,000 cycles (∞ if never erased). */
  daysTo10k: number;
  daysTo100k: number;
  commits: number;
  auditRecords: number;
}

export function simulateLifetime(o: LifetimeOptions): LifetimeReport {
  const layout = defaultLayoutParams(DEFAULT_GEOMETRY);
  const rig = createTestRig({ seed: `lifetime/${o.seed ?? 1}`, geometry: DEFAULT_GEOMETRY, layout });
  const a = rig.auth;
  const rng = new SeededRandom(`lifetime/${o.seed ?? 1}`);
  const uid = (i: number) => new Uint8Array([0x04, i & 0xff, (i >> 8) & 0xff, (i >> 16) & 0xff]);
  const live: number[] = [];
  let nextId = 1;
  let commits = 0;
  const proto = Object.getPrototypeOf(rig.lock.storage) as { commit: (...args: unknown[]) => unknown };
  const origCommit = proto.commit;
  proto.commit = function (this: unknown, ...args: unknown[]) {
    commits++;
    return origCommit.apply(this, args);
  };
  const one = (s: ReturnType<typeof rig.lock.openSession>, m: Message | Uint8Array): Message => decodeMessage(s.handle(m instanceof Uint8Array ? m : encodeMessage(m))[0] as Uint8Array);
  try {
    const daySeconds = 86_400;
    const events = o.syncsPerDay + o.unlocksPerDay;
    for (let day = 0; day < o.days; day++) {
      // Interleave the day's syncs and unlocks at even spacing, in a seeded order.
      const kinds = [...Array<string>(o.syncsPerDay).fill('sync'), ...Array<string>(o.unlocksPerDay).fill('unlock')];
      for (let i = kinds.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [kinds[i], kinds[j]] = [kinds[j] as string, kinds[i] as string];
      }
      for (const kind of kinds) {
        rig.clock.advance(Math.floor((daySeconds * 1000) / Math.max(1, events)));
        if (kind === 'unlock') {
          const id = live.length > 0 ? (live[rng.int(0, live.length - 1)] as number) : 0;
          rig.lock.presentCard(uid(id));
          continue;
        }
        const s = rig.lock.openSession();
        a.now = Math.max(a.now, Math.floor(rig.clock.nowMs() / 1000));
        const ops: Parameters<TestAuthority['delta']>[0] = [{ op: 'put', entry: a.keycardEntry(nextId, uid(nextId)) }];
        live.push(nextId++);
        if (live.length > 50) ops.push({ op: 'remove', credId: live.splice(rng.int(0, live.length - 1), 1)[0] as number });
        // signed time naming the table the delta brings, then the delta (as the agent does)
        const t = one(s, a.signedTime(s.nonce));
        if (t.type !== 'timeAck') throw new Error(`signed time refused: ${JSON.stringify(t)}`);
        const r = one(s, TestAuthority.message(a.delta(ops)));
        if (r.type !== 'receipt') throw new Error(`delta refused: ${JSON.stringify(r)}`);
        const head = rig.lock.storage.auditHead();
        const anchored = rig.lock.storage.auditAnchoredSeq;
        const ex = rig.lock.auditExport(anchored + 1, 4096);
        if (ex.type !== 'auditExport') throw new Error('no audit export');
        const ack = one(s, makeAuditAnchor({ lockId: a.lockId, seq: head.seq, hash: head.hash, keyId: a.signer.keyId }, a.signer.secretKey));
        if (ack.type !== 'auditAnchored') throw new Error(`anchor refused: ${JSON.stringify(ack)}`);
        s.close();
      }
    }
  } finally {
    proto.commit = origCommit;
  }
  const L = rig.lock.storage.layout;
  const regionOf = (b: number): string =>
    b === 0 ? 'superblock' : b < L.tableStart ? 'metadata slots' : b < L.auditStart ? 'table regions' : b < L.auditStart + L.auditBlocks ? 'audit ring' : 'unused';
  const byRegion: LifetimeReport['byRegion'] = {};
  let hottest = { block: 0, region: 'superblock', erases: 0 };
  rig.flash.wear.forEach((n, b) => {
    const r = regionOf(b);
    const e = (byRegion[r] ??= { blocks: 0, maxErases: 0, totalErases: 0 });
    e.blocks++;
    e.maxErases = Math.max(e.maxErases, n);
    e.totalErases += n;
    if (n > hottest.erases) hottest = { block: b, region: r, erases: n };
  });
  // Provisioning erases nothing on a fresh part; every counted erase is from the run.
  const perDay = hottest.erases / o.days;
  return {
    ...o,
    erases: rig.flash.erases,
    hottest,
    erasesPerDayHottest: perDay,
    byRegion,
    daysTo10k: perDay > 0 ? 10_000 / perDay : Number.POSITIVE_INFINITY,
    daysTo100k: perDay > 0 ? 100_000 / perDay : Number.POSITIVE_INFINITY,
    commits,
    auditRecords: rig.lock.storage.auditHead().seq,
  };
}

function main(): number {
  let v: { syncs?: string; unlocks?: string; days?: string; seed?: string; help?: boolean };
  try {
    v = parseArgs({ options: { syncs: { type: 'string', default: '10' }, unlocks: { type: 'string', default: '50' }, days: { type: 'string', default: '60' }, seed: { type: 'string', default: '1' }, help: { type: 'boolean', default: false } } }).values;
  } catch (e) {
    throw new CliError('USAGE', (e as Error).message, 'see npm run flash-lifetime -- --help');
  }
  if (v.help === true) {
    console.log('usage: npm run flash-lifetime -- [--syncs PER_DAY] [--unlocks PER_DAY] [--days N] [--seed S]');
    return 0;
  }
  const o: LifetimeOptions = {
    syncsPerDay: parseIntegerOption('--syncs', v.syncs ?? '10', { min: 0, max: 10_000 }),
    unlocksPerDay: parseIntegerOption('--unlocks', v.unlocks ?? '50', { min: 0, max: 100_000 }),
    days: parseIntegerOption('--days', v.days ?? '60', { min: 1, max: 100_000 }),
    seed: v.seed ?? '1',
  };
  const r = simulateLifetime(o);
  const years = (d: number) => (Number.isFinite(d) ? `${Math.round(d).toLocaleString('en')} days (${(d / 365).toFixed(1)} years)` : 'never');
  console.log(`flash lifetime: ${o.syncsPerDay} syncs + ${o.unlocksPerDay} unlocks per day for ${o.days} simulated days (seed ${o.seed}), default device 512 × 4 KiB`);
  console.log(`  ${r.commits} commits, ${r.auditRecords} audit records, ${r.erases} erases`);
  for (const [name, e] of Object.entries(r.byRegion)) console.log(`  ${name.padEnd(15)} ${String(e.blocks).padStart(3)} blocks  max ${e.maxErases} erases/block  total ${e.totalErases}`);
  console.log(`  hottest block ${r.hottest.block} (${r.hottest.region}): ${r.hottest.erases} erases = ${r.erasesPerDayHottest.toFixed(2)} per day`);
  console.log(`  to 10,000 cycles (nRF52840 internal flash): ${years(r.daysTo10k)}; to 100,000 cycles (SPI NOR): ${years(r.daysTo100k)}`);
  return EXIT_CODES.OK;
}

if (process.argv[1] !== undefined && /lifetime\.ts$/.test(process.argv[1])) {
  try {
    process.exitCode = main();
  } catch (e) {
    process.exitCode = reportFailure(e);
  }
}
