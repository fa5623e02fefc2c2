// The reference model the property tests check core against: ids as plain bigints in
// [0, 2^128), written as simply as possible. Shared by the test files of this package.
import type { DigitBits } from '../src/index.js'
import { Id } from '../src/index.js'

export const RING = 1n << 128n
export const MAX = RING - 1n
export const HALF_RING = 1n << 127n

/** x modulo 2^128, always non-negative. */
export const mod = (x: bigint): bigint => ((x % RING) + RING) % RING

/** Ring distance: the shorter way round. */
export const refDistance = (a: bigint, b: bigint): bigint => {
  const d = mod(a - b)
  return d <= RING - d ? d : RING - d
}

/** Negative when a is closer to key; on equal distance the smaller id wins. */
export const refCompareDistance = (key: bigint, a: bigint, b: bigint): number => {
  const da = refDistance(key, a)
  const db = refDistance(key, b)
  if (da !== db) return da < db ? -1 : 1
  return a < b ? -1 : a > b ? 1 : 0
}

/** The member of a non-empty list numerically closest to key. */
export const refClosest = (key: bigint, ids: readonly bigint[]): bigint =>
  ids.reduce((best, x) => (refCompareDistance(key, x, best) < 0 ? x : best))

/** Digit i (from the most significant) of width b. */
export const refDigit = (x: bigint, i: number, b: DigitBits): number =>
  Number((x >> BigInt(128 - (i + 1) * b)) & ((1n << BigInt(b)) - 1n))

/** Leading digits of width b that x and y share. */
export const refSharedPrefix = (x: bigint, y: bigint, b: DigitBits): number => {
  let n = 0
  while (n < 128 / b && refDigit(x, n, b) === refDigit(y, n, b)) n++
  return n
}

export const id = (x: bigint): Id => Id.fromBigInt(x)
export const big = (x: Id): bigint => x.toBigInt()
