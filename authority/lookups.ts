// Reading the model by id, each unknown id refused with its named error, and the door sets
// a user or a partner reaches (what every rule and the compiler look up).

import { type LockPolicy, type ScheduleWindow, LOCK_ID_PATTERN } from '../protocol';
import { AuthorityError } from './errors';
import { requireId } from './validate';
import { type KeyDoorSettings } from './types';
import { type DoorRow, type KeyRow, type KeyDoorRow, type UserRow, type AssignmentRow, type PartnerRow, type LockRow, u8 } from './rows';
import { AuthorityStore } from './store';

export abstract class ModelLookups extends AuthorityStore {
  protected allDoorIds(): number[] {
    return (this.db.prepare('SELECT id FROM doors').all() as { id: number }[]).map((r) => r.id);
  }

  protected doorRow(doorId: unknown): DoorRow {
    const id = requireId(doorId, 'doorId');
    const r = this.db.prepare('SELECT * FROM doors WHERE id = ?').get(id) as DoorRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_DOOR', `no door ${id}`, { doorId: id });
    return r;
  }

  protected keyRow(keyId: unknown): KeyRow {
    const id = requireId(keyId, 'keyId');
    const r = this.db.prepare('SELECT * FROM keys WHERE id = ?').get(id) as KeyRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_KEY', `no key ${id}`, { keyId: id });
    return r;
  }

  protected managedKeyRow(keyId: unknown): KeyRow {
    const k = this.keyRow(keyId);
    if (k.guest_of !== null)
      throw new AuthorityError('FORBIDDEN_TRANSITION', `key ${k.id} is a guest key created by a resident's invitation; managers cannot edit or assign it`);
    return k;
  }

  /** Users holding a Key (its current keyholders), oldest assignment first. */
  protected holdersOf(keyId: number): number[] {
    return (this.db.prepare('SELECT user_id FROM assignments WHERE key_id = ? ORDER BY id').all(keyId) as { user_id: number }[]).map((r) => r.user_id);
  }

  protected keyDoorsOf(keyId: number): KeyDoorSettings[] {
    return (this.db.prepare('SELECT * FROM key_doors WHERE key_id = ? ORDER BY door_id').all(keyId) as KeyDoorRow[]).map((r) => {
      const s: KeyDoorSettings = { doorId: r.door_id, doorcodesEnabled: r.doorcodes_enabled === 1 };
      if (r.schedule !== null) s.schedule = JSON.parse(r.schedule) as ScheduleWindow[];
      return s;
    });
  }

  protected userRow(userId: unknown): UserRow {
    const id = requireId(userId, 'userId');
    const r = this.db.prepare('SELECT * FROM users WHERE id = ?').get(id) as UserRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_USER', `no user ${id}`, { userId: id });
    return r;
  }

  protected assignmentRow(userId: number, keyId: number): AssignmentRow {
    const a = this.db.prepare('SELECT * FROM assignments WHERE user_id = ? AND key_id = ?').get(userId, keyId) as AssignmentRow | undefined;
    if (a === undefined) throw new AuthorityError('UNKNOWN_ASSIGNMENT', `user ${userId} does not hold key ${keyId}`, { userId, keyId });
    return a;
  }

  protected partnerRow(partnerId: unknown): PartnerRow {
    const id = requireId(partnerId, 'partnerId');
    const r = this.db.prepare('SELECT id, name, status FROM partners WHERE id = ?').get(id) as PartnerRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_PARTNER', `no partner ${id}`, { partnerId: id });
    return r;
  }

  protected requireAuthorizedPartner(partnerId: unknown): PartnerRow {
    const p = this.partnerRow(partnerId);
    // "A partner must be authorized before it can be assigned" (seeds: DOOR's integrations
    // team adds the partner to the property first).
    if (p.status !== 'authorized')
      throw new AuthorityError(
        'PARTNER_NOT_AUTHORIZED',
        p.status === 'pending'
          ? `partner ${p.id} is not yet authorized at this property: authorize it (authority partner authorize) before assigning it`
          : `partner ${p.id} was terminated at this property: authorize it again before assigning it`,
        { partnerId: p.id, status: p.status },
      );
    return p;
  }

  /** Doors a user reaches through any Key, doorcode or guest key they shared. */
  protected doorsOfUser(userId: number): number[] {
    return (
      this.db
        .prepare(
          `SELECT kd.door_id FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id WHERE a.user_id = ?
           UNION SELECT door_id FROM doorcodes WHERE user_id = ?`,
        )
        .all(userId, userId) as { door_id: number }[]
    ).map((r) => r.door_id);
  }

  protected doorsOfPartner(partnerId: number): number[] {
    return (
      this.db
        .prepare(
          `SELECT door_id FROM partner_doors WHERE partner_id = ?
           UNION SELECT kd.door_id FROM keys k JOIN key_doors kd ON kd.key_id = k.id WHERE k.partner_id = ?`,
        )
        .all(partnerId, partnerId) as { door_id: number }[]
    ).map((r) => r.door_id);
  }

  protected lockRow(lockId: unknown): LockRow {
    if (typeof lockId !== 'string' || !LOCK_ID_PATTERN.test(lockId)) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${String(lockId)}`);
    const r = this.db.prepare('SELECT * FROM locks WHERE lock_id = ?').get(lockId) as LockRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${lockId}`, { lockId });
    return r;
  }

  protected lockOfDoor(doorId: number): LockRow {
    const r = this.db.prepare('SELECT * FROM locks WHERE door_id = ?').get(doorId) as LockRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_LOCK', `door ${doorId} has no lock provisioned`, { doorId });
    return r;
  }

  protected lockSecret(lockId: string, sealed: Buffer): Uint8Array {
    return this.sealer.open(`lock-secret:${lockId}`, u8(sealed));
  }

  protected lockPolicyFor(door: DoorRow): LockPolicy {
    const base = JSON.parse(this.meta('policy')) as LockPolicy;
    return door.policy === null ? base : { ...base, ...(JSON.parse(door.policy) as Partial<LockPolicy>) };
  }
}
