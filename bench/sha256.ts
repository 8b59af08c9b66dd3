// SHA-256 of whole protocol messages, per backend (protocol/sha256.ts): node:crypto
// (OpenSSL) and @noble/hashes (pure JS, the fallback where node:crypto is absent).
// The 440 kB size is the 10,000-credential snapshot a phone hashes for its message id
// and a lock hashes for its table digest.
//
//   npx tsx bench/sha256.ts [--reps N]

import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { SeededRandom, hash, setSha256Backend, sha256Backend } from '../protocol/index';
import { machineInfo, percentile, round } from './util';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '200' } } });
const reps = Number(values.reps);
const SIZES = [64, 4096, 65_536, 450_560];
const rng = new SeededRandom('bench-sha256');
const inputs = SIZES.map((n) => rng.bytes(n));
const nativeAvailable = sha256Backend() === 'native';

console.log(`SHA-256 per message (protocol hash()), ${reps} runs after 20 warm-up; ${JSON.stringify(machineInfo())}; load ${loadavg().map((x) => round(x, 2)).join(' ')}`);
console.log('bytes      backend   p50 ms    p90 ms    MB/s (p50)');
for (const backend of ['native', 'noble'] as const) {
  if (backend === 'native' && !nativeAvailable) continue;
  setSha256Backend(backend);
  for (const data of inputs) {
    for (let i = 0; i < 20; i++) hash(data);
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      hash(data);
      times.push(performance.now() - t0);
    }
    const p50 = percentile(times, 50);
    console.log(`${String(data.length).padEnd(10)} ${backend.padEnd(9)} ${p50.toFixed(4).padEnd(9)} ${percentile(times, 90).toFixed(4).padEnd(9)} ${round(data.length / 1e3 / p50, 0)}`);
  }
}
