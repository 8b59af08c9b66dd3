import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeMessage, deriveSeed32, fromHex, toHex, verifyReceipt, verifyAuditChain } from '../protocol';
import { registerLockCommands, openLockState, StdioHexTransport, runLock } from './cli';
import { TestAuthority, createTestRig } from './test-authority';
import { Uplink } from './uplink';

function program(): { run(args: string[]): Promise<string> } {
  return {
    async run(args) {
      const p = new Command().exitOverride();
      registerLockCommands(p);
      let out = '';
      const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
        out += String(chunk);
        return true;
      });
      const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        await p.parseAsync(['node', 'locksync', ...args]);
      } finally {
        spy.mockRestore();
        err.mockRestore();
      }
      return out;
    },
  };
}

afterEach(() => {
  process.exitCode = 0;
});

describe('lock CLI', () => {
  it('provision → sync over the sim transport → keypad/present → inspect', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'locksync-lock-'));
    const lockSecret = deriveSeed32('cli', 'secret');
    const auth = new TestAuthority('lk-0042', lockSecret, 'cli', { now: Math.floor(Date.now() / 1000) });
    writeFileSync(join(dir, 'bundle.json'), JSON.stringify({ lockId: 'lk-0042', rootPublicKeys: [toHex(auth.root.publicKey)], lockSecret: toHex(lockSecret), timeZone: 'America/New_York' }));
    const cli = program();
    const prov = JSON.parse(await cli.run(['lock', 'provision', '--state', dir, '--bundle', join(dir, 'bundle.json'), '--seed', 'cli', '--blocks', '64', '--json']));
    expect(prov).toMatchObject({ lockId: 'lk-0042', flashBytes: 64 * 4096 });
    const device = JSON.parse(readFileSync(join(dir, 'device.json'), 'utf8'));
    expect(device.devicePublicKey).toBe(prov.devicePublicKey);
    await expect(cli.run(['lock', 'provision', '--state', dir, '--bundle', join(dir, 'bundle.json')])).rejects.toThrow(/already holds a provisioned lock/);

    // sim transport: hex lines in/out
    const st = openLockState(dir);
    const input = new PassThrough();
    const output = new PassThrough();
    const lines: string[] = [];
    output.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter((l) => l.length > 0)));
    const running = runLock(st.lock, new StdioHexTransport(input, output));
    await new Promise((r) => setImmediate(r));
    const hello = decodeMessage(fromHex(lines[0] as string));
    expect(hello).toMatchObject({ type: 'hello', lockId: 'lk-0042', version: 0 });
    input.write(`${toHex(TestAuthority.message(auth.delta([{ op: 'put', entry: auth.doorcodeEntry(1, '7654321') }, { op: 'put', entry: auth.keycardEntry(2, fromHex('04aabbcc')) }])))}\n`);
    input.end();
    await running;
    st.save();
    st.flash.close();
    const receipt = decodeMessage(fromHex(lines[1] as string));
    if (receipt.type !== 'receipt') throw new Error(JSON.stringify(receipt));
    expect(verifyReceipt(receipt, fromHex(device.devicePublicKey))).toBe(true);

    expect(JSON.parse(await cli.run(['lock', 'keypad', '--state', dir, '7654321', '--json']))).toMatchObject({ granted: true, reason: 'GRANTED', credId: 1 });
    expect(JSON.parse(await cli.run(['lock', 'keypad', '--state', dir, '1111111', '--json']))).toMatchObject({ granted: false, reason: 'WRONG_CODE' });
    expect(JSON.parse(await cli.run(['lock', 'present', '--state', dir, '--card', '04aabbcc', '--json']))).toMatchObject({ granted: true, credId: 2 });
    const report = JSON.parse(await cli.run(['lock', 'inspect', '--state', dir, '--json']));
    expect(report.ok).toBe(true);
    expect(report.inForce).toMatchObject({ lockId: 'lk-0042', version: 1, entries: 2, keypad: { wrongCount: 1 } });
    expect(report.audit.recent.filter((a: { event: string }) => a.event === 'access').length).toBe(3);
    const text = await cli.run(['lock', 'inspect', '--state', dir]);
    expect(text).toMatch(/lock lk-0042 \(America\/New_York\) version 1/);
  });

  it('refuses a bad bundle with a typed error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'locksync-lock-'));
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ lockId: 'lk-1', rootPublicKeys: ['00'], lockSecret: 'zz', timeZone: 'UTC' }));
    await expect(program().run(['lock', 'provision', '--state', dir, '--bundle', join(dir, 'b.json')])).rejects.toThrow(/BAD_STATE: .* is not a provisioning bundle/);
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ lockId: 'lk-1', rootPublicKeys: ['00'.repeat(32)], lockSecret: '11'.repeat(32), timeZone: 'Mars/Olympus' }));
    await expect(program().run(['lock', 'provision', '--state', dir, '--bundle', join(dir, 'b.json')])).rejects.toThrow(/time zone/);
  });
});

describe('uplink', () => {
  it('polls updates, sets nonce-bound time, posts receipts and the audit export', async () => {
    const rig = createTestRig({ seed: 'up' });
    const a = rig.auth;
    const updates = [a.delta([{ op: 'put', entry: a.keycardEntry(1, fromHex('04010203')) }]), a.delta([{ op: 'put', entry: a.keycardEntry(2, fromHex('04010204')) }])];
    const posted: { path: string; body: Record<string, string> }[] = [];
    const fakeFetch = (async (url: string, init?: RequestInit) => {
      const u = new URL(url);
      const auth = (init?.headers as Record<string, string>).authorization;
      if (auth !== 'Bearer tok') return new Response(JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'bad token' } }), { status: 401 });
      if (u.pathname === '/v1/locks/lk-0001/time') {
        a.now = Math.floor(rig.clock.nowMs() / 1000);
        return new Response(JSON.stringify({ signedTime: toHex(a.signedTime(fromHex(u.searchParams.get('nonce') as string))) }));
      }
      if (u.pathname === '/v1/uplink/lk-0001') {
        const from = Number(u.searchParams.get('from'));
        return new Response(JSON.stringify({ lockId: 'lk-0001', from, to: 2, messages: updates.slice(from).map((x) => toHex(TestAuthority.message(x))) }));
      }
      posted.push({ path: u.pathname, body: JSON.parse(String(init?.body)) });
      if (u.pathname.endsWith('/receipts')) return new Response(JSON.stringify({ lockId: 'lk-0001', version: 1, inForce: true }));
      return new Response(JSON.stringify({ accepted: 3 }));
    }) as typeof fetch;
    rig.reboot({ powerLoss: true });
    const up2 = new Uplink(rig.lock, { baseUrl: 'http://authority.test', token: 'tok', fetch: fakeFetch });
    expect(rig.lock.rtc.trusted).toBe(false);
    const r = await up2.pollOnce();
    expect(r).toMatchObject({ applied: 2, refused: [], timeSet: true });
    expect(rig.lock.rtc.trusted).toBe(true);
    expect(rig.lock.version).toBe(2);
    const receipts = posted.filter((p) => p.path.endsWith('/receipts'));
    expect(receipts.length).toBe(2);
    const rc = decodeMessage(fromHex(receipts[1]?.body.receipt as string));
    if (rc.type !== 'receipt') throw new Error('not a receipt');
    expect(verifyReceipt(rc, rig.lock.devicePublicKey)).toBe(true);
    const exp = decodeMessage(fromHex(posted.find((p) => p.path.endsWith('/audit'))?.body.export as string));
    if (exp.type !== 'auditExport') throw new Error('not an export');
    verifyAuditChain(exp.prevHash, exp.records);
    // second poll: nothing new; bad token is a typed error
    expect((await up2.pollOnce()).applied).toBe(0);
    const bad = new Uplink(rig.lock, { baseUrl: 'http://authority.test', token: 'nope', fetch: fakeFetch });
    await expect(bad.pollOnce()).rejects.toThrow(/UNAUTHORIZED/);
  });
});
