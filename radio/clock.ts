// The radio's own clock, in microseconds since the radio started. Link-layer timing (anchor
// points, airtime, supervision timeouts) is computed on this clock, never on wall time, so a
// transfer's duration is a property of the model rather than of how busy the machine was.

export interface ClockTimer {
  cancel(): void;
}

export interface RadioClock {
  /** Microseconds of model time since start. */
  nowUs(): number;
  /** Runs fn once the model time reaches timeUs (immediately-ish if already past). */
  at(timeUs: number, fn: () => void): ClockTimer;
}

/**
 * Model time follows wall time multiplied by timeScale (2 = twice as fast as real time).
 * Timers fire on the event loop; a late timer still sees the model time at which it should
 * have fired through the scheduled time it was given.
 */
export class RealtimeClock implements RadioClock {
  private readonly startedAt = performance.now();
  constructor(readonly timeScale = 1) {
    if (!(timeScale > 0)) throw new RangeError('timeScale must be > 0');
  }

  nowUs(): number {
    return (performance.now() - this.startedAt) * 1000 * this.timeScale;
  }

  at(timeUs: number, fn: () => void): ClockTimer {
    const delayMs = Math.max(0, (timeUs - this.nowUs()) / 1000 / this.timeScale);
    const timer = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(timer) };
  }
}

interface ScheduledTask {
  timeUs: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * Discrete-event clock for deterministic tests: time only moves when advanced, and jumps
 * straight to the next scheduled task.
 */
export class ManualClock implements RadioClock {
  private current = 0;
  private seq = 0;
  private tasks: ScheduledTask[] = [];

  nowUs(): number {
    return this.current;
  }

  at(timeUs: number, fn: () => void): ClockTimer {
    const task: ScheduledTask = { timeUs: Math.max(timeUs, this.current), seq: this.seq++, fn, cancelled: false };
    this.tasks.push(task);
    return { cancel: () => { task.cancelled = true; } };
  }

  /** Runs every task due up to and including timeUs, in time order, then sets the time. */
  advanceTo(timeUs: number): void {
    for (;;) {
      this.tasks = this.tasks.filter((t) => !t.cancelled);
      let next: ScheduledTask | undefined;
      for (const task of this.tasks) {
        if (task.timeUs <= timeUs && (!next || task.timeUs < next.timeUs || (task.timeUs === next.timeUs && task.seq < next.seq))) {
          next = task;
        }
      }
      if (!next) break;
      this.tasks.splice(this.tasks.indexOf(next), 1);
      this.current = Math.max(this.current, next.timeUs);
      next.fn();
    }
    this.current = Math.max(this.current, timeUs);
  }

  advanceBy(us: number): void {
    this.advanceTo(this.current + us);
  }

  pendingTasks(): number {
    return this.tasks.filter((t) => !t.cancelled).length;
  }
}
