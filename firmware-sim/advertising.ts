// The lock's advertising schedule: fast right after something happened, slow otherwise.
//
// Apple's accessory guidance (Technical Q&A QA1931, "Advertising and connection parameters")
// asks an accessory to advertise at 20 ms for at least 30 s, then at one of a short list
// of slower intervals chosen so iOS still finds it: 152.5, 211.25, 318.75, 417.5, 546.25,
// 760, 852.5, 1022.5 or 1285 ms. A battery lock does the same — each advertising event
// costs a few hundred microseconds of transmitting on three channels — so a phone walking
// up to a lock that has been idle meets the slow interval, while one that connects right
// after a trigger (a keypad touch, a boot, a link that just ended) meets the fast one.
//
// The schedule is model time only (milliseconds of the lock's clock): the world uses it to
// decide when a phone's scanner first hears the lock (world/phone-profiles.ts) and the
// battery model (battery.ts) to count advertising events.

/** Apple's recommended slower advertising intervals, ms (QA1931). */
export const APPLE_SLOW_INTERVALS_MS = [152.5, 211.25, 318.75, 417.5, 546.25, 760, 852.5, 1022.5, 1285] as const;

export const FAST_INTERVAL_MS = 20;
export const FAST_DURATION_MS = 30_000;
/** The Core spec adds 0–10 ms of pseudo-random advDelay to every advertising event (Vol 6 Part B §4.4.2.2.1). */
export const MAX_ADV_DELAY_MS = 10;

export type AdvertisingTrigger = 'boot' | 'disconnect' | 'keypad' | 'card' | 'advert-changed';

export interface AdvertisingScheduleSpec {
  /** Interval during the fast period after a trigger (default 20 ms). */
  fastIntervalMs?: number;
  /** How long the fast period lasts (default 30 s). */
  fastDurationMs?: number;
  /** Interval after the fast period: one of APPLE_SLOW_INTERVALS_MS (default 1022.5 ms). */
  slowIntervalMs?: number;
}

export class AdvertisingScheduleError extends Error {
  override readonly name = 'AdvertisingScheduleError';
  constructor(
    readonly reason: 'SLOW_INTERVAL_NOT_RECOMMENDED' | 'BAD_FAST_PERIOD',
    message: string,
  ) {
    super(message);
  }
}

export const DEFAULT_SLOW_INTERVAL_MS = 1022.5;

export class AdvertisingSchedule {
  readonly fastIntervalMs: number;
  readonly fastDurationMs: number;
  readonly slowIntervalMs: number;
  private lastTriggerMs: number;
  lastTrigger: AdvertisingTrigger;

  constructor(spec: AdvertisingScheduleSpec = {}, startMs = 0) {
    this.fastIntervalMs = spec.fastIntervalMs ?? FAST_INTERVAL_MS;
    this.fastDurationMs = spec.fastDurationMs ?? FAST_DURATION_MS;
    this.slowIntervalMs = spec.slowIntervalMs ?? DEFAULT_SLOW_INTERVAL_MS;
    if (!(APPLE_SLOW_INTERVALS_MS as readonly number[]).includes(this.slowIntervalMs))
      throw new AdvertisingScheduleError('SLOW_INTERVAL_NOT_RECOMMENDED', `slow advertising interval ${this.slowIntervalMs} ms is not one of Apple's recommended intervals (${APPLE_SLOW_INTERVALS_MS.join(', ')} ms)`);
    if (!(this.fastIntervalMs >= 20 && this.fastIntervalMs <= this.slowIntervalMs) || !(this.fastDurationMs >= 0))
      throw new AdvertisingScheduleError('BAD_FAST_PERIOD', `fast advertising needs an interval from 20 ms to the slow interval and a duration ≥ 0 (got ${this.fastIntervalMs} ms for ${this.fastDurationMs} ms)`);
    this.lastTriggerMs = startMs;
    this.lastTrigger = 'boot';
  }

  /** Something a person or the link did: advertise fast again from `atMs`. */
  trigger(atMs: number, cause: AdvertisingTrigger): void {
    this.lastTriggerMs = atMs;
    this.lastTrigger = cause;
  }

  get fastUntilMs(): number {
    return this.lastTriggerMs + this.fastDurationMs;
  }

  /** The interval in force at `atMs`. */
  intervalAt(atMs: number): number {
    return atMs < this.fastUntilMs ? this.fastIntervalMs : this.slowIntervalMs;
  }

  /**
   * Advertising event times in [fromMs, toMs): the interval in force plus advDelay drawn
   * from `random()` (0 ≤ x < 1) each event. The first event is at a random phase of the
   * interval in force at fromMs (the lock was advertising before anyone looked).
   */
  *events(fromMs: number, toMs: number, random: () => number): Generator<number> {
    let t = fromMs + random() * this.intervalAt(fromMs);
    while (t < toMs) {
      yield t;
      t += this.intervalAt(t) + random() * MAX_ADV_DELAY_MS;
    }
  }

  /** Advertising events between two instants (for energy: no randomness, mean advDelay). */
  countEvents(fromMs: number, toMs: number): number {
    if (toMs <= fromMs) return 0;
    const fastEnd = Math.min(toMs, Math.max(fromMs, this.fastUntilMs));
    const fast = Math.max(0, fastEnd - fromMs) / (this.fastIntervalMs + MAX_ADV_DELAY_MS / 2);
    const slow = Math.max(0, toMs - Math.max(fromMs, fastEnd)) / (this.slowIntervalMs + MAX_ADV_DELAY_MS / 2);
    return fast + slow;
  }
}
