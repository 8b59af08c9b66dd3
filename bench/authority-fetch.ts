// The phone's fetch of a lock's pending update from the authority (HttpAuthorityClient
// .updates(), GET /v1/locks/{id}/updates) for a 10,000-credential snapshot: wall time and
// the process's CPU time per fetch. Phone and authority share the one Node event loop here,
// as in a World (the Door Sync bench), so the CPU figure is both sides together — the time
// the radio's event loop is kept from its own work while the lock's advertisement has been
// seen and the phone is connecting (SPEC §14.1).
//
//   npx tsx bench/authority-fetch.ts [--credentials N] [--reps N]
//
// "first request" is the first fetch of the update after World.create (the authority splices
// the table's stored encoding into the snapshot; the code runs for the first time), "warm"
// the following ones, through the phone's client (CBOR) and as a JSON answer read the way
// the client read it before CBOR. A bad argument exits 2 in one line.

import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { World } from '../world/index';
import { fromHex } from '../protocol/index';
import { buildProperty, PHONE } from './door-sync';
import { machineInfo, percentile, round } from './util';

function usageError(what: string): never {
  console.error(`error BAD_ARGUMENT: ${what} — usage: npx tsx bench/authority-fetch.ts [--credentials N ≥ 1] [--reps N ≥ 1]`);
  process.exit(2);
}

let values: { credentials: string; reps: string };
try {
  ({ values } = parseArgs({ options: { credentials: { type: 'string', default: '10000' }, reps: { type: 'string', default: '20' } } }) as { values: { credentials: string; reps: string } });
} catch (e) {
  usageError((e as Error).message);
}
const positive = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) usageError(`--${name} must be a whole number ≥ 1, got ${JSON.stringify(v)}`);
  return n;
};
const credentials = positive('credentials', values.credentials);
const reps = positive('reps', values.reps);

interface Sample {
  wallMs: number;
  cpuMs: number;
  bytes: number;
}

type Fetch = () => Promise<Uint8Array[]>;

async function timed(fetchUpdates: Fetch): Promise<Sample> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const messages = await fetchUpdates();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, bytes: messages.reduce((n, m) => n + m.length, 0) };
}

const load0 = loadavg();
const t0 = performance.now();
const world = await World.create({ seed: 'bench-authority-fetch', transport: 'sim', doors: [{ name: 'door' }], phones: [PHONE] });
try {
  buildProperty(world, 'door', credentials);
  const lockId = world.door('door').lockId;
  const client = world.authorityClientFor(PHONE);
  const token = world.managerToken;
  // The phone's client: asks for application/cbor (and reads JSON from an authority without it).
  const viaClient: Fetch = async () => (await client.updates(lockId, 0)).messages;
  // The JSON answer, read as the client did before CBOR: parse, then hex-decode each message.
  const viaJson: Fetch = async () => {
    const res = await fetch(`${world.url}/v1/locks/${lockId}/updates?from=0`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    return ((await res.json()) as { messages: string[] }).messages.map(fromHex);
  };
  console.log(`World with ${credentials} credentials in ${round((performance.now() - t0) / 1000, 1)} s; ${JSON.stringify(machineInfo())}`);
  const first = await timed(viaClient);
  console.log(`update bytes ${first.bytes}`);
  console.log(`first request after World.create (phone client): wall ${round(first.wallMs, 1)} ms, CPU ${round(first.cpuMs, 1)} ms`);
  const fmt = (xs: number[]): string => `p50 ${round(percentile(xs, 50), 1)} ms, p90 ${round(percentile(xs, 90), 1)} ms`;
  for (const [name, f] of [
    ['phone client (CBOR answer)', viaClient],
    ['JSON answer, hex-decoded', viaJson],
  ] as const) {
    const warm: Sample[] = [];
    for (let i = 0; i < reps; i++) warm.push(await timed(f));
    console.log(`${name}, warm (${reps}): wall ${fmt(warm.map((s) => s.wallMs))}; CPU ${fmt(warm.map((s) => s.cpuMs))}`);
  }
  console.log(`load average at start ${load0.map((x) => round(x, 2)).join(' ')}, at end ${loadavg().map((x) => round(x, 2)).join(' ')}`);
} finally {
  await world.close();
}
