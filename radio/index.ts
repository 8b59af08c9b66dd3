// Public surface of radio/: the virtual BLE radio (user-space HCI controllers over ptys for
// the real noble/bleno stacks), its control API, capture tools, airtime bound, and the
// host-stack loaders. Nothing here loads native code at import time.
export { startRadio, Radio, RadioFaults, RadioError, MemoryHostPort, controllerAddress } from './radio';
export type { RadioOptions, RadioController, ControlRequest, FaultScheduleEntry, LinkInfo } from './radio';
export type { LinkPolicy, HostPort, PacketTap, CaptureDirection } from './controller';
export { VirtualController } from './controller';
export { transferAirtimeBound, dataPduAirtimeUs, roundTimeUs, T_IFS_US } from './airtime';
export type { LinkProfile, AirtimeBound, Phy } from './airtime';
export { DEFAULT_PROPAGATION } from './medium';
export type { PropagationModel, Position } from './medium';
export { ManualClock, RealtimeClock } from './clock';
export type { RadioClock } from './clock';
export { readBtsnoop, BtsnoopWriter, BtsnoopFormatError } from './btsnoop';
export { summarizeBtsnoop, decodeCapture, traceShow } from './trace-show';
export { radioMain, sendControlRequest, registerRadioCommands, CliUsageError } from './cli';
export type { CliIo } from './cli';
export { SeededRandom } from './prng';
export {
  loadNoble,
  loadBleno,
  parseTransport,
  hciBindingOptions,
  resolveFamily,
  isHostPackageInstalled,
  waitForPoweredOn,
  BlePackageMissingError,
  TransportParseError,
  TransportUnsupportedError,
} from './hosts';
export type { BleFamily, HostTransport, NobleLike, BlenoLike } from './hosts';
export { startBlenoOn, startNobleOn, stopHost, discoverPeripheral } from './harness';
export { PtyUnavailableError } from './pty';
