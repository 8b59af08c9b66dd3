// Users and what they hold: managers assign Keys (never single doors), "May Share Key",
// and guests invited by residents (one Key per shared door, gone with the resident's).

import { toHex } from '../protocol';
import { AuthorityError } from './errors';
import { invalid, optTime, requireBool, requireName, requireValidity } from './validate';
import { type KeyInfo, type AssignmentInfo, type UserInfo } from './types';
import { type AssignmentRow } from './rows';
import { PropertyModel } from './model';

export abstract class People extends PropertyModel {
  protected assignmentInfo(a: AssignmentRow): AssignmentInfo {
    const out: AssignmentInfo = { id: a.id, userId: a.user_id, keyId: a.key_id, mayShare: a.may_share === 1 };
    if (a.valid_from !== null) out.validFrom = a.valid_from;
    if (a.valid_until !== null) out.validUntil = a.valid_until;
    return out;
  }

  user(userId: number): UserInfo {
    const u = this.userRow(userId);
    return {
      id: u.id,
      name: u.name,
      role: u.role,
      invitedBy: u.invited_by,
      assignments: (this.db.prepare('SELECT * FROM assignments WHERE user_id = ? ORDER BY id').all(u.id) as AssignmentRow[]).map((a) => this.assignmentInfo(a)),
      devices: (this.db.prepare('SELECT id FROM devices WHERE user_id = ? ORDER BY id').all(u.id) as { id: number }[]).map((d) => d.id),
      keycards: (this.db.prepare('SELECT id, uid FROM keycards WHERE user_id = ? ORDER BY id').all(u.id) as { id: number; uid: Buffer }[]).map((c) => ({ id: c.id, uid: toHex(c.uid) })),
      doorcodeDoors: (this.db.prepare('SELECT door_id FROM doorcodes WHERE user_id = ? ORDER BY door_id').all(u.id) as { door_id: number }[]).map((d) => d.door_id),
    };
  }

  listUsers(): UserInfo[] {
    return (this.db.prepare('SELECT id FROM users ORDER BY id').all() as { id: number }[]).map((r) => this.user(r.id));
  }

  addUser(input: { name: string; role?: 'resident' | 'staff' }): UserInfo {
    const name = requireName(input.name, 'name');
    const role = input.role ?? 'resident';
    if (role !== 'resident' && role !== 'staff') throw invalid('role must be resident or staff (guests are invited by residents)');
    return this.batch(() => {
      const r = this.db.prepare('INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)').run(name, role, this.now());
      return this.user(Number(r.lastInsertRowid));
    });
  }

  /** Remove a user: their Keys, doorcodes, devices, keycards — and their guests' access. */
  removeUser(userId: number): void {
    this.batch(() => {
      const u = this.userRow(userId);
      this.touch(this.doorsOfUser(u.id));
      this.db.prepare('DELETE FROM users WHERE id = ?').run(u.id);
    });
  }

  assignKey(userId: number, keyId: number, opts: { mayShare?: boolean; validFrom?: number; validUntil?: number } = {}): { assignment: AssignmentInfo; doorcodes: { doorId: number; code: string }[] } {
    return this.batch(() => {
      const u = this.userRow(userId);
      if (u.role === 'guest') throw new AuthorityError('FORBIDDEN_TRANSITION', `user ${u.id} is a guest: guests get access only through a resident's invitation`);
      const k = this.managedKeyRow(keyId);
      const mayShare = opts.mayShare === undefined ? true : requireBool(opts.mayShare, 'mayShare');
      const validFrom = optTime(opts.validFrom, 'validFrom');
      const validUntil = optTime(opts.validUntil, 'validUntil');
      requireValidity(validFrom, validUntil, 'assignment');
      if (this.db.prepare('SELECT 1 FROM assignments WHERE user_id = ? AND key_id = ?').get(u.id, k.id))
        throw new AuthorityError('CONFLICT', `user ${u.id} already holds key ${k.id}`, { userId: u.id, keyId: k.id });
      const r = this.db
        .prepare('INSERT INTO assignments (user_id, key_id, may_share, valid_from, valid_until, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(u.id, k.id, mayShare ? 1 : 0, validFrom ?? null, validUntil ?? null, this.now());
      const doors = this.keyDoorsOf(k.id);
      // "Enable Doorcodes: each user assigned this key gets a unique doorcode for that door."
      const doorcodes = this.settleDoorcodes(this.pairs([u.id], doors.map((d) => d.doorId))).map((c) => ({ doorId: c.doorId, code: c.code }));
      this.touch(doors.map((d) => d.doorId));
      const a = this.db.prepare('SELECT * FROM assignments WHERE id = ?').get(Number(r.lastInsertRowid)) as AssignmentRow;
      return { assignment: this.assignmentInfo(a), doorcodes };
    });
  }

  /**
   * "May Share Key" per assignment. Turning it off also withdraws the guest keys already
   * shared from this assignment: the resident may no longer share those doors.
   */
  setMayShare(userId: number, keyId: number, mayShare: boolean): AssignmentInfo {
    return this.batch(() => {
      const u = this.userRow(userId);
      const k = this.managedKeyRow(keyId);
      const a = this.assignmentRow(u.id, k.id);
      const on = requireBool(mayShare, 'mayShare');
      this.db.prepare('UPDATE assignments SET may_share = ? WHERE id = ?').run(on ? 1 : 0, a.id);
      if (!on) {
        this.touch(this.keyDoorsOf(k.id).map((d) => d.doorId));
        this.db.prepare('DELETE FROM keys WHERE guest_of = ?').run(a.id);
      }
      return this.assignmentInfo(this.db.prepare('SELECT * FROM assignments WHERE id = ?').get(a.id) as AssignmentRow);
    });
  }

  /**
   * Take a Key away: its doorcodes go (unless another of the user's Keys still gives one at
   * that door), and so does every guest access shared from it.
   */
  unassignKey(userId: number, keyId: number): void {
    this.batch(() => {
      const u = this.userRow(userId);
      const k = this.managedKeyRow(keyId);
      const a = this.assignmentRow(u.id, k.id);
      const doors = this.keyDoorsOf(k.id).map((d) => d.doorId);
      // A doorcode another of the user's Keys still gives moves to that Key first.
      this.settleDoorcodes(this.pairs([u.id], doors), k.id);
      this.touch(doors);
      this.db.prepare('DELETE FROM assignments WHERE id = ?').run(a.id); // trigger drops the rest of its doorcodes; FK drops guest keys
    });
  }

  /**
   * A resident invites a guest to some of their doors. Each door needs a Key the resident
   * holds with "May Share Key" on; DOOR then creates one Key per door for the guest. The
   * whole invitation is refused (listing the doors) if any door cannot be shared.
   */
  inviteGuest(residentId: number, input: { name: string; doorIds: number[]; validFrom?: number; validUntil?: number }): { guest: UserInfo; keys: KeyInfo[] } {
    return this.batch(() => {
      const r = this.userRow(residentId);
      if (r.role !== 'resident') throw new AuthorityError('FORBIDDEN_TRANSITION', `user ${r.id} is a ${r.role}: only residents invite guests`);
      const name = requireName(input.name, 'name');
      if (!Array.isArray(input.doorIds) || input.doorIds.length === 0) throw invalid('doorIds must list at least one door');
      const validFrom = optTime(input.validFrom, 'validFrom');
      const validUntil = optTime(input.validUntil, 'validUntil');
      requireValidity(validFrom, validUntil, 'invitation');
      const plan: { doorId: number; assignmentId: number }[] = [];
      const refused: number[] = [];
      for (const raw of input.doorIds) {
        const door = this.doorRow(raw);
        if (plan.some((p) => p.doorId === door.id)) throw invalid(`door ${door.id} listed twice`);
        const a = this.db
          .prepare(
            `SELECT a.id FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id JOIN keys k ON k.id = a.key_id
             WHERE a.user_id = ? AND kd.door_id = ? AND a.may_share = 1 AND k.guest_of IS NULL ORDER BY a.id LIMIT 1`,
          )
          .get(r.id, door.id) as { id: number } | undefined;
        if (a === undefined) refused.push(door.id);
        else plan.push({ doorId: door.id, assignmentId: a.id });
      }
      if (refused.length > 0)
        throw new AuthorityError('SHARING_NOT_ALLOWED', `resident ${r.id} may not share door(s) ${refused.join(', ')}`, { doors: refused });
      const now = this.now();
      const g = this.db.prepare("INSERT INTO users (name, role, invited_by, created_at) VALUES (?, 'guest', ?, ?)").run(name, r.id, now);
      const guestId = Number(g.lastInsertRowid);
      const keys: KeyInfo[] = [];
      for (const p of plan) {
        const doorName = this.doorRow(p.doorId).name;
        const k = this.db.prepare('INSERT INTO keys (name, partner_id, guest_of, created_at) VALUES (?, NULL, ?, ?)').run(`Guest ${name} - ${doorName}`, p.assignmentId, now);
        const keyId = Number(k.lastInsertRowid);
        // Settings follow the resident's Key at compile time; the row records membership.
        this.db.prepare('INSERT INTO key_doors (key_id, door_id, doorcodes_enabled, schedule) VALUES (?, ?, 0, NULL)').run(keyId, p.doorId);
        this.db
          .prepare('INSERT INTO assignments (user_id, key_id, may_share, valid_from, valid_until, created_at) VALUES (?, ?, 0, ?, ?, ?)')
          .run(guestId, keyId, validFrom ?? null, validUntil ?? null, now);
        keys.push(this.key(keyId));
      }
      this.touch(plan.map((p) => p.doorId));
      return { guest: this.user(guestId), keys };
    });
  }

  /** Withdraw a guest entirely (the resident or a manager revoking the invitation). */
  revokeGuest(guestId: number): void {
    this.batch(() => {
      const g = this.userRow(guestId);
      if (g.role !== 'guest') throw new AuthorityError('FORBIDDEN_TRANSITION', `user ${g.id} is not a guest`);
      this.touch(this.doorsOfUser(g.id));
      this.db.prepare('DELETE FROM keys WHERE id IN (SELECT key_id FROM assignments WHERE user_id = ?)').run(g.id);
      this.db.prepare('DELETE FROM users WHERE id = ?').run(g.id);
    });
  }
}
