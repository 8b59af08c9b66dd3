import { describe, expect, it } from 'vitest';
import { type MachineState, type Mode, type Effect, initialMachineState, transition, accessGate, lockoutMs, INTER_DIGIT_TIMEOUT_MS, MAX_LOCKOUT_SECONDS } from './machine';

const policy = { wrongCodeLimit: 3, lockoutSeconds: 30, relockSeconds: 5 };
const at = (mode: Mode, extra: Partial<MachineState> = {}): MachineState => ({ ...initialMachineState(), mode, ...extra });
const kinds = (fx: Effect[]) => fx.map((f) => (f.type === 'audit' ? `audit:${f.event}` : f.type === 'motor' ? `motor:${f.action}` : f.type === 'startTimer' || f.type === 'cancelTimer' ? `${f.type}:${f.timer}` : f.type));

describe('state machine: every state and transition', () => {
  it('booting → locked (fail secure: bolt thrown, boot audited)', () => {
    const t = transition(initialMachineState(), { type: 'mounted', wrongCount: 0, lockoutActive: false, lockoutLevel: 0, battery: 80, recoveredFromPowerLoss: true }, policy);
    expect(t.state.mode.kind).toBe('locked');
    expect(kinds(t.effects)).toEqual(['motor:throw', 'audit:boot', 'audit:powerLossRecovered']);
  });
  it('booting → keypadLockout when a lockout was persisted (full period again)', () => {
    const t = transition(initialMachineState(), { type: 'mounted', wrongCount: 3, lockoutActive: true, lockoutLevel: 1, battery: 80, recoveredFromPowerLoss: false }, policy);
    expect(t.state.mode.kind).toBe('keypadLockout');
    expect(t.effects).toContainEqual({ type: 'startTimer', timer: 'lockout', ms: 30_000 });
  });
  it('booting → lowBattery', () => {
    const t = transition(initialMachineState(), { type: 'mounted', wrongCount: 0, lockoutActive: false, lockoutLevel: 0, battery: 5, recoveredFromPowerLoss: false }, policy);
    expect(t.state.mode.kind).toBe('lowBattery');
    expect(kinds(t.effects)).toContain('audit:lowBattery');
  });
  it('booting ignores everything else and gates access', () => {
    const s = initialMachineState();
    expect(transition(s, { type: 'keypadDigit', digit: '1' }, policy).state).toEqual(s);
    expect(accessGate(s, 'phone')).toBe('LOCKED_OUT');
  });
  it('locked → keypadEntry → (7th digit) evaluate; timer restarts on each digit', () => {
    let t = transition(at({ kind: 'locked' }), { type: 'keypadDigit', digit: '1' }, policy);
    expect(t.state.mode).toEqual({ kind: 'keypadEntry', digits: '1' });
    expect(t.effects).toContainEqual({ type: 'startTimer', timer: 'keypad', ms: INTER_DIGIT_TIMEOUT_MS });
    for (const d of '23456') {
      t = transition(t.state, { type: 'keypadDigit', digit: d }, policy);
      expect(kinds(t.effects)).toEqual(['cancelTimer:keypad', 'indicate', 'startTimer:keypad']);
    }
    t = transition(t.state, { type: 'keypadDigit', digit: '7' }, policy);
    // the attempt is counted (and persisted) before the code is evaluated
    expect(t.effects).toEqual([
      { type: 'cancelTimer', timer: 'keypad' },
      { type: 'persist', wrongCount: 1, lockoutActive: false, lockoutLevel: 0 },
      { type: 'evaluateCode', code: '1234567' },
    ]);
    expect(t.state.wrongCount).toBe(1);
    expect(transition(t.state, { type: 'keypadDigit', digit: '8' }, policy).state).toEqual(t.state);
    expect(transition(at({ kind: 'locked' }), { type: 'keypadDigit', digit: 'x' }, policy).effects).toEqual([]);
  });
  it('keypadEntry → locked on inter-digit timeout (KEYPAD_TIMEOUT audited)', () => {
    const t = transition(at({ kind: 'keypadEntry', digits: '12' }), { type: 'keypadTimeout' }, policy);
    expect(t.state.mode.kind).toBe('locked');
    expect(t.effects[0]).toMatchObject({ type: 'audit', event: 'access', reason: 'KEYPAD_TIMEOUT' });
    expect(transition(at({ kind: 'locked' }), { type: 'keypadTimeout' }, policy).effects).toEqual([]);
  });
  it('keypadEntry → unlocked on a granted code; counter resets and is persisted', () => {
    const t = transition(at({ kind: 'keypadEntry', digits: '1234567' }, { wrongCount: 2 }), { type: 'accessDecided', method: 'doorcode', reason: 'GRANTED', credId: 4 }, policy);
    expect(t.state.mode.kind).toBe('unlocked');
    expect(t.state.bolt).toBe('retracted');
    expect(t.state.wrongCount).toBe(0);
    expect(kinds(t.effects)).toEqual(['audit:access', 'persist', 'motor:retract', 'startTimer:relock', 'indicate']);
  });
  it('wrong codes count, and the limit-th starts keypadLockout; lockout timer ends it', () => {
    // wrongCount already includes the attempt being decided (raised at its 7th digit)
    let s = at({ kind: 'keypadEntry', digits: '0000000' }, { wrongCount: 1 });
    let t = transition(s, { type: 'accessDecided', method: 'doorcode', reason: 'WRONG_CODE' }, policy);
    expect(t.state.mode.kind).toBe('locked');
    expect(t.state.wrongCount).toBe(1);
    expect(kinds(t.effects)).toEqual(['audit:access', 'indicate']); // nothing left to persist
    s = { ...t.state, mode: { kind: 'keypadEntry', digits: '0000000' }, wrongCount: 3 };
    t = transition(s, { type: 'accessDecided', method: 'doorcode', reason: 'WRONG_CODE' }, policy);
    expect(t.state.mode.kind).toBe('keypadLockout');
    expect(kinds(t.effects)).toEqual(['audit:access', 'indicate', 'persist', 'audit:lockoutStarted', 'startTimer:lockout']);
    expect(t.effects).toContainEqual({ type: 'persist', wrongCount: 3, lockoutActive: true, lockoutLevel: 1 });
    expect(t.effects).toContainEqual({ type: 'startTimer', timer: 'lockout', ms: 30_000 });
    expect(accessGate(t.state, 'doorcode')).toBe('LOCKED_OUT');
    expect(accessGate(t.state, 'keycard')).toBeNull();
    expect(transition(t.state, { type: 'keypadDigit', digit: '1' }, policy).effects).toEqual([{ type: 'indicate', signal: 'lockedOut' }]);
    // A full code during lockout is evaluated (the runtime's gate refuses it LOCKED_OUT) and not counted.
    const typed = transition({ ...t.state, mode: { kind: 'keypadLockout', digits: '123456' } }, { type: 'keypadDigit', digit: '7' }, policy);
    expect(typed.effects).toEqual([{ type: 'evaluateCode', code: '1234567' }]);
    const refused = transition(typed.state, { type: 'accessDecided', method: 'doorcode', reason: 'LOCKED_OUT' }, policy);
    expect(refused.state.mode).toEqual({ kind: 'keypadLockout', digits: '' });
    expect(refused.state.wrongCount).toBe(3);
    const end = transition(t.state, { type: 'lockoutTimer' }, policy);
    expect(end.state.mode.kind).toBe('locked');
    expect(end.state.wrongCount).toBe(0);
    expect(end.effects).toEqual([{ type: 'persist', wrongCount: 0, lockoutActive: false, lockoutLevel: 1 }]);
    // the next lockout doubles; a right code clears the count and steps the escalation down by one
    const again = transition({ ...end.state, mode: { kind: 'keypadEntry', digits: '0000000' }, wrongCount: 3 }, { type: 'accessDecided', method: 'doorcode', reason: 'WRONG_CODE' }, policy);
    expect(again.effects).toContainEqual({ type: 'startTimer', timer: 'lockout', ms: 60_000 });
    expect(again.state.lockoutLevel).toBe(2);
    const right = transition({ ...end.state, mode: { kind: 'keypadEntry', digits: '5550001' }, wrongCount: 1 }, { type: 'accessDecided', method: 'doorcode', reason: 'GRANTED', credId: 1 }, policy);
    expect(right.effects).toContainEqual({ type: 'persist', wrongCount: 0, lockoutActive: false, lockoutLevel: 0 });
    const stepDown = transition({ ...end.state, lockoutLevel: 4, mode: { kind: 'keypadEntry', digits: '5550001' }, wrongCount: 1 }, { type: 'accessDecided', method: 'doorcode', reason: 'GRANTED', credId: 1 }, policy);
    expect(stepDown.state).toMatchObject({ wrongCount: 0, lockoutLevel: 3 });
  });
  it('escalation: lockoutSeconds × 2^(level−1), capped at MAX_LOCKOUT_SECONDS', () => {
    expect([1, 2, 3, 4, 11].map((l) => lockoutMs({ lockoutSeconds: 60 }, l))).toEqual([60_000, 120_000, 240_000, 480_000, 61_440_000]);
    expect(lockoutMs({ lockoutSeconds: 60 }, 12)).toBe(MAX_LOCKOUT_SECONDS * 1000);
    expect(lockoutMs({ lockoutSeconds: 60 }, 10_000)).toBe(MAX_LOCKOUT_SECONDS * 1000);
  });
  it('booting with the limit reached but no lockout recorded (power cut before the verdict): lockout now', () => {
    const t = transition(initialMachineState(), { type: 'mounted', wrongCount: 3, lockoutActive: false, lockoutLevel: 2, battery: 80, recoveredFromPowerLoss: true }, policy);
    expect(t.state.mode.kind).toBe('keypadLockout');
    expect(t.effects).toContainEqual({ type: 'persist', wrongCount: 3, lockoutActive: true, lockoutLevel: 3 });
    expect(t.effects).toContainEqual({ type: 'startTimer', timer: 'lockout', ms: 120_000 });
  });
  it('keypadLockout: a phone still opens, lockout stays', () => {
    const t = transition(at({ kind: 'keypadLockout', digits: '' }, { wrongCount: 3 }), { type: 'accessDecided', method: 'phone', reason: 'GRANTED', credId: 1 }, policy);
    expect(t.state.mode.kind).toBe('keypadLockout');
    expect(t.state.bolt).toBe('retracted');
    expect(kinds(t.effects)).toContain('motor:retract');
  });
  it('unlocked → locked on relock timer; a second grant restarts the timer', () => {
    const u = at({ kind: 'unlocked' }, { bolt: 'retracted' });
    const again = transition(u, { type: 'accessDecided', method: 'keycard', reason: 'GRANTED', credId: 2 }, policy);
    expect(kinds(again.effects)).toEqual(['audit:access', 'cancelTimer:relock', 'startTimer:relock', 'indicate']);
    const t = transition(u, { type: 'relockTimer' }, policy);
    expect(t.state.mode.kind).toBe('locked');
    expect(t.state.bolt).toBe('thrown');
    expect(kinds(t.effects)).toEqual(['motor:throw', 'audit:relocked']);
    expect(transition(at({ kind: 'locked' }), { type: 'relockTimer' }, policy).effects).toEqual([]);
    expect(transition(u, { type: 'keypadDigit', digit: '1' }, policy).effects).toEqual([{ type: 'indicate', signal: 'busy' }]);
  });
  it('locked ⇄ syncSession; keypad works during a session and returns to it', () => {
    const t = transition(at({ kind: 'locked' }), { type: 'sessionOpened' }, policy);
    expect(t.state.mode.kind).toBe('syncSession');
    const k = transition(t.state, { type: 'keypadDigit', digit: '5' }, policy);
    expect(k.state.mode.kind).toBe('keypadEntry');
    const back = transition(k.state, { type: 'keypadTimeout' }, policy);
    expect(back.state.mode.kind).toBe('syncSession');
    const g = transition(t.state, { type: 'accessDecided', method: 'phone', reason: 'GRANTED', credId: 1 }, policy);
    expect(g.state.mode.kind).toBe('unlocked');
    expect(transition(g.state, { type: 'relockTimer' }, policy).state.mode.kind).toBe('syncSession');
    expect(transition(t.state, { type: 'sessionClosed' }, policy).state.mode.kind).toBe('locked');
    const stillUnlocked = transition(g.state, { type: 'sessionClosed' }, policy);
    expect(stillUnlocked.state.mode.kind).toBe('unlocked');
    expect(stillUnlocked.state.sessionOpen).toBe(false);
  });
  it('a refused phone/card leaves the mode alone and does not count as a wrong code', () => {
    const t = transition(at({ kind: 'syncSession' }, { sessionOpen: true }), { type: 'accessDecided', method: 'phone', reason: 'OUT_OF_SCHEDULE', credId: 1 }, policy);
    expect(t.state.mode.kind).toBe('syncSession');
    expect(t.state.wrongCount).toBe(0);
    expect(kinds(t.effects)).toEqual(['audit:access', 'indicate']);
  });
  it('locked → lowBattery (audited, access gated) → locked with hysteresis', () => {
    const t = transition(at({ kind: 'locked' }), { type: 'batteryMeasured', percent: 8 }, policy);
    expect(t.state.mode.kind).toBe('lowBattery');
    expect(kinds(t.effects)).toEqual(['audit:lowBattery']);
    expect(accessGate(t.state, 'phone')).toBe('LOW_BATTERY');
    expect(transition(t.state, { type: 'keypadDigit', digit: '1' }, policy).effects).toEqual([{ type: 'indicate', signal: 'lowBattery' }]);
    expect(transition(t.state, { type: 'batteryMeasured', percent: 12 }, policy).state.mode.kind).toBe('lowBattery');
    expect(transition(t.state, { type: 'batteryMeasured', percent: 15 }, policy).state.mode.kind).toBe('locked');
    expect(() => transition(t.state, { type: 'accessDecided', method: 'phone', reason: 'GRANTED' }, policy)).toThrow(/accessGate/);
    // Unlocked when the battery drops: relock still runs, then rests in lowBattery.
    const u = transition(at({ kind: 'unlocked' }, { bolt: 'retracted' }), { type: 'batteryMeasured', percent: 5 }, policy);
    expect(u.state.mode.kind).toBe('unlocked');
    expect(transition(u.state, { type: 'relockTimer' }, policy).state.mode.kind).toBe('lowBattery');
    // keypad entry in progress is abandoned
    const k = transition(at({ kind: 'keypadEntry', digits: '12' }), { type: 'batteryMeasured', percent: 5 }, policy);
    expect(k.state.mode.kind).toBe('lowBattery');
    expect(kinds(k.effects)).toContain('cancelTimer:keypad');
  });
  it('mounted is ignored once booted (no double boot)', () => {
    expect(transition(at({ kind: 'locked' }), { type: 'mounted', wrongCount: 0, lockoutActive: false, lockoutLevel: 0, battery: 100, recoveredFromPowerLoss: false }, policy).effects).toEqual([]);
  });
});
