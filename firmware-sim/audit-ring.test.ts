// The audit ring under pressure (SPEC §10.2, FLASH.md §5): records the authority has not
// anchored are recycled only when the ring is full of them (and then a recordsLost record
// says how many went); refusals are coalesced or, near the end of the room, only counted —
// so no flood of refusals pushes out a grant. The authority's signed anchor moves the line.
import { describe, expect, it } from 'vitest';
import {
  type Message,
  answerChallenge,
  auditRecordFromBytes,
  bytesEqual,
  decodeMessage,
  deriveSeed32,
  encodeMessage,
  keyPairFromSeed,
  makeAuditAnchor,
  verify,
  verifyAuditChain,
  verifyAuditExport,
  SeededRandom,
} from '../protocol';
import { PowerCut } from './flash';
import { Lock } from './lock';
import type { LockSession } from './session';
import { NorFlash } from './flash';
import { LockStorage } from './storage';
import { FakeClock } from './time';
import { TEST_GEOMETRY, createTestRig, TestAuthority, type TestRig } from './test-authority';

const phone = keyPairFromSeed(deriveSeed32('audit-ring', 'phone'));

function one(s: LockSession, m: Message | Uint8Array): Message {
  const r = s.handle(m instanceof Uint8Array ? m : encodeMessage(m)).map((b) => decodeMessage(b));
  expect(r.length).toBe(1);
  return r[0] as Message;
}

function rigWithPhone(): { rig: TestRig; s: LockSession } {
  const rig = createTestRig({ seed: 'audit-ring' });
  const s = rig.lock.openSession();
  expect(one(s, TestAuthority.message(rig.auth.delta([{ op: 'put', entry: rig.auth.phoneEntry(1, phone.publicKey) }]))).type).toBe('receipt');
  return { rig, s };
}

function grant(s: LockSession): number {
  const c = one(s, { type: 'unlockRequest', credId: 1 });
  if (c.type !== 'challenge') throw new Error(c.type);
  const d = one(s, answerChallenge(c.bodyBytes, phone.secretKey));
  if (d.type !== 'decision' || !d.granted) throw new Error(JSON.stringify(d));
  return d.auditSeq;
}

function exportAll(rig: TestRig, s: LockSession): Extract<Message, { type: 'auditExport' }> {
  const ex = one(s, { type: 'auditRequest', fromSeq: 0 });
  if (ex.type !== 'auditExport') throw new Error(ex.type);
  verifyAuditExport(ex, rig.lock.lockId, rig.lock.devicePublicKey);
  return ex;
}

function anchorFor(rig: TestRig, seq: number, hash: Uint8Array, lockId = rig.lock.lockId) {
  return makeAuditAnchor({ lockId, seq, hash, keyId: rig.auth.signer.keyId }, rig.auth.signer.secretKey);
}

describe('audit ring', () => {
  it('1,600 garbage unlock responses are one coalesced record and do not evict an unexported grant', () => {
    const { rig, s } = rigWithPhone();
    const grantSeq = grant(s);
    const c = one(s, { type: 'unlockRequest', credId: 1 });
    if (c.type !== 'challenge') throw new Error(c.type);
    const garbage = encodeMessage({ type: 'unlockResponse', challengeBytes: c.bodyBytes, signature: new Uint8Array(64).fill(7) });
    const seqs = new Set<number>();
    for (let i = 0; i < 1600; i++) {
      const d = one(s, garbage);
      if (d.type !== 'decision') throw new Error(d.type);
      expect(d.granted).toBe(false);
      seqs.add(d.auditSeq);
    }
    expect(seqs.size).toBeLessThanOrEqual(2); // the first refusal of each kind, then the run
    const recs = exportAll(rig, s).records.map(auditRecordFromBytes);
    expect(recs.find((r) => r.seq === grantSeq)).toMatchObject({ event: 'access', reason: 0, credId: 1 });
    const refusals = recs.filter((r) => r.event === 'access' && r.reason !== 0);
    expect(refusals.length).toBeLessThanOrEqual(3);
    expect(refusals.reduce((n, r) => n + (r.count ?? 1), 0)).toBe(1600);
  });

  it('2,000 varied refusals stop at the reserve and are counted in one refusalsNotLogged record; the grant survives', () => {
    const { rig, s } = rigWithPhone();
    const grantSeq = grant(s);
    // 2,000 unlock attempts (the ring holds 1,512) for unknown credentials: no two alike
    for (let i = 0; i < 2000; i++) {
      const c = one(s, { type: 'unlockRequest', credId: 1000 + i });
      if (c.type !== 'challenge') throw new Error(c.type);
      expect(one(s, answerChallenge(c.bodyBytes, phone.secretKey))).toMatchObject({ type: 'decision', granted: false, reason: 'UNKNOWN_CREDENTIAL' });
    }
    const next = grant(s);
    const recs = exportAll(rig, s).records.map(auditRecordFromBytes);
    expect(recs[0]?.seq).toBe(1);
    expect(recs.find((r) => r.seq === grantSeq)).toMatchObject({ event: 'access', reason: 0 });
    expect(recs.some((r) => r.event === 'recordsLost')).toBe(false);
    const logged = recs.filter((r) => r.event === 'access' && r.reason === 1).length;
    const notLogged = recs.filter((r) => r.event === 'refusalsNotLogged');
    expect(notLogged).toHaveLength(1);
    expect(logged + (notLogged[0]?.value ?? 0)).toBe(2000);
    expect(recs.at(-1)).toMatchObject({ seq: next, event: 'access', reason: 0 });
  });

  it('once an anchor frees room, the count of refusals not logged is written before the next refusal', () => {
    const flash = new NorFlash(TEST_GEOMETRY);
    LockStorage.format(flash, { lockId: 'lk-0001', lockSecret: new Uint8Array(32), deviceSeed: new Uint8Array(32), timeZone: 'UTC' }, [new Uint8Array(32)], {
      layout: { metaSlotBlocks: 1, tableRegionBlocks: 2, auditBlocks: 3 },
    });
    const st = LockStorage.mount(flash);
    for (let i = 0; i < 400; i++) st.appendAudit({ time: 1000 + i, event: 'access', credId: 5000 + i, reason: 1, value: 0 }, { refusal: true });
    const logged = st.auditHead().seq;
    expect(logged).toBeLessThan(400);
    st.commit({ ...st.state, auditAnchoredSeq: logged });
    st.appendAudit({ time: 2000, event: 'access', credId: 1, reason: 1, value: 0 }, { refusal: true });
    const tail = st.auditRecords().slice(-2);
    expect(tail[0]).toMatchObject({ seq: logged + 1, event: 'refusalsNotLogged', value: 400 - logged });
    expect(tail[1]).toMatchObject({ seq: logged + 2, event: 'access', credId: 1 });
  });

  it('without an anchor a full ring announces what it recycles; with one it recycles silently', () => {
    const geometry = TEST_GEOMETRY;
    const secrets = { lockId: 'lk-0001', lockSecret: new Uint8Array(32), deviceSeed: new Uint8Array(32), timeZone: 'UTC' };
    const run = (anchorEvery: number | null) => {
      const flash = new NorFlash(geometry);
      LockStorage.format(flash, secrets, [new Uint8Array(32)], { layout: { metaSlotBlocks: 1, tableRegionBlocks: 2, auditBlocks: 4 } });
      const st = LockStorage.mount(flash);
      for (let i = 0; i < 2000; i++) {
        st.appendAudit({ time: 1000 + i, event: 'access', credId: 1, reason: 0, value: 0 });
        if (anchorEvery !== null && i % anchorEvery === 0) st.commit({ ...st.state, auditAnchoredSeq: st.auditHead().seq });
      }
      return LockStorage.mount(flash);
    };
    const lossy = run(null);
    const notices = lossy.auditRecords().filter((r) => r.event === 'recordsLost');
    expect(notices.length).toBeGreaterThan(0);
    const L = lossy.layout;
    const perBlock = Math.floor((L.blockSize - L.auditHeaderBytes) / L.auditSlotBytes);
    for (const n of notices) expect(n.value).toBe(perBlock); // one full block of unanchored records each
    const anchored = run(50);
    expect(anchored.auditRecords().filter((r) => r.event === 'recordsLost')).toEqual([]);
    expect(anchored.auditHead().seq).toBe(2000);
    expect(anchored.auditAnchoredSeq).toBeGreaterThan(1900);
  });

  it('accepts the authority anchor bound to its chain, persists it, and refuses forged or foreign ones changing nothing', () => {
    const { rig, s } = rigWithPhone();
    grant(s);
    const ex = exportAll(rig, s);
    const head = ex.head!.body;
    const flashBefore = rig.flash.image();
    const stranger = keyPairFromSeed(deriveSeed32('audit-ring', 'stranger'));
    const forged = makeAuditAnchor({ lockId: rig.lock.lockId, seq: head.seq, hash: head.hash, keyId: rig.auth.signer.keyId }, stranger.secretKey);
    expect(one(s, forged)).toMatchObject({ type: 'error', reason: 'BAD_SIGNATURE' });
    expect(one(s, anchorFor(rig, head.seq, head.hash, 'lk-0002'))).toMatchObject({ type: 'error', reason: 'WRONG_LOCK' });
    expect(one(s, anchorFor(rig, head.seq, new Uint8Array(32)))).toMatchObject({ type: 'error', reason: 'BROKEN_CHAIN' });
    expect(one(s, anchorFor(rig, head.seq + 5, head.hash))).toMatchObject({ type: 'error', reason: 'BROKEN_CHAIN' });
    const untrusted = makeAuditAnchor({ lockId: rig.lock.lockId, seq: head.seq, hash: head.hash, keyId: stranger.keyId }, stranger.secretKey);
    expect(one(s, untrusted)).toMatchObject({ type: 'error', reason: 'UNTRUSTED_KEY' });
    expect(bytesEqual(rig.flash.image(), flashBefore)).toBe(true);
    expect(rig.lock.storage.auditAnchoredSeq).toBe(0);
    expect(one(s, anchorFor(rig, head.seq, head.hash))).toEqual({ type: 'auditAnchored', anchoredSeq: head.seq });
    const after = rig.reboot({ powerLoss: true });
    expect(after.storage.auditAnchoredSeq).toBe(head.seq);
    // an older anchor never lowers it
    const s2 = after.openSession();
    expect(one(s2, anchorFor(rig, 1, after.storage.auditChainHashAt(1)!))).toEqual({ type: 'auditAnchored', anchoredSeq: head.seq });
  });

  it('a power cut at any operation of the anchor commit leaves the old or the new anchor', () => {
    const { rig, s } = rigWithPhone();
    grant(s);
    const head = exportAll(rig, s).head!.body;
    const msg = encodeMessage(anchorFor(rig, head.seq, head.hash));
    const image = rig.flash.image();
    const probe = new NorFlash(TEST_GEOMETRY, { image });
    const clock = new FakeClock(rig.clock.nowMs());
    const boot = (f: NorFlash, seed: number) => Lock.boot({ flash: f, clock, timers: clock, random: new SeededRandom(seed), rtc: { continueAtMs: clock.nowMs(), trusted: true } });
    const p = boot(probe, 0);
    probe.resetCounters();
    expect(decodeMessage(p.openSession().handle(msg)[0]!)).toMatchObject({ type: 'auditAnchored' });
    const total = probe.operations;
    expect(total).toBeGreaterThan(2);
    const seen = new Set<number>();
    for (let cut = 0; cut < total; cut++) {
      const f = new NorFlash(TEST_GEOMETRY, { image, mode: 'outOfOrder', seed: cut });
      const l = boot(f, cut);
      const sess = l.openSession();
      f.resetCounters();
      f.cutAfter(cut);
      expect(() => sess.handle(msg)).toThrow(PowerCut);
      f.powerOn();
      const after = boot(f, cut + 1000);
      seen.add(after.storage.auditAnchoredSeq);
      expect([0, head.seq]).toContain(after.storage.auditAnchoredSeq);
      const ex = after.storage.exportAudit(0, 4096);
      expect(verifyAuditChain(ex.prevHash, ex.records).head).toEqual(after.storage.auditHead().hash);
    }
    expect(seen.has(0)).toBe(true);
  });

  it('signs every export with the device key, over the chain head and the oldest record held', () => {
    const { rig, s } = rigWithPhone();
    grant(s);
    const ex = exportAll(rig, s);
    expect(ex.head?.body).toMatchObject({ lockId: rig.lock.lockId, seq: rig.lock.storage.auditHead().seq, oldestSeq: 1 });
    expect(verify('audit', ex.head!.bodyBytes, ex.head!.signature, rig.lock.devicePublicKey)).toBe(true);
  });
});
