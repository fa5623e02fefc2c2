import { ConfigError } from '../errors.js'

/**
 * Bits per routing digit. Pastry's `b`: the routing table has `128 / b` rows and `2^b` columns.
 * Only divisors of 32 up to 8 are supported, so a digit never straddles two 32-bit words.
 */
export type DigitBits = 1 | 2 | 4 | 8

/** The number of bits in an identifier. */
export const ID_BITS = 128

/** The number of bytes in an identifier's binary form. */
export const ID_BYTES = 16

/**
 * Checks that `b` is a supported digit width and returns it typed. Call it where a `b` enters from
 * configuration or a command line; the id and table functions trust their `b` argument.
 */
export function checkDigitBits(b: number): DigitBits {
  if (b === 1 || b === 2 || b === 4 || b === 8) return b
  throw new ConfigError(`b must be 1, 2, 4 or 8 bits per digit, got ${String(b)}`)
}

/** Digits in an identifier for digit width `b`: the routing table's row count. */
export function digitCount(b: DigitBits): number {
  return ID_BITS / b
}
