// A minimal HCI host for driving controllers over an in-memory transport with the
// ManualClock: exact, synchronous, deterministic — for link-layer and HCI unit tests where
// the real stacks (and wall time) would only add noise.
import { Air } from './air';
import { ManualClock, type RadioClock } from './clock';
import { VirtualController, type LinkPolicy, type PrivacySettings } from './controller';
import { EventCode, LeSubevent, Op, commandPacket, aclPacket, parseH4, addressToWire } from './hci';
import { DEFAULT_PROPAGATION, Medium, type PropagationModel } from './medium';
import { SeededRandom } from './prng';
import { MemoryHostPort } from './radio';

export interface ParsedEvent {
  code: number;
  params: Buffer;
  atUs: number;
}

export class MiniHost {
  readonly port: MemoryHostPort;
  readonly events: ParsedEvent[] = [];
  readonly acl: Array<{ handle: number; pb: number; data: Buffer; atUs: number }> = [];
  /** Called for every Number Of Completed Packets (after the counters are updated). */
  onCompleted: (() => void) | null = null;
  inFlight = 0;

  constructor(
    readonly controller: VirtualController,
    private readonly clock: RadioClock,
  ) {
    this.port = new MemoryHostPort(controller);
    controller.attach(this.port);
    this.port.onPacket = (packet) => {
      const parsed = parseH4(packet);
      if (parsed.type === 'event') {
        this.events.push({ code: parsed.code, params: Buffer.from(parsed.params), atUs: clock.nowUs() });
        if (parsed.code === EventCode.NUMBER_OF_COMPLETED_PACKETS) {
          for (let i = 0; i < parsed.params[0]!; i++) this.inFlight -= parsed.params.readUInt16LE(3 + i * 4);
          this.onCompleted?.();
        }
      } else if (parsed.type === 'acl') {
        this.acl.push({ handle: parsed.handle, pb: parsed.pb, data: Buffer.from(parsed.data), atUs: clock.nowUs() });
      }
    };
  }

  /** Sends a command; returns the Command Complete return parameters or Command Status status. */
  command(op: number, params: Buffer = Buffer.alloc(0)): { status: number; returnParams: Buffer; kind: 'complete' | 'status' } {
    const before = this.events.length;
    this.port.send(commandPacket(op, params));
    // With a modelled UART the answer takes the bytes' time on the wire: let a manual clock run.
    const manual = this.clock instanceof ManualClock ? this.clock : null;
    for (let waitedUs = 0; ; waitedUs += 100) {
      for (const event of this.events.slice(before)) {
        if (event.code === EventCode.COMMAND_COMPLETE && event.params.readUInt16LE(1) === op) {
          return { kind: 'complete', status: event.params[3]!, returnParams: event.params.subarray(3) };
        }
        if (event.code === EventCode.COMMAND_STATUS && event.params.readUInt16LE(2) === op) {
          return { kind: 'status', status: event.params[0]!, returnParams: event.params.subarray(0, 1) };
        }
      }
      if (!manual || waitedUs >= 100_000) throw new Error(`no Command Complete/Status for 0x${op.toString(16)}`);
      manual.advanceBy(100);
    }
  }

  /** Reset and unmask what noble does (LE Meta; LE connection, reports, DL and PHY changes). */
  initialize(): void {
    this.command(Op.RESET);
    this.command(Op.SET_EVENT_MASK, Buffer.from('fffffbff07f8bf3d', 'hex'));
    this.command(Op.LE_SET_EVENT_MASK, Buffer.from('5f08000000000000', 'hex'));
  }

  sendAcl(handle: number, pb: number, data: Buffer): void {
    this.inFlight++;
    this.port.send(aclPacket(handle, pb, data));
  }

  leEvents(subevent: number): ParsedEvent[] {
    return this.events.filter((e) => e.code === EventCode.LE_META && e.params[0] === subevent);
  }

  eventsWithCode(code: number): ParsedEvent[] {
    return this.events.filter((e) => e.code === code);
  }
}

export interface MiniWorldOptions {
  seed?: number;
  count?: number;
  policies?: LinkPolicy[];
  propagation?: Partial<PropagationModel>;
  aclBufferCount?: number;
  /** Claim LE Extended Advertising (feature bit 12) and its commands; default false. */
  extendedAdvertising?: boolean;
  /** HCI UART speed of every controller (bit/s); default unlimited. */
  uartBaud?: number;
  /** LE privacy per controller (index as `policies`). */
  privacy?: Array<PrivacySettings | undefined>;
}

export interface MiniWorld<C extends RadioClock = ManualClock> {
  clock: C;
  air: Air;
  medium: Medium;
  hosts: MiniHost[];
}

/** Controllers on one medium driven by MiniHosts, on a ManualClock. */
export function createMiniWorld(options: MiniWorldOptions = {}): MiniWorld {
  return createMiniWorldOn(new ManualClock(), options);
}

/** The same on any clock (a RealtimeClock for load measurements). */
export function createMiniWorldOn<C extends RadioClock>(clock: C, options: MiniWorldOptions = {}): MiniWorld<C> {
  const random = new SeededRandom(options.seed ?? 1);
  const medium = new Medium({ ...DEFAULT_PROPAGATION, ...options.propagation }, random.fork('medium'));
  const air = new Air(clock, medium, random.fork('air'));
  const hosts = Array.from({ length: options.count ?? 2 }, (_, i) => {
    const controller = new VirtualController(
      air,
      {
        name: `c${i + 1}`,
        address: `c0:1d:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`,
        extendedAdvertisingFeature: options.extendedAdvertising ?? false,
        aclBufferSize: 251,
        aclBufferCount: options.aclBufferCount ?? 12,
        linkPolicy: options.policies?.[i] ?? {},
        autonomousMaxTxOctets: 251,
        ...(options.uartBaud !== undefined ? { uartBaud: options.uartBaud } : {}),
        ...(options.privacy?.[i] !== undefined ? { privacy: options.privacy[i]! } : {}),
      },
      random.fork(`controller:c${i + 1}`),
    );
    medium.setPosition(controller.name, { x: (i % 10) * 0.5, y: Math.floor(i / 10) * 0.5 });
    const host = new MiniHost(controller, clock);
    host.initialize();
    return host;
  });
  return { clock, air, medium, hosts };
}

/** Issues the commands for peripheral to advertise and central to connect to it. */
export function startConnecting(central: MiniHost, peripheral: MiniHost, params: { intervalMin?: number; intervalMax?: number; timeout?: number } = {}): void {
  const adv = Buffer.alloc(15);
  adv.writeUInt16LE(0x20, 0); // 20 ms
  adv.writeUInt16LE(0x20, 2);
  adv[13] = 0x07;
  expectOk(peripheral.command(Op.LE_SET_ADV_PARAMS, adv).status, 'set adv params');
  expectOk(peripheral.command(Op.LE_SET_ADV_ENABLE, Buffer.from([1])).status, 'adv enable');
  const create = Buffer.alloc(25);
  create.writeUInt16LE(0x60, 0);
  create.writeUInt16LE(0x60, 2);
  create[5] = 0; // public
  addressToWire(peripheral.controller.addressString).copy(create, 6);
  create.writeUInt16LE(params.intervalMin ?? 6, 13);
  create.writeUInt16LE(params.intervalMax ?? 24, 15);
  create.writeUInt16LE(0, 17);
  create.writeUInt16LE(params.timeout ?? 42, 19);
  expectOk(central.command(Op.LE_CREATE_CONNECTION, create).status, 'create connection');
}

/** Advertiser starts advertising; initiator connects to it (ManualClock); returns both handles. */
export function connectPair(world: MiniWorld, central: MiniHost, peripheral: MiniHost, params: { intervalMin?: number; intervalMax?: number; timeout?: number } = {}): { centralHandle: number; peripheralHandle: number } {
  startConnecting(central, peripheral, params);
  for (let i = 0; i < 200 && central.leEvents(LeSubevent.CONNECTION_COMPLETE).length === 0; i++) world.clock.advanceBy(5000);
  const c = central.leEvents(LeSubevent.CONNECTION_COMPLETE)[0];
  if (!c) throw new Error('no connection');
  return { centralHandle: c.params.readUInt16LE(2), peripheralHandle: peripheral.controller.connections.keys().next().value ?? -1 };
}

function expectOk(status: number, what: string): void {
  if (status !== 0) throw new Error(`${what} failed with status 0x${status.toString(16)}`);
}
