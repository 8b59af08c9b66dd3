// Keypad guessing. The attacker stands at the door with the keypad and a way to cut the
// lock's power (battery pack, fuse). Before the fix, a power cut right after the refusal
// signal lost the wrong-code increment: 30 guesses, no lockout. Now an attempt counts as
// wrong (durably) before it is evaluated, lockouts escalate and survive power cuts and
// clock changes, and a month of guessing buys ~200 attempts against 10^7 codes.

import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_LOCK_POLICY, SeededRandom, dailyCode, localTime } from '../../protocol';
import { NorFlash, PowerCut, type PowerLossMode } from '../../firmware-sim/flash';
import { Lock } from '../../firmware-sim/lock';
import { FakeClock } from '../../firmware-sim/time';
import { TEST_GEOMETRY } from '../../firmware-sim/test-authority';
import { MAX_LOCKOUT_SECONDS, lockoutMs } from '../../firmware-sim/machine';
import { buildWorld, deliver, type AttackWorld } from './harness';

/** Seconds an attacker needs to type one 7-digit code (the 5,760/day assumes 3 s). */
const TYPING_S = 3;
/** Live codes at the defaults: one permanent code + 16 daily + 16 single-use daily slots. */
const LIVE_CODES = 1 + 2 * DEFAULT_LOCK_POLICY.dailyCodeSlots;
const CODE_SPACE = 10 ** 7;
const figures: string[] = [];
afterAll(() => console.log(figures.join('\n')));

const wrongCode = (i: number): string => String(9_000_000 + i).padStart(7, '0');

function bootOn(image: Uint8Array, mode: PowerLossMode, seed: string, clock: FakeClock): { flash: NorFlash; lock: Lock } {
  const flash = new NorFlash(TEST_GEOMETRY, { image, mode, seed });
  const lock = Lock.boot({ flash, clock, timers: clock, random: new SeededRandom(seed), rtc: { continueAtMs: clock.nowMs(), trusted: true } });
  return { flash, lock };
}

describe('keypad: a power cut cannot take an attempt back', () => {
  for (const mode of ['atomic', 'outOfOrder'] as PowerLossMode[]) {
    it(`every flash operation of a wrong attempt and of a right one (${mode})`, () => {
      const w = buildWorld(`keypad-cut-${mode}`);
      w.lock.enterCode(wrongCode(1));
      w.rig.clock.advance(1000);
      const image = w.rig.flash.image();
      const before = w.lock.durable.keypad.wrongCount;
      expect(before).toBe(1);
      const accessRecords = (l: Lock): number => l.storage.auditRecords().filter((x) => x.event === 'access').length;
      const accessBefore = accessRecords(w.lock);
      // Flash operations of the commit that counts the attempt (the attempt's first writes).
      const countOps = (() => {
        const p = bootOn(image, 'atomic', 'probe-count', new FakeClock(w.rig.clock.nowMs()));
        p.flash.resetCounters();
        p.lock.storage.commit({ ...p.lock.durable, keypad: { ...p.lock.durable.keypad, wrongCount: before + 1 } });
        return p.flash.operations;
      })();
      for (const [label, code] of [['wrong', wrongCode(2)], ['right', w.doorcode]] as const) {
        const probe = bootOn(image, 'atomic', 'probe', new FakeClock(w.rig.clock.nowMs()));
        probe.flash.resetCounters();
        expect(probe.lock.enterCode(code)?.reason).toBe(label === 'wrong' ? 'WRONG_CODE' : 'GRANTED');
        const total = probe.flash.operations;
        expect(total).toBeGreaterThan(countOps);
        for (let cut = 0; cut < total; cut++) {
          const clock = new FakeClock(w.rig.clock.nowMs());
          const r = bootOn(image, mode, `${mode}/${label}/${cut}`, clock);
          r.flash.resetCounters();
          r.flash.cutAfter(cut);
          expect(() => r.lock.enterCode(code), `${label} cut ${cut}/${total}`).toThrow(PowerCut);
          const retracted = r.lock.motorLog.some((m) => m.action === 'retract');
          r.flash.powerOn();
          const rebooted = Lock.boot({ flash: r.flash, clock, timers: clock, random: new SeededRandom(cut) });
          const after = rebooted.durable.keypad;
          const where = `${mode} ${label} attempt, cut at op ${cut}/${total} (count commit: ${countOps} ops)`;
          if (cut < countOps) {
            // Cut while counting: the code was never looked at, so no answer can have leaked.
            expect(accessRecords(rebooted), where).toBe(accessBefore);
            expect([before, before + 1], where).toContain(after.wrongCount);
          } else if (label === 'wrong') {
            // Looked up, perhaps answered: the attempt stays counted whatever happens next.
            expect(after.wrongCount, where).toBe(before + 1);
          } else {
            expect([before + 1, 0], where).toContain(after.wrongCount);
          }
          // The bolt moves only once the right code's clearing is durable.
          expect(retracted, where).toBe(false);
        }
        figures.push(`keypad power cuts (${mode}, ${label} attempt): ${total} flash operations, each cut`);
      }
    });
  }

  it('the issue: 30 guesses, power cut after every refusal signal → locked out at the 5th, 5 codes evaluated', () => {
    const w = buildWorld('keypad-30');
    let evaluated = 0;
    for (let i = 0; i < 30; i++) {
      w.rig.clock.advance(TYPING_S * 1000);
      const r = w.lock.enterCode(wrongCode(i));
      if (r?.reason === 'WRONG_CODE') evaluated++;
      else expect(r?.reason).toBe('LOCKED_OUT');
      w.rig.reboot({ powerLoss: true }); // right after the refusal signal
    }
    expect(evaluated).toBe(DEFAULT_LOCK_POLICY.wrongCodeLimit);
    expect(w.lock.machine.mode.kind).toBe('keypadLockout');
    expect(w.lock.durable.keypad).toMatchObject({ lockoutActive: true, lockoutLevel: 1 });
    // and during the lockout even the right code is refused unchecked
    expect(w.lock.enterCode(w.doorcode)?.reason).toBe('LOCKED_OUT');
  });
});

describe('keypad: escalating lockouts survive power cuts and clock changes', () => {
  it('each lockout doubles, the level is on flash, a reboot serves the full period again', () => {
    const w = buildWorld('keypad-escalate');
    const base = DEFAULT_LOCK_POLICY.lockoutSeconds * 1000;
    for (let level = 1; level <= 4; level++) {
      for (let i = 0; i < DEFAULT_LOCK_POLICY.wrongCodeLimit; i++) expect(w.lock.enterCode(wrongCode(level * 10 + i))?.reason).toBe('WRONG_CODE');
      expect(w.lock.durable.keypad).toMatchObject({ lockoutActive: true, lockoutLevel: level });
      const ms = lockoutMs(DEFAULT_LOCK_POLICY, level);
      expect(ms).toBe(base * 2 ** (level - 1));
      w.rig.clock.advance(ms - 1000);
      w.rig.reboot({ powerLoss: true }); // one second before the end: the attacker cuts power
      expect(w.lock.machine.mode.kind).toBe('keypadLockout');
      w.rig.clock.advance(ms - 1);
      expect(w.lock.machine.mode.kind, `level ${level}: full period again after the reboot`).toBe('keypadLockout');
      w.rig.clock.advance(1);
      expect(w.lock.machine.mode.kind).not.toBe('keypadLockout');
    }
    // a right code clears the count and steps the escalation down by one
    expect(w.lock.enterCode(w.doorcode)?.reason).toBe('GRANTED');
    expect(w.lock.durable.keypad).toMatchObject({ wrongCount: 0, lockoutActive: false, lockoutLevel: 3 });
  });

  it('authority-signed time moving the clock (forward or back) neither ends nor shortens a lockout', () => {
    const w = buildWorld('keypad-clock');
    for (let i = 0; i < DEFAULT_LOCK_POLICY.wrongCodeLimit; i++) w.lock.enterCode(wrongCode(i));
    expect(w.lock.machine.mode.kind).toBe('keypadLockout');
    const s = w.lock.openSession();
    w.auth.now += 10 * 86_400; // the courier relays a genuine time far ahead
    expect(deliver(w, w.auth.signedTime(s.nonce), { session: s })).toMatchObject({ kind: 'reply', messages: [{ type: 'timeAck' }] });
    s.close();
    expect(w.lock.machine.mode.kind).toBe('keypadLockout');
    expect(w.lock.enterCode(w.doorcode)?.reason).toBe('LOCKED_OUT');
    w.rig.clock.advance(DEFAULT_LOCK_POLICY.lockoutSeconds * 1000);
    expect(w.lock.machine.mode.kind).not.toBe('keypadLockout');
  });
});

const lockedOut = (w: AttackWorld): boolean => w.lock.machine.mode.kind === 'keypadLockout';

/** Guess as fast as the lock allows for `days`, cutting power after every lockout starts. */
function guessFor(w: AttackWorld, days: number, opts: { residentDaily?: boolean } = {}): { perDay: number[]; total: number; granted: number } {
  const perDay: number[] = [];
  let total = 0;
  let granted = 0;
  let i = 0;
  const start = w.rig.clock.nowMs();
  for (let day = 0; day < days; day++) {
    const end = start + (day + 1) * 86_400_000;
    let today = 0;
    if (opts.residentDaily) {
      // The worst case for escalation: the resident's right code lands the moment a lockout ends.
      while (w.lock.machine.mode.kind === 'keypadLockout') w.rig.clock.advance(1000);
      expect(w.lock.enterCode(w.doorcode)?.reason).toBe('GRANTED');
      w.rig.clock.advance(6_000);
    }
    while (w.rig.clock.nowMs() < end) {
      if (w.lock.machine.mode.kind === 'keypadLockout' || w.lock.machine.mode.kind === 'unlocked') {
        w.rig.clock.advance(Math.min(60_000, end - w.rig.clock.nowMs()));
        continue;
      }
      w.rig.clock.advance(TYPING_S * 1000);
      const r = w.lock.enterCode(wrongCode(i++ % 1_000_000));
      if (r === undefined) continue;
      if (r.reason === 'GRANTED') (granted++, w.rig.clock.advance(6_000));
      else expect(r.reason).toBe('WRONG_CODE');
      today++;
      if (lockedOut(w)) w.rig.reboot({ powerLoss: true });
    }
    perDay.push(today);
    total += today;
  }
  return { perDay, total, granted };
}

const chance = (attempts: number): number => 1 - (1 - LIVE_CODES / CODE_SPACE) ** attempts;
const pct = (p: number): string => `${(p * 100).toPrecision(2)} %`;

describe('keypad: a month of guessing at the defaults', () => {
  it('attacker alone: 55 attempts on day one, 5 a day once lockouts reach 24 h, 200 in 30 days', () => {
    const w = buildWorld('keypad-month');
    const r = guessFor(w, 30);
    expect(r.perDay[0]).toBe(55);
    expect(r.perDay.slice(2).every((n) => n <= 5)).toBe(true);
    expect(r.total).toBe(200);
    expect(w.lock.durable.keypad.lockoutLevel).toBeGreaterThanOrEqual(Math.log2(MAX_LOCKOUT_SECONDS / DEFAULT_LOCK_POLICY.lockoutSeconds));
    expect(chance(r.perDay[0] as number)).toBeLessThan(0.0002);
    expect(chance(r.total)).toBeLessThan(0.001);
    figures.push(
      `keypad guessing at the defaults (limit ${DEFAULT_LOCK_POLICY.wrongCodeLimit}, lockout ${DEFAULT_LOCK_POLICY.lockoutSeconds} s doubling to ${MAX_LOCKOUT_SECONDS} s, ${LIVE_CODES} live codes of 10^7, ${TYPING_S} s per attempt, power cut after every lockout): ` +
        `day 1 ${r.perDay[0]} attempts = ${pct(chance(r.perDay[0] as number))}; steady ${r.perDay[29]}/day = ${pct(chance(r.perDay[29] as number))}/day; 30 days ${r.total} attempts = ${pct(chance(r.total))} (${r.granted} hits)`,
    );
  });

  it("with the resident's right code every day (escalation steps down by one, never resets)", () => {
    const w = buildWorld('keypad-month-resident');
    const r = guessFor(w, 30, { residentDaily: true });
    expect(r.total).toBeLessThanOrEqual(400);
    expect(chance(r.total)).toBeLessThan(0.0015);
    figures.push(`  … with the resident's right code daily: 30 days ${r.total} attempts = ${pct(chance(r.total))}`);
  });

  it('before the fix (for the record): 5 attempts per 75 s = 5,760/day → 1.9 %/day, 43 %/30 days', () => {
    expect(pct(chance(5760))).toBe('1.9 %');
    expect(pct(chance(5760 * 30))).toBe('43 %');
  });

  it('a daily code the attacker happens to hit is honoured (the guessing model can succeed)', () => {
    const w = buildWorld('keypad-hit');
    const today = localTime('Europe/Berlin', w.lock.rtc.nowMs()).date;
    expect(w.lock.enterCode(dailyCode(w.rig.auth.lockSecret, today, 0, 'daily'))?.reason).toBe('GRANTED');
  });
});
