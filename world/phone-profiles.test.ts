// Phone behaviour profiles and the lock's advertising schedule: the figures the profiles
// carry, the discovery and connect models, and a world whose phones have profiles.

import { describe, expect, it } from 'vitest';
import { AdvertisingSchedule, AdvertisingScheduleError, APPLE_SLOW_INTERVALS_MS } from '../firmware-sim/advertising';
import { SeededRandom } from '../protocol/index';
import { AgentError } from '../mobile-agent/errors';
import { loadScenario } from '../scenario/load';
import { ScenarioError } from '../scenario/validate';
import {
  acceptsPeripheralRequest,
  connectionIntervals,
  connectMissProbability,
  discoveryDelayMs,
  GattError,
  makeProfile,
  OS_BEHAVIOUR,
  ProfiledConnector,
  type ProfileEvent,
} from './phone-profiles';
import { World } from './world';

/** What a battery lock asks for after a sync (ble/peripheral.ts LOCK_IDLE_PARAMETERS). */
const LOCK_IDLE_REQUEST = { minIntervalMs: 105, maxIntervalMs: 120, latency: 4, supervisionTimeoutMs: 6000 };

describe('advertising schedule', () => {
  it('advertises at 20 ms for 30 s after a trigger, then at the chosen Apple interval', () => {
    const s = new AdvertisingSchedule({ slowIntervalMs: 1285 }, 0);
    expect(s.intervalAt(0)).toBe(20);
    expect(s.intervalAt(29_999)).toBe(20);
    expect(s.intervalAt(30_000)).toBe(1285);
    s.trigger(100_000, 'keypad');
    expect(s.intervalAt(100_001)).toBe(20);
    expect(s.intervalAt(130_001)).toBe(1285);
    // 30 s at ~25 ms (20 + mean advDelay 5) then 30 s at ~1290 ms.
    expect(Math.round(s.countEvents(100_000, 160_000))).toBe(1200 + 23);
  });

  it('takes only Apple\'s recommended slower intervals', () => {
    for (const ms of APPLE_SLOW_INTERVALS_MS) expect(new AdvertisingSchedule({ slowIntervalMs: ms }).slowIntervalMs).toBe(ms);
    expect(() => new AdvertisingSchedule({ slowIntervalMs: 1000 })).toThrow(AdvertisingScheduleError);
    expect(() => new AdvertisingSchedule({ slowIntervalMs: 1000 })).toThrow(/not one of Apple's recommended intervals/);
  });
});

describe('connection intervals and parameter requests', () => {
  it('Android: 30 ms at connect, 7.5 ms during discovery, then 45 ms; high priority holds 11.25 ms', () => {
    expect(connectionIntervals(makeProfile('android')).map((p) => [p.phase, p.intervalMs])).toEqual([
      ['connect', 30],
      ['discovery', 7.5],
      ['steady', 45],
    ]);
    expect(connectionIntervals(makeProfile('android', { priority: 'high' })).map((p) => p.intervalMs)).toEqual([11.25, 7.5, 11.25]);
    expect(connectionIntervals(makeProfile('android', { priority: 'lowPower' })).map((p) => p.intervalMs)).toEqual([100, 7.5, 100]);
  });

  it('iOS: every interval a multiple of 15 ms, no discovery switch', () => {
    const phases = connectionIntervals(makeProfile('ios', { priority: 'high' }));
    expect(phases.map((p) => p.phase)).toEqual(['connect', 'steady']);
    for (const p of phases) expect(p.intervalMs % 15).toBe(0);
  });

  it('the lock\'s post-sync request passes both OSes\' rules; requests breaking Apple\'s rules are refused by iOS only', () => {
    expect(acceptsPeripheralRequest('android', LOCK_IDLE_REQUEST)).toEqual({ accepted: true });
    expect(acceptsPeripheralRequest('ios', LOCK_IDLE_REQUEST)).toEqual({ accepted: true });
    const fast = { minIntervalMs: 7.5, maxIntervalMs: 15, latency: 0, supervisionTimeoutMs: 4000 };
    expect(acceptsPeripheralRequest('ios', fast).rule).toMatch(/multiple of 15/);
    expect(acceptsPeripheralRequest('android', fast).rule).toMatch(/11.25/);
    expect(acceptsPeripheralRequest('ios', { ...LOCK_IDLE_REQUEST, maxIntervalMs: 110 }).rule).toMatch(/Min \+ 15 ms/);
    expect(acceptsPeripheralRequest('ios', { ...LOCK_IDLE_REQUEST, supervisionTimeoutMs: 1500 }).rule).toMatch(/connSupervisionTimeout/);
    expect(acceptsPeripheralRequest('ios', { ...LOCK_IDLE_REQUEST, latency: 20 }).rule).toMatch(/≤ 2 s/);
  });
});

describe('discovery and connect models', () => {
  const sample = (slowIntervalMs: number, scan: { windowMs: number; intervalMs: number }, sinceTriggerMs: number, n = 200): number[] => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = new SeededRandom(`discovery:${slowIntervalMs}:${i}`);
      const schedule = new AdvertisingSchedule({ slowIntervalMs }, 0);
      const d = discoveryDelayMs({ schedule, fromMs: sinceTriggerMs, scan, random: () => r.nextUint32() / 2 ** 32, limitMs: 30 * 60_000 });
      out.push(d ?? Infinity);
    }
    return out.sort((a, b) => a - b);
  };
  const median = (xs: number[]): number => xs[Math.floor(xs.length / 2)] as number;

  it('an iOS app in the background hears a lock advertising every 1285 ms after a minute or more (median), a foreground one within a second', () => {
    const background = sample(1285, OS_BEHAVIOUR.ios.scan.background, 300_000);
    expect(median(background)).toBeGreaterThan(60_000);
    expect(background.at(-1)).toBeLessThan(30 * 60_000); // always heard eventually
    const foreground = sample(1285, OS_BEHAVIOUR.ios.scan.foreground, 300_000);
    expect(foreground.at(-1)).toBeLessThan(1400);
    // Within 30 s of a trigger the lock is at 20 ms: even a background scan hears it within a scan interval or so.
    expect(sample(1285, OS_BEHAVIOUR.ios.scan.background, 1_000).at(-1)).toBeLessThan(2 * 1280);
  });

  it('faster slow intervals are heard sooner in the background', () => {
    expect(median(sample(152.5, OS_BEHAVIOUR.ios.scan.background, 300_000))).toBeLessThan(median(sample(1285, OS_BEHAVIOUR.ios.scan.background, 300_000)));
  });

  it('a connect is never missed well inside the range and almost always at its edge', () => {
    expect(connectMissProbability(1, 3)).toBe(0);
    expect(connectMissProbability(2.05, 3)).toBe(0);
    expect(connectMissProbability(2.55, 3)).toBeGreaterThan(0.4);
    expect(connectMissProbability(2.55, 3)).toBeLessThan(0.6);
    expect(connectMissProbability(3, 3)).toBeGreaterThan(0.9);
    let last = 0;
    for (let d = 0; d <= 3; d += 0.05) {
      const p = connectMissProbability(d, 3);
      expect(p).toBeGreaterThanOrEqual(last);
      last = p;
    }
  });
});

describe('phones with profiles in a world', () => {
  async function worldWith(profile: Parameters<typeof makeProfile>, seed: string): Promise<{ world: World; events: ProfileEvent[] }> {
    const events: ProfileEvent[] = [];
    const world = await World.create({
      seed,
      doors: [{ name: 'Unit 4B', advertising: { slowIntervalMs: 1285 } }],
      phones: ['resident'],
      phoneProfiles: { resident: makeProfile(...profile) },
      reachMetres: 3,
      onEvent: (e) => {
        if (e.kind === 'phone') events.push(e.event);
      },
    });
    return { world, events };
  }

  it('Android at the edge of range: every missed connect is a GATT 133 about 4 s later, and the app retries until its retries run out', async () => {
    const { world, events } = await worldWith(['android', { connectRetries: 2, retryDelayMs: 1000 }], 'edge');
    try {
      world.moveTo('resident', 'Unit 4B', 3); // at the edge: a miss is ~95 % likely
      const started = world.clock.nowMs();
      const error = await world.sync('resident', 'Unit 4B', { attempts: 1 }).catch((e: unknown) => e);
      const gattErrors = events.filter((e) => e.kind === 'gattError');
      if (error instanceof GattError) {
        expect(error.status).toBe(133);
        expect(error).toBeInstanceOf(AgentError);
        expect((error as AgentError).reason).toBe('LINK_LOST');
        expect(gattErrors).toHaveLength(3);
        // Three attempts: each 133 is reported 4 s after its connect, with 1 s pauses between.
        expect(world.clock.nowMs() - started).toBeGreaterThanOrEqual(3 * 4000 + 2 * 1000);
      } else {
        expect(error).toMatchObject({ versionAfter: expect.any(Number) });
      }
      expect(events.filter((e) => e.kind === 'retry').length).toBe(Math.min(gattErrors.length, 2));
      const stats = (world.phone('resident').connector as ProfiledConnector).takeStats();
      expect(stats.gattErrors).toBe(gattErrors.length);
      // A step closer the connect always gets through.
      world.moveTo('resident', 'Unit 4B', 1);
      events.length = 0;
      await world.sync('resident', 'Unit 4B', { attempts: 1 });
      expect(events.filter((e) => e.kind === 'gattError')).toHaveLength(0);
      expect(events.filter((e) => e.kind === 'interval').map((e) => (e.kind === 'interval' ? e.intervalMs : 0))).toEqual([30, 7.5, 45]);
    } finally {
      await world.close();
    }
  });

  it('iOS misses a connect silently (no GATT error), and a background scan without a service filter never hears the lock', async () => {
    const { world, events } = await worldWith(['ios', { app: 'background', serviceFilter: false }], 'ios');
    try {
      world.moveTo('resident', 'Unit 4B', 1);
      const error = await world.sync('resident', 'Unit 4B', { attempts: 1 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AgentError);
      expect((error as AgentError).reason).toBe('LOCK_NOT_FOUND');
      expect(events.some((e) => e.kind === 'notDiscovered')).toBe(true);
      world.phone('resident').profile!.serviceFilter = true;
      world.moveTo('resident', 'Unit 4B', 2.9);
      events.length = 0;
      const r = await world.sync('resident', 'Unit 4B', { attempts: 1 });
      expect(r.versionAfter).toBeGreaterThanOrEqual(1);
      expect(events.filter((e) => e.kind === 'gattError')).toHaveLength(0);
      expect(events.some((e) => e.kind === 'discovered')).toBe(true);
    } finally {
      await world.close();
    }
  });
});

describe('scenario format: phone profiles', () => {
  const base = (phone: string, step: string): string => `
name: t
description: d
source: [test]
seed: 1
property:
  timeZone: America/New_York
  start: "2025-03-10T10:00:00"
  doors: [{ id: lk-0001, name: A, kind: private, connected: false }]
  keys: [{ id: k, name: K, doors: [lk-0001] }]
  users: [{ id: u, role: resident, keys: [k], phones: [${phone}] }]
steps:
  - at: "+1s"
${step}
`;
  const issues = (text: string): string[] => {
    try {
      loadScenario(text, 'yaml');
      return [];
    } catch (e) {
      if (e instanceof ScenarioError) return e.issues.map((i) => `${i.path}: ${i.message}`);
      throw e;
    }
  };

  it('reads a profile name or object, with defaults', () => {
    const sc = loadScenario(base('{ id: p, at: lk-0001, profile: { os: ios, app: background } }', '    sync: { phone: p, lock: lk-0001 }\n    expect: { discoverySeconds: ">= 1" }'), 'yaml');
    expect(sc.property.users[0]?.phones[0]?.profile).toEqual({ os: 'ios', app: 'background', priority: 'balanced', serviceFilter: true, connectRetries: 2, retryDelayMs: 1000 });
    expect(sc.steps[0]?.expect?.discoverySeconds).toEqual({ op: '>=', value: 1 });
    expect(loadScenario(base('{ id: p, profile: android }', '    appState: { phone: p, state: background }'), 'yaml').steps[0]?.action).toEqual({ kind: 'appState', phone: 'p', state: 'background' });
  });

  it('names what is wrong', () => {
    expect(issues(base('{ id: p, profile: windows }', '    check: {}'))).toEqual([expect.stringMatching(/profile: "windows" is not a phone profile \(one of android, ios\)/)]);
    expect(issues(base('{ id: p }', '    sync: { phone: p, lock: lk-0001 }\n    expect: { gattErrors: 1 }'))).toEqual([expect.stringMatching(/gattErrors: p has no profile/)]);
    expect(issues(base('{ id: p }', '    appState: { phone: p, state: background }'))).toEqual([expect.stringMatching(/p has no profile/)]);
    expect(issues(base('{ id: p, profile: { os: android, priority: turbo } }', '    check: {}'))).toEqual([expect.stringMatching(/priority: "turbo" is not one of balanced, high, lowPower/)]);
  });
});
