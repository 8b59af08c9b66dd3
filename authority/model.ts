// The property model from the seed articles: the property, its doors, Keys (sets of doors
// with per-door doorcode and schedule settings, partner keys) and the locks guarding doors.

import { type LockPolicy, type ScheduleWindow, bytesEqual, keyIdOf, toHex } from '../protocol';
import { AuthorityError } from './errors';
import { invalid, normalizePolicy, normalizeSchedule, requireBool, requireHex, requireId, requireName, requireTimeZone } from './validate';
import { type DoorKind, type PropertyInfo, type DoorInfo, type KeyDoorInput, type KeyInfo, type ProvisioningBundle } from './types';
import { type DoorRow, TOKEN_PREFIX, blob, sha256 } from './rows';

/** Rows per multi-row statement: well inside SQLite's 32,766 and PostgreSQL's 65,535 bound parameters. */
const BULK_ROWS = 500;

export interface BulkOptions {
  /** Rows per multi-row statement (default 500, at most 5,000). */
  rowsPerStatement?: number;
}

function bulkRows(opts: BulkOptions): number {
  const n = opts.rowsPerStatement ?? BULK_ROWS;
  if (!Number.isSafeInteger(n) || n < 1 || n > 5000) throw invalid('rowsPerStatement must be a whole number from 1 to 5000');
  return n;
}
import { Credentials } from './credentials';

/** Ids per `IN (…)` list (and parameters per multi-row statement) in one statement. */
const ID_LIST_CHUNK = 500;

export abstract class PropertyModel extends Credentials {
  property(): PropertyInfo {
    const k = this.signingKey();
    return {
      name: this.meta('propertyName'),
      timeZone: this.meta('timeZone'),
      policy: JSON.parse(this.meta('policy')) as LockPolicy,
      rootPublicKeys: JSON.parse(this.meta('rootPublicKeys')) as string[],
      signingKey: { serial: k.serial, keyId: toHex(keyIdOf(k.publicKey)) },
    };
  }

  setProperty(input: { name?: string; timeZone?: string; policy?: Partial<LockPolicy> }): PropertyInfo {
    this.batch(() => {
      if (input.name !== undefined) this.setMeta('propertyName', requireName(input.name, 'name'));
      if (input.timeZone !== undefined) this.setMeta('timeZone', requireTimeZone(input.timeZone));
      if (input.policy !== undefined) {
        const merged = { ...(JSON.parse(this.meta('policy')) as LockPolicy), ...normalizePolicy(input.policy, 'policy') };
        this.setMeta('policy', JSON.stringify(merged));
        this.touch(this.allDoorIds());
      }
    });
    return this.property();
  }

  protected doorInfo(r: DoorRow): DoorInfo {
    const lock = this.db.prepare('SELECT lock_id FROM locks WHERE door_id = ?').get(r.id) as { lock_id: string } | undefined;
    const partners = (this.db.prepare('SELECT partner_id FROM partner_doors WHERE door_id = ? ORDER BY partner_id').all(r.id) as { partner_id: number }[]).map((p) => p.partner_id);
    return {
      id: r.id,
      name: r.name,
      kind: r.kind,
      connected: r.connected === 1,
      lockId: lock?.lock_id ?? null,
      policy: r.policy === null ? null : (JSON.parse(r.policy) as Partial<LockPolicy>),
      partners,
    };
  }

  door(doorId: number): DoorInfo {
    return this.doorInfo(this.doorRow(doorId));
  }

  listDoors(): DoorInfo[] {
    return (this.db.prepare('SELECT * FROM doors ORDER BY id').all() as DoorRow[]).map((r) => this.doorInfo(r));
  }

  addDoor(input: { name: string; kind?: DoorKind; connected?: boolean; policy?: Partial<LockPolicy> }): DoorInfo {
    const name = requireName(input.name, 'name');
    const kind = input.kind ?? 'private';
    if (kind !== 'communal' && kind !== 'private') throw invalid('kind must be communal or private');
    const connected = input.connected === undefined ? false : requireBool(input.connected, 'connected');
    const policy = input.policy === undefined ? null : JSON.stringify(normalizePolicy(input.policy, 'policy'));
    return this.batch(() => {
      if (this.db.prepare('SELECT 1 FROM doors WHERE name = ?').get(name)) throw new AuthorityError('CONFLICT', `a door named ${JSON.stringify(name)} exists`);
      const r = this.db.prepare('INSERT INTO doors (name, kind, connected, policy, created_at) VALUES (?, ?, ?, ?, ?)').run(name, kind, connected ? 1 : 0, policy, this.now());
      return this.door(Number(r.lastInsertRowid));
    });
  }

  updateDoor(doorId: number, input: { name?: string; kind?: DoorKind; connected?: boolean; policy?: Partial<LockPolicy> | null }): DoorInfo {
    return this.batch(() => {
      const d = this.doorRow(doorId);
      const name = input.name === undefined ? d.name : requireName(input.name, 'name');
      const kind = input.kind ?? d.kind;
      if (kind !== 'communal' && kind !== 'private') throw invalid('kind must be communal or private');
      const connected = input.connected === undefined ? d.connected === 1 : requireBool(input.connected, 'connected');
      const policy = input.policy === undefined ? d.policy : input.policy === null ? null : JSON.stringify(normalizePolicy(input.policy, 'policy'));
      if (name !== d.name && this.db.prepare('SELECT 1 FROM doors WHERE name = ?').get(name)) throw new AuthorityError('CONFLICT', `a door named ${JSON.stringify(name)} exists`);
      this.db.prepare('UPDATE doors SET name = ?, kind = ?, connected = ?, policy = ? WHERE id = ?').run(name, kind, connected ? 1 : 0, policy, d.id);
      this.touch([d.id]);
      return this.door(d.id);
    });
  }

  /** Refused while any Key, partner or lock still refers to the door. */
  removeDoor(doorId: number): void {
    this.batch(() => {
      const d = this.doorRow(doorId);
      const keys = (this.db.prepare('SELECT key_id FROM key_doors WHERE door_id = ?').all(d.id) as { key_id: number }[]).map((r) => r.key_id);
      const partners = this.doorInfo(d).partners;
      const lock = this.doorInfo(d).lockId;
      if (keys.length > 0 || partners.length > 0 || lock !== null)
        throw new AuthorityError('CONFLICT', `door ${d.id} is still in use`, { keys, partners, lockId: lock });
      this.db.prepare('DELETE FROM daily_code_issues WHERE door_id = ?').run(d.id);
      this.db.prepare('DELETE FROM doors WHERE id = ?').run(d.id);
    });
  }

  key(keyId: number): KeyInfo {
    const k = this.keyRow(keyId);
    return { id: k.id, name: k.name, partnerId: k.partner_id, guestOf: k.guest_of, doors: this.keyDoorsOf(k.id) };
  }

  listKeys(): KeyInfo[] {
    return (this.db.prepare('SELECT id FROM keys ORDER BY id').all() as { id: number }[]).map((r) => this.key(r.id));
  }

  protected normalizeKeyDoor(d: KeyDoorInput, what: string, existing?: ReadonlySet<number>): { doorId: number; doorcodesEnabled: boolean; schedule: ScheduleWindow[] | undefined } {
    if (typeof d !== 'object' || d === null) throw invalid(`${what} must be {doorId, doorcodesEnabled?, schedule?}`);
    let doorId: number;
    if (existing === undefined) doorId = this.doorRow(d.doorId).id;
    else {
      doorId = requireId(d.doorId, 'doorId');
      if (!existing.has(doorId)) throw new AuthorityError('UNKNOWN_DOOR', `no door ${doorId}`, { doorId });
    }
    const doorcodesEnabled = d.doorcodesEnabled === undefined ? true : requireBool(d.doorcodesEnabled, `${what}.doorcodesEnabled`);
    return { doorId, doorcodesEnabled, schedule: normalizeSchedule(d.schedule, `${what}.schedule`) };
  }

  /**
   * Which of the doors a Key input names exist, in one statement per ID_LIST_CHUNK (a Key
   * over a provisioning chunk's 250 doors: one door lookup each was a round trip each).
   */
  protected existingDoors(doors: readonly KeyDoorInput[]): Set<number> {
    const ids = [...new Set(doors.map((d) => (typeof d === 'object' && d !== null ? d.doorId : undefined)).filter((id): id is number => Number.isSafeInteger(id) && (id as number) > 0))];
    const found = new Set<number>();
    for (let at = 0; at < ids.length; at += ID_LIST_CHUNK) {
      const part = ids.slice(at, at + ID_LIST_CHUNK);
      for (const r of this.db.prepare(`SELECT id FROM doors WHERE id IN (${part.map(() => '?').join(',')})`).all(...part) as { id: number }[]) found.add(Number(r.id));
    }
    return found;
  }

  /** A Key's door settings in multi-row statements (ID_LIST_CHUNK / 4 rows each). */
  protected writeKeyDoors(keyId: number, doors: readonly { doorId: number; doorcodesEnabled: boolean; schedule: ScheduleWindow[] | undefined }[]): void {
    const perStatement = Math.floor(ID_LIST_CHUNK / 4);
    for (let at = 0; at < doors.length; at += perStatement) {
      const part = doors.slice(at, at + perStatement);
      this.db
        .prepare(
          `INSERT INTO key_doors (key_id, door_id, doorcodes_enabled, schedule) VALUES ${part.map(() => '(?, ?, ?, ?)').join(', ')}
           ON CONFLICT(key_id, door_id) DO UPDATE SET doorcodes_enabled = excluded.doorcodes_enabled, schedule = excluded.schedule`,
        )
        .run(...part.flatMap((d) => [keyId, d.doorId, d.doorcodesEnabled ? 1 : 0, d.schedule === undefined ? null : JSON.stringify(d.schedule)]));
    }
  }

  protected writeKeyDoor(keyId: number, d: { doorId: number; doorcodesEnabled: boolean; schedule: ScheduleWindow[] | undefined }): void {
    this.db
      .prepare(
        `INSERT INTO key_doors (key_id, door_id, doorcodes_enabled, schedule) VALUES (?, ?, ?, ?)
         ON CONFLICT(key_id, door_id) DO UPDATE SET doorcodes_enabled = excluded.doorcodes_enabled, schedule = excluded.schedule`,
      )
      .run(keyId, d.doorId, d.doorcodesEnabled ? 1 : 0, d.schedule === undefined ? null : JSON.stringify(d.schedule));
  }

  /**
   * A door leaves a Key: its keyholders' doorcodes there go unless another of their Keys
   * still gives one, and the guest keys shared from it go.
   */
  protected dropKeyDoor(keyId: number, doorId: number): void {
    this.settleDoorcodes(this.pairs(this.holdersOf(keyId), [doorId]), keyId);
    this.db.prepare('DELETE FROM doorcodes WHERE key_id = ? AND door_id = ?').run(keyId, doorId);
    // Partner grants naming this door of the key end there (for good: re-adding the door
    // later does not revive them); a grant left with no door ends.
    this.db.prepare('DELETE FROM partner_grant_doors WHERE door_id = ? AND grant_id IN (SELECT id FROM partner_grants WHERE key_id = ?)').run(doorId, keyId);
    this.db
      .prepare('DELETE FROM partner_grants WHERE key_id = ? AND all_doors = 0 AND NOT EXISTS (SELECT 1 FROM partner_grant_doors gd WHERE gd.grant_id = partner_grants.id)')
      .run(keyId);
    this.db
      .prepare(
        `DELETE FROM keys WHERE guest_of IN (SELECT id FROM assignments WHERE key_id = ?)
           AND id IN (SELECT key_id FROM key_doors WHERE door_id = ?)`,
      )
      .run(keyId, doorId);
    this.db.prepare('DELETE FROM key_doors WHERE key_id = ? AND door_id = ?').run(keyId, doorId);
  }

  /** Doorcodes setting of a door on a Key; undefined when the door is not on it. */
  protected doorcodesAt(keyId: number, doorId: number): boolean | undefined {
    const r = this.db.prepare('SELECT doorcodes_enabled FROM key_doors WHERE key_id = ? AND door_id = ?').get(keyId, doorId) as { doorcodes_enabled: number } | undefined;
    return r === undefined ? undefined : r.doorcodes_enabled === 1;
  }

  /** Every (user, door) pair of these users and doors. */
  protected pairs(userIds: Iterable<number>, doorIds: Iterable<number>): { userId: number; doorId: number }[] {
    const doors = [...doorIds];
    return [...userIds].flatMap((userId) => doors.map((doorId) => ({ userId, doorId })));
  }

  /** Make a Key (optionally a partner key) from a set of doors with per-door settings. */
  createKey(input: { name: string; doors: KeyDoorInput[]; partnerId?: number | null }): KeyInfo {
    const name = requireName(input.name, 'name');
    if (!Array.isArray(input.doors)) throw invalid('doors must be a list');
    return this.batch(() => {
      const existing = this.existingDoors(input.doors);
      const doors = input.doors.map((d, i) => this.normalizeKeyDoor(d, `doors[${i}]`, existing));
      const seen = new Set<number>();
      for (const d of doors) {
        if (seen.has(d.doorId)) throw invalid(`door ${d.doorId} listed twice`);
        seen.add(d.doorId);
      }
      const partnerId = input.partnerId === undefined || input.partnerId === null ? null : this.requireAuthorizedPartner(input.partnerId).id;
      const r = this.db.prepare('INSERT INTO keys (name, partner_id, created_at) VALUES (?, ?, ?)').run(name, partnerId, this.now());
      const keyId = Number(r.lastInsertRowid);
      this.writeKeyDoors(keyId, doors);
      this.touch(seen);
      return this.key(keyId);
    });
  }

  /**
   * Edit a Key: rename, replace its door set, or attach a partner (which turns it into a
   * partner key). A partner key's partner can never be removed or changed.
   */
  updateKey(keyId: number, input: { name?: string; doors?: KeyDoorInput[]; partnerId?: number | null }): KeyInfo {
    return this.batch(() => {
      const k = this.managedKeyRow(keyId);
      if (input.partnerId !== undefined) {
        const wanted = input.partnerId === null ? null : requireId(input.partnerId, 'partnerId');
        if (k.partner_id !== null && wanted !== k.partner_id)
          throw new AuthorityError('FORBIDDEN_TRANSITION', `key ${k.id} is a partner key of partner ${k.partner_id}: its partner cannot be removed or changed, only the key deleted`, {
            keyId: k.id,
            partnerId: k.partner_id,
          });
        if (k.partner_id === null && wanted !== null) {
          this.requireAuthorizedPartner(wanted);
          this.db.prepare('UPDATE keys SET partner_id = ? WHERE id = ?').run(wanted, k.id);
          this.touch(this.keyDoorsOf(k.id).map((d) => d.doorId));
        }
      }
      if (input.name !== undefined) this.db.prepare('UPDATE keys SET name = ? WHERE id = ?').run(requireName(input.name, 'name'), k.id);
      if (input.doors !== undefined) {
        if (!Array.isArray(input.doors)) throw invalid('doors must be a list');
        const doors = input.doors.map((d, i) => this.normalizeKeyDoor(d, `doors[${i}]`));
        const next = new Set(doors.map((d) => d.doorId));
        if (next.size !== doors.length) throw invalid('a door is listed twice');
        const before = this.keyDoorsOf(k.id).map((d) => d.doorId);
        const flags = new Map(doors.map((d) => [d.doorId, this.doorcodesAt(k.id, d.doorId)] as const));
        for (const d of before) if (!next.has(d)) this.dropKeyDoor(k.id, d);
        for (const d of doors) this.writeKeyDoor(k.id, d);
        // Only doors added, or whose doorcodes setting changed, move codes.
        const changed = doors.filter((d) => flags.get(d.doorId) !== d.doorcodesEnabled).map((d) => d.doorId);
        if (changed.length > 0) this.settleDoorcodes(this.pairs(this.holdersOf(k.id), changed));
        this.touch(before);
        this.touch(next);
      }
      return this.key(k.id);
    });
  }

  /** Add a door to a Key or change that door's doorcode/schedule settings. */
  setKeyDoor(keyId: number, door: KeyDoorInput): KeyInfo {
    return this.batch(() => {
      const k = this.managedKeyRow(keyId);
      const d = this.normalizeKeyDoor(door, 'door');
      const before = this.doorcodesAt(k.id, d.doorId);
      this.writeKeyDoor(k.id, d);
      // The door added, or doorcodes turned on, issue the keyholders' codes; turned off, a
      // code moves to another Key that still gives it (or stays dormant). A schedule change
      // alone leaves every code where it is.
      if (before !== d.doorcodesEnabled) this.settleDoorcodes(this.pairs(this.holdersOf(k.id), [d.doorId]));
      this.touch([d.doorId]);
      return this.key(k.id);
    });
  }

  removeKeyDoor(keyId: number, doorId: number): KeyInfo {
    return this.batch(() => {
      const k = this.managedKeyRow(keyId);
      const d = this.doorRow(doorId);
      if (!this.db.prepare('SELECT 1 FROM key_doors WHERE key_id = ? AND door_id = ?').get(k.id, d.id))
        throw new AuthorityError('UNKNOWN_DOOR', `door ${d.id} is not on key ${k.id}`, { keyId: k.id, doorId: d.id });
      this.dropKeyDoor(k.id, d.id);
      this.touch([d.id]);
      return this.key(k.id);
    });
  }

  /**
   * Delete a Key: its assignments and the guest keys shared from it go too, and so do its
   * doorcodes — except those another of the keyholder's Keys still gives.
   */
  deleteKey(keyId: number): void {
    this.batch(() => {
      const k = this.managedKeyRow(keyId);
      const doors = this.keyDoorsOf(k.id).map((d) => d.doorId);
      this.settleDoorcodes(this.pairs(this.holdersOf(k.id), doors), k.id);
      this.db.prepare('DELETE FROM doorcodes WHERE key_id = ?').run(k.id);
      this.db.prepare('DELETE FROM keys WHERE id = ?').run(k.id); // cascades: key_doors, assignments → guest keys
      this.touch(doors);
    });
  }

  /**
   * Provision the lock guarding a door: a new lock id and 32-byte lock secret. Version 1
   * of its table is compiled at once. The bundle (with the secret) is returned only here.
   */
  provisionLock(doorId: number): ProvisioningBundle {
    return this.batch(() => {
      const d = this.doorRow(doorId);
      const existing = this.db.prepare('SELECT lock_id FROM locks WHERE door_id = ?').get(d.id) as { lock_id: string } | undefined;
      if (existing) throw new AuthorityError('CONFLICT', `door ${d.id} already has lock ${existing.lock_id}`, { lockId: existing.lock_id });
      const n = (this.db.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'lockCounter' RETURNING value").get() as { value: number }).value;
      const lockId = `lk-${String(n).padStart(4, '0')}`;
      const secret = this.draw(`lock-secret:${lockId}`);
      this.db
        .prepare('INSERT INTO locks (lock_id, door_id, secret_sealed, created_at) VALUES (?, ?, ?, ?)')
        .run(lockId, d.id, blob(this.sealer.seal(`lock-secret:${lockId}`, secret)), this.now());
      this.touch([d.id]);
      return {
        lockId,
        doorId: d.id,
        rootPublicKeys: JSON.parse(this.meta('rootPublicKeys')) as string[],
        lockSecret: toHex(secret),
        timeZone: this.meta('timeZone'),
        policy: this.lockPolicyFor(d),
      };
    });
  }

  /** Record the lock's device public key (verifies its receipts); returns the lock's token. */
  registerLockDevice(lockId: string, devicePublicKeyHex: string, opts: { replace?: boolean } = {}): { lockId: string; token: string } {
    return this.batch(() => {
      const l = this.lockRow(lockId);
      const pk = requireHex(devicePublicKeyHex, 'devicePublicKey', { exact: 32 });
      if (l.device_public_key !== null && !bytesEqual(l.device_public_key, pk) && opts.replace !== true)
        throw new AuthorityError('CONFLICT', `lock ${l.lock_id} already has a device key (pass replace to change it)`);
      const token = this.newToken('lock');
      this.db.prepare('UPDATE locks SET device_public_key = ?, token_hash = ? WHERE lock_id = ?').run(blob(pk), sha256(token), l.lock_id);
      return { lockId: l.lock_id, token };
    });
  }

  /**
   * Many doors, each with its lock provisioned: what addDoor + provisionLock do for each, in
   * one transaction of multi-row statements (a fleet of thousands of doors on PostgreSQL,
   * where every statement is a round trip). Lock ids and secrets are drawn exactly as that
   * sequence of calls would draw them. Every lock's version 1 is compiled at the end of the
   * transaction (or of the caller's batch, which can add the Keys first so that version 1 is
   * the full table). All or nothing: a refused name leaves no door behind.
   */
  addDoorsWithLocks(inputs: readonly { name: string; kind?: DoorKind; connected?: boolean }[], opts: BulkOptions = {}): { door: DoorInfo; bundle: ProvisioningBundle }[] {
    const perStatement = bulkRows(opts);
    const rows = inputs.map((input, i) => {
      const name = requireName(input.name, `doors[${i}].name`);
      const kind = input.kind ?? 'private';
      if (kind !== 'communal' && kind !== 'private') throw invalid(`doors[${i}].kind must be communal or private`);
      const connected = input.connected === undefined ? false : requireBool(input.connected, `doors[${i}].connected`);
      return { name, kind, connected };
    });
    const names = new Set<string>();
    for (const r of rows) {
      if (names.has(r.name)) throw new AuthorityError('CONFLICT', `the door name ${JSON.stringify(r.name)} is given twice`);
      names.add(r.name);
    }
    if (rows.length === 0) return [];
    return this.batch(() => {
      const now = this.now();
      const ids = new Map<string, number>();
      for (let at = 0; at < rows.length; at += perStatement) {
        const chunk = rows.slice(at, at + perStatement);
        const taken = this.db.prepare(`SELECT name FROM doors WHERE name IN (${chunk.map(() => '?').join(', ')})`).all(...chunk.map((r) => r.name)) as { name: string }[];
        if (taken.length > 0) throw new AuthorityError('CONFLICT', `a door named ${JSON.stringify(taken[0]?.name)} exists`);
        const inserted = this.db
          .prepare(`INSERT INTO doors (name, kind, connected, policy, created_at) VALUES ${chunk.map(() => '(?, ?, ?, NULL, ?)').join(', ')} RETURNING id, name`)
          .all(...chunk.flatMap((r) => [r.name, r.kind, r.connected ? 1 : 0, now])) as { id: number; name: string }[];
        for (const r of inserted) ids.set(r.name, Number(r.id));
      }
      const last = (this.db.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'lockCounter' RETURNING value").get(rows.length) as { value: number }).value;
      const first = Number(last) - rows.length + 1;
      const lockIds = rows.map((_, i) => `lk-${String(first + i).padStart(4, '0')}`);
      const secrets = this.drawMany(lockIds.map((lockId) => `lock-secret:${lockId}`));
      for (let at = 0; at < rows.length; at += perStatement) {
        const chunk = rows.slice(at, at + perStatement);
        this.db
          .prepare(`INSERT INTO locks (lock_id, door_id, secret_sealed, created_at) VALUES ${chunk.map(() => '(?, ?, ?, ?)').join(', ')}`)
          .run(
            ...chunk.flatMap((r, j) => {
              const lockId = lockIds[at + j] as string;
              return [lockId, ids.get(r.name), blob(this.sealer.seal(`lock-secret:${lockId}`, secrets[at + j] as Uint8Array)), now];
            }),
          );
      }
      this.touch(ids.values());
      const rootPublicKeys = JSON.parse(this.meta('rootPublicKeys')) as string[];
      const timeZone = this.meta('timeZone');
      const policy = JSON.parse(this.meta('policy')) as LockPolicy;
      return rows.map((r, i) => {
        const doorId = ids.get(r.name) as number;
        const lockId = lockIds[i] as string;
        return {
          door: { id: doorId, name: r.name, kind: r.kind, connected: r.connected, lockId, policy: null, partners: [] },
          bundle: { lockId, doorId, rootPublicKeys: [...rootPublicKeys], lockSecret: toHex(secrets[i] as Uint8Array), timeZone, policy: { ...policy } },
        };
      });
    });
  }

  /**
   * Record many locks' device public keys: registerLockDevice for each, in one transaction
   * (tokens drawn as that sequence of calls would draw them). A lock that already has a
   * different key refuses the whole call, as registerLockDevice without `replace` does.
   */
  registerLockDevices(devices: readonly { lockId: string; devicePublicKey: string }[], opts: BulkOptions = {}): { lockId: string; token: string }[] {
    const perStatement = bulkRows(opts);
    const keys = devices.map((d, i) => requireHex(d.devicePublicKey, `devices[${i}].devicePublicKey`, { exact: 32 }));
    const seen = new Set<string>();
    for (const d of devices) {
      if (seen.has(d.lockId)) throw invalid(`lock ${String(d.lockId)} is given twice`);
      seen.add(d.lockId);
    }
    if (devices.length === 0) return [];
    return this.batch(() => {
      const known = new Map<string, Buffer | null>();
      for (let at = 0; at < devices.length; at += perStatement) {
        const chunk = devices.slice(at, at + perStatement).map((d) => d.lockId);
        const found = this.db.prepare(`SELECT lock_id, device_public_key FROM locks WHERE lock_id IN (${chunk.map(() => '?').join(', ')})`).all(...chunk) as { lock_id: string; device_public_key: Buffer | null }[];
        for (const r of found) known.set(r.lock_id, r.device_public_key);
      }
      devices.forEach((d, i) => {
        if (!known.has(d.lockId)) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${String(d.lockId)}`, { lockId: d.lockId });
        const current = known.get(d.lockId);
        if (current !== null && current !== undefined && !bytesEqual(current, keys[i] as Uint8Array))
          throw new AuthorityError('CONFLICT', `lock ${d.lockId} already has a device key (pass replace to change it)`);
      });
      const tokens = this.drawMany(devices.map(() => 'token:lock')).map((b) => TOKEN_PREFIX + toHex(b));
      const update = this.db.prepare('UPDATE locks SET device_public_key = ?, token_hash = ? WHERE lock_id = ?');
      // One statement per lock: a multi-row UPDATE has no form common to both engines.
      devices.forEach((d, i) => update.run(blob(keys[i] as Uint8Array), sha256(tokens[i] as string), d.lockId));
      return devices.map((d, i) => ({ lockId: d.lockId, token: tokens[i] as string }));
    });
  }

  listLocks(): { lockId: string; doorId: number; version: number; versionInForce: number; inForceSince: number | null; deviceRegistered: boolean }[] {
    const rows = this.db
      .prepare(
        `SELECT l.lock_id, l.door_id, l.in_force_version, l.in_force_at, CASE WHEN l.device_public_key IS NOT NULL THEN 1 ELSE 0 END AS dev,
                (SELECT MAX(version) FROM lock_versions v WHERE v.lock_id = l.lock_id) AS version
         FROM locks l ORDER BY l.lock_id`,
      )
      .all() as { lock_id: string; door_id: number; in_force_version: number; in_force_at: number | null; dev: number; version: number | null }[];
    return rows.map((r) => ({ lockId: r.lock_id, doorId: r.door_id, version: r.version ?? 0, versionInForce: r.in_force_version, inForceSince: r.in_force_at, deviceRegistered: r.dev === 1 }));
  }
}
