// Public surface of protocol/: pure code (no I/O, no BLE), shared by every component.
export * from './cbor';
export * from './errors';
export * from './crypto';
export * from './schema';
export * from './table';
export * from './ops';
export * from './update';
export * from './messages';
export * from './codes';
export * from './random';
export * from './transport';
export * from './framing';
export * from './channel';
export * from './gatt';
export * from './localtime';
export * from './time';
export * from './ed25519-strict';
export { setSha256Backend, sha256Backend, type Sha256BackendName, type NodeCryptoSha256 } from './sha256';
