// Compiling: the model → one table per lock, diffed against the previous version with the
// protocol's diffTables, proved with applyOps + tableDigest, signed and stored; the version
// history (checkpoints, pruning) and the revocations each version makes pending.

import {
  type Entry,
  type HolderClass,
  type KeyPolicy,
  type LockPolicy,
  type Op,
  type ScheduleWindow,
  type Table,
  ENTRY_FLAGS,
  LOCK_ID_PATTERN,
  applyOps,
  bytesEqual,
  decode,
  decodeTableBytes,
  diffTables,
  doorcodeVerifier,
  emptyTable,
  encode,
  encodeTable,
  keyIdOf,
  keycardVerifier,
  opFromCbor,
  opToCbor,
  signHead,
  tableDigest,
} from '../protocol';
import { AuthorityError } from './errors';
import { type UserRole } from './types';
import { type DoorRow, type KeyDoorRow, type LockRow, type VersionRow, u8, blob } from './rows';
import { type CurrentSigningKeyColumns, type SigningKey, CURRENT_SIGNING_KEY_COLUMNS, CURRENT_SIGNING_KEY_JOIN } from './keys';
import { PartnerGrants } from './partner-grants';
import { type SqlDatabase } from './db';

/** Ids per `IN (…)` list in one statement. */
const ID_LIST_CHUNK = 500;
/** Rows per multi-row cred_ids insert (4 parameters each). */
const CRED_ID_ROWS_CHUNK = 200;
/** Doors per set-based read when building many locks' tables at once. */
const BUILD_DOORS_CHUNK = 400;
/** Compiled versions per multi-row insert (10 parameters each, one a whole table). */
const VERSION_ROWS_CHUNK = 50;

/** What building one lock's table reads from the model (loadBuildInputs reads it for many). */
export interface BuildInputs {
  lock: LockRow;
  door: DoorRow;
  /** The property's lock policy (meta 'policy', JSON). */
  basePolicy: string;
  knownCredIds: { ref: string; cred_id: number }[];
  keyDoors: (KeyDoorRow & { partner_id: number | null; guest_of: number | null })[];
  grants: { id: number; user_id: number; key_id: number; valid_from: number | null; valid_until: number | null; role: UserRole }[];
  devicesByUser: Map<number, { user_id: number; id: number; public_key: Buffer }[]>;
  cardsByUser: Map<number, { user_id: number; id: number; uid: Buffer }[]>;
  codes: { id: number; user_id: number; key_id: number; code_sealed: Buffer; assignment_id: number; valid_from: number | null; valid_until: number | null; role: UserRole }[];
  guests: { key_id: number; guest_of: number; assignment_id: number; user_id: number; valid_from: number | null; valid_until: number | null; parent_key: number; p_from: number | null; p_until: number | null }[];
  directPartners: number[];
  partnerDevices: Map<number, { id: number; public_key: Buffer }[]>;
  partnerGrants: { id: number; partner_id: number; key_id: number | null; subject: string; public_key: Buffer; valid_from: number | null; valid_until: number | null }[];
}

export abstract class Compiler extends PartnerGrants {
  /**
   * Credential ids of a lock's refs, allocated in batches: `want` queues a ref with what to do
   * with its id, `flush` inserts every ref not yet known in one multi-row statement (a new
   * lock's ten residents were ten PostgreSQL round trips) and then runs the queued uses in
   * the order they were asked for, so ids come out in the same order as one insert per ref.
   */
  protected credIdAllocator(lockId: string, knownRows: readonly { ref: string; cred_id: number }[]): { want: (ref: string, subject: string, deviceId: number | null, use: (id: number) => void) => void; flush: () => void } {
    const known = new Map<string, number>();
    for (const r of knownRows) known.set(r.ref, Number(r.cred_id));
    let queued: { ref: string; subject: string; deviceId: number | null; use: (id: number) => void }[] = [];
    return {
      want: (ref, subject, deviceId, use) => {
        queued.push({ ref, subject, deviceId, use });
      },
      flush: () => {
        const fresh = new Map<string, { subject: string; deviceId: number | null }>();
        for (const q of queued) if (!known.has(q.ref) && !fresh.has(q.ref)) fresh.set(q.ref, { subject: q.subject, deviceId: q.deviceId });
        const rows = [...fresh];
        for (let at = 0; at < rows.length; at += CRED_ID_ROWS_CHUNK) {
          const part = rows.slice(at, at + CRED_ID_ROWS_CHUNK);
          const inserted = this.db
            .prepare(`INSERT INTO cred_ids (lock_id, ref, device_id, subject) VALUES ${part.map(() => '(?, ?, ?, ?)').join(', ')} RETURNING ref, cred_id`)
            .all(...part.flatMap(([ref, r]) => [lockId, ref, r.deviceId, r.subject])) as { ref: string; cred_id: number | string }[];
          for (const r of inserted) {
            const id = Number(r.cred_id);
            if (id > 0xffff_ffff) throw new AuthorityError('INTERNAL', 'credential id space exhausted');
            known.set(r.ref, id);
          }
        }
        const uses = queued;
        queued = [];
        for (const q of uses) q.use(known.get(q.ref) as number);
      },
    };
  }

  /** Build the table a lock should hold, from the model. Pure read (plus credId allocation). */
  buildTable(lockId: string): Table {
    const lock = this.lockRow(lockId);
    const inputs = this.loadBuildInputs([lock.door_id]).get(lock.lock_id);
    if (inputs === undefined) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${lockId}`, { lockId });
    return this.buildTableFrom(inputs);
  }

  /**
   * Everything buildTableFrom needs for the locks of these doors, read set-based: about a
   * dozen statements per BUILD_DOORS_CHUNK doors, whatever their number (per lock, each was
   * a PostgreSQL round trip: a 250-lock provisioning chunk made 4,000 of them).
   */
  protected loadBuildInputs(doorIds: readonly number[]): Map<string, BuildInputs> {
    const out = new Map<string, BuildInputs>();
    const basePolicy = this.meta('policy');
    for (let at = 0; at < doorIds.length; at += BUILD_DOORS_CHUNK) {
      const ds = doorIds.slice(at, at + BUILD_DOORS_CHUNK);
      const D = ds.map(() => '?').join(',');
      const locks = this.db.prepare(`SELECT * FROM locks WHERE door_id IN (${D}) ORDER BY lock_id`).all(...ds) as LockRow[];
      if (locks.length === 0) continue;
      const doors = new Map((this.db.prepare(`SELECT * FROM doors WHERE id IN (${D})`).all(...ds) as DoorRow[]).map((d) => [d.id, d]));
      const byDoor = <R>(rows: (R & { door_id: number })[]): Map<number, R[]> => {
        const m = new Map<number, R[]>();
        for (const r of rows) {
          const list = m.get(r.door_id);
          if (list === undefined) m.set(r.door_id, [r]);
          else list.push(r);
        }
        return m;
      };
      const byKey = <K, R>(rows: R[], key: (r: R) => K): Map<K, R[]> => {
        const m = new Map<K, R[]>();
        for (const r of rows) {
          const k = key(r);
          const list = m.get(k);
          if (list === undefined) m.set(k, [r]);
          else list.push(r);
        }
        return m;
      };
      const L = locks.map(() => '?').join(',');
      const known = byKey(this.db.prepare(`SELECT lock_id, ref, cred_id FROM cred_ids WHERE lock_id IN (${L})`).all(...locks.map((l) => l.lock_id)) as { lock_id: string; ref: string; cred_id: number }[], (r) => r.lock_id);
      const keyDoors = byDoor(this.db.prepare(`SELECT kd.*, k.partner_id, k.guest_of FROM key_doors kd JOIN keys k ON k.id = kd.key_id WHERE kd.door_id IN (${D})`).all(...ds) as BuildInputs['keyDoors'][number][]);
      const grants = byDoor(
        this.db
          .prepare(
            `SELECT kd.door_id, a.id, a.user_id, a.key_id, a.valid_from, a.valid_until, u.role FROM assignments a
             JOIN key_doors kd ON kd.key_id = a.key_id AND kd.door_id IN (${D}) JOIN keys k ON k.id = a.key_id JOIN users u ON u.id = a.user_id
             WHERE k.guest_of IS NULL AND u.role <> 'guest' ORDER BY a.id`,
          )
          .all(...ds) as (BuildInputs['grants'][number] & { door_id: number })[],
      );
      // Every device and keycard of those users in one query each (not one per user: a
      // communal door has thousands of users).
      const holdersHere = `SELECT DISTINCT a.user_id FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id AND kd.door_id IN (${D})`;
      const devicesByUser = byKey(this.db.prepare(`SELECT user_id, id, public_key FROM devices WHERE user_id IN (${holdersHere}) ORDER BY id`).all(...ds) as { user_id: number; id: number; public_key: Buffer }[], (r) => r.user_id);
      const cardsByUser = byKey(this.db.prepare(`SELECT user_id, id, uid FROM keycards WHERE user_id IN (${holdersHere}) ORDER BY id`).all(...ds) as { user_id: number; id: number; uid: Buffer }[], (r) => r.user_id);
      const codes = byDoor(
        this.db
          .prepare(
            `SELECT dc.door_id, dc.id, dc.user_id, dc.key_id, dc.code_sealed, a.id AS assignment_id, a.valid_from, a.valid_until, u.role FROM doorcodes dc
             JOIN assignments a ON a.user_id = dc.user_id AND a.key_id = dc.key_id JOIN users u ON u.id = dc.user_id
             JOIN key_doors kd ON kd.key_id = dc.key_id AND kd.door_id = dc.door_id WHERE dc.door_id IN (${D}) ORDER BY dc.id`,
          )
          .all(...ds) as (BuildInputs['codes'][number] & { door_id: number })[],
      );
      const guests = byDoor(
        this.db
          .prepare(
            `SELECT kd.door_id, k.id AS key_id, k.guest_of, ga.id AS assignment_id, ga.user_id, ga.valid_from, ga.valid_until,
                    pa.key_id AS parent_key, pa.valid_from AS p_from, pa.valid_until AS p_until
             FROM keys k JOIN key_doors kd ON kd.key_id = k.id AND kd.door_id IN (${D})
             JOIN assignments ga ON ga.key_id = k.id JOIN assignments pa ON pa.id = k.guest_of
             WHERE k.guest_of IS NOT NULL ORDER BY ga.id`,
          )
          .all(...ds) as (BuildInputs['guests'][number] & { door_id: number })[],
      );
      const direct = byDoor(
        this.db
          .prepare(`SELECT pd.door_id, pd.partner_id FROM partner_doors pd JOIN partners p ON p.id = pd.partner_id WHERE pd.door_id IN (${D}) AND p.status = 'authorized' ORDER BY pd.partner_id`)
          .all(...ds) as { door_id: number; partner_id: number }[],
      );
      const partnerIds = new Set<number>();
      for (const list of direct.values()) for (const p of list) partnerIds.add(p.partner_id);
      for (const list of keyDoors.values()) for (const kd of list) if (kd.partner_id !== null) partnerIds.add(kd.partner_id);
      const partnerDevices = new Map<number, { id: number; public_key: Buffer }[]>();
      const pids = [...partnerIds];
      for (let p = 0; p < pids.length; p += BUILD_DOORS_CHUNK) {
        const part = pids.slice(p, p + BUILD_DOORS_CHUNK);
        const rows = this.db.prepare(`SELECT partner_id, id, public_key FROM devices WHERE partner_id IN (${part.map(() => '?').join(',')}) ORDER BY id`).all(...part) as {
          partner_id: number;
          id: number;
          public_key: Buffer;
        }[];
        for (const [k, v] of byKey(rows, (r) => r.partner_id)) partnerDevices.set(k, v);
      }
      // Partner-issued access: the partner's own users, within its scope at each door today.
      const partnerGrants = byDoor(
        this.db
          .prepare(
            `SELECT d.id AS door_id, g.id, g.partner_id, g.key_id, g.subject, g.public_key, g.valid_from, g.valid_until FROM doors d JOIN partner_grants g
             ON (g.key_id IS NOT NULL AND EXISTS (SELECT 1 FROM key_doors kd WHERE kd.key_id = g.key_id AND kd.door_id = d.id)
                 AND (g.all_doors = 1 OR EXISTS (SELECT 1 FROM partner_grant_doors gd WHERE gd.grant_id = g.id AND gd.door_id = d.id)))
             OR (g.key_id IS NULL AND EXISTS (SELECT 1 FROM partner_doors pd WHERE pd.partner_id = g.partner_id AND pd.door_id = d.id)
                 AND EXISTS (SELECT 1 FROM partner_grant_doors gd WHERE gd.grant_id = g.id AND gd.door_id = d.id))
             JOIN partners p ON p.id = g.partner_id AND p.status = 'authorized'
             WHERE d.id IN (${D}) ORDER BY g.id`,
          )
          .all(...ds) as (BuildInputs['partnerGrants'][number] & { door_id: number })[],
      );
      for (const lock of locks) {
        const door = doors.get(lock.door_id);
        if (door === undefined) throw new AuthorityError('UNKNOWN_DOOR', `no door ${lock.door_id}`, { doorId: lock.door_id });
        out.set(lock.lock_id, {
          lock,
          door,
          basePolicy,
          knownCredIds: known.get(lock.lock_id) ?? [],
          keyDoors: keyDoors.get(door.id) ?? [],
          grants: grants.get(door.id) ?? [],
          devicesByUser,
          cardsByUser,
          codes: codes.get(door.id) ?? [],
          guests: guests.get(door.id) ?? [],
          directPartners: (direct.get(door.id) ?? []).map((p) => p.partner_id),
          partnerDevices,
          partnerGrants: partnerGrants.get(door.id) ?? [],
        });
      }
    }
    return out;
  }

  /** The table a lock should hold, from its build inputs (plus credId allocation). */
  protected buildTableFrom(inp: BuildInputs): Table {
    const { lock, door } = inp;
    const base = JSON.parse(inp.basePolicy) as LockPolicy;
    const policy: LockPolicy = door.policy === null ? base : { ...base, ...(JSON.parse(door.policy) as Partial<LockPolicy>) };
    const lease = policy.leaseSeconds > 0 ? ENTRY_FLAGS.LEASE : 0;
    const secret = this.lockSecret(lock.lock_id, lock.secret_sealed);
    const credId = this.credIdAllocator(lock.lock_id, inp.knownCredIds);
    const entries = new Map<number, Entry>();
    const keyPolicies = new Map<number, KeyPolicy>();
    const put = (e: Entry): void => {
      entries.set(e.credId, e);
    };
    const withValidity = (e: Entry, from: number | null, until: number | null): Entry => {
      if (from !== null) e.validFrom = from;
      if (until !== null) e.validUntil = until;
      return e;
    };

    // Keys at this door (manager Keys and partner keys) and their door policies.
    const keyDoors = inp.keyDoors;
    const settings = new Map<number, KeyDoorRow>();
    for (const kd of keyDoors) settings.set(kd.key_id, kd);
    const policyOf = (keyId: number, kd: KeyDoorRow): KeyPolicy => {
      const p: KeyPolicy = { keyId, doorcodesEnabled: kd.doorcodes_enabled === 1 };
      if (kd.schedule !== null) p.schedule = JSON.parse(kd.schedule) as ScheduleWindow[];
      return p;
    };
    for (const kd of keyDoors) if (kd.guest_of === null) keyPolicies.set(kd.key_id, policyOf(kd.key_id, kd));

    // Users holding those Keys: one phone entry per (device, assignment), keycards likewise.
    const { devicesByUser, cardsByUser } = inp;
    /** Lowest credId among a resident assignment's credentials here: guests chain to it. */
    const anchorOf = new Map<number, number>();
    const note = (assignmentId: number, id: number): void => {
      const cur = anchorOf.get(assignmentId);
      if (cur === undefined || id < cur) anchorOf.set(assignmentId, id);
    };
    for (const g of inp.grants) {
      const holder: HolderClass = g.role === 'staff' ? 'staff' : 'resident';
      for (const d of devicesByUser.get(g.user_id) ?? [])
        credId.want(`phone:${d.id}:${g.id}`, `user:${g.user_id}`, d.id, (id) => {
          put(withValidity({ credId: id, kind: 'phone', holder, secret: u8(d.public_key), keyId: g.key_id, flags: 0 }, g.valid_from, g.valid_until));
          note(g.id, id);
        });
      for (const c of cardsByUser.get(g.user_id) ?? [])
        credId.want(`keycard:${c.id}:${g.id}`, `user:${g.user_id}`, null, (id) => {
          put(withValidity({ credId: id, kind: 'keycard', holder, secret: keycardVerifier(secret, u8(c.uid)), keyId: g.key_id, flags: 0 }, g.valid_from, g.valid_until));
          note(g.id, id);
        });
    }
    // Permanent doorcodes: verifier under this lock's secret, attached to their Key.
    for (const c of inp.codes) {
      const code = new TextDecoder().decode(this.sealer.open(`doorcode:${c.id}`, u8(c.code_sealed)));
      credId.want(`doorcode:${c.id}`, `user:${c.user_id}`, null, (id) => {
        put(
          withValidity(
            { credId: id, kind: 'doorcode', holder: c.role === 'staff' ? 'staff' : 'resident', secret: doorcodeVerifier(secret, code), keyId: c.key_id, flags: 0 },
            c.valid_from,
            c.valid_until,
          ),
        );
        note(c.assignment_id, id);
      });
    }
    // The residents' ids now: a guest entry chains to the lowest of its resident's.
    credId.flush();

    // Guests: a one-door Key per shared door, chained (parent) to the resident's credential,
    // with the resident's Key settings for this door; LEASE-flagged when a lease is set.
    for (const g of inp.guests) {
      const parent = anchorOf.get(g.guest_of);
      const parentSettings = settings.get(g.parent_key);
      if (parent === undefined || parentSettings === undefined) continue; // resident has no credential here yet
      keyPolicies.set(g.key_id, policyOf(g.key_id, parentSettings));
      const from = g.valid_from === null ? g.p_from : g.p_from === null ? g.valid_from : Math.max(g.valid_from, g.p_from);
      const until = g.valid_until === null ? g.p_until : g.p_until === null ? g.valid_until : Math.min(g.valid_until, g.p_until);
      if (from !== null && until !== null && until <= from) continue; // windows do not overlap
      for (const d of devicesByUser.get(g.user_id) ?? [])
        credId.want(`guest-phone:${d.id}:${g.assignment_id}`, `user:${g.user_id}`, d.id, (id) => {
          put(withValidity({ credId: id, kind: 'phone', holder: 'guest', secret: u8(d.public_key), keyId: g.key_id, parent, flags: lease }, from, until));
        });
    }

    // Partners: assigned per door (no Key) or through a partner key.
    const partnerDevices = (partnerId: number): { id: number; public_key: Buffer }[] => inp.partnerDevices.get(partnerId) ?? [];
    for (const partnerId of inp.directPartners)
      for (const d of partnerDevices(partnerId))
        credId.want(`partner-phone:${d.id}:door`, `partner:${partnerId}`, d.id, (id) => {
          put({ credId: id, kind: 'phone', holder: 'partner', secret: u8(d.public_key), partnerId, flags: lease });
        });
    for (const kd of keyDoors) {
      if (kd.partner_id === null) continue;
      const partnerId = kd.partner_id;
      for (const d of partnerDevices(partnerId))
        credId.want(`partner-phone:${d.id}:key:${kd.key_id}`, `partner:${partnerId}`, d.id, (id) => {
          put({ credId: id, kind: 'phone', holder: 'partner', secret: u8(d.public_key), partnerId, keyId: kd.key_id, flags: lease });
        });
    }
    // Partner-issued access: the partner's own users, within its scope here today. A grant
    // through a partner key carries that key (its schedule at this door applies).
    for (const g of inp.partnerGrants) {
      credId.want(`partner-grant:${g.id}`, `partner:${g.partner_id}:${g.subject}`, null, (id) => {
        const e: Entry = { credId: id, kind: 'phone', holder: 'partner', secret: u8(g.public_key), partnerId: g.partner_id, flags: lease };
        if (g.key_id !== null) e.keyId = g.key_id;
        put(withValidity(e, g.valid_from, g.valid_until));
      });
    }
    credId.flush();
    return { entries, keyPolicies, policy };
  }

  /**
   * A lock, its newest version (if any) and the current signing key in one statement: what
   * serving an update or a signed time needs (each a PostgreSQL round trip otherwise).
   * An unknown lock id is UNKNOWN_LOCK, as lockRow().
   */
  protected lockHead(lockId: unknown): { lock: LockRow; latest: VersionRow | undefined; key: SigningKey } {
    if (typeof lockId !== 'string' || !LOCK_ID_PATTERN.test(lockId)) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${String(lockId)}`);
    const r = this.db
      .prepare(
        `SELECT l.*, lv.version AS lv_version, lv.digest AS lv_digest, lv.issued_at AS lv_issued_at, lv.key_serial AS lv_key_serial, lv.head_bytes AS lv_head_bytes,
                lv.head_signature AS lv_head_signature, lv.ops AS lv_ops, lv.table_bytes AS lv_table_bytes, ${CURRENT_SIGNING_KEY_COLUMNS}
         FROM locks l LEFT JOIN lock_versions lv ON lv.lock_id = l.lock_id AND lv.version = (SELECT MAX(version) FROM lock_versions WHERE lock_id = l.lock_id)
         ${CURRENT_SIGNING_KEY_JOIN} WHERE l.lock_id = ?`,
      )
      .get(lockId) as
      | (LockRow &
          CurrentSigningKeyColumns & {
            lv_version: number | null;
            lv_digest: Buffer;
            lv_issued_at: number;
            lv_key_serial: number;
            lv_head_bytes: Buffer;
            lv_head_signature: Buffer;
            lv_ops: Buffer | null;
            lv_table_bytes: Buffer | null;
          })
      | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${lockId}`, { lockId });
    const latest: VersionRow | undefined =
      r.lv_version === null
        ? undefined
        : {
            lock_id: r.lock_id,
            version: r.lv_version,
            digest: r.lv_digest,
            issued_at: r.lv_issued_at,
            key_serial: r.lv_key_serial,
            head_bytes: r.lv_head_bytes,
            head_signature: r.lv_head_signature,
            ops: r.lv_ops,
            table_bytes: r.lv_table_bytes,
          };
    return { lock: r, latest, key: this.signingKeyFromColumns(r) };
  }

  protected latestVersionRow(lockId: string): VersionRow | undefined {
    return this.db.prepare('SELECT * FROM lock_versions WHERE lock_id = ? ORDER BY version DESC LIMIT 1').get(lockId) as VersionRow | undefined;
  }

  protected versionRow(lockId: string, version: number): VersionRow | undefined {
    return this.db.prepare('SELECT * FROM lock_versions WHERE lock_id = ? AND version = ?').get(lockId, version) as VersionRow | undefined;
  }

  /** The table of a lock at a version, or undefined when it can no longer be rebuilt. */
  tableAt(lockId: string, version: number): Table | undefined {
    if (version === 0) return emptyTable();
    const target = this.versionRow(lockId, version);
    if (target === undefined) return undefined;
    const cached = this.tableCache.get(lockId);
    if (cached !== undefined && cached.version === version && bytesEqual(cached.digest, target.digest)) return cached.table;
    const cp = this.db
      .prepare('SELECT version, table_bytes FROM lock_versions WHERE lock_id = ? AND version <= ? AND table_bytes IS NOT NULL ORDER BY version DESC LIMIT 1')
      .get(lockId, version) as { version: number; table_bytes: Buffer } | undefined;
    let table: Table;
    let from: number;
    if (cp === undefined) {
      // Rebuild from version 0 when every step's ops are still kept.
      table = emptyTable();
      from = 0;
    } else {
      table = decodeTableBytes(u8(cp.table_bytes));
      from = cp.version;
    }
    const steps = this.db.prepare('SELECT version, ops FROM lock_versions WHERE lock_id = ? AND version > ? AND version <= ? ORDER BY version').all(lockId, from, version) as {
      version: number;
      ops: Buffer | null;
    }[];
    if (steps.length !== version - from) return undefined;
    for (const s of steps) {
      if (s.ops === null) return undefined;
      table = applyOps(table, decodeOps(u8(s.ops)));
    }
    if (!bytesEqual(tableDigest(table), target.digest)) throw new AuthorityError('INTERNAL', `stored history of ${lockId} does not rebuild v${version}`);
    return table;
  }

  /** The newest table of a lock; `latest` when the caller has just read the newest version row (null: none). */
  protected currentTable(lockId: string, latest?: VersionRow | null): { version: number; digest: Uint8Array; issuedAt: number; table: Table } {
    const row = latest === undefined ? this.latestVersionRow(lockId) : (latest ?? undefined);
    if (row === undefined) return { version: 0, digest: tableDigest(emptyTable()), issuedAt: 0, table: emptyTable() };
    const cached = this.tableCache.get(lockId);
    if (cached !== undefined && cached.version === row.version && bytesEqual(cached.digest, row.digest)) return { ...cached, issuedAt: row.issued_at };
    const table = row.table_bytes !== null ? decodeTableBytes(u8(row.table_bytes)) : this.tableAt(lockId, row.version);
    if (table === undefined) throw new AuthorityError('INTERNAL', `current table of ${lockId} is missing`);
    const digest = u8(row.digest);
    this.tableCache.set(lockId, { version: row.version, digest, table });
    return { version: row.version, digest, issuedAt: row.issued_at, table };
  }

  protected compileDoors(doorIds: Set<number>): void {
    if (doorIds.size === 0) return;
    const ids = [...doorIds].sort((a, b) => a - b);
    // Every lock's inputs, newest version and the signing key read set-based up front, and
    // the new versions written in multi-row statements at the end (a provisioning chunk of
    // 250 locks: a few dozen statements, not some 20 per lock). Each lock's own writes that
    // later reads depend on (credential ids, checkpoints, revocations, pruning) stay in order.
    const inputs = this.loadBuildInputs(ids);
    const lockIds = [...inputs.keys()].sort();
    const latest = new Map<string, VersionRow>();
    for (let at = 0; at < lockIds.length; at += BUILD_DOORS_CHUNK) {
      const part = lockIds.slice(at, at + BUILD_DOORS_CHUNK);
      const rows = this.db
        .prepare(`SELECT lv.* FROM lock_versions lv WHERE lv.lock_id IN (${part.map(() => '?').join(',')}) AND lv.version = (SELECT MAX(version) FROM lock_versions WHERE lock_id = lv.lock_id)`)
        .all(...part) as VersionRow[];
      for (const r of rows) latest.set(r.lock_id, r);
    }
    const key = lockIds.length > 0 ? this.signingKey() : undefined;
    const writes = new CompileWrites();
    for (const lockId of lockIds) this.compileLock(lockId, { inputs: inputs.get(lockId) as BuildInputs, latest: latest.get(lockId) ?? null, key, writes });
    writes.flush(this.db);
  }

  /**
   * Recompute one lock's table; if it changed, issue the next version: diff with the
   * protocol's diffTables, prove the ops with applyOps + tableDigest, sign, store.
   * `pre` (compileDoors) supplies what was read for many locks at once and collects the
   * writes it makes in multi-row statements; without it the lock reads and writes alone.
   */
  compileLock(
    lockId: string,
    pre: { inputs: BuildInputs; latest: VersionRow | null; key: SigningKey | undefined; writes: CompileWrites } | undefined = undefined,
  ): { version: number; changed: boolean; ops: Op[] } {
    const writes = pre?.writes ?? new CompileWrites();
    const result = this.compileOne(lockId, pre, writes);
    if (pre === undefined) writes.flush(this.db);
    return result;
  }

  private compileOne(lockId: string, pre: { inputs: BuildInputs; latest: VersionRow | null; key: SigningKey | undefined } | undefined, writes: CompileWrites): { version: number; changed: boolean; ops: Op[] } {
    const prev = this.currentTable(lockId, pre?.latest);
    const next = pre === undefined ? this.buildTable(lockId) : this.buildTableFrom(pre.inputs);
    const digest = tableDigest(next);
    if (bytesEqual(digest, prev.digest) && prev.version > 0) return { version: prev.version, changed: false, ops: [] };
    const ops = diffTables(prev.table, next);
    const check = applyOps(prev.table, ops);
    if (!bytesEqual(tableDigest(check), digest)) throw new AuthorityError('INTERNAL', `diff for ${lockId} does not reproduce the compiled table`);
    const version = prev.version + 1;
    const issuedAt = Math.max(this.now(), prev.issuedAt);
    const key = pre?.key ?? this.signingKey();
    const head = signHead({ lockId, version, digest, issuedAt, keyId: keyIdOf(key.publicKey) }, key.secretKey);
    const now = this.now();
    writes.versions.push([lockId, version, blob(digest), issuedAt, key.serial, blob(head.headBytes), blob(head.signature), blob(encodeOps(ops)), blob(encodeTable(next)), now]);
    // The previous version keeps its full table only as a checkpoint.
    if (prev.version > 0 && prev.version % this.checkpointEvery !== 0)
      this.db.prepare('UPDATE lock_versions SET table_bytes = NULL WHERE lock_id = ? AND version = ?').run(lockId, prev.version);
    // Revocations: credentials gone from this version are pending until it is in force.
    const insertRevocation = this.db.prepare(
      `INSERT INTO revocations (lock_id, cred_id, version, removed_at, kind, holder, partner_id, key_id, subject)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT subject FROM cred_ids WHERE cred_id = ?))
       ON CONFLICT(lock_id, cred_id) DO UPDATE SET version = excluded.version, removed_at = excluded.removed_at`,
    );
    const removed: number[] = [];
    for (const [id, e] of prev.table.entries) {
      if (next.entries.has(id)) continue;
      insertRevocation.run(lockId, id, version, now, e.kind, e.holder, e.partnerId ?? null, e.keyId ?? null, id);
      removed.push(id);
    }
    const added = [...next.entries.keys()].filter((id) => !prev.table.entries.has(id));
    // Set-based, with the other locks' (CompileWrites): a new lock's first version adds
    // every entry at once. Credential ids are unique across locks, so id lists can mix them.
    writes.presentOff.push(...removed);
    writes.presentOn.push(...added); // and granted again: nothing left to revoke
    if (added.length > 0) writes.grantedAt.add(lockId);
    this.prune(lockId, version);
    this.tableCache.set(lockId, { version, digest, table: next });
    this.pendingNotices.push([lockId, version]);
    return { version, changed: true, ops };
  }

  /**
   * Drop ops/tables of versions too old to serve deltas from. Everything from the newest
   * checkpoint at or below the oldest servable base (and below the version in force, which
   * the honouring view rebuilds) is kept, so those versions stay rebuildable.
   */
  protected prune(lockId: string, version: number): void {
    const keepFrom = version - this.historyVersions;
    if (keepFrom <= 1) return;
    const checkpointAtOrBelow = (v: number): number =>
      (this.db.prepare('SELECT MAX(version) AS v FROM lock_versions WHERE lock_id = ? AND version <= ? AND table_bytes IS NOT NULL').get(lockId, v) as { v: number | null }).v ?? 0;
    const inForce = (this.db.prepare('SELECT in_force_version FROM locks WHERE lock_id = ?').get(lockId) as { in_force_version: number }).in_force_version;
    let floor = checkpointAtOrBelow(keepFrom);
    if (inForce > 0 && inForce < keepFrom) floor = Math.min(floor, checkpointAtOrBelow(inForce));
    if (floor > 1) this.db.prepare('UPDATE lock_versions SET ops = NULL, table_bytes = NULL WHERE lock_id = ? AND version < ? AND (ops IS NOT NULL OR table_bytes IS NOT NULL)').run(lockId, floor);
  }
}

/**
 * Writes of compiled versions collected over many locks and made in multi-row statements
 * (each a PostgreSQL round trip) at the end of the compile, inside the same transaction.
 */
class CompileWrites {
  readonly versions: unknown[][] = [];
  readonly presentOn: number[] = [];
  readonly presentOff: number[] = [];
  /** Locks with ids in presentOn (their revocations are found by lock id, the key's prefix). */
  readonly grantedAt = new Set<string>();

  flush(db: SqlDatabase): void {
    for (let at = 0; at < this.versions.length; at += VERSION_ROWS_CHUNK) {
      const rows = this.versions.slice(at, at + VERSION_ROWS_CHUNK);
      db.prepare(
        `INSERT INTO lock_versions (lock_id, version, digest, issued_at, key_serial, head_bytes, head_signature, ops, table_bytes, created_at)
         VALUES ${rows.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      ).run(...rows.flat());
    }
    for (let at = 0; at < this.presentOff.length; at += ID_LIST_CHUNK) {
      const ids = this.presentOff.slice(at, at + ID_LIST_CHUNK);
      db.prepare(`UPDATE cred_ids SET present = 0 WHERE cred_id IN (${ids.map(() => '?').join(',')})`).run(...ids);
    }
    for (let at = 0; at < this.presentOn.length; at += ID_LIST_CHUNK) {
      const ids = this.presentOn.slice(at, at + ID_LIST_CHUNK);
      const list = ids.map(() => '?').join(',');
      // A credential id belongs to one lock, so (these locks) × (these ids) matches exactly
      // the pairs granted again.
      const locks = [...this.grantedAt];
      for (let l = 0; l < locks.length; l += ID_LIST_CHUNK) {
        const ls = locks.slice(l, l + ID_LIST_CHUNK);
        db.prepare(`DELETE FROM revocations WHERE lock_id IN (${ls.map(() => '?').join(',')}) AND cred_id IN (${list})`).run(...ls, ...ids);
      }
      db.prepare(`UPDATE cred_ids SET present = 1 WHERE cred_id IN (${list})`).run(...ids);
    }
    this.versions.length = 0;
    this.presentOn.length = 0;
    this.presentOff.length = 0;
    this.grantedAt.clear();
  }
}

// ---------------------------------------------------------------------------
// Stored ops (the exact ops of each version step, CBOR)

function encodeOps(ops: readonly Op[]): Uint8Array {
  return encode(ops.map(opToCbor));
}

function decodeOps(bytes: Uint8Array): Op[] {
  const v = decode(bytes);
  if (!Array.isArray(v)) throw new AuthorityError('INTERNAL', 'stored ops are not an array');
  return v.map((o, i) => opFromCbor(o, `storedOps[${i}]`));
}
