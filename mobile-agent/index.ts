// Public surface of mobile-agent/: the phone — Door Sync, unlock, courier cache — as a
// library for tests and hardware engineers' scripts, plus the `locksync agent` commands.
export * from './errors';
export * from './link';
export * from './authority-client';
export * from './courier';
export * from './credential';
export * from './sync';
export * from './unlock';
export * from './transports';
export * from './outbox';
