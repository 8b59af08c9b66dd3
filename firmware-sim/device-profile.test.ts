// Device profiles (device-profile.ts): each operation is charged the documented time on the
// lock's fake clock; and the audit ring's erase-ahead (storage.ts) takes erases out of the
// unlock path without ever erasing a block holding unanchored records, surviving a power cut.

import { describe, expect, it } from 'vitest';
import { type Message, answerChallenge, decodeMessage, deriveSeed32, encodeMessage, keyPairFromSeed, makeAuditAnchor, verifyAuditExport } from '../protocol';
import { DEVICE_PROFILES, DeviceCostModel, chargeFor, deviceProfile, zeroWork } from './device-profile';
import { NorFlash, PowerCut } from './flash';
import { ERASE_AHEAD_IDLE_MS, Lock } from './lock';
import type { LockSession } from './session';
import { TestAuthority, createTestRig, type TestRig } from './test-authority';
import type { DeviceProfileName } from './device-profile';

const phone = keyPairFromSeed(deriveSeed32('device-profile', 'phone'));
/** 3 audit blocks of 63 slots: the ring wraps after ~190 records. */
const SMALL_RING = { metaSlotBlocks: 1, tableRegionBlocks: 8, auditBlocks: 3 };

function one(s: LockSession, m: Message | Uint8Array): Message {
  const r = s.handle(m instanceof Uint8Array ? m : encodeMessage(m)).map((b) => decodeMessage(b));
  expect(r.length).toBe(1);
  return r[0] as Message;
}

function rigOn(device: DeviceProfileName, opts: { seed?: string; ring?: boolean; mode?: 'outOfOrder' } = {}): TestRig {
  const rig = createTestRig({ seed: opts.seed ?? `device-${device}`, ...(opts.ring ? { layout: SMALL_RING } : {}), ...(opts.mode ? { mode: opts.mode } : {}) });
  const s = rig.lock.openSession();
  expect(one(s, TestAuthority.message(rig.auth.delta([{ op: 'put', entry: rig.auth.phoneEntry(1, phone.publicKey) }, { op: 'put', entry: rig.auth.keycardEntry(2, new Uint8Array([4, 3, 2, 1])) }]))).type).toBe('receipt');
  s.close();
  rig.lock.shutdown();
  const { clock } = rig;
  rig.lock = Lock.boot({ flash: rig.flash, clock, timers: clock, random: rig.random, rtc: { continueAtMs: clock.nowMs(), trusted: true }, device });
  return rig;
}

/** One phone unlock in its own session; returns the lock's decision message. */
function phoneUnlock(rig: TestRig): Extract<Message, { type: 'decision' }> {
  const s = rig.lock.openSession();
  const c = one(s, { type: 'unlockRequest', credId: 1 });
  if (c.type !== 'challenge') throw new Error(c.type);
  const d = one(s, answerChallenge(c.bodyBytes, phone.secretKey));
  s.close();
  if (d.type !== 'decision') throw new Error(d.type);
  return d;
}

function anchorHead(rig: TestRig): void {
  const head = rig.lock.storage.auditHead();
  const s = rig.lock.openSession();
  const m = makeAuditAnchor({ lockId: rig.lock.lockId, seq: head.seq, hash: head.hash, keyId: rig.auth.signer.keyId }, rig.auth.signer.secretKey);
  expect(one(s, m)).toEqual({ type: 'auditAnchored', anchoredSeq: head.seq });
  s.close();
}

describe('device cost model', () => {
  it.each(Object.values(DEVICE_PROFILES))('$name charges the documented time for each operation', (p) => {
    const one = (k: keyof ReturnType<typeof zeroWork>) => chargeFor(p, { ...zeroWork(), [k]: 1 });
    expect(one('verifies')).toMatchObject({ verifyMs: p.ed25519VerifyMs, totalMs: p.ed25519VerifyMs });
    expect(one('signs')).toMatchObject({ signMs: p.ed25519SignMs, totalMs: p.ed25519SignMs });
    expect(one('sha256Blocks').totalMs).toBeCloseTo(p.sha256BlockUs / 1000, 9);
    expect(one('bytesProgrammed').totalMs).toBeCloseTo(p.flashProgramUsPerByte / 1000, 9);
    expect(one('erases')).toMatchObject({ eraseMs: p.flashEraseBlockMs, totalMs: p.flashEraseBlockMs });
    const mix = chargeFor(p, { verifies: 2, signs: 3, sha256Blocks: 1000, bytesProgrammed: 4096, erases: 1 });
    expect(mix.totalMs).toBeCloseTo(2 * p.ed25519VerifyMs + 3 * p.ed25519SignMs + p.sha256BlockUs + 4.096 * p.flashProgramUsPerByte + p.flashEraseBlockMs, 6);
    for (const src of Object.values(p.sources)) expect(src.length).toBeGreaterThan(10);
  });

  it('host charges nothing', () => {
    expect(deviceProfile('host')).toBeNull();
    expect(chargeFor(null, { verifies: 9, signs: 9, sha256Blocks: 9, bytesProgrammed: 9, erases: 9 }).totalMs).toBe(0);
  });

  it('meters flash work around a call, once for nested calls', () => {
    const flash = new NorFlash({ blockSize: 4096, blockCount: 4, progSize: 16 });
    const m = new DeviceCostModel('esp32-c3', flash);
    const r = m.measure(() => {
      flash.program(0, new Uint8Array(256).fill(1));
      m.measure(() => flash.erase(1));
      return 'done';
    });
    expect(r.result).toBe('done');
    expect(m.last).toMatchObject({ bytesProgrammed: 256, erases: 1, verifies: 0 });
    expect(r.chargedMs).toBeCloseTo(256 * 2.73e-3 + 45, 9);
  });

  it.each(['nrf52840', 'esp32-c3'] as const)('on %s, a phone unlock advances the lock clock by its priced work: one verify, HMAC/SHA blocks, the audit record programmed', (name) => {
    const rig = rigOn(name);
    const p = DEVICE_PROFILES[name];
    const s = rig.lock.openSession();
    const c = one(s, { type: 'unlockRequest', credId: 1 });
    if (c.type !== 'challenge') throw new Error(c.type);
    const t0 = rig.clock.nowMs();
    const d = one(s, answerChallenge(c.bodyBytes, phone.secretKey));
    expect(d).toMatchObject({ type: 'decision', granted: true });
    const w = rig.lock.device.last;
    expect(w.verifies).toBe(1);
    expect(w.bytesProgrammed).toBeGreaterThan(0);
    expect(w.erases).toBe(0);
    const expected = chargeFor(p, w).totalMs;
    expect(expected).toBeGreaterThanOrEqual(p.ed25519VerifyMs);
    expect(rig.lock.lastChargedMs).toBeCloseTo(expected, 9);
    // (the fake clock holds unix ms in a double: ~0.0002 ms resolution)
    expect(rig.clock.nowMs() - t0).toBeCloseTo(expected, 3);
    s.close();
  });

  it('a keycard decision costs no signature work on a profile, only HMAC and the audit program; host advances nothing', () => {
    const rig = rigOn('nrf52840');
    const t0 = rig.clock.nowMs();
    expect(rig.lock.presentCard(new Uint8Array([4, 3, 2, 1])).granted).toBe(true);
    const w = rig.lock.device.last;
    expect(w).toMatchObject({ verifies: 0, signs: 0 });
    expect(w.sha256Blocks).toBeGreaterThan(0);
    expect(rig.clock.nowMs() - t0).toBeCloseTo(chargeFor(DEVICE_PROFILES.nrf52840, w).totalMs, 3);
    const host = rigOn('host');
    const h0 = host.clock.nowMs();
    host.lock.presentCard(new Uint8Array([4, 3, 2, 1]));
    expect(host.clock.nowMs()).toBe(h0);
    expect(host.lock.device.last.sha256Blocks).toBe(w.sha256Blocks);
  });
});

describe('audit ring erase-ahead', () => {
  it('with anchored records, the next block is erased while idle: no unlock pays an erase across three ring wraps', () => {
    const rig = rigOn('nrf52840', { ring: true });
    let idleErases = 0;
    for (let i = 0; i < 600; i++) {
      const d = phoneUnlock(rig);
      expect(d.granted).toBe(true);
      expect(rig.lock.device.last.erases, `unlock ${i}`).toBe(0);
      if (i % 20 === 19) anchorHead(rig);
      const e0 = rig.flash.erases;
      rig.clock.advance(ERASE_AHEAD_IDLE_MS + 100);
      idleErases += rig.flash.erases - e0;
    }
    expect(idleErases).toBeGreaterThanOrEqual(6);
    expect(rig.lock.storage.auditRecords().some((r) => r.event === 'recordsLost')).toBe(false);
  });

  it('never erases a block holding unanchored records: without anchors the unlock path recycles it and records the loss', () => {
    const rig = rigOn('nrf52840', { ring: true });
    let inPathErases = 0;
    for (let i = 0; i < 300; i++) {
      phoneUnlock(rig);
      inPathErases += rig.lock.device.last.erases;
      const e0 = rig.flash.erases;
      rig.clock.advance(ERASE_AHEAD_IDLE_MS + 100);
      expect(rig.flash.erases - e0, `idle after unlock ${i}`).toBe(0);
    }
    expect(inPathErases).toBeGreaterThan(0);
    expect(rig.lock.storage.auditRecords().some((r) => r.event === 'recordsLost')).toBe(true);
  });

  it('waits while a phone session is open (idle means no session)', () => {
    const rig = rigOn('host', { ring: true });
    for (let i = 0; i < 70; i++) phoneUnlock(rig); // block 0 full
    anchorHead(rig);
    for (let i = 0; i < 190; i++) {
      phoneUnlock(rig);
      if (rig.lock.storage.auditEraseAheadDue()) break;
    }
    expect(rig.lock.storage.auditEraseAheadDue()).toBe(true);
    const s = rig.lock.openSession();
    const e0 = rig.flash.erases;
    rig.clock.advance(ERASE_AHEAD_IDLE_MS * 4);
    expect(rig.flash.erases).toBe(e0);
    s.close();
    rig.clock.advance(ERASE_AHEAD_IDLE_MS * 2);
    expect(rig.flash.erases).toBe(e0 + 1);
  });

  it.each([1, 2, 3, 4, 5])('a power cut during the erase-ahead (torn erase, seed %i) mounts with the chain intact and the ring goes on', (seed) => {
    const rig = rigOn('host', { ring: true, mode: 'outOfOrder', seed: `erase-ahead-cut-${seed}` });
    // Fill past one ring wrap with everything anchored, stopping where erase-ahead is due.
    for (let i = 0; i < 400; i++) {
      phoneUnlock(rig);
      if (i % 20 === 19) anchorHead(rig);
      if (i > 200 && rig.lock.storage.auditEraseAheadDue()) break;
      rig.clock.advance(ERASE_AHEAD_IDLE_MS + 100);
    }
    expect(rig.lock.storage.auditEraseAheadDue()).toBe(true);
    const head = rig.lock.storage.auditHead();
    const before = rig.flash.image();
    rig.flash.reseed(seed);
    rig.flash.cutAfter(0);
    expect(() => rig.clock.advance(ERASE_AHEAD_IDLE_MS + 100)).toThrow(PowerCut);
    rig.flash.powerOn();
    // What the cut left: part of one erase (bytes went to 0xFF), never a program.
    const after = rig.flash.image();
    let changed = 0;
    for (let i = 0; i < after.length; i++)
      if (after[i] !== before[i]) {
        changed++;
        expect(after[i]).toBe(0xff);
      }
    expect(changed).toBeLessThanOrEqual(rig.flash.geometry.blockSize);
    const lock = rig.reboot({ powerLoss: false });
    // Nothing of the chain is lost (boot may append its own record after it).
    expect(lock.storage.auditHead().seq).toBeGreaterThanOrEqual(head.seq);
    expect(lock.storage.auditChainHashAt(head.seq)).toEqual(head.hash);
    const s = lock.openSession();
    const ex = one(s, { type: 'auditRequest', fromSeq: 0 });
    if (ex.type !== 'auditExport') throw new Error(ex.type);
    expect(() => verifyAuditExport(ex, lock.lockId, lock.devicePublicKey)).not.toThrow();
    s.close();
    // The ring continues over the torn block (the next block start erases it again).
    for (let i = 0; i < 130; i++) expect(phoneUnlock(rig).granted).toBe(true);
    const again = rig.reboot({ powerLoss: false });
    expect(again.storage.auditHead().seq).toBeGreaterThan(head.seq + 120);
  });
});
