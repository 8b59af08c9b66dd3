// One transport string for every tool. Ours, and Bumble's spellings of the same thing:
//   sim                     in-process link (tests, fleets)
//   uart:PATH[@BAUD]        HCI over UART: the virtual radio's pty, or a dongle (nRF52840 + Zephyr hci_uart)
//   serial:PATH[,BAUD]      the same, spelled as Bumble spells it
//   hci:N                   Linux HCI socket, adapter N (needs CAP_NET_ADMIN/CAP_NET_RAW or root)
//   hci-socket:[N]          the same, spelled as Bumble spells it (N defaults to 0)
// Refused with a reason (TransportSpecError.unsupported): Bumble's serial flags `rtscts`,
// `dsrdtr` and `delay`, which the host stacks' UART driver cannot apply, and `usb:`, which
// has no driver here. BAUD defaults to 1 000 000, as in Bumble and Zephyr's hci_uart.

export type TransportSpec =
  | { kind: 'sim'; name?: string }
  | { kind: 'uart'; path: string; baudRate: number }
  | { kind: 'hci'; index: number };

export class TransportSpecError extends Error {
  override readonly name = 'TransportSpecError';
  constructor(
    message: string,
    /** The string is well-formed but names something this build cannot drive. */
    readonly unsupported = false,
  ) {
    super(message);
  }
}

export const DEFAULT_BAUD_RATE = 1_000_000;

const SPELLINGS = 'sim, uart:PATH[@BAUD], serial:PATH[,BAUD], hci:N or hci-socket:N';

function baud(text: string, spec: string): number {
  const baudRate = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(baudRate) || baudRate <= 0) throw new TransportSpecError(`bad baud rate "${text}" in "${spec}": a positive integer, e.g. 1000000`);
  return baudRate;
}

function adapterIndex(text: string, spec: string, example: string): number {
  const index = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(index)) throw new TransportSpecError(`${example.split(':')[0]} transport needs an adapter index: "${example}" (got "${spec}")`);
  return index;
}

export function parseTransport(spec: string): TransportSpec {
  if (spec === 'sim') return { kind: 'sim' };
  if (spec.startsWith('sim:')) return { kind: 'sim', name: spec.slice(4) };
  if (spec.startsWith('uart:')) {
    const rest = spec.slice(5);
    const at = rest.lastIndexOf('@');
    const path = at > 0 ? rest.slice(0, at) : rest;
    if (path === '') throw new TransportSpecError(`uart transport needs a path: "uart:/dev/ttyACM0" (got "${spec}")`);
    return { kind: 'uart', path, baudRate: at > 0 ? baud(rest.slice(at + 1), spec) : DEFAULT_BAUD_RATE };
  }
  if (spec.startsWith('serial:')) {
    // Bumble: serial:<device-path>[,<speed>][,rtscts][,dsrdtr][,delay]
    const [path = '', ...options] = spec.slice(7).split(',');
    if (path === '') throw new TransportSpecError(`serial transport needs a path: "serial:/dev/ttyACM0,1000000" (got "${spec}")`);
    let baudRate = DEFAULT_BAUD_RATE;
    options.forEach((option, i) => {
      if (option === 'rtscts' || option === 'dsrdtr' || option === 'delay') {
        throw new TransportSpecError(
          `"${option}" in "${spec}" is not available: the host stacks' UART driver (@stoprocent/bluetooth-hci-socket) opens the port without hardware flow control or an open delay — leave ",${option}" out (the virtual radio needs none; for a dongle, see docs/hardware.md)`,
          true,
        );
      }
      if (i === 0) baudRate = baud(option, spec);
      else throw new TransportSpecError(`unknown serial option "${option}" in "${spec}": serial:PATH[,BAUD]`);
    });
    return { kind: 'uart', path, baudRate };
  }
  if (spec.startsWith('hci:')) return { kind: 'hci', index: adapterIndex(spec.slice(4), spec, 'hci:0') };
  if (spec === 'hci-socket') return { kind: 'hci', index: 0 };
  if (spec.startsWith('hci-socket:')) {
    const rest = spec.slice(11);
    return { kind: 'hci', index: rest === '' ? 0 : adapterIndex(rest, spec, 'hci-socket:0') };
  }
  if (spec === 'usb' || spec.startsWith('usb:')) {
    throw new TransportSpecError(
      `"${spec}": USB HCI dongles are not driven directly — flash the dongle with an HCI-over-UART firmware (Zephyr hci_uart) and use uart:/dev/ttyACM0, or let the kernel drive it and use hci:N`,
      true,
    );
  }
  throw new TransportSpecError(`unknown transport "${spec}": use ${SPELLINGS}`);
}

export function formatTransport(t: TransportSpec): string {
  switch (t.kind) {
    case 'sim':
      return t.name === undefined ? 'sim' : `sim:${t.name}`;
    case 'uart':
      return t.baudRate === DEFAULT_BAUD_RATE ? `uart:${t.path}` : `uart:${t.path}@${t.baudRate}`;
    case 'hci':
      return `hci:${t.index}`;
  }
}
