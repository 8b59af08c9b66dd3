// `npm start` — the end-to-end story, through the real host stacks.
//
// A virtual BLE radio; an authority on a temporary SQLite file; an offline lock (Unit 4B)
// and an internet-connected lock (Lobby), each a GATT server on bleno; a resident's phone
// and a partner's phone, each a GATT client on noble. The manager removes the partner;
// the connected door refuses it within its uplink interval while the offline door still
// lets it in — until the resident's Door Sync lands there. Every step checks what it
// tells; the exit code is 0 only if each behaved as told.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { World, type WorldEvent, type WorldSessionMessage } from '../world/index';
import { TraceRecorder, renderTimeline, traceHash } from '../scenario/index';
import { decodeMessage, hash, toHex, type Message } from '../protocol/index';
import { parseDemoArgs } from './demo-command';

const args = parseDemoArgs(process.argv.slice(2));

const tty = process.stdout.isTTY;
const green = (s: string) => (tty ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s: string) => (tty ? `\x1b[31m${s}\x1b[0m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);

const outDir = resolve(args.out);
const captureDir = join(outDir, 'capture');
mkdirSync(captureDir, { recursive: true });
const transport = args.transport;
const seed = args.seed;

let failures = 0;
let stepNo = 0;
const trace = new TraceRecorder('demo: partner revoked at an offline door', Number.isFinite(Number(seed)) ? Number(seed) : 0);
let world: World | undefined;
/** Trace time: ms of world clock since the story began (0 before the world exists). */
const t = () => (world ? world.clock.nowMs() - startMs : 0);
const startMs = Date.UTC(2026, 10, 23, 14, 0, 0); // Monday 23 Nov 2026, 09:00 in New York

function setWorld(x: World): void {
  world = x;
}

function step(title: string): void {
  stepNo++;
  process.stdout.write(`\n${bold(`${stepNo}. ${title}`)}\n`);
  trace.note(t(), `${stepNo}. ${title}`);
}

function say(line: string): void {
  process.stdout.write(`   ${line}\n`);
}

function check(what: string, ok: boolean, actual: string): void {
  if (!ok) failures++;
  process.stdout.write(`   ${ok ? green('✓') : red('✗')} ${what}${ok ? '' : red(` — but ${actual}`)}\n`);
  trace.record({ t: t(), kind: 'expectation', label: what, ok, detail: { actual } });
}

/**
 * World time a phone action is given, whatever the stacks took. The radio and the host
 * stacks run in real time, the world clock stands still while they work; moving it on by
 * the measured wall time would put the machine's load into the locks' clocks (hello,
 * receipts, audit times) and into the trace. A fixed step keeps both what the seed says.
 */
const ACTION_MS = { sync: 2_000, unlock: 1_000 } as const;
/** Measured on this run, printed, never traced: real time the phone actions took. */
const wall = { actions: 0, ms: 0, retries: 0 };
/** The phone whose action is under way: session messages are between it and the lock. */
let actingPhone: string | undefined;

async function act<T>(phone: string, kind: keyof typeof ACTION_MS, fn: () => Promise<T>): Promise<T> {
  const start = Date.now();
  actingPhone = phone;
  try {
    return await fn();
  } finally {
    actingPhone = undefined;
    wall.actions++;
    wall.ms += Date.now() - start;
    world?.clock.advance(ACTION_MS[kind]);
  }
}

/** Every session message the locks handle goes into the trace: type, fields that say what it does, size, digest. */
function onSessionMessage(m: WorldSessionMessage): void {
  const phone = `phone:${actingPhone ?? 'unknown'}`;
  const lock = `lock:${m.lockId}`;
  const [from, to] = m.direction === 'to-lock' ? [phone, lock] : [lock, phone];
  let label: string;
  let ok: boolean | undefined;
  try {
    const msg = decodeMessage(m.bytes, { maxBytes: 4 * 1024 * 1024 });
    label = messageLabel(msg);
    if (msg.type === 'error') ok = false;
  } catch (e) {
    label = `undecodable (${(e as Error).message})`;
    ok = false;
  }
  trace.message(t(), from, to, label, { bytes: m.bytes.length, sha256: toHex(hash(m.bytes)) }, ok);
}

function messageLabel(m: Message): string {
  switch (m.type) {
    case 'hello':
      return `hello v${m.version}`;
    case 'delta':
    case 'snapshot':
      return m.update.type === 'delta' ? `delta v${m.update.baseVersion}→v${m.update.head.head.version}` : `snapshot v${m.update.head.head.version}`;
    case 'receipt':
      return `receipt v${m.body.version}`;
    case 'decision':
      return `decision ${m.reason}`;
    case 'error':
      return `error ${m.reason}`;
    case 'unlockRequest':
      return `unlockRequest cred ${m.credId}`;
    default:
      return m.type;
  }
}

function onWorldEvent(e: WorldEvent): void {
  const world = w();
  if (e.kind === 'sync') {
    const ev = e.event;
    const phone = `phone:${e.phone}`;
    const lock = `lock:${world.door(e.door).lockId}`;
    if (ev.phase === 'connected') trace.record({ t: t(), kind: 'connection', from: phone, to: lock, label: `connected (lock at v${ev.lockVersion})` });
    if (ev.phase === 'fetched') trace.message(t(), 'authority', phone, `updates v${ev.from}→v${ev.to}`, { bytes: ev.bytes });
    // The receipt and refusal messages themselves are traced from the lock's session.
    if (ev.phase === 'receipt') {
      trace.record({ t: t(), kind: 'version', from: lock, label: `v${ev.version}`, detail: { version: ev.version } });
    }
    if (ev.phase === 'relayed' && ev.to === 'authority') trace.message(t(), phone, 'authority', 'receipt + audit log');
    if (ev.phase === 'retry') wall.retries++;
    if (ev.phase === 'retry') trace.record({ t: t(), kind: 'fault', from: phone, label: ev.reason });
  } else if (e.kind === 'uplink') {
    const lock = `lock:${world.door(e.door).lockId}`;
    if (e.result.applied > 0) {
      trace.message(t(), 'authority', lock, `uplink: ${e.result.applied} update(s)`);
      trace.record({ t: t(), kind: 'version', from: lock, label: `v${world.door(e.door).lock.version}`, detail: { version: world.door(e.door).lock.version } });
    }
  }
}

function w(): World {
  if (!world) throw new Error('the world is not running');
  return world;
}

async function unlockAs(phone: string, door: string): Promise<{ granted: boolean; reason: string }> {
  const world = w();
  world.moveTo(phone, door);
  const r = await act(phone, 'unlock', () => world.unlock(phone, door, { passiveSync: false }));
  world.moveTo(phone, null);
  trace.record({
    t: t(),
    kind: 'decision',
    from: `lock:${world.door(door).lockId}`,
    to: `phone:${phone}`,
    label: r.reason,
    ok: r.granted,
    detail: { credId: r.credId, method: 'phone' },
  });
  return { granted: r.granted, reason: r.reason };
}

async function main(): Promise<void> {
  process.stdout.write(bold('locksync demo — a partner revoked at a door with no internet\n'));
  say(dim(`seed ${seed} · transport ${transport === 'ble' ? 'real bleno ↔ noble over the virtual BLE radio' : 'in-process sim link'} · output ${outDir}`));

  step('Start the virtual radio, the authority, two locks and two phones');
  const world = await World.create({
    seed,
    transport,
    startMs,
    doors: [{ name: 'Lobby', kind: 'communal', connected: true, uplinkIntervalSeconds: 120 }, { name: 'Unit 4B' }],
    phones: ['alice', 'fastparcel'],
    radio: { captureDir, linkPolicy: { intervalMs: 30, packetsPerEvent: 4 } },
    onEvent: (e) => onWorldEvent(e),
    onSessionMessage: (m) => onSessionMessage(m),
  });
  setWorld(world);
  const a = world.authority;
  const lobby = world.door('Lobby');
  const unit = world.door('Unit 4B');
  say(`authority on ${join(world.dir, 'authority.db')}, HTTP at ${world.url}`);
  say(`Lobby lock ${lobby.lockId} (internet-connected, polls every 120 s) · Unit 4B lock ${unit.lockId} (offline)`);
  if (world.radio) say(`radio: ${[...world.radio.controllers].map((c) => `${c.name} ${c.address}`).join(' · ')}`);

  step('The manager sets up the property');
  const key = a.createKey({ name: 'Unit 4B resident', doors: [{ doorId: lobby.doorId }, { doorId: unit.doorId, doorcodesEnabled: true }] });
  const alice = a.addUser({ name: 'Alice', role: 'resident' });
  a.assignKey(alice.id, key.id, { mayShare: true });
  const { partner } = a.authorizePartner('FastParcel');
  a.assignPartnerToDoor(partner.id, lobby.doorId);
  a.assignPartnerToDoor(partner.id, unit.doorId);
  world.enrolPhone('alice', { userId: alice.id });
  world.enrolPhone('fastparcel', { partnerId: partner.id });
  trace.record({ t: t(), kind: 'manager', from: 'authority', label: 'Key for Alice; partner FastParcel assigned to Lobby and Unit 4B', ok: true });
  say('Key "Unit 4B resident" (Lobby + Unit 4B) assigned to Alice; partner FastParcel authorized and assigned to both doors');

  step('The locks receive their tables: the Lobby over its uplink, Unit 4B by Alice’s Door Sync');
  await world.pollUplink('Lobby');
  world.moveTo('alice', 'Unit 4B');
  const install = await act('alice', 'sync', () => world.sync('alice', 'Unit 4B'));
  world.moveTo('alice', null);
  check(`Lobby is at v${a.currentVersion(lobby.lockId)}`, lobby.lock.version === a.currentVersion(lobby.lockId), `it is at v${lobby.lock.version}`);
  check(`Unit 4B is at v${install.versionAfter} and its receipt reached the authority`, install.receiptDelivered && unit.lock.version === a.currentVersion(unit.lockId), `v${unit.lock.version}`);

  step('FastParcel’s courier opens both doors');
  const p1 = await unlockAs('fastparcel', 'Lobby');
  check('Lobby lets the partner in', p1.granted, p1.reason);
  const p2 = await unlockAs('fastparcel', 'Unit 4B');
  check('Unit 4B lets the partner in', p2.granted, p2.reason);

  step('The manager removes FastParcel from both doors');
  a.unassignPartnerFromDoor(partner.id, lobby.doorId);
  a.unassignPartnerFromDoor(partner.id, unit.doorId);
  trace.record({ t: t(), kind: 'manager', from: 'authority', label: 'FastParcel unassigned from Lobby and Unit 4B', ok: true });
  say(`authority: Lobby now v${a.currentVersion(lobby.lockId)}, Unit 4B now v${a.currentVersion(unit.lockId)} — the partner’s credentials are gone from both tables`);

  step('Within its uplink interval the connected Lobby refuses the partner…');
  await world.advance(120_000);
  say(`two minutes later the Lobby has polled: it enforces v${lobby.lock.version}`);
  const p3 = await unlockAs('fastparcel', 'Lobby');
  check('Lobby refuses the partner', !p3.granted && p3.reason === 'UNKNOWN_CREDENTIAL', `${p3.reason}`);

  step('…while the offline Unit 4B still lets it in: it has not heard of the change');
  const p4 = await unlockAs('fastparcel', 'Unit 4B');
  check('Unit 4B still lets the partner in', p4.granted, p4.reason);
  const pending = a.pendingRevocations({ partnerId: partner.id });
  const honouring = a.doorsHonouringPartner(partner.id);
  for (const pr of pending) say(`pending: credential ${pr.credId} of ${pr.subject} at ${pr.doorName} — removed in v${pr.removedInVersion}, door enforces v${pr.versionInForce}`);
  check('the authority shows the revocation pending at Unit 4B only', pending.length > 0 && pending.every((p) => p.doorId === unit.doorId), JSON.stringify(pending.map((p) => p.doorName)));
  check('the authority lists Unit 4B as still honouring FastParcel', honouring.length === 1 && honouring[0]?.doorId === unit.doorId, JSON.stringify(honouring.map((h) => h.doorName)));

  step('Alice taps Sync at Unit 4B');
  world.moveTo('alice', 'Unit 4B');
  const sync = await act('alice', 'sync', () =>
    world.sync('alice', 'Unit 4B', {
      onEvent: (e) => {
        if (e.phase === 'fetched') say(`carrying v${e.from}→v${e.to} (${e.bytes} bytes, signed by the authority)`);
        if (e.phase === 'receipt') say(`the lock committed v${e.version} and signed a receipt`);
        if (e.phase === 'relayed') say(`receipt relayed to the ${e.to}`);
      },
    }),
  );
  world.moveTo('alice', null);
  const receipt = sync.receipt ? decodeMessage(sync.receipt) : undefined;
  check(`Unit 4B enforces v${a.currentVersion(unit.lockId)}`, unit.lock.version === a.currentVersion(unit.lockId), `v${unit.lock.version}`);
  check('the lock-signed receipt arrived at the authority', sync.receiptDelivered && receipt?.type === 'receipt', String(sync.receiptDelivered));
  const inForce = a.listLocks().find((l) => l.lockId === unit.lockId)?.versionInForce;
  check(`the authority records v${inForce} in force at Unit 4B; nothing pending`, inForce === a.currentVersion(unit.lockId) && a.pendingRevocations({ partnerId: partner.id }).length === 0, `in force v${inForce}`);

  step('FastParcel tries Unit 4B again');
  const p5 = await unlockAs('fastparcel', 'Unit 4B');
  check('Unit 4B refuses the partner', !p5.granted && p5.reason === 'UNKNOWN_CREDENTIAL', p5.reason);
  const p6 = await unlockAs('alice', 'Unit 4B');
  check('Alice still gets in', p6.granted, p6.reason);
}

let exitCode = 1;
try {
  await main();
  exitCode = failures === 0 ? 0 : 1;
} catch (e) {
  failures++;
  process.stdout.write(`\n${red('The demo failed:')} ${(e as Error).stack ?? String(e)}\n`);
} finally {
  const tr = trace.trace();
  const hash = traceHash(tr);
  writeFileSync(join(outDir, 'trace.json'), `${JSON.stringify(tr, null, 2)}\n`);
  const doorNames = Object.fromEntries([...(world?.doors.values() ?? [])].map((d) => [`lock:${d.lockId}`, d.name]));
  writeFileSync(join(outDir, 'timeline.html'), renderTimeline(tr, { hash, replayCommand: `npm start -- --seed ${seed}${transport === 'sim' ? ' --transport sim' : ''}`, names: doorNames }));
  await world?.close();
  process.stdout.write(`\n${bold(failures === 0 ? green('Every step behaved as told.') : red(`${failures} step(s) did not behave as told.`))}\n`);
  if (transport === 'ble') process.stdout.write(`   captures  ${captureDir}/*.btsnoop  (Wireshark; or: locksync trace show FILE)\n`);
  process.stdout.write(`   trace     ${join(outDir, 'trace.json')}  (hash ${hash.slice(0, 16)}…)\n`);
  process.stdout.write(`   timeline  ${join(outDir, 'timeline.html')}\n`);
  const replay = `npm start -- --seed ${seed}${transport === 'sim' ? ' --transport sim' : ''}`;
  process.stdout.write(`   replay    ${replay}  reproduces this trace hash: decisions, versions, every session message's bytes and their order\n`);
  process.stdout.write(
    dim(
      `             not reproduced: wall-clock time (${wall.actions} phone actions took ${wall.ms} ms here; each is given a fixed ${ACTION_MS.unlock / 1000}–${ACTION_MS.sync / 1000} s of world time)` +
        (transport === 'ble' ? ', radio and HCI timing, so the captures differ run to run' : '') +
        '\n',
    ),
  );
  if (wall.retries > 0) process.stdout.write(`   ${red('note')}      this run needed ${wall.retries} link retr${wall.retries === 1 ? 'y' : 'ies'} (timing on the real stacks); a run without has another hash\n`);
}
process.exit(exitCode);
