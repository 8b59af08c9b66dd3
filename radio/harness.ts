// Bringing the real host stacks up on a radio's controllers, for tests and benchmarks of
// any component: one process can hold a radio, several bleno peripherals and several noble
// centrals (each bound to its own controller with withBindings).
import { loadBleno, loadNoble, waitForPoweredOn, type BlenoLike, type NobleLike } from './hosts';
import type { Radio } from './radio';

/** Starts bleno on a radio controller and waits until it is powered on. */
export async function startBlenoOn(radio: Radio, controller: string, options: { advertisingIntervalMs?: number; timeoutMs?: number } = {}): Promise<BlenoLike> {
  // bleno reads its advertising interval from this variable when it initialises the
  // controller, which happens when the first stateChange listener is added below.
  const previous = process.env.BLENO_ADVERTISING_INTERVAL;
  if (options.advertisingIntervalMs !== undefined) process.env.BLENO_ADVERTISING_INTERVAL = String(options.advertisingIntervalMs);
  try {
    const bleno = await loadBleno(radio.controller(controller).transport);
    await waitForPoweredOn(bleno, options.timeoutMs ?? 10_000);
    return bleno;
  } finally {
    if (options.advertisingIntervalMs !== undefined) {
      if (previous === undefined) delete process.env.BLENO_ADVERTISING_INTERVAL;
      else process.env.BLENO_ADVERTISING_INTERVAL = previous;
    }
  }
}

/** Starts noble on a radio controller (extended: force legacy=false / extended=true). */
export async function startNobleOn(radio: Radio, controller: string, options: { extended?: boolean; timeoutMs?: number } = {}): Promise<NobleLike> {
  const noble = await loadNoble(radio.controller(controller).transport, options.extended === undefined ? {} : { extended: options.extended });
  await waitForPoweredOn(noble, options.timeoutMs ?? 10_000);
  return noble;
}

/** Stops a host stack and closes its UART (the radio keeps running). */
export async function stopHost(host: NobleLike | BlenoLike): Promise<void> {
  try {
    host.removeAllListeners('discover');
    host.stop?.();
  } catch {
    // already stopped
  }
  // Let the serial port close before the pty may go away.
  await new Promise((resolve) => setTimeout(resolve, 20));
}

/**
 * Scans until a peripheral advertising `localName` (or any, when omitted) shows up and
 * returns noble's Peripheral object.
 */
export async function discoverPeripheral(noble: NobleLike, options: { localName?: string; address?: string; timeoutMs?: number } = {}): Promise<any> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const onDiscover = (peripheral: any): void => {
      if (options.localName !== undefined && peripheral.advertisement?.localName !== options.localName) return;
      if (options.address !== undefined && peripheral.address !== options.address.toLowerCase()) return;
      clearTimeout(timer);
      noble.removeListener('discover', onDiscover);
      noble.stopScanningAsync().then(() => resolve(peripheral), reject);
    };
    const timer = setTimeout(() => {
      noble.removeListener('discover', onDiscover);
      const error = new Error(`no peripheral ${options.localName ?? options.address ?? ''} discovered within ${timeoutMs} ms`);
      // Settle the scan stop first: a new scan started while noble is stopping is ignored.
      noble.stopScanningAsync().then(() => reject(error), () => reject(error));
    }, timeoutMs);
    noble.on('discover', onDiscover);
    noble.startScanningAsync([], false).catch(reject);
  });
}
