// Authority benchmark: a 500-door, 5,000-user property.
//   - time to compile and sign after a Key change (a unit door, and a communal door that
//     every resident holds), median of several runs;
//   - size of typical deltas (remove a partner from a door, add a resident, change a
//     schedule) as served to the lock, with the certificate every update carries;
//   - database size per 1,000 credentials.
// Engines: SQLite by default; with a PostgreSQL URL (bench: LOCKSYNC_BENCH_POSTGRES_URL) the
// same property is built in a fresh schema there, so both engines' figures sit side by side.
// Standalone: npx tsx authority/bench.ts [postgres://…]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { deriveSeed32, encode, keyCertToCbor, keyPairFromSeed, toHex } from '../protocol';
import { Authority } from './authority';
import { freshPostgresSchema } from './db';
import { decodeUpdate } from './test-support';

const DOORS = 500;
const COMMUNAL = 20;
const USERS = 5000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

export interface AuthorityBenchOptions {
  /** Build the property on this PostgreSQL server (a fresh schema, dropped afterwards). */
  postgresUrl?: string;
}

export async function benchAuthority(opts: AuthorityBenchOptions = {}): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'locksync-authority-bench-'));
  const pg = opts.postgresUrl !== undefined ? freshPostgresSchema(opts.postgresUrl, 'bench') : null;
  const dbPath = pg !== null ? pg.url : join(dir, 'bench.db');
  let t = 1_760_000_000;
  const { authority: a } = Authority.init({ dbPath, keyDir: join(dir, 'keys'), seed: 'bench', timeZone: 'America/New_York', now: () => t });
  try {
    const t0 = performance.now();
    const setup = a.batch(() => {
      const doors = Array.from({ length: DOORS }, (_, i) => a.addDoor({ name: i < COMMUNAL ? `Communal ${i}` : `Unit ${i}`, kind: i < COMMUNAL ? 'communal' : 'private', connected: i < COMMUNAL }));
      for (const d of doors) a.provisionLock(d.id);
      // Building key: every communal door; doorcodes at the two entrances only.
      const building = a.createKey({ name: 'Resident - Building', doors: doors.slice(0, COMMUNAL).map((d, i) => ({ doorId: d.id, doorcodesEnabled: i < 2 })) });
      const unitKeys = doors.slice(COMMUNAL).map((d) => a.createKey({ name: `Unit ${d.name}`, doors: [{ doorId: d.id }] }));
      const users: number[] = [];
      for (let i = 0; i < USERS; i++) {
        const u = a.addUser({ name: `Resident ${i}` });
        users.push(u.id);
        a.assignKey(u.id, building.id);
        a.assignKey(u.id, (unitKeys[i % unitKeys.length] as { id: number }).id);
        a.enrolUserDevice(u.id, toHex(keyPairFromSeed(deriveSeed32('bench', `phone:${i}`)).publicKey));
      }
      const { partner } = a.authorizePartner('Parcel Co');
      for (let i = 0; i < 5; i++) a.enrolPartnerDevice(partner.id, toHex(keyPairFromSeed(deriveSeed32('bench', `courier:${i}`)).publicKey));
      for (const d of doors.slice(0, COMMUNAL)) a.assignPartnerToDoor(partner.id, d.id);
      return { doors, building, unitKeys, users, partner };
    });
    const setupMs = performance.now() - t0;
    const lockOf = (doorId: number): string => a.door(doorId).lockId as string;
    const communal = setup.doors[5]!;
    const unit = setup.doors[COMMUNAL + 7]!;
    const communalLock = lockOf(communal.id);
    const unitLock = lockOf(unit.id);

    // Compile + sign after a Key change, one door affected.
    const unitTimes: number[] = [];
    const communalTimes: number[] = [];
    for (let i = 0; i < 7; i++) {
      t += 60;
      let s = performance.now();
      a.setKeyDoor(setup.unitKeys[7]!.id, { doorId: unit.id, schedule: [{ days: 0x7f, start: 300 + i, end: 1380 }] });
      unitTimes.push(performance.now() - s);
      s = performance.now();
      a.setKeyDoor(setup.building.id, { doorId: communal.id, doorcodesEnabled: false, schedule: [{ days: 0x1f, start: 360 + i, end: 1320 }] });
      communalTimes.push(performance.now() - s);
    }

    // Served to a lock that already holds the current signing-key certificate (hello
    // certSerial): the steady state. A lock that lacks it gets certificateBytes more.
    const certSerial = a.property().signingKey.serial;
    const deltaBytes = (lockId: string, from: number): { type: string; bytes: number; ops: number } => {
      const r = a.updatesFor(lockId, from, certSerial);
      const u = decodeUpdate(r.messages[0] as string);
      return { type: u.type, bytes: (r.messages[0] as string).length / 2, ops: u.type === 'delta' ? u.ops.length : 0 };
    };
    // Typical deltas, as served to a lock one version behind.
    let from = a.currentVersion(communalLock);
    a.unassignPartnerFromDoor(setup.partner.id, communal.id);
    const removePartner = deltaBytes(communalLock, from);
    from = a.currentVersion(communalLock);
    const fromUnit = a.currentVersion(unitLock);
    const newcomer = a.batch(() => {
      const u = a.addUser({ name: 'New resident' });
      a.assignKey(u.id, setup.building.id);
      a.assignKey(u.id, setup.unitKeys[7]!.id);
      a.enrolUserDevice(u.id, toHex(keyPairFromSeed(deriveSeed32('bench', 'phone:new')).publicKey));
      return u;
    });
    void newcomer;
    const addResidentCommunal = deltaBytes(communalLock, from);
    const addResidentUnit = deltaBytes(unitLock, fromUnit);
    from = a.currentVersion(communalLock);
    a.setKeyDoor(setup.building.id, { doorId: communal.id, doorcodesEnabled: false, schedule: [{ days: 0x7f, start: 420, end: 1260 }] });
    const scheduleChange = deltaBytes(communalLock, from);
    const snapshotCommunal = deltaBytes(communalLock, 0);
    const served = decodeUpdate(a.updatesFor(communalLock, from).messages[0] as string);
    const certBytes = served.certs.reduce((n, c) => n + encode(keyCertToCbor(c)).length, 0);

    const serveTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      a.updatesFor(communalLock, from);
      serveTimes.push(performance.now() - s);
    }

    // Credentials: entries across every lock's current table.
    let credentials = 0;
    for (const l of a.listLocks()) credentials += a.buildTable(l.lockId).entries.size;
    let dbBytes: number;
    if (a.db.engine === 'postgres') {
      const row = a.db.prepare("SELECT SUM(pg_total_relation_size(quote_ident(table_name))) AS bytes FROM information_schema.tables WHERE table_schema = current_schema()").get() as { bytes: number };
      dbBytes = row.bytes;
    } else {
      a.db.pragma('wal_checkpoint(TRUNCATE)');
      dbBytes = statSync(dbPath).size;
    }
    return {
      engine: a.db.engine === 'postgres' ? 'PostgreSQL (loopback, one connection per process)' : 'SQLite (WAL, local file)',
      property: { doors: DOORS, communalDoors: COMMUNAL, users: USERS, credentials, setupSeconds: +(setupMs / 1000).toFixed(1) },
      compileAndSignAfterKeyChangeMs: {
        unitDoor: { median: +median(unitTimes).toFixed(2), entriesAtLock: a.buildTable(unitLock).entries.size },
        communalDoor: { median: +median(communalTimes).toFixed(2), entriesAtLock: a.buildTable(communalLock).entries.size },
      },
      serveDeltaMs: { median: +median(serveTimes).toFixed(2) },
      deltaBytes: { removePartner, addResidentCommunal, addResidentUnit, scheduleChange, snapshotCommunalDoor: snapshotCommunal },
      certificateBytesWhenLockLacksIt: certBytes,
      database: { bytes: dbBytes, bytesPer1000Credentials: Math.round((dbBytes / credentials) * 1000) },
    };
  } finally {
    a.close();
    pg?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const url = process.argv[2];
  benchAuthority(url !== undefined ? { postgresUrl: url } : {}).then((r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'));
}
