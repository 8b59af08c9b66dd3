// The phone's GATT client on noble: scan by the locksync service, pick a lock by the id in
// its scan response, connect, exchange MTU, discover, subscribe, stream frames. A lock met
// before is reconnected as phones do for known devices (SPEC §13.1): straight to its
// address, handles checked by one Database Hash read, the framing HELLO ahead of the CCCD.
// noble is loaded lazily by radio/hosts.ts; any transport it drives works (`uart:`, `hci:`).

import { DATABASE_HASH_UUID, GATT_SHORT, bytesEqual, decodeAdvertData } from '../protocol/index';
import { HostStartError, openHostStack, shutdownHostStack, type BleFamily, type NobleLike } from '../radio/hosts';
import { AgentError } from '../mobile-agent/errors';
import {
  type ConnectOptions,
  type DiscoveredLock,
  type DisconnectInfo,
  type LockChannelState,
  type LockConnection,
  type LockConnector,
  LockChannels,
  connectionOver,
} from '../mobile-agent/link';

export interface NobleConnectorOptions {
  family?: BleFamily;
  /** Force legacy (false) or extended (true) HCI advertising/connection commands. */
  extended?: boolean;
  /** Connection parameters asked for at connect (ms; MTU we request). */
  connection?: { minIntervalMs?: number; maxIntervalMs?: number; mtu?: number; timeoutMs?: number };
  poweredOnTimeoutMs?: number;
  scanTimeoutMs?: number;
  /**
   * Reconnect as phones do to a known device (SPEC §13.1): straight to the lock's address
   * (it connects on the first advertisement heard), attribute handles from the last
   * connection checked by one read of the Database Hash instead of a full discovery, and
   * the framing HELLO written ahead of the CCCD write. On by default; false connects as a
   * phone that predates this (scan, full discovery, subscribe, then HELLO).
   */
  fastConnect?: boolean;
}

/** How the last connection to a lock went, for the next one. */
export type ConnectPath = 'cached-handles' | 'discovery' | 'legacy';

/** Attribute handles of a lock's locksync service, learnt by discovery and kept for reconnects. */
interface KnownLock {
  peripheralId: string;
  rx: number;
  tx: number;
  cccd: number;
  hashHandle: number;
  hash: Buffer;
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
  private readonly known = new Map<string, KnownLock>();
  private seenWaiter: { lockId: string; resolve: () => void } | undefined;
  /** How each lock's last connection set up its GATT (tests and the bench read it). */
  readonly lastPath = new Map<string, ConnectPath>();

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
    if (this.seenWaiter?.lockId === name) this.seenWaiter.resolve();
  }

  async scan(timeoutMs: number, filterLockId?: string): Promise<DiscoveredLock[]> {
    this.seen.clear();
    await this.noble.startScanningAsync([GATT_SHORT.service], false);
    // Looking for one lock: stop on its first advertisement (no polling delay); otherwise
    // listen for the whole window.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      if (filterLockId !== undefined) {
        if (this.seen.has(filterLockId)) done();
        else this.seenWaiter = { lockId: filterLockId, resolve: done };
      }
    });
    this.seenWaiter = undefined;
    await this.noble.stopScanningAsync();
    return [...this.seen.values()].map((s) => s.advert).filter((d) => filterLockId === undefined || d.lockId === filterLockId);
  }

  /** Forget the cached attribute handles of a lock (the next connection discovers). */
  forgetHandles(lockId: string): void {
    this.known.delete(lockId);
  }

  async connect(lockId: string, opts: ConnectOptions = {}): Promise<LockConnection> {
    const fast = this.opts.fastConnect !== false;
    const scanTimeoutMs = opts.timeoutMs ?? this.opts.scanTimeoutMs ?? 5000;
    const known = fast ? this.known.get(lockId) : undefined;
    const c = this.opts.connection ?? {};
    const params: Record<string, number> = { mtu: opts.mtu ?? c.mtu ?? 247 };
    if (c.minIntervalMs !== undefined) params.minInterval = c.minIntervalMs;
    if (c.maxIntervalMs !== undefined) params.maxInterval = c.maxIntervalMs;
    if (c.timeoutMs !== undefined) params.timeout = c.timeoutMs;
    // A known lock: initiate at once, no scan — the controller connects on the first
    // advertisement it hears from that address. Not heard within the scan window (out of
    // range, or a new address): scan as for a new lock. The handles stay cached either way;
    // only the Database Hash decides whether they still hold.
    let peripheral: any;
    if (known !== undefined) peripheral = await this.connectDirect(known.peripheralId, params, scanTimeoutMs);
    if (peripheral === undefined) {
      const found = await this.scan(scanTimeoutMs, lockId);
      const entry = this.seen.get(lockId);
      if (found.length === 0 || !entry) throw new AgentError('LOCK_NOT_FOUND', `lock ${lockId} is not advertising in range`);
      peripheral = entry.peripheral;
      // Before the connection is set up: the caller may start work the advert allows
      // (the agent fetches the updates from the advertised version meanwhile).
      opts.onAdvert?.({ ...entry.advert });
    }
    return this.setUp(lockId, peripheral, params, opts, peripheral.state === 'connected');
  }

  /** LE Create Connection to a known address; undefined when it is not heard in time. */
  private async connectDirect(peripheralId: string, params: Record<string, number>, timeoutMs: number): Promise<any> {
    try {
      const p = (this.noble as any)._peripherals?.get?.(peripheralId);
      if (p) p.mtu = null; // noble keeps the last connection's MTU: wait for this one's exchange
      return await withTimeout<any>(this.noble.connectAsync(peripheralId, params), timeoutMs, 'direct connect');
    } catch {
      try {
        (this.noble as any).cancelConnect?.(peripheralId);
      } catch {
        // nothing pending
      }
      return undefined;
    }
  }

  private async setUp(lockId: string, peripheral: any, params: Record<string, number>, opts: ConnectOptions, alreadyConnected: boolean): Promise<LockConnection> {
    const fast = this.opts.fastConnect !== false;

    const state = this.channels.open(lockId);
    const { channel, inbox, hooks: hook } = state;
    hook.progress = (a, t) => opts.onProgress?.(a, t);

    let open = false;
    /** The link is being dropped for a framing violation: frames after it are not read. */
    let violated = false;
    let txCharacteristic: any;
    const onData = (data: Buffer) => {
      if (!violated) channel.receiveFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
    };
    let resolveClosed!: (d: DisconnectInfo) => void;
    const closed = new Promise<DisconnectInfo>((r) => (resolveClosed = r));
    // Once per connection: a second HCI Disconnect could name a handle the controller has
    // already given to another link.
    let dropping: Promise<void> | undefined;
    const drop = () => (dropping ??= this.dropLink(peripheral, closed));
    // A framing violation by the lock (a lost or reordered frame): drop the link once, as the
    // sim transport does; the waiter sees LINK_LOST and the retry resumes on a clean connection.
    hook.violation = (e) => {
      if (violated) return;
      violated = true;
      inbox.fail(new AgentError('LINK_LOST', `framing violation by the lock (${e.message}); link dropped`));
      void drop();
    };
    // Every GATT step of the set-up ends when the link does: noble never answers a request
    // on a dead link, and waiting out each step's own bound would add seconds per retry.
    const lost = closed.then((d) => {
      throw new AgentError('LINK_LOST', `connecting to ${lockId}: ${d.description} (HCI reason 0x${d.reason.toString(16).padStart(2, '0')})`);
    });
    lost.catch(() => undefined);
    const untilLost = <T>(p: Promise<T>): Promise<T> => Promise.race([p, lost]);
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
    let onHandleNotify: ((handle: number, data: Buffer) => void) | undefined;
    try {
      if (!alreadyConnected) peripheral.mtu = null; // noble keeps the last connection's MTU: wait for this one's exchange
      if (!alreadyConnected) await withTimeout(this.noble.connectAsync(peripheral.id, params), 10_000, `connect to ${lockId}`);
      open = true;
      peripheral.once('disconnect', onDisconnect);
      const mtu: number = peripheral.mtu ?? (await untilLost(waitForMtu(peripheral, 2000)));
      if (fast) {
        // Handles from the last connection, if the Database Hash says they still hold;
        // otherwise discover (and learn them). Either way the framing HELLO is written
        // before the CCCD: the lock answers with its HELLO and hello at once (SPEC §13.3).
        let handles = this.known.get(lockId);
        let path: ConnectPath = 'cached-handles';
        if (handles !== undefined) {
          const value: Buffer = await untilLost(withTimeout<Buffer>(peripheral.readHandleAsync(handles.hashHandle), 5000, 'reading the database hash'));
          if (!bytesEqual(new Uint8Array(value), new Uint8Array(handles.hash))) handles = undefined;
        }
        if (handles === undefined) {
          path = 'discovery';
          handles = await untilLost(this.discoverHandles(lockId, peripheral));
        }
        this.lastPath.set(lockId, path);
        if (handles !== undefined) {
          const h = handles;
          onHandleNotify = (handle, data) => {
            if (handle === h.tx) onData(data);
          };
          peripheral.on('handleNotify', onHandleNotify);
          hook.write = (f) => {
            if (open) peripheral.writeHandle(h.rx, Buffer.from(f), true);
          };
          channel.linkUp(Math.max(23, Math.min(517, mtu)));
          await untilLost(withTimeout(peripheral.writeHandleAsync(h.cccd, Buffer.from([0x01, 0x00]), false), 5000, 'subscribe'));
          return this.connectionFor(lockId, peripheral, state, () => open, closed, drop, () => {
            if (onHandleNotify) peripheral.removeListener('handleNotify', onHandleNotify);
          });
        }
        // The host stack would not tell us the handles: subscribe the plain way below.
      } else this.lastPath.set(lockId, 'legacy');
      const { characteristics } = await untilLost(
        withTimeout<any>(
          peripheral.discoverSomeServicesAndCharacteristicsAsync([GATT_SHORT.service], [GATT_SHORT.rx, GATT_SHORT.tx, GATT_SHORT.info]),
          10_000,
          'GATT discovery',
        ),
      );
      const rx = characteristics.find((ch: any) => ch.uuid === GATT_SHORT.rx);
      const tx = characteristics.find((ch: any) => ch.uuid === GATT_SHORT.tx);
      if (!rx || !tx) throw new AgentError('PROTOCOL_VIOLATION', `${lockId} does not expose the locksync service`);
      txCharacteristic = tx;
      tx.on('data', onData);
      hook.write = (f) => {
        if (open) rx.write(Buffer.from(f), true);
      };
      await untilLost(withTimeout(tx.subscribeAsync(), 5000, 'subscribe'));
      channel.linkUp(Math.max(23, Math.min(517, mtu)));
    } catch (e) {
      if (onHandleNotify) peripheral.removeListener('handleNotify', onHandleNotify);
      peripheral.removeListener('disconnect', onDisconnect);
      if (open) await drop();
      channel.linkDown();
      if (e instanceof AgentError) throw e;
      throw new AgentError('LINK_LOST', `connecting to ${lockId}: ${(e as Error).message}`);
    }
    return this.connectionFor(lockId, peripheral, state, () => open, closed, drop, () => undefined);
  }

  /**
   * Drops a link and waits for its Disconnection Complete, at most DISCONNECT_TIMEOUT_MS.
   * noble's disconnectAsync() is not used: it resolves only the last of several concurrent
   * callers (one exclusive 'disconnect' listener per peripheral), so a second drop of the
   * same link — a framing violation, then the sync giving up — waited for ever.
   */
  private async dropLink(peripheral: any, closed: Promise<DisconnectInfo>): Promise<void> {
    try {
      if (peripheral.state === 'connected') peripheral.disconnect();
    } catch {
      // the host stack has already forgotten the link: its Disconnection Complete is due
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, DISCONNECT_TIMEOUT_MS);
      void closed.then(() => (clearTimeout(timer), resolve()));
    });
  }

  private connectionFor(
    lockId: string,
    peripheral: any,
    state: LockChannelState,
    isOpen: () => boolean,
    closed: Promise<DisconnectInfo>,
    drop: () => Promise<void>,
    cleanUp: () => void,
  ): LockConnection {
    void closed.then(cleanUp);
    return connectionOver(state, {
      lockId,
      mtu: peripheral.mtu ?? 23,
      isOpen,
      closed,
      rssi: async () => (await withTimeout(peripheral.updateRssiAsync(), 2000, 'reading the RSSI')) as number,
      disconnect: async () => {
        if (isOpen()) await drop();
      },
    });
  }

  /**
   * Full discovery of the locksync service, its CCCD and the Database Hash, kept for the
   * next connection. undefined when the host stack does not expose handles (then the
   * caller subscribes through the characteristic objects, and nothing is cached).
   */
  private async discoverHandles(lockId: string, peripheral: any): Promise<KnownLock | undefined> {
    const { characteristics } = await withTimeout<any>(
      peripheral.discoverSomeServicesAndCharacteristicsAsync([GATT_SHORT.service], [GATT_SHORT.rx, GATT_SHORT.tx, GATT_SHORT.info, DATABASE_HASH_UUID]),
      10_000,
      'GATT discovery',
    );
    const find = (uuid: string) => characteristics.find((ch: any) => ch.uuid === uuid);
    const rx = find(GATT_SHORT.rx);
    const tx = find(GATT_SHORT.tx);
    const hashCh = find(DATABASE_HASH_UUID);
    if (!rx || !tx) throw new AgentError('PROTOCOL_VIOLATION', `${lockId} does not expose the locksync service`);
    const gatt = (this.noble as any)._bindings?._gatts?.[peripheral.id];
    const charHandles = gatt?._characteristics?.[GATT_SHORT.service];
    if (!hashCh || !charHandles?.[GATT_SHORT.rx]?.valueHandle || !charHandles?.[GATT_SHORT.tx]?.valueHandle || !charHandles?.[DATABASE_HASH_UUID]?.valueHandle) return undefined;
    await withTimeout(tx.discoverDescriptorsAsync(), 5000, 'descriptor discovery');
    const cccd = gatt?._descriptors?.[GATT_SHORT.service]?.[GATT_SHORT.tx]?.['2902']?.handle;
    if (typeof cccd !== 'number') return undefined;
    const hash: Buffer = await withTimeout<Buffer>(hashCh.readAsync(), 5000, 'reading the database hash');
    const known: KnownLock = {
      peripheralId: peripheral.id,
      rx: charHandles[GATT_SHORT.rx].valueHandle,
      tx: charHandles[GATT_SHORT.tx].valueHandle,
      cccd,
      hashHandle: charHandles[DATABASE_HASH_UUID].valueHandle,
      hash: Buffer.from(hash),
    };
    this.known.set(lockId, known);
    return known;
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

/**
 * Longest wait for a dropped link's Disconnection Complete: a controller answers within a
 * connection event or two; past this the link is given up for dead and the caller goes on.
 */
const DISCONNECT_TIMEOUT_MS = 3000;

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
