// The phone's GATT client on noble: scan by the locksync service, pick a lock by the id in
// its scan response, connect, exchange MTU, discover, subscribe, stream frames. A lock met
// before is reconnected as phones do for known devices (SPEC §13.1): straight to its
// address, handles checked by one Database Hash read, the framing HELLO ahead of the CCCD.
// noble is loaded lazily by radio/hosts.ts; any transport it drives works (`uart:`, `hci:`).

import { DATABASE_HASH_BYTES, DATABASE_HASH_UUID, GATT_SHORT, bytesEqual, decodeAdvertData } from '../protocol/index';
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
export interface KnownLock {
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
      // While the connection is set up the caller may start work the advert allows (the
      // agent fetches the updates from the advertised version): told right after noble is
      // asked to connect (setUp). noble then stops the scan and resets the controller
      // before its LE Create Connection (five HCI commands, each a turn of this event loop), and the
      // controller waits for the lock's next advertisement: time the fetch can use, as long
      // as its CPU is not on this thread (a world's authority in its own, authorityThread).
      const advert = { ...entry.advert };
      return this.setUp(lockId, peripheral, params, opts, peripheral.state === 'connected', () => opts.onAdvert?.(advert));
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

  private async setUp(
    lockId: string,
    peripheral: any,
    params: Record<string, number>,
    opts: ConnectOptions,
    alreadyConnected: boolean,
    /** Called once the connection has been asked for (or at once when already connected). */
    onConnectRequested?: () => void,
  ): Promise<LockConnection> {
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
      const connecting = alreadyConnected ? undefined : withTimeout(this.noble.connectAsync(peripheral.id, params), 10_000, `connect to ${lockId}`);
      onConnectRequested?.();
      if (connecting) await connecting;
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
   * The handles of RX, TX, TX's CCCD and the Database Hash at a first contact, in four ATT
   * round trips (SPEC §13.1): Find By Type Value for the locksync service's range, Read By
   * Type for its characteristic declarations, Find Information after TX for the CCCD, Read
   * By Type 0x2B2A for the hash. noble's own discovery takes seven here (primary services
   * until the end of the database, characteristics until the end of the service,
   * descriptors, then a hash read), about 45 ms at a 7.5 ms interval and 180 ms at 30 ms.
   * Kept for the next connection. Where noble's ATT layer is not reachable (another host
   * binding) its own discovery is used; undefined when the stack will not tell handles
   * (the caller then subscribes through noble's characteristic objects, nothing cached).
   */
  private async discoverHandles(lockId: string, peripheral: any): Promise<KnownLock | undefined> {
    const gatt = (this.noble as any)._bindings?._gatts?.[peripheral.id];
    const known = typeof gatt?._queueCommand === 'function' ? await leanDiscovery(lockId, (pdu) => attRequest(gatt, pdu)) : await this.nobleDiscovery(lockId, peripheral);
    if (known === undefined) return undefined;
    const k: KnownLock = { peripheralId: peripheral.id, ...known };
    this.known.set(lockId, k);
    return k;
  }

  /** noble's discovery: all primary services, the service's characteristics, TX's descriptors, then the hash. */
  private async nobleDiscovery(lockId: string, peripheral: any): Promise<Omit<KnownLock, 'peripheralId'> | undefined> {
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
    return {
      rx: charHandles[GATT_SHORT.rx].valueHandle,
      tx: charHandles[GATT_SHORT.tx].valueHandle,
      cccd,
      hashHandle: charHandles[DATABASE_HASH_UUID].valueHandle,
      hash: Buffer.from(hash),
    };
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

// ---------------------------------------------------------------------------------------
// ATT requests of the first-contact discovery (Core Vol 3 Part F §3.4), on noble's queue:
// one request outstanding per bearer, the answer (or an Error Response) ends it.

const ATT_ERROR_RSP = 0x01;
const ATT_FIND_INFO_REQ = 0x04;
const ATT_FIND_INFO_RSP = 0x05;
const ATT_FIND_BY_TYPE_VALUE_REQ = 0x06;
const ATT_FIND_BY_TYPE_VALUE_RSP = 0x07;
const ATT_READ_BY_TYPE_REQ = 0x08;
const ATT_READ_BY_TYPE_RSP = 0x09;
const ATT_ATTRIBUTE_NOT_FOUND = 0x0a;
const PRIMARY_SERVICE = 0x2800;
const CHARACTERISTIC = 0x2803;
const CCCD = 0x2902;
const ATT_TIMEOUT_MS = 5000;

type AttRequest = (pdu: Buffer) => Promise<Buffer>;

/** One request through noble's ATT queue: resolves with the response PDU. */
function attRequest(gatt: any, pdu: Buffer): Promise<Buffer> {
  return withTimeout(
    new Promise<Buffer>((resolve) => gatt._queueCommand(pdu, (rsp: Buffer) => resolve(rsp))),
    ATT_TIMEOUT_MS,
    `ATT request 0x${pdu[0]?.toString(16).padStart(2, '0')}`,
  );
}

/** 128-bit UUID string (no dashes) → its 16 bytes little-endian, as ATT carries it. */
function uuidLe(uuid: string): Buffer {
  return Buffer.from(uuid.match(/../g)?.reverse().join('') ?? '', 'hex');
}

function request(op: number, start: number, end: number, tail?: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(op, 0);
  head.writeUInt16LE(start, 1);
  head.writeUInt16LE(end, 3);
  return tail ? Buffer.concat([head, tail]) : head;
}

/** An Error Response to `op` with Attribute Not Found: the range holds no more. */
function notFound(rsp: Buffer, op: number): boolean {
  return rsp[0] === ATT_ERROR_RSP && rsp[1] === op && rsp[4] === ATT_ATTRIBUTE_NOT_FOUND;
}

function unexpected(lockId: string, what: string, rsp: Buffer): AgentError {
  const detail = rsp[0] === ATT_ERROR_RSP ? `error 0x${rsp[4]?.toString(16).padStart(2, '0')}` : `opcode 0x${rsp[0]?.toString(16).padStart(2, '0')}`;
  return new AgentError('PROTOCOL_VIOLATION', `${lockId}: ${what}: ${detail}`);
}

/**
 * The minimal first-contact discovery (SPEC §13.1), four round trips. Exported for tests
 * with a scripted ATT server; undefined when the lock has no Database Hash (nothing to
 * cache against: the caller falls back to noble's objects).
 */
export async function leanDiscovery(lockId: string, att: AttRequest): Promise<Omit<KnownLock, 'peripheralId'> | undefined> {
  // 1. The service's handle range.
  const type = Buffer.alloc(2);
  type.writeUInt16LE(PRIMARY_SERVICE, 0);
  const svc = await att(request(ATT_FIND_BY_TYPE_VALUE_REQ, 0x0001, 0xffff, Buffer.concat([type, uuidLe(GATT_SHORT.service)])));
  if (notFound(svc, ATT_FIND_BY_TYPE_VALUE_REQ)) throw new AgentError('PROTOCOL_VIOLATION', `${lockId} does not expose the locksync service`);
  if (svc[0] !== ATT_FIND_BY_TYPE_VALUE_RSP || svc.length < 5) throw unexpected(lockId, 'finding the locksync service', svc);
  const start = svc.readUInt16LE(1);
  const end = svc.readUInt16LE(3);
  if (end < start) throw unexpected(lockId, `locksync service range ${start}–${end}`, svc);

  // 2. Characteristic declarations in the range until RX and TX are known (a response holds
  //    declarations of one UUID size only; the next request starts after the last one).
  const rxUuid = uuidLe(GATT_SHORT.rx);
  const txUuid = uuidLe(GATT_SHORT.tx);
  let rx: number | undefined;
  let tx: number | undefined;
  /** Declaration handles in order, to bound TX's descriptors by the next declaration. */
  const declarations: number[] = [];
  for (let from = start; from <= end && (rx === undefined || tx === undefined); ) {
    const rsp = await att(request(ATT_READ_BY_TYPE_REQ, from, end, u16(CHARACTERISTIC)));
    if (notFound(rsp, ATT_READ_BY_TYPE_REQ)) break;
    const len = rsp[1] ?? 0;
    if (rsp[0] !== ATT_READ_BY_TYPE_RSP || (len !== 7 && len !== 21) || (rsp.length - 2) % len !== 0 || rsp.length < 2 + len) throw unexpected(lockId, 'reading characteristic declarations', rsp);
    let last = from;
    for (let o = 2; o + len <= rsp.length; o += len) {
      const decl = rsp.readUInt16LE(o);
      const value = rsp.readUInt16LE(o + 3);
      if (decl < from || decl > end || value <= decl || value > end) throw unexpected(lockId, `characteristic declaration at ${decl}`, rsp);
      declarations.push(decl);
      if (len === 21) {
        const uuid = rsp.subarray(o + 5, o + 21);
        if (uuid.equals(rxUuid)) rx = value;
        else if (uuid.equals(txUuid)) tx = value;
      }
      last = decl;
    }
    if (last < from) break;
    from = last + 1;
  }
  if (rx === undefined || tx === undefined) throw new AgentError('PROTOCOL_VIOLATION', `${lockId} does not expose the locksync service`);

  // 3. TX's CCCD: the 0x2902 among the attributes after TX's value, before the next declaration.
  const txValue = tx;
  const nextDecl = declarations.filter((d) => d > txValue).sort((a, b) => a - b)[0];
  const descEnd = nextDecl !== undefined ? nextDecl - 1 : end;
  let cccd: number | undefined;
  for (let from = txValue + 1; from <= descEnd && cccd === undefined; ) {
    const rsp = await att(request(ATT_FIND_INFO_REQ, from, descEnd));
    if (notFound(rsp, ATT_FIND_INFO_REQ)) break;
    const format = rsp[1];
    const len = format === 1 ? 4 : format === 2 ? 18 : 0;
    if (rsp[0] !== ATT_FIND_INFO_RSP || len === 0 || (rsp.length - 2) % len !== 0 || rsp.length < 2 + len) throw unexpected(lockId, 'finding TX descriptors', rsp);
    let last = from;
    for (let o = 2; o + len <= rsp.length; o += len) {
      const handle = rsp.readUInt16LE(o);
      if (handle < from || handle > descEnd) throw unexpected(lockId, `descriptor at ${handle}`, rsp);
      if (len === 4 && rsp.readUInt16LE(o + 2) === CCCD) {
        cccd = handle;
        break;
      }
      last = handle;
    }
    from = last + 1;
  }
  if (cccd === undefined) throw new AgentError('PROTOCOL_VIOLATION', `${lockId}: TX has no Client Characteristic Configuration descriptor`);

  // 4. The Database Hash, by type, inside the service (where the reference lock keeps it).
  const h = await att(request(ATT_READ_BY_TYPE_REQ, start, end, u16(Number.parseInt(DATABASE_HASH_UUID, 16))));
  if (notFound(h, ATT_READ_BY_TYPE_REQ)) return undefined;
  if (h[0] !== ATT_READ_BY_TYPE_RSP || h[1] !== 2 + DATABASE_HASH_BYTES || h.length < 2 + 2 + DATABASE_HASH_BYTES) throw unexpected(lockId, 'reading the database hash', h);
  return { rx, tx, cccd, hashHandle: h.readUInt16LE(2), hash: Buffer.from(h.subarray(4, 4 + DATABASE_HASH_BYTES)) };
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}
