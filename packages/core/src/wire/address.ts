/*
 * The form of an address. Every address in the protocol is `host:port`, an IPv6 host in brackets
 * (`[::1]:4000`). The codec checks this form on each handle it decodes, so that a mangled address in
 * a frame is rejected with the frame, before any table can hold it; transports check the same form
 * and, beyond it, that the port fits in 16 bits (`parseAddress`).
 *
 * The form, exactly:
 * - a host name or IPv4 address: letters, digits, `.`, `-` and `_`; or
 * - an IPv6 address in brackets: hex digits, `:` and `.`, with at least one `:`, and an optional
 *   zone after `%` (letters, digits, `.`, `-`, `_`);
 * - then `:` and a port of 1 to 10 decimal digits. The range is the transport's business: the
 *   simulator names its nodes `sim:<index>`, past 65535 in large overlays.
 */

const HOST = /^[A-Za-z0-9._-]+$/
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9._-]+)?$/
const PORT = /^[0-9]{1,10}$/

/** The parts of an address of the right form; see {@link addressForm}. */
export interface AddressParts {
  /** The host, without brackets. */
  readonly host: string
  /** The port's digits, not range-checked. */
  readonly port: string
}

/**
 * Splits `address` into host and port when it has the form every protocol address has, and returns
 * a short reason otherwise. Never throws.
 */
export function addressForm(address: string): AddressParts | string {
  if (typeof address !== 'string') return 'an address must be a string'
  let host: string
  let port: string
  if (address.startsWith('[')) {
    const close = address.indexOf(']')
    if (close < 0 || address[close + 1] !== ':') return 'expected [ipv6]:port'
    host = address.slice(1, close)
    port = address.slice(close + 2)
    if (!host.includes(':')) return 'brackets are for IPv6'
    if (!IPV6.test(host)) return 'bad IPv6 host'
  } else {
    const colon = address.lastIndexOf(':')
    if (colon <= 0) return 'expected host:port'
    host = address.slice(0, colon)
    port = address.slice(colon + 1)
    if (host.includes(':')) return 'put an IPv6 host in brackets'
    if (!HOST.test(host)) return 'bad host'
  }
  if (!PORT.test(port)) return 'the port must be decimal digits'
  return { host, port }
}
