// The phone's GATT client on noble: scan by the locksync service, pick a lock by the id in
// its scan response, connect, exchange MTU, discover once, subscribe, stream frames.
// noble is loaded lazily by radio/hosts.ts; any transport it drives works (`uart:`, `hci:`).

import { GATT_SHORT, decodeAdvertData } from '../protocol/index';
import { HostStartError, openHostStack, shutdownHostStack, type BleFamily, type NobleLike } from '../radio/hosts';
import { AgentError } from '../mobile-agent/errors';
import { type ConnectOptions, type DiscoveredLock, type DisconnectInfo, type LockConnection, type LockConnector, LockChannels, connectionOver } from '../mobile-agent/link';

export interface NobleConnectorOptions {
  family?: BleFamily;
  /** Force legacy (false) or extended (true) HCI advertising/connection commands. */
  extended?: boolean;
  /** Connection parameters asked for at connect (ms; MTU we request). */
  connection?: { minIntervalMs?: number; maxIntervalMs?: number; mtu?: number; timeoutMs?: number };
  poweredOnTimeoutMs?: number;
  scanTimeoutMs?: number;
}

const HCI_REASONS: Record<number, string> = {
  0x08: 'supervision timeout (out of range)',
  0x13: 'remote user terminated the connection',
  0x16: 'connection terminated by the local host',
  0x3e: 'connection failed to be established',
};

export class NobleConnector implements LockConnector {
  private readonly channels = new LockChannels();
  private readonly seen = new Map<string, { peripheral: any; advert: DiscoveredLock }>();

  private constructor(
    readonly transport: string,
    readonly noble: NobleLike,
    private readonly opts: NobleConnectorOptions,
  ) {
    noble.on('discover', (p: any) => this.onDiscover(p));
  }

  static async open(transport: string, opts: NobleConnectorOptions = {}): Promise<NobleConnector> {
    let noble: NobleLike;
    try {
      const o: { family?: BleFamily; extended?: boolean } = {};
      if (opts.family !== undefined) o.family = opts.family;
      if (opts.extended !== undefined) o.extended = opts.extended;
      noble = await openHostStack<NobleLike>('noble', transport, { ...o, poweredOnTimeoutMs: opts.poweredOnTimeoutMs ?? 10_000 });
    } catch (e) {
      // The reason and what to do, in one line (HostStartError carries both).
      const detail = e instanceof HostStartError ? `${e.message} — ${e.advice}` : (e as Error).message;
      throw new AgentError('TRANSPORT_UNAVAILABLE', `${transport}: ${detail}`);
    }
    return new NobleConnector(transport, noble, opts);
  }

  private onDiscover(p: any): void {
    const name: string | undefined = p.advertisement?.localName;
    if (!name) return;
    const mfg: Buffer | undefined = p.advertisement?.manufacturerData;
    const adv = decodeAdvertData(name, mfg ? new Uint8Array(mfg) : undefined);
    const d: DiscoveredLock = { lockId: name, rssi: p.rssi, address: p.address };
    if (adv) {
      d.version = adv.version;
      d.flags = adv.flags;
    }
    this.seen.set(name, { peripheral: p, advert: d });
  }

  async scan(timeoutMs: number, filterLockId?: string): Promise<DiscoveredLock[]> {
    this.seen.clear();
    await this.noble.startScanningAsync([GATT_SHORT.service], false);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (filterLockId !== undefined && this.seen.has(filterLockId)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.noble.stopScanningAsync();
    return [...this.seen.values()].map((s) => s.advert).filter((d) => filterLockId === undefined || d.lockId === filterLockId);
  }

  async connect(lockId: string, opts: ConnectOptions = {}): Promise<LockConnection> {
    const found = await this.scan(opts.timeoutMs ?? this.opts.scanTimeoutMs ?? 5000, lockId);
    const entry = this.seen.get(lockId);
    if (found.length === 0 || !entry) throw new AgentError('LOCK_NOT_FOUND', `lock ${lockId} is not advertising in range`);
    const peripheral = entry.peripheral;
    const c = this.opts.connection ?? {};
    const params: Record<string, number> = { mtu: opts.mtu ?? c.mtu ?? 247 };
    if (c.minIntervalMs !== undefined) params.minInterval = c.minIntervalMs;
    if (c.maxIntervalMs !== undefined) params.maxInterval = c.maxIntervalMs;
    if (c.timeoutMs !== undefined) params.timeout = c.timeoutMs;

    const state = this.channels.open(lockId);
    const { channel, inbox, hooks: hook } = state;
    hook.progress = (a, t) => opts.onProgress?.(a, t);

    let open = false;
    let txCharacteristic: any;
    const onData = (data: Buffer) => channel.receiveFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
    // A framing violation by the lock: drop the link; the retry resumes on a clean connection.
    hook.violation = (e) => {
      inbox.fail(new AgentError('PROTOCOL_VIOLATION', `framing: ${e.message}`));
      void peripheral.disconnectAsync().catch(() => undefined);
    };
    let resolveClosed!: (d: DisconnectInfo) => void;
    const closed = new Promise<DisconnectInfo>((r) => (resolveClosed = r));
    const onDisconnect = (reason: number | string) => {
      const code = typeof reason === 'number' ? reason : Number.parseInt(String(reason), 16) || 0;
      const description = HCI_REASONS[code] ?? `HCI reason 0x${code.toString(16)}`;
      open = false;
      hook.write = () => undefined;
      // noble keeps characteristic objects across connections: a listener left behind would
      // deliver every notification of the next connection twice.
      txCharacteristic?.removeListener('data', onData);
      channel.linkDown();
      inbox.fail(new AgentError('LINK_LOST', `${description} (HCI reason 0x${code.toString(16).padStart(2, '0')})`));
      resolveClosed({ reason: code, description });
    };
    try {
      await withTimeout(this.noble.connectAsync(peripheral.id, params), 10_000, `connect to ${lockId}`);
      open = true;
      peripheral.once('disconnect', onDisconnect);
      const mtu: number = peripheral.mtu ?? (await waitForMtu(peripheral, 2000));
      const { characteristics } = await withTimeout<any>(
        peripheral.discoverSomeServicesAndCharacteristicsAsync([GATT_SHORT.service], [GATT_SHORT.rx, GATT_SHORT.tx, GATT_SHORT.info]),
        10_000,
        'GATT discovery',
      );
      const rx = characteristics.find((ch: any) => ch.uuid === GATT_SHORT.rx);
      const tx = characteristics.find((ch: any) => ch.uuid === GATT_SHORT.tx);
      if (!rx || !tx) throw new AgentError('PROTOCOL_VIOLATION', `${lockId} does not expose the locksync service`);
      txCharacteristic = tx;
      tx.on('data', onData);
      hook.write = (f) => {
        if (open) rx.write(Buffer.from(f), true);
      };
      await withTimeout(tx.subscribeAsync(), 5000, 'subscribe');
      channel.linkUp(Math.max(23, Math.min(517, mtu)));
    } catch (e) {
      peripheral.removeListener('disconnect', onDisconnect);
      if (open) await peripheral.disconnectAsync().catch(() => undefined);
      channel.linkDown();
      if (e instanceof AgentError) throw e;
      throw new AgentError('LINK_LOST', `connecting to ${lockId}: ${(e as Error).message}`);
    }
    return connectionOver(state, {
      lockId,
      mtu: peripheral.mtu ?? 23,
      isOpen: () => open,
      closed,
      rssi: async () => (await peripheral.updateRssiAsync()) as number,
      disconnect: async () => {
        if (!open) return;
        await peripheral.disconnectAsync().catch(() => undefined);
        await closed;
      },
    });
  }

  forget(lockId: string): void {
    this.channels.forget(lockId);
  }

  async close(): Promise<void> {
    this.channels.forgetAll();
    shutdownHostStack(this.noble);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function waitForMtu(peripheral: any, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(peripheral.mtu ?? 23), timeoutMs);
    peripheral.once('mtu', (m: number) => {
      clearTimeout(t);
      resolve(m);
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new AgentError('TIMEOUT', `${what} took longer than ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
