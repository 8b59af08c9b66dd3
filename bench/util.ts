// Small helpers shared by the benchmark sections: the machine, tables, percentiles, GC.

import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  ramGiB: number;
  node: string;
  platform: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  };
}

/** Full garbage collection, so memory deltas measure what is retained. */
export const collectGarbage: () => void = (() => {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (() => void) | undefined;
  return gc ?? (() => undefined);
})();

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export type Cell = string | number | boolean | null | undefined;

/** A plain fixed-width table: numbers right-aligned, text left-aligned. */
export function formatTable(title: string, header: string[], rows: Cell[][], notes: string[] = []): string {
  const text = (c: Cell): string => (c === null || c === undefined ? '—' : typeof c === 'number' ? (Number.isFinite(c) ? c.toLocaleString('en-US', { maximumFractionDigits: 3 }) : String(c)) : String(c));
  const cells = rows.map((r) => r.map(text));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.every((r) => typeof r[i] === 'number' || r[i] === null || r[i] === undefined));
  const line = (r: string[]): string => r.map((c, i) => (numeric[i] ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  const out = [`\n== ${title}`, line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  for (const n of notes) out.push(`  * ${n}`);
  return out.join('\n');
}

export function mib(bytes: number): number {
  return round(bytes / 2 ** 20, 1);
}
