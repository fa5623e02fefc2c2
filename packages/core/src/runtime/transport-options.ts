/*
 * Option checks that every transport package makes the same way: the cluster key, the advertised
 * address and integer limits. Each throws `ConfigError` with the option's name, so that a node
 * configured for TCP and then switched to UDP (or back) fails on a bad value with the same words.
 * The TCP and UDP transports call them from their `resolveOptions`; a third transport should too.
 */
import { ConfigError } from '../errors.js'
import { MAX_ADDRESS_BYTES } from '../wire/messages.js'
import { parseAddress } from './transport.js'

/**
 * Checks a transport's `clusterKey` option: a non-empty string (taken as its UTF-8 bytes) or
 * `Uint8Array`, or undefined for none. Returns a copy of the key's bytes, so that a caller who
 * later reuses its array cannot change the key. Call it once, when the transport is made.
 */
export function checkClusterKey(key: unknown): Uint8Array | undefined {
  if (key === undefined) return undefined
  let bytes: Uint8Array
  if (typeof key === 'string') bytes = new TextEncoder().encode(key)
  else if (key instanceof Uint8Array) bytes = Uint8Array.from(key)
  else throw new ConfigError('clusterKey must be a string or a Uint8Array')
  if (bytes.length === 0) throw new ConfigError('clusterKey must not be empty')
  return bytes
}

/**
 * Checks a transport's `advertiseAddress` option: the `host:port` a node states to its peers when
 * they reach it at another address than the one bound. It must be printable ASCII, at most
 * `MAX_ADDRESS_BYTES` long, parse as an address, and name a port other than 0. Returns it as
 * given, or undefined when it is. Call it once, when the transport is made.
 */
export function checkAdvertiseAddress(address: unknown): string | undefined {
  if (address === undefined) return undefined
  let ok = typeof address === 'string' && /^[\x21-\x7e]+$/.test(address)
  ok &&= (address as string).length <= MAX_ADDRESS_BYTES
  if (ok) {
    try {
      ok = parseAddress(address as string).port !== 0
    } catch {
      ok = false
    }
  }
  if (!ok) {
    throw new ConfigError(
      `advertiseAddress must be a printable host:port with a port other than 0, got ${JSON.stringify(address)}`,
    )
  }
  return address as string
}

/**
 * Checks an integer option: `fallback` when `value` is undefined, `value` when it is a safe
 * integer in [`min`, `max`], and otherwise a `ConfigError` that names the option and the range.
 */
export function checkIntOption(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`)
  }
  return value
}
