// A whole locksync world in one process: an authority on SQLite serving HTTP, locks on
// emulated flash, phones running the agent, joined either by the in-process `sim` link or
// by the real bleno/noble host stacks over the virtual radio (`ble`).
//
// One seed drives keys, tokens and the radio; one FakeClock is the true time of locks and
// authority (the radio and the host stacks run in real time, but nothing they do moves
// the world's clock — only advance() does), so a run is reproducible from its seed.
//
// The demo, the QA scenario runner, the end-to-end tests and the benchmarks all build on it.

import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authority, startAuthorityServer, type DoorInfo, type DoorKind, type ProvisioningBundle } from '../authority/index';
import { FakeClock, Lock, NorFlash, Uplink, type PollResult } from '../firmware-sim/index';
import type { DeviceProfileName } from '../firmware-sim/device-profile';
import { SimAir, type SimConnector } from '../ble/sim';
import { deriveSeed32, fromHex, SeededRandom, type LockPolicy } from '../protocol/index';
import { HttpAuthorityClient } from '../mobile-agent/authority-client';
import { CourierCache } from '../mobile-agent/courier';
import { parseCredential, type PhoneCredential } from '../mobile-agent/credential';
import type { LockConnector } from '../mobile-agent/link';
import { doorSync, type SyncOptions, type SyncResult } from '../mobile-agent/sync';
import { unlock, type UnlockOptions, type UnlockResult } from '../mobile-agent/unlock';
import type { Radio } from '../radio/radio';
import type { LinkPolicy } from '../radio/controller';
import type { HostedSession, LockSessionHost } from '../ble/session-host';
import type { LockLinkEvents } from '../ble/lock-server';
import { AdvertisingSchedule, type AdvertisingScheduleSpec, type AdvertisingTrigger } from '../firmware-sim/advertising';
import { BatteryMeter } from '../firmware-sim/battery';
import { ProfiledConnector, type PhoneProfile, type ProfileEvent } from './phone-profiles';
import { startAuthorityThread, type AuthorityThread } from './authority-thread';

/** The authority's HTTP server as the world holds it: on this thread or its own (`authorityThread`). */
export type WorldAuthorityServer = AuthorityThread;

export type WorldTransport = 'sim' | 'ble';

export interface WorldDoorSpec {
  name: string;
  kind?: DoorKind;
  connected?: boolean;
  /** Connected doors poll the authority this often (world clock). */
  uplinkIntervalSeconds?: number;
  /** Advertising schedule: 20 ms for 30 s after a trigger, then a slower interval (firmware-sim/advertising.ts). */
  advertising?: AdvertisingScheduleSpec;
}

export interface WorldOptions {
  seed?: string | number;
  /** Working directory (database, keys, captures). Default: a fresh temp dir, removed on close. */
  dir?: string;
  transport?: WorldTransport;
  timeZone?: string;
  /** World clock at start, unix ms. */
  startMs?: number;
  lockPolicy?: Partial<LockPolicy>;
  doors: WorldDoorSpec[];
  phones: string[];
  /**
   * Phone behaviour profiles by phone name (world/phone-profiles.ts): a phone with one
   * finds locks, connects and fails the way its OS does, in world time. Without one a
   * phone finds a lock in reach at once and never misses a connect.
   */
  phoneProfiles?: Record<string, PhoneProfile>;
  /** A phone this close to a door reaches it (placeAt; default 5 m). */
  reachMetres?: number;
  /** `ble` only: link policy for every controller, and btsnoop capture directory. */
  radio?: {
    linkPolicy?: LinkPolicy;
    captureDir?: string;
    advertisingIntervalMs?: number;
    /** Model time runs this many times faster than wall time (long transfers in benchmarks). */
    timeScale?: number;
    /** ATT MTU every phone asks for when it connects (noble's default: 247). */
    phoneMtu?: number;
    /** Locks ask the phone for slower connection parameters after each sync (L2CAP Connection Parameter Update Request). */
    lockIdleParametersAfterSync?: boolean;
    /**
     * How often each phone's controller replaces its resolvable private address (LE privacy,
     * radio/controller.ts): phones are only ever seen under an RPA from their own IRK, as
     * Android and iOS phones are. Default PHONE_RPA_ROTATION_MS (15 min); 0 turns privacy
     * off (the phone shows its public address, as noble alone would).
     */
    phoneAddressRotationMs?: number;
  };
  /**
   * Phones that behave as ones predating fast reconnects and batches (SPEC §13.1, §6.5): a
   * scan before every connection, full GATT discovery, subscribe then HELLO, and every
   * request alone. The others use cached handles and batch when the lock offers it.
   */
  legacyPhones?: string[];
  /** `sim` only: ATT MTU of the in-process link. */
  simMtu?: number;
  /**
   * Join an existing property instead of creating one: this world's authority process opens
   * it (a SQLite file, or a PostgreSQL URL that other processes serve too) and serves its
   * phones over HTTP. A fleet spread over processes gives each shard its own world this way.
   */
  property?: { dbPath: string; keyDir?: string; managerToken: string };
  /**
   * Lock device profile (firmware-sim/device-profile.ts): every lock's work is charged at
   * that MCU's published timings — on the world clock, and over `ble` also as a delay of
   * the lock's answers on the radio clock. Default `host`: no model.
   */
  device?: DeviceProfileName;
  /** Called for every notable thing that happens (narration, traces). */
  onEvent?: (e: WorldEvent) => void;
  /**
   * Every whole session message a lock sends or receives, in the order the lock handles
   * them, whatever the transport (`sim` or the real stacks): the reassembled CBOR, not the
   * frames that carried it. What a seed reproduces is pinned by these bytes.
   */
  onSessionMessage?: (m: WorldSessionMessage) => void;
  /**
   * Serve the authority's HTTP API from a worker thread of its own, as a cloud authority runs
   * on its own machine (world/authority-thread.ts): its CPU no longer takes turns with the
   * radio, the host stacks and the locks on this event loop. `world.authority` stays here,
   * on the same database. The benchmarks use it; the default serves from this thread.
   */
  authorityThread?: boolean;
  /** Every event a lock's firmware logs (firmware-sim LockLog), with the door's name. */
  onLockLog?: (door: string, event: string, fields: Record<string, unknown>) => void;
  /**
   * Build the property model in the same authority transaction that provisions the locks,
   * so every lock's version 1 is its full compiled table rather than an empty one (the QA
   * scenarios' version convention). Called with the doors by name; device enrolments it
   * returns are attached to the named phones once they exist.
   */
  setup?: (ctx: { authority: Authority; doors: ReadonlyMap<string, DoorInfo & { lockId: string }> }) => WorldEnrolment[] | void;
}

export interface WorldSessionMessage {
  door: string;
  lockId: string;
  direction: 'to-lock' | 'from-lock';
  bytes: Uint8Array;
}

/** A device the setup enrolled for a phone (see `WorldOptions.setup`). */
export interface WorldEnrolment {
  phone: string;
  deviceId: number;
  token: string;
  secretKeyHex: string;
}

export type WorldEvent =
  | { kind: 'sync'; phone: string; door: string; event: Parameters<NonNullable<SyncOptions['onEvent']>>[0] }
  | { kind: 'uplink'; door: string; result: PollResult }
  | { kind: 'move'; phone: string; near: string | null }
  | { kind: 'power'; door: string; state: 'cut' | 'on' }
  | { kind: 'phone'; phone: string; door: string; event: ProfileEvent };

export interface WorldDoor {
  name: string;
  doorId: number;
  lockId: string;
  connected: boolean;
  uplinkIntervalSeconds: number;
  flash: NorFlash;
  lock: Lock;
  lockToken: string;
  devicePublicKey: Uint8Array;
  /** Radio controller name (`ble`). */
  controller?: string;
  /** Stops the BLE server (`ble`). */
  /** What the transports serve: always the lock currently booted on this door. */
  host: LockSessionHost;
  stopServing?: (() => Promise<void>) | undefined;
  refreshAdvert?: (() => Promise<void>) | undefined;
  /** `ble`: the radio goes silent on power loss and advertises again after reboot. */
  pauseServing?: (() => Promise<void>) | undefined;
  resumeServing?: (() => Promise<void>) | undefined;
  uplink?: Uplink;
  nextUplinkAtMs: number;
  poweredOff: boolean;
  driftPpm: number;
  /** When the lock advertises fast and when slowly (world clock). */
  advertising: AdvertisingSchedule;
  /** State of charge, drained by adverts, connections, flash and unlocks (firmware-sim/battery.ts). */
  battery?: BatteryMeter;
}

export interface WorldPhone {
  name: string;
  connector: LockConnector;
  cache: CourierCache;
  /** Door the phone stands at (within reach), or null (away from every door). */
  near: string | null;
  /** Metres from the door it stands at (moveTo: about 1 m). */
  distanceM: number;
  /** Its OS's behaviour, if it has a profile (the connector then is a ProfiledConnector). */
  profile?: PhoneProfile;
  deviceId?: number;
  token?: string;
  secretKeyHex?: string;
  controller?: string;
  /**
   * Grants the phone's app has been given so far, with the fetch that last listed each: it
   * keeps them after a revocation (the lock may not have synced yet).
   */
  knownGrants: Map<string, { lockId: string; credId: number; lastListed: number }>;
  /** Fetches of the phone's credential so far (orders knownGrants by recency). */
  fetches: number;
}

/** Radio controller names allow [A-Za-z0-9._-]: door and phone names may not. */
export function controllerName(role: 'lock' | 'phone', name: string): string {
  return `${role}-${name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-')}`;
}

/** Metres between doors and from a phone to the door it stands at. */
const DOOR_SPACING_M = 20;
const AT_DOOR_M = 1;

export class World {
  readonly doors = new Map<string, WorldDoor>();
  readonly phones = new Map<string, WorldPhone>();
  /** Doors by lock id: a phone's reach is asked on every sync, and a fleet has thousands of doors. */
  private readonly doorsByLockId = new Map<string, WorldDoor>();
  private readonly ownsDir: boolean;

  private constructor(
    readonly opts: WorldOptions,
    readonly dir: string,
    readonly seed: string,
    readonly clock: FakeClock,
    readonly authority: Authority,
    readonly server: WorldAuthorityServer,
    readonly managerToken: string,
    readonly transport: WorldTransport,
    readonly radio: Radio | undefined,
    readonly simAir: SimAir | undefined,
  ) {
    this.ownsDir = opts.dir === undefined;
  }

  static async create(opts: WorldOptions): Promise<World> {
    const seed = String(opts.seed ?? 1);
    const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'locksync-world-'));
    mkdirSync(dir, { recursive: true });
    const clock = new FakeClock(opts.startMs ?? Date.UTC(2026, 10, 23, 14, 0, 0)); // Mon 23 Nov 2026, 09:00 New York
    const now = () => Math.floor(clock.nowMs() / 1000);
    let authority: Authority;
    let managerToken: string;
    let dbPath: string;
    if (opts.property !== undefined) {
      dbPath = opts.property.dbPath;
      authority = Authority.open({ dbPath, ...(opts.property.keyDir !== undefined ? { keyDir: opts.property.keyDir } : {}), now });
      managerToken = opts.property.managerToken;
    } else {
      const initOpts: Parameters<typeof Authority.init>[0] = { dbPath: join(dir, 'authority.db'), seed: `world:${seed}`, timeZone: opts.timeZone ?? 'America/New_York', now };
      if (opts.lockPolicy) initOpts.policy = opts.lockPolicy;
      ({ authority, managerToken } = Authority.init(initOpts));
      dbPath = initOpts.dbPath;
    }
    let server: WorldAuthorityServer;
    try {
      server = opts.authorityThread
        ? await startAuthorityThread({ dbPath, ...(opts.property?.keyDir !== undefined ? { keyDir: opts.property.keyDir } : {}), host: '127.0.0.1', maxWaitSeconds: 0, clock })
        : await startAuthorityServer({ dbPath, authority, port: 0, host: '127.0.0.1', maxWaitSeconds: 0 });
    } catch (e) {
      authority.close();
      throw e;
    }
    const transport = opts.transport ?? 'sim';
    let radio: Radio | undefined;
    let simAir: SimAir | undefined;
    if (transport === 'ble') {
      const { startRadio } = await import('../radio/radio');
      const controllers = [...opts.doors.map((d) => controllerName('lock', d.name)), ...opts.phones.map((p) => controllerName('phone', p))];
      const { PHONE_RPA_ROTATION_MS } = await import('../radio/controller');
      const rotationMs = opts.radio?.phoneAddressRotationMs ?? PHONE_RPA_ROTATION_MS;
      const perController: NonNullable<Parameters<typeof startRadio>[0]['perController']> = {};
      opts.doors.forEach((d, i) => (perController[controllerName('lock', d.name)] = { position: { x: i * DOOR_SPACING_M, y: 0 } }));
      opts.phones.forEach((p, i) => {
        const name = controllerName('phone', p);
        perController[name] = { position: { x: -1000 - i * 50, y: 50 } };
        // Each phone's IRK comes from the world's seed: a run reproduces its addresses.
        if (rotationMs > 0) perController[name]!.privacy = { irk: Buffer.from(deriveSeed32(String(seed), `irk:${name}`).slice(0, 16)), rotationMs };
      });
      const radioOpts: Parameters<typeof startRadio>[0] = {
        dir: join(dir, 'radio'),
        controllers,
        seed,
        perController,
        // Low transmit power: a phone reaches a door within a few metres, as in the field.
        propagation: { txPowerDbm: -30 },
        controlSocket: false,
      };
      if (opts.radio?.linkPolicy) radioOpts.linkPolicy = opts.radio.linkPolicy;
      if (opts.radio?.captureDir) radioOpts.captureDir = opts.radio.captureDir;
      if (opts.radio?.timeScale !== undefined) radioOpts.timeScale = opts.radio.timeScale;
      radio = await startRadio(radioOpts);
      // Every noble/bleno instance adds a process 'exit' listener (to close its UART): with
      // one per controller, Node's default limit of 10 warns about a leak that is not one.
      process.setMaxListeners(Math.max(process.getMaxListeners(), 10 + 2 * controllers.length));
    } else {
      simAir = new SimAir(opts.simMtu ?? 185);
    }
    const world = new World(opts, dir, seed, clock, authority, server, managerToken, transport, radio, simAir);
    try {
      // Readiness: the authority answers over HTTP before the world is handed out. This is
      // also the process's first fetch, which loads Node's HTTP client (undici, ~18 ms) — a
      // cost otherwise paid by the first Door Sync while its radio shares this event loop.
      await new HttpAuthorityClient(server.url, '').health();
      if (opts.setup) {
        const setup = opts.setup;
        const provisioned = authority.batch(() => {
          const doors = new Map<string, DoorInfo & { lockId: string }>();
          const bundles: ProvisioningBundle[] = [];
          for (const d of opts.doors) {
            const info = authority.addDoor({ name: d.name, kind: d.kind ?? 'private', connected: d.connected ?? false });
            const bundle = authority.provisionLock(info.id);
            bundles.push(bundle);
            doors.set(d.name, { ...info, lockId: bundle.lockId });
          }
          const enrolments = setup({ authority, doors }) ?? [];
          return { doors, bundles, enrolments };
        });
        for (const [i, d] of opts.doors.entries()) {
          const info = provisioned.doors.get(d.name) as DoorInfo;
          await world.addDoor(d, { info, bundle: provisioned.bundles[i] as ProvisioningBundle });
        }
        for (const p of opts.phones) await world.addPhone(p);
        for (const e of provisioned.enrolments) {
          const phone = world.phone(e.phone);
          phone.deviceId = e.deviceId;
          phone.token = e.token;
          phone.secretKeyHex = e.secretKeyHex;
          world.credentialOf(e.phone);
        }
      } else {
        for (const d of opts.doors) await world.addDoor(d);
        for (const p of opts.phones) await world.addPhone(p);
      }
    } catch (e) {
      await world.close();
      throw e;
    }
    return world;
  }

  get url(): string {
    return this.server.url;
  }

  // -------------------------------------------------------------------------
  // Set-up

  private async addDoor(spec: WorldDoorSpec, provisioned?: { info: DoorInfo; bundle: ProvisioningBundle }): Promise<void> {
    const info: DoorInfo = provisioned?.info ?? this.authority.addDoor({ name: spec.name, kind: spec.kind ?? 'private', connected: spec.connected ?? false });
    const bundle = provisioned?.bundle ?? this.authority.provisionLock(info.id);
    const { flash, devicePublicKey } = this.installLock(spec, bundle);
    const { token } = this.authority.registerLockDevice(bundle.lockId, Buffer.from(devicePublicKey).toString('hex'));
    await this.bringUp(spec, info, bundle, flash, devicePublicKey, token);
  }

  /**
   * Doors whose locks the caller provisioned at the authority already (for instance in bulk,
   * with `Authority.addDoorsWithLocks`): each lock is installed on its own flash, all their
   * device keys are registered in one transaction, and each lock boots and is served.
   */
  async addProvisionedDoors(entries: readonly { spec: WorldDoorSpec; info: DoorInfo; bundle: ProvisioningBundle }[]): Promise<void> {
    for (const e of entries) if (this.doors.has(e.spec.name)) throw new Error(`door "${e.spec.name}" is already in this world`);
    const installed = entries.map((e) => this.installLock(e.spec, e.bundle));
    const registered = this.authority.registerLockDevices(entries.map((e, i) => ({ lockId: e.bundle.lockId, devicePublicKey: Buffer.from((installed[i] as { devicePublicKey: Uint8Array }).devicePublicKey).toString('hex') })));
    for (const [i, e] of entries.entries()) {
      const { flash, devicePublicKey } = installed[i] as { flash: NorFlash; devicePublicKey: Uint8Array };
      await this.bringUp(e.spec, e.info, e.bundle, flash, devicePublicKey, (registered[i] as { token: string }).token);
    }
  }

  /** The installer writes the bundle to a fresh lock's flash; the lock makes its device key. */
  private installLock(spec: WorldDoorSpec, bundle: ProvisioningBundle): { flash: NorFlash; devicePublicKey: Uint8Array } {
    const flash = new NorFlash(undefined, { seed: `${this.seed}:flash:${spec.name}` });
    const deviceSeed = deriveSeed32(this.seed, `lock-device:${bundle.lockId}`);
    const { devicePublicKey } = Lock.provision(
      flash,
      { lockId: bundle.lockId, rootPublicKeys: bundle.rootPublicKeys.map(fromHex), lockSecret: fromHex(bundle.lockSecret), timeZone: bundle.timeZone, policy: bundle.policy },
      deviceSeed,
    );
    return { flash, devicePublicKey };
  }

  private async bringUp(spec: WorldDoorSpec, info: DoorInfo, bundle: ProvisioningBundle, flash: NorFlash, devicePublicKey: Uint8Array, token: string): Promise<void> {
    const door: WorldDoor = {
      name: spec.name,
      doorId: info.id,
      lockId: bundle.lockId,
      connected: spec.connected ?? false,
      uplinkIntervalSeconds: spec.uplinkIntervalSeconds ?? 60,
      flash,
      lock: undefined as unknown as Lock,
      host: undefined as unknown as LockSessionHost,
      lockToken: token,
      devicePublicKey,
      nextUplinkAtMs: 0,
      poweredOff: false,
      driftPpm: 0,
      advertising: new AdvertisingSchedule(spec.advertising ?? {}, this.clock.nowMs()),
    };
    door.host = {
      lockId: bundle.lockId,
      advert: () => door.lock.advert(),
      info: () => door.lock.info(),
      openSession: () => this.tappedSession(door),
    };
    this.doors.set(spec.name, door);
    this.doorsByLockId.set(door.lockId, door);
    // A freshly installed lock has its clock set by the installer's app (trusted).
    this.bootLock(door, { continueAtMs: this.clock.nowMs(), trusted: true });
    door.battery = new BatteryMeter(() => door.lock, flash, door.advertising, { nowMs: this.clock.nowMs() });
    if (this.transport === 'ble') door.controller = controllerName('lock', spec.name);
    await this.serve(door);
  }

  /** The booted lock's session, with every message it handles reported to onSessionMessage. */
  private tappedSession(door: WorldDoor): HostedSession {
    const session = this.deviceTimedSession(door, door.lock.openSession());
    const tap = this.opts.onSessionMessage;
    if (!tap) return session;
    const report = (direction: WorldSessionMessage['direction'], bytes: Uint8Array): void => tap({ door: door.name, lockId: door.lockId, direction, bytes });
    return {
      hello: () => {
        const hello = session.hello();
        report('from-lock', hello);
        return hello;
      },
      handle: (message) => {
        report('to-lock', message);
        const reportAll = (answers: Uint8Array[]): Uint8Array[] => {
          for (const a of answers) report('from-lock', a);
          return answers;
        };
        const answers = session.handle(message);
        return answers instanceof Promise ? answers.then(reportAll) : reportAll(answers);
      },
      receiving: (buffer, held) => session.receiving?.(buffer, held),
      close: () => session.close(),
    };
  }

  /**
   * Over `ble` with a device profile, a lock answers only once its work would have been
   * done on the device: the answers wait the charged time on the radio's model clock.
   */
  private deviceTimedSession(door: WorldDoor, session: HostedSession): HostedSession {
    const radio = this.radio;
    if (radio === undefined || (this.opts.device ?? 'host') === 'host') return session;
    return {
      hello: () => session.hello(),
      handle: async (message) => {
        const answers = await session.handle(message);
        const ms = door.lock.lastChargedMs;
        if (ms > 0) await new Promise<void>((done) => radio.clock.at(radio.clock.nowUs() + ms * 1000, done));
        return answers;
      },
      receiving: (buffer, held) => session.receiving?.(buffer, held),
      close: () => session.close(),
    };
  }

  private bootLock(door: WorldDoor, rtc: { continueAtMs?: number; trusted?: boolean } = {}): void {
    const rtcOpts: { driftPpm?: number; continueAtMs?: number; trusted?: boolean } = { driftPpm: door.driftPpm };
    if (rtc.continueAtMs !== undefined) rtcOpts.continueAtMs = rtc.continueAtMs;
    if (rtc.trusted !== undefined) rtcOpts.trusted = rtc.trusted;
    door.lock = Lock.boot({
      flash: door.flash,
      clock: this.clock,
      timers: this.clock,
      random: new SeededRandom(`${this.seed}:lock-random:${door.name}:${this.clock.nowMs()}`),
      rtc: rtcOpts,
      ...(this.opts.device !== undefined ? { device: this.opts.device } : {}),
      ...(this.opts.onLockLog !== undefined ? { log: (event: string, fields: Record<string, unknown>) => this.opts.onLockLog?.(door.name, event, fields) } : {}),
    });
    door.advertising?.trigger(this.clock.nowMs(), 'boot');
    if (door.connected) {
      door.uplink = new Uplink(door.lock, { baseUrl: this.url, token: door.lockToken, waitSeconds: 0 });
      door.nextUplinkAtMs = this.clock.nowMs() + door.uplinkIntervalSeconds * 1000;
    }
  }

  private async serve(door: WorldDoor): Promise<void> {
    // A power cut armed at a flash operation fires inside the lock while it handles a
    // message: the transport drops the link, and the lock goes off the air until reboot().
    const events: LockLinkEvents = {
      onSessionFailure: () => {
        if (!door.flash.isPowered) void this.markPoweredOff(door);
      },
    };
    if (this.simAir) {
      this.simAir.addLock(door.host, { events });
      return;
    }
    const { serveLockOverBle } = await import('../ble/peripheral');
    const radio = this.radio as Radio;
    const served = await serveLockOverBle(door.host, radio.controller(door.controller as string).transport, {
      advertisingIntervalMs: this.opts.radio?.advertisingIntervalMs ?? 20,
      events,
      ...(this.opts.radio?.lockIdleParametersAfterSync ? { idleParametersAfterSync: true } : {}),
    });
    door.stopServing = () => served.stop();
    door.refreshAdvert = () => served.refreshAdvert();
    door.pauseServing = () => served.pause();
    door.resumeServing = () => served.resume();
  }

  private async addPhone(name: string): Promise<void> {
    const cache = new CourierCache(join(this.dir, 'phones', name));
    let connector: LockConnector;
    const phone: WorldPhone = { name, connector: undefined as unknown as LockConnector, cache, near: null, distanceM: AT_DOOR_M, knownGrants: new Map(), fetches: 0 };
    if (this.simAir) {
      connector = this.simAir.connector(name, (lockId) => this.canReach(phone, lockId));
    } else {
      const { NobleConnector } = await import('../ble/central');
      phone.controller = controllerName('phone', name);
      const connectorOpts: Parameters<typeof NobleConnector.open>[1] = { scanTimeoutMs: 1500 };
      if (this.opts.legacyPhones?.includes(name)) connectorOpts.fastConnect = false;
      if (this.opts.radio?.phoneMtu !== undefined) connectorOpts.connection = { mtu: this.opts.radio.phoneMtu };
      connector = await NobleConnector.open((this.radio as Radio).controller(phone.controller).transport, connectorOpts);
    }
    const profile = this.opts.phoneProfiles?.[name];
    if (profile !== undefined) {
      phone.profile = { ...profile };
      connector = new ProfiledConnector(connector, {
        profile: () => phone.profile as PhoneProfile,
        scheduleOf: (lockId) => {
          const door = this.doorByLockId(lockId);
          return door && !door.poweredOff ? door.advertising : undefined;
        },
        canReach: (lockId) => this.canReach(phone, lockId),
        distance: () => ({ metres: phone.distanceM, rangeM: this.reachMetres }),
        nowMs: () => this.clock.nowMs(),
        advance: (ms) => this.advance(ms),
        random: new SeededRandom(`${this.seed}:phone-profile:${name}`),
        onEvent: (event) => {
          const door = phone.near ?? '';
          this.opts.onEvent?.({ kind: 'phone', phone: name, door, event });
        },
        onIntervalPhase: (_lockId, phase) => {
          // The phone's controller runs the link at the OS's interval for each phase.
          if (this.radio && phone.controller) this.radio.setLinkPolicy(phone.controller, { ...this.opts.radio?.linkPolicy, intervalMs: phase.intervalMs });
        },
      });
    }
    phone.connector = connector;
    this.phones.set(name, phone);
  }

  get reachMetres(): number {
    return this.opts.reachMetres ?? 5;
  }

  private doorByLockId(lockId: string): WorldDoor | undefined {
    return this.doorsByLockId.get(lockId);
  }

  /** Foreground or background: how the phone's OS lets its app scan from now on. */
  setAppState(phoneName: string, app: PhoneProfile['app']): void {
    const phone = this.phone(phoneName);
    if (!phone.profile) throw new Error(`phone ${phoneName} has no behaviour profile`);
    phone.profile.app = app;
  }

  /** Something made the lock advertise fast again (a keypad touch, a link that ended). */
  triggerAdvertising(doorName: string, cause: AdvertisingTrigger): void {
    this.door(doorName).advertising.trigger(this.clock.nowMs(), cause);
  }

  private canReach(phone: WorldPhone, lockId: string): boolean {
    const door = this.doorsByLockId.get(lockId);
    return door !== undefined && phone.near === door.name && !door.poweredOff;
  }

  /** Enrol the phone's device key for a user or partner (deterministic from the seed). */
  enrolPhone(phoneName: string, owner: { userId: number } | { partnerId: number }): void {
    const phone = this.phone(phoneName);
    const r = this.authority.enrolDeviceWithNewKey(owner, `${this.seed}:${phoneName}`);
    phone.deviceId = r.deviceId;
    phone.token = r.token;
    phone.secretKeyHex = r.credentialFile.secretKey;
    this.credentialOf(phoneName);
  }

  /**
   * The phone's credential: what the authority hands out now, then every grant the app was
   * given before, most recently listed first — a revoked partner's app still holds its key
   * (only the lock can refuse it), and a grant the authority has replaced (re-granted access,
   * a second path to the same door) may be the one a not-yet-synced lock still holds. The
   * agent presents them in this order and moves on after UNKNOWN_CREDENTIAL or EXPIRED.
   */
  credentialOf(phoneName: string): PhoneCredential {
    const phone = this.phone(phoneName);
    if (phone.deviceId === undefined || phone.secretKeyHex === undefined) throw new Error(`phone ${phoneName} has no enrolled device`);
    const fresh = parseCredential(this.authority.credentialFile(phone.deviceId, phone.secretKeyHex), `credential of ${phoneName}`);
    const fetch = ++phone.fetches;
    const current = new Set<string>();
    for (const g of fresh.credentials) {
      const key = `${g.lockId}/${g.credId}`;
      current.add(key);
      phone.knownGrants.set(key, { lockId: g.lockId, credId: g.credId, lastListed: fetch });
    }
    const kept = [...phone.knownGrants.entries()]
      .filter(([key]) => !current.has(key))
      .sort(([, a], [, b]) => b.lastListed - a.lastListed || b.credId - a.credId)
      .map(([, g]) => ({ lockId: g.lockId, credId: g.credId }));
    return { ...fresh, credentials: [...fresh.credentials, ...kept] };
  }

  door(name: string): WorldDoor {
    const d = this.doors.get(name);
    if (!d) throw new Error(`no door "${name}" (doors: ${[...this.doors.keys()].join(', ')})`);
    return d;
  }

  phone(name: string): WorldPhone {
    const p = this.phones.get(name);
    if (!p) throw new Error(`no phone "${name}" (phones: ${[...this.phones.keys()].join(', ')})`);
    return p;
  }

  // -------------------------------------------------------------------------
  // Movement

  /** Put the phone about a metre (or `metres`) in front of a door (null: far from every door). */
  moveTo(phoneName: string, doorName: string | null, metres = AT_DOOR_M): void {
    const phone = this.phone(phoneName);
    phone.near = doorName;
    phone.distanceM = metres;
    if (this.radio && phone.controller) {
      const ctl = this.radio.controller(phone.controller);
      if (doorName === null) ctl.setPosition(-1000, 50);
      else {
        const i = [...this.doors.keys()].indexOf(doorName);
        ctl.setPosition(i * DOOR_SPACING_M, metres);
      }
    }
    this.opts.onEvent?.({ kind: 'move', phone: phoneName, near: doorName });
  }

  /** Put the phone at an exact distance from a door (`ble`: RSSI and PER follow). */
  placeAt(phoneName: string, doorName: string, metres: number): void {
    const phone = this.phone(phoneName);
    phone.near = metres <= this.reachMetres ? doorName : null;
    phone.distanceM = metres;
    if (this.radio && phone.controller) {
      const i = [...this.doors.keys()].indexOf(doorName);
      this.radio.controller(phone.controller).setPosition(i * DOOR_SPACING_M, metres);
    }
    this.opts.onEvent?.({ kind: 'move', phone: phoneName, near: phone.near });
  }

  // -------------------------------------------------------------------------
  // Phone actions

  authorityClientFor(phoneName: string): HttpAuthorityClient {
    const phone = this.phone(phoneName);
    return new HttpAuthorityClient(this.url, phone.token ?? this.managerToken);
  }

  async sync(phoneName: string, doorName: string, extra: Partial<SyncOptions> & { offline?: boolean } = {}): Promise<SyncResult> {
    const phone = this.phone(phoneName);
    const door = this.door(doorName);
    const { offline, onEvent, ...rest } = extra;
    const opts: SyncOptions = {
      lockId: door.lockId,
      connector: phone.connector,
      cache: phone.cache,
      attempts: 3,
      backoffMs: 100,
      messageTimeoutMs: 15_000,
      ...(this.opts.legacyPhones?.includes(phoneName) ? { pipeline: false } : {}),
      // The caller's listener and the world's (traces, narration) both hear every event.
      onEvent: (event) => {
        onEvent?.(event);
        this.opts.onEvent?.({ kind: 'sync', phone: phoneName, door: doorName, event });
      },
      ...rest,
    };
    // A caller-supplied authority (a traced or hostile courier's view) is kept.
    if (!offline && rest.authority === undefined) opts.authority = this.authorityClientFor(phoneName);
    try {
      return await doorSync(opts);
    } finally {
      // The link ended: the lock advertises fast again for a while.
      door.advertising.trigger(this.clock.nowMs(), 'disconnect');
      await door.refreshAdvert?.().catch(() => undefined);
    }
  }

  async unlock(phoneName: string, doorName: string, extra: Partial<UnlockOptions> & { offline?: boolean } = {}): Promise<UnlockResult> {
    const phone = this.phone(phoneName);
    const door = this.door(doorName);
    const { offline, ...rest } = extra;
    const opts: UnlockOptions = {
      lockId: door.lockId,
      credential: rest.credential ?? this.credentialOf(phoneName),
      connector: phone.connector,
      cache: phone.cache,
      ...rest,
    };
    if (!offline && opts.authority === undefined && extra.passiveSync !== false) opts.authority = this.authorityClientFor(phoneName);
    try {
      return await unlock(opts);
    } finally {
      door.advertising.trigger(this.clock.nowMs(), 'disconnect');
    }
  }

  // -------------------------------------------------------------------------
  // Time, uplinks, power

  /** Run the world clock forward; connected locks poll the authority at their interval. */
  async advance(ms: number): Promise<void> {
    const end = this.clock.nowMs() + ms;
    for (;;) {
      const due = [...this.doors.values()]
        .filter((d) => d.uplink && !d.poweredOff && d.nextUplinkAtMs <= end)
        .sort((a, b) => a.nextUplinkAtMs - b.nextUplinkAtMs)[0];
      if (!due) break;
      if (due.nextUplinkAtMs > this.clock.nowMs()) this.clock.advance(due.nextUplinkAtMs - this.clock.nowMs());
      await this.pollUplink(due.name);
      due.nextUplinkAtMs = this.clock.nowMs() + due.uplinkIntervalSeconds * 1000;
    }
    if (end > this.clock.nowMs()) this.clock.advance(end - this.clock.nowMs());
  }

  async pollUplink(doorName: string): Promise<PollResult> {
    const door = this.door(doorName);
    if (!door.uplink) throw new Error(`door ${doorName} is not internet-connected`);
    const result = await door.uplink.pollOnce();
    this.opts.onEvent?.({ kind: 'uplink', door: doorName, result });
    await door.refreshAdvert?.().catch(() => undefined);
    return result;
  }

  /**
   * Cut the lock's power now, or arm a cut at its k-th flash operation from now (0 = the
   * next one): the lock dies mid-commit, the phone sees the link drop, and only reboot()
   * brings it back.
   */
  async powerCut(doorName: string, atFlashOp?: number): Promise<void> {
    const door = this.door(doorName);
    if (atFlashOp !== undefined) {
      door.flash.cutAfter(atFlashOp);
      return;
    }
    await this.markPoweredOff(door);
  }

  private async markPoweredOff(door: WorldDoor): Promise<void> {
    if (door.poweredOff) return;
    door.poweredOff = true;
    door.lock.shutdown();
    this.simAir?.setInRange(door.lockId, false);
    await door.pauseServing?.().catch(() => undefined);
    this.opts.onEvent?.({ kind: 'power', door: door.name, state: 'cut' });
  }


  /** Power back on: mount flash (rolling back a torn commit), clock lost unless kept. */
  async reboot(doorName: string, opts: { keepClock?: boolean } = {}): Promise<void> {
    const door = this.door(doorName);
    const continueAtMs = opts.keepClock ? door.lock.rtc.nowMs() : undefined;
    await this.markPoweredOff(door);
    door.flash.powerOn();
    door.poweredOff = false;
    this.bootLock(door, continueAtMs === undefined ? {} : { continueAtMs, trusted: true });
    this.simAir?.setInRange(door.lockId, true);
    await door.resumeServing?.();
    this.opts.onEvent?.({ kind: 'power', door: door.name, state: 'on' });
  }

  /** True when the flash lost power (a scheduled cut fired) and the lock must reboot. */
  isPoweredOff(doorName: string): boolean {
    const door = this.door(doorName);
    return door.poweredOff || !door.flash.isPowered;
  }

  setDrift(doorName: string, ppm: number): void {
    const door = this.door(doorName);
    door.driftPpm = ppm;
    door.lock.rtc.setDrift(ppm);
  }

  async close(): Promise<void> {
    for (const p of this.phones.values()) await p.connector.close().catch(() => undefined);
    for (const d of this.doors.values()) {
      d.lock?.shutdown();
      await d.stopServing?.().catch(() => undefined);
    }
    await this.server.close().catch(() => undefined);
    this.authority.close();
    await this.radio?.close();
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

export type { SimConnector };
