// Transport string → phone connector. `uart:` and `hci:` go through noble; `sim` is the
// in-process link and needs the locks in the same process (tests, scenarios, fleets).

import { parseTransport, TransportSpecError } from '../protocol/index';
import type { LockConnector } from './link';
import { AgentError } from './errors';
import type { SimAir } from '../ble/sim';

export interface ConnectorOptions {
  /** Required for `sim`: the in-process air the locks are on. */
  simAir?: SimAir;
  extended?: boolean;
  connection?: { minIntervalMs?: number; maxIntervalMs?: number; mtu?: number };
}

export async function openConnector(transport: string, opts: ConnectorOptions = {}): Promise<LockConnector> {
  let spec;
  try {
    spec = parseTransport(transport);
  } catch (e) {
    if (e instanceof TransportSpecError) throw new AgentError('TRANSPORT_UNAVAILABLE', e.message);
    throw e;
  }
  if (spec.kind === 'sim') {
    if (!opts.simAir)
      throw new AgentError('TRANSPORT_UNAVAILABLE', 'the sim transport links locks and phones inside one process; from the CLI use uart:PATH (virtual radio or dongle) or hci:N');
    return opts.simAir.connector(spec.name ?? 'phone');
  }
  const { NobleConnector } = await import('../ble/central');
  const o: { extended?: boolean; connection?: { minIntervalMs?: number; maxIntervalMs?: number; mtu?: number } } = {};
  if (opts.extended !== undefined) o.extended = opts.extended;
  if (opts.connection !== undefined) o.connection = opts.connection;
  return NobleConnector.open(transport, o);
}
