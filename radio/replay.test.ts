// `locksync replay`: failing Door Syncs captured by the project's own radio (real bleno ↔
// noble over the virtual radio, btsnoop written by the phone's controller) are replayed
// against a simulated lock booted from the lock's state as it was at the captured hello.
// Three failures — a link dropped mid-transfer, a refused update, a lost receipt — and the
// first of them again in Android's snoop-log layout (and its filtered mode, which cannot be
// replayed and says so). A lock whose firmware answers differently is a finding.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../world/index';
import { decodeMessage, toHex } from '../protocol/index';
import { findExchange, readLockState, replayExchange, reportLines, scenarioFor } from './replay';
import { loadScenario } from '../scenario/load';
import { runScenario } from '../scenario/runner';
import { expectFailure, locksync } from '../test/failure-paths/harness';

const BTSNOOP_EPOCH_OFFSET_US = 0x00dcddb30f2f8000n;

/** Writes a lock state directory (what `locksync lock provision --state` makes) from a world door's flash now. */
function saveLockState(world: World, door: string, dir: string): string {
  const d = world.door(door);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'flash.img'), d.flash.image());
  fs.writeFileSync(path.join(dir, 'device.json'), `${JSON.stringify({ lockId: d.lockId, devicePublicKey: toHex(d.devicePublicKey), geometry: d.flash.geometry }, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'rtc.json'), `${JSON.stringify({ rtcMs: d.lock.rtc.nowMs(), hostMs: Date.now(), trusted: d.lock.rtc.trusted, driftPpm: 0 }, null, 2)}\n`);
  return dir;
}

/**
 * Rewrites a radio capture as Android's Bluetooth stack writes btsnoop_hci.log
 * (packages/modules/Bluetooth, btsnoop_write_packet): every record is re-derived from the
 * H4 packet alone — original length from the HCI header (type byte included), flags 2 for
 * a command, 3 for an event, is_received for ACL/SCO/ISO, cumulative drops 0 — and stamped
 * with the phone's CLOCK_REALTIME (here: the capture moved to `phoneEpochUs`). In
 * `filtered` mode ACL packets on channels the stack does not whitelist (ATT among them)
 * keep only the 9-byte H4+ACL+L2CAP header, with the original length unchanged.
 */
function asAndroidSnoopLog(radioCapture: Buffer, phoneEpochUs: bigint, mode: 'full' | 'filtered'): Buffer {
  const out: Buffer[] = [Buffer.from('btsnoop\0\0\0\0\x01\0\0\x03\xea', 'latin1')];
  let first: bigint | undefined;
  for (let o = 16; o < radioCapture.length; ) {
    const included = radioCapture.readUInt32BE(o + 4);
    const flagsIn = radioCapture.readUInt32BE(o + 8);
    const ts = radioCapture.readBigInt64BE(o + 16);
    const packet = radioCapture.subarray(o + 24, o + 24 + included);
    o += 24 + included;
    first ??= ts;
    const type = packet[0]!;
    const received = (flagsIn & 1) === 1;
    let length: number;
    let flags: number;
    if (type === 0x01) [length, flags] = [packet[3]! + 4, 2];
    else if (type === 0x04) [length, flags] = [packet[2]! + 3, 3];
    else if (type === 0x02) [length, flags] = [packet.readUInt16LE(3) + 5, received ? 1 : 0];
    else [length, flags] = [packet.length, received ? 1 : 0];
    const cid = type === 0x02 && packet.length >= 9 ? packet.readUInt16LE(7) : -1;
    const captured = mode === 'filtered' && type === 0x02 && cid !== 0x0001 && cid !== 0x0005 && (packet.readUInt16LE(1) & 0x3000) !== 0x1000 ? 9 : length;
    const header = Buffer.alloc(24);
    header.writeUInt32BE(length, 0);
    header.writeUInt32BE(captured, 4);
    header.writeUInt32BE(flags, 8);
    header.writeUInt32BE(0, 12);
    header.writeBigInt64BE(phoneEpochUs + (ts - first) + BTSNOOP_EPOCH_OFFSET_US, 16);
    out.push(header, packet.subarray(0, captured));
  }
  return Buffer.concat(out);
}

/** The same records in the btmon (2001) or H1 (1001) datalink: the H4 type byte moves into the flags. */
function asDatalink(radioCapture: Buffer, datalink: 1001 | 2001): Buffer {
  const header = Buffer.from(radioCapture.subarray(0, 16));
  header.writeUInt32BE(datalink, 12);
  const out: Buffer[] = [header];
  for (let o = 16; o < radioCapture.length; ) {
    const included = radioCapture.readUInt32BE(o + 4);
    const received = (radioCapture.readUInt32BE(o + 8) & 1) === 1;
    const packet = radioCapture.subarray(o + 24, o + 24 + included);
    const type = packet[0]!;
    const rec = Buffer.from(radioCapture.subarray(o, o + 24));
    o += 24 + included;
    rec.writeUInt32BE(included - 1, 0);
    rec.writeUInt32BE(included - 1, 4);
    if (datalink === 2001) rec.writeUInt32BE(type === 0x01 ? 2 : type === 0x04 ? 3 : received ? 5 : 4, 8); // adapter 0
    else rec.writeUInt32BE((received ? 1 : 0) | (type === 0x01 || type === 0x04 ? 2 : 0), 8);
    out.push(rec, packet.subarray(1));
  }
  return Buffer.concat(out);
}

const RESIDENTS = 120; // a revocation's delta then spans several acknowledgement windows

describe('locksync replay: failing syncs captured on the real stacks, replayed against the simulator', () => {
  let world: World;
  let tmp: string;
  const captures = () => path.join(tmp, 'captures');
  const cases = new Map<string, { capture: string; state: string }>();

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-replay-'));
    world = await World.create({
      seed: 'replay',
      transport: 'ble',
      doors: [{ name: 'unit-4b' }],
      phones: ['installer', 'alice', 'courier', 'bob'],
      radio: { captureDir: captures(), linkPolicy: { intervalMs: 7.5, phy: '2M' } },
    });
    const a = world.authority;
    const doorId = world.door('unit-4b').doorId;
    const key = a.createKey({ name: 'Unit 4B', doors: [{ doorId, doorcodesEnabled: true }] });
    const alice = a.addUser({ name: 'Alice', role: 'resident' });
    a.assignKey(alice.id, key.id, { mayShare: true });
    const { partner } = a.authorizePartner('FastParcel');
    a.assignPartnerToDoor(partner.id, doorId);
    for (const p of ['installer', 'alice', 'courier', 'bob']) world.enrolPhone(p, { userId: alice.id });

    // The installer's sync puts the table on the lock; the courier keeps the update it carried.
    const carried: Uint8Array[] = [];
    world.moveTo('installer', 'unit-4b');
    await world.sync('installer', 'unit-4b', { courierFilter: (m) => (carried.push(...m), m) });
    world.moveTo('installer', null);

    // 1. A link dropped mid-transfer (the phone reconnects and resumes): residents move in
    // and the partner is revoked, one update of several acknowledgement windows.
    for (let i = 0; i < RESIDENTS; i++) {
      const u = a.addUser({ name: `Resident ${i}` });
      a.assignKey(u.id, key.id);
      a.enrolDeviceWithNewKey({ userId: u.id }, `replay:resident:${i}`);
    }
    a.unassignPartnerFromDoor(partner.id, doorId);
    cases.set('link dropped mid-transfer', { capture: path.join(captures(), 'phone-alice.btsnoop'), state: saveLockState(world, 'unit-4b', path.join(tmp, 'state-drop')) });
    world.moveTo('alice', 'unit-4b');
    let dropped = false;
    await world.sync('alice', 'unit-4b', {
      attempts: 4,
      backoffMs: 500,
      onEvent: (e) => {
        if (!dropped && e.phase === 'transfer' && e.acked > 0 && e.acked < e.total) {
          dropped = true;
          world.radio?.faults.dropLink({ controller: world.phone('alice').controller as string });
        }
      },
    });
    expect(dropped).toBe(true);
    world.moveTo('alice', null);

    // 2. A refused update: a courier replays the installer's old update before the current chain.
    const moveIn = (name: string): void => {
      const u = a.addUser({ name });
      a.assignKey(u.id, key.id);
      a.enrolDeviceWithNewKey({ userId: u.id }, `replay:${name}`);
    };
    moveIn('Carol');
    cases.set('refused update', { capture: path.join(captures(), 'phone-courier.btsnoop'), state: saveLockState(world, 'unit-4b', path.join(tmp, 'state-refused')) });
    world.moveTo('courier', 'unit-4b');
    await expect(world.sync('courier', 'unit-4b', { attempts: 1, courierFilter: (m) => [...carried, ...m] })).rejects.toThrow(/refused/);
    world.moveTo('courier', null);

    // 3. A lost receipt: the lock commits, and the link goes silent before its receipt leaves.
    moveIn('Dave');
    cases.set('lost receipt', { capture: path.join(captures(), 'phone-bob.btsnoop'), state: saveLockState(world, 'unit-4b', path.join(tmp, 'state-receipt')) });
    const host = world.door('unit-4b').host;
    const open = host.openSession.bind(host);
    let silenced = false;
    host.openSession = () => {
      const s = open();
      return {
        hello: () => s.hello(),
        close: () => s.close(),
        handle: async (m: Uint8Array) => {
          const answers = await s.handle(m);
          // A receipt alone, or inside the batchReply of a pipelined sync (SPEC §6.5).
          const carriesReceipt = (x: Uint8Array): boolean => {
            const d = decodeMessage(x);
            return d.type === 'receipt' || (d.type === 'batchReply' && d.replies.some(carriesReceipt));
          };
          if (!silenced && answers.some(carriesReceipt)) {
            silenced = true;
            world.radio?.faults.dropLink({ controller: world.door('unit-4b').controller as string, mode: 'silent' });
          }
          return answers;
        },
      };
    };
    world.moveTo('bob', 'unit-4b');
    const r = await world.sync('bob', 'unit-4b', { attempts: 4, backoffMs: 500 });
    expect(silenced).toBe(true);
    expect(r.attempts).toBeGreaterThan(1);
    world.moveTo('bob', null);
    host.openSession = open;
    await world.close();
  }, 240_000);

  afterAll(async () => {
    await world?.close().catch(() => undefined);
    if (tmp && !process.env.LOCKSYNC_KEEP_REPLAY) fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const name of ['link dropped mid-transfer', 'refused update', 'lost receipt']) {
    it(`reproduces a ${name}`, () => {
      const c = cases.get(name)!;
      const ex = findExchange(fs.readFileSync(c.capture));
      expect(ex.datalink).toBe(1002);
      expect(ex.handles.rx).toBeGreaterThan(0);
      expect(ex.handles.tx).toBeGreaterThan(0);
      const report = replayExchange(ex, readLockState(c.state));
      const lines = reportLines(c.capture, report);
      expect(report.disagreement, lines.join('\n')).toBeUndefined();
      expect(report.verdict).toBe('reproduced');
      if (name === 'link dropped mid-transfer') {
        expect(report.connections.length).toBeGreaterThan(1);
        expect(report.failures.some((f) => f.startsWith('link dropped mid-transfer'))).toBe(true);
        // The resumed update landed in the later connection: the simulator signed a receipt for it too.
        expect(report.steps.some((s) => s.connection > 0 && s.answers.some((a) => a.simulated?.decides.startsWith('receipt')))).toBe(true);
      }
      if (name === 'refused update') expect(report.failures.some((f) => f.startsWith('the lock refused: error'))).toBe(true);
      if (name === 'lost receipt') {
        expect(report.failures.some((f) => f.startsWith('answer lost') && f.includes('receipt'))).toBe(true);
        expect(report.connections.length).toBeGreaterThan(1);
      }
    });
  }

  it('writes scenarios that reproduce the captured link drop and refusal from a seed (sim), and says when it cannot', async () => {
    for (const [name, expected] of [
      ['link dropped mid-transfer', /link_lost/],
      ['refused update', /refused:[A-Z_]+/],
    ] as const) {
      const c = cases.get(name)!;
      const state = readLockState(c.state);
      const report = replayExchange(findExchange(fs.readFileSync(c.capture)), state);
      const text = scenarioFor(report, state.lockId, 7);
      expect(text, name).toBeDefined();
      const file = path.join(tmp, `${name.replace(/\W+/g, '-')}.yaml`);
      fs.writeFileSync(file, text as string);
      const run = await runScenario(loadScenario(file), { seed: 7, outDir: path.join(tmp, `run-${path.basename(file, '.yaml')}`) });
      expect(run.expectations.filter((x) => !x.ok), name).toEqual([]);
      expect(run.passed).toBe(true);
      expect(run.expectations.some((x) => expected.test(String(x.actual)))).toBe(true);
      if (name === 'refused update') expect(text).toContain(`refused:${report.refusal}`);
    }
    const lost = cases.get('lost receipt')!;
    const lostState = readLockState(lost.state);
    expect(scenarioFor(replayExchange(findExchange(fs.readFileSync(lost.capture)), lostState), lostState.lockId, 7)).toBeUndefined();
  }, 120_000);

  it('reports a lock state that is not the captured lock\'s as a finding, printing both answers', () => {
    const c = cases.get('refused update')!;
    // The state before the first sync's revocation: the hello the capture shows is a version later.
    const report = replayExchange(findExchange(fs.readFileSync(c.capture)), readLockState(cases.get('link dropped mid-transfer')!.state));
    expect(report.verdict).toBe('disagrees');
    const lines = reportLines(c.capture, report);
    expect(lines.join('\n')).toMatch(/FINDING: .*hello of connection 1[\s\S]*captured lock: hello .* v\d+[\s\S]*simulator {4}: hello .* v\d+/);
  });

  it('replays the same sync from an Android btsnoop_hci.log (H4, Android\'s header conventions) and refuses a filtered one', async () => {
    const c = cases.get('link dropped mid-transfer')!;
    const radio = fs.readFileSync(c.capture);
    const android = asAndroidSnoopLog(radio, BigInt(Date.UTC(2025, 2, 10, 14, 42)) * 1000n, 'full');
    const androidPath = path.join(tmp, 'btsnoop_hci.log');
    fs.writeFileSync(androidPath, android);
    const report = replayExchange(findExchange(android), readLockState(c.state));
    expect(report.verdict).toBe('reproduced');
    expect(report.steps.length).toBe(replayExchange(findExchange(radio), readLockState(c.state)).steps.length);

    // Through the CLI, as a separate process.
    const ok = await locksync(['replay', androidPath, '--state', c.state], { deadlineMs: 60_000 });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('REPRODUCED');
    expect(ok.stdout).toContain('HCI UART (H4)');

    const filteredPath = path.join(tmp, 'btsnoop_hci.log.filtered');
    fs.writeFileSync(filteredPath, asAndroidSnoopLog(radio, 0n, 'filtered'));
    const bad = await locksync(['replay', filteredPath, '--state', c.state], { deadlineMs: 60_000 });
    expectFailure(bad, 'BAD_STATE', /filtered snoop log/);
  }, 120_000);

  it('replays the same captures in the btmon (2001) and H1 (1001) datalinks', () => {
    for (const name of ['link dropped mid-transfer', 'refused update', 'lost receipt']) {
      const c = cases.get(name)!;
      const radio = fs.readFileSync(c.capture);
      const h4 = replayExchange(findExchange(radio), readLockState(c.state));
      for (const datalink of [2001, 1001] as const) {
        const ex = findExchange(asDatalink(radio, datalink));
        expect(ex.datalink).toBe(datalink);
        const r = replayExchange(ex, readLockState(c.state));
        expect(r.verdict, `${name} as ${datalink}`).toBe('reproduced');
        expect(r.failures).toEqual(h4.failures);
        expect(r.steps.length).toBe(h4.steps.length);
      }
    }
  });

  it('fails with one line and the documented code on bad input', async () => {
    const c = cases.get('refused update')!;
    expectFailure(await locksync(['replay', c.capture], { deadlineMs: 30_000 }), 'USAGE', /--state/);
    expectFailure(await locksync(['replay', path.join(tmp, 'nope.btsnoop'), '--state', c.state], { deadlineMs: 30_000 }), 'BAD_STATE', /no such file/);
    expectFailure(await locksync(['replay', c.capture, '--state', tmp], { deadlineMs: 30_000 }), 'BAD_STATE', /not a lock state directory/);
  }, 120_000);
});
