// Compiled tables as a lock sees them: served deltas/snapshots applied with the
// protocol's applyUpdate, key rotation, receipts, audit exports and the manager's view.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AUDIT_GENESIS,
  SeededRandom,
  applyUpdate,
  chainAudit,
  currentDigest,
  decodeMessage,
  encodeAuditRecord,
  encodeMessage,
  fromHex,
  keyPairFromSeed,
  deriveSeed32,
  makeDelta,
  signHead,
  tableDigest,
  toHex,
  verify,
} from '../protocol';
import { Authority } from './authority';
import { AuthorityError } from './errors';
import { SimLock, decodeUpdate, tempProperty, type TempProperty } from './test-support';

let p: TempProperty;
afterEach(() => p.cleanup());

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof AuthorityError) return e.code;
    throw e;
  }
  return 'NO_ERROR';
}

function err(fn: () => unknown): AuthorityError {
  try {
    fn();
  } catch (e) {
    if (e instanceof AuthorityError) return e;
    throw e;
  }
  throw new Error('expected an AuthorityError');
}

describe('served updates, applied by the lock', () => {
  beforeEach(() => {
    p = tempProperty({ historyVersions: 8 });
  });

  it('a seeded random sequence of manager operations: every lock converges to the authority table', () => {
    const a = p.authority;
    const rnd = new SeededRandom('authority-sync-1');
    const doors = [0, 1, 2, 3].map((i) => a.addDoor({ name: `D${i}`, kind: i === 0 ? 'communal' : 'private' }));
    const locks = doors.map((d) => new SimLock(a.provisionLock(d.id)));
    const keys = [a.createKey({ name: 'K0', doors: [{ doorId: doors[0]!.id }, { doorId: doors[1]!.id }] }), a.createKey({ name: 'K1', doors: [{ doorId: doors[2]!.id }] })];
    const { partner } = a.authorizePartner('P');
    a.enrolDeviceWithNewKey({ partnerId: partner.id }, 'x');
    const users: number[] = [];
    for (let step = 0; step < 120; step++) {
      const pick = <T,>(xs: T[]): T => xs[rnd.int(0, xs.length - 1)] as T;
      const choice = rnd.int(0, 9);
      try {
        if (choice === 0 || users.length === 0) {
          const u = a.addUser({ name: `U${step}` });
          users.push(u.id);
          a.enrolDeviceWithNewKey({ userId: u.id }, `s${step}`);
        } else if (choice === 1) a.assignKey(pick(users), pick(keys).id, { mayShare: rnd.next() < 0.5 });
        else if (choice === 2) a.unassignKey(pick(users), pick(keys).id);
        else if (choice === 3) a.setKeyDoor(pick(keys).id, { doorId: pick(doors).id, doorcodesEnabled: rnd.next() < 0.5, schedule: [{ days: rnd.int(1, 127), start: rnd.int(0, 600), end: rnd.int(601, 1440) }] });
        else if (choice === 4) a.inviteGuest(pick(users), { name: `G${step}`, doorIds: [pick(doors).id] });
        else if (choice === 5) a.assignPartnerToDoor(partner.id, pick(doors).id);
        else if (choice === 6) a.unassignPartnerFromDoor(partner.id, pick(doors).id);
        else if (choice === 7) a.addKeycard(pick(users), toHex(rnd.bytes(7)));
        else if (choice === 8) a.removeUser(users.splice(rnd.int(0, users.length - 1), 1)[0] as number);
        else a.removeKeyDoor(pick(keys).id, pick(doors).id);
      } catch (e) {
        if (!(e instanceof AuthorityError)) throw e; // refusals are fine; they change nothing
      }
      // locks sync at different rates (some skip many versions)
      for (const [i, l] of locks.entries()) if (step % (i + 1) === 0) l.sync(a);
    }
    for (const l of locks) {
      l.sync(a);
      expect(toHex(currentDigest(l.state))).toBe(toHex(tableDigest(a.buildTable(l.bundle.lockId))));
      expect(l.version).toBe(a.currentVersion(l.bundle.lockId));
    }
  });

  it('serves a delta from recent versions, a snapshot from old/empty ones, and refuses versions never issued', () => {
    const a = p.authority;
    const d = a.addDoor({ name: 'Lobby', kind: 'communal' });
    const lock = new SimLock(a.provisionLock(d.id));
    const k = a.createKey({ name: 'K', doors: [{ doorId: d.id }] });
    const users = Array.from({ length: 30 }, (_, i) => a.addUser({ name: `U${i}` }));
    a.batch(() => {
      for (const u of users) {
        a.assignKey(u.id, k.id);
        a.enrolDeviceWithNewKey({ userId: u.id }, 'x');
      }
    });
    expect(lock.sync(a).types).toEqual(['snapshot']); // from 0 with 60 new entries: no smaller delta
    const v = lock.version;
    a.unassignKey(users[0]!.id, k.id);
    expect(lock.sync(a).types).toEqual(['delta']);
    // fall behind by more than the history window (8) → snapshot
    const stale = new SimLock(lock.bundle);
    stale.state = lock.state;
    for (let i = 1; i < 12; i++) a.unassignKey(users[i]!.id, k.id);
    expect(stale.version).toBe(v + 1);
    expect(stale.sync(a).types).toEqual(['snapshot']);
    expect(lock.version).toBe(v + 1);
    expect(code(() => a.updatesFor(lock.bundle.lockId, a.currentVersion(lock.bundle.lockId) + 5))).toBe('UNKNOWN_VERSION');
    expect(a.updatesFor(lock.bundle.lockId, a.currentVersion(lock.bundle.lockId)).messages).toEqual([]);
    expect(code(() => a.updatesFor('lk-9999', 0))).toBe('UNKNOWN_LOCK');
  });

  it('serves a snapshot from the stored table encoding: the same bytes with a cold cache, and a stored table that no longer hashes to its digest is INTERNAL, never served', () => {
    const a = p.authority;
    const d = a.addDoor({ name: 'Lobby', kind: 'communal' });
    const bundle = a.provisionLock(d.id);
    const k = a.createKey({ name: 'K', doors: [{ doorId: d.id }] });
    a.batch(() => {
      for (let i = 0; i < 40; i++) {
        const u = a.addUser({ name: `U${i}` });
        a.assignKey(u.id, k.id);
        a.enrolDeviceWithNewKey({ userId: u.id }, 'x');
      }
    });
    const served = a.updateMessagesFor(bundle.lockId, 0).messages[0]!;
    const m = decodeMessage(served);
    if (m.type !== 'snapshot' || m.update.type !== 'snapshot') throw new Error(`expected a snapshot, got ${m.type}`);
    // What encoding the decoded table gives, and what the compiler builds now.
    expect(Buffer.from(encodeMessage(m)).equals(Buffer.from(served))).toBe(true);
    expect(toHex(tableDigest(m.update.table))).toBe(toHex(tableDigest(a.buildTable(bundle.lockId))));
    // A reopened authority (nothing cached) serves the very same bytes.
    const cold = p.reopen();
    expect(Buffer.from(cold.updateMessagesFor(bundle.lockId, 0).messages[0]!).equals(Buffer.from(served))).toBe(true);
    // One bit of the stored table flipped: refused at the authority, not sent to the lock.
    const v = cold.currentVersion(bundle.lockId);
    const row = cold.db.prepare('SELECT table_bytes FROM lock_versions WHERE lock_id = ? AND version = ?').get(bundle.lockId, v) as { table_bytes: Buffer };
    const tampered = Buffer.from(row.table_bytes);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
    cold.db.prepare('UPDATE lock_versions SET table_bytes = ? WHERE lock_id = ? AND version = ?').run(tampered, bundle.lockId, v);
    const e = err(() => cold.updateMessagesFor(bundle.lockId, 0));
    expect(e.code).toBe('INTERNAL');
    expect(e.message).toContain(`stored table of ${bundle.lockId} v${v}`);
  });

  it('a partner-wide removal and a Key deletion travel as single compact ops', () => {
    const a = p.authority;
    const d = a.addDoor({ name: 'Lobby', kind: 'communal' });
    const lock = new SimLock(a.provisionLock(d.id));
    const { partner } = a.authorizePartner('P');
    for (let i = 0; i < 20; i++) a.enrolDeviceWithNewKey({ partnerId: partner.id }, `dev${i}`);
    a.assignPartnerToDoor(partner.id, d.id);
    const k = a.createKey({ name: 'K', doors: [{ doorId: d.id }] });
    for (let i = 0; i < 20; i++) {
      const u = a.addUser({ name: `U${i}` });
      a.assignKey(u.id, k.id);
    }
    const other = a.createKey({ name: 'Staff', doors: [{ doorId: d.id }] });
    a.assignKey(a.addUser({ name: 'Sam', role: 'staff' }).id, other.id);
    lock.sync(a);
    a.unassignPartnerFromDoor(partner.id, d.id);
    const up = decodeUpdate(a.updatesFor(lock.bundle.lockId, lock.version).messages[0]!);
    expect(up.type).toBe('delta');
    if (up.type === 'delta') expect(up.ops).toEqual([{ op: 'removePartner', partnerId: partner.id }]);
    lock.sync(a);
    a.deleteKey(k.id);
    const up2 = decodeUpdate(a.updatesFor(lock.bundle.lockId, lock.version).messages[0]!);
    if (up2.type !== 'delta') throw new Error('expected a delta');
    expect(up2.ops).toEqual([{ op: 'removeKey', keyId: k.id }]);
    lock.sync(a);
    expect([...lock.state.table.entries.values()].map((e) => e.holder)).toEqual(['staff']);
  });
});

describe('signing keys', () => {
  beforeEach(() => {
    p = tempProperty();
  });

  it('root file and key files are 0600; rotation certifies a new key that locks follow, and they then refuse the retired one', async () => {
    const { statSync } = await import('node:fs');
    for (const f of [p.authority.paths.rootKeyPath, p.authority.paths.kekPath]) expect(statSync(f).mode & 0o777).toBe(0o600);
    const a = p.authority;
    const d = a.addDoor({ name: 'Lobby' });
    const lock = new SimLock(a.provisionLock(d.id));
    const u = a.addUser({ name: 'Ann' });
    const k = a.createKey({ name: 'K', doors: [{ doorId: d.id }] });
    a.assignKey(u.id, k.id);
    lock.sync(a);
    expect(lock.state.trust.certFloor).toBe(1);
    // the retired online key, captured before rotation (test-only access)
    const old = (a as unknown as { signingKey(): { secretKey: Uint8Array; publicKey: Uint8Array } }).signingKey();
    const stale = new SimLock(lock.bundle);
    stale.state = lock.state;
    const rot = a.rotateSigningKey();
    expect(rot.serial).toBe(2);
    expect(a.property().signingKey.serial).toBe(2);
    a.enrolDeviceWithNewKey({ userId: u.id }, 'x');
    const served = decodeUpdate(a.updatesFor(lock.bundle.lockId, lock.version).messages[0]!);
    expect(served.certs.map((c) => c.cert.serial)).toEqual([2]);
    lock.sync(a);
    expect(lock.state.trust.certFloor).toBe(2);
    // an update signed by the retired key (valid otherwise) is refused by the lock
    const target = a.buildTable(lock.bundle.lockId);
    const forged = makeDelta({
      base: { version: lock.version, digest: currentDigest(lock.state) },
      ops: [],
      head: signHead({ lockId: lock.bundle.lockId, version: lock.version + 1, digest: tableDigest(target), issuedAt: p.clock.t, keyId: keyPairFromSeed(old.secretKey).keyId }, old.secretKey),
    });
    const r = applyUpdate(lock.state, forged);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.reason).toBe('UNTRUSTED_KEY');
    // a lock that never saw the rotation also follows: versions signed before it are re-signed
    stale.sync(a);
    expect(stale.state.trust.certFloor).toBe(2);
    // rotation needs the root key file
    const { chmodSync } = await import('node:fs');
    chmodSync(p.authority.paths.rootKeyPath, 0o644);
    expect(code(() => a.rotateSigningKey())).toBe('KEY_FILE');
  });

  it('signed time is signed by the online key and bound to the lock nonce', () => {
    const a = p.authority;
    const d = a.addDoor({ name: 'Lobby' });
    const b = a.provisionLock(d.id);
    const nonce = '0f'.repeat(16);
    const m = decodeMessage(fromHex(a.signedTime(b.lockId, nonce)));
    if (m.type !== 'signedTime') throw new Error('expected signedTime');
    expect(m.body).toMatchObject({ lockId: b.lockId, time: p.clock.t });
    expect(toHex(m.body.nonce!)).toBe(nonce);
    const online = (a as unknown as { signingKey(): { publicKey: Uint8Array } }).signingKey().publicKey;
    expect(verify('time', m.bodyBytes, m.signature, online)).toBe(true);
    expect(code(() => a.signedTime(b.lockId, 'abcd'))).toBe('VALIDATION');
  });
});

describe('receipts and the manager view', () => {
  beforeEach(() => {
    p = tempProperty();
  });

  function partnerProperty() {
    const a = p.authority;
    const doors = ['Lobby', 'Garage'].map((n) => a.addDoor({ name: n, kind: 'communal' }));
    const locks = doors.map((d) => new SimLock(a.provisionLock(d.id)));
    for (const l of locks) a.registerLockDevice(l.bundle.lockId, toHex(l.device.publicKey));
    const { partner } = a.authorizePartner('Parcel Co');
    a.enrolDeviceWithNewKey({ partnerId: partner.id }, 'x');
    for (const d of doors) a.assignPartnerToDoor(partner.id, d.id);
    return { a, doors, locks, partner };
  }

  it('a verified receipt moves the version in force; pending revocations and honouring doors follow', () => {
    const { a, doors, locks, partner } = partnerProperty();
    expect(a.doorsHonouringPartner(partner.id)).toEqual([]); // no receipt yet: nothing proven in force
    for (const l of locks) {
      l.sync(a);
      expect(a.acceptReceipt(l.bundle.lockId, l.receipt())).toEqual({ lockId: l.bundle.lockId, version: l.version, inForce: true });
    }
    expect(a.doorsHonouringPartner(partner.id).map((h) => [h.doorName, h.assignedNow])).toEqual([
      ['Lobby', true],
      ['Garage', true],
    ]);
    p.clock.t += 60;
    a.unassignPartnerFromDoor(partner.id, doors[0]!.id);
    const pending = a.pendingRevocations();
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({ doorName: 'Lobby', lockId: locks[0]!.bundle.lockId, partnerId: partner.id, holder: 'partner', since: p.clock.t, versionInForce: locks[0]!.version });
    expect(a.doorsHonouringPartner(partner.id).map((h) => [h.doorName, h.assignedNow])).toEqual([
      ['Lobby', false],
      ['Garage', true],
    ]);
    // the door syncs, but until its receipt arrives the revocation is still pending
    locks[0]!.sync(a);
    expect(a.pendingRevocations()).toHaveLength(1);
    a.acceptReceipt(locks[0]!.bundle.lockId, locks[0]!.receipt());
    expect(a.pendingRevocations()).toEqual([]);
    expect(a.doorsHonouringPartner(partner.id).map((h) => h.doorName)).toEqual(['Garage']);
  });

  it('refuses bad receipts with a named reason and keeps the version in force', () => {
    const { a, locks } = partnerProperty();
    const l = locks[0]!;
    l.sync(a);
    const before = a.listLocks();
    const other = keyPairFromSeed(deriveSeed32('x', 'not-the-lock'));
    const err = (fn: () => unknown): AuthorityError => {
      try {
        fn();
      } catch (e) {
        return e as AuthorityError;
      }
      throw new Error('expected a refusal');
    };
    expect(err(() => a.acceptReceipt(l.bundle.lockId, l.receipt({ signer: other.secretKey }))).details).toEqual({ reason: 'BAD_SIGNATURE' });
    expect(err(() => a.acceptReceipt(locks[1]!.bundle.lockId, l.receipt())).code).toBe('BAD_RECEIPT');
    expect(code(() => a.acceptReceipt(l.bundle.lockId, 'zz'))).toBe('BAD_MESSAGE');
    expect(code(() => a.acceptReceipt(l.bundle.lockId, a.signedTime(l.bundle.lockId)))).toBe('BAD_MESSAGE');
    // a digest the authority never issued for that version
    const forged = new SimLock(l.bundle);
    forged.state = { ...l.state, table: { ...l.state.table, entries: new Map() }, head: { ...l.state.head!, digest: new Uint8Array(32) } };
    expect(err(() => a.acceptReceipt(l.bundle.lockId, forged.receipt())).details).toEqual({ reason: 'DIGEST_MISMATCH' });
    const unregistered = new SimLock(a.provisionLock(a.addDoor({ name: 'New' }).id));
    unregistered.sync(a);
    expect(code(() => a.acceptReceipt(unregistered.bundle.lockId, unregistered.receipt()))).toBe('LOCK_DEVICE_UNKNOWN');
    expect(a.listLocks().filter((x) => x.lockId !== unregistered.bundle.lockId)).toEqual(before);
    // an old receipt never lowers the version in force
    const oldReceipt = l.receipt();
    a.acceptReceipt(l.bundle.lockId, oldReceipt);
    a.unassignPartnerFromDoor(1, 1);
    l.sync(a);
    a.acceptReceipt(l.bundle.lockId, l.receipt());
    a.acceptReceipt(l.bundle.lockId, oldReceipt);
    expect(a.listLocks()[0]!.versionInForce).toBe(l.version);
  });

  it('audit exports must be signed by their lock, chain from what is held, and bring back a signed anchor', () => {
    const { a, locks } = partnerProperty();
    const l = locks[0]!;
    const l2 = locks[1]!;
    l.sync(a);
    l2.sync(a);
    const rec = (seq: number, credId = 5) => encodeAuditRecord({ seq, time: 1_760_000_000 + seq, event: 'access', credId, reason: 0, value: 0 });
    const recs = [1, 2, 3, 4, 5].map((s) => rec(s));
    const heads: Uint8Array[] = [];
    let h = AUDIT_GENESIS;
    for (const r of recs) heads.push((h = chainAudit(h, r)));
    const id = l.bundle.lockId;
    a.acceptReceipt(id, l.receipt({ auditSeq: 2, auditHead: heads[1]! }));
    const first = a.acceptAudit(id, l.auditExport(AUDIT_GENESIS, recs.slice(0, 3)));
    expect(first).toMatchObject({ accepted: 3, anchoredThrough: 3 });
    const anchor = decodeMessage(fromHex(first.anchor!));
    if (anchor.type !== 'auditAnchor') throw new Error('not an anchor');
    expect(anchor.body).toMatchObject({ lockId: id, seq: 3, hash: heads[2] });
    expect(toHex(anchor.body.keyId)).toBe(a.property().signingKey.keyId); // the online key (the lock verifies it: firmware-sim tests)
    // an overlapping continuation is fine
    expect(a.acceptAudit(id, l.auditExport(heads[1]!, recs.slice(2, 4)))).toMatchObject({ accepted: 1, anchoredThrough: 4 });
    const before = a.auditLog(id);
    // unsigned, signed by another lock, naming another lock, broken chain: BAD_AUDIT, nothing stored
    const unsigned = toHex(encodeMessage({ type: 'auditExport', prevHash: heads[3]!, records: [recs[4]!] }));
    expect(err(() => a.acceptAudit(id, unsigned))).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'MALFORMED' } });
    expect(err(() => a.acceptAudit(id, l2.auditExport(heads[3]!, [recs[4]!], { lockId: id })))).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'BAD_SIGNATURE' } });
    expect(err(() => a.acceptAudit(l2.bundle.lockId, l.auditExport(AUDIT_GENESIS, recs.slice(0, 1))))).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'BAD_SIGNATURE' } });
    expect(err(() => a.acceptAudit(id, l.auditExport(heads[3]!, [recs[4]!], { lockId: l2.bundle.lockId })))).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'WRONG_LOCK' } });
    // a signed export that starts after a gap the lock did not declare (it still holds from 1)
    expect(err(() => a.acceptAudit(id, l.auditExport(chainAudit(heads[4]!, rec(6)), [rec(7)])))).toMatchObject({ code: 'AUDIT_CHAIN_GAP' });
    // contradicting an anchored record or a receipt-signed head: refused whole
    expect(err(() => a.acceptAudit(id, l.auditExport(heads[0]!, [rec(2, 9)]))).code).toBe('AUDIT_CHAIN_MISMATCH');
    expect(a.auditLog(id)).toEqual(before);
    // the lock declares it holds nothing older (its ring recycled): a gap it signed is accepted
    expect(a.acceptAudit(id, l.auditExport(chainAudit(heads[4]!, rec(6)), [rec(7)], { oldestSeq: 7 }))).toMatchObject({ accepted: 1, anchoredThrough: 7 });
    expect(a.auditLog(id).map((r) => [r.seq, r.anchored])).toEqual([
      [1, true],
      [2, true],
      [3, true],
      [4, true],
      [7, true],
    ]);
  });

  it('a genuine signed export replaces unauthenticated records stored before signing existed', () => {
    const { a, locks } = partnerProperty();
    const l = locks[0]!;
    l.sync(a);
    const id = l.bundle.lockId;
    const fake = encodeAuditRecord({ seq: 1, time: 1, event: 'access', credId: 9, reason: 0, value: 0 });
    a.db.prepare('INSERT INTO audit_records (lock_id, seq, record, chain_hash, anchored, received_at) VALUES (?, 1, ?, ?, 0, 0)').run(id, Buffer.from(fake), Buffer.from(chainAudit(AUDIT_GENESIS, fake)));
    const real = encodeAuditRecord({ seq: 1, time: 1_760_000_001, event: 'boot' });
    expect(a.acceptAudit(id, l.auditExport(AUDIT_GENESIS, [real]))).toMatchObject({ accepted: 1, anchoredThrough: 1 });
    expect(a.auditLog(id)).toEqual([{ seq: 1, time: 1_760_000_001, event: 'boot', anchored: true }]);
  });
});

describe('storage', () => {
  it('survives close and reopen with nothing lost; versions continue from where they were', () => {
    p = tempProperty();
    const a = p.authority;
    const d = a.addDoor({ name: 'Lobby' });
    const lock = new SimLock(a.provisionLock(d.id));
    const k = a.createKey({ name: 'K', doors: [{ doorId: d.id }] });
    const u = a.addUser({ name: 'Ann' });
    a.assignKey(u.id, k.id);
    const dev = a.enrolDeviceWithNewKey({ userId: u.id }, 'x');
    lock.sync(a);
    const before = { doors: a.listDoors(), keys: a.listKeys(), users: a.listUsers(), locks: a.listLocks(), prop: a.property() };
    const b = p.reopen();
    expect({ doors: b.listDoors(), keys: b.listKeys(), users: b.listUsers(), locks: b.listLocks(), prop: b.property() }).toEqual(before);
    expect(b.authenticate(dev.token)).toMatchObject({ kind: 'device', deviceId: dev.deviceId });
    expect(b.authenticate(p.managerToken)).toEqual({ kind: 'manager' });
    const v = b.currentVersion(lock.bundle.lockId);
    b.unassignKey(u.id, k.id);
    expect(b.currentVersion(lock.bundle.lockId)).toBe(v + 1);
    lock.sync(b);
    expect(lock.state.table.entries.size).toBe(0);
    expect(code(() => Authority.init(p.openOptions))).toBe('ALREADY_INITIALIZED');
  });

  it('refuses key files readable by others, and missing databases', async () => {
    p = tempProperty();
    const { chmodSync } = await import('node:fs');
    p.authority.close();
    chmodSync(p.authority.paths.kekPath, 0o644);
    expect(code(() => Authority.open(p.openOptions))).toBe('KEY_FILE');
    chmodSync(p.authority.paths.kekPath, 0o600);
    expect(code(() => Authority.open({ ...p.openOptions, dbPath: p.dbPath.startsWith('postgres') ? p.dbPath.replace(/search_path%3D(\w+)/, 'search_path%3D$1_missing') : `${p.dbPath}.missing` }))).toBe('NOT_INITIALIZED');
    p.authority = Authority.open(p.openOptions);
  });
});
