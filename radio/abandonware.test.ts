// LOCKSYNC_BLE_FAMILY=abandonware, proven: the adapters load @abandonware/noble and
// @abandonware/bleno (optional; CI installs them with --no-save when it can — .ci/run),
// `hci:N` reaches the adapter index the packages read, `uart:` is refused before anything
// is imported, and a lock that cannot load them ends with one TRANSPORT_UNAVAILABLE line.
//
// The packages' JavaScript runs for real; only their native HCI socket
// (@abandonware/bluetooth-hci-socket) is replaced, in a child process, by a recorder of
// the adapter index it is bound to — CI machines have no Bluetooth adapter (and often no
// Bluetooth in the kernel: the real socket fails at import with EAFNOSUPPORT).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getPublicKey } from '@noble/ed25519';
import { isHostPackageInstalled, loadBleno, loadNoble, TransportUnsupportedError } from './hosts';
import { ROOT, expectFailure, locksync, tempDir } from '../test/failure-paths/harness';
import { toHex } from '../protocol/index';

const require = createRequire(import.meta.url);
const installed = isHostPackageInstalled('noble', 'abandonware') && isHostPackageInstalled('bleno', 'abandonware');
if (!installed) {
  console.warn('notice: @abandonware/noble and @abandonware/bleno are not installed; the tests that load them skip (npm install --no-save @abandonware/noble @abandonware/bleno)');
}

const loadedAbandonware = (): string[] => Object.keys(require.cache).filter((k) => k.includes(`${path.sep}@abandonware${path.sep}`));

describe('LOCKSYNC_BLE_FAMILY=abandonware', () => {
  it('refuses uart: before importing anything, with what to use instead', async () => {
    for (const load of [() => loadNoble('uart:/dev/null', { family: 'abandonware' }), () => loadBleno('uart:/tmp/radio/lock-1', { family: 'abandonware' })]) {
      const e = await load().then(
        () => new Error('loaded'),
        (x: unknown) => x,
      );
      // TransportUnsupportedError even where the packages are missing: nothing was imported.
      expect(e).toBeInstanceOf(TransportUnsupportedError);
      expect((e as Error).message).toMatch(/no HCI-over-UART driver.*use hci:N, or the default family \(LOCKSYNC_BLE_FAMILY=stoprocent\)/);
    }
    expect(loadedAbandonware()).toEqual([]);
  });

  it.skipIf(!installed)('hci:N reaches the adapter index the packages read at import and bind to', () => {
    // A child process: the packages are singletons, bound to one adapter per process.
    const script = `
      import { createRequire } from 'node:module';
      import { EventEmitter } from 'node:events';
      import { loadBleno, loadNoble } from ${JSON.stringify(path.join(ROOT, 'radio', 'hosts.ts'))};
      const require = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))});
      const bound = [];
      class RecordingHciSocket extends EventEmitter {
        bindRaw(id) { bound.push({ how: 'raw', id }); return id; }
        bindUser(id) { bound.push({ how: 'user', id }); return id; }
        bindControl() {}
        isDevUp() { return false; }
        setFilter() {}
        start() {}
        stop() {}
        write() {}
      }
      for (const pkg of ['@abandonware/noble', '@abandonware/bleno']) {
        const native = createRequire(require.resolve(pkg)).resolve('@abandonware/bluetooth-hci-socket');
        require.cache[native] = { id: native, filename: native, loaded: true, exports: RecordingHciSocket };
      }
      delete process.env.NOBLE_HCI_DEVICE_ID;
      delete process.env.BLENO_HCI_DEVICE_ID;
      const noble = await loadNoble('hci:1', { family: 'abandonware' });
      const readAtImport = noble._bindings?._hci?._deviceId;
      noble.on('stateChange', () => undefined); // noble binds its socket on the first listener
      const bleno = await loadBleno('hci:1', { family: 'abandonware' });
      bleno.on('stateChange', () => undefined);
      let second;
      try { await loadNoble('hci:2', { family: 'abandonware' }); second = 'loaded'; } catch (e) { second = e.message; }
      console.log(JSON.stringify({ readAtImport, bound, second }));
      process.exit(0);
    `;
    const file = path.join(tempDir('locksync-abw-'), 'probe.mts');
    fs.writeFileSync(file, script);
    const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { readAtImport: number; bound: { how: string; id: number }[]; second: string };
    expect(out.readAtImport).toBe(1); // noble's Hci reads NOBLE_HCI_DEVICE_ID in its constructor, at import
    expect(out.bound).toEqual([
      { how: 'raw', id: 1 },
      { how: 'raw', id: 1 },
    ]);
    expect(out.second).toMatch(/already bound to hci:1 .* cannot switch to hci:2/);
  }, 90_000);

  describe('lock run, as a separate process', () => {
    const state = tempDir('locksync-abw-lock-');
    const provisioned = (async () => {
      const bundle = path.join(state, 'bundle.json');
      const root = toHex(await getPublicKey(new Uint8Array(32).fill(3)));
      fs.writeFileSync(bundle, JSON.stringify({ lockId: 'lk-0077', rootPublicKeys: [root], lockSecret: '11'.repeat(32), timeZone: 'Europe/Berlin' }));
      const r = await locksync(['lock', 'provision', '--state', path.join(state, 'lock'), '--bundle', bundle, '--seed', 'abw'], { deadlineMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      return path.join(state, 'lock');
    })();

    it('uart: is refused with one TRANSPORT_UNAVAILABLE line (exit 10)', async () => {
      const dir = await provisioned;
      const r = await locksync(['lock', 'run', '--state', dir, '--transport', 'uart:/tmp/no-radio/lock-1'], { env: { LOCKSYNC_BLE_FAMILY: 'abandonware' }, deadlineMs: 60_000 });
      expectFailure(r, 'TRANSPORT_UNAVAILABLE', /no HCI-over-UART driver/);
    }, 90_000);

    it('hci:1 without a usable @abandonware stack (missing, or no Bluetooth in the kernel) is one TRANSPORT_UNAVAILABLE line (exit 10)', async () => {
      const dir = await provisioned;
      const r = await locksync(['lock', 'run', '--state', dir, '--transport', 'hci:1'], { env: { LOCKSYNC_BLE_FAMILY: 'abandonware' }, deadlineMs: 60_000 });
      if (r.code === 0 || r.signal !== null) throw new Error(`lock run did not fail: ${r.code} ${r.signal}`);
      expectFailure(r, 'TRANSPORT_UNAVAILABLE', installed ? /@abandonware\/bleno/ : /@abandonware\/bleno is not installed/);
    }, 90_000);
  });
});
