// HCI parsing, command handling and error codes of one controller, driven byte-exactly.
import { describe, expect, it } from 'vitest';
import { btsnoopHeader, btsnoopRecord, readBtsnoop } from './btsnoop';
import { summarizeBtsnoop } from './trace-show';
import { EventCode, H4Framer, LeSubevent, Op, Status, aclPacket, commandPacket, parseH4 } from './hci';
import { connectPair, createMiniWorld } from './mini-host';

describe('H4 framing', () => {
  it('reassembles packets split across chunks and skips garbage bytes', () => {
    const framer = new H4Framer();
    const cmd = commandPacket(Op.RESET);
    const acl = aclPacket(0x0001, 0b10, Buffer.from([1, 2, 3, 4, 5]));
    const stream = Buffer.concat([Buffer.from([0xff, 0x00]), cmd, acl]);
    const out = [...framer.push(stream.subarray(0, 3)), ...framer.push(stream.subarray(3, 9)), ...framer.push(stream.subarray(9))];
    expect(out.map((b) => b.toString('hex'))).toEqual([cmd.toString('hex'), acl.toString('hex')]);
    expect(framer.discardedBytes).toBe(2);
    const parsed = parseH4(acl);
    expect(parsed.type === 'acl' && parsed.handle === 1 && parsed.pb === 0b10 && parsed.data.length === 5).toBe(true);
  });
});

describe('controller command handling', () => {
  it('answers HCI_Reset with exactly the bytes the UART driver waits for', () => {
    const { hosts } = createMiniWorld();
    const host = hosts[0]!;
    host.port.received.length = 0;
    host.port.send(commandPacket(Op.RESET));
    expect(host.port.received[0]!.toString('hex')).toMatch(/^040e04(01|02|05)030c00$/);
    expect(host.port.received).toHaveLength(1); // nothing unsolicited around the reset
  });

  it('reports HCI ≥ 5.x, manufacturer 0x05F1, a unique public address and LE features', () => {
    const { hosts } = createMiniWorld({ count: 2 });
    const version = hosts[0]!.command(Op.READ_LOCAL_VERSION).returnParams;
    expect(version[1]).toBeGreaterThanOrEqual(0x06);
    expect(version.readUInt16LE(5)).toBe(0x05f1);
    const a = hosts[0]!.command(Op.READ_BD_ADDR).returnParams.subarray(1);
    const b = hosts[1]!.command(Op.READ_BD_ADDR).returnParams.subarray(1);
    expect(a.equals(b)).toBe(false);
    const features = hosts[0]!.command(Op.LE_READ_LOCAL_FEATURES).returnParams.readBigUInt64LE(1);
    expect(features & (1n << 5n)).toBe(1n << 5n); // data length extension
    expect(features & 1n).toBe(0n); // no LE encryption
    const buffers = hosts[0]!.command(Op.LE_READ_BUFFER_SIZE).returnParams;
    expect(buffers.readUInt16LE(1)).toBe(251);
    expect(buffers[3]).toBeGreaterThan(0);
  });

  it('returns 0x01 for unknown commands, 0x12 for invalid parameters, 0x0C when disallowed, 0x02 for unknown handles', () => {
    const { hosts } = createMiniWorld();
    const host = hosts[0]!;
    expect(host.command(0x2fff).status).toBe(Status.UNKNOWN_COMMAND);
    // Advertising interval below 20 ms.
    const badAdv = Buffer.alloc(15);
    badAdv.writeUInt16LE(0x10, 0);
    badAdv.writeUInt16LE(0x10, 2);
    badAdv[13] = 7;
    expect(host.command(Op.LE_SET_ADV_PARAMS, badAdv).status).toBe(Status.INVALID_PARAMETERS);
    // Wrong parameter length.
    expect(host.command(Op.SET_EVENT_MASK, Buffer.alloc(3)).status).toBe(Status.INVALID_PARAMETERS);
    expect(host.command(Op.LE_SET_SCAN_ENABLE, Buffer.from([2, 0])).status).toBe(Status.INVALID_PARAMETERS);
    // Changing advertising parameters while advertising is disallowed.
    const adv = Buffer.alloc(15);
    adv.writeUInt16LE(0x20, 0);
    adv.writeUInt16LE(0x20, 2);
    adv[13] = 7;
    expect(host.command(Op.LE_SET_ADV_PARAMS, adv).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_ADV_ENABLE, Buffer.from([1])).status).toBe(Status.SUCCESS);
    expect(host.command(Op.LE_SET_ADV_PARAMS, adv).status).toBe(Status.COMMAND_DISALLOWED);
    // Cancelling a connection attempt that does not exist.
    expect(host.command(Op.LE_CREATE_CONNECTION_CANCEL).status).toBe(Status.COMMAND_DISALLOWED);
    // This controller claims no extended advertising: its commands are unknown to it.
    expect(host.command(Op.LE_SET_EXT_SCAN_ENABLE, Buffer.from([0, 0, 0, 0, 0, 0])).status).toBe(Status.UNKNOWN_COMMAND);
    // With the feature, legacy and extended scanning commands may still not be mixed.
    const extended = createMiniWorld({ extendedAdvertising: true }).hosts[0]!;
    expect(extended.command(Op.LE_SET_SCAN_ENABLE, Buffer.from([0, 0])).status).toBe(Status.SUCCESS);
    expect(extended.command(Op.LE_SET_EXT_SCAN_ENABLE, Buffer.from([0, 0, 0, 0, 0, 0])).status).toBe(Status.COMMAND_DISALLOWED);
    // Unknown connection handles.
    const rssi = host.command(Op.READ_RSSI, Buffer.from([0x42, 0x00]));
    expect(rssi.status).toBe(Status.UNKNOWN_CONNECTION_ID);
    expect(rssi.returnParams.readUInt16LE(1)).toBe(0x0042); // handle echoed
    const disconnect = host.command(Op.DISCONNECT, Buffer.from([0x42, 0x00, 0x13]));
    expect(disconnect).toMatchObject({ kind: 'status', status: Status.UNKNOWN_CONNECTION_ID });
    expect(host.command(Op.LE_SET_DATA_LENGTH, Buffer.from([0x42, 0, 251, 0, 0x48, 0x08])).status).toBe(Status.UNKNOWN_CONNECTION_ID);
  });

  it('validates connection parameters and disconnect reasons', () => {
    const world = createMiniWorld();
    const [central, peripheral] = world.hosts as [typeof world.hosts[0], typeof world.hosts[0]];
    const create = Buffer.alloc(25);
    create.writeUInt16LE(0x60, 0);
    create.writeUInt16LE(0x60, 2);
    create.writeUInt16LE(24, 13); // min > max
    create.writeUInt16LE(6, 15);
    create.writeUInt16LE(42, 19);
    expect(central.command(Op.LE_CREATE_CONNECTION, create)).toMatchObject({ kind: 'status', status: Status.INVALID_PARAMETERS });
    const { centralHandle, peripheralHandle } = connectPair(world, central, peripheral);
    // 0x08 is not a reason a host may give.
    expect(central.command(Op.DISCONNECT, Buffer.from([centralHandle, 0, 0x08])).status).toBe(Status.INVALID_PARAMETERS);
    const zeroIntervals = Buffer.alloc(14);
    zeroIntervals.writeUInt16LE(peripheralHandle, 0);
    expect(peripheral.command(Op.LE_CONNECTION_UPDATE, zeroIntervals).status).toBe(Status.INVALID_PARAMETERS);
    // Valid parameters: the peripheral asks the central (Connection Parameters Request),
    // whose host here leaves LE Remote Connection Parameter Request masked (default LE
    // event mask), so its controller rejects with Unsupported Remote Feature.
    const update = Buffer.alloc(14);
    update.writeUInt16LE(peripheralHandle, 0);
    update.writeUInt16LE(24, 2);
    update.writeUInt16LE(24, 4);
    update.writeUInt16LE(100, 8);
    expect(peripheral.command(Op.LE_CONNECTION_UPDATE, update).status).toBe(Status.SUCCESS);
    world.clock.advanceBy(200_000);
    expect(peripheral.leEvents(LeSubevent.CONNECTION_UPDATE_COMPLETE).map((e) => e.params[1])).toEqual([Status.UNSUPPORTED_REMOTE_FEATURE]);
    // The central updates directly.
    update.writeUInt16LE(centralHandle, 0);
    expect(central.command(Op.LE_CONNECTION_UPDATE, update).status).toBe(Status.SUCCESS);
    world.clock.advanceBy(200_000);
    for (const host of [central, peripheral]) {
      const done = host.leEvents(LeSubevent.CONNECTION_UPDATE_COMPLETE).filter((e) => e.params[1] === Status.SUCCESS);
      expect(done).toHaveLength(1);
      expect(done[0]!.params.readUInt16LE(4)).toBe(24); // 30 ms
    }
  });

  it('sends only events the host unmasked, and counts command credits', () => {
    const world = createMiniWorld();
    const [scanner, advertiser] = world.hosts as [typeof world.hosts[0], typeof world.hosts[0]];
    const adv = Buffer.alloc(15);
    adv.writeUInt16LE(0x20, 0);
    adv.writeUInt16LE(0x20, 2);
    adv[13] = 7;
    advertiser.command(Op.LE_SET_ADV_PARAMS, adv);
    advertiser.command(Op.LE_SET_ADV_ENABLE, Buffer.from([1]));
    scanner.command(Op.LE_SET_SCAN_PARAMS, Buffer.from([1, 0x10, 0, 0x10, 0, 0, 0]));
    // LE event mask without the advertising report bit.
    scanner.command(Op.LE_SET_EVENT_MASK, Buffer.from([0x01, 0, 0, 0, 0, 0, 0, 0]));
    scanner.command(Op.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
    world.clock.advanceBy(200_000);
    expect(scanner.leEvents(LeSubevent.ADVERTISING_REPORT)).toHaveLength(0);
    scanner.command(Op.LE_SET_EVENT_MASK, Buffer.from([0x1f, 0, 0, 0, 0, 0, 0, 0]));
    world.clock.advanceBy(200_000);
    const reports = scanner.leEvents(LeSubevent.ADVERTISING_REPORT);
    // ADV_IND and, with active scanning, a SCAN_RSP (even though it is empty).
    expect(reports.map((r) => r.params[2])).toEqual(expect.arrayContaining([0x00, 0x04]));
    const complete = scanner.eventsWithCode(EventCode.COMMAND_COMPLETE).at(-1)!;
    expect(complete.params[0]).toBeGreaterThanOrEqual(1);
  });

  it('injected faults: a failing command, a hardware error, a hung controller', () => {
    const { hosts } = createMiniWorld();
    const host = hosts[0]!;
    host.controller.failCommand(Op.LE_SET_SCAN_PARAMS, Status.HARDWARE_FAILURE, 1);
    expect(host.command(Op.LE_SET_SCAN_PARAMS, Buffer.from([1, 0x10, 0, 0x10, 0, 0, 0])).status).toBe(Status.HARDWARE_FAILURE);
    expect(host.command(Op.LE_SET_SCAN_PARAMS, Buffer.from([1, 0x10, 0, 0x10, 0, 0, 0])).status).toBe(Status.SUCCESS);
    host.controller.raiseHardwareError(0x2a);
    expect(host.eventsWithCode(EventCode.HARDWARE_ERROR).map((e) => e.params[0])).toEqual([0x2a]);
    host.controller.hung = true;
    expect(() => host.command(Op.RESET)).toThrow(/no Command Complete/);
  });
});

describe('btsnoop', () => {
  it('writes H4 records that parse back and summarise with ATT decoded', () => {
    const att = Buffer.from([0x0a, 0x00, 0x04, 0x00, 0x52, 0x0b, 0x00, 1, 2, 3, 4, 5, 6, 7]);
    const file = Buffer.concat([
      btsnoopHeader(),
      btsnoopRecord(commandPacket(Op.RESET), 'host-to-controller', 1_000_000n),
      btsnoopRecord(Buffer.from('040e0405030c00', 'hex'), 'controller-to-host', 1_000_150n),
      btsnoopRecord(aclPacket(1, 0b00, att), 'host-to-controller', 1_002_000n),
      btsnoopRecord(Buffer.from('04050400010008', 'hex'), 'controller-to-host', 1_500_000n),
    ]);
    expect(file.readUInt32BE(12)).toBe(1002);
    const records = readBtsnoop(file).packets;
    expect(records.map((r) => r.direction)).toEqual(['host-to-controller', 'controller-to-host', 'host-to-controller', 'controller-to-host']);
    expect(records[3]!.offsetUs).toBe(500_000);
    const lines = summarizeBtsnoop(file);
    expect(lines[0]).toContain('> CMD Reset (0x0c03)');
    expect(lines[1]).toContain('< EVT Command Complete: Reset (0x0c03) status=success');
    expect(lines[2]).toContain('ATT Write Command, Handle: 0x000b, Value: 01020304050607 (7 bytes)');
    expect(lines[3]).toContain('Disconnection Complete handle=0x0001 reason=0x08 (connection timeout)');
    expect(lines.at(-1)).toContain('ATT Write Command: 1');
  });
});
