// Lock device profiles: what the simulated lock's work would cost on a real lock MCU.
//
// The simulation runs on a PC, where an Ed25519 verify takes 0.1 ms and a flash erase is a
// memory fill. A profile gives the time a real part takes for each operation the lock does
// that matters — Ed25519 verify and sign, SHA-256 (per 64-byte compression block, which
// HMAC-SHA-256 and the table digest are made of), NOR program per byte and erase per block —
// and a DeviceCostModel charges it: it reads the work counters (protocol's cryptoWork, the
// NorFlash's program/erase counters) before and after a piece of the lock's synchronous
// work and converts the difference into milliseconds of device time. The Lock pays those
// milliseconds on its simulated clock (lock.ts), so a world or bench on a profile sees the
// lock take as long as the hardware would for that work.
//
// Not modelled (no published figure per operation, or negligible next to the above): CBOR
// encode/decode, map look-ups (the lock's check of each new phone key in an update is one:
// weakEd25519EncodingReason looks at the bytes, no point decompression — SPEC §3.3), and
// radio/CPU contention. Figures are typical
// values from the sources below (firmware-sim/README.md § Device profiles lists them with
// their ranges); "host" charges nothing.

import { cryptoWork } from '../protocol';
import type { NorFlash } from './flash';

export const DEVICE_PROFILE_NAMES = ['host', 'nrf52840', 'esp32-c3'] as const;
export type DeviceProfileName = (typeof DEVICE_PROFILE_NAMES)[number];

export interface DeviceProfile {
  name: Exclude<DeviceProfileName, 'host'>;
  /** One line: the part, its clock, the libraries the figures come from. */
  title: string;
  ed25519VerifyMs: number;
  ed25519SignMs: number;
  /** One SHA-256 compression (64 bytes). */
  sha256BlockUs: number;
  /** NOR program time per byte (page/word program time over its size). */
  flashProgramUsPerByte: number;
  /** Erase of one flash block of the simulated geometry (4 KB page/sector). */
  flashEraseBlockMs: number;
  /** Where each figure comes from (public sources, also in firmware-sim/README.md). */
  sources: Record<'ed25519Verify' | 'ed25519Sign' | 'sha256' | 'flashProgram' | 'flashErase', string>;
}

export const DEVICE_PROFILES: Readonly<Record<Exclude<DeviceProfileName, 'host'>, DeviceProfile>> = Object.freeze({
  nrf52840: {
    name: 'nrf52840',
    title: 'Nordic nRF52840, Cortex-M4F @ 64 MHz, software Ed25519/SHA-256, internal NVMC flash (4 KB pages)',
    ed25519VerifyMs: 47,
    ed25519SignMs: 17,
    // 827 ns/B × 64 B
    sha256BlockUs: 52.9,
    // t_WRITE 41 µs per 32-bit word
    flashProgramUsPerByte: 10.25,
    flashEraseBlockMs: 85,
    sources: {
      ed25519Verify: 'ed25519-dalek on an nRF52, 47 ms measured (meshcore-dev/MeshCore PR #2824); Monocypher ≈ 40 ms (RIOT-OS PR #21822: 73.3 ms keygen+sign+verify)',
      ed25519Sign: '≈ 17 ms: RIOT-OS PR #21822 (Monocypher on nRF52840 DK, 73.3 ms keygen+sign+verify) split with the sign/verify ratio of monocypher.org/speed',
      sha256: 'Mbed TLS software SHA-256 on nRF52840 (PCA10056), 1184 KiB/s = 827 ns/B (zephyrproject-rtos/zephyr PR #12630)',
      flashProgram: 'NVMC t_WRITE 41 µs per 32-bit word (nRF52840 Product Specification; nrfconnect/sdk-nrf PR #15448 EMDS default)',
      flashErase: 'NVMC t_ERASEPAGE 85 ms per 4 KB page (nRF52840 Product Specification; nrf-rs/nrf-hal PR #385); the CPU stalls meanwhile',
    },
  },
  'esp32-c3': {
    name: 'esp32-c3',
    title: 'Espressif ESP32-C3, RISC-V @ 160 MHz, wolfSSL Ed25519 (no ECC accelerator), SHA accelerator, external SPI NOR (4 KB sectors)',
    ed25519VerifyMs: 25.9,
    ed25519SignMs: 16.3,
    // 15,650 KiB/s hardware SHA: 64 B / 16,025,600 B/s
    sha256BlockUs: 4.0,
    // typical page program 0.7 ms per 256 B
    flashProgramUsPerByte: 2.73,
    flashEraseBlockMs: 45,
    sources: {
      ed25519Verify: 'wolfSSL 5.6 benchmark on ESP32-C3 @ 160 MHz, SP_MATH_ALL, 25.9 ms (gojimmypi/wolfssl IDE/Espressif/ESP-IDF/examples/wolfssl_benchmark/logs/ESP32C3-WOLFSSL_SP_MATH_ALL-160MHz.md)',
      ed25519Sign: 'same wolfSSL log, 16.3 ms',
      sha256: 'wolfSSL with the ESP32-C3 SHA accelerator, 15,650 KiB/s (gojimmypi/wolfssl …/logs/wolfssl_benchmark_IDF_v5_ESP32C3_HW.txt)',
      flashProgram: 'Winbond W25Q16 page program 0.7 ms typical (3 ms max) per 256 B (apache/mynewt-core hw/bsp/black_vet6/syscfg.yml, SPIFLASH_T* from the datasheet)',
      flashErase: 'SPI NOR 4 KB sector erase 45 ms typical, 300–400 ms max (GigaDevice GD25Q16C, quoted in RIOT-OS PR #20980; Winbond W25Q32JV/W25Q64JV datasheets)',
    },
  },
});

export function isDeviceProfileName(s: string): s is DeviceProfileName {
  return (DEVICE_PROFILE_NAMES as readonly string[]).includes(s);
}

/** The profile for a name; null for "host" (no model: nothing is charged). */
export function deviceProfile(name: DeviceProfileName): DeviceProfile | null {
  return name === 'host' ? null : DEVICE_PROFILES[name];
}

/** Counts of the operations the model charges. */
export interface DeviceWork {
  verifies: number;
  signs: number;
  sha256Blocks: number;
  bytesProgrammed: number;
  erases: number;
}

/** Device milliseconds per kind of work. */
export interface DeviceCharge {
  verifyMs: number;
  signMs: number;
  sha256Ms: number;
  programMs: number;
  eraseMs: number;
  totalMs: number;
}

export function zeroWork(): DeviceWork {
  return { verifies: 0, signs: 0, sha256Blocks: 0, bytesProgrammed: 0, erases: 0 };
}

/** What `work` costs on `profile` (all zero on the host). */
export function chargeFor(profile: DeviceProfile | null, work: DeviceWork): DeviceCharge {
  if (profile === null) return { verifyMs: 0, signMs: 0, sha256Ms: 0, programMs: 0, eraseMs: 0, totalMs: 0 };
  const verifyMs = work.verifies * profile.ed25519VerifyMs;
  const signMs = work.signs * profile.ed25519SignMs;
  const sha256Ms = (work.sha256Blocks * profile.sha256BlockUs) / 1000;
  const programMs = (work.bytesProgrammed * profile.flashProgramUsPerByte) / 1000;
  const eraseMs = work.erases * profile.flashEraseBlockMs;
  return { verifyMs, signMs, sha256Ms, programMs, eraseMs, totalMs: verifyMs + signMs + sha256Ms + programMs + eraseMs };
}

/**
 * Meters one lock's work. `measure(fn)` runs fn and attributes the crypto and flash work
 * done meanwhile to this lock (JavaScript is single-threaded and the lock's work is
 * synchronous, so nothing else runs in between). Nested measures count once.
 */
export class DeviceCostModel {
  readonly profile: DeviceProfile | null;
  /** Everything metered since boot. */
  readonly total: DeviceWork = zeroWork();
  /** The work of the last outermost measure. */
  last: DeviceWork = zeroWork();
  private depth = 0;

  constructor(
    readonly name: DeviceProfileName,
    private readonly flash: NorFlash,
  ) {
    this.profile = deviceProfile(name);
  }

  private snapshot(): DeviceWork {
    return { verifies: cryptoWork.verifies, signs: cryptoWork.signs, sha256Blocks: cryptoWork.sha256Blocks, bytesProgrammed: this.flash.bytesProgrammed, erases: this.flash.erases };
  }

  /** Run fn; returns its result and the device milliseconds its work costs (0 when nested). */
  measure<T>(fn: () => T): { result: T; chargedMs: number } {
    if (this.depth > 0) return { result: fn(), chargedMs: 0 };
    const before = this.snapshot();
    this.depth++;
    let result: T;
    try {
      result = fn();
    } finally {
      this.depth--;
      const after = this.snapshot();
      const w: DeviceWork = {
        verifies: after.verifies - before.verifies,
        signs: after.signs - before.signs,
        sha256Blocks: after.sha256Blocks - before.sha256Blocks,
        // resetCounters() on the flash mid-measure would make these negative: count 0 then
        bytesProgrammed: Math.max(0, after.bytesProgrammed - before.bytesProgrammed),
        erases: Math.max(0, after.erases - before.erases),
      };
      this.last = w;
      for (const k of Object.keys(w) as (keyof DeviceWork)[]) this.total[k] += w[k];
    }
    return { result, chargedMs: chargeFor(this.profile, this.last).totalMs };
  }

  /** Device time of everything metered since boot. */
  totalCharge(): DeviceCharge {
    return chargeFor(this.profile, this.total);
  }
}
