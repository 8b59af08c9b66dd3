// Runs the case table against one lock under test, and the self-test (the reference lock
// and every mutant on the in-process link).

import { AgentError } from '../mobile-agent/errors';
import { CASES, type ConformanceCase } from './cases';
import { CaseFailure, CaseSkipped, newContext } from './harness';
import { MUTANTS, type Mutant } from './mutants';
import { type LockUnderTest, type SuiteIdentity, simTarget } from './target';

export type CaseStatus = 'passed' | 'failed' | 'skipped';

export interface CaseResult {
  id: string;
  title: string;
  spec: string;
  requirements: string[];
  status: CaseStatus;
  /** Why it failed or was skipped. */
  message?: string;
  /** What the case observed (negotiated MTU, where a transfer was cut). */
  notes: string[];
  ms: number;
}

export interface RunReport {
  transport: string;
  lockId: string;
  seed: string;
  startedAt: string;
  seconds: number;
  notes: string[];
  results: CaseResult[];
  passed: number;
  failed: number;
  skipped: number;
}

/** The lock could not be reached at all: not a conformance verdict. */
export class TargetUnreachable extends Error {
  override readonly name = 'TargetUnreachable';
  constructor(
    readonly reason: 'TRANSPORT_UNAVAILABLE' | 'LOCK_NOT_FOUND',
    message: string,
  ) {
    super(message);
  }
}

export interface RunOptions {
  /** Case ids (or group prefixes such as `time.`) to run; all when absent. */
  only?: string[];
  /** Stop at the first failed case (the self-test's mutants only need one). */
  failFast?: boolean;
  /** Called after each case. */
  onCase?: (r: CaseResult) => void;
  cases?: ConformanceCase[];
}

export function selectCases(only: string[] | undefined, cases: ConformanceCase[] = CASES): ConformanceCase[] {
  if (only === undefined || only.length === 0) return cases;
  return cases.filter((c) => only.some((o) => c.id === o || (o.endsWith('.') && c.id.startsWith(o))));
}

/** A case's hard deadline: it catches a hang, it is not a timing assertion. */
function caseDeadlineMs(t: LockUnderTest): number {
  const slack = t.transport === 'sim' ? 30_000 : 120_000;
  return (t.instantTime ? 0 : t.timing.sessionLifetimeMs) + t.timing.idleTimeoutMs + slack;
}

export async function runConformance(target: LockUnderTest, id: SuiteIdentity, opts: RunOptions = {}): Promise<RunReport> {
  const started = Date.now();
  const cases = selectCases(opts.only, opts.cases);
  // The lock must be there before any verdict: not heard is LOCK_NOT_FOUND, not 43 failures.
  let heard;
  try {
    heard = await target.connector.scan(target.transport === 'sim' ? 500 : 10_000, target.lockId);
  } catch (e) {
    if (e instanceof AgentError && e.reason === 'TRANSPORT_UNAVAILABLE') throw new TargetUnreachable('TRANSPORT_UNAVAILABLE', e.detail);
    throw e;
  }
  if (heard.length === 0) throw new TargetUnreachable('LOCK_NOT_FOUND', `lock ${target.lockId} is not advertising on ${target.transport}`);

  const ctx = newContext(target, id);
  const results: CaseResult[] = [];
  for (const c of cases) {
    const t0 = Date.now();
    let status: CaseStatus = 'passed';
    let message: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    ctx.notes = [];
    try {
      const deadline = caseDeadlineMs(target);
      await Promise.race([
        c.run(ctx),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new CaseFailure(`did not finish within ${deadline} ms`)), deadline);
        }),
      ]);
    } catch (e) {
      if (e instanceof CaseSkipped) {
        status = 'skipped';
        message = e.message;
      } else if (e instanceof CaseFailure) {
        status = 'failed';
        message = e.message;
      } else if (e instanceof AgentError) {
        if (e.reason === 'TRANSPORT_UNAVAILABLE') throw new TargetUnreachable('TRANSPORT_UNAVAILABLE', e.detail);
        // The lock went away, stopped answering or broke the framing mid-case: its verdict.
        status = 'failed';
        message = `${e.reason}: ${e.detail}`;
      } else throw e;
    } finally {
      if (timer) clearTimeout(timer);
      for (const s of [...ctx.open]) await s.close().catch(() => undefined);
      target.connector.forget(target.lockId);
    }
    const r: CaseResult = { id: c.id, title: c.title, spec: c.spec, requirements: [...c.requirements], status, notes: ctx.notes, ms: Date.now() - t0, ...(message !== undefined ? { message } : {}) };
    results.push(r);
    opts.onCase?.(r);
    if (opts.failFast === true && status === 'failed') break;
  }
  const count = (s: CaseStatus) => results.filter((r) => r.status === s).length;
  return {
    transport: target.transport,
    lockId: target.lockId,
    seed: id.seed,
    startedAt: new Date(started).toISOString(),
    seconds: (Date.now() - started) / 1000,
    notes: target.notes,
    results,
    passed: count('passed'),
    failed: count('failed'),
    skipped: count('skipped'),
  };
}

export interface VariantResult {
  mutant: Mutant;
  /** Cases that failed on it (with failFast, the first only). */
  caughtBy: CaseResult[];
}

export interface SelfTestReport {
  reference: RunReport;
  variants: VariantResult[];
  caught: number;
  /** caught / variants. */
  score: number;
}

/**
 * The suite checked against the reference lock (every case must pass) and against each
 * broken variant (at least one case must fail), all on the in-process link.
 */
export async function selfTest(id: SuiteIdentity, opts: { mutants?: Mutant[]; failFast?: boolean; onVariant?: (v: VariantResult) => void } = {}): Promise<SelfTestReport> {
  const run = async (mutant?: Mutant): Promise<RunReport> => {
    const target = simTarget(id, mutant !== undefined ? { mutant } : {});
    try {
      return await runConformance(target, id, { failFast: mutant !== undefined && opts.failFast !== false });
    } finally {
      await target.close();
    }
  };
  const reference = await run();
  const variants: VariantResult[] = [];
  for (const mutant of opts.mutants ?? MUTANTS) {
    const r = await run(mutant);
    const v = { mutant, caughtBy: r.results.filter((c) => c.status === 'failed') };
    variants.push(v);
    opts.onVariant?.(v);
  }
  const caught = variants.filter((v) => v.caughtBy.length > 0).length;
  return { reference, variants, caught, score: variants.length === 0 ? 1 : caught / variants.length };
}
