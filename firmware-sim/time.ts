// Clocks, timers and the lock's real-time clock.
//
// `Clock` is true time (the simulation's or the host's); `TimerScheduler` runs callbacks
// after durations of true time. The lock never reads either directly for wall-clock
// purposes: it reads its `Rtc`, which drifts by a configurable ppm and is lost on power
// loss — which is exactly how the field gets false "Out of Schedule" refusals until a
// sync brings authority-signed time.

export interface Clock {
  /** Milliseconds, monotonic for the simulation's purposes. */
  nowMs(): number;
}

export type TimerHandle = number;

export interface TimerScheduler {
  setTimer(delayMs: number, fn: () => void): TimerHandle;
  clearTimer(h: TimerHandle): void;
}

/** Host time and timers (CLI). */
export class SystemClock implements Clock, TimerScheduler {
  private readonly timers = new Map<number, ReturnType<typeof setTimeout>>();
  private next = 1;
  nowMs(): number {
    return Date.now();
  }
  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const id = this.next++;
    this.timers.set(
      id,
      setTimeout(() => {
        this.timers.delete(id);
        fn();
      }, delayMs),
    );
    return id;
  }
  clearTimer(h: TimerHandle): void {
    const t = this.timers.get(h);
    if (t !== undefined) clearTimeout(t);
    this.timers.delete(h);
  }
}

/** Deterministic time for tests: nothing happens until advance(). */
export class FakeClock implements Clock, TimerScheduler {
  private timers: { id: number; at: number; fn: () => void }[] = [];
  private next = 1;
  /**
   * Told the new time whenever it moves, before any timer due then fires: a world whose
   * authority serves from its own thread mirrors the clock into shared memory this way.
   */
  onChange: ((nowMs: number) => void) | undefined;
  constructor(private now = 1_760_000_000_000) {}
  nowMs(): number {
    return this.now;
  }
  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const id = this.next++;
    this.timers.push({ id, at: this.now + Math.max(0, delayMs), fn });
    return id;
  }
  clearTimer(h: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== h);
  }
  get pendingTimers(): number {
    return this.timers.length;
  }
  /** Move time forward, firing due timers in deadline order (ties: creation order). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t.id !== due.id);
      this.moveTo(Math.max(this.now, due.at));
      due.fn();
    }
    this.moveTo(end);
  }
  private moveTo(ms: number): void {
    if (ms === this.now) return;
    this.now = ms;
    this.onChange?.(ms);
  }
}

export interface RtcOptions {
  /** Frequency error in parts per million (positive runs fast). */
  driftPpm?: number;
}

/** While a fast clock is brought back, its reading advances at this fraction of true time. */
export const RTC_SLEW_RATE = 0.5;

/**
 * The lock's RTC: drifts against true time; moved only by authority-signed time.
 *
 * Monotonic within a session (SPEC §8.2): advanceTo() only moves the reading forward; a
 * clock found to run ahead of a proven upper bound of true time is brought back by
 * slewTo() — its reading then advances at RTC_SLEW_RATE until the corrected time line
 * overtakes it — and settle(), called when no session is open, ends any slew by stepping
 * down to that line, which is never below true time. reset() steps anywhere and is used
 * only for a root-signed floor reset. Power loss is the other discontinuity: a new Rtc
 * starts at the persisted floor, untrusted.
 */
export class Rtc {
  private baseRtcMs: number;
  private baseTrueMs: number;
  /** Reading held above the time line while a slew is in progress. */
  private slew: { fromRtcMs: number; fromTrueMs: number } | undefined;
  driftPpm: number;
  /** False after power loss until authority-signed time arrives in a session. */
  trusted: boolean;

  constructor(
    private readonly clock: Clock,
    startMs: number,
    opts: RtcOptions & { trusted?: boolean } = {},
  ) {
    this.baseRtcMs = startMs;
    this.baseTrueMs = clock.nowMs();
    this.driftPpm = opts.driftPpm ?? 0;
    this.trusted = opts.trusted ?? false;
  }

  /** The corrected time line (what the clock reads once any slew has finished). */
  private lineMs(): number {
    const elapsed = this.clock.nowMs() - this.baseTrueMs;
    return Math.floor(this.baseRtcMs + elapsed * (1 + this.driftPpm / 1e6));
  }

  nowMs(): number {
    const line = this.lineMs();
    if (this.slew === undefined) return line;
    const held = Math.floor(this.slew.fromRtcMs + (this.clock.nowMs() - this.slew.fromTrueMs) * RTC_SLEW_RATE);
    if (line >= held) {
      this.slew = undefined;
      return line;
    }
    return held;
  }

  nowS(): number {
    return Math.floor(this.nowMs() / 1000);
  }

  /** True while the reading runs slow to let true time catch up. */
  get slewing(): boolean {
    return this.nowMs() !== this.lineMs();
  }

  /** Change the oscillator error from now on (temperature, ageing); time so far is kept. */
  setDrift(ppm: number): void {
    this.baseRtcMs = this.lineMs();
    this.baseTrueMs = this.clock.nowMs();
    this.driftPpm = ppm;
  }

  /** Move forward to `ms` if behind it (never back). `trusted` marks the clock trusted. */
  advanceTo(ms: number, trusted: boolean): void {
    if (this.nowMs() < ms) {
      this.baseRtcMs = ms;
      this.baseTrueMs = this.clock.nowMs();
      this.slew = undefined;
    }
    if (trusted) this.trusted = true;
  }

  /** The clock runs ahead of `ms` (an upper bound of true time): correct the time line to
   *  `ms` and let the reading slew down to it without ever stepping back. */
  slewTo(ms: number): void {
    const reading = this.nowMs();
    if (reading <= ms) return;
    this.baseRtcMs = ms;
    this.baseTrueMs = this.clock.nowMs();
    this.slew = { fromRtcMs: reading, fromTrueMs: this.clock.nowMs() };
  }

  /** Outside sessions: finish a slew at once by stepping down to the corrected line. */
  settle(): void {
    this.slew = undefined;
  }

  /** Step to `ms`, backwards if need be. Only a root-signed floor reset may do this. */
  reset(ms: number, trusted: boolean): void {
    this.baseRtcMs = ms;
    this.baseTrueMs = this.clock.nowMs();
    this.slew = undefined;
    this.trusted = trusted;
  }
}

/** What the RTC reads after power loss when nothing better is known (build time). */
export const BUILD_TIME_S = 1_735_689_600; // 2025-01-01T00:00:00Z
