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
      this.now = Math.max(this.now, due.at);
      due.fn();
    }
    this.now = end;
  }
}

export interface RtcOptions {
  /** Frequency error in parts per million (positive runs fast). */
  driftPpm?: number;
}

/** The lock's RTC: drifts against true time; set() by authority-signed time. */
export class Rtc {
  private baseRtcMs: number;
  private baseTrueMs: number;
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

  nowMs(): number {
    const elapsed = this.clock.nowMs() - this.baseTrueMs;
    return Math.floor(this.baseRtcMs + elapsed * (1 + this.driftPpm / 1e6));
  }

  nowS(): number {
    return Math.floor(this.nowMs() / 1000);
  }

  /** Change the oscillator error from now on (temperature, ageing); time so far is kept. */
  setDrift(ppm: number): void {
    this.baseRtcMs = this.nowMs();
    this.baseTrueMs = this.clock.nowMs();
    this.driftPpm = ppm;
  }

  set(ms: number, trusted: boolean): void {
    this.baseRtcMs = ms;
    this.baseTrueMs = this.clock.nowMs();
    if (trusted) this.trusted = true;
  }
}

/** What the RTC reads after power loss when nothing better is known (build time). */
export const BUILD_TIME_S = 1_735_689_600; // 2025-01-01T00:00:00Z
