// The lock's offline access decisions are pure protocol code (protocol/access.ts), shared
// with the processing vectors (fixtures/vectors/access.json) that pin them for other
// implementations. This module keeps the lock's import path.
export * from '../protocol/access';
