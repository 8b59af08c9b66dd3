// Public surface of world/: a whole locksync world in one process (authority, locks,
// phones, radio) for the demo, QA scenarios, end-to-end tests and benchmarks.
export * from './world';
export * from './phone-profiles';
