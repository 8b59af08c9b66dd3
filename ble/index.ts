// BLE transports shared by the lock (GATT server) and the phone (GATT client):
// `sim` in process, `uart:PATH` and `hci:N` through the real bleno/noble host stacks.
export * from './session-host';
export * from './lock-server';
export * from './sim';
export * from './peripheral';
export * from './central';
