// One transport string for every tool (as Bumble does):
//   sim            in-process link (tests, fleets)
//   uart:PATH      HCI over UART: the virtual radio's pty, or a dongle (nRF52840 + Zephyr hci_uart)
//   hci:N          Linux HCI socket, adapter N (needs CAP_NET_ADMIN/CAP_NET_RAW or root)

export type TransportSpec =
  | { kind: 'sim'; name?: string }
  | { kind: 'uart'; path: string; baudRate: number }
  | { kind: 'hci'; index: number };

export class TransportSpecError extends Error {
  override readonly name = 'TransportSpecError';
}

export function parseTransport(spec: string): TransportSpec {
  if (spec === 'sim') return { kind: 'sim' };
  if (spec.startsWith('sim:')) return { kind: 'sim', name: spec.slice(4) };
  if (spec.startsWith('uart:')) {
    const rest = spec.slice(5);
    const at = rest.lastIndexOf('@');
    const path = at > 0 ? rest.slice(0, at) : rest;
    const baudRate = at > 0 ? Number(rest.slice(at + 1)) : 1_000_000;
    if (path === '') throw new TransportSpecError(`uart transport needs a path: "uart:/dev/ttyACM0" (got "${spec}")`);
    if (!Number.isInteger(baudRate) || baudRate <= 0) throw new TransportSpecError(`bad baud rate in "${spec}"`);
    return { kind: 'uart', path, baudRate };
  }
  if (spec.startsWith('hci:')) {
    const index = Number(spec.slice(4));
    if (!Number.isInteger(index) || index < 0) throw new TransportSpecError(`hci transport needs an adapter index: "hci:0" (got "${spec}")`);
    return { kind: 'hci', index };
  }
  throw new TransportSpecError(`unknown transport "${spec}": use sim, uart:PATH[@BAUD] or hci:N`);
}

export function formatTransport(t: TransportSpec): string {
  switch (t.kind) {
    case 'sim':
      return t.name === undefined ? 'sim' : `sim:${t.name}`;
    case 'uart':
      return t.baudRate === 1_000_000 ? `uart:${t.path}` : `uart:${t.path}@${t.baudRate}`;
    case 'hci':
      return `hci:${t.index}`;
  }
}
