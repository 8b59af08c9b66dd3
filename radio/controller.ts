// A user-space LE controller behind an HCI (H4) transport: parses the host's commands and
// ACL data, answers with Command Complete/Status, honours the host's event masks, keeps LE
// buffer accounting with Number Of Completed Packets, and drives advertising, scanning,
// initiating and connections on the shared Air.
import { AdvType, type AdvertisingPdu, type Air, type AirAddress, type AirParticipant, type ConnectionAddresses } from './air';
import { LeFeature, claimedFeatures, featureMask, isVendorCommand, supportedCommands, supportedCommandsBitmap, type LeFeatureBit } from './capabilities';
import type { Phy } from './airtime';
import {
  EventCode,
  H4Framer,
  LeSubevent,
  Op,
  Status,
  aclPacket,
  commandComplete,
  commandStatus,
  disconnectionComplete,
  eventPacket,
  leMetaEvent,
  numberOfCompletedPackets,
  parseH4,
  wireToAddress,
} from './hci';
import { createCipheriv } from 'node:crypto';
import { LLID_CONTROL, LLID_CONTINUATION, LLID_START, type Link, type LinkEnd, type LinkParameters, type PendingInstant } from './link';
import type { SeededRandom } from './prng';

/** Where the controller's H4 bytes go (a pty master, or an in-memory pipe in tests). */
export interface HostPort {
  write(packet: Buffer): void;
  close(): void;
}

export type CaptureDirection = 'host-to-controller' | 'controller-to-host';

export interface PacketTap {
  record(packet: Buffer, direction: CaptureDirection, timeUs: number): void;
}

/**
 * Link choices the controller makes itself when it is the central (a phone's controller
 * picks the interval inside the host's range, caps packets per event, upgrades the PHY).
 */
export interface LinkPolicy {
  /** Connection interval to use; default: the host's minimum. */
  intervalMs?: number;
  /** Cap on packets per direction per connection event; 0 = no cap. */
  packetsPerEvent?: number;
  /** PHY to switch to right after connecting ('1M' keeps the default). */
  phy?: Phy;
  /** Largest LL data length this controller accepts or sends (27 … 251). */
  maxDataLength?: number;
  /** Overrides the host's supervision timeout. */
  supervisionTimeoutMs?: number;
}

export interface ControllerOptions {
  name: string;
  /** Public BD_ADDR, "aa:bb:cc:dd:ee:ff". */
  address: string;
  /** Advertise LE Extended Advertising (feature bit 12): noble then uses extended commands. */
  extendedAdvertisingFeature: boolean;
  /** LE ACL buffers: size of one (octets) and how many. */
  aclBufferSize: number;
  aclBufferCount: number;
  linkPolicy: LinkPolicy;
  /**
   * Data length this controller uses for its own transmissions once a data length
   * procedure ran on a link (modern controllers go to the maximum on their own).
   */
  autonomousMaxTxOctets: number;
  /**
   * HCI UART speed in bit/s (8N1: 10 bits a byte), or undefined for an unlimited link. A
   * dongle at 1,000,000 baud moves about 100 kB/s each way, which can bottleneck a 2M PHY
   * link: every H4 packet then takes its bytes' time on the wire in each direction.
   */
  uartBaud?: number;
  /**
   * LE privacy as phones' controllers do it: the device is seen only under a resolvable
   * private address (Vol 6 Part B §1.3.2.2) generated from `irk` and replaced every
   * `rotationMs` — used for scanning, initiating and advertising whatever own address type
   * the host asks for (a phone's OS, not its app, decides its address). Off when absent.
   */
  privacy?: PrivacySettings;
}

export interface PrivacySettings {
  /** Identity Resolving Key, 16 octets (most significant first, as Vol 3 Part H writes keys). */
  irk: Buffer;
  /** How long one private address is used (Android and iOS: about 15 minutes). */
  rotationMs: number;
}

/** Android and iOS replace their resolvable private address about every 15 minutes. */
export const PHONE_RPA_ROTATION_MS = 15 * 60_000;

/**
 * The random address function ah (Vol 3 Part H §2.2.2): e(k, padding ‖ r) mod 2^24, with
 * e = AES-128 and all values most significant octet first.
 */
export function ah(irk: Buffer, prand: Buffer): Buffer {
  const cipher = createCipheriv('aes-128-ecb', irk, null);
  cipher.setAutoPadding(false);
  const block = Buffer.concat([Buffer.alloc(13), prand]);
  const out = Buffer.concat([cipher.update(block), cipher.final()]);
  return out.subarray(13, 16);
}

/**
 * A resolvable private address from an IRK and 22 random bits (Vol 6 Part B §1.3.2.2):
 * prand's two most significant bits are 01; address = prand ‖ ah(IRK, prand). Returned in
 * wire order (least significant octet first), as the controller keeps addresses.
 */
export function resolvablePrivateAddress(irk: Buffer, random22: number): Buffer {
  const prand = Buffer.from([0x40 | ((random22 >> 16) & 0x3f), (random22 >> 8) & 0xff, random22 & 0xff]);
  return Buffer.from([...prand, ...ah(irk, prand)].reverse());
}

/** Whether a wire-order address resolves with `irk` (what a bonded peer's resolving list does). */
export function resolvesWith(irk: Buffer, address: Buffer): boolean {
  const be = Buffer.from(address).reverse();
  if ((be[0]! & 0xc0) !== 0x40) return false;
  return ah(irk, be.subarray(0, 3)).equals(be.subarray(3, 6));
}

/** Depth of the controller's command queue (Num_HCI_Command_Packets when idle). */
const COMMAND_QUEUE_DEPTH = 5;
const DEFAULT_EVENT_MASK = 0x00001fffffffffffn;
const DEFAULT_LE_EVENT_MASK = 0x1fn;
const LE_MAX_DATA_LENGTH = 251;
const LE_MIN_DATA_LENGTH = 27;

// The LE features and commands this controller claims come from radio/capabilities.ts
// (Data Packet Length Extension, LE 2M PHY, and LE Extended Advertising unless --legacy).
// Encryption is deliberately absent: no SMP/LTK support.

/** Advertising sets (extended advertising commands) and their data capacity. */
const MAX_ADVERTISING_SETS = 4;
const MAX_EXTENDED_ADV_DATA = 1650;
/** Largest data one HCI fragment (or one AUX PDU's payload to an HCI report) carries. */
const MAX_ADV_DATA_FRAGMENT = 251;
/** Extended Advertising Report data per report: 255 − subevent, count and 24 fixed octets. */
const MAX_EXT_REPORT_DATA = 229;
/** A connectable AUX_ADV_IND carries AdvA and ADI in its extended header: 255 − 10 octets of data. */
const MAX_CONNECTABLE_EXT_ADV_DATA = 245;

type CommandResult =
  | { kind: 'complete'; params: Buffer }
  | { kind: 'status'; status: number; after?: () => void };

interface ScanState {
  active: boolean;
  ownAddressType: number;
  /** Ext scan: Duration (µs, 0 = until disabled) and Period (µs, 0 = no periodic restart). */
  durationUs: number;
  periodUs: number;
  durationTimer: { cancel(): void } | null;
  intervalUs: number;
  windowUs: number;
  enabled: boolean;
  /** Between a Duration's end and the next Period (ext scan): enabled but not listening. */
  paused: boolean;
  filterDuplicates: boolean;
  extended: boolean;
  reported: Set<string>;
}

interface InitiatorState {
  ownAddressType: number;
  peerAddressType: number;
  peerAddress: Buffer;
  params: LinkParameters;
  extended: boolean;
}

interface AdvertisingState {
  ownAddressType: number;
  intervalUs: number;
  advType: number;
  directAddress: Buffer;
  advData: Buffer;
  scanResponseData: Buffer;
  enabled: boolean;
  nextEventTimer: { cancel(): void } | null;
}

export interface ControllerStats {
  commands: number;
  events: number;
  aclFromHost: number;
  aclToHost: number;
  bufferOverruns: number;
  discardedBytes: number;
  creditOverruns: number;
}

/** One advertising set of the extended advertising commands (Vol 4 Part E §7.8.53–7.8.61). */
interface AdvertisingSet {
  handle: number;
  /** Advertising_Event_Properties: 0 connectable, 1 scannable, 2 directed, 3 high duty, 4 legacy. */
  properties: number;
  intervalUs: number;
  ownAddressType: number;
  peerAddress: Buffer;
  secondaryPhy: 1 | 2;
  sid: number;
  txPowerDbm: number;
  scanRequestNotification: boolean;
  randomAddress: Buffer | null;
  advData: Buffer;
  scanResponseData: Buffer;
  /** Fragments of data being assembled by operations first/intermediate/last. */
  advFragments: Buffer[] | null;
  scanFragments: Buffer[] | null;
  dataId: number;
  enabled: boolean;
  /** Max_Extended_Advertising_Events (0 = no limit) and how many were sent since enable. */
  maxEvents: number;
  eventsSent: number;
  nextEventTimer: { cancel(): void } | null;
  durationTimer: { cancel(): void } | null;
}

const PROP_CONNECTABLE = 0x01;
const PROP_SCANNABLE = 0x02;
const PROP_DIRECTED = 0x04;
const PROP_HIGH_DUTY = 0x08;
const PROP_LEGACY = 0x10;
const PROP_ANONYMOUS = 0x20;

/** Legacy PDU types a set with the legacy property may use (Vol 4 Part E §7.8.53, table). */
const LEGACY_PROPERTIES: Record<number, number> = {
  0x13: AdvType.ADV_IND,
  0x15: AdvType.ADV_DIRECT_IND,
  0x1d: AdvType.ADV_DIRECT_IND,
  0x12: AdvType.ADV_SCAN_IND,
  0x10: AdvType.ADV_NONCONN_IND,
};

export class VirtualController implements AirParticipant {
  readonly name: string;
  address: Buffer;
  /** LE Set Random Address: the controller's random device address (null until the host sets one). */
  private randomAddress: Buffer | null = null;
  /** Privacy: the resolvable private address in use and when it is replaced (model µs). */
  private privateAddress: { address: Buffer; expiresAtUs: number } | null = null;
  /** Every private address this controller has used, in order (tests, `list`). */
  readonly privateAddressHistory: Buffer[] = [];
  readonly features: ReadonlySet<LeFeatureBit>;
  private readonly implementedCommands: ReadonlySet<number>;
  private readonly advertisingSets = new Map<number, AdvertisingSet>();
  /** The peer's address as the connection's CONNECT_IND named it, per connection end. */
  private readonly peerAddresses = new WeakMap<LinkEnd, AirAddress>();
  /** Peripheral: the Connection Parameters Request it has outstanding on a link (one at a time). */
  private readonly parameterRequests = new WeakMap<Link, { timer: { cancel(): void } }>();
  /** Central: requests its host has been told of and not yet answered, per connection handle. */
  private readonly remoteParameterRequests = new Map<number, ParameterRequest>();
  private port: HostPort | null = null;
  readonly taps: PacketTap[] = [];
  private readonly framer = new H4Framer();
  private readonly random: SeededRandom;
  private eventMask = DEFAULT_EVENT_MASK;
  private leEventMask = DEFAULT_LE_EVENT_MASK;
  private leHostSupported = 0;
  private commandStyle: 'unknown' | 'legacy' | 'extended' = 'unknown';
  private suggestedTxOctets = LE_MIN_DATA_LENGTH;
  private defaultPhy: Phy = '1M';
  /** PHYs besides 1M this controller accepts in a PHY update (LE Set Default PHY; all by default). */
  private phyPreferences: Set<Phy> = new Set(['2M']);
  private outstandingCommands = 0;
  private buffersInUse = 0;
  private readonly completedPackets = new Map<number, number>();
  readonly connections = new Map<number, LinkEnd>();
  private scan: ScanState = this.defaultScanState();
  private initiator: InitiatorState | null = null;
  private advertising: AdvertisingState = this.defaultAdvertisingState();
  readonly stats: ControllerStats = { commands: 0, events: 0, aclFromHost: 0, aclToHost: 0, bufferOverruns: 0, discardedBytes: 0, creditOverruns: 0 };

  // Faults.
  hung = false;
  private readonly failingCommands = new Map<number, { status: number; remaining: number }>();
  private corruption: { probability: number; remaining: number } | null = null;
  jitterUs = 0;
  private lastDeliveryUs = 0;
  /** Controller → host packets waiting for their time, in order (air time, jitter, UART). */
  private readonly hostQueue: Array<{ atUs: number; packet: Buffer }> = [];
  private readonly fromHostQueue: Array<{ atUs: number; packet: Buffer }> = [];
  /** Model time until which the host→controller UART is still carrying earlier bytes. */
  private hostRxBusyUntilUs = 0;
  private deliveryQueueLength = 0;
  /** Controller taken off the air by HCI_Reset until the host configures it again. */
  private closed = false;

  constructor(
    readonly air: Air,
    readonly options: ControllerOptions,
    random: SeededRandom,
  ) {
    this.name = options.name;
    this.address = Buffer.from(options.address.split(':').reverse().map((b) => parseInt(b, 16)));
    this.features = claimedFeatures({ extendedAdvertising: options.extendedAdvertisingFeature });
    this.implementedCommands = new Set(supportedCommands(this.features).map((c) => c.op));
    this.random = random;
    air.join(this);
  }

  get addressString(): string {
    return wireToAddress(this.address);
  }

  attach(port: HostPort): void {
    this.port = port;
  }

  isOnAir(): boolean {
    return !this.hung && !this.closed;
  }

  close(): void {
    this.closed = true;
    this.stopAdvertising();
    for (const end of [...this.connections.values()]) end.link.closeEnd(end, Status.LOCAL_HOST_TERMINATED);
    this.port?.close();
    this.port = null;
  }

  // ───────────────────────────── host → controller ─────────────────────────────

  /** Bytes from the host's UART. */
  receiveFromHost(chunk: Buffer): void {
    if (this.hung || this.closed) return; // a hung controller reads nothing
    const byteUs = this.uartByteUs();
    if (byteUs > 0) {
      // The bytes finish arriving after their time on the wire, behind what is still arriving.
      const now = this.air.clock.nowUs();
      const at = Math.max(now, this.hostRxBusyUntilUs) + chunk.length * byteUs;
      this.hostRxBusyUntilUs = at;
      this.fromHostQueue.push({ atUs: at, packet: Buffer.from(chunk) });
      if (this.fromHostQueue.length === 1) this.scheduleFromHostQueue();
      return;
    }
    this.readFromHost(chunk);
  }

  /** As scheduleHostQueue, for bytes still crossing the UART from the host. */
  private scheduleFromHostQueue(): void {
    const head = this.fromHostQueue[0];
    if (!head) return;
    this.air.clock.at(head.atUs, () => {
      const now = this.air.clock.nowUs();
      while (this.fromHostQueue.length > 0 && this.fromHostQueue[0]!.atUs <= now) this.readFromHost(this.fromHostQueue.shift()!.packet);
      this.scheduleFromHostQueue();
    });
  }

  private readFromHost(chunk: Buffer): void {
    if (this.hung || this.closed) return;
    const before = this.framer.discardedBytes;
    for (const raw of this.framer.push(chunk)) this.handlePacket(raw);
    this.stats.discardedBytes += this.framer.discardedBytes - before;
  }

  private handlePacket(raw: Buffer): void {
    const now = this.air.clock.nowUs();
    for (const tap of this.taps) tap.record(raw, 'host-to-controller', now);
    const packet = parseH4(raw);
    if (packet.type === 'command') {
      this.stats.commands++;
      this.outstandingCommands++;
      if (this.outstandingCommands > COMMAND_QUEUE_DEPTH) this.stats.creditOverruns++;
      this.handleCommand(packet.opcode, packet.params);
    } else if (packet.type === 'acl') {
      this.stats.aclFromHost++;
      this.handleAclFromHost(packet.handle, packet.pb, packet.data);
    }
  }

  private credits(): number {
    this.outstandingCommands = Math.max(0, this.outstandingCommands - 1);
    return Math.max(0, COMMAND_QUEUE_DEPTH - this.outstandingCommands);
  }

  private handleCommand(op: number, params: Buffer): void {
    const injected = this.failingCommands.get(op);
    let result: CommandResult;
    if (injected && injected.remaining > 0) {
      injected.remaining--;
      if (injected.remaining === 0) this.failingCommands.delete(op);
      result = isStatusCommand(op) ? { kind: 'status', status: injected.status } : { kind: 'complete', params: failureReturn(op, injected.status, params) };
    } else if (!this.implementedCommands.has(op) && op !== Op.READ_LOCAL_COMMANDS && !isVendorCommand(op)) {
      // Not in Supported Commands (or of a feature this controller does not claim).
      result = { kind: 'complete', params: Buffer.from([Status.UNKNOWN_COMMAND]) };
    } else {
      try {
        result = this.executeCommand(op, params);
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        // A short parameter block: readUInt* ran off the end.
        result = isStatusCommand(op)
          ? { kind: 'status', status: Status.INVALID_PARAMETERS }
          : { kind: 'complete', params: failureReturn(op, Status.INVALID_PARAMETERS, params) };
      }
    }
    if (result.kind === 'complete') {
      this.sendEvent(commandComplete(this.credits(), op, result.params));
    } else {
      this.sendEvent(commandStatus(result.status, this.credits(), op));
      if (result.status === Status.SUCCESS) result.after?.();
    }
  }

  /** Execute one command; throws RangeError on short parameters. */
  private executeCommand(op: number, p: Buffer): CommandResult {
    const ok = (extra: Buffer = Buffer.alloc(0)): CommandResult => ({ kind: 'complete', params: Buffer.concat([Buffer.from([Status.SUCCESS]), extra]) });
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: failureReturn(op, status, p) });
    const expectLength = (n: number): boolean => p.length === n;

    switch (op) {
      case Op.RESET:
        this.reset();
        return ok();
      case Op.SET_EVENT_MASK:
        if (!expectLength(8)) return fail(Status.INVALID_PARAMETERS);
        this.eventMask = p.readBigUInt64LE(0);
        return ok();
      case Op.SET_EVENT_MASK_PAGE_2:
      case Op.SET_EVENT_FILTER:
        return ok();
      case Op.READ_LE_HOST_SUPPORTED:
        return ok(Buffer.from([this.leHostSupported, 0]));
      case Op.WRITE_LE_HOST_SUPPORTED:
        if (!expectLength(2) || p[0]! > 1) return fail(Status.INVALID_PARAMETERS);
        this.leHostSupported = p[0]!;
        return ok();
      case Op.READ_LOCAL_VERSION: {
        // HCI/LMP version 0x0C (Core 5.3); manufacturer 0x05F1 (The Linux Foundation, as
        // Zephyr's hci_uart reports) so the hosts' vendor Write BD_ADDR path works.
        const v = Buffer.alloc(8);
        v[0] = 0x0c;
        v.writeUInt16LE(0x0000, 1);
        v[3] = 0x0c;
        v.writeUInt16LE(0x05f1, 4);
        v.writeUInt16LE(0x0000, 6);
        return ok(v);
      }
      case Op.READ_LOCAL_COMMANDS:
        return ok(supportedCommandsBitmap(this.features));
      case Op.READ_LOCAL_FEATURES: {
        // LMP features: only "LE Supported (Controller)" (octet 4 bit 6) and "BR/EDR Not Supported" (octet 4 bit 5).
        const features = Buffer.alloc(8);
        features[4] = 0x60;
        return ok(features);
      }
      case Op.READ_BUFFER_SIZE: {
        // Shared with LE: the same pool LE Read Buffer Size reports.
        const b = Buffer.alloc(7);
        b.writeUInt16LE(this.options.aclBufferSize, 0);
        b[2] = 0;
        b.writeUInt16LE(this.options.aclBufferCount, 3);
        b.writeUInt16LE(0, 5);
        return ok(b);
      }
      case Op.READ_BD_ADDR:
        return ok(this.address);
      case Op.READ_RSSI: {
        if (!expectLength(2)) return fail(Status.INVALID_PARAMETERS);
        const handle = p.readUInt16LE(0);
        const end = this.connections.get(handle);
        if (!end) return fail(Status.UNKNOWN_CONNECTION_ID);
        const r = Buffer.alloc(3);
        r.writeUInt16LE(handle, 0);
        r.writeInt8(Math.max(-127, Math.min(20, Math.round(end.lastRssiDbm))), 2);
        return ok(r);
      }
      case Op.READ_TX_POWER_LEVEL: {
        if (!expectLength(3)) return fail(Status.INVALID_PARAMETERS);
        const handle = p.readUInt16LE(0);
        if (!this.connections.has(handle)) return fail(Status.UNKNOWN_CONNECTION_ID);
        const r = Buffer.alloc(3);
        r.writeUInt16LE(handle, 0);
        r.writeInt8(this.air.medium.model.txPowerDbm, 2);
        return ok(r);
      }
      case Op.DISCONNECT:
        return this.disconnectCommand(p);
      case Op.READ_REMOTE_VERSION:
        return this.remoteProcedure(p, (handle) => {
          const e = Buffer.alloc(8);
          e[0] = Status.SUCCESS;
          e.writeUInt16LE(handle, 1);
          e[3] = 0x0c;
          e.writeUInt16LE(0x05f1, 4);
          e.writeUInt16LE(0, 6);
          this.sendMaskedEvent(EventCode.READ_REMOTE_VERSION_COMPLETE, e);
        });
      case Op.LE_SET_EVENT_MASK:
        if (!expectLength(8)) return fail(Status.INVALID_PARAMETERS);
        this.leEventMask = p.readBigUInt64LE(0);
        return ok();
      case Op.LE_READ_BUFFER_SIZE: {
        const b = Buffer.alloc(3);
        b.writeUInt16LE(this.options.aclBufferSize, 0);
        b[2] = this.options.aclBufferCount;
        return ok(b);
      }
      case Op.LE_READ_LOCAL_FEATURES: {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(featureMask(this.features), 0);
        return ok(b);
      }
      case Op.LE_READ_SUPPORTED_STATES: {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(0x000003ffffffffffn, 0);
        return ok(b);
      }
      case Op.LE_SET_RANDOM_ADDRESS:
        if (!expectLength(6)) return fail(Status.INVALID_PARAMETERS);
        // Vol 4 Part E §7.8.4: disallowed while legacy advertising, scanning or initiating uses it.
        if (this.advertising.enabled || this.scan.enabled || this.initiator) return fail(Status.COMMAND_DISALLOWED);
        this.randomAddress = Buffer.from(p);
        return ok();
      case Op.LE_READ_ADV_TX_POWER:
        return ok(Buffer.from([this.air.medium.model.txPowerDbm & 0xff]));
      case Op.LE_SET_ADV_PARAMS:
        return this.setAdvertisingParameters(p);
      case Op.LE_SET_ADV_DATA:
      case Op.LE_SET_SCAN_RSP_DATA: {
        if (!this.claimStyle('legacy')) return fail(Status.COMMAND_DISALLOWED);
        if (!expectLength(32) || p[0]! > 31) return fail(Status.INVALID_PARAMETERS);
        const data = Buffer.from(p.subarray(1, 1 + p[0]!));
        if (op === Op.LE_SET_ADV_DATA) this.advertising.advData = data;
        else this.advertising.scanResponseData = data;
        return ok();
      }
      case Op.LE_SET_ADV_ENABLE:
        return this.setAdvertisingEnable(p);
      case Op.LE_SET_SCAN_PARAMS:
        return this.setScanParameters(p, false);
      case Op.LE_SET_EXT_SCAN_PARAMS:
        return this.setScanParameters(p, true);
      case Op.LE_SET_SCAN_ENABLE:
        return this.setScanEnable(p, false);
      case Op.LE_SET_EXT_SCAN_ENABLE:
        return this.setScanEnable(p, true);
      case Op.LE_CREATE_CONNECTION:
        return this.createConnection(p, false);
      case Op.LE_EXT_CREATE_CONNECTION:
        return this.createConnection(p, true);
      case Op.LE_CREATE_CONNECTION_CANCEL: {
        if (!this.initiator) return fail(Status.COMMAND_DISALLOWED);
        this.initiator = null;
        // The Command Complete goes first, then the connection attempt's failure.
        this.air.clock.at(this.air.clock.nowUs(), () => this.sendConnectionComplete(Status.UNKNOWN_CONNECTION_ID, null));
        return ok();
      }
      case Op.LE_READ_ACCEPT_LIST_SIZE:
        return ok(Buffer.from([8]));
      case Op.LE_CLEAR_ACCEPT_LIST:
        return ok();
      case Op.LE_CONNECTION_UPDATE:
        return this.connectionUpdate(p);
      case Op.LE_REMOTE_CONN_PARAM_REPLY:
      case Op.LE_REMOTE_CONN_PARAM_NEGATIVE_REPLY:
        return this.remoteParameterReply(op, p);
      case Op.LE_READ_REMOTE_FEATURES:
        return this.remoteProcedure(p, (handle, end) => {
          const e = Buffer.alloc(11);
          e[0] = Status.SUCCESS;
          e.writeUInt16LE(handle, 1);
          e.writeBigUInt64LE(featureMask((end.peer.owner as VirtualController).features), 3);
          this.sendLeEvent(LeSubevent.READ_REMOTE_FEATURES_COMPLETE, e);
        });
      case Op.LE_RAND: {
        const b = Buffer.alloc(8);
        b.writeUInt32LE(this.random.nextUint32(), 0);
        b.writeUInt32LE(this.random.nextUint32(), 4);
        return ok(b);
      }
      case Op.LE_SET_DATA_LENGTH:
        return this.setDataLength(p);
      case Op.LE_READ_SUGGESTED_DATA_LENGTH: {
        const b = Buffer.alloc(4);
        b.writeUInt16LE(this.suggestedTxOctets, 0);
        b.writeUInt16LE(txTimeUs(this.suggestedTxOctets), 2);
        return ok(b);
      }
      case Op.LE_WRITE_SUGGESTED_DATA_LENGTH: {
        if (!expectLength(4)) return fail(Status.INVALID_PARAMETERS);
        const octets = p.readUInt16LE(0);
        const time = p.readUInt16LE(2);
        if (octets < 0x1b || octets > 0xfb || time < 0x148 || time > 0x4290) return fail(Status.INVALID_PARAMETERS);
        this.suggestedTxOctets = octets;
        return ok();
      }
      case Op.LE_READ_MAX_DATA_LENGTH: {
        const b = Buffer.alloc(8);
        b.writeUInt16LE(LE_MAX_DATA_LENGTH, 0);
        b.writeUInt16LE(txTimeUs(LE_MAX_DATA_LENGTH), 2);
        b.writeUInt16LE(LE_MAX_DATA_LENGTH, 4);
        b.writeUInt16LE(txTimeUs(LE_MAX_DATA_LENGTH), 6);
        return ok(b);
      }
      case Op.LE_READ_PHY: {
        if (!expectLength(2)) return fail(Status.INVALID_PARAMETERS);
        const handle = p.readUInt16LE(0);
        const end = this.connections.get(handle);
        if (!end) return fail(Status.UNKNOWN_CONNECTION_ID);
        const phy = end.link.params.phy === '2M' ? 2 : 1;
        const b = Buffer.alloc(4);
        b.writeUInt16LE(handle, 0);
        b[2] = phy;
        b[3] = phy;
        return ok(b);
      }
      case Op.LE_SET_DEFAULT_PHY: {
        if (!expectLength(3)) return fail(Status.INVALID_PARAMETERS);
        const allPhys = p[0]!;
        const tx = p[1]!;
        if ((allPhys & 1) === 0 && tx === 0) return fail(Status.INVALID_PARAMETERS);
        if (tx & ~0x03 && (allPhys & 1) === 0) return fail(Status.UNSUPPORTED_FEATURE);
        this.defaultPhy = (allPhys & 1) === 0 && tx & 0x02 ? '2M' : '1M';
        // With "no preference" (All_PHYs bit set) any PHY is accepted from the peer; otherwise
        // only those listed for both directions.
        const rx = p[2]!;
        const accepts2M = ((allPhys & 1) !== 0 || (tx & 0x02) !== 0) && ((allPhys & 2) !== 0 || (rx & 0x02) !== 0);
        this.phyPreferences = new Set(accepts2M ? ['2M'] : []);
        return ok();
      }
      case Op.LE_SET_PHY:
        return this.setPhy(p);
      case Op.LE_SET_ADV_SET_RANDOM_ADDRESS:
        return this.setAdvertisingSetRandomAddress(p);
      case Op.LE_SET_EXT_ADV_PARAMS:
        return this.setExtendedAdvertisingParameters(p);
      case Op.LE_SET_EXT_ADV_DATA:
        return this.setExtendedAdvertisingData(p, 'adv');
      case Op.LE_SET_EXT_SCAN_RSP_DATA:
        return this.setExtendedAdvertisingData(p, 'scan');
      case Op.LE_SET_EXT_ADV_ENABLE:
        return this.setExtendedAdvertisingEnable(p);
      case Op.LE_READ_MAX_ADV_DATA_LENGTH: {
        if (!this.claimStyle('extended')) return fail(Status.COMMAND_DISALLOWED);
        const b = Buffer.alloc(2);
        b.writeUInt16LE(MAX_EXTENDED_ADV_DATA, 0);
        return ok(b);
      }
      case Op.LE_READ_NUM_ADV_SETS:
        if (!this.claimStyle('extended')) return fail(Status.COMMAND_DISALLOWED);
        return ok(Buffer.from([MAX_ADVERTISING_SETS]));
      case Op.LE_REMOVE_ADV_SET: {
        if (!this.claimStyle('extended')) return fail(Status.COMMAND_DISALLOWED);
        if (!expectLength(1)) return fail(Status.INVALID_PARAMETERS);
        const set = this.advertisingSets.get(p[0]!);
        if (!set) return fail(Status.UNKNOWN_ADVERTISING_ID);
        if (set.enabled) return fail(Status.COMMAND_DISALLOWED);
        this.advertisingSets.delete(set.handle);
        return ok();
      }
      case Op.LE_CLEAR_ADV_SETS:
        if (!this.claimStyle('extended')) return fail(Status.COMMAND_DISALLOWED);
        if (!expectLength(0)) return fail(Status.INVALID_PARAMETERS);
        if ([...this.advertisingSets.values()].some((set) => set.enabled)) return fail(Status.COMMAND_DISALLOWED);
        this.advertisingSets.clear();
        return ok();
      case Op.VENDOR_WRITE_BD_ADDR:
        if (!expectLength(6)) return fail(Status.INVALID_PARAMETERS);
        if (this.advertising.enabled || this.scan.enabled || this.initiator || this.connections.size > 0) return fail(Status.COMMAND_DISALLOWED);
        this.address = Buffer.from(p);
        return ok();
      default:
        return { kind: 'complete', params: Buffer.from([Status.UNKNOWN_COMMAND]) };
    }
  }

  /** Legacy and extended advertising/scanning commands may not be mixed (Vol 4 Part E §3.1.1). */
  private claimStyle(style: 'legacy' | 'extended'): boolean {
    if (this.commandStyle === 'unknown') this.commandStyle = style;
    return this.commandStyle === style;
  }

  private reset(): void {
    // HCI_Reset: the host forgets everything; our links vanish from the air, so their peers
    // lose them by supervision timeout (0x08) exactly as when a real dongle resets.
    this.stopAdvertising();
    this.stopScanTimers();
    this.scan = this.defaultScanState();
    this.initiator = null;
    for (const set of this.advertisingSets.values()) this.stopAdvertisingSet(set);
    this.advertisingSets.clear();
    this.randomAddress = null;
    // Forget the handles first so the host hears nothing about them.
    const ends = [...this.connections.values()];
    this.connections.clear();
    this.remoteParameterRequests.clear();
    for (const end of ends) end.link.closeEnd(end, Status.CONNECTION_TIMEOUT);
    this.completedPackets.clear();
    this.buffersInUse = 0;
    this.eventMask = DEFAULT_EVENT_MASK;
    this.leEventMask = DEFAULT_LE_EVENT_MASK;
    this.commandStyle = 'unknown';
    this.suggestedTxOctets = LE_MIN_DATA_LENGTH;
    this.defaultPhy = '1M';
    this.phyPreferences = new Set(['2M']);
  }

  private disconnectCommand(p: Buffer): CommandResult {
    if (p.length !== 3) return { kind: 'status', status: Status.INVALID_PARAMETERS };
    const handle = p.readUInt16LE(0);
    const reason = p[2]!;
    const end = this.connections.get(handle);
    if (!end) return { kind: 'status', status: Status.UNKNOWN_CONNECTION_ID };
    // Vol 4 Part E §7.1.6: only these reasons may be given.
    if (![0x05, 0x13, 0x14, 0x15, 0x1a, 0x29, 0x3b].includes(reason)) return { kind: 'status', status: Status.INVALID_PARAMETERS };
    if (end.terminating) return { kind: 'status', status: Status.COMMAND_DISALLOWED };
    return {
      kind: 'status',
      status: Status.SUCCESS,
      after: () => {
        end.terminating = true;
        // LL_TERMINATE_IND: the peer learns the reason when it arrives and acknowledges it
        // in the same exchange, upon which we report 0x16. Until it gets through, the
        // supervision timeout still applies (and then also reports 0x16).
        end.enqueue(
          {
            llid: LLID_CONTROL,
            payload: Buffer.from([0x02, reason]),
            queuedAtUs: this.air.clock.nowUs(),
            onDelivered: () => {
              end.link.closeEnd(end.peer, reason);
              end.link.closeEnd(end, Status.LOCAL_HOST_TERMINATED);
            },
          },
          true,
        );
      },
    };
  }

  private setAdvertisingParameters(p: Buffer): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status]) });
    if (!this.claimStyle('legacy')) return fail(Status.COMMAND_DISALLOWED);
    if (p.length !== 15) return fail(Status.INVALID_PARAMETERS);
    if (this.advertising.enabled) return fail(Status.COMMAND_DISALLOWED);
    const intervalMin = p.readUInt16LE(0);
    const intervalMax = p.readUInt16LE(2);
    const advType = p[4]!;
    const channelMap = p[13]!;
    if (advType > 0x04) return fail(Status.INVALID_PARAMETERS);
    if (advType !== AdvType.ADV_DIRECT_IND) {
      if (intervalMin < 0x20 || intervalMax > 0x4000 || intervalMin > intervalMax) return fail(Status.INVALID_PARAMETERS);
    }
    if ((channelMap & 0x07) === 0) return fail(Status.INVALID_PARAMETERS);
    if (p[5]! > 3) return fail(Status.INVALID_PARAMETERS);
    this.advertising.ownAddressType = p[5]!;
    this.advertising.intervalUs = intervalMin * 625;
    this.advertising.advType = advType === 0x04 ? AdvType.ADV_DIRECT_IND : advType;
    this.advertising.directAddress = Buffer.from(p.subarray(7, 13));
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
  }

  private setAdvertisingEnable(p: Buffer): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status]) });
    if (!this.claimStyle('legacy')) return fail(Status.COMMAND_DISALLOWED);
    if (p.length !== 1 || p[0]! > 1) return fail(Status.INVALID_PARAMETERS);
    if (p[0] === 1 && !this.advertising.enabled) {
      // Own_Address_Type random with no random address set (Vol 4 Part E §7.8.9).
      if (!this.ownAddress(this.advertising.ownAddressType, this.randomAddress)) return fail(Status.INVALID_PARAMETERS);
      this.advertising.enabled = true;
      this.scheduleAdvertisingEvent(this.air.clock.nowUs() + this.random.uniform(0, 10_000));
    } else if (p[0] === 0) {
      this.stopAdvertising();
    }
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
  }

  private scheduleAdvertisingEvent(atUs: number): void {
    this.advertising.nextEventTimer?.cancel();
    this.advertising.nextEventTimer = this.air.clock.at(atUs, () => {
      this.advertising.nextEventTimer = null;
      if (!this.advertising.enabled) return;
      const now = Math.max(atUs, 0);
      const own = this.ownAddress(this.advertising.ownAddressType, this.randomAddress);
      if (this.isOnAir() && own) {
        this.air.broadcast(
          {
            advertiser: this,
            advType: this.advertising.advType,
            addressType: own.type,
            address: own.address,
            advData: this.advertising.advData,
            scanResponseData: this.advertising.scanResponseData,
            directAddress: this.advertising.advType === AdvType.ADV_DIRECT_IND ? this.advertising.directAddress : null,
          },
          now,
        );
      }
      // advInterval + advDelay (0–10 ms pseudo-random), Vol 6 Part B §4.4.2.2.
      if (this.advertising.enabled) this.scheduleAdvertisingEvent(now + this.advertising.intervalUs + this.random.uniform(0, 10_000));
    });
  }

  private stopAdvertising(): void {
    this.advertising.enabled = false;
    this.advertising.nextEventTimer?.cancel();
    this.advertising.nextEventTimer = null;
  }

  // ─────────────── extended advertising: advertising sets (Vol 4 Part E §7.8.53–7.8.61) ───────────────

  private setAdvertisingSetRandomAddress(p: Buffer): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status]) });
    if (!this.claimStyle('extended')) return fail(Status.COMMAND_DISALLOWED);
    if (p.length !== 7) return fail(Status.INVALID_PARAMETERS);
    const set = this.advertisingSets.get(p[0]!);
    if (!set) return fail(Status.UNKNOWN_ADVERTISING_ID);
    // A connectable set's address may not change under it while it advertises.
    if (set.enabled && set.properties & PROP_CONNECTABLE) return fail(Status.COMMAND_DISALLOWED);
    set.randomAddress = Buffer.from(p.subarray(1, 7));
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
  }

  private setExtendedAdvertisingParameters(p: Buffer): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status, 0]) });
    if (!this.claimStyle('extended')) return fail(Status.COMMAND_DISALLOWED);
    if (p.length !== 25) return fail(Status.INVALID_PARAMETERS);
    const handle = p[0]!;
    const properties = p.readUInt16LE(1);
    const intervalMin = p.readUIntLE(3, 3);
    const intervalMax = p.readUIntLE(6, 3);
    const channelMap = p[9]!;
    const ownAddressType = p[10]!;
    const peerAddressType = p[11]!;
    const peerAddress = Buffer.from(p.subarray(12, 18));
    const filterPolicy = p[18]!;
    const requestedTxPower = p.readInt8(19);
    const primaryPhy = p[20]!;
    const secondaryPhy = p[22]!;
    const sid = p[23]!;
    const scanRequestNotification = p[24]!;
    if (handle > 0xef) return fail(Status.INVALID_PARAMETERS);
    const existing = this.advertisingSets.get(handle);
    if (existing?.enabled) return fail(Status.COMMAND_DISALLOWED);
    if (!existing && this.advertisingSets.size >= MAX_ADVERTISING_SETS) return fail(Status.MEMORY_CAPACITY_EXCEEDED);
    const legacy = (properties & PROP_LEGACY) !== 0;
    if (properties & ~0x7f) return fail(Status.INVALID_PARAMETERS);
    if (legacy && LEGACY_PROPERTIES[properties] === undefined) return fail(Status.INVALID_PARAMETERS);
    if (!legacy) {
      if (properties & PROP_CONNECTABLE && properties & PROP_SCANNABLE) return fail(Status.INVALID_PARAMETERS);
      if (properties & PROP_HIGH_DUTY) return fail(Status.INVALID_PARAMETERS);
      // Anonymous advertising omits AdvA: not modelled, so not offered.
      if (properties & PROP_ANONYMOUS) return fail(Status.UNSUPPORTED_FEATURE);
    }
    const highDuty = (properties & PROP_HIGH_DUTY) !== 0;
    if (!highDuty && (intervalMin < 0x20 || intervalMin > intervalMax)) return fail(Status.INVALID_PARAMETERS);
    if ((channelMap & 0x07) === 0 || channelMap > 0x07) return fail(Status.INVALID_PARAMETERS);
    if (ownAddressType > 3 || peerAddressType > 1 || filterPolicy > 3 || sid > 0x0f || scanRequestNotification > 1) return fail(Status.INVALID_PARAMETERS);
    // LE Coded PHY is not a claimed feature; the secondary PHY may be 1M or 2M.
    if (primaryPhy === 0x03 || secondaryPhy === 0x03) return fail(Status.UNSUPPORTED_FEATURE);
    if (primaryPhy !== 0x01 || (secondaryPhy !== 0x01 && secondaryPhy !== 0x02)) return fail(Status.INVALID_PARAMETERS);
    const txPowerDbm = requestedTxPower === 0x7f ? this.air.medium.model.txPowerDbm : Math.min(requestedTxPower, this.air.medium.model.txPowerDbm);
    const set: AdvertisingSet = existing ?? {
      handle,
      properties,
      intervalUs: 0,
      ownAddressType,
      peerAddress,
      secondaryPhy: 1,
      sid,
      txPowerDbm,
      scanRequestNotification: false,
      randomAddress: null,
      advData: Buffer.alloc(0),
      scanResponseData: Buffer.alloc(0),
      advFragments: null,
      scanFragments: null,
      dataId: 0,
      enabled: false,
      maxEvents: 0,
      eventsSent: 0,
      nextEventTimer: null,
      durationTimer: null,
    };
    set.properties = properties;
    set.intervalUs = (highDuty ? 0x06 : intervalMin) * 625;
    set.ownAddressType = ownAddressType;
    set.peerAddress = peerAddress;
    set.secondaryPhy = secondaryPhy === 0x02 ? 2 : 1;
    set.sid = sid;
    set.txPowerDbm = txPowerDbm;
    set.scanRequestNotification = scanRequestNotification === 1;
    this.advertisingSets.set(handle, set);
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS, txPowerDbm & 0xff]) };
  }

  /** LE Set Extended Advertising Data / Scan Response Data: whole or in fragments. */
  private setExtendedAdvertisingData(p: Buffer, which: 'adv' | 'scan'): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status]) });
    if (!this.claimStyle('extended')) return fail(Status.COMMAND_DISALLOWED);
    if (p.length < 4 || p.length !== 4 + p[3]!) return fail(Status.INVALID_PARAMETERS);
    const set = this.advertisingSets.get(p[0]!);
    if (!set) return fail(Status.UNKNOWN_ADVERTISING_ID);
    const operation = p[1]!;
    const data = Buffer.from(p.subarray(4));
    const legacy = (set.properties & PROP_LEGACY) !== 0;
    if (operation > 4 || p[2]! > 1) return fail(Status.INVALID_PARAMETERS);
    if (legacy) {
      // A legacy set takes its data whole and at most 31 octets, as the legacy commands do.
      if (operation !== 3 || data.length > 31) return fail(Status.INVALID_PARAMETERS);
    } else if (which === 'adv' && set.properties & PROP_SCANNABLE) {
      // A scannable extended set carries its data in the scan response only.
      if (data.length > 0 || operation === 4) return fail(Status.INVALID_PARAMETERS);
    } else if (which === 'scan' && !(set.properties & PROP_SCANNABLE)) {
      if (data.length > 0 || operation === 4) return fail(Status.INVALID_PARAMETERS);
    }
    // While enabled only whole data (or "unchanged data", which just moves the DID) is allowed.
    if (set.enabled && operation !== 3 && operation !== 4) return fail(Status.COMMAND_DISALLOWED);
    if (operation === 4) {
      if (!set.enabled || data.length > 0 || which === 'scan') return fail(Status.INVALID_PARAMETERS);
      set.dataId = (set.dataId + 1) & 0x0fff;
      return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
    }
    const fragmentsKey = which === 'adv' ? 'advFragments' : 'scanFragments';
    let fragments = set[fragmentsKey];
    if (operation === 1 || operation === 3) fragments = [];
    else if (fragments === null) return fail(Status.INVALID_PARAMETERS); // intermediate/last without first
    fragments.push(data);
    const total = fragments.reduce((n, f) => n + f.length, 0);
    const capacity = !legacy && which === 'adv' && set.properties & PROP_CONNECTABLE ? MAX_CONNECTABLE_EXT_ADV_DATA : MAX_EXTENDED_ADV_DATA;
    if (total > capacity) {
      set[fragmentsKey] = null;
      return fail(capacity === MAX_CONNECTABLE_EXT_ADV_DATA ? Status.PACKET_TOO_LONG : Status.MEMORY_CAPACITY_EXCEEDED);
    }
    if (operation === 2 || operation === 3) {
      const whole = Buffer.concat(fragments);
      if (which === 'adv') set.advData = whole;
      else set.scanResponseData = whole;
      set[fragmentsKey] = null;
      set.dataId = (set.dataId + 1) & 0x0fff;
    } else {
      set[fragmentsKey] = fragments;
    }
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
  }

  private setExtendedAdvertisingEnable(p: Buffer): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status]) });
    if (!this.claimStyle('extended')) return fail(Status.COMMAND_DISALLOWED);
    if (p.length < 2 || p[0]! > 1) return fail(Status.INVALID_PARAMETERS);
    const enable = p[0] === 1;
    const count = p[1]!;
    if (p.length !== 2 + 4 * count || count > MAX_ADVERTISING_SETS) return fail(Status.INVALID_PARAMETERS);
    if (count === 0) {
      if (enable) return fail(Status.INVALID_PARAMETERS);
      for (const set of this.advertisingSets.values()) this.stopAdvertisingSet(set);
      return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
    }
    const entries: Array<{ set: AdvertisingSet; durationUs: number; maxEvents: number }> = [];
    for (let i = 0; i < count; i++) {
      const handle = p[2 + 4 * i]!;
      const set = this.advertisingSets.get(handle);
      if (!set) return fail(Status.UNKNOWN_ADVERTISING_ID);
      if (entries.some((e) => e.set === set)) return fail(Status.INVALID_PARAMETERS);
      entries.push({ set, durationUs: p.readUInt16LE(3 + 4 * i) * 10_000, maxEvents: p[5 + 4 * i]! });
    }
    if (enable) {
      // Check every set before enabling any, so a refusal changes nothing.
      for (const { set } of entries) {
        if (!this.ownAddress(set.ownAddressType, set.randomAddress)) return fail(Status.INVALID_PARAMETERS);
        const legacy = (set.properties & PROP_LEGACY) !== 0;
        if (!legacy && set.properties & PROP_SCANNABLE && set.scanResponseData.length === 0) return fail(Status.INVALID_PARAMETERS);
        if (set.advFragments || set.scanFragments) return fail(Status.COMMAND_DISALLOWED); // data still incomplete
      }
      for (const { set, durationUs, maxEvents } of entries) {
        set.maxEvents = maxEvents;
        set.eventsSent = 0;
        set.durationTimer?.cancel();
        set.durationTimer = null;
        if (durationUs > 0) {
          set.durationTimer = this.air.clock.at(this.air.clock.nowUs() + durationUs, () => {
            set.durationTimer = null;
            if (!set.enabled) return;
            const events = set.eventsSent;
            this.stopAdvertisingSet(set);
            this.sendAdvertisingSetTerminated(set, Status.ADVERTISING_TIMEOUT, 0, events);
          });
        }
        if (!set.enabled) {
          set.enabled = true;
          this.scheduleSetEvent(set, this.air.clock.nowUs() + this.random.uniform(0, 10_000));
        }
      }
    } else {
      for (const { set } of entries) this.stopAdvertisingSet(set);
    }
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
  }

  private scheduleSetEvent(set: AdvertisingSet, atUs: number): void {
    set.nextEventTimer?.cancel();
    set.nextEventTimer = this.air.clock.at(atUs, () => {
      set.nextEventTimer = null;
      if (!set.enabled) return;
      const own = this.ownAddress(set.ownAddressType, set.randomAddress);
      const legacyType = set.properties & PROP_LEGACY ? LEGACY_PROPERTIES[set.properties] : undefined;
      const directed = (set.properties & PROP_DIRECTED) !== 0;
      if (this.isOnAir() && own) {
        this.air.broadcast(
          {
            advertiser: this,
            advType: legacyType ?? 0x07, // ADV_EXT_IND
            addressType: own.type,
            address: own.address,
            advData: set.advData,
            scanResponseData: set.scanResponseData,
            directAddress: directed ? set.peerAddress : null,
            extended:
              legacyType === undefined
                ? {
                    connectable: (set.properties & PROP_CONNECTABLE) !== 0,
                    scannable: (set.properties & PROP_SCANNABLE) !== 0,
                    directed,
                    sid: set.sid,
                    secondaryPhy: set.secondaryPhy,
                    dataId: set.dataId,
                    txPowerDbm: set.txPowerDbm,
                  }
                : null,
            setHandle: set.handle,
          },
          atUs,
        );
      }
      set.eventsSent++;
      if (!set.enabled) return; // the event made a connection
      if (set.maxEvents > 0 && set.eventsSent >= set.maxEvents) {
        const events = set.eventsSent;
        this.stopAdvertisingSet(set);
        this.sendAdvertisingSetTerminated(set, Status.LIMIT_REACHED, 0, events);
        return;
      }
      // advInterval + advDelay (0–10 ms pseudo-random), Vol 6 Part B §4.4.2.2.
      this.scheduleSetEvent(set, atUs + set.intervalUs + this.random.uniform(0, 10_000));
    });
  }

  private stopAdvertisingSet(set: AdvertisingSet): void {
    set.enabled = false;
    set.nextEventTimer?.cancel();
    set.nextEventTimer = null;
    set.durationTimer?.cancel();
    set.durationTimer = null;
  }

  private sendAdvertisingSetTerminated(set: AdvertisingSet, status: number, connectionHandle: number, events: number): void {
    const e = Buffer.alloc(5);
    e[0] = status;
    e[1] = set.handle;
    e.writeUInt16LE(connectionHandle, 2);
    e[4] = Math.min(255, events);
    this.sendLeEvent(LeSubevent.ADVERTISING_SET_TERMINATED, e);
  }

  private setScanParameters(p: Buffer, extended: boolean): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status]) });
    if (!this.claimStyle(extended ? 'extended' : 'legacy')) return fail(Status.COMMAND_DISALLOWED);
    if (this.scan.enabled) return fail(Status.COMMAND_DISALLOWED);
    let scanType: number;
    let interval: number;
    let window: number;
    let ownAddressType: number;
    if (extended) {
      if (p.length < 3) return fail(Status.INVALID_PARAMETERS);
      ownAddressType = p[0]!;
      const phys = p[2]!;
      if ((phys & ~0x05) !== 0) return fail(Status.UNSUPPORTED_FEATURE);
      if ((phys & 0x01) === 0) return fail(Status.INVALID_PARAMETERS);
      const count = (phys & 1 ? 1 : 0) + (phys & 4 ? 1 : 0);
      if (p.length !== 3 + 5 * count) return fail(Status.INVALID_PARAMETERS);
      scanType = p[3]!;
      interval = p.readUInt16LE(4);
      window = p.readUInt16LE(6);
    } else {
      if (p.length !== 7) return fail(Status.INVALID_PARAMETERS);
      ownAddressType = p[5]!;
      scanType = p[0]!;
      interval = p.readUInt16LE(1);
      window = p.readUInt16LE(3);
    }
    if (scanType > 1 || interval < 4 || window < 4 || window > interval || (!extended && interval > 0x4000) || ownAddressType > 3) {
      return fail(Status.INVALID_PARAMETERS);
    }
    this.scan.ownAddressType = ownAddressType;
    this.scan.active = scanType === 1;
    this.scan.intervalUs = interval * 625;
    this.scan.windowUs = window * 625;
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
  }

  private setScanEnable(p: Buffer, extended: boolean): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status]) });
    if (!this.claimStyle(extended ? 'extended' : 'legacy')) return fail(Status.COMMAND_DISALLOWED);
    if (p.length !== (extended ? 6 : 2) || p[0]! > 1 || p[1]! > (extended ? 2 : 1)) return fail(Status.INVALID_PARAMETERS);
    const enable = p[0] === 1;
    // Ext scan: Duration in 10 ms units, Period in 1.28 s units (Vol 4 Part E §7.8.65).
    const durationUs = extended ? p.readUInt16LE(2) * 10_000 : 0;
    const periodUs = extended ? p.readUInt16LE(4) * 1_280_000 : 0;
    if (enable) {
      if (periodUs > 0 && (durationUs === 0 || durationUs >= periodUs)) return fail(Status.INVALID_PARAMETERS);
      // Active scanning sends SCAN_REQs from the own address: a random one must exist.
      if (this.scan.active && !this.ownAddress(this.scan.ownAddressType, this.randomAddress)) return fail(Status.INVALID_PARAMETERS);
      // Each enable starts a fresh duplicate filter (Vol 4 Part E §7.8.11).
      this.scan.reported = new Set();
      this.scan.filterDuplicates = p[1]! > 0;
    }
    this.stopScanTimers();
    this.scan.enabled = enable;
    this.scan.extended = extended;
    this.scan.durationUs = enable ? durationUs : 0;
    this.scan.periodUs = enable ? periodUs : 0;
    if (enable && durationUs > 0) this.scheduleScanDuration(this.air.clock.nowUs());
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
  }

  /**
   * Ends a scan Duration. Without a Period the scan stops and the host hears LE Scan
   * Timeout; with one, scanning pauses and resumes at the next period (with a fresh
   * duplicate filter, as each period is a new scan).
   */
  private scheduleScanDuration(startUs: number): void {
    this.scan.durationTimer = this.air.clock.at(startUs + this.scan.durationUs, () => {
      this.scan.durationTimer = null;
      if (!this.scan.enabled) return;
      if (this.scan.periodUs === 0) {
        this.scan.enabled = false;
        this.sendLeEvent(LeSubevent.SCAN_TIMEOUT, Buffer.alloc(0));
        return;
      }
      this.scan.paused = true;
      this.scan.durationTimer = this.air.clock.at(startUs + this.scan.periodUs, () => {
        this.scan.durationTimer = null;
        if (!this.scan.enabled) return;
        this.scan.paused = false;
        this.scan.reported = new Set();
        this.scheduleScanDuration(startUs + this.scan.periodUs);
      });
    });
  }

  private stopScanTimers(): void {
    this.scan.durationTimer?.cancel();
    this.scan.durationTimer = null;
    this.scan.paused = false;
  }

  /**
   * The address a PDU or CONNECT_IND carries for an Own_Address_Type (Vol 4 Part E
   * §7.8.5): 0 public, 1 random; 2 and 3 ask for a resolvable private address from the
   * resolving list, which this controller does not keep, so they fall back to public and
   * random as the spec says. Null when a random address is asked for and none is set.
   */
  private ownAddress(ownAddressType: number, random: Buffer | null): AirAddress | null {
    const rpa = this.currentPrivateAddress();
    if (rpa) return { type: 1, address: rpa };
    if (ownAddressType === 0 || ownAddressType === 2) return { type: 0, address: this.address };
    return random ? { type: 1, address: random } : null;
  }

  /**
   * With privacy on, the resolvable private address of this moment: generated from the IRK
   * on first use and again once `rotationMs` has passed (an address in use by a connection
   * stays with that connection, as on air).
   */
  currentPrivateAddress(): Buffer | null {
    const privacy = this.options.privacy;
    if (!privacy) return null;
    const now = this.air.clock.nowUs();
    if (!this.privateAddress || now >= this.privateAddress.expiresAtUs) {
      const address = resolvablePrivateAddress(privacy.irk, this.random.nextUint32() & 0x3fffff);
      this.privateAddress = { address, expiresAtUs: now + privacy.rotationMs * 1000 };
      this.privateAddressHistory.push(address);
    }
    return this.privateAddress.address;
  }

  private createConnection(p: Buffer, extended: boolean): CommandResult {
    const status = (s: number): CommandResult => ({ kind: 'status', status: s });
    if (!this.claimStyle(extended ? 'extended' : 'legacy')) return status(Status.COMMAND_DISALLOWED);
    if (this.initiator) return status(Status.COMMAND_DISALLOWED);
    let ownAddressType: number;
    let peerAddressType: number;
    let peerAddress: Buffer;
    let intervalMin: number;
    let intervalMax: number;
    let latency: number;
    let timeout: number;
    if (extended) {
      if (p.length < 10) return status(Status.INVALID_PARAMETERS);
      ownAddressType = p[1]!;
      peerAddressType = p[2]!;
      peerAddress = Buffer.from(p.subarray(3, 9));
      const phys = p[9]!;
      if ((phys & ~0x07) !== 0 || phys === 0) return status(Status.INVALID_PARAMETERS);
      if (phys & 0x04) return status(Status.UNSUPPORTED_FEATURE); // no LE Coded PHY
      const count = [1, 2, 4].filter((bit) => phys & bit).length;
      if (p.length !== 10 + 16 * count) return status(Status.INVALID_PARAMETERS);
      const base = 10; // first PHY's block (1M if present)
      intervalMin = p.readUInt16LE(base + 4);
      intervalMax = p.readUInt16LE(base + 6);
      latency = p.readUInt16LE(base + 8);
      timeout = p.readUInt16LE(base + 10);
    } else {
      if (p.length !== 25) return status(Status.INVALID_PARAMETERS);
      const scanInterval = p.readUInt16LE(0);
      const scanWindow = p.readUInt16LE(2);
      if (scanInterval < 4 || scanWindow < 4 || scanWindow > scanInterval) return status(Status.INVALID_PARAMETERS);
      peerAddressType = p[5]!;
      peerAddress = Buffer.from(p.subarray(6, 12));
      ownAddressType = p[12]!;
      intervalMin = p.readUInt16LE(13);
      intervalMax = p.readUInt16LE(15);
      latency = p.readUInt16LE(17);
      timeout = p.readUInt16LE(19);
    }
    if (!validConnectionParameters(intervalMin, intervalMax, latency, timeout) || peerAddressType > 3 || ownAddressType > 3) {
      return status(Status.INVALID_PARAMETERS);
    }
    if (!this.ownAddress(ownAddressType, this.randomAddress)) return status(Status.INVALID_PARAMETERS);
    const policy = this.options.linkPolicy;
    const intervalUs = policy.intervalMs !== undefined ? Math.round(policy.intervalMs / 1.25) * 1250 : intervalMin * 1250;
    this.initiator = {
      ownAddressType,
      peerAddressType,
      peerAddress,
      extended,
      params: {
        intervalUs,
        latency,
        supervisionTimeoutUs: policy.supervisionTimeoutMs !== undefined ? policy.supervisionTimeoutMs * 1000 : timeout * 10_000,
        phy: '1M',
        packetsPerEvent: policy.packetsPerEvent ?? 0,
      },
    };
    return status(Status.SUCCESS);
  }

  private connectionUpdate(p: Buffer): CommandResult {
    const status = (s: number): CommandResult => ({ kind: 'status', status: s });
    if (p.length !== 14) return status(Status.INVALID_PARAMETERS);
    const handle = p.readUInt16LE(0);
    const end = this.connections.get(handle);
    if (!end) return status(Status.UNKNOWN_CONNECTION_ID);
    const intervalMin = p.readUInt16LE(2);
    const intervalMax = p.readUInt16LE(4);
    const latency = p.readUInt16LE(6);
    const timeout = p.readUInt16LE(8);
    if (!validConnectionParameters(intervalMin, intervalMax, latency, timeout)) return status(Status.INVALID_PARAMETERS);
    const link = end.link;
    if (end.role === 'peripheral') {
      // The peripheral's host asks through the Connection Parameters Request procedure
      // (Vol 6 Part B §5.1.7): one at a time per link.
      if (this.parameterRequests.has(link)) return status(Status.COMMAND_DISALLOWED);
      return { kind: 'status', status: Status.SUCCESS, after: () => this.requestConnectionParameters(end, { intervalMin, intervalMax, latency, timeout }) };
    }
    if (link.pendingInstants.some((p) => p.kind === 'connection')) return status(Status.COMMAND_DISALLOWED);
    return { kind: 'status', status: Status.SUCCESS, after: () => this.issueConnectionUpdate(end, intervalMin, latency, timeout) };
  }

  /**
   * LL_CONNECTION_UPDATE_IND from the central naming an instant at least six events ahead;
   * the new parameters apply from that event on, at both ends, and both hosts hear of it.
   */
  private issueConnectionUpdate(end: LinkEnd, interval: number, latency: number, timeout: number): void {
    const link = end.link;
    const pending: PendingInstant = {
      kind: 'connection',
      instant: link.nextInstant(),
      apply: (current) => ({ ...current, intervalUs: interval * 1250, latency, supervisionTimeoutUs: timeout * 10_000 }),
      onApplied: () => {
        for (const e of [link.central, link.peripheral]) (e.owner as VirtualController).reportConnectionUpdate(e);
      },
      delivered: false,
    };
    link.pendingInstants.push(pending);
    end.enqueue({ llid: LLID_CONTROL, payload: connectionUpdateInd(pending.instant, interval, latency, timeout), queuedAtUs: this.air.clock.nowUs(), onDelivered: () => (pending.delivered = true) }, true);
  }

  /**
   * Peripheral side of the Connection Parameters Request procedure: LL_CONNECTION_PARAM_REQ
   * to the central. The central's controller answers with LL_CONNECTION_UPDATE_IND (its host
   * replied, or it accepted on its own) or LL_REJECT_EXT_IND; a peer without the feature
   * gets LL_UNKNOWN_RSP. Without an answer in 40 s (the LL response timeout) the link is lost.
   */
  private requestConnectionParameters(end: LinkEnd, request: ParameterRequest): void {
    const link = end.link;
    const central = end.peer.owner as VirtualController;
    const timer = this.air.clock.at(this.air.clock.nowUs() + LL_RESPONSE_TIMEOUT_US, () => {
      if (this.parameterRequests.get(link)?.timer !== timer || link.closed) return;
      this.parameterRequests.delete(link);
      link.closeBoth(Status.LMP_RESPONSE_TIMEOUT, Status.LMP_RESPONSE_TIMEOUT);
    });
    this.parameterRequests.set(link, { timer });
    end.enqueue(
      {
        llid: LLID_CONTROL,
        payload: connectionParamReq(request, link.eventCounter),
        queuedAtUs: this.air.clock.nowUs(),
        onDelivered: () => {
          if (!central.features.has(LeFeature.CONNECTION_PARAMETERS_REQUEST)) {
            // LL_UNKNOWN_RSP: the peripheral's host falls back to L2CAP signalling.
            central.answerParameterRequest(end.peer, { rejectWith: Status.UNSUPPORTED_REMOTE_FEATURE });
            return;
          }
          central.receiveParameterRequest(end.peer, request);
        },
      },
      true,
    );
  }

  /** Central side: LL_CONNECTION_PARAM_REQ arrived on `end` (Vol 4 Part E §7.7.65.6). */
  receiveParameterRequest(end: LinkEnd, request: ParameterRequest): void {
    if (!end.open) return;
    if (!validConnectionParameters(request.intervalMin, request.intervalMax, request.latency, request.timeout)) {
      this.answerParameterRequest(end, { rejectWith: Status.INVALID_LL_PARAMETERS });
      return;
    }
    if (!this.leEventEnabled(LeSubevent.REMOTE_CONNECTION_PARAMETER_REQUEST)) {
      // A host that masks the event cannot answer it: the controller rejects the request
      // with Unsupported Remote Feature, and the peripheral's host falls back to L2CAP.
      this.answerParameterRequest(end, { rejectWith: Status.UNSUPPORTED_REMOTE_FEATURE });
      return;
    }
    this.remoteParameterRequests.set(end.handle, request);
    const e = Buffer.alloc(10);
    e.writeUInt16LE(end.handle, 0);
    e.writeUInt16LE(request.intervalMin, 2);
    e.writeUInt16LE(request.intervalMax, 4);
    e.writeUInt16LE(request.latency, 6);
    e.writeUInt16LE(request.timeout, 8);
    this.sendLeEvent(LeSubevent.REMOTE_CONNECTION_PARAMETER_REQUEST, e);
  }

  /**
   * Central side: the answer to a peripheral's request — an LL_CONNECTION_UPDATE_IND with
   * the parameters given, or LL_REJECT_EXT_IND with a reason, which the peripheral's host
   * hears as LE Connection Update Complete with that status.
   */
  answerParameterRequest(end: LinkEnd, answer: { rejectWith: number } | { interval: number; latency: number; timeout: number }): void {
    this.remoteParameterRequests.delete(end.handle);
    const peripheral = end.peer.owner as VirtualController;
    if ('rejectWith' in answer) {
      const reason = answer.rejectWith;
      end.enqueue({ llid: LLID_CONTROL, payload: Buffer.from([LL_REJECT_EXT_IND, LL_CONNECTION_PARAM_REQ, reason]), queuedAtUs: this.air.clock.nowUs(), onDelivered: () => peripheral.parameterRequestEnded(end.peer, reason) }, true);
      return;
    }
    // The update is the answer: the request ends when the peripheral receives it.
    peripheral.parameterRequestEnded(end.peer, null);
    this.issueConnectionUpdate(end, answer.interval, answer.latency, answer.timeout);
  }

  /** Peripheral side: its request ended; a rejection reaches its host as Connection Update Complete. */
  parameterRequestEnded(end: LinkEnd, rejectedWith: number | null): void {
    const pending = this.parameterRequests.get(end.link);
    if (!pending) return;
    pending.timer.cancel();
    this.parameterRequests.delete(end.link);
    if (rejectedWith === null || !end.open) return;
    const e = Buffer.alloc(9);
    e[0] = rejectedWith;
    e.writeUInt16LE(end.handle, 1);
    e.writeUInt16LE(Math.round(end.link.params.intervalUs / 1250), 3);
    e.writeUInt16LE(end.link.params.latency, 5);
    e.writeUInt16LE(Math.round(end.link.params.supervisionTimeoutUs / 10_000), 7);
    this.sendLeEvent(LeSubevent.CONNECTION_UPDATE_COMPLETE, e);
  }

  /** LE Remote Connection Parameter Request Reply / Negative Reply (Vol 4 Part E §7.8.31–32). */
  private remoteParameterReply(op: number, p: Buffer): CommandResult {
    const answer = (s: number, handle: number): CommandResult => {
      const r = Buffer.alloc(3);
      r[0] = s;
      r.writeUInt16LE(handle, 1);
      return { kind: 'complete', params: r };
    };
    const negative = op === Op.LE_REMOTE_CONN_PARAM_NEGATIVE_REPLY;
    if (p.length !== (negative ? 3 : 14)) return answer(Status.INVALID_PARAMETERS, p.length >= 2 ? p.readUInt16LE(0) : 0);
    const handle = p.readUInt16LE(0);
    const end = this.connections.get(handle);
    if (!end) return answer(Status.UNKNOWN_CONNECTION_ID, handle);
    if (!this.remoteParameterRequests.has(handle)) return answer(Status.COMMAND_DISALLOWED, handle);
    if (negative) {
      const reason = p[2]!;
      this.remoteParameterRequests.delete(handle);
      this.air.clock.at(this.air.clock.nowUs(), () => this.answerParameterRequest(end, { rejectWith: reason }));
      return answer(Status.SUCCESS, handle);
    }
    const intervalMin = p.readUInt16LE(2);
    const intervalMax = p.readUInt16LE(4);
    const latency = p.readUInt16LE(6);
    const timeout = p.readUInt16LE(8);
    if (!validConnectionParameters(intervalMin, intervalMax, latency, timeout)) return answer(Status.INVALID_PARAMETERS, handle);
    if (end.link.pendingInstants.some((x) => x.kind === 'connection')) return answer(Status.COMMAND_DISALLOWED, handle);
    this.remoteParameterRequests.delete(handle);
    this.air.clock.at(this.air.clock.nowUs(), () => this.answerParameterRequest(end, { interval: intervalMin, latency, timeout }));
    return answer(Status.SUCCESS, handle);
  }

  reportConnectionUpdate(end: LinkEnd): void {
    if (!end.open) return;
    const e = Buffer.alloc(9);
    e[0] = Status.SUCCESS;
    e.writeUInt16LE(end.handle, 1);
    e.writeUInt16LE(Math.round(end.link.params.intervalUs / 1250), 3);
    e.writeUInt16LE(end.link.params.latency, 5);
    e.writeUInt16LE(Math.round(end.link.params.supervisionTimeoutUs / 10_000), 7);
    this.sendLeEvent(LeSubevent.CONNECTION_UPDATE_COMPLETE, e);
  }

  private setDataLength(p: Buffer): CommandResult {
    const fail = (status: number, handle = 0): CommandResult => {
      const r = Buffer.alloc(3);
      r[0] = status;
      r.writeUInt16LE(handle, 1);
      return { kind: 'complete', params: r };
    };
    if (p.length !== 6) return fail(Status.INVALID_PARAMETERS);
    const handle = p.readUInt16LE(0);
    const txOctets = p.readUInt16LE(2);
    const txTime = p.readUInt16LE(4);
    const end = this.connections.get(handle);
    if (!end) return fail(Status.UNKNOWN_CONNECTION_ID, handle);
    if (txOctets < 0x1b || txOctets > 0xfb || txTime < 0x148 || txTime > 0x4290) return fail(Status.INVALID_PARAMETERS, handle);
    this.startDataLengthProcedure(end, txOctets);
    const r = Buffer.alloc(3);
    r[0] = Status.SUCCESS;
    r.writeUInt16LE(handle, 1);
    return { kind: 'complete', params: r };
  }

  /**
   * LL_LENGTH_REQ, answered by LL_LENGTH_RSP (Vol 6 Part B §5.1.9): each side's max TX
   * becomes min(own wish, peer's max RX, policies). The responder's new lengths apply when
   * it sends its RSP, the initiator's when it receives it; each host whose effective
   * lengths changed hears LE Data Length Change then.
   */
  private startDataLengthProcedure(end: LinkEnd, requestedTxOctets: number): void {
    const peerController = end.peer.owner as VirtualController;
    const cap = Math.min(this.maxDataLength(), peerController.maxDataLength());
    const lengthPdu = (opcode: number, octets: number): Buffer => {
      const b = Buffer.alloc(9);
      b[0] = opcode;
      b.writeUInt16LE(cap, 1); // MaxRxOctets
      b.writeUInt16LE(txTimeUs(cap), 3);
      b.writeUInt16LE(octets, 5); // MaxTxOctets
      b.writeUInt16LE(txTimeUs(octets), 7);
      return b;
    };
    const localTx = Math.min(requestedTxOctets, cap);
    end.enqueue(
      {
        llid: LLID_CONTROL,
        payload: lengthPdu(0x14, localTx),
        queuedAtUs: this.air.clock.nowUs(),
        onDelivered: () => {
          // The responder answers with its own wish; from now it may send that much.
          const peerTx = Math.min(Math.max(peerController.options.autonomousMaxTxOctets, peerController.suggestedTxOctets), cap);
          const peerChanged = end.peer.txOctets !== peerTx || end.txOctets !== localTx;
          end.peer.txOctets = peerTx;
          end.peer.enqueue(
            {
              llid: LLID_CONTROL,
              payload: lengthPdu(0x15, peerTx),
              queuedAtUs: this.air.clock.nowUs(),
              onDelivered: () => {
                const changed = end.txOctets !== localTx || peerChanged;
                end.txOctets = localTx;
                if (changed) {
                  this.reportDataLength(end);
                  peerController.reportDataLength(end.peer);
                }
              },
            },
            true,
          );
        },
      },
      true,
    );
  }

  maxDataLength(): number {
    return Math.max(LE_MIN_DATA_LENGTH, Math.min(LE_MAX_DATA_LENGTH, this.options.linkPolicy.maxDataLength ?? LE_MAX_DATA_LENGTH));
  }

  reportDataLength(end: LinkEnd): void {
    if (!end.open) return;
    const e = Buffer.alloc(10);
    e.writeUInt16LE(end.handle, 0);
    e.writeUInt16LE(end.txOctets, 2);
    e.writeUInt16LE(txTimeUs(end.txOctets, end.link.params.phy), 4);
    e.writeUInt16LE(end.peer.txOctets, 6);
    e.writeUInt16LE(txTimeUs(end.peer.txOctets, end.link.params.phy), 8);
    this.sendLeEvent(LeSubevent.DATA_LENGTH_CHANGE, e);
  }

  private setPhy(p: Buffer): CommandResult {
    const status = (s: number): CommandResult => ({ kind: 'status', status: s });
    if (p.length !== 7) return status(Status.INVALID_PARAMETERS);
    const handle = p.readUInt16LE(0);
    const end = this.connections.get(handle);
    if (!end) return status(Status.UNKNOWN_CONNECTION_ID);
    const allPhys = p[2]!;
    const tx = p[3]!;
    const rx = p[4]!;
    if (((allPhys & 1) === 0 && tx === 0) || ((allPhys & 2) === 0 && rx === 0)) return status(Status.INVALID_PARAMETERS);
    const wants2M = (allPhys & 1) === 0 && (tx & 0x02) !== 0;
    return { kind: 'status', status: Status.SUCCESS, after: () => this.startPhyUpdate(end, wants2M ? '2M' : '1M', true) };
  }

  /**
   * The PHY update procedure (Vol 6 Part B §5.1.10): LL_PHY_REQ from either side; a
   * peripheral answers a central's with LL_PHY_RSP; the central then sends
   * LL_PHY_UPDATE_IND naming the PHY both accept and an instant, from which both ends use
   * it. The initiating host always hears LE PHY Update Complete when it asked (LE Set
   * PHY); a host hears it otherwise only if the PHY changed.
   */
  private startPhyUpdate(end: LinkEnd, wanted: Phy, hostInitiated: boolean): void {
    const link = end.link;
    const central = link.central;
    const mask = (phy: Phy): number => (phy === '2M' ? 0x02 : 0x01);
    const sendUpdateInd = (): void => {
      const responder = (end.peer.owner as VirtualController).acceptsPhy(wanted) && this.acceptsPhy(wanted);
      const phy: Phy = responder ? wanted : link.params.phy;
      const changed = phy !== link.params.phy;
      const reportAll = (): void => {
        for (const e of [link.central, link.peripheral]) {
          const initiatedHere = e === end && hostInitiated;
          if (changed || initiatedHere) (e.owner as VirtualController).reportPhyUpdate(e);
        }
      };
      if (!changed) {
        // PHY_UPDATE_IND with no change and no instant: the procedure ends on delivery.
        central.enqueue({ llid: LLID_CONTROL, payload: Buffer.from([0x18, 0, 0, 0, 0]), queuedAtUs: this.air.clock.nowUs(), onDelivered: reportAll }, true);
        return;
      }
      const pending: PendingInstant = { kind: 'phy', instant: link.nextInstant(), apply: (current) => ({ ...current, phy }), onApplied: reportAll, delivered: false };
      link.pendingInstants.push(pending);
      const ind = Buffer.from([0x18, mask(phy), mask(phy), 0, 0]);
      ind.writeUInt16LE(pending.instant, 3);
      central.enqueue({ llid: LLID_CONTROL, payload: ind, queuedAtUs: this.air.clock.nowUs(), onDelivered: () => (pending.delivered = true) }, true);
    };
    const request = Buffer.from([0x16, mask(wanted), mask(wanted)]);
    end.enqueue(
      {
        llid: LLID_CONTROL,
        payload: request,
        queuedAtUs: this.air.clock.nowUs(),
        onDelivered: () => {
          if (end.role === 'peripheral') {
            sendUpdateInd();
            return;
          }
          // The peripheral's LL_PHY_RSP carries its own preferences; then the central decides.
          end.peer.enqueue({ llid: LLID_CONTROL, payload: Buffer.from([0x17, 0x03, 0x03]), queuedAtUs: this.air.clock.nowUs(), onDelivered: sendUpdateInd }, true);
        },
      },
      true,
    );
  }

  /** Whether this controller's PHY preferences (LE Set Default PHY) allow `phy`. */
  acceptsPhy(phy: Phy): boolean {
    return phy === '1M' || this.phyPreferences.has(phy);
  }

  reportPhyUpdate(end: LinkEnd): void {
    if (!end.open) return;
    const phy = end.link.params.phy === '2M' ? 2 : 1;
    const e = Buffer.alloc(5);
    e[0] = Status.SUCCESS;
    e.writeUInt16LE(end.handle, 1);
    e[3] = phy;
    e[4] = phy;
    this.sendLeEvent(LeSubevent.PHY_UPDATE_COMPLETE, e);
  }

  /** Runs fn after a control PDU round trip on the link (remote feature/version exchange). */
  /**
   * A command answered by a link-layer procedure with the peer (remote version, remote
   * features): Command Status now, the completion event after one LL round trip.
   */
  private remoteProcedure(p: Buffer, complete: (handle: number, end: LinkEnd) => void): CommandResult {
    if (p.length !== 2) return { kind: 'status', status: Status.INVALID_PARAMETERS };
    const handle = p.readUInt16LE(0);
    const end = this.connections.get(handle);
    if (!end) return { kind: 'status', status: Status.UNKNOWN_CONNECTION_ID };
    return { kind: 'status', status: Status.SUCCESS, after: () => this.afterRoundTrip(end, () => complete(handle, end)) };
  }

  private afterRoundTrip(end: LinkEnd, fn: () => void): void {
    end.enqueue({ llid: LLID_CONTROL, payload: Buffer.alloc(9, 0), queuedAtUs: this.air.clock.nowUs(), onAcked: fn }, true);
  }

  // ───────────────────────────── ACL data ─────────────────────────────

  private handleAclFromHost(handle: number, pb: number, data: Buffer): void {
    const end = this.connections.get(handle);
    if (!end) return; // data for a handle that is gone: discarded, as the spec says
    if (this.buffersInUse >= this.options.aclBufferCount || data.length > this.options.aclBufferSize) {
      // The host overran the buffers it was given: a real controller drops the packet.
      this.stats.bufferOverruns++;
      this.sendMaskedEvent(EventCode.DATA_BUFFER_OVERFLOW, Buffer.from([0x01]));
      return;
    }
    this.buffersInUse++;
    // PB 00/10 start an L2CAP PDU, 01 continues one. Re-fragment to the link's data length.
    let llid = pb === 0b01 ? LLID_CONTINUATION : LLID_START;
    const now = this.air.clock.nowUs();
    let offset = 0;
    do {
      const chunk = Buffer.from(data.subarray(offset, offset + end.txOctets));
      offset += chunk.length;
      const last = offset >= data.length;
      end.enqueue({
        llid,
        payload: chunk,
        queuedAtUs: now,
        ...(last ? { onAcked: () => this.packetCompleted(end) } : {}),
      });
      llid = LLID_CONTINUATION;
    } while (offset < data.length);
  }

  private packetCompleted(end: LinkEnd): void {
    if (!end.open || this.connections.get(end.handle) !== end) return;
    this.buffersInUse = Math.max(0, this.buffersInUse - 1);
    this.completedPackets.set(end.handle, (this.completedPackets.get(end.handle) ?? 0) + 1);
  }

  onConnectionEventDone(end: LinkEnd, atUs: number): void {
    const count = this.completedPackets.get(end.handle);
    if (!count || this.connections.get(end.handle) !== end) return;
    this.completedPackets.delete(end.handle);
    this.sendEvent(numberOfCompletedPackets([[end.handle, count]]), atUs);
  }

  onLinkData(end: LinkEnd, llid: number, payload: Buffer, atUs: number): void {
    if (this.connections.get(end.handle) !== end) return;
    this.stats.aclToHost++;
    this.sendToHost(aclPacket(end.handle, llid === LLID_START ? 0b10 : 0b01, payload), atUs);
  }

  onLinkClosed(end: LinkEnd, reason: number): void {
    if (this.connections.get(end.handle) !== end) return;
    this.connections.delete(end.handle);
    this.parameterRequests.get(end.link)?.timer.cancel();
    this.parameterRequests.delete(end.link);
    this.remoteParameterRequests.delete(end.handle);
    // Buffers held by this handle's unsent packets are freed (the host assumes so too).
    const held = end.txQueue.filter((pdu) => pdu.onAcked && pdu.llid !== LLID_CONTROL).length;
    this.buffersInUse = Math.max(0, this.buffersInUse - held);
    this.completedPackets.delete(end.handle);
    this.sendMaskedEvent(EventCode.DISCONNECTION_COMPLETE, disconnectionComplete(end.handle, reason).subarray(3));
  }

  // ───────────────────────────── advertising channel ─────────────────────────────

  onAdvertisingPdu(pdu: AdvertisingPdu, rssiDbm: number, timeUs: number): void {
    const ext = pdu.extended ?? null;
    const connectable = ext ? ext.connectable : pdu.advType === AdvType.ADV_IND || pdu.advType === AdvType.ADV_DIRECT_IND;
    const initiator = this.initiator;
    // A legacy initiator (LE Create Connection) only answers legacy PDUs; AUX_CONNECT_REQ
    // needs LE Extended Create Connection.
    const initiatorHears = initiator !== null && (ext === null || initiator.extended);
    const own = initiator ? this.ownAddress(initiator.ownAddressType, this.randomAddress) : null;
    if (
      initiator &&
      own &&
      initiatorHears &&
      connectable &&
      (initiator.peerAddressType & 1) === pdu.addressType &&
      initiator.peerAddress.equals(pdu.address) &&
      (pdu.directAddress === null || pdu.directAddress.equals(own.address))
    ) {
      // CONNECT_IND right after the advert (T_IFS later); AUX_CONNECT_REQ/RSP for extended.
      const handle = this.allocateHandle();
      const params = initiator.params;
      const link = this.air.connect(this, handle, pdu.advertiser, params, timeUs + 150 + 376, { initiator: own, pdu });
      if (link) {
        this.initiator = null;
        this.connections.set(handle, link.central);
        this.peerAddresses.set(link.central, { type: pdu.addressType, address: Buffer.from(pdu.address) });
        link.central.lastRssiDbm = rssiDbm;
        this.sendConnectionComplete(Status.SUCCESS, link.central);
        this.applyPolicyAfterConnect(link.central);
      }
      return;
    }
    if (!this.scan.enabled || this.scan.paused) return;
    // A legacy scanner does not follow ADV_EXT_IND's AuxPtr: it never hears extended advertising.
    if (ext && !this.scan.extended) return;
    // The scanner only hears what falls inside its scan window.
    if (this.scan.windowUs < this.scan.intervalUs && !this.random.chance(this.scan.windowUs / this.scan.intervalUs)) return;
    this.reportAdvertisement(pdu, rssiDbm, false);
    const scannable = ext ? ext.scannable : pdu.advType === AdvType.ADV_IND || pdu.advType === AdvType.ADV_SCAN_IND;
    const scanner = this.ownAddress(this.scan.ownAddressType, this.randomAddress);
    if (this.scan.active && scannable && scanner && this.air.exchange(this, pdu.advertiser, timeUs + 150)) {
      pdu.advertiser.onScanRequest?.(pdu, scanner);
      // Always a SCAN_RSP, even an empty one: noble reports a connectable device only then.
      this.reportAdvertisement(pdu, rssiDbm, true);
    }
  }

  private reportAdvertisement(pdu: AdvertisingPdu, rssiDbm: number, scanResponse: boolean): void {
    const ext = pdu.extended ?? null;
    const key = `${pdu.address.toString('hex')}/${pdu.addressType}/${scanResponse ? 'rsp' : pdu.advType}/${ext ? `${ext.sid}:${ext.dataId}` : 'legacy'}`;
    if (this.scan.filterDuplicates) {
      if (this.scan.reported.has(key)) return;
      this.scan.reported.add(key);
    }
    const data = scanResponse ? pdu.scanResponseData : pdu.advData;
    const rssi = Math.max(-127, Math.min(20, Math.round(rssiDbm)));
    if (ext) {
      // Non-legacy PDU (Vol 4 Part E §7.7.65.13): event type bits 0 connectable, 1 scannable,
      // 2 directed, 3 scan response; bits 5–6 data status (0 complete, 1 more to come).
      // Data longer than one report goes in consecutive reports, all but the last "incomplete".
      let eventType = (ext.connectable ? 0x01 : 0) | (ext.scannable ? 0x02 : 0) | (ext.directed ? 0x04 : 0) | (scanResponse ? 0x08 : 0);
      if (scanResponse) eventType &= ~0x04;
      let offset = 0;
      do {
        const chunk = data.subarray(offset, offset + MAX_EXT_REPORT_DATA);
        offset += chunk.length;
        const more = offset < data.length;
        const r = Buffer.alloc(25 + chunk.length);
        r[0] = 1;
        r.writeUInt16LE(eventType | (more ? 0x20 : 0x00), 1);
        r[3] = pdu.addressType;
        pdu.address.copy(r, 4);
        r[10] = 0x01; // primary PHY LE 1M
        r[11] = ext.secondaryPhy;
        r[12] = ext.sid;
        r.writeInt8(Math.max(-127, Math.min(20, ext.txPowerDbm)), 13);
        r.writeInt8(rssi, 14);
        r.writeUInt16LE(0, 15); // no periodic advertising
        if (ext.directed && pdu.directAddress && !scanResponse) {
          r[17] = this.scan.ownAddressType & 1;
          pdu.directAddress.copy(r, 18);
        }
        r[24] = chunk.length;
        chunk.copy(r, 25);
        this.sendLeEvent(LeSubevent.EXTENDED_ADVERTISING_REPORT, r);
      } while (offset < data.length);
      return;
    }
    if (this.scan.extended) {
      // Extended report for a legacy PDU: bit 4 "legacy" set, plus connectable/scannable/
      // directed/scan-response bits (Vol 4 Part E §7.7.65.13).
      const legacyTypes: Record<number, number> = { 0x00: 0x13, 0x01: 0x15, 0x02: 0x12, 0x03: 0x10 };
      let eventType = legacyTypes[pdu.advType] ?? 0x10;
      if (scanResponse) eventType = pdu.advType === AdvType.ADV_IND ? 0x1b : 0x1a;
      const r = Buffer.alloc(25 + data.length);
      r[0] = 1;
      r.writeUInt16LE(eventType, 1);
      r[3] = pdu.addressType;
      pdu.address.copy(r, 4);
      r[10] = 0x01; // primary PHY LE 1M
      r[11] = 0x00; // no secondary PHY
      r[12] = 0xff; // no ADI
      r[13] = 0x7f; // TX power unavailable
      r.writeInt8(rssi, 14);
      r.writeUInt16LE(0, 15);
      r[17] = 0;
      r[24] = data.length;
      data.copy(r, 25);
      this.sendLeEvent(LeSubevent.EXTENDED_ADVERTISING_REPORT, r);
    } else {
      const r = Buffer.alloc(11 + data.length);
      r[0] = 1;
      r[1] = scanResponse ? 0x04 : pdu.advType;
      r[2] = pdu.addressType;
      pdu.address.copy(r, 3);
      r[9] = data.length;
      data.copy(r, 10);
      r.writeInt8(rssi, 10 + data.length);
      this.sendLeEvent(LeSubevent.ADVERTISING_REPORT, r);
    }
  }

  onScanRequest(pdu: AdvertisingPdu, scanner: AirAddress): void {
    if (pdu.setHandle === undefined) return;
    const set = this.advertisingSets.get(pdu.setHandle);
    if (!set?.enabled || !set.scanRequestNotification) return;
    const e = Buffer.alloc(8);
    e[0] = set.handle;
    e[1] = scanner.type;
    scanner.address.copy(e, 2);
    this.sendLeEvent(LeSubevent.SCAN_REQUEST_RECEIVED, e);
  }

  acceptConnection(link: Link, initiator: AirParticipant, addresses?: ConnectionAddresses): number {
    const handle = this.allocateHandle();
    link.peripheral.handle = handle;
    this.connections.set(handle, link.peripheral);
    this.peerAddresses.set(link.peripheral, addresses?.initiator ?? { type: 0, address: Buffer.from(initiator.address) });
    const set = addresses?.pdu.setHandle !== undefined ? this.advertisingSets.get(addresses.pdu.setHandle) : undefined;
    if (set) {
      // The set that made the connection stops; its host hears Connection Complete, then
      // Advertising Set Terminated naming the connection (Vol 4 Part E §7.7.65.18).
      const events = set.eventsSent;
      this.stopAdvertisingSet(set);
      this.sendConnectionComplete(Status.SUCCESS, link.peripheral);
      this.sendAdvertisingSetTerminated(set, Status.SUCCESS, handle, events);
    } else {
      // Connectable legacy advertising ends when a connection is made.
      this.stopAdvertising();
      this.sendConnectionComplete(Status.SUCCESS, link.peripheral);
    }
    return handle;
  }

  private applyPolicyAfterConnect(end: LinkEnd): void {
    const policy = this.options.linkPolicy;
    const phy = policy.phy ?? this.defaultPhy;
    if (phy === '2M') this.startPhyUpdate(end, '2M', false);
  }

  /**
   * Lowest free handle, as common controllers (Zephyr, Nordic SoftDevice) allocate them.
   * Besides fidelity this matters for bleno: its SMP listener takes (cid, data) from an
   * event that emits (handle, cid, data), so ACL data on connection handle 0x0006 (the SMP
   * CID) crashes it with "data.readUInt8 is not a function". Counting handles up would reach
   * 6 after five reconnects; lowest-free only with six simultaneous links.
   */
  private allocateHandle(): number {
    for (let handle = 0x0001; handle <= 0x0eff; handle++) if (!this.connections.has(handle)) return handle;
    throw new Error('no free connection handle');
  }

  private sendConnectionComplete(status: number, end: LinkEnd | null): void {
    const peer = end ? (end.peer.owner as VirtualController) : null;
    const params = end?.link.params;
    // Enhanced Connection Complete replaces the legacy one when the host unmasked it.
    const enhanced = this.leEventEnabled(LeSubevent.ENHANCED_CONNECTION_COMPLETE);
    const core = Buffer.alloc(enhanced ? 30 : 18);
    core[0] = status;
    if (end && peer && params) {
      core.writeUInt16LE(end.handle, 1);
      core[3] = end.role === 'central' ? 0x00 : 0x01;
      const peerAddress = this.peerAddresses.get(end) ?? { type: 0, address: peer.address };
      core[4] = peerAddress.type;
      peerAddress.address.copy(core, 5);
      // Enhanced: Local_ and Peer_Resolvable_Private_Address stay zero (no resolving list).
      const tail = enhanced ? 23 : 11;
      core.writeUInt16LE(Math.round(params.intervalUs / 1250), tail);
      core.writeUInt16LE(params.latency, tail + 2);
      core.writeUInt16LE(Math.round(params.supervisionTimeoutUs / 10_000), tail + 4);
      core[tail + 6] = 0x00; // central clock accuracy 500 ppm
    }
    this.sendLeEvent(enhanced ? LeSubevent.ENHANCED_CONNECTION_COMPLETE : LeSubevent.CONNECTION_COMPLETE, core);
  }

  // ───────────────────────────── controller → host ─────────────────────────────

  private eventEnabled(code: number): boolean {
    return ((this.eventMask >> BigInt(code - 1)) & 1n) === 1n;
  }

  private leEventEnabled(subevent: number): boolean {
    return this.eventEnabled(EventCode.LE_META) && ((this.leEventMask >> BigInt(subevent - 1)) & 1n) === 1n;
  }

  private sendMaskedEvent(code: number, params: Buffer): void {
    if (!this.eventEnabled(code)) return;
    this.sendEvent(eventPacket(code, params));
  }

  private sendLeEvent(subevent: number, params: Buffer): void {
    if (!this.leEventEnabled(subevent)) return;
    this.sendEvent(leMetaEvent(subevent, params));
  }

  private sendEvent(packet: Buffer, atUs?: number): void {
    this.stats.events++;
    this.sendToHost(packet, atUs);
  }

  /** Fault: a Hardware Error event (the host is expected to reset the controller). */
  raiseHardwareError(code: number): void {
    this.sendMaskedEvent(EventCode.HARDWARE_ERROR, Buffer.from([code & 0xff]));
  }

  /** Fault: the next `count` uses of opcode fail with status. */
  failCommand(op: number, status: number, count = 1): void {
    this.failingCommands.set(op, { status, remaining: count });
  }

  /** Fault (host robustness only): flip one random bit in controller→host packets. */
  corruptHciBytes(probability: number, count = Infinity): void {
    this.corruption = probability > 0 && count > 0 ? { probability, remaining: count } : null;
  }

  /**
   * Controller → host, in order. `atUs` (default now) is the model time the packet exists:
   * a packet received late in a connection event that was evaluated at its anchor waits
   * until its last bit was on the air, and everything after it waits behind it.
   */
  private sendToHost(packet: Buffer, atUs?: number): void {
    if (this.hung || this.closed) return;
    let outgoing = packet;
    if (this.corruption && this.random.chance(this.corruption.probability)) {
      outgoing = Buffer.from(packet);
      const index = 1 + Math.floor(this.random.next() * (outgoing.length - 1));
      outgoing[index] = outgoing[index]! ^ (1 << Math.floor(this.random.next() * 8));
      if (--this.corruption.remaining <= 0) this.corruption = null;
    }
    const byteUs = this.uartByteUs();
    const now = this.air.clock.nowUs();
    const notBefore = atUs !== undefined && atUs > now ? atUs : now;
    if (this.jitterUs > 0 || this.deliveryQueueLength > 0 || byteUs > 0 || notBefore > now) {
      // Air time, UART latency jitter and the bytes' time on the wire, order preserved.
      const jitter = this.jitterUs > 0 ? this.random.uniform(0, this.jitterUs) : 0;
      const at = Math.max(this.lastDeliveryUs, notBefore + jitter) + outgoing.length * byteUs;
      this.lastDeliveryUs = at;
      this.deliveryQueueLength++;
      this.hostQueue.push({ atUs: at, packet: outgoing });
      if (this.hostQueue.length === 1) this.scheduleHostQueue();
      return;
    }
    this.writeToPort(outgoing);
  }

  /**
   * One timer for the head of the queue, never one per packet: wall-clock timers with
   * nearly equal deadlines can fire out of order, and the host must see packets in order.
   */
  private scheduleHostQueue(): void {
    const head = this.hostQueue[0];
    if (!head) return;
    this.air.clock.at(head.atUs, () => {
      const now = this.air.clock.nowUs();
      while (this.hostQueue.length > 0 && this.hostQueue[0]!.atUs <= now) {
        const { packet } = this.hostQueue.shift()!;
        this.deliveryQueueLength--;
        this.writeToPort(packet);
      }
      this.scheduleHostQueue();
    });
  }

  /** Microseconds one byte takes on the HCI UART (0 = unlimited). */
  private uartByteUs(): number {
    const baud = this.options.uartBaud;
    return baud !== undefined && baud > 0 ? 10_000_000 / baud : 0;
  }

  private writeToPort(packet: Buffer): void {
    if (this.hung || this.closed) return;
    const now = this.air.clock.nowUs();
    for (const tap of this.taps) tap.record(packet, 'controller-to-host', now);
    this.port?.write(packet);
  }

  private defaultScanState(): ScanState {
    return { active: false, ownAddressType: 0, durationUs: 0, periodUs: 0, durationTimer: null, intervalUs: 10_000, windowUs: 10_000, enabled: false, paused: false, filterDuplicates: false, extended: false, reported: new Set() };
  }

  private defaultAdvertisingState(): AdvertisingState {
    return { ownAddressType: 0, intervalUs: 1_280_000, advType: AdvType.ADV_IND, directAddress: Buffer.alloc(6), advData: Buffer.alloc(0), scanResponseData: Buffer.alloc(0), enabled: false, nextEventTimer: null };
  }

  /** Advertising sets of the extended advertising commands, for reporting and tests. */
  describeAdvertisingSets(): Array<{ handle: number; properties: number; enabled: boolean; dataBytes: number; scanResponseBytes: number }> {
    return [...this.advertisingSets.values()].map((set) => ({ handle: set.handle, properties: set.properties, enabled: set.enabled, dataBytes: set.advData.length, scanResponseBytes: set.scanResponseData.length }));
  }

  /** Live connections for reporting: handle, role, peer, parameters. */
  describeConnections(): Array<{ handle: number; role: string; peer: string; intervalMs: number; phy: Phy; txOctets: number; rxOctets: number; rssiDbm: number }> {
    return [...this.connections.values()].map((end) => ({
      handle: end.handle,
      role: end.role,
      peer: end.peer.owner.name,
      intervalMs: end.link.params.intervalUs / 1000,
      phy: end.link.params.phy,
      txOctets: end.txOctets,
      rxOctets: end.peer.txOctets,
      rssiDbm: Math.round(end.lastRssiDbm),
    }));
  }
}

/** Commands answered with Command Status (the rest get Command Complete). */
function isStatusCommand(op: number): boolean {
  const statusCommands: number[] = [
    Op.DISCONNECT,
    Op.READ_REMOTE_VERSION,
    Op.LE_CREATE_CONNECTION,
    Op.LE_EXT_CREATE_CONNECTION,
    Op.LE_CONNECTION_UPDATE,
    Op.LE_READ_REMOTE_FEATURES,
    Op.LE_START_ENCRYPTION,
    Op.LE_SET_PHY,
  ];
  return statusCommands.includes(op);
}

/**
 * Return parameters of a failed Command Complete: the status, then for commands whose
 * return parameters start with a connection handle, that handle echoed back.
 */
function failureReturn(op: number, status: number, params: Buffer): Buffer {
  const handleCommands: number[] = [Op.READ_RSSI, Op.READ_TX_POWER_LEVEL, Op.LE_SET_DATA_LENGTH, Op.LE_READ_PHY, Op.LE_LTK_REPLY, Op.LE_LTK_NEGATIVE_REPLY];
  if (handleCommands.includes(op)) {
    const r = Buffer.alloc(op === Op.READ_RSSI || op === Op.READ_TX_POWER_LEVEL ? 4 : op === Op.LE_READ_PHY ? 5 : 3);
    r[0] = status;
    if (params.length >= 2) r.writeUInt16LE(params.readUInt16LE(0), 1);
    return r;
  }
  return Buffer.from([status]);
}

function validConnectionParameters(intervalMin: number, intervalMax: number, latency: number, timeout: number): boolean {
  if (intervalMin < 0x0006 || intervalMax > 0x0c80 || intervalMin > intervalMax) return false;
  if (latency > 0x01f3 || timeout < 0x000a || timeout > 0x0c80) return false;
  // Supervision timeout must exceed (1 + latency) * interval * 2 (Vol 4 Part E §7.8.12).
  return timeout * 10 > (1 + latency) * intervalMax * 1.25 * 2;
}

/** Max TX time for a data length (µs), as reported in Data Length Change. */
function txTimeUs(octets: number, phy: Phy = '1M'): number {
  return (octets + 14) * (phy === '2M' ? 4 : 8);
}

/** LL control opcodes of the Connection Parameters Request procedure (Vol 6 Part B §2.4.2). */
const LL_CONNECTION_PARAM_REQ = 0x0f;
const LL_REJECT_EXT_IND = 0x11;
/** The LL response timeout (Vol 6 Part B §5.2): a procedure unanswered this long loses the link. */
const LL_RESPONSE_TIMEOUT_US = 40_000_000;

/** What a peripheral asks for, in HCI units (1.25 ms, events, 10 ms). */
export interface ParameterRequest {
  intervalMin: number;
  intervalMax: number;
  latency: number;
  timeout: number;
}

/**
 * LL_CONNECTION_PARAM_REQ (Vol 6 Part B §2.4.2.16): Interval_Min, Interval_Max, Latency,
 * Timeout, PreferredPeriodicity (0: none), ReferenceConnEventCount, Offset0..5 (0xFFFF: none).
 */
function connectionParamReq(r: ParameterRequest, referenceEvent: number): Buffer {
  const b = Buffer.alloc(24, 0xff);
  b[0] = LL_CONNECTION_PARAM_REQ;
  b.writeUInt16LE(r.intervalMin, 1);
  b.writeUInt16LE(r.intervalMax, 3);
  b.writeUInt16LE(r.latency, 5);
  b.writeUInt16LE(r.timeout, 7);
  b[9] = 0;
  b.writeUInt16LE(referenceEvent & 0xffff, 10);
  return b;
}

/** LL_CONNECTION_UPDATE_IND's CtrData (Vol 6 Part B §2.4.2.1): WinSize, WinOffset, Interval, Latency, Timeout, Instant. */
function connectionUpdateInd(instant: number, interval: number, latency: number, timeout: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0x00; // opcode LL_CONNECTION_UPDATE_IND
  b[1] = 1; // WinSize 1.25 ms
  b.writeUInt16LE(0, 2);
  b.writeUInt16LE(interval, 4);
  b.writeUInt16LE(latency, 6);
  b.writeUInt16LE(timeout, 8);
  b.writeUInt16LE(instant, 10);
  return b;
}
