// Revocation time under the conditions a real door sees, each beside its floor.
//
// One world per (link profile, advertising interval) on the real stacks (bleno ↔ noble on
// the virtual radio, authority on SQLite behind HTTP). The phone syncs once (first contact:
// snapshot, full GATT discovery), then each timed run revokes one partner from the door — a
// one-op removePartner delta — and syncs: scan start ("connecting") → receipt and audit
// export at the authority ("relayed"), on the radio's model clock. Each run is timed twice:
// authority on loopback, and behind a WAN latency model applied to every HTTP call the
// phone makes (withWanLatency).
//
// Floor = mean advertising wait (interval / 2 + 5 ms mean advDelay, Core Vol 6 Part B
// §4.4.2.2) + link round trips × connection interval + authority round trips × WAN RTT,
// where the round trips are those of the dialogue that ran (SPEC §14.1).

import os from 'node:os';
import type { AuthorityApi } from '../mobile-agent/authority-client';
import type { SyncEvent } from '../mobile-agent/sync';
import type { NobleConnector } from '../ble/central';
import { World } from '../world/index';
import { LINK_PROFILES, type ProfileSpec } from './door-sync';
import { SeededRandom } from '../protocol/index';
import { formatTable, round, type Cell } from './util';

export interface WanModel {
  /** Round-trip time added to every HTTP call, ms (a kept-alive connection: one RTT per call). */
  rttMs: number;
  /** Uniform extra delay 0..jitterMs per call. */
  jitterMs: number;
}

/**
 * Default WAN: 55 ms RTT, the median multi-server latency Ookla measured on the three US
 * mobile networks in Q2 2023 (T-Mobile 54 ms, Verizon 58 ms, AT&T 63 ms; Ookla Speedtest
 * Intelligence, as reported at https://techblog.comsoc.org/tag/ookla/). The 20 ms jitter is
 * our assumption for the tail, not from that source.
 */
export const DEFAULT_WAN: WanModel = { rttMs: 55, jitterMs: 20 };

/** Every call waits one RTT (+ jitter) before it is answered: a phone on a mobile network. */
export function withWanLatency(inner: AuthorityApi, wan: WanModel, seed: string): AuthorityApi {
  const random = new SeededRandom(seed);
  const delay = async (): Promise<void> => {
    const jitter = wan.jitterMs > 0 ? (random.bytes(1)[0] as number) / 255 * wan.jitterMs : 0;
    await new Promise((r) => setTimeout(r, wan.rttMs + jitter));
  };
  return {
    updates: async (...a) => (await delay(), inner.updates(...a)),
    signedTime: async (...a) => (await delay(), inner.signedTime(...a)),
    postReceipt: async (...a) => (await delay(), inner.postReceipt(...a)),
    postAudit: async (...a) => (await delay(), inner.postAudit(...a)),
    ...(inner.postRelay ? { postRelay: async (...a: Parameters<NonNullable<AuthorityApi['postRelay']>>) => (await delay(), (inner.postRelay as NonNullable<AuthorityApi['postRelay']>).call(inner, ...a)) } : {}),
  };
}

export const ADVERTISING_INTERVALS_MS = [20, 100, 500, 1000];

/**
 * The pipelined dialogue on a known lock (SPEC §14.1): connection set-up (CONNECT_IND to
 * the first exchange), MTU exchange, Database Hash read, CCCD write carrying the phone's
 * HELLO (answered by the lock's HELLO and hello), batch → batchReply.
 */
export const LINK_ROUND_TRIPS = 5;
/**
 * Authority calls on the critical path: signed time (bound to the hello's nonce), then the
 * receipt and the audit export relayed together (POST /v1/locks/{id}/relay). The updates
 * are fetched while the link is set up, off the critical path.
 */
export const AUTHORITY_ROUND_TRIPS = 2;

export interface MatrixCell {
  profile: string;
  advertisingIntervalMs: number;
  authority: 'loopback' | 'wan';
  runs: number;
  ok: number;
  /** Model ms, scan start → relayed. */
  medianMs?: number;
  minMs?: number;
  maxMs?: number;
  floorMs: number;
  /** How the phone set up GATT on the timed runs (cached-handles expected). */
  paths: string[];
  loadAvg: [number, number];
  errors: string[];
}

export interface MatrixOptions {
  runs?: number;
  wan?: WanModel;
  profiles?: string[];
  intervals?: number[];
  log?: (line: string) => void;
}

export interface MatrixResult {
  wan: WanModel;
  linkRoundTrips: number;
  authorityRoundTrips: number;
  cells: MatrixCell[];
}

const PHONE = 'resident';

function floorMs(spec: ProfileSpec, advertisingIntervalMs: number, authority: 'loopback' | 'wan', wan: WanModel): number {
  const advWait = advertisingIntervalMs / 2 + 5;
  const wanMs = authority === 'wan' ? AUTHORITY_ROUND_TRIPS * (wan.rttMs + wan.jitterMs / 2) : 0;
  return round(advWait + LINK_ROUND_TRIPS * spec.profile.intervalMs + wanMs, 1);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function runWorld(spec: ProfileSpec, advertisingIntervalMs: number, runs: number, wan: WanModel, log: (l: string) => void): Promise<MatrixCell[]> {
  const p = spec.profile;
  const world = await World.create({
    seed: `bench-revocation-matrix:${spec.name}:${advertisingIntervalMs}`,
    transport: 'ble',
    doors: [{ name: 'door' }],
    phones: [PHONE],
    // The authority in a thread of its own, as in the door-sync bench: a cloud's CPU is not the phone's.
    authorityThread: true,
    radio: { linkPolicy: { intervalMs: p.intervalMs, packetsPerEvent: p.packetsPerEvent, phy: p.phy, maxDataLength: p.dataLength }, phoneMtu: p.attMtu, advertisingIntervalMs },
  });
  const cells: MatrixCell[] = (['loopback', 'wan'] as const).map((authority) => ({
    profile: spec.name,
    advertisingIntervalMs,
    authority,
    runs,
    ok: 0,
    floorMs: floorMs(spec, advertisingIntervalMs, authority, wan),
    paths: [],
    loadAvg: [round(os.loadavg()[0] as number, 2), 0],
    errors: [],
  }));
  const times: number[][] = [[], []];
  try {
    const radio = world.radio as NonNullable<World['radio']>;
    const a = world.authority;
    const door = world.door('door');
    const key = a.createKey({ name: 'Residents', doors: [{ doorId: door.doorId }] });
    const resident = a.addUser({ name: 'Bench resident', role: 'resident' });
    a.assignKey(resident.id, key.id);
    world.enrolPhone(PHONE, { userId: resident.id });
    // One partner per timed run, each with a device at the door: each run revokes one.
    const partners: number[] = [];
    for (let i = 0; i < runs * 2; i++) {
      const partner = a.authorizePartner(`Partner ${i}`).partner.id;
      a.assignPartnerToDoor(partner, door.doorId);
      a.enrolDeviceWithNewKey({ partnerId: partner }, `partner-${i}`);
      partners.push(partner);
    }
    const sync = async (authority: AuthorityApi | undefined): Promise<number> => {
      let start: number | undefined;
      let end: number | undefined;
      world.moveTo(PHONE, 'door');
      try {
        const r = await world.sync(PHONE, 'door', {
          attempts: 1,
          messageTimeoutMs: 30_000,
          ...(authority ? { authority } : {}),
          onEvent: (e: SyncEvent) => {
            if (e.phase === 'connecting') start ??= radio.clock.nowUs();
            if (e.phase === 'relayed') end ??= radio.clock.nowUs();
          },
        });
        if (!r.receiptDelivered) throw new Error(`receipt not delivered (${r.outcome})`);
      } finally {
        world.moveTo(PHONE, null);
      }
      if (start === undefined || end === undefined) throw new Error('sync events missing');
      return (end - start) / 1000;
    };
    await sync(undefined); // first contact: snapshot, discovery
    for (let run = 0; run < runs; run++) {
      for (const [i, mode] of (['loopback', 'wan'] as const).entries()) {
        const cell = cells[i] as MatrixCell;
        a.unassignPartnerFromDoor(partners[run * 2 + i] as number, door.doorId);
        try {
          const api = mode === 'wan' ? withWanLatency(world.authorityClientFor(PHONE), wan, `${spec.name}:${advertisingIntervalMs}:${run}`) : undefined;
          (times[i] as number[]).push(await sync(api));
          cell.ok++;
          cell.paths.push((world.phone(PHONE).connector as NobleConnector).lastPath?.get(door.lockId) ?? '?');
        } catch (e) {
          cell.errors.push((e as Error).message);
        }
      }
    }
  } finally {
    await world.close();
  }
  for (const [i, cell] of cells.entries()) {
    const t = times[i] as number[];
    if (t.length > 0) {
      cell.medianMs = round(median(t), 1);
      cell.minMs = round(Math.min(...t), 1);
      cell.maxMs = round(Math.max(...t), 1);
    }
    cell.loadAvg[1] = round(os.loadavg()[0] as number, 2);
    cell.paths = [...new Set(cell.paths)];
  }
  log(`  ${spec.name} @ ${advertisingIntervalMs} ms advertising: loopback ${cells[0]?.medianMs ?? 'FAILED'} ms, WAN ${cells[1]?.medianMs ?? 'FAILED'} ms (median of ${runs})`);
  return cells;
}

export async function benchRevocationMatrix(opts: MatrixOptions = {}): Promise<MatrixResult> {
  const runs = opts.runs ?? 3;
  const wan = opts.wan ?? DEFAULT_WAN;
  const log = opts.log ?? (() => undefined);
  const cells: MatrixCell[] = [];
  for (const spec of LINK_PROFILES.filter((p) => !opts.profiles || opts.profiles.includes(p.name))) {
    for (const adv of opts.intervals ?? ADVERTISING_INTERVALS_MS) cells.push(...(await runWorld(spec, adv, runs, wan, log)));
  }
  return { wan, linkRoundTrips: LINK_ROUND_TRIPS, authorityRoundTrips: AUTHORITY_ROUND_TRIPS, cells };
}

const s = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : round(ms / 1000, 3));

export function revocationMatrixTable(r: MatrixResult): string {
  return formatTable(
    'One-partner revocation (removePartner delta) at a known lock, scan start → receipt and audit at the authority, by advertising interval and authority latency',
    ['profile', 'advertising', 'authority', 'median s', 'min s', 'max s', 'floor s', 'median / floor', 'runs ok', 'GATT set-up', 'load avg (1 min) start → end'],
    r.cells.map((c): Cell[] => [
      c.profile,
      `${c.advertisingIntervalMs} ms`,
      c.authority === 'wan' ? `WAN ${r.wan.rttMs}±${r.wan.jitterMs} ms` : 'loopback',
      s(c.medianMs),
      s(c.minMs),
      s(c.maxMs),
      s(c.floorMs),
      c.medianMs !== undefined ? round(c.medianMs / c.floorMs, 2) : null,
      `${c.ok}/${c.runs}`,
      c.paths.join(', '),
      `${c.loadAvg[0]} → ${c.loadAvg[1]}`,
    ]),
    [
      'Model time of the virtual radio (link-layer timing; host JavaScript time counts as it passes). Real stacks: bleno (lock) ↔ noble (phone) on HCI controllers over ptys; authority on SQLite behind HTTP on 127.0.0.1, served from its own worker thread, as a cloud runs on its own machine.',
      `floor = advertising interval / 2 + 5 ms (mean wait for an advert, advDelay included) + ${r.linkRoundTrips} link round trips × connection interval (connect, MTU, Database Hash read, CCCD + HELLOs, batch → batchReply) + ${r.authorityRoundTrips} authority round trips × (RTT + mean jitter) on WAN (signed time; receipt and audit export in one relay call; the updates are fetched during the connect).`,
      `WAN: every HTTP call of the phone waits RTT + uniform(0, jitter) first — ${r.wan.rttMs} ms is the median multi-server latency Ookla measured on US mobile networks, Q2 2023 (54–63 ms by operator); the jitter is an assumption. A kept-alive connection (one RTT per call) is assumed: a fresh HTTPS connection costs 2–3 RTTs more.`,
      'Each run revokes one partner from the door the phone synced before (cached attribute handles, direct connect); the lock advertises at the stated interval from the start.',
      ...r.cells.filter((c) => c.errors.length > 0).map((c) => `${c.profile} ${c.advertisingIntervalMs} ms ${c.authority}: ${c.errors.join('; ')}`),
    ],
  );
}
