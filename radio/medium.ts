// The shared radio medium: device positions, log-distance path loss, packet error rate that
// rises near the edge of range, and medium-level faults (blackouts, extra packet loss).
import type { SeededRandom } from './prng';

export interface Position {
  x: number;
  y: number;
  z?: number;
}

export interface PropagationModel {
  /** Transmit power, dBm. */
  txPowerDbm: number;
  /** Path loss at the 1 m reference distance, dB. */
  pathLossAt1mDb: number;
  /** Log-distance exponent (2 free space, 2.5–3.5 indoors). */
  pathLossExponent: number;
  /** Receiver sensitivity: below this RSSI nothing is received, dBm. */
  sensitivityDbm: number;
  /** Margin above sensitivity at which PER is 50 %, dB. */
  perMidpointMarginDb: number;
  /** How sharply PER falls with margin (logistic slope, 1/dB). */
  perSlopePerDb: number;
  /** Standard deviation of per-packet RSSI fluctuation (fast fading), dB. */
  fadingSigmaDb: number;
}

export const DEFAULT_PROPAGATION: PropagationModel = {
  txPowerDbm: 0,
  pathLossAt1mDb: 40,
  pathLossExponent: 2.7,
  sensitivityDbm: -92,
  perMidpointMarginDb: 2,
  perSlopePerDb: 1.5,
  fadingSigmaDb: 1,
};

export interface Blackout {
  startUs: number;
  endUs: number;
  /** Controllers affected; empty = everyone. */
  controllers: string[];
}

export class Medium {
  readonly positions = new Map<string, Position>();
  readonly blackouts: Blackout[] = [];
  /** Extra packet error rate per controller (applies to everything it sends or receives). */
  readonly extraPer = new Map<string, number>();
  globalExtraPer = 0;

  constructor(
    readonly model: PropagationModel,
    private readonly random: SeededRandom,
  ) {}

  setPosition(name: string, position: Position): void {
    this.positions.set(name, { ...position });
  }

  distanceM(a: string, b: string): number {
    const pa = this.positions.get(a) ?? { x: 0, y: 0 };
    const pb = this.positions.get(b) ?? { x: 0, y: 0 };
    const d = Math.hypot(pa.x - pb.x, pa.y - pb.y, (pa.z ?? 0) - (pb.z ?? 0));
    // Antennas are never closer than 10 cm: keeps RSSI finite at zero distance.
    return Math.max(d, 0.1);
  }

  /** Mean RSSI at b of a transmission from a (no fading), dBm. */
  meanRssiDbm(a: string, b: string): number {
    const m = this.model;
    return m.txPowerDbm - m.pathLossAt1mDb - 10 * m.pathLossExponent * Math.log10(this.distanceM(a, b));
  }

  /** Distance at which the mean RSSI equals the sensitivity. */
  rangeM(): number {
    const m = this.model;
    return 10 ** ((m.txPowerDbm - m.pathLossAt1mDb - m.sensitivityDbm) / (10 * m.pathLossExponent));
  }

  /** Packet error rate for a packet from a to b, from the mean link margin alone. */
  packetErrorRate(a: string, b: string): number {
    const margin = this.meanRssiDbm(a, b) - this.model.sensitivityDbm;
    if (margin < 0) return 1;
    const per = 1 / (1 + Math.exp(this.model.perSlopePerDb * (margin - this.model.perMidpointMarginDb)));
    const extra = 1 - (1 - (this.extraPer.get(a) ?? 0)) * (1 - (this.extraPer.get(b) ?? 0)) * (1 - this.globalExtraPer);
    return 1 - (1 - per) * (1 - extra);
  }

  inBlackout(name: string, timeUs: number): boolean {
    return this.blackouts.some(
      (w) => timeUs >= w.startUs && timeUs < w.endUs && (w.controllers.length === 0 || w.controllers.includes(name)),
    );
  }

  /**
   * One packet from a to b at timeUs: received or not, and the RSSI it was received at.
   * Out of range (mean RSSI below sensitivity) nothing is ever received.
   */
  transmit(a: string, b: string, timeUs: number): { received: boolean; rssiDbm: number } {
    const rssi = this.meanRssiDbm(a, b) + this.random.gaussian() * this.model.fadingSigmaDb;
    if (this.inBlackout(a, timeUs) || this.inBlackout(b, timeUs)) return { received: false, rssiDbm: rssi };
    const received = !this.random.chance(this.packetErrorRate(a, b));
    return { received, rssiDbm: rssi };
  }

  /** RSSI a receiver would report right now (for Read RSSI), clamped to the int8 range. */
  sampleRssiDbm(a: string, b: string): number {
    const rssi = this.meanRssiDbm(a, b) + this.random.gaussian() * this.model.fadingSigmaDb;
    return Math.max(-127, Math.min(20, Math.round(rssi)));
  }
}
