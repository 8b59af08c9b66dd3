// The control endpoint (JSON over DIR/control.sock), the CLI entry points, the fault
// schedule, and host-stack loading errors.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { radioMain, sendControlRequest } from './cli';
import { traceShow } from './trace-show';
import { BlePackageMissingError, TransportParseError, TransportUnsupportedError, hciBindingOptions, isHostPackageInstalled, loadNoble, parseTransport } from './hosts';
import { startRadio } from './radio';

describe('control endpoint', () => {
  it('speaks newline-delimited JSON with the same operations as the in-process API', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'radio-ctl-'));
    const radio = await startRadio({ dir, controllers: ['lock-1', 'phone-1'], seed: 9 });
    try {
      expect(fs.realpathSync(path.join(dir, 'lock-1'))).toMatch(/^\/dev\/pts\/\d+$/);
      const socket = path.join(dir, 'control.sock');
      const list = await sendControlRequest(socket, { op: 'list' });
      expect(list.ok).toBe(true);
      expect((list.result as Array<{ name: string; transport: string }>).map((c) => c.transport)).toEqual([`uart:${dir}/lock-1`, `uart:${dir}/phone-1`]);
      expect((await sendControlRequest(socket, { op: 'setPosition', controller: 'phone-1', x: 7, y: 1 })).ok).toBe(true);
      expect(radio.controller('phone-1').position()).toEqual({ x: 7, y: 1 });
      const bad = await sendControlRequest(socket, { op: 'hang', controller: 'nobody' });
      expect(bad).toMatchObject({ ok: false, error: expect.stringContaining('unknown controller') });
      const noLink = await sendControlRequest(socket, { op: 'dropLink', controller: 'phone-1' });
      expect(noLink).toMatchObject({ ok: false, error: expect.stringContaining('no link') });
      expect((await sendControlRequest(socket, { op: 'failCommand', controller: 'lock-1', opcode: 0x2006, status: 0x0c })).ok).toBe(true);
      // Scheduled operations run at model times.
      await sendControlRequest(socket, { op: 'schedule', entries: [{ atMs: 0, op: 'setPosition', controller: 'lock-1', x: 3, y: 3 }] });
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(radio.controller('lock-1').position()).toEqual({ x: 3, y: 3 });
    } finally {
      await radio.close();
    }
    expect(fs.existsSync(path.join(dir, 'control.sock'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'lock-1'))).toBe(false);
  });

  it('`radio up` prints the transports and stops on signal; `trace show` summarises a capture', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'radio-up-'));
    const out: string[] = [];
    const err: string[] = [];
    const abort = new AbortController();
    const running = radioMain(['up', '--dir', dir, '--controllers', '2', '--seed', '5', '--capture', path.join(dir, 'cap')], {
      io: { stdout: (l) => out.push(l), stderr: (l) => err.push(l) },
      signal: abort.signal,
    });
    for (let i = 0; i < 200 && !out.some((l) => l.startsWith('control')); i++) await new Promise((r) => setTimeout(r, 10));
    expect(out[0]).toMatch(new RegExp(`^ctrl-1\\t[0-9a-f:]{17}\\tuart:${dir}/ctrl-1\\t`));
    const response = await sendControlRequest(path.join(dir, 'control.sock'), { op: 'hardwareError', controller: 'ctrl-1', code: 3 });
    expect(response.ok).toBe(true);
    // Without --baud the UART is not modelled (no rate in the listing).
    const listed = await sendControlRequest(path.join(dir, 'control.sock'), { op: 'list' });
    expect((listed.result as Array<Record<string, unknown>>)[0]).not.toHaveProperty('uartBaud');
    abort.abort();
    expect(await running).toBe(0);
    const lines: string[] = [];
    expect(traceShow(path.join(dir, 'cap', 'ctrl-1.btsnoop'), {}, { stdout: (l) => lines.push(l) })).toBe(0);
    // Hardware Error (bit 15) is enabled in the default event mask, so it reached the capture.
    expect(lines.some((l) => l.includes('EVT Hardware Error'))).toBe(true);
    expect(await radioMain(['up', '--dir', dir], { io: { stdout: () => {}, stderr: (l) => err.push(l) } })).toBe(2);
    expect(err.join('\n')).toContain('--controllers');
  });

  it('`radio up --baud 1000000` models every controller\'s HCI UART at that rate', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'radio-baud-'));
    const out: string[] = [];
    const abort = new AbortController();
    const running = radioMain(['up', '--dir', dir, '--controllers', 'lock-1,phone-1', '--baud', '1000000'], { io: { stdout: (l) => out.push(l), stderr: () => {} }, signal: abort.signal });
    try {
      for (let i = 0; i < 200 && !out.some((l) => l.startsWith('control')); i++) await new Promise((r) => setTimeout(r, 10));
      const listed = await sendControlRequest(path.join(dir, 'control.sock'), { op: 'list' });
      expect((listed.result as Array<Record<string, unknown>>).map((c) => c['uartBaud'])).toEqual([1_000_000, 1_000_000]);
    } finally {
      abort.abort();
    }
    expect(await running).toBe(0);
    const err: string[] = [];
    expect(await radioMain(['up', '--dir', dir, '--controllers', '1', '--baud', 'fast'], { io: { stdout: () => {}, stderr: (l) => err.push(l) } })).toBe(2);
    expect(err.join('\n')).toMatch(/^error USAGE: --baud must be an integer from 1200 to 12000000/);
  });
});

describe('host-stack loading', () => {
  it('parses transport strings', () => {
    expect(parseTransport('uart:/tmp/radio/lock-1')).toEqual({ kind: 'uart', port: '/tmp/radio/lock-1', baudRate: 1_000_000 });
    expect(parseTransport('uart:/dev/ttyACM0@115200')).toEqual({ kind: 'uart', port: '/dev/ttyACM0', baudRate: 115_200 });
    expect(parseTransport('hci:1')).toEqual({ kind: 'hci', deviceId: 1 });
    expect(() => parseTransport('usb:1')).toThrow(TransportParseError);
    expect(hciBindingOptions(parseTransport('uart:/x'), { extended: false })).toEqual({ hciDriver: 'uart', bindParams: { uart: { port: '/x', baudRate: 1_000_000 } }, extended: false });
  });

  it('reports a missing package with what to install, and refuses UART for the abandonware family', async () => {
    // UART is refused before the import, installed or not (radio/abandonware.test.ts).
    const uart = await loadNoble('uart:/dev/null', { family: 'abandonware' }).catch((e: unknown) => e);
    expect(uart).toBeInstanceOf(TransportUnsupportedError);
    if (!isHostPackageInstalled('noble', 'abandonware')) {
      const hci = await loadNoble('hci:0', { family: 'abandonware' }).catch((e: unknown) => e);
      expect(hci).toBeInstanceOf(BlePackageMissingError);
      expect((hci as Error).message).toContain('npm install @abandonware/noble');
    }
    await expect(loadNoble('bluetooth')).rejects.toThrow(TransportParseError);
  });
});
