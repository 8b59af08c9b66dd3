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
