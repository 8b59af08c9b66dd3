// npm run powerloss -- [--cuts N] [--seed S] [--mode atomic|outOfOrder|both] [--json FILE]
//
// The linear power-loss schedule of firmware-sim/powerloss.ts at any size: cut power after
// operation 1, 2, 3 … of a long mixed lock workload, reboot, check the model. Prints the
// cut points per second. A violation ends with one `error EXPECTATION_FAILED` line naming
// the seed, mode and cut (exit 18); rerun with the same --seed to reproduce it.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CliError, EXIT_CODES, parseIntegerOption, reportFailure } from '../cli/errors';
import type { PowerLossMode } from './flash';
import { POWERLOSS_GEOMETRY, PowerLossFailure, runPowerLoss, type PowerLossReport } from './powerloss';

function main(): number {
  let values: { cuts?: string; seed?: string; mode?: string; json?: string; help?: boolean };
  try {
    values = parseArgs({
      options: { cuts: { type: 'string', default: '200000' }, seed: { type: 'string', default: '1' }, mode: { type: 'string', default: 'both' }, json: { type: 'string' }, help: { type: 'boolean', default: false } },
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new CliError('USAGE', (e as Error).message, 'see npm run powerloss -- --help');
  }
  if (values.help === true) {
    console.log('usage: npm run powerloss -- [--cuts N (per mode, default 200000)] [--seed S] [--mode atomic|outOfOrder|both] [--json FILE]');
    return 0;
  }
  const cuts = parseIntegerOption('--cuts', values.cuts ?? '200000', { min: 1, max: 100_000_000 });
  const modes: PowerLossMode[] = values.mode === 'both' ? ['atomic', 'outOfOrder'] : values.mode === 'atomic' || values.mode === 'outOfOrder' ? [values.mode] : [];
  if (modes.length === 0) throw new CliError('USAGE', `--mode must be atomic, outOfOrder or both, got "${values.mode}"`, 'pass e.g. --mode both');
  const seed = values.seed ?? '1';
  const g = POWERLOSS_GEOMETRY;
  console.log(`power-loss schedule: seed ${seed}, ${cuts} cut points per mode, device ${g.blockCount} × ${g.blockSize} B blocks`);
  const reports: PowerLossReport[] = [];
  for (const mode of modes) {
    try {
      const r = runPowerLoss({ cuts, seed, mode, onProgress: (done, total) => process.stderr.write(`  ${mode}: ${done}/${total} cuts\r`) });
      reports.push(r);
      console.log(
        `${mode}: ${r.cuts} cut points over ${r.steps} steps in ${r.epochs} boots (${Object.entries(r.stepKinds).map(([k, n]) => `${k} ${n}`).join(', ')}); ` +
          `table writes ${r.tableWrites.journalRecords} journal + ${r.tableWrites.bases} bases; after the cut: ${r.landedNew} new, ${r.landedOld} old, ${r.fullLockBoots} full lock boots; ` +
          `mount ≤ ${r.maxMountOps} flash ops and ≤ ${r.maxMountBytesRead} bytes read; ${r.cutsPerSecond.toFixed(0)} cut points/s (${r.cutSeconds.toFixed(1)} s wall, ${r.cutsPerCpuSecond.toFixed(0)} per CPU second; reference run ${r.referenceSeconds.toFixed(1)} s)`,
      );
    } catch (e) {
      if (e instanceof PowerLossFailure) throw new CliError('EXPECTATION_FAILED', e.message, `reproduce with npm run powerloss -- --seed ${seed} --mode ${mode} --cuts ${cuts}`);
      throw e;
    }
  }
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(reports, null, 2)}\n`);
  return EXIT_CODES.OK;
}

try {
  process.exitCode = main();
} catch (e) {
  process.exitCode = reportFailure(e);
}
