// Phones use resolvable private addresses and rotate them (Android and iOS about every
// 15 minutes): the lock must not depend on a phone's address. Through the lock's real
// connection server (ble/lock-server.ts, the code bleno and the sim link both run), whose
// peer identity is the address the link layer reports — but held partials go by the resume
// token in the phone's framing HELLO (SPEC §13.2, §13.3), which the address does not decide.
import { afterEach, describe, expect, it } from 'vitest';
import { World } from './world';
import { SimAir } from '../ble/sim';
import type { LockLink, LockLinkServer } from '../ble/lock-server';
import { MessageChannel, currentVersion, decodeMessage, encodeMessage, fromHex, type Message } from '../protocol/index';

const MTU = 185;
const DEADLINE_MS = 10_000;
let world: World | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Two addresses one phone used 15 minutes apart (random, resolvable: top bits 01). */
const RPA_BEFORE = '4a:1b:2c:3d:4e:5f';
const RPA_AFTER = '71:9e:8d:7c:6b:5a';

async function rig(): Promise<{ server: LockLinkServer; update: () => Uint8Array; lockVersion: () => number; authorityVersion: () => number; heldFor: (peer: string) => number }> {
  world = await World.create({ seed: 'rotation', transport: 'sim', doors: [{ name: 'unit' }], phones: ['resident'] });
  const a = world.authority;
  const door = world.door('unit');
  const key = a.createKey({ name: 'Unit', doors: [{ doorId: door.doorId, doorcodesEnabled: true }] });
  for (let i = 0; i < 40; i++) a.assignKey(a.addUser({ name: `Resident ${i}`, role: 'resident' }).id, key.id);
  const air = new SimAir(MTU);
  const server = air.addLock(door.host, { link: { idleTimeoutMs: 400, sessionLimitMs: 2_000, lingerMs: 300 } });
  const w = world;
  const lockVersion = (): number => currentVersion(w.door('unit').lock.durable.tableState);
  return {
    server,
    lockVersion,
    authorityVersion: () => a.currentVersion(door.lockId),
    update: () => fromHex(a.updatesFor(door.lockId, lockVersion()).messages[0] as string),
    heldFor: (peer) => server.heldBytesFor(peer),
  };
}

/** The phone's long-lived channel (the agent keeps one per lock) on a link from `address`. */
function link(server: LockLinkServer, address: string, channel: MessageChannel, route: { write: (f: Uint8Array) => void; onMessage: (m: Uint8Array) => void }, loseAfter = Infinity) {
  const messages: Message[] = [];
  let up = true;
  let deliverable = loseAfter;
  let l!: LockLink;
  route.write = (f) => {
    if (deliverable-- <= 0) return;
    queueMicrotask(() => up && l.receiveFrame(f));
  };
  route.onMessage = (m) => messages.push(decodeMessage(m));
  l = server.connect(MTU, (f) => queueMicrotask(() => up && channel.receiveFrame(f)), { peer: address, drop: () => ((up = false), channel.linkDown(), l.disconnect()) });
  channel.linkUp(MTU);
  let read = 0;
  return {
    next: async (): Promise<Message> => {
      const end = Date.now() + DEADLINE_MS;
      while (messages.length <= read) {
        if (Date.now() > end) throw new Error(`no message from the lock within ${DEADLINE_MS} ms (link from ${address})`);
        await new Promise((r) => setTimeout(r, 5));
      }
      return messages[read++] as Message;
    },
    walkAway: () => {
      up = false;
      channel.linkDown();
      l.disconnect();
    },
  };
}

describe('a phone\'s rotating private address', () => {
  it('a transfer cut on one address resumes on a link from the next: the lock keys it by the resume token in the phone\'s HELLO', async () => {
    const r = await rig();
    const route = { write: (_f: Uint8Array): void => undefined, onMessage: (_m: Uint8Array): void => undefined };
    const resumeToken = Uint8Array.from([0x0d, 0x15, 0xea, 0x5e, 0xfe, 0xed, 0xfa, 0xce]);
    const channel = new MessageChannel({ write: (f) => route.write(f), onMessage: (m) => route.onMessage(m), mtu: MTU, resumeToken });
    const update = r.update();
    expect(update.length).toBeGreaterThan(3 * MTU);

    // The transfer starts from the phone's first address and is cut after a few frames.
    const first = link(r.server, RPA_BEFORE, channel, route, 3);
    expect((await first.next()).type).toBe('hello');
    void channel.send(update).catch(() => undefined);
    const end = Date.now() + DEADLINE_MS;
    while (r.heldFor(RPA_BEFORE) === 0 && Date.now() < end) await new Promise((res) => setTimeout(res, 5));
    const held = r.heldFor(RPA_BEFORE);
    expect(held).toBeGreaterThan(0);
    first.walkAway();

    // Fifteen minutes later the phone comes back from a new address: its HELLO carries the
    // same resume token, so the lock offers what it holds and the phone resumes from there.
    const second = link(r.server, RPA_AFTER, channel, route);
    expect((await second.next()).type).toBe('hello');
    expect((await second.next()).type).toBe('receipt');
    expect(r.lockVersion()).toBe(r.authorityVersion());
    expect(channel.stats.resumedBytes).toBe(held);
    second.walkAway();
  });
});
