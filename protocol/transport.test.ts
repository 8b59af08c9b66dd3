// The one transport-string parser: our spellings, Bumble's, and the refusals.
import { describe, expect, it } from 'vitest';
import { formatTransport, parseTransport, TransportSpecError } from './transport';

const refusal = (spec: string): TransportSpecError => {
  try {
    parseTransport(spec);
  } catch (e) {
    if (e instanceof TransportSpecError) return e;
    throw e;
  }
  throw new Error(`${spec} was accepted`);
};

describe('parseTransport', () => {
  it('reads our spellings', () => {
    expect(parseTransport('sim')).toEqual({ kind: 'sim' });
    expect(parseTransport('sim:phone-2')).toEqual({ kind: 'sim', name: 'phone-2' });
    expect(parseTransport('uart:/tmp/radio/lock-1')).toEqual({ kind: 'uart', path: '/tmp/radio/lock-1', baudRate: 1_000_000 });
    expect(parseTransport('uart:/dev/ttyACM0@115200')).toEqual({ kind: 'uart', path: '/dev/ttyACM0', baudRate: 115_200 });
    expect(parseTransport('hci:0')).toEqual({ kind: 'hci', index: 0 });
    expect(parseTransport('hci:12')).toEqual({ kind: 'hci', index: 12 });
  });

  it("reads Bumble's spellings as the same transports", () => {
    expect(parseTransport('serial:/dev/ttyACM0')).toEqual(parseTransport('uart:/dev/ttyACM0'));
    expect(parseTransport('serial:/dev/ttyACM0,115200')).toEqual(parseTransport('uart:/dev/ttyACM0@115200'));
    expect(parseTransport('hci-socket:1')).toEqual(parseTransport('hci:1'));
    expect(parseTransport('hci-socket:')).toEqual({ kind: 'hci', index: 0 });
    expect(parseTransport('hci-socket')).toEqual({ kind: 'hci', index: 0 });
    expect(formatTransport(parseTransport('serial:/dev/ttyUSB0,921600'))).toBe('uart:/dev/ttyUSB0@921600');
  });

  it('refuses what the host stacks cannot do, as unsupported, saying what to use instead', () => {
    for (const flag of ['rtscts', 'dsrdtr', 'delay']) {
      const e = refusal(`serial:/dev/ttyACM0,1000000,${flag}`);
      expect(e.unsupported).toBe(true);
      expect(e.message).toContain(flag);
      expect(refusal(`serial:/dev/ttyACM0,${flag}`).unsupported).toBe(true);
    }
    for (const spec of ['usb:0', 'usb:2FE3:000B', 'usb']) {
      const e = refusal(spec);
      expect(e.unsupported).toBe(true);
      expect(e.message).toMatch(/uart:\/dev\/ttyACM0.*hci:N/);
    }
  });

  it('refuses malformed strings as usage errors naming the right spelling', () => {
    const cases: [string, RegExp][] = [
      ['uart:', /needs a path/],
      ['uart:/dev/x@fast', /bad baud rate "fast"/],
      ['uart:/dev/x@0', /bad baud rate/],
      ['serial:', /needs a path/],
      ['serial:/dev/x,12ab', /bad baud rate "12ab"/],
      ['serial:/dev/x,115200,odd', /unknown serial option "odd"/],
      ['hci:', /hci:0/],
      ['hci:-1', /hci:0/],
      ['hci:1.5', /hci:0/],
      ['hci-socket:x', /hci-socket:0/],
      ['bluetooth', /unknown transport "bluetooth".*serial:PATH\[,BAUD\].*hci-socket:N/],
    ];
    for (const [spec, message] of cases) {
      const e = refusal(spec);
      expect(e.unsupported, spec).toBe(false);
      expect(e.message, spec).toMatch(message);
    }
  });
});
