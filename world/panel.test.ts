// The live panel in a real headless Chromium (the system's, driven by puppeteer-core):
// typing a right and a wrong code on the keypad, a revocation made pending by the manager
// and landing after a sync pressed in the page — every change pushed over server-sent
// events. Skipped with a notice where no Chromium exists (as the timeline's check is).
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoWorld, Panel } from './panel';
import type { World } from './world';

function findChromium(): string | undefined {
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      /* not on PATH */
    }
  }
  return undefined;
}

const chromium = findChromium();
if (chromium === undefined) console.warn('NOTICE: no chromium on this machine (/usr/bin/chromium, chromium, chromium-browser): skipping the live panel test');

describe.skipIf(chromium === undefined)('locksync panel in headless Chromium', () => {
  let world: World;
  let panel: Panel;
  let url: string;
  let told: Record<string, string>;

  beforeAll(async () => {
    const demo = await demoWorld('panel-test');
    world = demo.world;
    told = demo.told;
    panel = new Panel(world, told);
    url = await panel.listen(0);
  }, 60_000);

  afterAll(async () => {
    await panel?.close();
    await world?.close();
  });

  it('keypad right and wrong, a revocation pending then landed by a sync pressed in the page', async () => {
    const puppeteer = (await import('puppeteer-core')).default;
    const browser = await puppeteer.launch({ executablePath: chromium as string, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1300, height: 1400 });
      await page.goto(url);
      const unit = world.door('Unit 4B').lockId;
      const sel = `#lock-${unit}`;
      await page.waitForSelector(`${sel} .keypad`);
      // Page-side code goes as strings: functions would be serialised with the test
      // transform's helpers in them, which do not exist in the page.
      const textOf = (s: string) => page.evaluate(`document.querySelector(${JSON.stringify(s)})?.textContent ?? ''`) as Promise<string>;
      const type = async (code: string) => {
        for (const d of code) await page.click(`${sel} button[data-key="${d}"]`);
        await page.click(`${sel} button[data-enter]`);
      };
      const resultIs = (re: RegExp) => page.waitForFunction(`new RegExp(${JSON.stringify(re.source)}).test(document.getElementById(${JSON.stringify(`result-${unit}`)})?.textContent ?? '')`, { timeout: 20_000 });
      const pendingIs = (n: number) => page.waitForFunction(`document.querySelector(${JSON.stringify(`${sel} .pending`)})?.textContent === '${n}'`, { timeout: 30_000 });

      const right = told['doorcode:Unit 4B'] as string;
      expect(right).toMatch(/^\d+$/);
      await type(right);
      await resultIs(/GRANTED/);
      const wrong = right.split('').map((d) => String((Number(d) + 1) % 10)).join('');
      await type(wrong);
      await resultIs(/→ (?!GRANTED)[A-Z_]+/);
      expect(await textOf(`#result-${unit}`)).not.toContain('GRANTED');

      // The manager removes the partner: pending at the offline door, the partner still gets in.
      const versionBefore = world.door('Unit 4B').lock.version;
      await page.click(`${sel} button[data-remove]`);
      await pendingIs(1);
      await page.click(`${sel} button[data-unlock="fastparcel"]`);
      await resultIs(/fastparcel's phone → GRANTED/);

      // Alice taps Sync in the page: the revocation lands, the partner is refused.
      await page.click(`${sel} button[data-sync="alice"]`);
      await pendingIs(0);
      expect(await textOf(`${sel} .version`)).toBe(`v${versionBefore + 1}`);
      expect(await textOf(`${sel} .credentials`)).not.toContain('FastParcel');
      expect(await textOf(`${sel} .credentials`)).toContain('Alice');
      await page.click(`${sel} button[data-unlock="fastparcel"]`);
      await resultIs(/fastparcel's phone → UNKNOWN_CREDENTIAL/);

      // The timeline grew with every action, pushed over server-sent events.
      const events = (await page.evaluate(`[...document.querySelectorAll('#events li')].map((l) => l.textContent ?? '')`)) as string[];
      expect(events.some((e) => e.includes('manager removed FastParcel from Unit 4B'))).toBe(true);
      expect(events.some((e) => /alice synced v\d+ → v\d+, receipt at the authority/.test(e))).toBe(true);
      expect(events.filter((e) => e.includes('decision')).length).toBeGreaterThanOrEqual(4);

      const shot = path.join(os.tmpdir(), `locksync-panel-${process.pid}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`panel screenshot: ${shot}`);
      expect(existsSync(shot)).toBe(true);
    } finally {
      await browser.close();
    }
  }, 120_000);
});

describe('locksync panel: failures', () => {
  it('a bad --port is a usage error; a taken port is IN_USE, one line each', async () => {
    const { expectFailure, locksync } = await import('../test/failure-paths/harness');
    expectFailure(await locksync(['panel', '--port', 'eighty'], { deadlineMs: 30_000 }), 'USAGE', /--port/);
    const http = await import('node:http');
    const taken = http.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      expectFailure(await locksync(['panel', '--port', String(port)], { deadlineMs: 60_000 }), 'IN_USE', new RegExp(`port ${port}`));
    } finally {
      taken.close();
    }
  }, 120_000);
});

describe('locksync panel over a scenario\'s world', () => {
  it('shows the scenario\'s people and grants, and lands a revocation after a sync', async () => {
    const { loadScenario } = await import('../scenario/load');
    const { startScenarioWorld } = await import('../scenario/runner');
    const { world } = await startScenarioWorld(loadScenario(path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'scenarios', '01-partner-unassigned-offline-door.yaml')));
    const panel = new Panel(world);
    try {
      const lock = () => panel.state().locks.find((l) => l.door === 'lk-0001')!;
      expect(lock().version).toBe(1);
      const who = lock().credentials.map((c) => `${c.who} / ${c.grant}`);
      expect(who).toContain('Alice (resident) / Key "Resident - Unit 4B"');
      expect(who).toContain('ParcelCo deliveries / partner ParcelCo deliveries');
      // An armed link drop: the next sync fails and the lock keeps its version; the one after lands.
      world.authority.assignKey(world.authority.addUser({ name: 'Bea' }).id, world.authority.listKeys()[0]!.id);
      await panel.act({ op: 'dropLink', door: 'lk-0001' });
      const dropped = await panel.act({ op: 'sync', phone: 'alice-phone', door: 'lk-0001' });
      expect(dropped.ok).toBe(false);
      expect(dropped.text).toMatch(/link|lost|dropped/i);
      expect(lock().version).toBe(1);
      expect((await panel.act({ op: 'sync', phone: 'alice-phone', door: 'lk-0001' })).ok).toBe(true);
      expect(lock().version).toBe(2);
      const partner = lock().partners[0]!;
      expect(partner.name).toBe('ParcelCo deliveries');
      await panel.act({ op: 'removePartner', door: 'lk-0001', partnerId: partner.id });
      expect(lock().pendingRevocations).toHaveLength(1);
      expect((await panel.act({ op: 'sync', phone: 'alice-phone', door: 'lk-0001' })).ok).toBe(true);
      expect(lock().pendingRevocations).toEqual([]);
      expect(lock().credentials.some((c) => c.who === 'ParcelCo deliveries')).toBe(false);
      expect(panel.state().timeline.map((e) => e.kind)).toEqual(['fault', 'sync', 'sync', 'manager', 'sync']);
    } finally {
      await panel.close();
      await world.close();
    }
  }, 60_000);

  it('an invalid scenario is a usage error, one line', async () => {
    const { expectFailure, locksync } = await import('../test/failure-paths/harness');
    const bad = path.join(os.tmpdir(), `locksync-panel-bad-${process.pid}.yaml`);
    const { writeFileSync, rmSync } = await import('node:fs');
    writeFileSync(bad, 'name: x\n');
    try {
      expectFailure(await locksync(['panel', '--scenario', bad], { deadlineMs: 30_000 }), 'USAGE', /not a valid scenario/);
    } finally {
      rmSync(bad, { force: true });
    }
  }, 60_000);
});

describe('locksync panel --lock-dir over `lock run` daemons', () => {
  const BUNDLE = { lockId: 'lk-0042', rootPublicKeys: ['d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'], lockSecret: '3f'.repeat(32), timeZone: 'UTC' };

  /** A provisioned state dir and a `lock run` on the sim transport (stdin kept open), serving its control socket. */
  async function runningLock(work: string): Promise<{ dir: string; stop: () => Promise<void> }> {
    const fs = await import('node:fs');
    const { spawn } = await import('node:child_process');
    const { BIN, ROOT, childEnv, locksync } = await import('../test/failure-paths/harness');
    const { controlRequest, controlSocketPath } = await import('../firmware-sim/lifecycle');
    const bundle = path.join(work, 'bundle.json');
    fs.writeFileSync(bundle, JSON.stringify(BUNDLE));
    const dir = path.join(work, 'front-door');
    const r = await locksync(['lock', 'provision', '--state', dir, '--bundle', bundle, '--seed', 'panel', '--blocks', '64'], { deadlineMs: 45_000 });
    expect(r.code, r.stderr).toBe(0);
    const child = spawn(process.execPath, [BIN, 'lock', 'run', '--state', dir], { cwd: ROOT, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    const until = Date.now() + 45_000;
    for (;;) {
      const up = await controlRequest(controlSocketPath(dir), { op: 'ping' }, 1000).then((a) => a.ok, () => false);
      if (up) break;
      if (Date.now() > until || child.exitCode !== null) throw new Error(`lock run did not serve its control socket:\n${out}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    return {
      dir,
      stop: async () => {
        child.stdin.end(); // the sim transport ends with its stdin: the lock shuts down and saves
        await exited;
      },
    };
  }

  it('shows the running lock\'s state, battery and audit live; the keypad and the battery fault act through its control socket', async () => {
    const fs = await import('node:fs');
    const { LockDirPanel } = await import('./lockdir-panel');
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-panel-lockdir-'));
    const lock = await runningLock(work);
    const panel = new LockDirPanel([lock.dir]);
    try {
      const url = await panel.listen(0);
      const view = () => panel.state().locks[0]!;
      // The sim transport's stdin is a connected phone: the lock is in its session.
      expect(view()).toMatchObject({ door: 'front-door', lockId: 'lk-0042', mode: 'syncSession', connection: 'phone connected' });
      const batteryAtStart = view().battery;
      expect(batteryAtStart).toBeGreaterThan(99);
      expect(batteryAtStart).toBeLessThanOrEqual(100);
      const auditBefore = view().audit.length;

      if (chromium !== undefined) {
        const puppeteer = (await import('puppeteer-core')).default;
        const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
        try {
          const page = await browser.newPage();
          await page.setViewport({ width: 1000, height: 900 });
          await page.goto(url);
          const sel = '#lock-lk-0042';
          await page.waitForSelector(`${sel} .keypad`);
          for (const d of '1234567') await page.click(`${sel} button[data-key="${d}"]`);
          await page.click(`${sel} button[data-enter]`);
          // The lock holds no credential: the code is refused (or not taken while the session holds the lock).
          await page.waitForFunction(`/keypad •+ → /.test(document.getElementById('result-lk-0042')?.textContent ?? '')`, { timeout: 20_000 });
          console.log(`keypad in the page: ${String(await page.evaluate(`document.getElementById('result-lk-0042')?.textContent`))}`);
          expect(await page.evaluate(`document.getElementById('result-lk-0042')?.textContent`)).not.toMatch(/GRANTED/);
          await page.click(`${sel} button[data-fault="battery"]`);
          await page.waitForFunction(`document.querySelector('${sel} .mode')?.textContent === 'lowBattery'`, { timeout: 20_000 });
          await page.waitForFunction(`document.querySelector('${sel} .battery')?.textContent === '5%'`, { timeout: 20_000 });
          const events = (await page.evaluate(`[...document.querySelectorAll('#events li')].map((l) => l.textContent ?? '')`)) as string[];
          expect(events.some((e) => /battery nearly flat \(5 %\) → lowBattery/.test(e))).toBe(true);
          expect(events.some((e) => /audit #\d+ lowBattery/.test(e))).toBe(true);
          const shot = path.join(work, `locksync-panel-lockdir-${process.pid}.png`);
          await page.screenshot({ path: shot, fullPage: true });
          console.log(`panel (--lock-dir) screenshot: ${shot}`);
          expect(fs.existsSync(shot)).toBe(true);
        } finally {
          await browser.close();
        }
      } else {
        expect((await panel.act({ op: 'keypad', door: 'front-door', code: '1234567' })).ok).toBe(false);
        await panel.act({ op: 'battery', door: 'front-door' });
      }
      expect(view().mode).toBe('lowBattery');
      expect(view().audit.length).toBeGreaterThan(auditBefore);
      // The sim transport has no radio links to drop: the fault says so instead of pretending.
      const drop = await panel.act({ op: 'dropLink', door: 'front-door' });
      expect(drop).toEqual({ ok: false, text: 'this transport cannot drop its links' });
      // A new battery: the lock leaves lowBattery.
      await panel.act({ op: 'battery', door: 'front-door' });
      expect(view().mode).not.toBe('lowBattery');
      expect(view().battery).toBe(100);
    } finally {
      await panel.close();
      await lock.stop();
    }
    // The battery model's charge used is kept beside the flash for the next run.
    const saved = JSON.parse(fs.readFileSync(path.join(lock.dir, 'battery.json'), 'utf8')) as { usedUc: Record<string, number> };
    // (a new battery went in just before the stop: only what the last moments used)
    expect(Object.keys(saved.usedUc).sort()).toEqual(['adverts', 'connections', 'flash', 'motor', 'sleep']);
    expect(saved.usedUc['adverts']).toBeGreaterThan(0);
    const { locksync, expectFailure } = await import('../test/failure-paths/harness');
    expectFailure(await locksync(['panel', '--lock-dir', work], { deadlineMs: 30_000 }), 'BAD_STATE', /not a lock state directory/);
  }, 180_000);
});
