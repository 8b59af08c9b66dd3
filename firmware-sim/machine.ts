// The lock's control state machine: pure transition(state, event) → { state, effects }.
//
// No I/O, no clocks, no crypto: access decisions arrive as events (the runtime computes
// them with access.ts), timers are effects the runtime schedules, and the durable part of
// the state (wrong-code counter, lockout) leaves as a `persist` effect. Written so that a
// C port is a switch over a tagged union.

import type { DecisionReason } from '../protocol';

export const KEYPAD_DIGITS = 7;
export const INTER_DIGIT_TIMEOUT_MS = 5_000;
/** Below this battery level the lock refuses to drive the motor open (keeps energy to stay locked). */
export const LOW_BATTERY_PERCENT = 10;
/** Hysteresis: leave lowBattery only at this level or above. */
export const BATTERY_RECOVERED_PERCENT = 15;
/** Longest keypad lockout: escalation doubles up to this (SPEC.md §9.3). */
export const MAX_LOCKOUT_SECONDS = 86_400;

/**
 * Duration of a lockout entered at escalation level `level` (≥ 1, after the increment):
 * lockoutSeconds × 2^(level−1), at most MAX_LOCKOUT_SECONDS. Timers run on the monotonic
 * scheduler, never on the RTC, so setting or losing the clock neither shortens nor ends one;
 * a reboot serves the current level's full period again.
 */
export function lockoutMs(policy: Pick<LockPolicyView, 'lockoutSeconds'>, level: number): number {
  const doublings = Math.min(Math.max(level, 1) - 1, 32);
  return Math.min(policy.lockoutSeconds * 2 ** doublings, MAX_LOCKOUT_SECONDS) * 1000;
}

export type AccessMethod = 'phone' | 'doorcode' | 'keycard' | 'dailyCode';
export const ACCESS_METHOD_CODES: Record<AccessMethod, number> = { phone: 0, doorcode: 1, keycard: 2, dailyCode: 3 };

export type Mode =
  | { kind: 'booting' }
  | { kind: 'locked' }
  | { kind: 'unlocked' }
  | { kind: 'keypadEntry'; digits: string }
  | { kind: 'keypadLockout'; digits: string }
  | { kind: 'syncSession' }
  | { kind: 'lowBattery' };

export interface MachineState {
  mode: Mode;
  /** Bolt position as last commanded. */
  bolt: 'thrown' | 'retracted';
  /** Keypad attempts not yet proven right (raised before evaluation, see keypadDigit). */
  wrongCount: number;
  /** Escalation level: +1 per lockout, −1 per right keypad code. */
  lockoutLevel: number;
  battery: number;
  sessionOpen: boolean;
}

export interface LockPolicyView {
  wrongCodeLimit: number;
  lockoutSeconds: number;
  relockSeconds: number;
}

export type MachineEvent =
  | { type: 'mounted'; wrongCount: number; lockoutActive: boolean; lockoutLevel: number; battery: number; recoveredFromPowerLoss: boolean }
  | { type: 'keypadDigit'; digit: string }
  | { type: 'keypadTimeout' }
  | { type: 'accessDecided'; method: AccessMethod; reason: DecisionReason; credId?: number }
  | { type: 'relockTimer' }
  | { type: 'lockoutTimer' }
  | { type: 'sessionOpened' }
  | { type: 'sessionClosed' }
  | { type: 'batteryMeasured'; percent: number };

export type TimerName = 'relock' | 'keypad' | 'lockout';

export type Effect =
  | { type: 'persist'; wrongCount: number; lockoutActive: boolean; lockoutLevel: number }
  | { type: 'startTimer'; timer: TimerName; ms: number }
  | { type: 'cancelTimer'; timer: TimerName }
  | { type: 'motor'; action: 'retract' | 'throw' }
  | { type: 'audit'; event: 'access' | 'boot' | 'powerLossRecovered' | 'lockoutStarted' | 'lowBattery' | 'relocked'; credId?: number; reason?: DecisionReason; method?: AccessMethod }
  | { type: 'evaluateCode'; code: string }
  | { type: 'indicate'; signal: 'granted' | 'refused' | 'digit' | 'lockedOut' | 'busy' | 'lowBattery' };

export interface Transition {
  state: MachineState;
  effects: Effect[];
}

export function initialMachineState(): MachineState {
  return { mode: { kind: 'booting' }, bolt: 'thrown', wrongCount: 0, lockoutLevel: 0, battery: 100, sessionOpen: false };
}

/** Where the lock rests when nothing is in progress. */
function restMode(s: MachineState): Mode {
  if (s.battery < LOW_BATTERY_PERCENT) return { kind: 'lowBattery' };
  if (s.sessionOpen) return { kind: 'syncSession' };
  return { kind: 'locked' };
}

/**
 * Access gate consulted by the runtime before it decides: a reason that pre-empts every
 * credential check in this state, or null.
 */
export function accessGate(s: MachineState, method: AccessMethod): DecisionReason | null {
  // Nothing opens before the durable state is mounted (boot is synchronous in the runtime).
  if (s.mode.kind === 'booting') return 'LOCKED_OUT';
  if (s.mode.kind === 'lowBattery') return 'LOW_BATTERY';
  if ((method === 'doorcode' || method === 'dailyCode') && s.mode.kind === 'keypadLockout') return 'LOCKED_OUT';
  return null;
}

export function transition(s: MachineState, e: MachineEvent, policy: LockPolicyView): Transition {
  const fx: Effect[] = [];
  const m = s.mode;
  switch (e.type) {
    case 'mounted': {
      if (m.kind !== 'booting') return ignore(s);
      const base: MachineState = { ...s, wrongCount: e.wrongCount, lockoutLevel: e.lockoutLevel, battery: e.battery, bolt: 'thrown' };
      // Fail secure: whatever the bolt did before the reset, throw it now.
      fx.push({ type: 'motor', action: 'throw' }, { type: 'audit', event: 'boot' });
      if (e.recoveredFromPowerLoss) fx.push({ type: 'audit', event: 'powerLossRecovered' });
      if (e.lockoutActive) {
        // The remaining lockout time is unknowable across a reset: serve the full period.
        fx.push({ type: 'startTimer', timer: 'lockout', ms: lockoutMs(policy, e.lockoutLevel) });
        return { state: { ...base, mode: { kind: 'keypadLockout', digits: '' } }, effects: fx };
      }
      if (e.wrongCount >= policy.wrongCodeLimit) {
        // The limit-th attempt was counted but power failed before its verdict: it stays wrong.
        return enterLockout(base, fx, policy);
      }
      const mode = restMode(base);
      if (mode.kind === 'lowBattery') fx.push({ type: 'audit', event: 'lowBattery' });
      return { state: { ...base, mode }, effects: fx };
    }

    case 'keypadDigit': {
      if (!/^[0-9]$/.test(e.digit)) return ignore(s);
      if (m.kind === 'keypadLockout') {
        // Codes typed during a lockout are collected and refused unchecked (no oracle), so
        // each attempt is still a decision in the audit log.
        const digits = m.digits + e.digit;
        if (digits.length < KEYPAD_DIGITS) return { state: { ...s, mode: { kind: 'keypadLockout', digits } }, effects: [{ type: 'indicate', signal: 'lockedOut' }] };
        return { state: { ...s, mode: { kind: 'keypadLockout', digits } }, effects: [{ type: 'evaluateCode', code: digits }] };
      }
      if (m.kind === 'lowBattery') return { state: s, effects: [{ type: 'indicate', signal: 'lowBattery' }] };
      if (m.kind === 'booting' || m.kind === 'unlocked') return { state: s, effects: [{ type: 'indicate', signal: 'busy' }] };
      const digits = (m.kind === 'keypadEntry' ? m.digits : '') + e.digit;
      if (digits.length > KEYPAD_DIGITS) return ignore(s); // evaluation pending
      if (digits.length === KEYPAD_DIGITS) {
        // The attempt counts as wrong until proven right: the raised count is durable before
        // the code is even looked at, so cutting power after the refusal signal (or at any
        // point of the evaluation) cannot take the attempt back. A right code clears it.
        const wrongCount = s.wrongCount + 1;
        fx.push(
          { type: 'cancelTimer', timer: 'keypad' },
          { type: 'persist', wrongCount, lockoutActive: false, lockoutLevel: s.lockoutLevel },
          { type: 'evaluateCode', code: digits },
        );
        return { state: { ...s, wrongCount, mode: { kind: 'keypadEntry', digits } }, effects: fx };
      } else {
        if (m.kind === 'keypadEntry') fx.push({ type: 'cancelTimer', timer: 'keypad' });
        fx.push({ type: 'indicate', signal: 'digit' }, { type: 'startTimer', timer: 'keypad', ms: INTER_DIGIT_TIMEOUT_MS });
      }
      return { state: { ...s, mode: { kind: 'keypadEntry', digits } }, effects: fx };
    }

    case 'keypadTimeout': {
      if (m.kind !== 'keypadEntry') return ignore(s);
      fx.push({ type: 'audit', event: 'access', reason: 'KEYPAD_TIMEOUT', method: 'doorcode' }, { type: 'indicate', signal: 'refused' });
      return { state: { ...s, mode: restMode(s) }, effects: fx };
    }

    case 'accessDecided': {
      const keypad = e.method === 'doorcode' || e.method === 'dailyCode';
      fx.push({ type: 'audit', event: 'access', reason: e.reason, method: e.method, ...(e.credId !== undefined ? { credId: e.credId } : {}) });
      if (e.reason === 'GRANTED') {
        if (m.kind === 'booting' || m.kind === 'lowBattery' || (keypad && m.kind === 'keypadLockout'))
          throw new Error(`machine: grant in ${m.kind} (runtime must consult accessGate)`);
        let wrongCount = s.wrongCount;
        let lockoutLevel = s.lockoutLevel;
        if (keypad && (wrongCount !== 0 || lockoutLevel !== 0)) {
          // Matter: a valid code resets the wrong-code counter. The escalation only steps
          // down by one: were it to reset, a resident's daily code would hand a guesser a
          // fresh ramp of short lockouts every day.
          wrongCount = 0;
          lockoutLevel = Math.max(0, lockoutLevel - 1);
          fx.push({ type: 'persist', wrongCount, lockoutActive: false, lockoutLevel });
        }
        if (m.kind === 'unlocked') fx.push({ type: 'cancelTimer', timer: 'relock' });
        else fx.push({ type: 'motor', action: 'retract' });
        fx.push({ type: 'startTimer', timer: 'relock', ms: policy.relockSeconds * 1000 }, { type: 'indicate', signal: 'granted' });
        // A phone or card may be used while the keypad is locked out; the lockout stays.
        if (m.kind === 'keypadLockout') return { state: { ...s, bolt: 'retracted', wrongCount, lockoutLevel }, effects: fx };
        return { state: { ...s, mode: { kind: 'unlocked' }, bolt: 'retracted', wrongCount, lockoutLevel }, effects: fx };
      }
      fx.push({ type: 'indicate', signal: 'refused' });
      if (keypad && m.kind === 'keypadEntry') {
        // Any refused keypad code counts toward the limit (a guessing attacker sees no
        // difference). It was already counted, and persisted, when its last digit arrived.
        if (s.wrongCount >= policy.wrongCodeLimit) return enterLockout(s, fx, policy);
        return { state: { ...s, mode: restMode(s) }, effects: fx };
      }
      const mode: Mode = m.kind === 'keypadEntry' ? restMode(s) : m.kind === 'keypadLockout' ? { kind: 'keypadLockout', digits: '' } : m;
      return { state: { ...s, mode }, effects: fx };
    }

    case 'relockTimer': {
      if (s.bolt !== 'retracted') return ignore(s);
      fx.push({ type: 'motor', action: 'throw' }, { type: 'audit', event: 'relocked' });
      const next: MachineState = { ...s, bolt: 'thrown' };
      return { state: { ...next, mode: m.kind === 'unlocked' ? restMode(next) : m }, effects: fx };
    }

    case 'lockoutTimer': {
      if (m.kind !== 'keypadLockout') return ignore(s);
      // The count starts again; the level stays, so the next lockout is twice as long.
      const next: MachineState = { ...s, wrongCount: 0 };
      fx.push({ type: 'persist', wrongCount: 0, lockoutActive: false, lockoutLevel: s.lockoutLevel });
      return { state: { ...next, mode: restMode(next) }, effects: fx };
    }

    case 'sessionOpened': {
      const next = { ...s, sessionOpen: true };
      return { state: { ...next, mode: m.kind === 'locked' ? { kind: 'syncSession' } : m }, effects: fx };
    }

    case 'sessionClosed': {
      const next = { ...s, sessionOpen: false };
      return { state: { ...next, mode: m.kind === 'syncSession' ? restMode(next) : m }, effects: fx };
    }

    case 'batteryMeasured': {
      const percent = Math.max(0, Math.min(100, Math.round(e.percent)));
      const next = { ...s, battery: percent };
      if (percent < LOW_BATTERY_PERCENT && m.kind !== 'lowBattery' && m.kind !== 'booting') {
        fx.push({ type: 'audit', event: 'lowBattery' });
        if (m.kind === 'keypadEntry') fx.push({ type: 'cancelTimer', timer: 'keypad' });
        if (m.kind === 'keypadLockout') return { state: next, effects: fx }; // lockout finishes first
        if (s.bolt === 'retracted') return { state: next, effects: fx }; // relock still runs
        return { state: { ...next, mode: { kind: 'lowBattery' } }, effects: fx };
      }
      if (m.kind === 'lowBattery' && percent >= BATTERY_RECOVERED_PERCENT) {
        const up = { ...next, battery: percent };
        return { state: { ...up, mode: up.sessionOpen ? { kind: 'syncSession' } : { kind: 'locked' } }, effects: fx };
      }
      return { state: next, effects: fx };
    }
  }
}

/** The next, longer lockout: persisted before its timer starts. */
function enterLockout(s: MachineState, fx: Effect[], policy: LockPolicyView): Transition {
  const lockoutLevel = s.lockoutLevel + 1;
  fx.push(
    { type: 'persist', wrongCount: s.wrongCount, lockoutActive: true, lockoutLevel },
    { type: 'audit', event: 'lockoutStarted' },
    { type: 'startTimer', timer: 'lockout', ms: lockoutMs(policy, lockoutLevel) },
  );
  return { state: { ...s, lockoutLevel, mode: { kind: 'keypadLockout', digits: '' } }, effects: fx };
}

function ignore(s: MachineState): Transition {
  return { state: s, effects: [] };
}
