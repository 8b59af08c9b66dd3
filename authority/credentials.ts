// Credentials held by people and partners: enrolled devices (public keys only), sealed
// permanent doorcodes, keycards and daily codes derived from the lock secret.

import { type HolderClass, bytesEqual, dailyCode, keyPairFromSeed, publicKeyOf, toHex, deriveSeed32 } from '../protocol';
import { isStrictEd25519PublicKey } from '../protocol/ed25519-strict';
import { AuthorityError } from './errors';
import { invalid, localDate, requireDoorcode, requireHex, requireId, requireLocalDate } from './validate';
import { type CredentialFile, type Grant } from './types';
import { u8, blob, sha256 } from './rows';
import { SigningKeys } from './keys';

/** Users and doors per statement when reading (user, door) pairs set-based. */
const PAIR_USERS_CHUNK = 100;
const PAIR_DOORS_CHUNK = 400;

export abstract class Credentials extends SigningKeys {
  protected insertDevice(owner: { userId: number } | { partnerId: number }, publicKeyHex: string): { deviceId: number; token: string; tokenExpiresAt: number } {
    const pk = requireHex(publicKeyHex, 'publicKey', { exact: 32 });
    if (!isStrictEd25519PublicKey(pk))
      throw new AuthorityError('WEAK_PUBLIC_KEY', 'publicKey is not a canonical Ed25519 point of large order (small-order and non-canonical keys let anyone sign)');
    if (this.db.prepare('SELECT 1 FROM devices WHERE public_key = ?').get(blob(pk))) throw new AuthorityError('CONFLICT', 'this public key is already enrolled');
    const token = this.newToken('device');
    const tokenExpiresAt = this.now() + this.deviceTokenSeconds;
    const r = this.db
      .prepare('INSERT INTO devices (user_id, partner_id, public_key, token_hash, token_expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run('userId' in owner ? owner.userId : null, 'partnerId' in owner ? owner.partnerId : null, blob(pk), sha256(token), tokenExpiresAt, this.now());
    return { deviceId: Number(r.lastInsertRowid), token, tokenExpiresAt };
  }

  /**
   * A new token for a device (the old one stops working at once; presenting it is then
   * refused as ROTATED), valid for the device-token lifetime from now. Refused for a revoked
   * device and for a device of a partner no longer authorized.
   */
  rotateDeviceToken(deviceId: number): { deviceId: number; token: string; tokenExpiresAt: number } {
    return this.batch(() => {
      const id = requireId(deviceId, 'deviceId');
      const d = this.db.prepare('SELECT id, partner_id, revoked_at FROM devices WHERE id = ?').get(id) as { id: number; partner_id: number | null; revoked_at: number | null } | undefined;
      if (d === undefined) throw new AuthorityError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
      if (d.partner_id !== null) this.requireAuthorizedPartner(d.partner_id);
      if (d.revoked_at !== null) throw new AuthorityError('FORBIDDEN_TRANSITION', `device ${d.id} is revoked: enrol the phone again`, { deviceId: d.id });
      const token = this.newToken('device');
      const tokenExpiresAt = this.now() + this.deviceTokenSeconds;
      this.db.prepare('UPDATE devices SET previous_token_hash = token_hash, token_hash = ?, token_expires_at = ? WHERE id = ?').run(sha256(token), tokenExpiresAt, d.id);
      return { deviceId: d.id, token, tokenExpiresAt };
    });
  }

  /** A new API token for an authorized partner; the old one stops working at once (refused as ROTATED). */
  rotatePartnerToken(partnerId: number): { partnerId: number; token: string } {
    return this.batch(() => {
      const p = this.requireAuthorizedPartner(partnerId);
      const token = this.newToken('partner');
      this.db.prepare('UPDATE partners SET previous_token_hash = token_hash, token_hash = ? WHERE id = ?').run(sha256(token), p.id);
      return { partnerId: p.id, token };
    });
  }

  /** Enrol a user's phone by its public key (the private key never leaves the phone). */
  enrolUserDevice(userId: number, publicKeyHex: string): { deviceId: number; token: string; tokenExpiresAt: number } {
    return this.batch(() => {
      const u = this.userRow(userId);
      const out = this.insertDevice({ userId: u.id }, publicKeyHex);
      this.touch(this.doorsOfUser(u.id));
      return out;
    });
  }

  enrolPartnerDevice(partnerId: number, publicKeyHex: string): { deviceId: number; token: string; tokenExpiresAt: number } {
    return this.batch(() => {
      const p = this.requireAuthorizedPartner(partnerId);
      const out = this.insertDevice({ partnerId: p.id }, publicKeyHex);
      this.touch(this.doorsOfPartner(p.id));
      return out;
    });
  }

  revokeDevice(deviceId: number): void {
    this.batch(() => {
      const id = requireId(deviceId, 'deviceId');
      const d = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as { id: number; user_id: number | null; partner_id: number | null } | undefined;
      if (d === undefined) throw new AuthorityError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
      this.touch(d.user_id !== null ? this.doorsOfUser(d.user_id) : this.doorsOfPartner(d.partner_id as number));
      this.db.prepare('DELETE FROM devices WHERE id = ?').run(d.id);
    });
  }

  /** The unlock credentials (lock, credId) this device holds in the current tables. */
  credentialsForDevice(deviceId: number): Grant[] {
    const id = requireId(deviceId, 'deviceId');
    if (!this.db.prepare('SELECT 1 FROM devices WHERE id = ?').get(id)) throw new AuthorityError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
    return (
      this.db.prepare('SELECT lock_id, cred_id FROM cred_ids WHERE device_id = ? AND present = 1 ORDER BY lock_id, cred_id').all(id) as { lock_id: string; cred_id: number }[]
    ).map((r) => ({ lockId: r.lock_id, credId: r.cred_id, deviceId: id }));
  }

  /**
   * The phone credential file the mobile agent reads. The secret key is generated on the
   * device, so the caller supplies it; it must match the enrolled public key.
   */
  credentialFile(deviceId: number, secretKeyHex: string): CredentialFile {
    const id = requireId(deviceId, 'deviceId');
    const d = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as { id: number; user_id: number | null; partner_id: number | null; public_key: Buffer } | undefined;
    if (d === undefined) throw new AuthorityError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
    const sk = requireHex(secretKeyHex, 'secretKey', { exact: 32 });
    if (!bytesEqual(publicKeyOf(sk), d.public_key)) throw invalid('secretKey does not belong to this device');
    // Holder class as the mobile agent reads it (resident | staff | guest | partner).
    const holder: HolderClass = d.user_id !== null ? this.userRow(d.user_id).role : 'partner';
    return {
      holder,
      secretKey: toHex(sk),
      publicKey: toHex(d.public_key),
      credentials: this.credentialsForDevice(id).map((g) => ({ lockId: g.lockId, credId: g.credId })),
    };
  }

  /** Demo/test helper: generate a device key from a seed label, enrol it, return its file. */
  enrolDeviceWithNewKey(owner: { userId: number } | { partnerId: number }, seed: string): { deviceId: number; token: string; tokenExpiresAt: number; credentialFile: CredentialFile } {
    const kp = keyPairFromSeed(deriveSeed32(seed, 'userId' in owner ? `device:user:${owner.userId}` : `device:partner:${owner.partnerId}`));
    const r = 'userId' in owner ? this.enrolUserDevice(owner.userId, toHex(kp.publicKey)) : this.enrolPartnerDevice(owner.partnerId, toHex(kp.publicKey));
    return { ...r, credentialFile: this.credentialFile(r.deviceId, toHex(kp.secretKey)) };
  }

  protected codeTag(doorId: number, code: string): Buffer {
    return blob(this.sealer.tag(`doorcode-tag:${doorId}`, code));
  }

  /** Store one permanent code (caller has checked the Key); returns the code. */
  protected storeDoorcode(userId: number, doorId: number, keyId: number, code: string | undefined): string {
    let chosen = code;
    if (chosen === undefined) {
      for (let attempt = 0; attempt < 100 && chosen === undefined; attempt++) {
        const b = this.draw(`doorcode:${userId}:${doorId}`);
        const n = (((b[0] as number) << 24) | ((b[1] as number) << 16) | ((b[2] as number) << 8) | (b[3] as number)) >>> 0;
        const candidate = String(n % 10_000_000).padStart(7, '0');
        if (!this.db.prepare('SELECT 1 FROM doorcodes WHERE door_id = ? AND code_tag = ?').get(doorId, this.codeTag(doorId, candidate))) chosen = candidate;
      }
      if (chosen === undefined) throw new AuthorityError('CONFLICT', `no free doorcode found for door ${doorId}`);
    } else if (this.db.prepare('SELECT 1 FROM doorcodes WHERE door_id = ? AND code_tag = ?').get(doorId, this.codeTag(doorId, chosen))) {
      throw new AuthorityError('CONFLICT', `that code is already in use at door ${doorId}`, { doorId });
    }
    const r = this.db
      .prepare('INSERT INTO doorcodes (user_id, door_id, key_id, code_sealed, code_tag, created_at) VALUES (?, ?, ?, x\'\', ?, ?)')
      .run(userId, doorId, keyId, this.codeTag(doorId, chosen), this.now());
    const id = Number(r.lastInsertRowid);
    this.db.prepare('UPDATE doorcodes SET code_sealed = ? WHERE id = ?').run(blob(this.sealer.seal(`doorcode:${id}`, new TextEncoder().encode(chosen))), id);
    return chosen;
  }

  /**
   * Doorcodes follow Keys. A doorcode belongs to the (user, door), not to the Key that
   * first gave it. For each pair: a user holding the door through a Key with doorcodes on
   * has one code there (issued when missing: "each user assigned this key gets a unique
   * doorcode for that door"), kept under such a Key (its schedule and validity apply at
   * the lock). A user whose Keys there all have doorcodes off keeps the code dormant (the
   * lock refuses it as DOORCODES_DISABLED; turning doorcodes on again revives it). A user
   * who no longer holds the door through any Key loses it. `departingKeyId` names a Key
   * about to leave these pairs (unassigned, deleted, or the door removed from it): it no
   * longer counts, so its codes move to another Key before the row goes.
   * Returns the codes issued.
   */
  protected settleDoorcodes(pairs: Iterable<{ userId: number; doorId: number }>, departingKeyId?: number): { userId: number; doorId: number; code: string }[] {
    const issued: { userId: number; doorId: number; code: string }[] = [];
    const todo: { userId: number; doorId: number }[] = [];
    const seen = new Set<string>();
    for (const p of pairs) {
      const tag = `${p.userId}:${p.doorId}`;
      if (seen.has(tag)) continue;
      seen.add(tag);
      todo.push(p);
    }
    // Every pair's Keys and held code read up front, set-based (a Key over 250 doors held by
    // 10 users is 2,500 pairs: two statements per pair were 5,000 PostgreSQL round trips).
    // The loop below changes only the pair's own doorcode row, never a grant, so what was
    // read stays true for the pairs still to come.
    const grantsOf = new Map<string, { keyId: number; doorcodes: boolean }[]>();
    const heldOf = new Map<string, { id: number; key_id: number }>();
    const userIds = [...new Set(todo.map((p) => p.userId))];
    const doorIds = [...new Set(todo.map((p) => p.doorId))];
    for (let u = 0; u < userIds.length; u += PAIR_USERS_CHUNK) {
      const us = userIds.slice(u, u + PAIR_USERS_CHUNK);
      for (let d = 0; d < doorIds.length; d += PAIR_DOORS_CHUNK) {
        const ds = doorIds.slice(d, d + PAIR_DOORS_CHUNK);
        const uList = us.map(() => '?').join(',');
        const dList = ds.map(() => '?').join(',');
        const rows = this.db
          .prepare(
            `SELECT a.user_id, kd.door_id, a.key_id, kd.doorcodes_enabled FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id JOIN keys k ON k.id = a.key_id
             WHERE a.user_id IN (${uList}) AND kd.door_id IN (${dList}) AND k.guest_of IS NULL ORDER BY a.id`,
          )
          .all(...us, ...ds) as { user_id: number; door_id: number; key_id: number; doorcodes_enabled: number }[];
        for (const r of rows) {
          const tag = `${r.user_id}:${r.door_id}`;
          const list = grantsOf.get(tag) ?? [];
          list.push({ keyId: r.key_id, doorcodes: r.doorcodes_enabled === 1 });
          grantsOf.set(tag, list);
        }
        const codes = this.db.prepare(`SELECT id, user_id, door_id, key_id FROM doorcodes WHERE user_id IN (${uList}) AND door_id IN (${dList})`).all(...us, ...ds) as {
          id: number;
          user_id: number;
          door_id: number;
          key_id: number;
        }[];
        for (const c of codes) heldOf.set(`${c.user_id}:${c.door_id}`, { id: c.id, key_id: c.key_id });
      }
    }
    for (const { userId, doorId } of todo) {
      const tag = `${userId}:${doorId}`;
      const grants = (grantsOf.get(tag) ?? []).filter((g) => g.keyId !== departingKeyId);
      const withCodes = grants.filter((g) => g.doorcodes).map((g) => g.keyId);
      const code = heldOf.get(tag);
      const home = withCodes[0] ?? grants[0]?.keyId;
      if (home === undefined) {
        if (code === undefined) continue;
        this.db.prepare('DELETE FROM doorcodes WHERE id = ?').run(code.id);
      } else if (code === undefined) {
        if (withCodes.length === 0) continue;
        issued.push({ userId, doorId, code: this.storeDoorcode(userId, doorId, home, undefined) });
      } else if (withCodes.length > 0 ? !withCodes.includes(code.key_id) : !grants.some((g) => g.keyId === code.key_id)) {
        this.db.prepare('UPDATE doorcodes SET key_id = ? WHERE id = ?').run(home, code.id);
      } else continue;
      this.touch([doorId]);
    }
    return issued;
  }

  /**
   * Issue (or replace) a user's 7-digit permanent code for a door. The user must hold a
   * Key that includes the door with doorcodes enabled; the code stays while any such Key
   * does (settleDoorcodes).
   */
  issueDoorcode(userId: number, doorId: number, code?: string): { doorId: number; keyId: number; code: string } {
    return this.batch(() => {
      const u = this.userRow(userId);
      const d = this.doorRow(doorId);
      const wanted = code === undefined ? undefined : requireDoorcode(code);
      const k = this.db
        .prepare(
          `SELECT a.key_id FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id JOIN keys k ON k.id = a.key_id
           WHERE a.user_id = ? AND kd.door_id = ? AND kd.doorcodes_enabled = 1 AND k.guest_of IS NULL ORDER BY a.id LIMIT 1`,
        )
        .get(u.id, d.id) as { key_id: number } | undefined;
      if (k === undefined) throw new AuthorityError('DOORCODES_DISABLED', `user ${u.id} holds no Key with doorcodes enabled at door ${d.id}`, { userId: u.id, doorId: d.id });
      this.db.prepare('DELETE FROM doorcodes WHERE user_id = ? AND door_id = ?').run(u.id, d.id);
      const chosen = this.storeDoorcode(u.id, d.id, k.key_id, wanted);
      this.touch([d.id]);
      return { doorId: d.id, keyId: k.key_id, code: chosen };
    });
  }

  revokeDoorcode(userId: number, doorId: number): void {
    this.batch(() => {
      const u = this.userRow(userId);
      const d = this.doorRow(doorId);
      const r = this.db.prepare('DELETE FROM doorcodes WHERE user_id = ? AND door_id = ?').run(u.id, d.id);
      if (r.changes === 0) throw new AuthorityError('UNKNOWN_DOORCODE', `user ${u.id} has no doorcode at door ${d.id}`);
      this.touch([d.id]);
    });
  }

  /** Reveal a user's code for a door (what the resident's app would show). */
  doorcodeOf(userId: number, doorId: number): string {
    const r = this.db.prepare('SELECT id, code_sealed FROM doorcodes WHERE user_id = ? AND door_id = ?').get(requireId(userId, 'userId'), requireId(doorId, 'doorId')) as
      | { id: number; code_sealed: Buffer }
      | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_DOORCODE', `user ${userId} has no doorcode at door ${doorId}`);
    return new TextDecoder().decode(this.sealer.open(`doorcode:${r.id}`, u8(r.code_sealed)));
  }

  addKeycard(userId: number, uidHex: string): { id: number; userId: number; uid: string } {
    return this.batch(() => {
      const u = this.userRow(userId);
      const uid = requireHex(uidHex, 'uid', { min: 4, max: 10 });
      if (![4, 7, 10].includes(uid.length)) throw invalid('keycard UIDs are 4, 7 or 10 bytes (ISO 14443)');
      if (this.db.prepare('SELECT 1 FROM keycards WHERE uid = ?').get(blob(uid))) throw new AuthorityError('CONFLICT', 'that keycard is already enrolled');
      const r = this.db.prepare('INSERT INTO keycards (user_id, uid, created_at) VALUES (?, ?, ?)').run(u.id, blob(uid), this.now());
      this.touch(this.doorsOfUser(u.id));
      return { id: Number(r.lastInsertRowid), userId: u.id, uid: toHex(uid) };
    });
  }

  removeKeycard(keycardId: number): void {
    this.batch(() => {
      const id = requireId(keycardId, 'keycardId');
      const c = this.db.prepare('SELECT user_id FROM keycards WHERE id = ?').get(id) as { user_id: number } | undefined;
      if (c === undefined) throw new AuthorityError('UNKNOWN_KEYCARD', `no keycard ${id}`);
      this.touch(this.doorsOfUser(c.user_id));
      this.db.prepare('DELETE FROM keycards WHERE id = ?').run(id);
    });
  }

  issueDailyCode(doorId: number, input: { kind?: 'daily' | 'dailySingleUse'; date?: string; label?: string } = {}): {
    doorId: number;
    lockId: string;
    date: string;
    kind: 'daily' | 'dailySingleUse';
    slot: number;
    code: string;
  } {
    return this.batch(() => {
      const d = this.doorRow(doorId);
      const lock = this.lockOfDoor(d.id);
      const kind = input.kind ?? 'daily';
      if (kind !== 'daily' && kind !== 'dailySingleUse') throw invalid('kind must be daily or dailySingleUse');
      const date = input.date === undefined ? localDate(this.now(), this.meta('timeZone')) : requireLocalDate(input.date);
      const slots = this.lockPolicyFor(d).dailyCodeSlots;
      const used = this.db.prepare('SELECT slot FROM daily_code_issues WHERE door_id = ? AND local_date = ? AND kind = ?').all(d.id, date, kind) as { slot: number }[];
      const taken = new Set(used.map((u) => u.slot));
      let slot = -1;
      for (let s = 0; s < slots; s++) if (!taken.has(s)) (slot = s), (s = slots);
      if (slot < 0) throw new AuthorityError('DAILY_CODES_EXHAUSTED', `all ${slots} ${kind} codes for ${date} at door ${d.id} are issued`, { slots });
      this.db
        .prepare('INSERT INTO daily_code_issues (door_id, local_date, kind, slot, label, issued_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(d.id, date, kind, slot, input.label ?? null, this.now());
      const code = dailyCode(this.lockSecret(lock.lock_id, lock.secret_sealed), date, slot, kind);
      return { doorId: d.id, lockId: lock.lock_id, date, kind, slot, code };
    });
  }
}
