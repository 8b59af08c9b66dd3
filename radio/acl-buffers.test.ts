// ACL buffer accounting across a link that dies with packets queued (regression, issue 16):
// on Disconnection Complete the host takes back every buffer it had in use on that handle
// (Core Vol 4 Part E §4.3), so the controller must free them too. It used to clear the
// link's queue before counting what it held, kept those buffers for ever, and dropped the
// host's next packets as overruns — a lost notification mid-message (BAD_SEQUENCE in the
// framing) on the next connection after a silent link loss.
import { describe, expect, it } from 'vitest';
import { EventCode, LeSubevent } from './hci';
import { connectPair, createMiniWorld, startConnecting, type MiniHost } from './mini-host';

/** One ATT Handle Value Notification of `n` bytes in an L2CAP PDU (ATT CID). */
function notification(n: number, fill: number): Buffer {
  const pdu = Buffer.alloc(4 + 3 + n, fill);
  pdu.writeUInt16LE(3 + n, 0);
  pdu.writeUInt16LE(0x0004, 2);
  pdu[4] = 0x1b;
  return pdu;
}

function disconnections(host: MiniHost): number {
  return host.eventsWithCode(EventCode.DISCONNECTION_COMPLETE).length;
}

describe('ACL buffers after a silent link loss', () => {
  it('the controller frees the buffers of packets a dead link never sent: the next link gets all of them', () => {
    const world = createMiniWorld({ seed: 16, aclBufferCount: 12 });
    const [central, peripheral] = world.hosts as [MiniHost, MiniHost];
    const first = connectPair(world, central, peripheral);
    const link = [...world.air.links][0]!;
    // The link goes silent with the peripheral's buffers full of notifications.
    link.faults.silent = true;
    for (let i = 0; i < 12; i++) peripheral.sendAcl(first.peripheralHandle, 0b00, notification(20, i));
    for (let i = 0; i < 400 && disconnections(peripheral) === 0; i++) world.clock.advanceBy(5000);
    expect(disconnections(peripheral), 'the peripheral lost the link by supervision timeout').toBe(1);
    expect(peripheral.controller.stats.bufferOverruns).toBe(0);

    // A new connection: the host may use every buffer again (it reclaimed the dead handle's).
    const before = central.acl.length;
    startConnecting(central, peripheral);
    const complete = () => central.leEvents(LeSubevent.CONNECTION_COMPLETE);
    for (let i = 0; i < 200 && complete().length < 2; i++) world.clock.advanceBy(5000);
    expect(complete()).toHaveLength(2);
    const second = { centralHandle: complete()[1]!.params.readUInt16LE(2), peripheralHandle: [...peripheral.controller.connections.keys()][0]! };
    for (let i = 0; i < 12; i++) peripheral.sendAcl(second.peripheralHandle, 0b00, notification(20, 0x40 + i));
    for (let i = 0; i < 200 && central.acl.length - before < 12; i++) world.clock.advanceBy(5000);
    expect(peripheral.controller.stats.bufferOverruns, 'packets dropped as buffer overruns').toBe(0);
    expect(peripheral.eventsWithCode(EventCode.DATA_BUFFER_OVERFLOW)).toHaveLength(0);
    const delivered = central.acl.slice(before).filter((p) => p.handle === second.centralHandle);
    expect(delivered.map((p) => p.data[7])).toEqual(Array.from({ length: 12 }, (_, i) => 0x40 + i));
  });
});
