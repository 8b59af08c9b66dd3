// The over-the-air conformance suite (`locksync conformance`): cases, runner, reports,
// targets, and the broken lock variants its self-test must catch. See README.md here.
export { CASES, type ConformanceCase } from './cases';
export { runConformance, selfTest, selectCases, TargetUnreachable, type CaseResult, type RunReport, type SelfTestReport, type VariantResult } from './run';
export { humanReport, junitReport, selfTestReport } from './report';
export { simTarget, bleTarget, referenceLock, provisioningBundle, suiteIdentity, SPEC_TIMING, type LockUnderTest, type LockTiming, type SuiteIdentity } from './target';
export { MUTANTS, mutantById, type Mutant } from './mutants';
export { registerConformanceCommand, DEFAULT_LOCK_ID, DEFAULT_SEED } from './cli';
