// The conformance suite through the real host stacks: the reference lock served by bleno,
// the suite's phones on noble, over the virtual radio's HCI controllers on ptys. Every case
// must pass, the BUSY case included (a second phone controller). The lock's clock is the
// suite's (elapse is instant) and its link idle timeout is accelerated; everything else —
// scanning, connecting, MTU exchange 23…517, GATT writes and notifications — is real.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRadio, type Radio } from '../radio/radio';
import { serveLockOverBle, type BleLockServer } from '../ble/peripheral';
import { CASES, bleTarget, humanReport, referenceLock, runConformance, suiteIdentity, type LockUnderTest } from './index';

const SEED = 'ble-1';
/** Long enough that a loaded CI machine never idles a link out mid-case; short enough to wait for. */
const IDLE_MS = 10_000;

describe('conformance suite over bleno ↔ noble on the virtual radio', () => {
  let dir: string;
  let radio: Radio;
  let served: BleLockServer;
  let target: LockUnderTest;
  const id = suiteIdentity(SEED, 'lk-conf-ble');
  /** The lock's link events, printed when a case fails (why did the lock drop a link?). */
  const linkLog: string[] = [];
  const note = (what: string) => linkLog.push(`${new Date().toISOString()} ${what}`);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-conformance-'));
    radio = await startRadio({ dir, controllers: ['lock', 'phone', 'phone2'], seed: 23 });
    const { lock, clock, devicePublicKey } = referenceLock(id);
    served = await serveLockOverBle(lock, radio.controller('lock').transport, {
      advertisingIntervalMs: 20,
      link: { idleTimeoutMs: IDLE_MS },
      events: {
        onLinkExpired: (peer, why) => note(`link expired (${why}) for ${peer}`),
        onProtocolError: (e) => note(`framing violation: ${e.message}`),
        onSessionFailure: (e) => note(`session failure: ${String(e)}`),
        onBusy: (peer, holder) => note(`BUSY for ${peer} (held by ${holder})`),
        onAccept: (address, handle) => note(`accept ${address} handle ${handle}`),
        onDisconnect: (address, handle) => note(`disconnect ${address} handle ${handle}`),
      },
    });
    target = await bleTarget({
      transport: radio.controller('phone').transport,
      secondTransport: radio.controller('phone2').transport,
      lockId: id.lockId,
      devicePublicKey,
      timing: { idleTimeoutMs: IDLE_MS },
      elapse: async (ms) => clock.advance(ms),
      notes: [`reference lock on bleno, phones on noble, virtual radio; lock clock fake, link idle timeout ${IDLE_MS} ms`],
    });
  }, 120_000);

  afterAll(async () => {
    await target?.close();
    await served?.stop();
    await radio?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  // One retry: under heavy machine load the lock has dropped the link mid-case (HCI 0x13) when a
  // phone reconnected before the lock noticed the old link die — a known open problem with
  // stale links and reused connection handles, not a conformance verdict. Two failures in a
  // row still fail.
  it('passes every case', { retry: 1, timeout: 900_000 }, async () => {
    const r = await runConformance(target, id);
    const bad = r.results.filter((c) => c.status !== 'passed');
    if (bad.length > 0) process.stdout.write(`lock link events:\n${linkLog.join('\n')}\n`);
    expect(bad, `seed ${SEED}\n${humanReport(r)}`).toEqual([]);
    expect(r.results.length).toBe(CASES.length);
    // What the air did: negotiated MTUs, where the resumed transfer was cut.
    for (const c of r.results) for (const n of c.notes) process.stdout.write(`${c.id}: ${n}\n`);
  });
});
