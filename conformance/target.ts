// The lock under test, as the suite reaches it: a phone-side connector (sim, uart:, hci:),
// what the suite knows about the lock (id, device public key) and how lock time passes.
//
// Two ways to get one:
// * simTarget(): the reference lock (firmware-sim) in this process on a fake clock, served
//   through the in-process link (or any LockSessionHost transport), provisioned from the
//   suite's bundle. Mutants (mutants.ts) patch it for the self-test.
// * bleTarget(): a lock somewhere on the air, provisioned beforehand from the suite's
//   bundle (`locksync conformance --provision-bundle FILE`, then `locksync lock provision`,
//   or the firmware's own factory provisioning with the same root key), reached by noble.

import { type LockPolicy, SeededRandom, deriveSeed32, keyPairFromSeed, toHex } from '../protocol';
import type { LockConnector } from '../mobile-agent/link';
import { SimAir } from '../ble/sim';
import type { LockLinkServer, LockLinkServerOptions } from '../ble/lock-server';
import { LINK_IDLE_TIMEOUT_MS, LINK_SESSION_LIMIT_MS } from '../ble/lock-server';
import { CHALLENGE_TTL_MS } from '../firmware-sim/access';
import { DEFAULT_GEOMETRY, NorFlash } from '../firmware-sim/flash';
import { Lock } from '../firmware-sim/lock';
import { FakeClock } from '../firmware-sim/time';
import type { Mutant } from './mutants';

/** The time limits the cases check, in the lock's terms. */
export interface LockTiming {
  /** A session link with no frame from the phone is closed after this (SPEC §13.3: 30 s). */
  idleTimeoutMs: number;
  /** A session may not outlive this (SPEC §13.3, §14.1: 120 s). */
  sessionLifetimeMs: number;
  /** A challenge is refused after this (SPEC §9.2 reference lock: 10 s). */
  challengeTtlMs: number;
}

export const SPEC_TIMING: Readonly<LockTiming> = Object.freeze({
  idleTimeoutMs: LINK_IDLE_TIMEOUT_MS,
  sessionLifetimeMs: LINK_SESSION_LIMIT_MS,
  challengeTtlMs: CHALLENGE_TTL_MS,
});

export interface LockUnderTest {
  /** Transport string as given (sim, uart:PATH, hci:N). */
  readonly transport: string;
  readonly lockId: string;
  /** Verifies receipts and audit exports (SPEC §7, §10.1). */
  readonly devicePublicKey: Uint8Array;
  /** The phone. */
  readonly connector: LockConnector;
  /** A second phone (another peer) for the BUSY case; absent: that case is skipped. */
  readonly second?: LockConnector;
  readonly timing: LockTiming;
  /** True when elapse() is instant (the lock's clock is the suite's); else it sleeps. */
  readonly instantTime: boolean;
  /** Let `ms` of lock time pass (monotonic timer and clock). */
  elapse(ms: number): Promise<void>;
  /** What the report says about the target (e.g. accelerated link timers). */
  readonly notes: string[];
  close(): Promise<void>;
}

/** A provisioning bundle as JSON (firmware-sim/cli.ts parseBundle reads it). */
export interface ProvisionBundleJson {
  lockId: string;
  rootPublicKeys: string[];
  lockSecret: string;
  timeZone: string;
  policy?: LockPolicy;
}

/** The suite's authority keys and the lock's bundle, all derived from the seed. */
export interface SuiteIdentity {
  seed: string;
  lockId: string;
  rootSeed: Uint8Array;
  lockSecret: Uint8Array;
  timeZone: string;
}

export function suiteIdentity(seed: string, lockId: string): SuiteIdentity {
  return { seed, lockId, rootSeed: deriveSeed32(`conformance/${seed}`, 'root'), lockSecret: deriveSeed32(`conformance/${seed}`, 'lock-secret'), timeZone: 'Europe/Berlin' };
}

/**
 * The provisioning bundle of the lock under test, in the JSON shape `locksync lock provision
 * --bundle` reads (the same shape `authority provision-lock` writes): the suite's root key
 * is the lock's only root, so the suite can sign its tables and time.
 */
export function provisioningBundle(id: SuiteIdentity, policy?: LockPolicy): ProvisionBundleJson {
  return {
    lockId: id.lockId,
    rootPublicKeys: [toHex(keyPairFromSeed(id.rootSeed).publicKey)],
    lockSecret: toHex(id.lockSecret),
    timeZone: id.timeZone,
    ...(policy !== undefined ? { policy } : {}),
  };
}

/** The reference lock, provisioned from the suite's bundle, on a fake clock; its link server. */
export interface SimLockParts {
  lock: Lock;
  server: LockLinkServer;
  clock: FakeClock;
  air: SimAir;
}

/**
 * The in-process link's idle timeout. The link timers run on real time (the lock's own
 * clock is fake), so the sim target runs them accelerated; a real lock is held to SPEC §13.3.
 */
export const SIM_IDLE_TIMEOUT_MS = 400;

/**
 * The reference lock (firmware-sim) provisioned from the suite's bundle on in-memory flash
 * with a fake clock, as a lock that was running (RTC kept) whose clock is not yet trusted.
 */
export function referenceLock(id: SuiteIdentity): { lock: Lock; clock: FakeClock; devicePublicKey: Uint8Array } {
  const clock = new FakeClock(1_780_000_000_000);
  const flash = new NorFlash(DEFAULT_GEOMETRY, { seed: `conformance/${id.seed}/flash` });
  const deviceSeed = deriveSeed32(`conformance/${id.seed}`, 'device');
  const { devicePublicKey } = Lock.provision(
    flash,
    { lockId: id.lockId, rootPublicKeys: [keyPairFromSeed(id.rootSeed).publicKey], lockSecret: id.lockSecret, timeZone: id.timeZone },
    deviceSeed,
  );
  const lock = Lock.boot({ flash, clock, timers: clock, random: new SeededRandom(`conformance/${id.seed}/lock`), rtc: { continueAtMs: clock.nowMs(), trusted: false } });
  return { lock, clock, devicePublicKey };
}

/** The reference lock as a target on the `sim` link, optionally broken by a mutant. */
export function simTarget(id: SuiteIdentity, opts: { mutant?: Mutant; mtu?: number } = {}): LockUnderTest & { parts: SimLockParts } {
  const { lock, clock, devicePublicKey } = referenceLock(id);
  const air = new SimAir(opts.mtu ?? 185);
  const link: LockLinkServerOptions = { idleTimeoutMs: SIM_IDLE_TIMEOUT_MS, lingerMs: 300 };
  const server = air.addLock(lock, { link });
  const parts: SimLockParts = { lock, server, clock, air };
  opts.mutant?.apply(parts);
  const connector = air.connector('phone-1');
  const second = air.connector('phone-2');
  return {
    transport: 'sim',
    lockId: id.lockId,
    devicePublicKey,
    connector,
    second,
    timing: { ...SPEC_TIMING, idleTimeoutMs: SIM_IDLE_TIMEOUT_MS },
    instantTime: true,
    elapse: async (ms) => {
      clock.advance(ms);
    },
    notes: [`reference lock (firmware-sim) in-process; link idle timeout accelerated to ${SIM_IDLE_TIMEOUT_MS} ms (SPEC: ${LINK_IDLE_TIMEOUT_MS} ms); lock clock fake (elapse is instant)`],
    parts,
    close: async () => {
      await connector.close();
      await second.close();
      lock.shutdown();
    },
  };
}

/** A lock reached over BLE by noble (`uart:PATH`, `hci:N`); the lock runs elsewhere, in real time. */
export async function bleTarget(args: {
  transport: string;
  secondTransport?: string;
  lockId: string;
  devicePublicKey: Uint8Array;
  timing?: Partial<LockTiming>;
  /** Lets lock time pass another way than sleeping (an in-process lock on a fake clock). */
  elapse?: (ms: number) => Promise<void>;
  notes?: string[];
}): Promise<LockUnderTest> {
  const { openConnector } = await import('../mobile-agent/transports');
  const connector = await openConnector(args.transport);
  let second: LockConnector | undefined;
  try {
    if (args.secondTransport !== undefined) second = await openConnector(args.secondTransport);
  } catch (e) {
    await connector.close();
    throw e;
  }
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  return {
    transport: args.transport,
    lockId: args.lockId,
    devicePublicKey: args.devicePublicKey,
    connector,
    ...(second !== undefined ? { second } : {}),
    timing: { ...SPEC_TIMING, ...args.timing },
    instantTime: args.elapse !== undefined,
    elapse: args.elapse ?? sleep,
    notes: args.notes ?? [`lock reached over ${args.transport}${second ? ` (second phone on ${args.secondTransport})` : ''}; real time`],
    close: async () => {
      await second?.close();
      await connector.close();
    },
  };
}
