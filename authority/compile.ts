// Compiling: the model → one table per lock, diffed against the previous version with the
// protocol's diffTables, proved with applyOps + tableDigest, signed and stored; the version
// history (checkpoints, pruning) and the revocations each version makes pending.

import {
  type Entry,
  type HolderClass,
  type KeyPolicy,
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
import { type KeyDoorRow, type LockRow, type VersionRow, u8, blob } from './rows';
import { type CurrentSigningKeyColumns, type SigningKey, CURRENT_SIGNING_KEY_COLUMNS, CURRENT_SIGNING_KEY_JOIN } from './keys';
import { PartnerGrants } from './partner-grants';

/** Ids per `IN (…)` list in one statement. */
const ID_LIST_CHUNK = 500;
/** Rows per multi-row cred_ids insert (4 parameters each). */
const CRED_ID_ROWS_CHUNK = 200;

export abstract class Compiler extends PartnerGrants {
  /**
   * Credential ids of a lock's refs, allocated in batches: `want` queues a ref with what to do
   * with its id, `flush` inserts every ref not yet known in one multi-row statement (a new
   * lock's ten residents were ten PostgreSQL round trips) and then runs the queued uses in
   * the order they were asked for, so ids come out in the same order as one insert per ref.
   */
  protected credIdAllocator(lockId: string): { want: (ref: string, subject: string, deviceId: number | null, use: (id: number) => void) => void; flush: () => void } {
    const known = new Map<string, number>();
    for (const r of this.db.prepare('SELECT ref, cred_id FROM cred_ids WHERE lock_id = ?').all(lockId) as { ref: string; cred_id: number }[]) known.set(r.ref, r.cred_id);
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
    const door = this.doorRow(lock.door_id);
    const policy = this.lockPolicyFor(door);
    const lease = policy.leaseSeconds > 0 ? ENTRY_FLAGS.LEASE : 0;
    const secret = this.lockSecret(lock.lock_id, lock.secret_sealed);
    const credId = this.credIdAllocator(lock.lock_id);
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
    const keyDoors = this.db
      .prepare('SELECT kd.*, k.partner_id, k.guest_of FROM key_doors kd JOIN keys k ON k.id = kd.key_id WHERE kd.door_id = ?')
      .all(door.id) as (KeyDoorRow & { partner_id: number | null; guest_of: number | null })[];
    const settings = new Map<number, KeyDoorRow>();
    for (const kd of keyDoors) settings.set(kd.key_id, kd);
    const policyOf = (keyId: number, kd: KeyDoorRow): KeyPolicy => {
      const p: KeyPolicy = { keyId, doorcodesEnabled: kd.doorcodes_enabled === 1 };
      if (kd.schedule !== null) p.schedule = JSON.parse(kd.schedule) as ScheduleWindow[];
      return p;
    };
    for (const kd of keyDoors) if (kd.guest_of === null) keyPolicies.set(kd.key_id, policyOf(kd.key_id, kd));

    // Users holding those Keys: one phone entry per (device, assignment), keycards likewise.
    const grants = this.db
      .prepare(
        `SELECT a.id, a.user_id, a.key_id, a.valid_from, a.valid_until, u.role FROM assignments a
         JOIN key_doors kd ON kd.key_id = a.key_id AND kd.door_id = ? JOIN keys k ON k.id = a.key_id JOIN users u ON u.id = a.user_id
         WHERE k.guest_of IS NULL AND u.role <> 'guest' ORDER BY a.id`,
      )
      .all(door.id) as { id: number; user_id: number; key_id: number; valid_from: number | null; valid_until: number | null; role: UserRole }[];
    // Every device and keycard of those users in one query each (not one per user: on
    // PostgreSQL each statement is a round trip, and a communal door has thousands of users).
    const holdersHere = 'SELECT DISTINCT a.user_id FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id AND kd.door_id = ?';
    const byUser = <R extends { user_id: number }>(rows: R[]): Map<number, R[]> => {
      const m = new Map<number, R[]>();
      for (const r of rows) {
        const list = m.get(r.user_id);
        if (list === undefined) m.set(r.user_id, [r]);
        else list.push(r);
      }
      return m;
    };
    const devicesByUser = byUser(this.db.prepare(`SELECT user_id, id, public_key FROM devices WHERE user_id IN (${holdersHere}) ORDER BY id`).all(door.id) as { user_id: number; id: number; public_key: Buffer }[]);
    const cardsByUser = byUser(this.db.prepare(`SELECT user_id, id, uid FROM keycards WHERE user_id IN (${holdersHere}) ORDER BY id`).all(door.id) as { user_id: number; id: number; uid: Buffer }[]);
    /** Lowest credId among a resident assignment's credentials here: guests chain to it. */
    const anchorOf = new Map<number, number>();
    const note = (assignmentId: number, id: number): void => {
      const cur = anchorOf.get(assignmentId);
      if (cur === undefined || id < cur) anchorOf.set(assignmentId, id);
    };
    for (const g of grants) {
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
    const codes = this.db
      .prepare(
        `SELECT dc.id, dc.user_id, dc.key_id, dc.code_sealed, a.id AS assignment_id, a.valid_from, a.valid_until, u.role FROM doorcodes dc
         JOIN assignments a ON a.user_id = dc.user_id AND a.key_id = dc.key_id JOIN users u ON u.id = dc.user_id
         JOIN key_doors kd ON kd.key_id = dc.key_id AND kd.door_id = dc.door_id WHERE dc.door_id = ?`,
      )
      .all(door.id) as { id: number; user_id: number; key_id: number; code_sealed: Buffer; assignment_id: number; valid_from: number | null; valid_until: number | null; role: UserRole }[];
    for (const c of codes) {
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
    const guests = this.db
      .prepare(
        `SELECT k.id AS key_id, k.guest_of, ga.id AS assignment_id, ga.user_id, ga.valid_from, ga.valid_until,
                pa.key_id AS parent_key, pa.valid_from AS p_from, pa.valid_until AS p_until
         FROM keys k JOIN key_doors kd ON kd.key_id = k.id AND kd.door_id = ?
         JOIN assignments ga ON ga.key_id = k.id JOIN assignments pa ON pa.id = k.guest_of
         WHERE k.guest_of IS NOT NULL ORDER BY ga.id`,
      )
      .all(door.id) as { key_id: number; guest_of: number; assignment_id: number; user_id: number; valid_from: number | null; valid_until: number | null; parent_key: number; p_from: number | null; p_until: number | null }[];
    for (const g of guests) {
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
    const partnerDevices = this.db.prepare('SELECT id, public_key FROM devices WHERE partner_id = ? ORDER BY id');
    const direct = this.db
      .prepare("SELECT pd.partner_id FROM partner_doors pd JOIN partners p ON p.id = pd.partner_id WHERE pd.door_id = ? AND p.status = 'authorized'")
      .all(door.id) as { partner_id: number }[];
    for (const p of direct)
      for (const d of partnerDevices.all(p.partner_id) as { id: number; public_key: Buffer }[])
        credId.want(`partner-phone:${d.id}:door`, `partner:${p.partner_id}`, d.id, (id) => {
          put({ credId: id, kind: 'phone', holder: 'partner', secret: u8(d.public_key), partnerId: p.partner_id, flags: lease });
        });
    for (const kd of keyDoors) {
      if (kd.partner_id === null) continue;
      const partnerId = kd.partner_id;
      for (const d of partnerDevices.all(partnerId) as { id: number; public_key: Buffer }[])
        credId.want(`partner-phone:${d.id}:key:${kd.key_id}`, `partner:${partnerId}`, d.id, (id) => {
          put({ credId: id, kind: 'phone', holder: 'partner', secret: u8(d.public_key), partnerId, keyId: kd.key_id, flags: lease });
        });
    }
    // Partner-issued access: the partner's own users, within its scope here today. A grant
    // through a partner key carries that key (its schedule at this door applies).
    const partnerGrants = this.db
      .prepare(
        `SELECT g.id, g.partner_id, g.key_id, g.subject, g.public_key, g.valid_from, g.valid_until FROM partner_grants g
         JOIN partners p ON p.id = g.partner_id AND p.status = 'authorized'
         WHERE (g.key_id IS NOT NULL AND EXISTS (SELECT 1 FROM key_doors kd WHERE kd.key_id = g.key_id AND kd.door_id = ?)
                AND (g.all_doors = 1 OR EXISTS (SELECT 1 FROM partner_grant_doors gd WHERE gd.grant_id = g.id AND gd.door_id = ?)))
            OR (g.key_id IS NULL AND EXISTS (SELECT 1 FROM partner_doors pd WHERE pd.partner_id = g.partner_id AND pd.door_id = ?)
                AND EXISTS (SELECT 1 FROM partner_grant_doors gd WHERE gd.grant_id = g.id AND gd.door_id = ?))
         ORDER BY g.id`,
      )
      .all(door.id, door.id, door.id, door.id) as {
      id: number;
      partner_id: number;
      key_id: number | null;
      subject: string;
      public_key: Buffer;
      valid_from: number | null;
      valid_until: number | null;
    }[];
    for (const g of partnerGrants) {
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
    const locks = this.db.prepare(`SELECT lock_id FROM locks WHERE door_id IN (${ids.map(() => '?').join(',')}) ORDER BY lock_id`).all(...ids) as { lock_id: string }[];
    for (const l of locks) this.compileLock(l.lock_id);
  }

  /**
   * Recompute one lock's table; if it changed, issue the next version: diff with the
   * protocol's diffTables, prove the ops with applyOps + tableDigest, sign, store.
   */
  compileLock(lockId: string): { version: number; changed: boolean; ops: Op[] } {
    const prev = this.currentTable(lockId);
    const next = this.buildTable(lockId);
    const digest = tableDigest(next);
    if (bytesEqual(digest, prev.digest) && prev.version > 0) return { version: prev.version, changed: false, ops: [] };
    const ops = diffTables(prev.table, next);
    const check = applyOps(prev.table, ops);
    if (!bytesEqual(tableDigest(check), digest)) throw new AuthorityError('INTERNAL', `diff for ${lockId} does not reproduce the compiled table`);
    const version = prev.version + 1;
    const issuedAt = Math.max(this.now(), prev.issuedAt);
    const key = this.signingKey();
    const head = signHead({ lockId, version, digest, issuedAt, keyId: keyIdOf(key.publicKey) }, key.secretKey);
    const now = this.now();
    this.db
      .prepare(
        `INSERT INTO lock_versions (lock_id, version, digest, issued_at, key_serial, head_bytes, head_signature, ops, table_bytes, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(lockId, version, blob(digest), issuedAt, key.serial, blob(head.headBytes), blob(head.signature), blob(encodeOps(ops)), blob(encodeTable(next)), now);
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
    // Set-based, a few hundred ids per statement: a new lock's first version adds every entry
    // at once, and on PostgreSQL each statement is a round trip.
    for (let at = 0; at < removed.length; at += ID_LIST_CHUNK) {
      const ids = removed.slice(at, at + ID_LIST_CHUNK);
      this.db.prepare(`UPDATE cred_ids SET present = 0 WHERE cred_id IN (${ids.map(() => '?').join(',')})`).run(...ids);
    }
    for (let at = 0; at < added.length; at += ID_LIST_CHUNK) {
      const ids = added.slice(at, at + ID_LIST_CHUNK);
      const list = ids.map(() => '?').join(',');
      this.db.prepare(`DELETE FROM revocations WHERE lock_id = ? AND cred_id IN (${list})`).run(lockId, ...ids); // granted again: nothing left to revoke
      this.db.prepare(`UPDATE cred_ids SET present = 1 WHERE cred_id IN (${list})`).run(...ids);
    }
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
