// A user-space LE controller behind an HCI (H4) transport: parses the host's commands and
// ACL data, answers with Command Complete/Status, honours the host's event masks, keeps LE
// buffer accounting with Number Of Completed Packets, and drives advertising, scanning,
// initiating and connections on the shared Air.
import { AdvType, type AdvertisingPdu, type Air, type AirParticipant } from './air';
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
import { LLID_CONTROL, LLID_CONTINUATION, LLID_START, type Link, type LinkEnd, type LinkParameters } from './link';
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
}

/** Depth of the controller's command queue (Num_HCI_Command_Packets when idle). */
const COMMAND_QUEUE_DEPTH = 5;
const DEFAULT_EVENT_MASK = 0x00001fffffffffffn;
const DEFAULT_LE_EVENT_MASK = 0x1fn;
const LE_MAX_DATA_LENGTH = 251;
const LE_MIN_DATA_LENGTH = 27;

// LE features (Vol 6 Part B §4.6): Data Packet Length Extension (5), LE 2M PHY (8),
// LE Extended Advertising (12). Encryption (0) is deliberately absent: no SMP/LTK support.
const FEATURE_DATA_LENGTH_EXTENSION = 1n << 5n;
const FEATURE_2M_PHY = 1n << 8n;
const FEATURE_EXTENDED_ADVERTISING = 1n << 12n;

/** Supported Commands bitmap positions (Vol 4 Part E §6.27) of the commands implemented. */
const SUPPORTED_COMMAND_BITS: Array<[octet: number, bit: number]> = [
  [0, 5], [2, 7], [5, 6], [5, 7], [10, 2], [14, 3], [14, 5], [14, 7], [15, 1], [15, 5], [22, 2],
  [24, 5], [24, 6], [25, 0], [25, 1], [25, 2], [25, 4], [25, 5], [25, 6], [25, 7], [26, 0], [26, 1],
  [26, 2], [26, 3], [26, 4], [26, 5], [26, 6], [26, 7], [27, 2], [27, 5], [27, 7], [28, 2], [28, 3],
  [33, 6], [33, 7], [34, 0], [35, 3], [35, 4], [35, 5], [35, 6], [37, 5], [37, 6], [37, 7],
];

type CommandResult =
  | { kind: 'complete'; params: Buffer }
  | { kind: 'status'; status: number; after?: () => void };

interface ScanState {
  active: boolean;
  intervalUs: number;
  windowUs: number;
  enabled: boolean;
  filterDuplicates: boolean;
  extended: boolean;
  reported: Set<string>;
}

interface InitiatorState {
  peerAddressType: number;
  peerAddress: Buffer;
  params: LinkParameters;
  extended: boolean;
}

interface AdvertisingState {
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

export class VirtualController implements AirParticipant {
  readonly name: string;
  address: Buffer;
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
      case Op.READ_LOCAL_COMMANDS: {
        const bitmap = Buffer.alloc(64);
        for (const [octet, bit] of SUPPORTED_COMMAND_BITS) bitmap[octet] = bitmap[octet]! | (1 << bit);
        return ok(bitmap);
      }
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
        let features = FEATURE_DATA_LENGTH_EXTENSION | FEATURE_2M_PHY;
        if (this.options.extendedAdvertisingFeature) features |= FEATURE_EXTENDED_ADVERTISING;
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(features, 0);
        return ok(b);
      }
      case Op.LE_READ_SUPPORTED_STATES: {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(0x000003ffffffffffn, 0);
        return ok(b);
      }
      case Op.LE_SET_RANDOM_ADDRESS:
        if (!expectLength(6)) return fail(Status.INVALID_PARAMETERS);
        if (this.advertising.enabled || this.scan.enabled) return fail(Status.COMMAND_DISALLOWED);
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
      case Op.LE_READ_REMOTE_FEATURES:
        return this.remoteProcedure(p, (handle, end) => {
          const e = Buffer.alloc(11);
          e[0] = Status.SUCCESS;
          e.writeUInt16LE(handle, 1);
          let features = FEATURE_DATA_LENGTH_EXTENSION | FEATURE_2M_PHY;
          if ((end.peer.owner as VirtualController).options?.extendedAdvertisingFeature) features |= FEATURE_EXTENDED_ADVERTISING;
          e.writeBigUInt64LE(features, 3);
          this.sendLeEvent(LeSubevent.READ_REMOTE_FEATURES_COMPLETE, e);
        });
      case Op.LE_RAND: {
        const b = Buffer.alloc(8);
        b.writeUInt32LE(this.random.nextUint32(), 0);
        b.writeUInt32LE(this.random.nextUint32(), 4);
        return ok(b);
      }
      case Op.LE_LTK_REPLY:
      case Op.LE_LTK_NEGATIVE_REPLY: {
        // No LE encryption: the controller never raised an LTK request to answer.
        const handle = p.length >= 2 ? p.readUInt16LE(0) : 0;
        return fail(this.connections.has(handle) ? Status.COMMAND_DISALLOWED : Status.UNKNOWN_CONNECTION_ID);
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
        return ok();
      }
      case Op.LE_SET_PHY:
        return this.setPhy(p);
      case Op.LE_START_ENCRYPTION:
        // LE Encryption is not in the supported features (no SMP/LTK model): like a
        // controller without it, the command is unknown.
        return { kind: 'status', status: Status.UNKNOWN_COMMAND };
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
    this.scan = this.defaultScanState();
    this.initiator = null;
    // Forget the handles first so the host hears nothing about them.
    const ends = [...this.connections.values()];
    this.connections.clear();
    for (const end of ends) end.link.closeEnd(end, Status.CONNECTION_TIMEOUT);
    this.completedPackets.clear();
    this.buffersInUse = 0;
    this.eventMask = DEFAULT_EVENT_MASK;
    this.leEventMask = DEFAULT_LE_EVENT_MASK;
    this.commandStyle = 'unknown';
    this.suggestedTxOctets = LE_MIN_DATA_LENGTH;
    this.defaultPhy = '1M';
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
      if (this.isOnAir()) {
        this.air.broadcast(
          {
            advertiser: this,
            advType: this.advertising.advType,
            addressType: 0,
            address: this.address,
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

  private setScanParameters(p: Buffer, extended: boolean): CommandResult {
    const fail = (status: number): CommandResult => ({ kind: 'complete', params: Buffer.from([status]) });
    if (!this.claimStyle(extended ? 'extended' : 'legacy')) return fail(Status.COMMAND_DISALLOWED);
    if (this.scan.enabled) return fail(Status.COMMAND_DISALLOWED);
    let scanType: number;
    let interval: number;
    let window: number;
    if (extended) {
      if (p.length < 3) return fail(Status.INVALID_PARAMETERS);
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
      scanType = p[0]!;
      interval = p.readUInt16LE(1);
      window = p.readUInt16LE(3);
    }
    if (scanType > 1 || interval < 4 || window < 4 || window > interval || (!extended && interval > 0x4000)) {
      return fail(Status.INVALID_PARAMETERS);
    }
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
    if (enable) {
      // Each enable starts a fresh duplicate filter (Vol 4 Part E §7.8.11).
      this.scan.reported = new Set();
      this.scan.filterDuplicates = p[1]! > 0;
    }
    this.scan.enabled = enable;
    this.scan.extended = extended;
    return { kind: 'complete', params: Buffer.from([Status.SUCCESS]) };
  }

  private createConnection(p: Buffer, extended: boolean): CommandResult {
    const status = (s: number): CommandResult => ({ kind: 'status', status: s });
    if (!this.claimStyle(extended ? 'extended' : 'legacy')) return status(Status.COMMAND_DISALLOWED);
    if (this.initiator) return status(Status.COMMAND_DISALLOWED);
    let peerAddressType: number;
    let peerAddress: Buffer;
    let intervalMin: number;
    let intervalMax: number;
    let latency: number;
    let timeout: number;
    if (extended) {
      if (p.length < 10) return status(Status.INVALID_PARAMETERS);
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
      intervalMin = p.readUInt16LE(13);
      intervalMax = p.readUInt16LE(15);
      latency = p.readUInt16LE(17);
      timeout = p.readUInt16LE(19);
    }
    if (!validConnectionParameters(intervalMin, intervalMax, latency, timeout) || peerAddressType > 3) {
      return status(Status.INVALID_PARAMETERS);
    }
    const policy = this.options.linkPolicy;
    const intervalUs = policy.intervalMs !== undefined ? Math.round(policy.intervalMs / 1.25) * 1250 : intervalMin * 1250;
    this.initiator = {
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
    if (end.role !== 'central') return status(Status.COMMAND_DISALLOWED); // no Connection Parameters Request procedure
    if (end.link.pendingUpdate) return status(Status.COMMAND_DISALLOWED);
    const link = end.link;
    return {
      kind: 'status',
      status: Status.SUCCESS,
      after: () => {
        const params: LinkParameters = {
          ...link.params,
          intervalUs: intervalMin * 1250,
          latency,
          supervisionTimeoutUs: timeout * 10_000,
        };
        // LL_CONNECTION_UPDATE_IND with an instant six events ahead.
        end.enqueue(
          {
            llid: LLID_CONTROL,
            payload: Buffer.alloc(12, 0),
            queuedAtUs: this.air.clock.nowUs(),
            onDelivered: () => {
              link.pendingUpdate = {
                instant: (link.eventCounter + 6) & 0xffff,
                params,
                onApplied: () => {
                  for (const e of [link.central, link.peripheral]) {
                    (e.owner as VirtualController).reportConnectionUpdate(e);
                  }
                },
              };
            },
          },
          true,
        );
      },
    };
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

  /** LL_LENGTH_REQ/RSP: each side's max TX becomes min(own wish, peer's max RX, policies). */
  private startDataLengthProcedure(end: LinkEnd, requestedTxOctets: number): void {
    const peerController = end.peer.owner as VirtualController;
    const cap = Math.min(this.maxDataLength(), peerController.maxDataLength());
    end.enqueue(
      {
        llid: LLID_CONTROL,
        payload: Buffer.alloc(9, 0),
        queuedAtUs: this.air.clock.nowUs(),
        onDelivered: () => {
          const oldLocal = end.txOctets;
          const oldPeer = end.peer.txOctets;
          end.txOctets = Math.min(requestedTxOctets, cap);
          end.peer.txOctets = Math.min(Math.max(peerController.options.autonomousMaxTxOctets, peerController.suggestedTxOctets), cap);
          if (end.txOctets !== oldLocal || end.peer.txOctets !== oldPeer) {
            this.reportDataLength(end);
            peerController.reportDataLength(end.peer);
          }
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
    return { kind: 'status', status: Status.SUCCESS, after: () => this.startPhyUpdate(end, wants2M ? '2M' : '1M') };
  }

  /** LL_PHY_REQ/RSP/UPDATE_IND condensed into one control exchange. */
  private startPhyUpdate(end: LinkEnd, phy: Phy): void {
    end.enqueue(
      {
        llid: LLID_CONTROL,
        payload: Buffer.from([0x16, phy === '2M' ? 2 : 1, phy === '2M' ? 2 : 1]),
        queuedAtUs: this.air.clock.nowUs(),
        onDelivered: () => {
          end.link.params = { ...end.link.params, phy };
          for (const e of [end, end.peer]) (e.owner as VirtualController).reportPhyUpdate(e);
        },
      },
      true,
    );
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

  onConnectionEventDone(end: LinkEnd): void {
    const count = this.completedPackets.get(end.handle);
    if (!count || this.connections.get(end.handle) !== end) return;
    this.completedPackets.delete(end.handle);
    this.sendEvent(numberOfCompletedPackets([[end.handle, count]]));
  }

  onLinkData(end: LinkEnd, llid: number, payload: Buffer): void {
    if (this.connections.get(end.handle) !== end) return;
    this.stats.aclToHost++;
    this.sendToHost(aclPacket(end.handle, llid === LLID_START ? 0b10 : 0b01, payload));
  }

  onLinkClosed(end: LinkEnd, reason: number): void {
    if (this.connections.get(end.handle) !== end) return;
    this.connections.delete(end.handle);
    // Buffers held by this handle's unsent packets are freed (the host assumes so too).
    const held = end.txQueue.filter((pdu) => pdu.onAcked && pdu.llid !== LLID_CONTROL).length;
    this.buffersInUse = Math.max(0, this.buffersInUse - held);
    this.completedPackets.delete(end.handle);
    this.sendMaskedEvent(EventCode.DISCONNECTION_COMPLETE, disconnectionComplete(end.handle, reason).subarray(3));
  }

  // ───────────────────────────── advertising channel ─────────────────────────────

  onAdvertisingPdu(pdu: AdvertisingPdu, rssiDbm: number, timeUs: number): void {
    const connectable = pdu.advType === AdvType.ADV_IND || pdu.advType === AdvType.ADV_DIRECT_IND;
    const initiator = this.initiator;
    if (
      initiator &&
      connectable &&
      initiator.peerAddressType === pdu.addressType &&
      initiator.peerAddress.equals(pdu.address) &&
      (pdu.directAddress === null || pdu.directAddress.equals(this.address))
    ) {
      // CONNECT_IND right after the advert (T_IFS later).
      const handle = this.allocateHandle();
      const params = initiator.params;
      const link = this.air.connect(this, handle, pdu.advertiser, params, timeUs + 150 + 376);
      if (link) {
        this.initiator = null;
        this.connections.set(handle, link.central);
        link.central.lastRssiDbm = rssiDbm;
        this.sendConnectionComplete(Status.SUCCESS, link.central);
        this.applyPolicyAfterConnect(link.central);
      }
      return;
    }
    if (!this.scan.enabled) return;
    // The scanner only hears what falls inside its scan window.
    if (this.scan.windowUs < this.scan.intervalUs && !this.random.chance(this.scan.windowUs / this.scan.intervalUs)) return;
    this.reportAdvertisement(pdu, rssiDbm, false);
    const scannable = pdu.advType === AdvType.ADV_IND || pdu.advType === AdvType.ADV_SCAN_IND;
    if (this.scan.active && scannable && this.air.exchange(this, pdu.advertiser, timeUs + 150)) {
      // Always a SCAN_RSP, even an empty one: noble reports a connectable device only then.
      this.reportAdvertisement(pdu, rssiDbm, true);
    }
  }

  private reportAdvertisement(pdu: AdvertisingPdu, rssiDbm: number, scanResponse: boolean): void {
    const key = `${pdu.address.toString('hex')}/${pdu.addressType}/${scanResponse ? 'rsp' : pdu.advType}`;
    if (this.scan.filterDuplicates) {
      if (this.scan.reported.has(key)) return;
      this.scan.reported.add(key);
    }
    const data = scanResponse ? pdu.scanResponseData : pdu.advData;
    const rssi = Math.max(-127, Math.min(20, Math.round(rssiDbm)));
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

  acceptConnection(link: Link, _initiator: AirParticipant): number {
    const handle = this.allocateHandle();
    // Connectable legacy advertising ends when a connection is made.
    this.stopAdvertising();
    link.peripheral.handle = handle;
    this.connections.set(handle, link.peripheral);
    this.sendConnectionComplete(Status.SUCCESS, link.peripheral);
    return handle;
  }

  private applyPolicyAfterConnect(end: LinkEnd): void {
    const policy = this.options.linkPolicy;
    const phy = policy.phy ?? this.defaultPhy;
    if (phy === '2M') this.startPhyUpdate(end, '2M');
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
      core[4] = 0x00; // peer address type: public
      peer.address.copy(core, 5);
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

  private sendEvent(packet: Buffer): void {
    this.stats.events++;
    this.sendToHost(packet);
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

  private sendToHost(packet: Buffer): void {
    if (this.hung || this.closed) return;
    let outgoing = packet;
    if (this.corruption && this.random.chance(this.corruption.probability)) {
      outgoing = Buffer.from(packet);
      const index = 1 + Math.floor(this.random.next() * (outgoing.length - 1));
      outgoing[index] = outgoing[index]! ^ (1 << Math.floor(this.random.next() * 8));
      if (--this.corruption.remaining <= 0) this.corruption = null;
    }
    if (this.jitterUs > 0 || this.deliveryQueueLength > 0) {
      // UART latency jitter, order preserved.
      const now = this.air.clock.nowUs();
      const at = Math.max(this.lastDeliveryUs, now + this.random.uniform(0, this.jitterUs));
      this.lastDeliveryUs = at;
      this.deliveryQueueLength++;
      this.air.clock.at(at, () => {
        this.deliveryQueueLength--;
        this.writeToPort(outgoing);
      });
      return;
    }
    this.writeToPort(outgoing);
  }

  private writeToPort(packet: Buffer): void {
    if (this.hung || this.closed) return;
    const now = this.air.clock.nowUs();
    for (const tap of this.taps) tap.record(packet, 'controller-to-host', now);
    this.port?.write(packet);
  }

  private defaultScanState(): ScanState {
    return { active: false, intervalUs: 10_000, windowUs: 10_000, enabled: false, filterDuplicates: false, extended: false, reported: new Set() };
  }

  private defaultAdvertisingState(): AdvertisingState {
    return { intervalUs: 1_280_000, advType: AdvType.ADV_IND, directAddress: Buffer.alloc(6), advData: Buffer.alloc(0), scanResponseData: Buffer.alloc(0), enabled: false, nextEventTimer: null };
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
