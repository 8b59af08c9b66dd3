// Phone behaviour profiles: what Android and iOS do around a Door Sync, before a single
// locksync byte moves. Many field failures are the phone's, not the lock's: the app in
// the background hears the lock minutes late; Android misses a connect at the edge of
// range and reports GATT error 133; the connection interval the OS picks sets the pace.
//
// Sources (public):
// - Android connection intervals: AOSP GattService / config.xml constants
//   (CONNECTION_PRIORITY_BALANCED 30–50 ms, HIGH 11.25–15 ms on Android 6+, LOW_POWER
//   100–125 ms with latency 2), android.googlesource.com packages/apps/Bluetooth commit
//   0ec1e3f "GATT: Move connection parameters to config.xml"; the switch to 7.5 ms during
//   service discovery and ~45 ms after it is seen in Android logs (RxAndroidBle PR #551).
// - Android GATT timeouts: AOSP stack/gatt/gatt_int.h GATT_WAIT_FOR_RSP_TIMEOUT_MS (30 s);
//   status 133 is GATT_ERROR (0x85, gatt_api.h); 133 about 30 s after connectGatt is a
//   timed-out attempt, about 4 s after it a connect request the peripheral missed
//   (Nordic maintainer, Android-Scanner-Compat-Library issue #82).
// - Android scan duty cycles: AOSP ScanManager (LOW_LATENCY 100/100 ms, BALANCED 183/730 ms,
//   LOW_POWER 140/1400 ms).
// - iOS: Apple Accessory Design Guidelines (connection interval a multiple of 15 ms, ≥ 15 ms,
//   Min + 15 ms ≤ Max, latency ≤ 30, 2 s ≤ timeout ≤ 6 s, Max × (latency+1) × 3 < timeout);
//   Core Bluetooth background rules (a background scan must name service UUIDs, an
//   unfiltered scan is stopped; CBCentralManagerScanOptionAllowDuplicatesKey is ignored and
//   discoveries are merged; the scan interval grows in the background); Apple DTS, Developer
//   Forums thread 801723 (with the slower advertising intervals background discovery "can
//   take up to several minutes").
//
// What is a modelling choice, not a published figure, says so where it is defined.

import type { AdvertisingSchedule } from '../firmware-sim/advertising';
import type { SeededRandom } from '../protocol/index';
import { AgentError } from '../mobile-agent/errors';
import type { ConnectOptions, DiscoveredLock, LockConnection, LockConnector } from '../mobile-agent/link';

export const PHONE_OSES = ['android', 'ios'] as const;
export type PhoneOs = (typeof PHONE_OSES)[number];
export const APP_STATES = ['foreground', 'background'] as const;
export type AppState = (typeof APP_STATES)[number];
export const CONNECTION_PRIORITIES = ['balanced', 'high', 'lowPower'] as const;
export type ConnectionPriority = (typeof CONNECTION_PRIORITIES)[number];

/** A scanner listens for `windowMs` every `intervalMs` (window = interval: continuously). */
export interface ScanDuty {
  windowMs: number;
  intervalMs: number;
}

/** One phone's profile as a scenario or the world gives it. */
export interface PhoneProfile {
  os: PhoneOs;
  app: AppState;
  /** Android's requestConnectionPriority; iOS has no such call (ignored there). */
  priority: ConnectionPriority;
  /** The app's scan names the locksync service UUID (needed in the iOS background). */
  serviceFilter: boolean;
  /** How many more times the app calls connect after a GATT error (Android apps commonly retry 133). */
  connectRetries: number;
  /** The app's pause before such a retry, ms. */
  retryDelayMs: number;
}

export const DEFAULT_PROFILE: Omit<PhoneProfile, 'os'> = { app: 'foreground', priority: 'balanced', serviceFilter: true, connectRetries: 2, retryDelayMs: 1000 };

export interface IntervalRange {
  minMs: number;
  maxMs: number;
}

/** What each OS does, independent of one app's choices. */
export interface OsBehaviour {
  /** The grid connection intervals fall on (1.25 ms is the Core unit; iOS uses 15 ms multiples). */
  intervalStepMs: number;
  /** Interval range the OS asks for at connect, by priority. */
  connectIntervals: Record<ConnectionPriority, IntervalRange>;
  /** Interval during GATT service discovery, if the OS switches for it. */
  discoveryIntervalMs: number | null;
  /** Interval the link settles at after discovery (balanced priority). */
  afterDiscoveryIntervalMs: number;
  scan: Record<AppState, ScanDuty>;
  /** A background scan without a service-UUID filter is stopped (hears nothing). */
  backgroundNeedsServiceFilter: boolean;
  /** Repeated advertisements of one device reach the app once (background). */
  backgroundMergesDuplicates: boolean;
  /** connectGatt gives up after this long without a connection (GATT error); null = never. */
  connectTimeoutMs: number | null;
  /** A connect request the peripheral missed is reported as a GATT error this long after connect; null = the controller retries silently. */
  missedConnectErrorMs: number | null;
  /** The GATT status a failed connect is reported with. */
  connectErrorStatus: number | null;
  /** An ATT request unanswered this long disconnects the link. */
  attResponseTimeoutMs: number;
}

/** GATT_ERROR (0x85) in AOSP gatt_api.h: Android's generic connect failure. */
export const GATT_ERROR_133 = 133;

export const OS_BEHAVIOUR: Readonly<Record<PhoneOs, Readonly<OsBehaviour>>> = Object.freeze({
  android: Object.freeze({
    intervalStepMs: 1.25,
    connectIntervals: { balanced: { minMs: 30, maxMs: 50 }, high: { minMs: 11.25, maxMs: 15 }, lowPower: { minMs: 100, maxMs: 125 } },
    discoveryIntervalMs: 7.5,
    afterDiscoveryIntervalMs: 45,
    // Foreground: SCAN_MODE_LOW_LATENCY (continuous). Background: the stack's slow scan
    // for background/auto-connect, 30 ms every 1.28 s (AOSP btm_ble_api_types.h).
    scan: { foreground: { windowMs: 100, intervalMs: 100 }, background: { windowMs: 30, intervalMs: 1280 } },
    backgroundNeedsServiceFilter: false,
    backgroundMergesDuplicates: false,
    connectTimeoutMs: 30_000,
    missedConnectErrorMs: 4_000,
    connectErrorStatus: GATT_ERROR_133,
    attResponseTimeoutMs: 30_000,
  }),
  ios: Object.freeze({
    intervalStepMs: 15,
    // Apple documents only the rules a peripheral's request must follow; ~30 ms after
    // connect is what developers commonly report (a modelling choice, not Apple's figure).
    connectIntervals: { balanced: { minMs: 30, maxMs: 30 }, high: { minMs: 30, maxMs: 30 }, lowPower: { minMs: 30, maxMs: 30 } },
    discoveryIntervalMs: null,
    afterDiscoveryIntervalMs: 30,
    // Apple publishes no duty cycle. Foreground: continuous. Background: a modelling
    // choice — the one sourced background duty cycle (30 ms every 1.28 s, Android's slow
    // scan) — which with the slow advertising intervals gives Apple's "up to several minutes".
    scan: { foreground: { windowMs: 100, intervalMs: 100 }, background: { windowMs: 30, intervalMs: 1280 } },
    backgroundNeedsServiceFilter: true,
    backgroundMergesDuplicates: true,
    // A CBCentralManager connect request never times out; the controller keeps initiating.
    connectTimeoutMs: null,
    missedConnectErrorMs: null,
    connectErrorStatus: null,
    attResponseTimeoutMs: 30_000,
  }),
});

export function makeProfile(os: PhoneOs, overrides: Partial<Omit<PhoneProfile, 'os'>> = {}): PhoneProfile {
  return { os, ...DEFAULT_PROFILE, ...overrides };
}

/** A connection interval on the OS's grid (Core unit 1.25 ms; iOS 15 ms multiples), rounded up. */
export function onGrid(os: PhoneOs, ms: number): number {
  const step = OS_BEHAVIOUR[os].intervalStepMs;
  return Math.ceil(ms / step - 1e-9) * step;
}

export interface IntervalPhase {
  phase: 'connect' | 'discovery' | 'steady';
  intervalMs: number;
}

/**
 * The connection intervals a profile's link goes through: at connect (the lower bound of
 * the range the OS asks for — the central's controller may pick any value in it), during
 * service discovery (Android: 7.5 ms) and after it.
 */
export function connectionIntervals(profile: PhoneProfile): IntervalPhase[] {
  const b = OS_BEHAVIOUR[profile.os];
  const atConnect = onGrid(profile.os, b.connectIntervals[profile.priority].minMs);
  const phases: IntervalPhase[] = [{ phase: 'connect', intervalMs: atConnect }];
  if (b.discoveryIntervalMs !== null) phases.push({ phase: 'discovery', intervalMs: b.discoveryIntervalMs });
  // A priority the app asked for holds after discovery; balanced settles at the OS's value.
  const steady = profile.priority === 'balanced' ? b.afterDiscoveryIntervalMs : atConnect;
  phases.push({ phase: 'steady', intervalMs: onGrid(profile.os, steady) });
  return phases;
}

/** Connection parameters a peripheral asks for (L2CAP Connection Parameter Update Request). */
export interface RequestedParameters {
  minIntervalMs: number;
  maxIntervalMs: number;
  latency: number;
  supervisionTimeoutMs: number;
}

/**
 * Whether the OS grants a peripheral's request. Android: interval ≥ 11.25 ms and a
 * supervision timeout ≥ 1 s (AOSP btm_ble_api_types.h minimums). iOS: the Accessory Design
 * Guidelines' rules; a request breaking one is refused.
 */
export function acceptsPeripheralRequest(os: PhoneOs, p: RequestedParameters): { accepted: boolean; rule?: string } {
  const refuse = (rule: string) => ({ accepted: false, rule });
  if (p.minIntervalMs > p.maxIntervalMs) return refuse('Interval Min ≤ Interval Max');
  if (os === 'android') {
    if (p.minIntervalMs < 11.25) return refuse('interval ≥ 11.25 ms');
    if (p.supervisionTimeoutMs < 1000) return refuse('supervision timeout ≥ 1 s');
    return { accepted: true };
  }
  const multipleOf15 = Math.abs(p.minIntervalMs / 15 - Math.round(p.minIntervalMs / 15)) < 1e-9;
  if (p.minIntervalMs < 15 || !multipleOf15) return refuse('Interval Min a multiple of 15 ms and ≥ 15 ms');
  if (!(p.minIntervalMs + 15 <= p.maxIntervalMs || (p.minIntervalMs === 15 && p.maxIntervalMs === 15))) return refuse('Interval Min + 15 ms ≤ Interval Max');
  if (p.latency > 30) return refuse('Slave Latency ≤ 30');
  if (p.supervisionTimeoutMs < 2000 || p.supervisionTimeoutMs > 6000) return refuse('2 s ≤ connSupervisionTimeout ≤ 6 s');
  if (p.maxIntervalMs * (p.latency + 1) > 2000) return refuse('Interval Max × (Slave Latency + 1) ≤ 2 s');
  if (!(p.maxIntervalMs * (p.latency + 1) * 3 < p.supervisionTimeoutMs)) return refuse('Interval Max × (Slave Latency + 1) × 3 < connSupervisionTimeout');
  return { accepted: true };
}

/**
 * Chance that the lock misses a phone's connect request at `distanceM` when phones reach
 * it within `rangeM`. A modelling choice (no public figure): nothing is missed well inside
 * the range; from 70 % of it on the packet error rate rises steeply (as the radio's medium
 * does near its sensitivity), about half at 85 %, 95 % at the edge.
 */
export function connectMissProbability(distanceM: number, rangeM: number): number {
  if (!(rangeM > 0)) return 0;
  const x = distanceM / rangeM;
  if (x <= 0.7) return 0;
  // A logistic curve, shifted so it starts from 0 at 70 % of the range (no jump).
  const logistic = (v: number): number => 1 / (1 + Math.exp(-(v - 0.85) / 0.05));
  return (logistic(x) - logistic(0.7)) / (1 - logistic(0.7));
}

/**
 * When a scanner first hears the lock: the lock's advertising events (its schedule, with
 * advDelay) against the phone's scan windows (random phase), each event heard unless
 * `lost()` says the packet was lost. Model milliseconds after `fromMs`, or null if nothing
 * is heard within `limitMs`.
 */
export function discoveryDelayMs(args: { schedule: AdvertisingSchedule; fromMs: number; scan: ScanDuty; random: () => number; lost?: () => boolean; limitMs: number }): number | null {
  const { schedule, fromMs, scan, random, limitMs } = args;
  const scanPhase = random() * scan.intervalMs;
  const continuous = scan.windowMs >= scan.intervalMs;
  for (const t of schedule.events(fromMs, fromMs + limitMs, random)) {
    const intoWindow = (((t - fromMs - scanPhase) % scan.intervalMs) + scan.intervalMs) % scan.intervalMs;
    if (!continuous && intoWindow >= scan.windowMs) continue;
    if (args.lost?.()) continue;
    return t - fromMs;
  }
  return null;
}

/** A GATT status the OS reported to the app (Android's 133). */
export class GattError extends AgentError {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super('LINK_LOST', `GATT error ${status}${status === GATT_ERROR_133 ? ' (GATT_ERROR)' : ''}: ${detail}`);
  }
}

export type ProfileEvent =
  | { kind: 'discovered'; afterMs: number; scan: ScanDuty; advertisingIntervalMs: number }
  | { kind: 'notDiscovered'; why: string; afterMs: number }
  | { kind: 'connectMissed'; attempt: number; reportedAfterMs: number | null }
  | { kind: 'gattError'; status: number; attempt: number; afterMs: number }
  | { kind: 'retry'; attempt: number; delayMs: number }
  | { kind: 'interval'; phase: IntervalPhase['phase']; intervalMs: number };

/** What one connect through a profile cost, for expectations and traces. */
export interface ProfileStats {
  discoveryMs: number | null;
  gattErrors: number;
  connectAttempts: number;
}

/** What a ProfiledConnector needs from the world. */
export interface ProfileWorld {
  profile(): PhoneProfile;
  /** The lock's advertising schedule, if the lock is known and powered. */
  scheduleOf(lockId: string): AdvertisingSchedule | undefined;
  /** The phone is within reach of the lock. */
  canReach(lockId: string): boolean;
  /** Metres from the phone to the lock and the reach the world applies. */
  distance(lockId: string): { metres: number; rangeM: number };
  nowMs(): number;
  /** Runs the world's clock forward (uplinks and all). */
  advance(ms: number): Promise<void>;
  random: SeededRandom;
  onEvent?: (e: ProfileEvent) => void;
  /** The OS's interval for a phase of the link (called with the connect phase before connecting). */
  onIntervalPhase?: (lockId: string, phase: IntervalPhase) => void;
}

/** The longest a phone looks for a lock before the app gives up (model time). */
export const DISCOVERY_LIMIT_MS = 30 * 60_000;

/**
 * A connector that behaves like the phone's OS around the real connector: it finds the
 * lock when the profile's scanner would (running the world's clock forward), misses
 * connects at the edge of range as the radio does, reports them the way the OS does
 * (Android: GATT error 133 after ~4 s, the app retrying; iOS: silently again), and then
 * hands over to the real link.
 */
export class ProfiledConnector implements LockConnector {
  private stats: ProfileStats = { discoveryMs: null, gattErrors: 0, connectAttempts: 0 };
  /** Locks this phone has reported once (the iOS background merges duplicates). */
  private readonly reported = new Set<string>();

  constructor(
    readonly inner: LockConnector,
    private readonly world: ProfileWorld,
  ) {}

  get transport(): string {
    return this.inner.transport;
  }

  /** Statistics since the last call (one step's worth). */
  takeStats(): ProfileStats {
    const s = this.stats;
    this.stats = { discoveryMs: null, gattErrors: 0, connectAttempts: 0 };
    return s;
  }

  async scan(timeoutMs: number, filterLockId?: string): Promise<DiscoveredLock[]> {
    const profile = this.world.profile();
    const b = OS_BEHAVIOUR[profile.os];
    if (profile.app === 'background' && b.backgroundNeedsServiceFilter && !profile.serviceFilter) return [];
    const found = await this.inner.scan(timeoutMs, filterLockId);
    if (profile.app === 'background' && b.backgroundMergesDuplicates) {
      const fresh = found.filter((l) => !this.reported.has(l.lockId));
      for (const l of found) this.reported.add(l.lockId);
      return fresh;
    }
    return found;
  }

  forget(lockId: string): void {
    this.inner.forget(lockId);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  async connect(lockId: string, opts?: ConnectOptions): Promise<LockConnection> {
    const profile = this.world.profile();
    const b = OS_BEHAVIOUR[profile.os];
    const random = () => this.world.random.nextUint32() / 2 ** 32;
    if (!this.world.canReach(lockId)) return this.inner.connect(lockId, opts); // out of reach: the transport says so
    const schedule = this.world.scheduleOf(lockId);
    if (schedule !== undefined) {
      // 1. The scanner hears the lock (the app connects as soon as it does).
      const scan = b.scan[profile.app];
      if (profile.app === 'background' && b.backgroundNeedsServiceFilter && !profile.serviceFilter) {
        this.world.onEvent?.({ kind: 'notDiscovered', why: 'a background scan without a service-UUID filter is stopped by the OS', afterMs: 0 });
        throw new AgentError('LOCK_NOT_FOUND', `${lockId} is never reported: ${profile.os} stops a background scan that names no service UUID`);
      }
      const delay = discoveryDelayMs({ schedule, fromMs: this.world.nowMs(), scan, random, limitMs: DISCOVERY_LIMIT_MS });
      if (delay === null) {
        this.world.onEvent?.({ kind: 'notDiscovered', why: 'no advertisement fell in a scan window', afterMs: DISCOVERY_LIMIT_MS });
        await this.world.advance(DISCOVERY_LIMIT_MS);
        throw new AgentError('LOCK_NOT_FOUND', `${lockId} was not heard within ${DISCOVERY_LIMIT_MS / 60_000} min of scanning`);
      }
      this.stats.discoveryMs = (this.stats.discoveryMs ?? 0) + delay;
      await this.world.advance(delay);
      this.world.onEvent?.({ kind: 'discovered', afterMs: delay, scan, advertisingIntervalMs: schedule.intervalAt(this.world.nowMs()) });
    }
    // 2. The connect request, which the lock may miss at the edge of range.
    for (let attempt = 1; ; attempt++) {
      this.stats.connectAttempts++;
      const { metres, rangeM } = this.world.distance(lockId);
      const missed = random() < connectMissProbability(metres, rangeM);
      if (!missed) break;
      const reportedAfterMs = b.missedConnectErrorMs;
      this.world.onEvent?.({ kind: 'connectMissed', attempt, reportedAfterMs });
      if (reportedAfterMs === null || b.connectErrorStatus === null) {
        // iOS: the controller initiates again at the lock's next advertisement; the app sees nothing.
        await this.world.advance(schedule?.intervalAt(this.world.nowMs()) ?? 0);
        if (attempt > 50) throw new AgentError('LINK_LOST', `${lockId}: connect requests kept being missed`);
        continue;
      }
      await this.world.advance(reportedAfterMs);
      this.stats.gattErrors++;
      this.world.onEvent?.({ kind: 'gattError', status: b.connectErrorStatus, attempt, afterMs: reportedAfterMs });
      if (attempt > profile.connectRetries) throw new GattError(b.connectErrorStatus, `the connect request to ${lockId} was missed at ${metres.toFixed(1)} m (edge of range); ${profile.connectRetries} retr${profile.connectRetries === 1 ? 'y' : 'ies'} used`);
      this.world.onEvent?.({ kind: 'retry', attempt: attempt + 1, delayMs: profile.retryDelayMs });
      await this.world.advance(profile.retryDelayMs);
      if (!this.world.canReach(lockId)) return this.inner.connect(lockId, opts);
    }
    const phases = connectionIntervals(profile);
    // The phone's controller connects at the OS's interval for the connect phase.
    this.world.onIntervalPhase?.(lockId, phases[0] as IntervalPhase);
    const conn = await this.inner.connect(lockId, opts);
    for (const phase of phases) this.world.onEvent?.({ kind: 'interval', phase: phase.phase, intervalMs: phase.intervalMs });
    return conn;
  }
}
