// A coulomb counter for the lock: state of charge drained by what the lock does —
// advertising events, connection time, flash erases and programs, motor runs (unlocks) —
// and reported to the state machine (batteryMeasured), which refuses to open below 10 %
// and sets the advert's low-battery flag.
//
// Charges per operation, at 3 V on an nRF52840 with DC/DC (Nordic nRF52840 Product
// Specification, radio and compounded current tables: TX 0 dBm 6.40 mA, RX 1 Mbps
// 6.26 mA; NVMC: page erase ≤ 85 ms, word write ≤ 41 µs, CPU halted meanwhile):
// - advertising event: three channels, each a 376 µs ADV_IND (31-byte payload at 1M) at
//   6.40 mA and ~200 µs listening for a request at 6.26 mA, plus ~1 ms of CPU and radio
//   ramp-up at ~3 mA — derived, ≈ 14 µC;
// - connection event with nothing to send: an 80 µs empty PDU each way plus ~0.3 ms ramp-up
//   — derived, ≈ 2 µC; at a 30 ms interval that is ≈ 67 µA while connected;
// - flash: 85 ms × ~3 mA (CPU running from flash is halted, clocks on) ≈ 255 µC per 4 KB
//   erase and 41 µs × 3 mA ≈ 0.12 µC per 32-bit word programmed — derived;
// - motor: no public figure for a lock's motor; a modelling choice of 300 mA for 0.4 s per
//   run (a retract or a throw: 120 mC), the same order as small geared DC motors' stall
//   current;
// - sleep (RTC, keypad scan): a modelling choice of 5 µA.
// Capacity: four AA alkaline cells in series-parallel as many battery locks use, modelled as
// 2500 mAh at 3 V (a modelling choice; change it with `capacityMah`).

import type { AdvertisingSchedule } from './advertising';
import type { NorFlash } from './flash';
import type { Lock } from './lock';

export interface BatteryProfile {
  capacityMah: number;
  advertEventUc: number;
  connectionEventUc: number;
  /** Connection interval assumed for connected time (the central decides it; phones use ~30–50 ms). */
  connectionIntervalMs: number;
  flashEraseUc: number;
  flashWordProgramUc: number;
  motorRunUc: number;
  sleepUa: number;
}

export const DEFAULT_BATTERY: Readonly<BatteryProfile> = Object.freeze({
  capacityMah: 2500,
  advertEventUc: 14,
  connectionEventUc: 2,
  connectionIntervalMs: 30,
  flashEraseUc: 255,
  flashWordProgramUc: 0.12,
  motorRunUc: 120_000,
  sleepUa: 5,
});

/** Where the charge went, µC. */
export interface BatteryUse {
  adverts: number;
  connections: number;
  flash: number;
  motor: number;
  sleep: number;
}

export interface BatteryReport {
  /** State of charge, percent (0–100, fractional). */
  percent: number;
  capacityMah: number;
  usedMah: number;
  use: BatteryUse;
}

/** What the meter reads off the lock between samples. */
interface Counters {
  erases: number;
  bytesProgrammed: number;
  motorRuns: number;
}

export class BatteryMeter {
  readonly profile: BatteryProfile;
  private readonly use: BatteryUse;
  private lastMs: number;
  private last: Counters;

  /**
   * `lock` is read at every sample: a host that reboots the lock (a new Lock on the same
   * flash) keeps one meter. Counters that went back (a fresh Lock's motor log, a flash
   * reopened) count from zero again.
   */
  constructor(
    private readonly lockOf: () => Lock,
    private readonly flash: NorFlash,
    private readonly schedule: AdvertisingSchedule,
    opts: { profile?: Partial<BatteryProfile>; used?: Partial<BatteryUse>; nowMs: number },
  ) {
    this.profile = { ...DEFAULT_BATTERY, ...opts.profile };
    this.use = { adverts: 0, connections: 0, flash: 0, motor: 0, sleep: 0, ...opts.used };
    this.lastMs = opts.nowMs;
    this.last = this.counters();
  }

  private counters(): Counters {
    return { erases: this.flash.erases, bytesProgrammed: this.flash.bytesProgrammed, motorRuns: this.lockOf().motorLog.length };
  }

  /** Charge the time and operations since the last sample; tells the lock its new level. */
  sample(nowMs: number): BatteryReport {
    const p = this.profile;
    const dt = Math.max(0, nowMs - this.lastMs);
    const c = this.counters();
    const delta = (now: number, before: number): number => (now >= before ? now - before : now);
    const lock = this.lockOf();
    this.use.adverts += this.schedule.countEvents(this.lastMs, nowMs) * p.advertEventUc;
    if (lock.machine.sessionOpen) this.use.connections += (dt / p.connectionIntervalMs) * p.connectionEventUc;
    // The NVMC writes 32-bit words: charge per word programmed.
    this.use.flash += delta(c.erases, this.last.erases) * p.flashEraseUc + (delta(c.bytesProgrammed, this.last.bytesProgrammed) / 4) * p.flashWordProgramUc;
    this.use.motor += delta(c.motorRuns, this.last.motorRuns) * p.motorRunUc;
    this.use.sleep += (dt / 1000) * p.sleepUa;
    this.lastMs = nowMs;
    this.last = c;
    const report = this.report();
    // As a fuel gauge reads: 100 % until a whole percent is used.
    const whole = Math.ceil(report.percent);
    if (whole !== lock.machine.battery && lock.machine.mode.kind !== 'booting') lock.setBattery(whole);
    return report;
  }

  report(): BatteryReport {
    const usedUc = Object.values(this.use).reduce((a, b) => a + b, 0);
    const capacityUc = this.profile.capacityMah * 3600 * 1000;
    const percent = Math.max(0, 100 * (1 - usedUc / capacityUc));
    return { percent, capacityMah: this.profile.capacityMah, usedMah: usedUc / 3600 / 1000, use: { ...this.use } };
  }

  /**
   * A battery swapped (100) or failing (a low level): the state of charge is set to
   * `percent` and the lock told. What was used so far is forgotten, spread as before.
   */
  setLevel(percent: number, nowMs: number): BatteryReport {
    this.sample(nowMs);
    const capacityUc = this.profile.capacityMah * 3600 * 1000;
    const targetUc = ((100 - percent) / 100) * capacityUc;
    const usedUc = Object.values(this.use).reduce((a, b) => a + b, 0);
    const keys = Object.keys(this.use) as (keyof BatteryUse)[];
    if (usedUc > 0) for (const k of keys) this.use[k] = (this.use[k] / usedUc) * targetUc;
    else this.use.sleep = targetUc;
    const report = this.report();
    this.lockOf().setBattery(Math.ceil(report.percent));
    return report;
  }

  /** What to persist so the next boot goes on from here. */
  snapshot(): BatteryUse {
    return { ...this.use };
  }
}
