// The `sim` transport: locks and phones in one process, joined by an in-memory link that
// still runs every byte through the GATT framing at a chosen MTU. For unit tests, fleets
// of simulated locks and QA scenarios that do not need the host stacks. Faults: drop a
// link now or after N frames, and take a lock out of range.

import { type LockConnection, type LockConnector, type ConnectOptions, type DiscoveredLock, type DisconnectInfo, LockChannels, connectionOver } from '../mobile-agent/link';
import { AgentError } from '../mobile-agent/errors';
import { LockLinkServer, type LockLink, type LockLinkEvents, type LockLinkServerOptions } from './lock-server';
import type { LockSessionHost } from './session-host';

const REMOTE_USER_TERMINATED = 0x13;
const CONNECTION_TIMEOUT = 0x08;

interface SimLock {
  server: LockLinkServer;
  inRange: boolean;
  rssi: number;
}

interface ActiveLink {
  lockId: string;
  framesLeft: number | undefined;
  drop: (reason: number, description: string) => void;
}

/** One shared "air": register locks, then create phone connectors on it. */
export class SimAir {
  private readonly locks = new Map<string, SimLock>();
  private readonly links = new Set<ActiveLink>();
  /** Frames carried in total (both directions) — handy for fault schedules. */
  framesCarried = 0;

  constructor(readonly mtu = 185) {}

  addLock(host: LockSessionHost, opts: { rssi?: number; events?: LockLinkEvents; link?: LockLinkServerOptions } = {}): LockLinkServer {
    const server = new LockLinkServer(host, opts.events, opts.link);
    server.requestDisconnect = () => this.dropLink(host.lockId);
    this.locks.set(host.lockId, { server, inRange: true, rssi: opts.rssi ?? -60 });
    return server;
  }

  removeLock(lockId: string): void {
    this.setInRange(lockId, false);
    this.locks.delete(lockId);
  }

  /** Out of range: adverts stop being heard and live links die by supervision timeout. */
  setInRange(lockId: string, inRange: boolean): void {
    const l = this.locks.get(lockId);
    if (!l) return;
    l.inRange = inRange;
    if (!inRange) for (const link of [...this.links]) if (link.lockId === lockId) link.drop(CONNECTION_TIMEOUT, 'supervision timeout (out of range)');
  }

  /** Drop every live link to `lockId` now, or after `afterFrames` more frames. */
  dropLink(lockId: string, afterFrames?: number): void {
    for (const link of [...this.links]) {
      if (link.lockId !== lockId) continue;
      if (afterFrames === undefined || afterFrames <= 0) link.drop(CONNECTION_TIMEOUT, 'link dropped by fault injection');
      else link.framesLeft = afterFrames;
    }
  }

  /** A phone. `canReach` decides per lock whether this phone is in range (default: all in-range locks). */
  connector(name = 'phone', canReach?: (lockId: string) => boolean): SimConnector {
    return new SimConnector(this, name, canReach);
  }

  /** @internal */
  lockEntry(lockId: string): SimLock | undefined {
    return this.locks.get(lockId);
  }
  /** @internal */
  allLocks(): [string, SimLock][] {
    return [...this.locks];
  }
  /** @internal */
  track(link: ActiveLink): () => void {
    this.links.add(link);
    return () => this.links.delete(link);
  }
}

export class SimConnector implements LockConnector {
  readonly transport = 'sim';
  private readonly channels = new LockChannels();

  constructor(
    private readonly air: SimAir,
    readonly name: string,
    private readonly canReach: (lockId: string) => boolean = () => true,
  ) {}

  async scan(_timeoutMs: number, filterLockId?: string): Promise<DiscoveredLock[]> {
    const out: DiscoveredLock[] = [];
    for (const [lockId, l] of this.air.allLocks()) {
      if (!l.inRange || !this.canReach(lockId) || (filterLockId !== undefined && lockId !== filterLockId)) continue;
      const a = l.server.host.advert();
      out.push({ lockId, rssi: l.rssi, version: a.version, flags: a.flags, address: `sim:${lockId}` });
    }
    return out;
  }

  async connect(lockId: string, opts: ConnectOptions = {}): Promise<LockConnection> {
    const lock = this.air.lockEntry(lockId);
    if (!lock || !lock.inRange || !this.canReach(lockId)) throw new AgentError('LOCK_NOT_FOUND', `lock ${lockId} is not advertising in range`);
    // The in-process link connects on the lock's current advert (as a scan for it would hear).
    if (opts.onAdvert) {
      const a = lock.server.host.advert();
      opts.onAdvert({ lockId, rssi: lock.rssi, version: a.version, flags: a.flags, address: `sim:${lockId}` });
    }
    const air = this.air;
    // The in-process link has no MTU exchange: the phone's ask is the connection's MTU.
    const mtu = Math.max(23, Math.min(517, opts.mtu ?? air.mtu));
    const state = this.channels.open(lockId);
    const { channel, inbox, hooks } = state;

    let open = true;
    let resolveClosed!: (d: DisconnectInfo) => void;
    const closed = new Promise<DisconnectInfo>((r) => (resolveClosed = r));
    const link: ActiveLink = {
      lockId,
      framesLeft: undefined,
      drop: (reason, description) => {
        if (!open) return;
        open = false;
        untrack();
        lockLink?.disconnect();
        lockLink = undefined;
        // The lock's channel outlives this link: it must not keep the dead link (and the
        // lock session it reaches) alive through its hooks.
        hooks.write = () => undefined;
        hooks.progress = () => undefined;
        hooks.violation = () => undefined;
        channel.linkDown();
        inbox.fail(new AgentError('LINK_LOST', `${description} (HCI reason 0x${reason.toString(16).padStart(2, '0')})`));
        resolveClosed({ reason, description });
      },
    };
    const untrack = air.track(link);
    // Frames hop through a microtask so neither side re-enters the other.
    const carry = (deliver: () => void) => {
      if (!open) return;
      air.framesCarried++;
      if (link.framesLeft !== undefined && --link.framesLeft <= 0) {
        link.drop(CONNECTION_TIMEOUT, 'link dropped by fault injection');
        return;
      }
      queueMicrotask(() => {
        if (open) deliver();
      });
    };
    let lockLink: LockLink | undefined;
    hooks.write = (f) => carry(() => lockLink?.receiveFrame(f));
    hooks.progress = (a, t) => opts.onProgress?.(a, t);
    hooks.violation = () => link.drop(REMOTE_USER_TERMINATED, 'framing violation by the lock');
    // The phone's name is its identity on the sim link (its address on BLE).
    lockLink = lock.server.connect(mtu, (f) => carry(() => channel.receiveFrame(f)), {
      peer: this.name,
      drop: () => link.drop(REMOTE_USER_TERMINATED, 'disconnected by the lock'),
    });
    channel.linkUp(mtu);

    return connectionOver(state, {
      lockId,
      mtu,
      isOpen: () => open,
      closed,
      rssi: async () => lock.rssi,
      disconnect: async () => link.drop(REMOTE_USER_TERMINATED, 'disconnected by the phone'),
    });
  }

  /** Forget a lock's channel (abandon any transfer in flight). */
  forget(lockId: string): void {
    this.channels.forget(lockId);
  }

  async close(): Promise<void> {
    this.channels.forgetAll();
  }
}
