// Radio figures: launch → connected time, 100 KiB throughput per link profile against its
// analytical airtime bound, and how many simultaneous links one radio process holds.
// Run standalone: npx tsx radio/bench.ts
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { transferAirtimeBound, type LinkProfile } from './airtime';
import { RealtimeClock } from './clock';
import { discoverPeripheral, startBlenoOn, startNobleOn, stopHost } from './harness';
import { createMiniWorldOn, startConnecting, type MiniHost } from './mini-host';
import { Op } from './hci';
import { startRadio } from './radio';

const SERVICE = 'b0b0000100004c0c8e4f5a6b7c8d9e0f';
const CHAR = 'b0b0000200004c0c8e4f5a6b7c8d9e0f';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

async function withLock<T>(
  options: { advertisingIntervalMs: number; profile?: LinkProfile; timeScale?: number; seed?: number },
  body: (ctx: { radio: Awaited<ReturnType<typeof startRadio>>; received: () => number; reset: () => void }) => Promise<T>,
): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'radio-bench-'));
  const profile = options.profile;
  const radio = await startRadio({
    dir,
    controllers: ['lock-1', 'phone-1'],
    seed: options.seed ?? 1,
    timeScale: options.timeScale ?? 1,
    ...(profile ? { linkPolicy: { intervalMs: profile.intervalMs, packetsPerEvent: profile.packetsPerEvent, phy: profile.phy, maxDataLength: profile.dataLength } } : {}),
  });
  const bleno = await startBlenoOn(radio, 'lock-1', { advertisingIntervalMs: options.advertisingIntervalMs });
  let received = 0;
  try {
    const characteristic = new bleno.Characteristic({
      uuid: CHAR,
      properties: ['write', 'writeWithoutResponse'],
      onWriteRequest: (_c: unknown, data: Buffer, _o: number, _w: boolean, cb: (r: number) => void) => {
        received += data.length;
        cb(0);
      },
    });
    await new Promise<void>((resolve, reject) => bleno.setServices([new bleno.PrimaryService({ uuid: SERVICE, characteristics: [characteristic] })], (e) => (e ? reject(e) : resolve())));
    await new Promise<void>((resolve, reject) => bleno.startAdvertising('bench-lock', [SERVICE], (e) => (e ? reject(e) : resolve())));
    return await body({ radio, received: () => received, reset: () => { received = 0; } });
  } finally {
    await stopHost(bleno);
    await radio.close();
  }
}

/** noble start → poweredOn → scan → connected, with bleno already advertising. */
async function launchToConnected(advertisingIntervalMs: number, runs: number): Promise<Record<string, number>> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    times.push(
      // A different seed per run: the advertising phase relative to noble's start varies.
      await withLock({ advertisingIntervalMs, seed: 100 + i }, async ({ radio }) => {
        const started = performance.now();
        const noble = await startNobleOn(radio, 'phone-1');
        try {
          const peripheral = await discoverPeripheral(noble, { localName: 'bench-lock' });
          await peripheral.connectAsync();
          return performance.now() - started;
        } finally {
          await stopHost(noble);
        }
      }),
    );
  }
  return { runs, medianMs: round1(median(times)), minMs: round1(Math.min(...times)), maxMs: round1(Math.max(...times)) };
}

/** 100 KiB of writes without response over real noble/bleno, timed on the controller clock. */
async function throughput(name: string, profile: LinkProfile, timeScale: number): Promise<Record<string, unknown>> {
  const bytes = 100 * 1024;
  const bound = transferAirtimeBound(bytes, profile);
  return withLock({ advertisingIntervalMs: 20, profile, timeScale }, async ({ radio, received, reset }) => {
    const noble = await startNobleOn(radio, 'phone-1');
    try {
      const peripheral = await discoverPeripheral(noble, { localName: 'bench-lock' });
      await peripheral.connectAsync({ mtu: profile.attMtu });
      const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync([SERVICE], [CHAR]);
      const characteristic = characteristics[0];
      const link = [...radio.air.links][0]!;
      let firstUs = -1;
      let lastUs = 0;
      link.onPduDelivered = (from, _pdu, atUs) => {
        if (from !== link.central) return;
        if (firstUs < 0) firstUs = atUs;
        lastUs = atUs;
      };
      reset();
      const value = profile.attMtu - 3;
      const payload = Buffer.alloc(bytes, 0x5a);
      const wallStart = performance.now();
      // Queue every write at once (noble serialises them itself) so the host is not the
      // bottleneck for want of pipelining.
      const writes: Promise<void>[] = [];
      for (let offset = 0; offset < bytes; offset += value) writes.push(characteristic.writeAsync(payload.subarray(offset, offset + value), true));
      await Promise.all(writes);
      while (received() < bytes) await new Promise((resolve) => setTimeout(resolve, 2));
      const wallMs = performance.now() - wallStart;
      const modelUs = lastUs - firstUs;
      await peripheral.disconnectAsync();
      return {
        profile: name,
        ...profile,
        timeScale,
        negotiated: { intervalMs: link.params.intervalUs / 1000, phy: link.params.phy, dataLength: link.central.txOctets, mtu: peripheral.mtu },
        measuredKiBps: round1(bytes / 1024 / (modelUs / 1e6)),
        boundKiBps: round1(bytes / 1024 / (bound.durationUs / 1e6)),
        measuredOverBound: Math.round((modelUs / bound.durationUs) * 1000) / 1000,
        modelSeconds: Math.round(modelUs / 1e4) / 100,
        wallSeconds: Math.round(wallMs / 10) / 100,
      };
    } finally {
      await stopHost(noble);
    }
  });
}

/**
 * Link-layer capacity of one radio process: K simultaneous links (7.5 ms interval, 2M,
 * data length 251), each streaming continuously, on the real-time clock for 2 s. A link
 * "holds" if it survives and carries ≥ 90 % of its airtime bound.
 */
async function simultaneousLinks(): Promise<Record<string, unknown>> {
  const results: Array<{ links: number; alive: number; meanShareOfBound: number; wallLoad: number }> = [];
  for (const links of [8, 16, 32, 64]) {
    const clock = new RealtimeClock(1);
    const world = createMiniWorldOn(clock, { count: links * 2, seed: 1, policies: Array.from({ length: links * 2 }, () => ({ intervalMs: 7.5, phy: '2M' as const })) });
    const pairs: Array<{ central: MiniHost; handle: number }> = [];
    for (let i = 0; i < links; i++) {
      const central = world.hosts[2 * i]!;
      const peripheral = world.hosts[2 * i + 1]!;
      const connected = connectPairRealtime(central, peripheral);
      pairs.push({ central, handle: await connected });
    }
    const delivered = new Map<MiniHost, number>();
    for (const { central, handle } of pairs) {
      delivered.set(central, 0);
      const pump = (): void => {
        while (central.inFlight < 12) {
          const pdu = Buffer.alloc(251, 0xa5);
          pdu.writeUInt16LE(247, 0);
          pdu.writeUInt16LE(4, 2);
          pdu[4] = 0x52;
          central.sendAcl(handle, 0, pdu);
          delivered.set(central, delivered.get(central)! + 1);
        }
      };
      central.onCompleted = pump;
      pump();
    }
    const windowMs = 2000;
    const cpuStart = process.cpuUsage();
    const startCounts = new Map([...delivered].map(([h, n]) => [h, n - h.inFlight]));
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const cpu = process.cpuUsage(cpuStart);
    const bound = transferAirtimeBound(1, { intervalMs: 7.5, attMtu: 247, dataLength: 251, phy: '2M', packetsPerEvent: 0 });
    const boundBytes = bound.steadyStateBytesPerSecond * (windowMs / 1000);
    let alive = 0;
    let share = 0;
    for (const { central } of pairs) {
      if (central.controller.connections.size > 0) alive++;
      const sent = delivered.get(central)! - central.inFlight - startCounts.get(central)!;
      share += (sent * 244) / boundBytes;
    }
    for (const host of world.hosts) host.controller.close();
    results.push({ links, alive, meanShareOfBound: Math.round((share / links) * 100) / 100, wallLoad: Math.round(((cpu.user + cpu.system) / 1000 / windowMs) * 100) / 100 });
    if (alive < links || share / links < 0.9) break;
  }
  const holding = results.filter((r) => r.alive === r.links && r.meanShareOfBound >= 0.9);
  return { maxLinksAtFullBound: holding.at(-1)?.links ?? 0, runs: results, lightTraffic: await lightTrafficLinks() };
}

/**
 * Links with sync-like light traffic (30 ms interval, a 20-byte write every 100 ms each):
 * K holds if every link stays up and every packet arrives within the 2 s window.
 */
async function lightTrafficLinks(): Promise<Record<string, unknown>> {
  const results: Array<{ links: number; alive: number; delivered: number; sent: number; wallLoad: number }> = [];
  for (const links of [64, 256, 512, 1024]) {
    const clock = new RealtimeClock(1);
    const world = createMiniWorldOn(clock, { count: links * 2, seed: 2, policies: Array.from({ length: links * 2 }, () => ({ intervalMs: 30 })) });
    const pairs: Array<{ central: MiniHost; peripheral: MiniHost; handle: number }> = [];
    await Promise.all(
      Array.from({ length: links }, async (_, i) => {
        const central = world.hosts[2 * i]!;
        const peripheral = world.hosts[2 * i + 1]!;
        pairs.push({ central, peripheral, handle: await connectPairRealtime(central, peripheral) });
      }),
    );
    let sent = 0;
    const cpuStart = process.cpuUsage();
    const timer = setInterval(() => {
      for (const { central, handle } of pairs) {
        const pdu = Buffer.alloc(27, 0x11);
        pdu.writeUInt16LE(23, 0);
        pdu.writeUInt16LE(4, 2);
        central.sendAcl(handle, 0, pdu);
        sent++;
      }
    }, 100);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    clearInterval(timer);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const cpu = process.cpuUsage(cpuStart);
    const delivered = pairs.reduce((n, { peripheral }) => n + peripheral.acl.length, 0);
    const alive = pairs.filter(({ central }) => central.controller.connections.size > 0).length;
    for (const host of world.hosts) host.controller.close();
    results.push({ links, alive, delivered, sent, wallLoad: Math.round(((cpu.user + cpu.system) / 1000 / 2200) * 100) / 100 });
    if (alive < links || delivered < sent) break;
  }
  const holding = results.filter((r) => r.alive === r.links && r.delivered === r.sent);
  return { maxLinksHeld: holding.at(-1)?.links ?? 0, runs: results };
}

/** Connects two mini hosts on a real-time clock: the link forms as real time passes. */
async function connectPairRealtime(central: MiniHost, peripheral: MiniHost): Promise<number> {
  startConnecting(central, peripheral);
  for (let i = 0; i < 200; i++) {
    const handle = central.controller.connections.keys().next().value;
    if (handle !== undefined) {
      // Data length 251 as noble would ask for right after connecting.
      const dl = Buffer.alloc(6);
      dl.writeUInt16LE(handle, 0);
      dl.writeUInt16LE(251, 2);
      dl.writeUInt16LE(2120, 4);
      central.command(Op.LE_SET_DATA_LENGTH, dl);
      return handle;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('link did not form');
}

export async function benchRadio(): Promise<Record<string, unknown>> {
  const profiles: Array<[string, LinkProfile, number]> = [
    ['phone-typical', { intervalMs: 30, attMtu: 185, dataLength: 251, phy: '1M', packetsPerEvent: 4 }, 1],
    ['fast', { intervalMs: 7.5, attMtu: 247, dataLength: 251, phy: '2M', packetsPerEvent: 0 }, 1],
    // 38 s of airtime at real speed: run the model 8× faster (the bound is on model time).
    ['worst', { intervalMs: 30, attMtu: 23, dataLength: 27, phy: '1M', packetsPerEvent: 4 }, 8],
  ];
  const only = process.env.RADIO_BENCH_ONLY;
  const result: Record<string, unknown> = {};
  if (!only || only === 'launch') {
    result.launchToConnected = { advertising20ms: await launchToConnected(20, 9), advertising100ms: await launchToConnected(100, 9) };
  }
  if (!only || only === 'throughput') {
    const transfers: Record<string, unknown>[] = [];
    for (const [name, profile, timeScale] of profiles) transfers.push(await throughput(name, profile, timeScale));
    result.throughput100KiB = transfers;
  }
  if (!only || only === 'links') result.simultaneousLinks = await simultaneousLinks();
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  benchRadio().then(
    (result) => {
      console.log(JSON.stringify(result, null, 2));
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
