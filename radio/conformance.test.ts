// Controller conformance, driven as a host would drive it: what the controller claims
// (LE features, Supported Commands) agrees with what it answers, every claimed feature
// brings the commands the Core spec makes mandatory with it, every command answers with
// the event kind the spec gives it, procedures end in their completion events, and the
// extended advertising command set and random addresses behave as Vol 4 Part E and Vol 6
// Part B describe — in the default (extended) and the --legacy configuration, so the next
// host stack someone brings (BlueZ, Zephyr, Bumble) works the first time.
import { describe, expect, it } from 'vitest';
import { ah, resolvesWith } from './controller';
import { COMMANDS, LeFeature, MANDATORY_WITH_FEATURE, type LeFeatureBit } from './capabilities';
import { EventCode, LeSubevent, Op, Status, addressToWire } from './hci';
import { connectPair, createMiniWorld, type MiniHost, type MiniWorld } from './mini-host';

const ALL_LE_EVENTS = Buffer.from('ffffffff00000000', 'hex');
/** Every LE event except LE Enhanced Connection Complete (bit 9), so LE Connection Complete is used. */
const LE_EVENTS_PLAIN_COMPLETE = Buffer.from('fffdffff00000000', 'hex');

function bitmapOf(host: MiniHost): Buffer {
  const r = host.command(Op.READ_LOCAL_COMMANDS);
  expect(r.status).toBe(Status.SUCCESS);
  return r.returnParams.subarray(1, 65);
}

function featuresOf(host: MiniHost): bigint {
  return host.command(Op.LE_READ_LOCAL_FEATURES).returnParams.readBigUInt64LE(1);
}

function listed(bitmap: Buffer, octet: number, bit: number): boolean {
  return ((bitmap[octet] ?? 0) & (1 << bit)) !== 0;
}

function world(extendedAdvertising: boolean, options: { count?: number; enhancedConnectionComplete?: boolean } = {}): MiniWorld {
  const w = createMiniWorld({ extendedAdvertising, count: options.count ?? 2 });
  for (const host of w.hosts) host.command(Op.LE_SET_EVENT_MASK, options.enhancedConnectionComplete ? ALL_LE_EVENTS : LE_EVENTS_PLAIN_COMPLETE);
  return w;
}

function run(w: MiniWorld, ms: number): void {
  for (let t = 0; t < ms; t += 5) w.clock.advanceBy(5000);
}

describe.each([
  { config: 'default', extendedAdvertising: true },
  { config: '--legacy', extendedAdvertising: false },
])('controller capabilities agree ($config)', ({ extendedAdvertising }) => {
  it('lists exactly the commands it answers, and answers none it does not list', () => {
    const host = world(extendedAdvertising).hosts[0]!;
    const bitmap = bitmapOf(host);
    // Every set bit belongs to a command the capability table names…
    const known = new Set(COMMANDS.map((c) => `${c.octet}.${c.bit}`));
    for (let octet = 0; octet < 64; octet++) {
      for (let bit = 0; bit < 8; bit++) if (listed(bitmap, octet, bit)) expect(known.has(`${octet}.${bit}`), `bit ${octet}.${bit}`).toBe(true);
    }
    // …each listed command is implemented, each unlisted one is unknown.
    for (const c of COMMANDS) {
      const fresh = world(extendedAdvertising).hosts[0]!; // a command may change state (Reset, masks)
      const answer = fresh.command(c.op, Buffer.alloc(0));
      if (listed(bitmap, c.octet, c.bit)) expect(answer.status, `${c.name} is listed but unknown`).not.toBe(Status.UNKNOWN_COMMAND);
      else expect(answer.status, `${c.name} is not listed but answered`).toBe(Status.UNKNOWN_COMMAND);
    }
    // No LE command outside the table answers (OCF 0x001–0x07F).
    const tableOps = new Set(COMMANDS.map((c) => c.op));
    for (let op = 0x2001; op <= 0x207f; op++) {
      if (tableOps.has(op)) continue;
      expect(host.command(op, Buffer.alloc(0)).status, `0x${op.toString(16)}`).toBe(Status.UNKNOWN_COMMAND);
    }
  });

  it('every claimed LE feature brings the commands the Core spec makes mandatory with it', () => {
    const host = world(extendedAdvertising).hosts[0]!;
    const bitmap = bitmapOf(host);
    const features = featuresOf(host);
    expect((features >> BigInt(LeFeature.EXTENDED_ADVERTISING)) & 1n).toBe(extendedAdvertising ? 1n : 0n);
    for (const [bitText, ops] of Object.entries(MANDATORY_WITH_FEATURE)) {
      const bit = Number(bitText) as LeFeatureBit;
      const claimed = ((features >> BigInt(bit)) & 1n) === 1n;
      for (const op of ops) {
        const c = COMMANDS.find((x) => x.op === op)!;
        // Claimed feature ⇒ command listed; feature absent ⇒ its commands absent too.
        expect(listed(bitmap, c.octet, c.bit), `${c.name} with feature ${bit} ${claimed ? 'claimed' : 'absent'}`).toBe(claimed);
      }
    }
    // LE Encryption (bit 0) is not claimed, so no encryption command may be listed or answered.
    expect(features & 1n).toBe(0n);
    for (const op of [Op.LE_START_ENCRYPTION, Op.LE_LTK_REPLY, Op.LE_LTK_NEGATIVE_REPLY]) {
      expect(host.command(op, Buffer.alloc(2)).status).toBe(Status.UNKNOWN_COMMAND);
    }
  });

  it('answers each command with the event kind the spec gives it (Command Complete or Command Status)', () => {
    const bitmap = bitmapOf(world(extendedAdvertising).hosts[0]!);
    for (const c of COMMANDS) {
      if (!listed(bitmap, c.octet, c.bit)) continue;
      const host = world(extendedAdvertising).hosts[0]!;
      expect(host.command(c.op, Buffer.alloc(0)).kind, c.name).toBe(c.status ? 'status' : 'complete');
    }
  });

  it('ends every link-layer procedure in its completion event', () => {
    const w = world(extendedAdvertising);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    const { centralHandle } = connectPair(w, central, peripheral);
    const handle = Buffer.alloc(2);
    handle.writeUInt16LE(centralHandle, 0);
    expect(central.command(Op.READ_REMOTE_VERSION, handle).status).toBe(Status.SUCCESS);
    expect(central.command(Op.LE_READ_REMOTE_FEATURES, handle).status).toBe(Status.SUCCESS);
    const update = Buffer.alloc(14);
    update.writeUInt16LE(centralHandle, 0);
    update.writeUInt16LE(24, 2);
    update.writeUInt16LE(24, 4);
    update.writeUInt16LE(0, 6);
    update.writeUInt16LE(100, 8);
    expect(central.command(Op.LE_CONNECTION_UPDATE, update).status).toBe(Status.SUCCESS);
    const phy = Buffer.from([0, 0, 0, 2, 2, 0, 0]);
    phy.writeUInt16LE(centralHandle, 0);
    expect(central.command(Op.LE_SET_PHY, phy).status).toBe(Status.SUCCESS);
    const dl = Buffer.from([0, 0, 251, 0, 0x48, 0x08]);
    dl.writeUInt16LE(centralHandle, 0);
    expect(central.command(Op.LE_SET_DATA_LENGTH, dl).status).toBe(Status.SUCCESS);
    run(w, 1000);
    expect(central.eventsWithCode(EventCode.READ_REMOTE_VERSION_COMPLETE)).toHaveLength(1);
    expect(central.leEvents(LeSubevent.READ_REMOTE_FEATURES_COMPLETE)).toHaveLength(1);
    const remoteFeatures = central.leEvents(LeSubevent.READ_REMOTE_FEATURES_COMPLETE)[0]!.params.readBigUInt64LE(4);
    expect(remoteFeatures).toBe(featuresOf(peripheral));
    for (const host of [central, peripheral]) {
      expect(host.leEvents(LeSubevent.CONNECTION_UPDATE_COMPLETE).length).toBeGreaterThanOrEqual(1);
      expect(host.leEvents(LeSubevent.PHY_UPDATE_COMPLETE).length).toBeGreaterThanOrEqual(1);
    }
    expect(central.leEvents(LeSubevent.DATA_LENGTH_CHANGE).length).toBeGreaterThanOrEqual(1);
    expect(central.command(Op.DISCONNECT, Buffer.from([...handle, 0x13])).status).toBe(Status.SUCCESS);
    run(w, 1000);
    expect(central.eventsWithCode(EventCode.DISCONNECTION_COMPLETE)).toHaveLength(1);
    expect(peripheral.eventsWithCode(EventCode.DISCONNECTION_COMPLETE)).toHaveLength(1);
  });
});

// ─────────────────────────────── LE privacy ───────────────────────────────

describe('LE privacy: a phone controller seen only under rotating resolvable private addresses (Vol 6 Part B §1.3.2.2)', () => {
  it('ah() gives the Core sample value (Vol 3 Part H Appendix D.7)', () => {
    const irk = Buffer.from('ec0234a357c8ad05341010a60a397d9b', 'hex');
    expect(ah(irk, Buffer.from('708194', 'hex')).toString('hex')).toBe('0dfbaa');
    // The address prand ‖ hash, wire order, resolves with that IRK and no other.
    const rpa = Buffer.from('708194' + '0dfbaa', 'hex').reverse();
    expect(resolvesWith(irk, rpa)).toBe(true);
    expect(resolvesWith(Buffer.alloc(16, 1), rpa)).toBe(false);
  });

  it('scans and connects from an RPA even when the host asks for public, and moves to a new one after the rotation time', () => {
    const irk = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const w = createMiniWorld({ count: 2, privacy: [{ irk, rotationMs: 1000 }, undefined] });
    for (const host of w.hosts) host.command(Op.LE_SET_EVENT_MASK, LE_EVENTS_PLAIN_COMPLETE);
    const [phone, lock] = [w.hosts[0]!, w.hosts[1]!];
    const publicAddress = addressToWire(phone.controller.addressString);
    const peerSeen = (): Array<{ type: number; address: Buffer }> =>
      lock.leEvents(LeSubevent.CONNECTION_COMPLETE)
        .filter((e) => e.params[1] === Status.SUCCESS)
        .map((e) => ({ type: e.params[5]!, address: Buffer.from(e.params.subarray(6, 12)) }));
    // noble's way: own address type 0 (public) in LE Create Connection.
    connectPair(w, phone, lock);
    const first = peerSeen()[0]!;
    expect(first.type).toBe(0x01); // random
    expect(first.address.equals(publicAddress)).toBe(false);
    expect(resolvesWith(irk, first.address)).toBe(true);
    const handle = Buffer.alloc(3);
    handle.writeUInt16LE(phone.controller.connections.keys().next().value!, 0);
    handle[2] = 0x13;
    expect(phone.command(Op.DISCONNECT, handle).status).toBe(Status.SUCCESS);
    run(w, 200);
    // Within the rotation time the address is kept…
    for (const host of w.hosts) host.events.length = 0;
    connectPair(w, phone, lock);
    expect(peerSeen()[0]!.address.equals(first.address)).toBe(true);
    handle.writeUInt16LE(phone.controller.connections.keys().next().value!, 0);
    expect(phone.command(Op.DISCONNECT, handle).status).toBe(Status.SUCCESS);
    run(w, 1200);
    // …after it, a new one, still resolvable with the phone's IRK.
    for (const host of w.hosts) host.events.length = 0;
    connectPair(w, phone, lock);
    const third = peerSeen()[0]!;
    expect(third.type).toBe(0x01);
    expect(third.address.equals(first.address)).toBe(false);
    expect(resolvesWith(irk, third.address)).toBe(true);
    expect(phone.controller.privateAddressHistory.length).toBe(2);
  });
});

// ─────────────────────── Connection Parameters Request ───────────────────────

/** LE Connection Update parameters (Vol 4 Part E §7.8.18), 14 octets; interval in 1.25 ms units. */
function connectionUpdate(handle: number, interval: number, latency = 0, timeout = 200): Buffer {
  const p = Buffer.alloc(14);
  p.writeUInt16LE(handle, 0);
  p.writeUInt16LE(interval, 2);
  p.writeUInt16LE(interval, 4);
  p.writeUInt16LE(latency, 6);
  p.writeUInt16LE(timeout, 8);
  return p;
}

/** Status, handle and interval (1.25 ms units) of each LE Connection Update Complete a host heard. */
function updatesHeard(host: MiniHost): Array<{ status: number; handle: number; interval: number; latency: number; timeout: number }> {
  return host.leEvents(LeSubevent.CONNECTION_UPDATE_COMPLETE).map((e) => ({
    status: e.params[1]!,
    handle: e.params.readUInt16LE(2),
    interval: e.params.readUInt16LE(4),
    latency: e.params.readUInt16LE(6),
    timeout: e.params.readUInt16LE(8),
  }));
}

describe('Connection Parameters Request procedure (LE feature bit 1, Vol 6 Part B §5.1.7)', () => {
  it('is claimed in every configuration, with its two reply commands listed', () => {
    for (const extendedAdvertising of [true, false]) {
      const host = world(extendedAdvertising).hosts[0]!;
      expect((featuresOf(host) >> BigInt(LeFeature.CONNECTION_PARAMETERS_REQUEST)) & 1n).toBe(1n);
      const bitmap = bitmapOf(host);
      expect(listed(bitmap, 33, 4)).toBe(true); // LE Remote Connection Parameter Request Reply
      expect(listed(bitmap, 33, 5)).toBe(true); // … Negative Reply
    }
  });

  it("a peripheral host's LE Connection Update reaches the central's host as LE Remote Connection Parameter Request; its Reply moves the link at an instant", () => {
    const w = world(true);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    const { centralHandle, peripheralHandle } = connectPair(w, central, peripheral, { intervalMin: 12, intervalMax: 12 });
    const link = [...w.air.links][0]!;
    expect(link.params.intervalUs).toBe(15_000);
    expect(peripheral.command(Op.LE_CONNECTION_UPDATE, connectionUpdate(peripheralHandle, 84, 4, 600))).toMatchObject({ kind: 'status', status: Status.SUCCESS });
    // One at a time: a second request while the first is outstanding is disallowed.
    expect(peripheral.command(Op.LE_CONNECTION_UPDATE, connectionUpdate(peripheralHandle, 96)).status).toBe(Status.COMMAND_DISALLOWED);
    run(w, 200);
    const requests = central.leEvents(LeSubevent.REMOTE_CONNECTION_PARAMETER_REQUEST);
    expect(requests).toHaveLength(1);
    const r = requests[0]!.params;
    expect([r.readUInt16LE(1), r.readUInt16LE(3), r.readUInt16LE(5), r.readUInt16LE(7), r.readUInt16LE(9)]).toEqual([centralHandle, 84, 84, 4, 600]);
    expect(updatesHeard(central)).toEqual([]);
    expect(updatesHeard(peripheral)).toEqual([]);
    expect(link.params.intervalUs).toBe(15_000); // nothing changes before the central's host answers
    const reply = Buffer.alloc(14);
    reply.writeUInt16LE(centralHandle, 0);
    reply.writeUInt16LE(84, 2);
    reply.writeUInt16LE(84, 4);
    reply.writeUInt16LE(4, 6);
    reply.writeUInt16LE(600, 8);
    const answered = central.command(Op.LE_REMOTE_CONN_PARAM_REPLY, reply);
    expect(answered).toMatchObject({ kind: 'complete', status: Status.SUCCESS });
    expect(answered.returnParams.readUInt16LE(1)).toBe(centralHandle);
    // A second reply to the same request: none is pending any more.
    expect(central.command(Op.LE_REMOTE_CONN_PARAM_REPLY, reply).status).toBe(Status.COMMAND_DISALLOWED);
    const counterAtReply = link.eventCounter;
    run(w, 1000);
    // Applied at its instant (≥ 6 events after the reply), and both hosts heard it.
    expect(link.params.intervalUs).toBe(105_000);
    const applied = link.appliedInstants.filter((u) => u.kind === 'connection');
    expect(applied).toHaveLength(1);
    expect((applied[0]!.instant - counterAtReply) & 0xffff).toBeGreaterThanOrEqual(6);
    expect(applied[0]!.intervalUs).toBe(105_000);
    expect(updatesHeard(central)).toEqual([{ status: 0, handle: centralHandle, interval: 84, latency: 4, timeout: 600 }]);
    expect(updatesHeard(peripheral)).toEqual([{ status: 0, handle: peripheralHandle, interval: 84, latency: 4, timeout: 600 }]);
  });

  it("the central's Negative Reply reaches the peripheral's host as LE Connection Update Complete with that reason; the link is unchanged", () => {
    const w = world(false);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    const { centralHandle, peripheralHandle } = connectPair(w, central, peripheral, { intervalMin: 24, intervalMax: 24 });
    expect(peripheral.command(Op.LE_CONNECTION_UPDATE, connectionUpdate(peripheralHandle, 84)).status).toBe(Status.SUCCESS);
    run(w, 200);
    expect(central.leEvents(LeSubevent.REMOTE_CONNECTION_PARAMETER_REQUEST)).toHaveLength(1);
    const negative = Buffer.alloc(3);
    negative.writeUInt16LE(centralHandle, 0);
    negative[2] = Status.UNACCEPTABLE_CONNECTION_PARAMETERS;
    expect(central.command(Op.LE_REMOTE_CONN_PARAM_NEGATIVE_REPLY, negative)).toMatchObject({ kind: 'complete', status: Status.SUCCESS });
    run(w, 500);
    const timeout = [...w.air.links][0]!.params.supervisionTimeoutUs / 10_000;
    expect(updatesHeard(peripheral)).toEqual([{ status: Status.UNACCEPTABLE_CONNECTION_PARAMETERS, handle: peripheralHandle, interval: 24, latency: 0, timeout }]);
    expect(updatesHeard(central)).toEqual([]);
    expect([...w.air.links][0]!.params.intervalUs).toBe(30_000);
    // The peripheral may ask again once its request has ended.
    expect(peripheral.command(Op.LE_CONNECTION_UPDATE, connectionUpdate(peripheralHandle, 84)).status).toBe(Status.SUCCESS);
  });

  it("a central whose host masks the event rejects with Unsupported Remote Feature (the peripheral's host then falls back to L2CAP signalling)", () => {
    const w = world(true);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    const { peripheralHandle } = connectPair(w, central, peripheral, { intervalMin: 24, intervalMax: 24 });
    // noble's LE event mask (5f00…): bit 5, LE Remote Connection Parameter Request, is off.
    expect(central.command(Op.LE_SET_EVENT_MASK, Buffer.from('5f00000000000000', 'hex')).status).toBe(Status.SUCCESS);
    expect(peripheral.command(Op.LE_CONNECTION_UPDATE, connectionUpdate(peripheralHandle, 84)).status).toBe(Status.SUCCESS);
    run(w, 500);
    expect(central.leEvents(LeSubevent.REMOTE_CONNECTION_PARAMETER_REQUEST)).toHaveLength(0);
    expect(updatesHeard(peripheral).map((u) => u.status)).toEqual([Status.UNSUPPORTED_REMOTE_FEATURE]);
    expect([...w.air.links][0]!.params.intervalUs).toBe(30_000);
  });

  it('replies name a connection with a pending request, or are refused', () => {
    const w = world(true);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    const { centralHandle } = connectPair(w, central, peripheral);
    const negative = Buffer.from([0, 0, Status.UNACCEPTABLE_CONNECTION_PARAMETERS]);
    negative.writeUInt16LE(centralHandle, 0);
    expect(central.command(Op.LE_REMOTE_CONN_PARAM_NEGATIVE_REPLY, negative).status).toBe(Status.COMMAND_DISALLOWED);
    negative.writeUInt16LE(0x0abc, 0);
    expect(central.command(Op.LE_REMOTE_CONN_PARAM_NEGATIVE_REPLY, negative).status).toBe(Status.UNKNOWN_CONNECTION_ID);
    expect(central.command(Op.LE_REMOTE_CONN_PARAM_REPLY, Buffer.alloc(3)).status).toBe(Status.INVALID_PARAMETERS);
  });

  it('an unanswered request loses the link after the LL response timeout (40 s), with reason 0x22 at both ends', () => {
    const w = world(true);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    const { peripheralHandle } = connectPair(w, central, peripheral);
    expect(peripheral.command(Op.LE_CONNECTION_UPDATE, connectionUpdate(peripheralHandle, 84)).status).toBe(Status.SUCCESS);
    run(w, 39_000);
    expect(central.leEvents(LeSubevent.REMOTE_CONNECTION_PARAMETER_REQUEST)).toHaveLength(1);
    expect(peripheral.eventsWithCode(EventCode.DISCONNECTION_COMPLETE)).toHaveLength(0);
    run(w, 2_000);
    for (const host of [central, peripheral]) {
      const d = host.eventsWithCode(EventCode.DISCONNECTION_COMPLETE);
      expect(d).toHaveLength(1);
      expect(d[0]!.params[3]).toBe(Status.LMP_RESPONSE_TIMEOUT);
    }
  });
});

// ─────────────────────────── extended advertising ───────────────────────────

/** LE Set Extended Advertising Parameters (v1), 25 octets. */
function extAdvParams(o: { handle?: number; properties: number; intervalMs?: number; ownAddressType?: number; sid?: number; scanRequestNotification?: boolean; secondaryPhy?: number; peer?: Buffer }): Buffer {
  const p = Buffer.alloc(25);
  p[0] = o.handle ?? 0;
  p.writeUInt16LE(o.properties, 1);
  const interval = Math.round((o.intervalMs ?? 20) / 0.625);
  p.writeUIntLE(interval, 3, 3);
  p.writeUIntLE(interval, 6, 3);
  p[9] = 0x07;
  p[10] = o.ownAddressType ?? 0;
  p[11] = 0;
  (o.peer ?? Buffer.alloc(6)).copy(p, 12);
  p[18] = 0;
  p[19] = 0x7f;
  p[20] = 0x01;
  p[21] = 0;
  p[22] = o.secondaryPhy ?? 0x01;
  p[23] = o.sid ?? 0;
  p[24] = o.scanRequestNotification ? 1 : 0;
  return p;
}

function extData(handle: number, operation: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([handle, operation, 0, data.length]), data]);
}

function extEnable(enable: boolean, sets: Array<{ handle: number; durationMs?: number; maxEvents?: number }>): Buffer {
  const p = Buffer.alloc(2 + 4 * sets.length);
  p[0] = enable ? 1 : 0;
  p[1] = sets.length;
  sets.forEach((s, i) => {
    p[2 + 4 * i] = s.handle;
    p.writeUInt16LE(Math.round((s.durationMs ?? 0) / 10), 3 + 4 * i);
    p[5 + 4 * i] = s.maxEvents ?? 0;
  });
  return p;
}

function extScan(host: MiniHost, o: { active?: boolean; durationMs?: number; ownAddressType?: number } = {}): void {
  const params = Buffer.from([o.ownAddressType ?? 0, 0, 0x01, o.active ? 1 : 0, 0x60, 0, 0x60, 0]);
  expect(host.command(Op.LE_SET_EXT_SCAN_PARAMS, params).status).toBe(Status.SUCCESS);
  const enable = Buffer.alloc(6);
  enable[0] = 1;
  enable.writeUInt16LE(Math.round((o.durationMs ?? 0) / 10), 2);
  expect(host.command(Op.LE_SET_EXT_SCAN_ENABLE, enable).status).toBe(Status.SUCCESS);
}

function legacyScan(host: MiniHost): void {
  expect(host.command(Op.LE_SET_SCAN_PARAMS, Buffer.from([0, 0x60, 0, 0x60, 0, 0, 0])).status).toBe(Status.SUCCESS);
  expect(host.command(Op.LE_SET_SCAN_ENABLE, Buffer.from([1, 0])).status).toBe(Status.SUCCESS);
}

interface ExtReport {
  eventType: number;
  addressType: number;
  address: Buffer;
  secondaryPhy: number;
  sid: number;
  data: Buffer;
}

function extReports(host: MiniHost): ExtReport[] {
  return host.leEvents(LeSubevent.EXTENDED_ADVERTISING_REPORT).map((e) => {
    const r = e.params.subarray(2);
    return { eventType: r.readUInt16LE(0), addressType: r[2]!, address: Buffer.from(r.subarray(3, 9)), secondaryPhy: r[10]!, sid: r[11]!, data: Buffer.from(r.subarray(24, 24 + r[23]!)) };
  });
}

describe('extended advertising command set', () => {
  it('a non-legacy set is heard by extended scanners only, its long data reassembled across reports', () => {
    const w = world(true, { count: 3 });
    const [advertiser, extScanner, legacyScanner] = [w.hosts[0]!, w.hosts[1]!, w.hosts[2]!];
    expect(advertiser.command(Op.LE_READ_NUM_ADV_SETS).returnParams[1]).toBeGreaterThanOrEqual(1);
    expect(advertiser.command(Op.LE_READ_MAX_ADV_DATA_LENGTH).returnParams.readUInt16LE(1)).toBe(1650);
    // Non-connectable, non-scannable extended advertising, 2M secondary PHY, SID 5.
    const params = advertiser.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ properties: 0x00, sid: 5, secondaryPhy: 0x02 }));
    expect(params.status).toBe(Status.SUCCESS);
    const payload = Buffer.from(Array.from({ length: 400 }, (_, i) => i & 0xff));
    // In two fragments: first, then last.
    expect(advertiser.command(Op.LE_SET_EXT_ADV_DATA, extData(0, 1, payload.subarray(0, 200))).status).toBe(Status.SUCCESS);
    expect(advertiser.command(Op.LE_SET_EXT_ADV_DATA, extData(0, 2, payload.subarray(200))).status).toBe(Status.SUCCESS);
    expect(advertiser.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 0 }])).status).toBe(Status.SUCCESS);
    extScan(extScanner);
    // The legacy scanner is another controller: it uses the legacy commands.
    legacyScan(legacyScanner);
    run(w, 200);
    const reports = extReports(extScanner).filter((r) => r.address.equals(advertiser.controller.address));
    expect(reports.length).toBeGreaterThanOrEqual(2);
    // One advertising event = reports with data status "incomplete, more" then "complete".
    const first = reports[0]!;
    expect(first.eventType & 0x10).toBe(0); // not legacy
    expect(first.eventType & 0x60).toBe(0x20); // more to come
    expect(first.sid).toBe(5);
    expect(first.secondaryPhy).toBe(2);
    expect(Buffer.concat([first.data, reports[1]!.data])).toEqual(payload);
    expect(reports[1]!.eventType & 0x60).toBe(0x00);
    expect(legacyScanner.leEvents(LeSubevent.ADVERTISING_REPORT)).toHaveLength(0);
  });

  it('a legacy-property set is a legacy advertiser: legacy scanners hear it, with at most 31 bytes of data', () => {
    const w = world(true);
    const [advertiser, scanner] = [w.hosts[0]!, w.hosts[1]!];
    expect(advertiser.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ properties: 0x13 })).status).toBe(Status.SUCCESS);
    expect(advertiser.command(Op.LE_SET_EXT_ADV_DATA, extData(0, 3, Buffer.alloc(32))).status).toBe(Status.INVALID_PARAMETERS);
    expect(advertiser.command(Op.LE_SET_EXT_ADV_DATA, extData(0, 1, Buffer.alloc(10))).status).toBe(Status.INVALID_PARAMETERS);
    expect(advertiser.command(Op.LE_SET_EXT_ADV_DATA, extData(0, 3, Buffer.from('0201060303aabb', 'hex'))).status).toBe(Status.SUCCESS);
    expect(advertiser.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 0 }])).status).toBe(Status.SUCCESS);
    legacyScan(scanner);
    run(w, 100);
    const reports = scanner.leEvents(LeSubevent.ADVERTISING_REPORT);
    expect(reports.length).toBeGreaterThan(0);
    expect(reports[0]!.params[2]).toBe(0x00); // ADV_IND
  });

  it('Extended Create Connection to a connectable set: both sides connect, the set ends with Advertising Set Terminated', () => {
    const w = world(true, { enhancedConnectionComplete: true });
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    expect(peripheral.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ handle: 2, properties: 0x01 })).status).toBe(Status.SUCCESS);
    expect(peripheral.command(Op.LE_SET_EXT_ADV_DATA, extData(2, 3, Buffer.from('020106', 'hex'))).status).toBe(Status.SUCCESS);
    expect(peripheral.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 2 }])).status).toBe(Status.SUCCESS);
    const create = Buffer.alloc(26);
    create[0] = 0; // filter policy
    create[1] = 0; // own address public
    create[2] = 0; // peer public
    peripheral.controller.address.copy(create, 3);
    create[9] = 0x01; // 1M
    create.writeUInt16LE(0x60, 10);
    create.writeUInt16LE(0x60, 12);
    create.writeUInt16LE(24, 14);
    create.writeUInt16LE(24, 16);
    create.writeUInt16LE(0, 18);
    create.writeUInt16LE(100, 20);
    expect(central.command(Op.LE_EXT_CREATE_CONNECTION, create).status).toBe(Status.SUCCESS);
    run(w, 500);
    const centralComplete = central.leEvents(LeSubevent.ENHANCED_CONNECTION_COMPLETE);
    const peripheralComplete = peripheral.leEvents(LeSubevent.ENHANCED_CONNECTION_COMPLETE);
    expect(centralComplete).toHaveLength(1);
    expect(peripheralComplete).toHaveLength(1);
    const terminated = peripheral.leEvents(LeSubevent.ADVERTISING_SET_TERMINATED);
    expect(terminated).toHaveLength(1);
    const t = terminated[0]!.params;
    expect(t[1]).toBe(Status.SUCCESS);
    expect(t[2]).toBe(2); // the set
    expect(t.readUInt16LE(3)).toBe(peripheralComplete[0]!.params.readUInt16LE(2)); // the connection
    // Connection Complete comes before Advertising Set Terminated.
    expect(peripheral.events.indexOf(peripheralComplete[0]!)).toBeLessThan(peripheral.events.indexOf(terminated[0]!));
  });

  it('a legacy initiator never connects to non-legacy extended advertising', () => {
    const w = world(true);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    expect(peripheral.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ properties: 0x01 })).status).toBe(Status.SUCCESS);
    expect(peripheral.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 0 }])).status).toBe(Status.SUCCESS);
    const create = Buffer.alloc(25);
    create.writeUInt16LE(0x60, 0);
    create.writeUInt16LE(0x60, 2);
    peripheral.controller.address.copy(create, 6);
    create.writeUInt16LE(24, 13);
    create.writeUInt16LE(24, 15);
    create.writeUInt16LE(100, 19);
    expect(central.command(Op.LE_CREATE_CONNECTION, create).status).toBe(Status.SUCCESS);
    run(w, 300);
    expect(central.leEvents(LeSubevent.CONNECTION_COMPLETE)).toHaveLength(0);
    expect(central.leEvents(LeSubevent.ENHANCED_CONNECTION_COMPLETE)).toHaveLength(0);
  });

  it('a set ends by Duration (0x3C) or Max_Extended_Advertising_Events (0x43), reported to the host', () => {
    const w = world(true);
    const host = w.hosts[0]!;
    for (const handle of [0, 1]) expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ handle, properties: 0x00, intervalMs: 20 })).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 0, durationMs: 100 }, { handle: 1, maxEvents: 3 }])).status).toBe(Status.SUCCESS);
    run(w, 500);
    const terminated = host.leEvents(LeSubevent.ADVERTISING_SET_TERMINATED).map((e) => ({ status: e.params[1], handle: e.params[2], events: e.params[5] }));
    expect(terminated).toContainEqual(expect.objectContaining({ status: Status.ADVERTISING_TIMEOUT, handle: 0 }));
    expect(terminated).toContainEqual({ status: Status.LIMIT_REACHED, handle: 1, events: 3 });
  });

  it('refuses what Vol 4 Part E refuses, and a refused enable enables nothing', () => {
    const w = world(true);
    const host = w.hosts[0]!;
    expect(host.command(Op.LE_SET_EXT_ADV_DATA, extData(7, 3, Buffer.alloc(3))).status).toBe(Status.UNKNOWN_ADVERTISING_ID);
    expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ properties: 0x03 })).status).toBe(Status.INVALID_PARAMETERS); // connectable and scannable non-legacy
    expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ properties: 0x17 })).status).toBe(Status.INVALID_PARAMETERS); // not a legacy combination
    // Scannable extended set: data goes in the scan response only, and enabling needs it.
    expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ handle: 0, properties: 0x02 })).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_EXT_ADV_DATA, extData(0, 3, Buffer.alloc(3))).status).toBe(Status.INVALID_PARAMETERS);
    expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ handle: 1, properties: 0x00 })).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 1 }, { handle: 0 }])).status).toBe(Status.INVALID_PARAMETERS);
    run(w, 100);
    expect(host.controller.describeAdvertisingSets().filter((s) => s.enabled)).toEqual([]);
    // Connectable extended data must fit one AUX_ADV_IND.
    expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ handle: 2, properties: 0x01 })).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_EXT_ADV_DATA, extData(2, 1, Buffer.alloc(200))).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_EXT_ADV_DATA, extData(2, 2, Buffer.alloc(100))).status).toBe(Status.PACKET_TOO_LONG);
    // Set capacity, and no removing an enabled set.
    expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ handle: 3, properties: 0x00 })).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ handle: 4, properties: 0x00 })).status).toBe(Status.MEMORY_CAPACITY_EXCEEDED);
    expect(host.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 3 }])).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_REMOVE_ADV_SET, Buffer.from([3])).status).toBe(Status.COMMAND_DISALLOWED);
    expect(host.command(Op.LE_CLEAR_ADV_SETS).status).toBe(Status.COMMAND_DISALLOWED);
    expect(host.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(false, [])).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_CLEAR_ADV_SETS).status).toBe(Status.SUCCESS);
    // Once extended commands were used, legacy advertising commands are disallowed until reset.
    expect(host.command(Op.LE_SET_ADV_ENABLE, Buffer.from([0])).status).toBe(Status.COMMAND_DISALLOWED);
  });

  it('an extended scan with a Duration ends in LE Scan Timeout; Scan Request Received reaches an advertiser that asked', () => {
    const w = world(true);
    const [advertiser, scanner] = [w.hosts[0]!, w.hosts[1]!];
    expect(advertiser.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ properties: 0x02, scanRequestNotification: true })).status).toBe(Status.SUCCESS);
    expect(advertiser.command(Op.LE_SET_EXT_SCAN_RSP_DATA, extData(0, 3, Buffer.from('0509414243', 'hex'))).status).toBe(Status.SUCCESS);
    expect(advertiser.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 0 }])).status).toBe(Status.SUCCESS);
    extScan(scanner, { active: true, durationMs: 200 });
    run(w, 400);
    expect(scanner.leEvents(LeSubevent.SCAN_TIMEOUT)).toHaveLength(1);
    const responses = extReports(scanner).filter((r) => r.eventType & 0x08);
    expect(responses.length).toBeGreaterThan(0);
    expect(responses[0]!.data.toString('hex')).toBe('0509414243');
    const requests = advertiser.leEvents(LeSubevent.SCAN_REQUEST_RECEIVED);
    expect(requests.length).toBeGreaterThan(0);
    expect(requests[0]!.params.subarray(3, 9)).toEqual(scanner.controller.address);
    // After the timeout nothing more is reported.
    const count = scanner.leEvents(LeSubevent.EXTENDED_ADVERTISING_REPORT).length;
    run(w, 200);
    expect(scanner.leEvents(LeSubevent.EXTENDED_ADVERTISING_REPORT).length).toBe(count);
  });
});

// ─────────────────────────── random addresses ───────────────────────────

describe('random device addresses', () => {
  const STATIC_RANDOM = Buffer.from('c3b2a1a2b3c4', 'hex').reverse(); // c4:b3:a2:a1:b2:c3, top bits 11
  const RESOLVABLE = Buffer.from('4a1b2c3d4e5f', 'hex').reverse(); // top bits 01

  it('advertising, scanning and connecting with random addresses: the air, reports and Connection Complete carry them', () => {
    const w = world(false);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    expect(peripheral.command(Op.LE_SET_RANDOM_ADDRESS, STATIC_RANDOM).status).toBe(Status.SUCCESS);
    expect(central.command(Op.LE_SET_RANDOM_ADDRESS, RESOLVABLE).status).toBe(Status.SUCCESS);
    const adv = Buffer.alloc(15);
    adv.writeUInt16LE(0x20, 0);
    adv.writeUInt16LE(0x20, 2);
    adv[5] = 0x01; // own address: random
    adv[13] = 0x07;
    expect(peripheral.command(Op.LE_SET_ADV_PARAMS, adv).status).toBe(Status.SUCCESS);
    expect(peripheral.command(Op.LE_SET_ADV_ENABLE, Buffer.from([1])).status).toBe(Status.SUCCESS);
    // Active scan from the central's random address.
    expect(central.command(Op.LE_SET_SCAN_PARAMS, Buffer.from([1, 0x60, 0, 0x60, 0, 0x01, 0])).status).toBe(Status.SUCCESS);
    expect(central.command(Op.LE_SET_SCAN_ENABLE, Buffer.from([1, 0])).status).toBe(Status.SUCCESS);
    run(w, 100);
    const report = central.leEvents(LeSubevent.ADVERTISING_REPORT)[0]!.params;
    expect(report[3]).toBe(0x01); // address type random
    expect(report.subarray(4, 10)).toEqual(STATIC_RANDOM);
    expect(central.command(Op.LE_SET_SCAN_ENABLE, Buffer.from([0, 0])).status).toBe(Status.SUCCESS);
    // The public address no longer appears on air: connecting to it finds nobody…
    const create = Buffer.alloc(25);
    create.writeUInt16LE(0x60, 0);
    create.writeUInt16LE(0x60, 2);
    create[5] = 0x00;
    addressToWire(peripheral.controller.addressString).copy(create, 6);
    create[12] = 0x01; // own address random
    create.writeUInt16LE(24, 13);
    create.writeUInt16LE(24, 15);
    create.writeUInt16LE(100, 19);
    expect(central.command(Op.LE_CREATE_CONNECTION, create).status).toBe(Status.SUCCESS);
    run(w, 200);
    expect(central.leEvents(LeSubevent.CONNECTION_COMPLETE)).toHaveLength(0);
    expect(central.command(Op.LE_CREATE_CONNECTION_CANCEL).status).toBe(Status.SUCCESS);
    run(w, 10);
    // …connecting to the random address works, and each side sees the other's random address.
    create[5] = 0x01;
    STATIC_RANDOM.copy(create, 6);
    expect(central.command(Op.LE_CREATE_CONNECTION, create).status).toBe(Status.SUCCESS);
    run(w, 200);
    const onCentral = central.leEvents(LeSubevent.CONNECTION_COMPLETE).find((e) => e.params[1] === Status.SUCCESS)!.params;
    expect(onCentral[5]).toBe(0x01);
    expect(onCentral.subarray(6, 12)).toEqual(STATIC_RANDOM);
    const onPeripheral = peripheral.leEvents(LeSubevent.CONNECTION_COMPLETE)[0]!.params;
    expect(onPeripheral[5]).toBe(0x01);
    expect(onPeripheral.subarray(6, 12)).toEqual(RESOLVABLE);
  });

  it('refuses a random own address that was never set, and changing it while in use', () => {
    const w = world(true);
    const host = w.hosts[0]!;
    const adv = Buffer.alloc(15);
    adv.writeUInt16LE(0x20, 0);
    adv.writeUInt16LE(0x20, 2);
    adv[5] = 0x01;
    adv[13] = 0x07;
    const other = world(false).hosts[0]!;
    expect(other.command(Op.LE_SET_ADV_PARAMS, adv).status).toBe(Status.SUCCESS);
    expect(other.command(Op.LE_SET_ADV_ENABLE, Buffer.from([1])).status).toBe(Status.INVALID_PARAMETERS);
    expect(other.command(Op.LE_SET_RANDOM_ADDRESS, STATIC_RANDOM).status).toBe(Status.SUCCESS);
    expect(other.command(Op.LE_SET_ADV_ENABLE, Buffer.from([1])).status).toBe(Status.SUCCESS);
    expect(other.command(Op.LE_SET_RANDOM_ADDRESS, RESOLVABLE).status).toBe(Status.COMMAND_DISALLOWED);
    // Per-set random addresses (extended): a set with own address random needs its own.
    expect(host.command(Op.LE_SET_EXT_ADV_PARAMS, extAdvParams({ properties: 0x00, ownAddressType: 1 })).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 0 }])).status).toBe(Status.INVALID_PARAMETERS);
    expect(host.command(Op.LE_SET_ADV_SET_RANDOM_ADDRESS, Buffer.concat([Buffer.from([0]), STATIC_RANDOM])).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_EXT_ADV_ENABLE, extEnable(true, [{ handle: 0 }])).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_ADV_SET_RANDOM_ADDRESS, Buffer.concat([Buffer.from([9]), STATIC_RANDOM])).status).toBe(Status.UNKNOWN_ADVERTISING_ID);
  });
});

// ─────────────────────────── LL procedures with responses and instants ───────────────────────────

describe('link-layer procedures take their response and instant', () => {
  function connected(): { w: MiniWorld; central: MiniHost; peripheral: MiniHost; handle: Buffer; link: import('./link').Link } {
    const w = world(true);
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    const { centralHandle } = connectPair(w, central, peripheral, { intervalMin: 24, intervalMax: 24, timeout: 200 });
    const handle = Buffer.alloc(2);
    handle.writeUInt16LE(centralHandle, 0);
    const link = [...w.air.links][0]!;
    return { w, central, peripheral, handle, link };
  }

  it('LE Set PHY: the new PHY applies at the instant, six or more events after LL_PHY_UPDATE_IND, at both ends', () => {
    const { w, central, peripheral, handle, link } = connected();
    const counterAtCommand = link.eventCounter;
    expect(central.command(Op.LE_SET_PHY, Buffer.from([...handle, 0, 2, 2, 0, 0])).status).toBe(Status.SUCCESS);
    // Until the instant both ends stay on 1M.
    w.clock.advanceBy(3 * 30_000);
    expect(link.params.phy).toBe('1M');
    expect(link.pendingInstants.map((p) => p.kind)).toEqual(['phy']);
    const instant = link.pendingInstants[0]!.instant;
    expect((instant - counterAtCommand) & 0xffff).toBeGreaterThanOrEqual(6);
    run(w, 500);
    expect(link.params.phy).toBe('2M');
    for (const host of [central, peripheral]) {
      const e = host.leEvents(LeSubevent.PHY_UPDATE_COMPLETE);
      expect(e).toHaveLength(1);
      expect([e[0]!.params[4], e[0]!.params[5]]).toEqual([2, 2]);
    }
  });

  it("a peer that prefers 1M keeps the link on 1M: only the asking host hears PHY Update Complete", () => {
    const { w, central, peripheral, handle, link } = connected();
    // Peripheral host: tx and rx preferences 1M only.
    expect(peripheral.command(Op.LE_SET_DEFAULT_PHY, Buffer.from([0, 1, 1])).status).toBe(Status.SUCCESS);
    expect(central.command(Op.LE_SET_PHY, Buffer.from([...handle, 0, 2, 2, 0, 0])).status).toBe(Status.SUCCESS);
    run(w, 600);
    expect(link.params.phy).toBe('1M');
    const asked = central.leEvents(LeSubevent.PHY_UPDATE_COMPLETE);
    expect(asked).toHaveLength(1);
    expect(asked[0]!.params[4]).toBe(1);
    expect(peripheral.leEvents(LeSubevent.PHY_UPDATE_COMPLETE)).toHaveLength(0);
  });

  it('LL_LENGTH_REQ is answered by LL_LENGTH_RSP before either host hears LE Data Length Change', () => {
    const { w, central, peripheral, handle, link } = connected();
    const deliveredBefore = link.stats.eventsRun;
    expect(central.command(Op.LE_SET_DATA_LENGTH, Buffer.from([...handle, 251, 0, 0x48, 0x08])).status).toBe(Status.SUCCESS);
    run(w, 300);
    const c = central.leEvents(LeSubevent.DATA_LENGTH_CHANGE);
    const p = peripheral.leEvents(LeSubevent.DATA_LENGTH_CHANGE);
    expect(c).toHaveLength(1);
    expect(p).toHaveLength(1);
    expect(c[0]!.params.readUInt16LE(3)).toBe(251); // central's MaxTxOctets
    // REQ and RSP need at least one connection event (one round), so the change is not instantaneous.
    expect(link.stats.eventsRun).toBeGreaterThan(deliveredBefore);
    expect(c[0]!.atUs).toBeGreaterThan(0);
  });

  it('a connection update whose instant passes unheard loses the link: 0x28 (instant passed) at the peripheral', () => {
    const { w, central, peripheral, handle, link } = connected();
    const update = Buffer.alloc(14);
    update.writeUInt16LE(handle.readUInt16LE(0), 0);
    update.writeUInt16LE(40, 2);
    update.writeUInt16LE(40, 4);
    update.writeUInt16LE(100, 8);
    link.faults.silent = true; // nothing reaches the peripheral from now on
    expect(central.command(Op.LE_CONNECTION_UPDATE, update).status).toBe(Status.SUCCESS);
    run(w, 1000);
    const reason = (host: MiniHost): number | undefined => host.eventsWithCode(EventCode.DISCONNECTION_COMPLETE)[0]?.params[3];
    expect(reason(peripheral)).toBe(0x28);
    expect(reason(central)).toBe(0x08);
    expect(central.leEvents(LeSubevent.CONNECTION_UPDATE_COMPLETE)).toHaveLength(0);
  });
});

// ─────────────────────────── the HCI UART ───────────────────────────

describe('HCI UART baud rate', () => {
  /** Model time for `count` notifications of 244 bytes to reach the central's host at a baud rate. */
  function streamTimeUs(uartBaud: number | undefined, count: number): number {
    const w = createMiniWorld({ count: 2, policies: [{ intervalMs: 7.5, phy: '2M' }, {}], ...(uartBaud !== undefined ? { uartBaud } : {}) });
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    connectPair(w, central, peripheral, { intervalMin: 6, intervalMax: 6, timeout: 200 });
    const peripheralHandle = peripheral.controller.connections.keys().next().value!;
    // Both directions at 251-octet PDUs.
    for (const [host, handle] of [[central, central.controller.connections.keys().next().value!], [peripheral, peripheralHandle]] as const) {
      const dl = Buffer.from([0, 0, 251, 0, 0x48, 0x08]);
      dl.writeUInt16LE(handle, 0);
      host.command(Op.LE_SET_DATA_LENGTH, dl);
    }
    run(w, 300);
    const start = w.clock.nowUs();
    const before = central.acl.length;
    let sent = 0;
    const pump = (): void => {
      while (sent < count && peripheral.inFlight < 8) {
        peripheral.sendAcl(peripheralHandle, 0b00, Buffer.alloc(244, sent & 0xff));
        sent++;
      }
    };
    peripheral.onCompleted = pump;
    pump();
    for (let i = 0; i < 20_000 && central.acl.length - before < count; i++) w.clock.advanceBy(250);
    expect(central.acl.length - before).toBe(count);
    return central.acl[central.acl.length - 1]!.atUs - start;
  }

  it('a 1,000,000-baud UART caps a 2M PHY link near 100 kB/s; unlimited it runs at the link rate', () => {
    const count = 100; // 24.4 kB of payload
    const unlimited = streamTimeUs(undefined, count);
    const uart = streamTimeUs(1_000_000, count);
    // Each 244-byte notification crosses both UARTs as ~250 H4 bytes = 2.5 ms at 1 Mbaud.
    expect(uart).toBeGreaterThan(unlimited);
    expect(uart).toBeGreaterThanOrEqual(count * 250 * 10 - 5_000);
  });
});

describe('connection events deliver at air time', () => {
  it('packets later in a connection event reach the host when their last bit was on the air, not at the anchor', () => {
    const w = createMiniWorld({ count: 2, policies: [{ intervalMs: 50 }, {}] });
    const [central, peripheral] = [w.hosts[0]!, w.hosts[1]!];
    const { centralHandle } = connectPair(w, central, peripheral, { intervalMin: 40, intervalMax: 40, timeout: 200 });
    run(w, 200);
    const before = peripheral.acl.length;
    for (let i = 0; i < 4; i++) central.sendAcl(centralHandle, 0b00, Buffer.alloc(27, i));
    run(w, 200);
    const times = peripheral.acl.slice(before).map((p) => p.atUs);
    expect(times).toHaveLength(4);
    // 1M PHY: a 27-byte PDU takes (27 + 10) × 8 = 296 µs, an empty reply 80 µs, T_IFS 150 µs twice.
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(296 + 80 + 2 * 150);
  });
});
