// The link layer's timing on the controller's own (manual) clock: an unimpeded transfer
// takes exactly its analytical airtime bound; loss only makes it slower; out of range the
// link dies by supervision timeout; everything is reproducible from the seed.
import { describe, expect, it } from 'vitest';
import { dataPduAirtimeUs, roundTimeUs, transferAirtimeBound, type LinkProfile } from './airtime';
import type { LinkPolicy } from './controller';
import { EventCode, LeSubevent, Op } from './hci';
import { connectPair, createMiniWorld, type MiniHost, type MiniWorld } from './mini-host';

const PROFILES: Record<string, LinkProfile> = {
  'phone-typical': { intervalMs: 30, attMtu: 185, dataLength: 251, phy: '1M', packetsPerEvent: 4 },
  fast: { intervalMs: 7.5, attMtu: 247, dataLength: 251, phy: '2M', packetsPerEvent: 0 },
  worst: { intervalMs: 30, attMtu: 23, dataLength: 27, phy: '1M', packetsPerEvent: 4 },
};

function policyFor(profile: LinkProfile): LinkPolicy {
  return { intervalMs: profile.intervalMs, packetsPerEvent: profile.packetsPerEvent, phy: profile.phy, maxDataLength: profile.dataLength };
}

/** Connects c1 (central) to c2 with the profile, negotiating data length and PHY. */
function connectWithProfile(profile: LinkProfile, seed = 1): { world: MiniWorld; central: MiniHost; peripheral: MiniHost; centralHandle: number; peripheralHandle: number } {
  const world = createMiniWorld({ seed, policies: [policyFor(profile), policyFor(profile)] });
  const [central, peripheral] = world.hosts as [MiniHost, MiniHost];
  const handles = connectPair(world, central, peripheral);
  const dl = Buffer.alloc(6);
  dl.writeUInt16LE(handles.centralHandle, 0);
  dl.writeUInt16LE(251, 2);
  dl.writeUInt16LE(2120, 4);
  expect(central.command(Op.LE_SET_DATA_LENGTH, dl).status).toBe(0);
  world.clock.advanceBy(100_000);
  return { world, central, peripheral, ...handles };
}

/**
 * Streams `bytes` as ATT Write Commands (or notifications) like a host that always keeps
 * the controller's buffers full, and returns each data PDU's delivery time.
 */
function stream(world: MiniWorld, sender: MiniHost, handle: number, bytes: number, attMtu: number): number[] {
  const link = [...world.air.links][0]!;
  const deliveries: number[] = [];
  link.onPduDelivered = (_from, _pdu, atUs) => deliveries.push(atUs);
  const value = attMtu - 3;
  let sent = 0;
  const pump = (): void => {
    while (sent < bytes && sender.inFlight < 12) {
      const chunk = Math.min(value, bytes - sent);
      const pdu = Buffer.alloc(4 + 3 + chunk, 0xa5);
      pdu.writeUInt16LE(3 + chunk, 0);
      pdu.writeUInt16LE(0x0004, 2);
      pdu[4] = 0x52;
      sender.sendAcl(handle, 0b00, pdu);
      sent += chunk;
    }
  };
  sender.onCompleted = pump;
  // Start right after an anchor so the first event carrying data is a full one.
  world.clock.advanceTo(link.nextAnchorUs - link.params.intervalUs + 1);
  pump();
  for (let i = 0; i < 100_000 && (sent < bytes || sender.inFlight > 0); i++) world.clock.advanceBy(link.params.intervalUs);
  world.clock.advanceBy(link.params.intervalUs * 2);
  return deliveries;
}

describe('airtime model', () => {
  it('computes the Core packet timings', () => {
    expect(dataPduAirtimeUs('1M', 27)).toBe(296); // (1+4+2+27+3) × 8 µs
    expect(dataPduAirtimeUs('1M', 251)).toBe(2088);
    expect(dataPduAirtimeUs('2M', 251)).toBe(1048); // 2-octet preamble at 4 µs/octet
    expect(dataPduAirtimeUs('1M', 0)).toBe(80); // empty PDU
    expect(roundTimeUs('1M', 27, 0)).toBe(296 + 150 + 80 + 150);
    // With 27-byte PDUs and MTU 23 one round carries 20 bytes in ~0.7 ms.
    const worst = transferAirtimeBound(20 * 1000, { intervalMs: 7.5, attMtu: 23, dataLength: 27, phy: '1M', packetsPerEvent: 0 });
    expect(worst.roundUs).toBe(676);
    expect(worst.roundsPerEvent).toBe(10);
  });

  it.each(Object.entries(PROFILES))('a %s transfer takes exactly its analytical bound on the controller clock', (_name, profile) => {
    const bytes = 20 * 1024;
    const bound = transferAirtimeBound(bytes, profile);
    const { world, central, centralHandle } = connectWithProfile(profile);
    const link = [...world.air.links][0]!;
    expect(link.params.phy).toBe(profile.phy);
    expect(link.central.txOctets).toBe(profile.dataLength);
    const deliveries = stream(world, central, centralHandle, bytes, profile.attMtu);
    expect(deliveries).toHaveLength(bound.llPdus);
    const firstPduAirtime = dataPduAirtimeUs(profile.phy, Math.min(profile.dataLength, profile.attMtu + 4));
    const firstAnchor = deliveries[0]! - firstPduAirtime;
    expect(deliveries.at(-1)! - firstAnchor).toBeCloseTo(bound.durationUs, 6);
    expect((firstAnchor - link.firstAnchorUs) % link.params.intervalUs).toBeCloseTo(0, 6);
  });

  it('notifications (peripheral → central) match the bound for that direction', () => {
    const profile = PROFILES['phone-typical']!;
    const bytes = 10 * 1024;
    const bound = transferAirtimeBound(bytes, profile, 'peripheral-to-central');
    const { world, peripheral, peripheralHandle } = connectWithProfile(profile);
    const deliveries = stream(world, peripheral, peripheralHandle, bytes, profile.attMtu);
    const lead = dataPduAirtimeUs('1M', 0) + 150 + dataPduAirtimeUs('1M', profile.attMtu + 4);
    expect(deliveries.at(-1)! - (deliveries[0]! - lead)).toBeCloseTo(bound.durationUs, 6);
  });

  it('packet loss makes a transfer slower than the bound, and the same seed replays it exactly', () => {
    const profile = PROFILES.fast!;
    const bytes = 20 * 1024;
    const bound = transferAirtimeBound(bytes, profile);
    const run = (seed: number): number[] => {
      const { world, central, centralHandle } = connectWithProfile(profile, seed);
      world.medium.globalExtraPer = 0.2;
      return stream(world, central, centralHandle, bytes, profile.attMtu);
    };
    const a = run(7);
    const b = run(7);
    const c = run(8);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).toHaveLength(bound.llPdus); // every PDU still arrives exactly once
    expect(a.at(-1)! - a[0]!).toBeGreaterThan(bound.durationUs * 1.1);
  });

  it('out of range: both sides report supervision timeout (0x08) one timeout after the last packet', () => {
    const world = createMiniWorld({ policies: [{ intervalMs: 30, supervisionTimeoutMs: 500 }, {}] });
    const [central, peripheral] = world.hosts as [MiniHost, MiniHost];
    connectPair(world, central, peripheral);
    world.clock.advanceBy(200_000);
    const link = [...world.air.links][0]!;
    world.medium.setPosition('c2', { x: world.medium.rangeM() * 2, y: 0 });
    const movedAt = world.clock.nowUs();
    world.clock.advanceBy(2_000_000);
    for (const host of [central, peripheral]) {
      const disconnects = host.eventsWithCode(EventCode.DISCONNECTION_COMPLETE);
      expect(disconnects).toHaveLength(1);
      expect(disconnects[0]!.params[3]).toBe(0x08);
      const elapsed = disconnects[0]!.atUs - movedAt;
      expect(elapsed).toBeGreaterThanOrEqual(500_000 - 30_000);
      expect(elapsed).toBeLessThanOrEqual(500_000 + 30_000 + 50_000);
    }
    expect(link.closed).toBe(true);
    expect(world.air.links.size).toBe(0);
    // No adverts are heard out of range either.
    const adv = Buffer.alloc(15);
    adv.writeUInt16LE(0x20, 0);
    adv.writeUInt16LE(0x20, 2);
    adv[13] = 7;
    peripheral.command(Op.LE_SET_ADV_PARAMS, adv);
    peripheral.command(Op.LE_SET_ADV_ENABLE, Buffer.from([1]));
    central.command(Op.LE_SET_SCAN_PARAMS, Buffer.from([1, 0x10, 0, 0x10, 0, 0, 0]));
    central.command(Op.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
    world.clock.advanceBy(1_000_000);
    expect(central.leEvents(LeSubevent.ADVERTISING_REPORT)).toHaveLength(0);
  });

  it('RSSI follows log-distance path loss and PER rises near the edge of range', () => {
    const world = createMiniWorld();
    const m = world.medium;
    m.setPosition('c1', { x: 0, y: 0 });
    m.setPosition('c2', { x: 1, y: 0 });
    expect(m.meanRssiDbm('c1', 'c2')).toBeCloseTo(-40, 6);
    m.setPosition('c2', { x: 10, y: 0 });
    expect(m.meanRssiDbm('c1', 'c2')).toBeCloseTo(-67, 6);
    expect(m.packetErrorRate('c1', 'c2')).toBeLessThan(1e-6);
    const range = m.rangeM();
    m.setPosition('c2', { x: range * 0.95, y: 0 });
    const nearEdge = m.packetErrorRate('c1', 'c2');
    expect(nearEdge).toBeGreaterThan(0.05);
    expect(nearEdge).toBeLessThan(1);
    m.setPosition('c2', { x: range * 1.01, y: 0 });
    expect(m.packetErrorRate('c1', 'c2')).toBe(1);
  });
});
