// Availability attacks on the lock (issue 11 item 7), through the lock's real connection
// server (ble/lock-server.ts — the code the sim link and bleno both run) and a real lock
// provisioned by a real authority. Each attack asserts the named refusal, that the flash
// is byte-identical after it, and that the next valid update is then accepted.
//
// The attacker speaks raw frames where the attack needs it (a forged resume START); honest
// phones use the project's MessageChannel, as the agent does.
import { afterEach, describe, expect, it } from 'vitest';
import { World } from '../../world';
import { SimAir } from '../../ble/sim';
import type { LockLink, LockLinkServer } from '../../ble/lock-server';
import {
  MessageChannel,
  type FramingError,
  type Message,
  currentDigest,
  currentVersion,
  makeDelta,
  decodeFrame,
  decodeMessage,
  encodeMessage,
  segmentMessage,
  fromHex,
  toHex,
} from '../../protocol/index';

const MTU = 185;
/** Short link timers so the attacks run in well under a second each; the defaults are 30 s / 120 s. */
const LINK = { idleTimeoutMs: 400, sessionLimitMs: 2_000, lingerMs: 300 };
const DEADLINE_MS = 10_000;

interface Rig {
  world: World;
  air: SimAir;
  server: LockLinkServer;
  protocolErrors: string[];
  refused: string[];
  flash(): string;
  lockVersion(): number;
  authorityVersion(): number;
  /** The update the authority has for the lock at its current version, encoded. */
  pendingUpdate(): Uint8Array;
}

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.world.close();
  rig = undefined;
});

async function makeRig(seed: string): Promise<Rig> {
  const world = await World.create({ seed, transport: 'sim', doors: [{ name: 'unit' }], phones: ['resident'] });
  const a = world.authority;
  const door = world.door('unit');
  // A change the lock has not seen: a Key with 40 residents.
  const key = a.createKey({ name: 'Unit', doors: [{ doorId: door.doorId, doorcodesEnabled: true }] });
  for (let i = 0; i < 40; i++) {
    const u = a.addUser({ name: `Resident ${i}`, role: 'resident' });
    a.assignKey(u.id, key.id);
    a.enrolDeviceWithNewKey({ userId: u.id }, `${seed}:${i}`);
  }
  const air = new SimAir(MTU);
  const protocolErrors: string[] = [];
  const refused: string[] = [];
  const server = air.addLock(door.host, {
    link: LINK,
    events: {
      onProtocolError: (e: FramingError) => protocolErrors.push(e.code),
      onMessageRefused: (e: FramingError) => refused.push(e.code),
    },
  });
  const lockVersion = (): number => currentVersion(world.door('unit').lock.durable.tableState);
  return (rig = {
    world,
    air,
    server,
    protocolErrors,
    refused,
    flash: () => toHex(world.door('unit').flash.image()),
    lockVersion,
    authorityVersion: () => a.currentVersion(door.lockId),
    pendingUpdate: () => {
      const r = a.updatesFor(door.lockId, lockVersion());
      expect(r.messages).toHaveLength(1);
      return fromHex(r.messages[0] as string);
    },
  });
}

/**
 * A phone's long-lived channel to the lock, as the agent keeps one per lock: it survives
 * links, so a reconnecting phone resumes. `route` points it at the current link.
 */
interface Phone {
  channel: MessageChannel;
  route: { write: (f: Uint8Array) => void; onMessage: (m: Uint8Array) => void };
}

function newPhone(resumeToken?: Uint8Array): Phone {
  const route = { write: (_f: Uint8Array): void => undefined, onMessage: (_m: Uint8Array): void => undefined };
  const channel = new MessageChannel({ write: (f) => route.write(f), onMessage: (m) => route.onMessage(m), mtu: MTU, ...(resumeToken ? { resumeToken } : {}) });
  return { channel, route };
}

/** One link from a phone to the lock's connection server, frames recorded both ways. */
interface Peer {
  link: LockLink;
  channel: MessageChannel;
  /** Frames the lock sent on this link. */
  framesIn: Uint8Array[];
  /** Frames the phone sent on this link. */
  framesOut: Uint8Array[];
  messages: Message[];
  /** The lock dropped this link. */
  dropped: boolean;
  next(): Promise<Message>;
  send(m: Message | Uint8Array): Promise<void>;
  /** A raw frame straight to the lock (a crafted one). */
  inject(frame: Uint8Array): void;
  /** The phone walks out of range: nothing more crosses, the lock is told the link is gone. */
  walkAway(): void;
  /** Frames the phone sends after the next `n` are lost on the air. */
  loseFramesAfter(n: number): void;
}

function connectPeer(server: LockLinkServer, name: string, phone: Phone = newPhone()): Peer {
  let read = 0;
  let inRange = true;
  let deliverable = Number.POSITIVE_INFINITY;
  const ch = phone.channel;
  const peer: Peer = {
    link: undefined as unknown as LockLink,
    channel: ch,
    framesIn: [],
    framesOut: [],
    messages: [],
    dropped: false,
    next: async () => {
      const end = Date.now() + DEADLINE_MS;
      while (peer.messages.length <= read) {
        if (Date.now() > end) throw new Error(`${name}: no message from the lock within ${DEADLINE_MS} ms`);
        await new Promise((r) => setTimeout(r, 5));
      }
      return peer.messages[read++] as Message;
    },
    send: (m) => ch.send(m instanceof Uint8Array ? m : encodeMessage(m)),
    inject: (frame) => peer.link.receiveFrame(frame),
    walkAway: () => {
      inRange = false;
      ch.linkDown();
      peer.link.disconnect();
    },
    loseFramesAfter: (n) => {
      deliverable = n;
    },
  };
  const live = (): boolean => inRange && !peer.dropped;
  const write = (f: Uint8Array): void => {
    peer.framesOut.push(f);
    if (deliverable-- <= 0) return;
    queueMicrotask(() => live() && peer.link.receiveFrame(f));
  };
  phone.route.write = write;
  phone.route.onMessage = (m) => peer.messages.push(decodeMessage(m));
  peer.link = server.connect(
    MTU,
    (f) => {
      peer.framesIn.push(f);
      queueMicrotask(() => live() && ch.receiveFrame(f));
    },
    {
      peer: name,
      drop: () => {
        peer.dropped = true;
        // The phone's channel goes down with this link, unless the phone has moved on to a
        // newer link (the lock dropping a link the phone already left touches nothing).
        if (phone.route.write === write) ch.linkDown();
        peer.link.disconnect();
      },
    },
  );
  ch.linkUp(MTU);
  return peer;
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + DEADLINE_MS;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The honest phone lands the pending update: hello, update, receipt at the new version. */
async function validUpdateLands(r: Rig, name = 'resident'): Promise<void> {
  const phone = connectPeer(r.server, name);
  expect((await phone.next()).type).toBe('hello');
  void phone.send(r.pendingUpdate());
  const receipt = await phone.next();
  expect(receipt.type).toBe('receipt');
  expect(r.lockVersion()).toBe(r.authorityVersion());
  phone.walkAway();
}

describe('availability attacks on the lock', () => {
  it('a second phone mid-session is answered BUSY and the first session goes on untouched', async () => {
    const r = await makeRig('busy');
    const victim = connectPeer(r.server, 'resident');
    expect((await victim.next()).type).toBe('hello');
    const before = r.flash();

    const mallory = connectPeer(r.server, 'mallory');
    const answer = await mallory.next();
    expect(answer).toMatchObject({ type: 'error', reason: 'BUSY' });
    await until('the BUSY link to be dropped', () => mallory.dropped);
    expect(r.server.sessionPeer).toBe('resident');
    expect(r.flash()).toBe(before);

    // The victim's session is the same one: its update lands on it.
    void victim.send(r.pendingUpdate());
    expect((await victim.next()).type).toBe('receipt');
    expect(r.lockVersion()).toBe(r.authorityVersion());
    expect(victim.dropped).toBe(false);
  });

  it('the holding phone back from a new private address (same resume token) takes its session over; another phone with a token is still BUSY', async () => {
    const r = await makeRig('busy-rpa');
    const token = new Uint8Array(8).fill(7);
    const phone = newPhone(token);
    const first = connectPeer(r.server, 'rpa-1', phone);
    expect((await first.next()).type).toBe('hello');
    // Another phone that also sends a token waits for its HELLO, then is answered BUSY.
    const mallory = connectPeer(r.server, 'mallory', newPhone(new Uint8Array(8).fill(9)));
    expect(await mallory.next()).toMatchObject({ type: 'error', reason: 'BUSY' });
    await until('the BUSY link to be dropped', () => mallory.dropped);
    expect(r.server.sessionPeer).toBe('rpa-1');
    // The first link dies unnoticed (walked out of range, supervision timeout not yet fired);
    // the phone comes back from another address: no BUSY, the session is its own again.
    first.channel.linkDown();
    const again = connectPeer(r.server, 'rpa-2', phone);
    expect((await again.next()).type).toBe('hello');
    expect(first.dropped).toBe(true);
    expect(r.server.sessionPeer).toBe('rpa-2');
    void again.send(r.pendingUpdate());
    expect((await again.next()).type).toBe('receipt');
    expect(r.lockVersion()).toBe(r.authorityVersion());
  });

  it('a phone that connects and stays silent is told SESSION_EXPIRED and dropped at the idle timeout', async () => {
    const r = await makeRig('idle');
    const before = r.flash();
    const squatter = connectPeer(r.server, 'mallory');
    expect((await squatter.next()).type).toBe('hello');
    expect(await squatter.next()).toMatchObject({ type: 'error', reason: 'SESSION_EXPIRED' });
    await until('the idle link to be dropped', () => squatter.dropped);
    expect(r.server.connected).toBe(false);
    expect(r.flash()).toBe(before);
    await validUpdateLands(r);
  });

  it('a phone that keeps talking cannot hold the link past the session limit', async () => {
    const r = await makeRig('limit');
    const before = r.flash();
    const squatter = connectPeer(r.server, 'mallory');
    expect((await squatter.next()).type).toBe('hello');
    const chatter = setInterval(() => void squatter.send({ type: 'receiptRequest' }).catch(() => undefined), 100);
    try {
      let m: Message;
      do m = await squatter.next();
      while (m.type === 'receipt');
      expect(m).toMatchObject({ type: 'error', reason: 'SESSION_EXPIRED' });
      await until('the link to be dropped at the session limit', () => squatter.dropped);
    } finally {
      clearInterval(chatter);
    }
    expect(r.flash()).toBe(before);
    await validUpdateLands(r);
  });

  it("a third party cannot see or complete a victim's dropped transfer, even from the victim's address; the victim resumes it from a new one", async () => {
    const r = await makeRig('hijack');
    const update = r.pendingUpdate();
    expect(update.length).toBeGreaterThan(3 * MTU);
    const before = r.flash();

    // The victim (a phone with its resume token, SPEC §13.2) starts the update and walks
    // out of range after a few frames.
    const token = Uint8Array.from([0x51, 0x3c, 0x9a, 0x07, 0xee, 0x12, 0x48, 0xb5]);
    const victimPhone = newPhone(token);
    const victim = connectPeer(r.server, 'resident', victimPhone);
    expect((await victim.next()).type).toBe('hello');
    victim.loseFramesAfter(3);
    void victim.send(update).catch(() => undefined);
    await until('the lock to hold part of the update', () => r.server.heldBytesForToken(token) > 0 && victim.framesOut.length > 3);
    await new Promise((resolve) => setTimeout(resolve, 20));
    victim.walkAway();
    const held = r.server.heldBytesForToken(token);
    expect(held).toBeGreaterThan(0);
    const start = decodeFrame(victim.framesOut.find((f) => f[0] === 0x80) as Uint8Array);
    if (start.type !== 'start') throw new Error('no START frame');

    // Mallory, who overheard the START, connects from the victim's own address (addresses
    // are public and spoofable): without the token her HELLO from the lock shows nothing held…
    const mallory = connectPeer(r.server, 'resident');
    await until("the lock's HELLO to Mallory", () => mallory.framesIn.length > 0);
    const hello = decodeFrame(mallory.framesIn[0] as Uint8Array);
    expect(hello.type).toBe('hello');
    expect(hello.type === 'hello' ? hello.state.partial : 'not a hello').toBeUndefined();
    // …and a forged resume of the victim's message is refused: RESUME_MISMATCH drops her.
    const garbage = new Uint8Array(start.total).fill(0x5a);
    mallory.inject(segmentMessage(garbage, MTU, { messageId: start.messageId, offset: held })[0] as Uint8Array);
    expect(r.protocolErrors).toContain('RESUME_MISMATCH');
    await until('the forger to be dropped', () => mallory.dropped);
    expect(r.server.heldBytesForToken(token)).toBe(held);
    expect(r.flash()).toBe(before);

    // The victim comes back with the same channel from a rotated private address and
    // resumes from the bytes held.
    const back = connectPeer(r.server, 'resident-rotated', victimPhone);
    expect((await back.next()).type).toBe('hello');
    expect((await back.next()).type).toBe('receipt');
    expect(victimPhone.channel.stats.resumedBytes).toBe(held);
    expect(r.lockVersion()).toBe(r.authorityVersion());
  });

  it('a phone whose HELLO carries no resume token keeps its partial under its address, as before', async () => {
    const r = await makeRig('no-token');
    const update = r.pendingUpdate();
    const phone = newPhone();
    const first = connectPeer(r.server, 'resident', phone);
    expect((await first.next()).type).toBe('hello');
    first.loseFramesAfter(3);
    void first.send(update).catch(() => undefined);
    await until('the lock to hold part of the update', () => r.server.heldBytesFor('resident') > 0 && first.framesOut.length > 3);
    await new Promise((resolve) => setTimeout(resolve, 20));
    first.walkAway();
    const held = r.server.heldBytesFor('resident');
    const back = connectPeer(r.server, 'resident', phone);
    expect((await back.next()).type).toBe('hello');
    expect((await back.next()).type).toBe('receipt');
    expect(phone.channel.stats.resumedBytes).toBe(held);
  });

  it('a message over the size limit is answered ABORT MESSAGE_TOO_LARGE and the link stays up', async () => {
    const r = await makeRig('too-large');
    const before = r.flash();
    const phone = connectPeer(r.server, 'resident');
    expect((await phone.next()).type).toBe('hello');
    const oversize = segmentMessage(new Uint8Array(1), MTU, { messageId: 9 })[0] as Uint8Array;
    // Rewrite the START's total to 2 MiB (over the lock's 1 MiB framing limit): a crafted frame.
    const start = Uint8Array.from([0x80, 0, 9, 0, 0x80, 0x80, 0x80, 0x01, 0x00, ...oversize.subarray(6)]);
    expect(decodeFrame(start)).toMatchObject({ type: 'start', total: 2 * 1024 * 1024 });
    phone.inject(start);
    await until('the ABORT', () => phone.framesIn.some((f) => f[0] === 0x83));
    const abort = decodeFrame(phone.framesIn.find((f) => f[0] === 0x83) as Uint8Array);
    expect(abort).toMatchObject({ type: 'abort', messageId: 9, reason: 8 }); // 8 = MESSAGE_TOO_LARGE
    expect(r.refused).toEqual(['MESSAGE_TOO_LARGE']);
    expect(r.protocolErrors).toEqual([]);
    expect(phone.dropped).toBe(false);
    expect(r.flash()).toBe(before);
    // Same link, same session: the valid update lands.
    void phone.send(r.pendingUpdate());
    expect((await phone.next()).type).toBe('receipt');
    expect(r.lockVersion()).toBe(r.authorityVersion());
  });

  it('20,000 removeKey ops under a genuine head are refused DIGEST_MISMATCH, flash unchanged', async () => {
    const r = await makeRig('removekey');
    const before = r.flash();
    const genuine = decodeMessage(r.pendingUpdate());
    if (genuine.type !== 'delta' && genuine.type !== 'snapshot') throw new Error(`unexpected ${genuine.type}`);
    // The genuine signed head of the next version, over ops that do not produce it.
    const ts = r.world.door('unit').lock.durable.tableState;
    const ops = Array.from({ length: 20_000 }, (_, i) => ({ op: 'removeKey' as const, keyId: 1_000_000 + i }));
    const update = makeDelta({ base: { version: currentVersion(ts), digest: currentDigest(ts) }, ops, head: genuine.update.head, certs: genuine.update.certs });
    const forged = encodeMessage({ type: 'delta', update });
    const phone = connectPeer(r.server, 'courier');
    expect((await phone.next()).type).toBe('hello');
    void phone.send(forged);
    expect(await phone.next()).toMatchObject({ type: 'error', reason: 'DIGEST_MISMATCH' });
    expect(r.flash()).toBe(before);
    phone.walkAway();
    await validUpdateLands(r);
  });
});
