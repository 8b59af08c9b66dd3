// The what-if (authority/whatif.ts) checked against the world: the same property and traffic
// model, played on simulated locks, a real authority and phone agents over the in-process
// link, to see when the revocation is really in force at each door.
//
// Per door the traffic is drawn from the model's seeded Poisson processes: the last
// background sync before the change happens B ~ Exp(μ) earlier (by memorylessness, the only
// earlier sync that matters: it sets the lock's lease anchor), the first after it F ~ Exp(μ)
// later; a connected door's uplink polls with a uniform phase. The model says the credential
// stops working at min(F, max(0, L − B)) (offline) or at the poll (connected). The world is
// then asked, at that moment, whether that is true: the partner's phone tries the door just
// before (it must open) and just after (it must be refused), and every sync must deliver its
// receipt. Doors where the world disagrees are listed; the in-force times found are compared
// with the predicted curve (largest vertical gap).
//
// Standalone: npx tsx world/whatif-sim.ts [--seeds N] [--scale N]

import { SeededRandom } from '../protocol/random';
import { type WhatIfModel, maxCurveGap, syncRate } from '../authority/whatif';
import { World } from './world';

export interface SpreadSimulation {
  /** Seconds after the change until the revocation was in force, per door (model order). */
  inForceSeconds: number[];
  /** Doors where the world did not behave as the model says (empty when it agrees). */
  disagreements: string[];
  syncs: number;
  probes: number;
}

const PROBE_MARGIN_S = 2;

function exponential(rand: () => number, rate: number): number {
  if (rate <= 0) return Infinity;
  return -Math.log(1 - rand()) / rate;
}

/** Play one seeded draw of the model's traffic in a world and report what really happened. */
export async function simulateSpread(model: WhatIfModel, seed: string): Promise<SpreadSimulation> {
  const rng = new SeededRandom(`whatif-traffic:${seed}`);
  const rand = (): number => rng.next();
  const L = model.leaseSeconds;
  // Long enough before the change that a lease from an earlier sync has always run out.
  const warmupS = (L > 0 ? L : 3600) + 60;
  const doors = model.doors.map((d, i) => ({ ...d, name: `${d.connected ? 'c' : 'o'}${i}-${d.kind}` }));
  const world = await World.create({
    seed: `whatif:${seed}`,
    doors: doors.map((d) => ({ name: d.name, kind: d.kind, connected: d.connected, uplinkIntervalSeconds: model.pollSeconds })),
    phones: ['resident', 'partner'],
    lockPolicy: { leaseSeconds: L },
  });
  const out: SpreadSimulation = { inForceSeconds: [], disagreements: [], syncs: 0, probes: 0 };
  try {
    const a = world.authority;
    const { partner } = a.authorizePartner('Partner under revocation');
    const resident = a.batch(() => {
      const ids = doors.map((d) => world.door(d.name).doorId);
      for (const id of ids) a.assignPartnerToDoor(partner.id, id);
      const key = a.createKey({ name: 'Residents', doors: ids.map((doorId) => ({ doorId })) });
      const u = a.addUser({ name: 'Resident' });
      a.assignKey(u.id, key.id);
      return u;
    });
    world.enrolPhone('resident', { userId: resident.id });
    world.enrolPhone('partner', { partnerId: partner.id });
    // Connected doors stay in step through their uplink; hold it until the change.
    for (const d of doors) if (d.connected) world.door(d.name).nextUplinkAtMs = Number.MAX_SAFE_INTEGER;

    const t0 = world.clock.nowMs();
    const changeAtMs = t0 + warmupS * 1000;
    type Ev = { atMs: number; order: number; run: () => Promise<void> };
    const events: Ev[] = [];
    const expected = doors.map(() => 0);
    const syncAt = async (door: string): Promise<void> => {
      world.moveTo('resident', door);
      const r = await world.sync('resident', door);
      world.moveTo('resident', null);
      out.syncs++;
      // Every sync must leave the lock current and the authority holding its receipt.
      if (r.outcome !== 'updated' && r.outcome !== 'up-to-date') out.disagreements.push(`${door}: sync at ${((world.clock.nowMs() - changeAtMs) / 1000).toFixed(0)} s ended ${r.outcome}`);
    };
    const probe = (door: string, mustOpen: boolean, what: string) => async (): Promise<void> => {
      world.moveTo('partner', door);
      const r = await world.unlock('partner', door, { passiveSync: false });
      world.moveTo('partner', null);
      out.probes++;
      if (r.granted !== mustOpen) out.disagreements.push(`${door}: partner ${r.granted ? 'opened' : 'was refused'} ${what}`);
    };
    doors.forEach((d, i) => {
      const mu = syncRate(d);
      if (d.connected) {
        // Current just before the change (its uplink keeps it so, and its lease fresh); then
        // the uplink polls with a uniform phase.
        events.push({ atMs: changeAtMs - 1000, order: 0, run: () => syncAt(d.name) });
        const phaseS = rand() * model.pollSeconds;
        expected[i] = phaseS;
        events.push({
          atMs: changeAtMs,
          order: 2,
          run: async () => {
            world.door(d.name).nextUplinkAtMs = changeAtMs + phaseS * 1000;
          },
        });
      } else {
        const before = Math.min(exponential(rand, mu), warmupS - 1);
        const after = exponential(rand, mu);
        events.push({ atMs: changeAtMs - before * 1000, order: 0, run: () => syncAt(d.name) });
        const leaseEnd = L > 0 ? Math.max(0, L - before) : Infinity;
        expected[i] = Math.min(after, leaseEnd);
        if (Number.isFinite(after) && after < leaseEnd) events.push({ atMs: changeAtMs + after * 1000, order: 3, run: () => syncAt(d.name) });
      }
      const T = expected[i] as number;
      if (Number.isFinite(T)) {
        if (T > PROBE_MARGIN_S) events.push({ atMs: changeAtMs + (T - PROBE_MARGIN_S) * 1000, order: 4, run: probe(d.name, true, `${PROBE_MARGIN_S} s before the predicted moment`) });
        events.push({ atMs: changeAtMs + (T + PROBE_MARGIN_S) * 1000, order: 4, run: probe(d.name, false, `${PROBE_MARGIN_S} s after the predicted moment`) });
      }
    });
    events.push({
      atMs: changeAtMs,
      order: 1,
      run: async () => {
        a.batch(() => {
          for (const d of doors) a.unassignPartnerFromDoor(partner.id, world.door(d.name).doorId);
        });
      },
    });
    events.sort((x, y) => x.atMs - y.atMs || x.order - y.order);
    for (const ev of events) {
      if (ev.atMs > world.clock.nowMs()) await world.advance(ev.atMs - world.clock.nowMs());
      await ev.run();
    }
    out.inForceSeconds = expected;
    return out;
  } finally {
    await world.close();
  }
}

/** Several seeded runs: the in-force times found, the disagreements, and the gap to the prediction. */
export async function validateWhatIf(model: WhatIfModel, seeds: string[]): Promise<{ observed: number[]; disagreements: string[]; gap: number; syncs: number; probes: number }> {
  const observed: number[] = [];
  const disagreements: string[] = [];
  let syncs = 0;
  let probes = 0;
  for (const s of seeds) {
    const r = await simulateSpread(model, s);
    observed.push(...r.inForceSeconds);
    disagreements.push(...r.disagreements.map((d) => `seed ${s}: ${d}`));
    syncs += r.syncs;
    probes += r.probes;
  }
  return { observed, disagreements, gap: maxCurveGap(model, observed), syncs, probes };
}

/** A small mixed property: the validation's default. */
export function sampleModel(scale = 1): WhatIfModel {
  const doors: WhatIfModel['doors'] = [];
  for (let i = 0; i < 6 * scale; i++) doors.push({ name: `communal ${i}`, kind: 'communal', connected: false, passagesPerHour: 6, appSyncShare: 0.5 });
  for (let i = 0; i < 14 * scale; i++) doors.push({ name: `unit ${i}`, kind: 'private', connected: false, passagesPerHour: 0.5, appSyncShare: 0.5 });
  for (let i = 0; i < 3 * scale; i++) doors.push({ name: `lobby ${i}`, kind: 'communal', connected: true, passagesPerHour: 20, appSyncShare: 0.5 });
  return { doors, pollSeconds: 300, leaseSeconds: 8 * 3600 };
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({ options: { seeds: { type: 'string', default: '5' }, scale: { type: 'string', default: '2' } } });
  const model = sampleModel(Number(values.scale));
  const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => `check-${i + 1}`);
  const started = performance.now();
  const r = await validateWhatIf(model, seeds);
  console.log(
    `what-if vs world: ${model.doors.length} doors × ${seeds.length} seeds = ${r.observed.length} door revocations, ${r.syncs} syncs, ${r.probes} partner probes, ` +
      `${r.disagreements.length} disagreement(s); largest gap between the predicted and simulated curves ${(r.gap * 100).toFixed(1)} points ` +
      `(${((performance.now() - started) / 1000).toFixed(0)} s)`,
  );
  for (const d of r.disagreements) console.log(`  ${d}`);
  process.exitCode = r.disagreements.length > 0 ? 1 : 0;
}
