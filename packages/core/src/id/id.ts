/*
 * Theory of operation
 *
 * An identifier is a 128-bit unsigned integer on a ring of 2^128. It is stored as four 32-bit words,
 * most significant first. Each word is kept as a *signed* int32 (`x | 0`), because V8 on 64-bit
 * Node.js stores int32 values inline as small integers, while an unsigned value of 2^31 or more
 * would be boxed as a heap number. Unsigned readings use `>>> 0`. The result is an object of four
 * inline fields, cheap to allocate by the million and fast to compare (see BENCHMARKS.md, where
 * this layout is measured against bigint in the same run).
 *
 * Arithmetic that would need a temporary 128-bit value (ring distance comparisons) runs on a small
 * module-level scratch array and allocates nothing.
 */
import { InvalidIdError } from '../errors.js'
import { type DigitBits, ID_BYTES } from './digits.js'

const HEX_RE = /^[0-9a-fA-F]{32}$/

/** A 128-bit Pastry identifier. Immutable; compare with {@link Id.equals}, never with `===`. */
export class Id {
  /** Bits 127..96, as a signed int32. */
  readonly w0: number
  /** Bits 95..64, as a signed int32. */
  readonly w1: number
  /** Bits 63..32, as a signed int32. */
  readonly w2: number
  /** Bits 31..0, as a signed int32. */
  readonly w3: number
  #hex: string | undefined = undefined

  private constructor(w0: number, w1: number, w2: number, w3: number) {
    this.w0 = w0 | 0
    this.w1 = w1 | 0
    this.w2 = w2 | 0
    this.w3 = w3 | 0
  }

  /** The id 0. */
  static readonly ZERO: Id = new Id(0, 0, 0, 0)
  /** The id 2^128 - 1, the largest. */
  static readonly MAX: Id = new Id(-1, -1, -1, -1)

  /**
   * Builds an id from four 32-bit words, most significant first. Each word is taken modulo 2^32,
   * so both signed and unsigned readings of a word are accepted.
   */
  static fromWords(w0: number, w1: number, w2: number, w3: number): Id {
    return new Id(w0, w1, w2, w3)
  }

  /**
   * Parses 32 hexadecimal characters, in either case. Throws {@link InvalidIdError} for anything
   * else: another length, a prefix such as `0x`, whitespace, or a non-hex character.
   */
  static parse(hex: string): Id {
    if (typeof hex !== 'string' || !HEX_RE.test(hex)) {
      const shown =
        typeof hex === 'string' ? JSON.stringify(hex.length > 40 ? `${hex.slice(0, 40)}…` : hex) : typeof hex
      throw new InvalidIdError(`an id is exactly 32 hexadecimal characters, got ${shown}`)
    }
    return new Id(
      Number.parseInt(hex.slice(0, 8), 16),
      Number.parseInt(hex.slice(8, 16), 16),
      Number.parseInt(hex.slice(16, 24), 16),
      Number.parseInt(hex.slice(24, 32), 16),
    )
  }

  /** True when `hex` is exactly what {@link Id.parse} accepts. */
  static isHex(hex: string): boolean {
    return typeof hex === 'string' && HEX_RE.test(hex)
  }

  /** Builds an id from exactly 16 big-endian bytes. Throws {@link InvalidIdError} for any other length. */
  static fromBytes(bytes: Uint8Array): Id {
    if (!(bytes instanceof Uint8Array) || bytes.length !== ID_BYTES) {
      const got = bytes instanceof Uint8Array ? `${bytes.length} bytes` : typeof bytes
      throw new InvalidIdError(`an id is exactly ${ID_BYTES} bytes, got ${got}`)
    }
    return Id.readFrom(bytes, 0)
  }

  /** Reads 16 big-endian bytes at `offset`. The caller guarantees that they are there. */
  static readFrom(bytes: Uint8Array, offset: number): Id {
    return new Id(
      readWord(bytes, offset),
      readWord(bytes, offset + 4),
      readWord(bytes, offset + 8),
      readWord(bytes, offset + 12),
    )
  }

  /** Builds an id from a bigint in [0, 2^128). Throws {@link InvalidIdError} outside that range. */
  static fromBigInt(value: bigint): Id {
    if (typeof value !== 'bigint') throw new InvalidIdError(`fromBigInt needs a bigint, got ${typeof value}`)
    if (value < 0n || value >> 128n !== 0n) throw new InvalidIdError(`an id lies in [0, 2^128), got ${value}`)
    return new Id(
      Number((value >> 96n) & 0xffffffffn),
      Number((value >> 64n) & 0xffffffffn),
      Number((value >> 32n) & 0xffffffffn),
      Number(value & 0xffffffffn),
    )
  }

  /** The id as a bigint in [0, 2^128). Meant for tests and tools; the hot paths never use bigint. */
  toBigInt(): bigint {
    return (
      (BigInt(this.w0 >>> 0) << 96n) |
      (BigInt(this.w1 >>> 0) << 64n) |
      (BigInt(this.w2 >>> 0) << 32n) |
      BigInt(this.w3 >>> 0)
    )
  }

  /** 32 lowercase hexadecimal characters. Computed once per id and then cached. */
  toHex(): string {
    // Joined rather than concatenated: `+` would keep a tree of seven string objects, which every
    // use as a map key walks or flattens; `join` makes one flat string.
    if (this.#hex === undefined)
      this.#hex = [hexWord(this.w0), hexWord(this.w1), hexWord(this.w2), hexWord(this.w3)].join('')
    return this.#hex
  }

  /** Same as {@link Id.toHex}. */
  toString(): string {
    return this.toHex()
  }

  /** The same as {@link Id.toHex}, so that ids print readably in JSON. */
  toJSON(): string {
    return this.toHex()
  }

  /** The 16 big-endian bytes of the id, in a new array. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(ID_BYTES)
    this.writeTo(out, 0)
    return out
  }

  /** Writes the 16 big-endian bytes at `offset`. The caller guarantees room for them. */
  writeTo(out: Uint8Array, offset: number): void {
    writeWord(out, offset, this.w0)
    writeWord(out, offset + 4, this.w1)
    writeWord(out, offset + 8, this.w2)
    writeWord(out, offset + 12, this.w3)
  }

  /** True when both ids have the same value. */
  equals(other: Id): boolean {
    return this.w0 === other.w0 && this.w1 === other.w1 && this.w2 === other.w2 && this.w3 === other.w3
  }

  /** Unsigned comparison: negative when this < other, 0 when equal, positive when this > other. */
  compare(other: Id): number {
    return compareWords(this.w0, this.w1, this.w2, this.w3, other.w0, other.w1, other.w2, other.w3)
  }

  /** Word `i` (0 = most significant) as an unsigned 32-bit number. */
  word(i: number): number {
    switch (i) {
      case 0:
        return this.w0 >>> 0
      case 1:
        return this.w1 >>> 0
      case 2:
        return this.w2 >>> 0
      default:
        return this.w3 >>> 0
    }
  }

  /**
   * Digit `i` for digit width `b`, counting from the most significant digit (digit 0). The caller
   * keeps `i` in [0, 128 / b).
   */
  digit(i: number, b: DigitBits): number {
    const bit = i * b
    const word = wordOf(this, bit >>> 5)
    return (word >>> (32 - b - (bit & 31))) & ((1 << b) - 1)
  }

  /**
   * The number of leading digits of width `b` that this id shares with `other`: 128 / b when the
   * ids are equal.
   */
  sharedPrefixLength(other: Id, b: DigitBits): number {
    let x = this.w0 ^ other.w0
    if (x !== 0) return (Math.clz32(x) / b) | 0
    x = this.w1 ^ other.w1
    if (x !== 0) return ((32 + Math.clz32(x)) / b) | 0
    x = this.w2 ^ other.w2
    if (x !== 0) return ((64 + Math.clz32(x)) / b) | 0
    x = this.w3 ^ other.w3
    if (x !== 0) return ((96 + Math.clz32(x)) / b) | 0
    return (128 / b) | 0
  }

  /**
   * Returns a copy with digit `i` (width `b`) set to `value`. Used to name routing-table cells:
   * the key of row r, column c has this node's first r digits followed by c.
   */
  withDigit(i: number, b: DigitBits, value: number): Id {
    if (!Number.isInteger(value) || value < 0 || value >= 1 << b) {
      throw new InvalidIdError(`a digit of ${b} bits lies in [0, ${(1 << b) - 1}], got ${value}`)
    }
    if (!Number.isInteger(i) || i < 0 || i >= 128 / b) {
      throw new InvalidIdError(`digit index ${i} is outside [0, ${128 / b - 1}] for b = ${b}`)
    }
    const bit = i * b
    const wi = bit >>> 5
    const shift = 32 - b - (bit & 31)
    const mask = ((1 << b) - 1) << shift
    const w = [this.w0, this.w1, this.w2, this.w3]
    w[wi] = (w[wi]! & ~mask) | ((value << shift) & mask)
    return new Id(w[0]!, w[1]!, w[2]!, w[3]!)
  }

  /** Clockwise distance from this id to `to`: (to - this) mod 2^128, as an id-sized value. */
  clockwiseTo(to: Id): Id {
    sub(to, this, S, 0)
    return new Id(S[0]!, S[1]!, S[2]!, S[3]!)
  }

  /** Counter-clockwise distance from this id to `to`: (this - to) mod 2^128. */
  counterClockwiseTo(to: Id): Id {
    sub(this, to, S, 0)
    return new Id(S[0]!, S[1]!, S[2]!, S[3]!)
  }

  /** Ring distance: the shorter way round, at most 2^127. */
  distance(other: Id): Id {
    ringDistance(this, other, S, 0)
    return new Id(S[0]!, S[1]!, S[2]!, S[3]!)
  }

  /** (this + delta) mod 2^128. */
  add(delta: Id): Id {
    let carry = 0
    const r3 = (this.w3 >>> 0) + (delta.w3 >>> 0)
    carry = r3 > 0xffffffff ? 1 : 0
    const r2 = (this.w2 >>> 0) + (delta.w2 >>> 0) + carry
    carry = r2 > 0xffffffff ? 1 : 0
    const r1 = (this.w1 >>> 0) + (delta.w1 >>> 0) + carry
    carry = r1 > 0xffffffff ? 1 : 0
    const r0 = (this.w0 >>> 0) + (delta.w0 >>> 0) + carry
    return new Id(r0, r1, r2, r3)
  }
}

function readWord(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!
}

function writeWord(out: Uint8Array, at: number, w: number): void {
  out[at] = w >>> 24
  out[at + 1] = w >>> 16
  out[at + 2] = w >>> 8
  out[at + 3] = w
}

/** Two lowercase hex characters for each byte value. */
const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

function hexWord(w: number): string {
  return (
    HEX_BYTE[(w >>> 24) & 0xff]! +
    HEX_BYTE[(w >>> 16) & 0xff]! +
    HEX_BYTE[(w >>> 8) & 0xff]! +
    HEX_BYTE[w & 0xff]!
  )
}

/** Scratch space for 128-bit temporaries: four words per value, two values. */
const S = new Int32Array(8)

function wordOf(id: Id, i: number): number {
  return i === 0 ? id.w0 : i === 1 ? id.w1 : i === 2 ? id.w2 : id.w3
}

function compareWords(
  a0: number,
  a1: number,
  a2: number,
  a3: number,
  b0: number,
  b1: number,
  b2: number,
  b3: number,
): number {
  // Flipping the sign bit maps unsigned order onto signed order.
  if (a0 !== b0) return (a0 ^ 0x80000000) < (b0 ^ 0x80000000) ? -1 : 1
  if (a1 !== b1) return (a1 ^ 0x80000000) < (b1 ^ 0x80000000) ? -1 : 1
  if (a2 !== b2) return (a2 ^ 0x80000000) < (b2 ^ 0x80000000) ? -1 : 1
  if (a3 !== b3) return (a3 ^ 0x80000000) < (b3 ^ 0x80000000) ? -1 : 1
  return 0
}

/** out[at..at+4) = (a - b) mod 2^128. */
function sub(a: Id, b: Id, out: Int32Array, at: number): void {
  let x = (a.w3 >>> 0) - (b.w3 >>> 0)
  out[at + 3] = x
  let borrow = x < 0 ? 1 : 0
  x = (a.w2 >>> 0) - (b.w2 >>> 0) - borrow
  out[at + 2] = x
  borrow = x < 0 ? 1 : 0
  x = (a.w1 >>> 0) - (b.w1 >>> 0) - borrow
  out[at + 1] = x
  borrow = x < 0 ? 1 : 0
  out[at] = (a.w0 >>> 0) - (b.w0 >>> 0) - borrow
}

/** Negates out[at..at+4) in place, modulo 2^128. */
function negate(out: Int32Array, at: number): void {
  let x = -(out[at + 3]! >>> 0)
  out[at + 3] = x
  let borrow = x < 0 ? 1 : 0
  x = -(out[at + 2]! >>> 0) - borrow
  out[at + 2] = x
  borrow = x < 0 ? 1 : 0
  x = -(out[at + 1]! >>> 0) - borrow
  out[at + 1] = x
  borrow = x < 0 ? 1 : 0
  out[at] = -(out[at]! >>> 0) - borrow
}

/** out[at..at+4) = ring distance between a and b. */
function ringDistance(a: Id, b: Id, out: Int32Array, at: number): void {
  sub(a, b, out, at)
  // A set top bit means the difference is at least 2^127, so the other way round is shorter
  // (or equal, for exactly 2^127, whose negation is itself).
  if (out[at]! < 0) negate(out, at)
}

/**
 * Compares the ring distances from `key` to `a` and to `b`, with Pastry's tie rule: on equal
 * distance the smaller unsigned id counts as closer. Negative when `a` is closer, positive when `b`
 * is, 0 only when `a` equals `b`. Allocates nothing.
 */
export function compareDistance(key: Id, a: Id, b: Id): number {
  ringDistance(key, a, S, 0)
  ringDistance(key, b, S, 4)
  const c = compareWords(S[0]!, S[1]!, S[2]!, S[3]!, S[4]!, S[5]!, S[6]!, S[7]!)
  return c !== 0 ? c : a.compare(b)
}

/** True when `a` is strictly closer to `key` than `b` under {@link compareDistance}. */
export function isCloser(key: Id, a: Id, b: Id): boolean {
  return compareDistance(key, a, b) < 0
}

/**
 * Compares clockwise distances from `origin` to `a` and to `b`: negative when `a` comes first going
 * clockwise. Used to order the clockwise half of a leaf set. Allocates nothing.
 */
export function compareClockwise(origin: Id, a: Id, b: Id): number {
  sub(a, origin, S, 0)
  sub(b, origin, S, 4)
  return compareWords(S[0]!, S[1]!, S[2]!, S[3]!, S[4]!, S[5]!, S[6]!, S[7]!)
}

/**
 * The clockwise distance from `from` to `to` as a fraction of the ring, from its top 64 bits (the
 * same number as `from.clockwiseTo(to)`'s first two words over 2^32 and 2^64). In [0, 1]: a
 * distance within 2^-53 of the whole ring rounds to 1. Allocates nothing.
 */
export function clockwiseFraction(from: Id, to: Id): number {
  sub(to, from, S, 0)
  return (S[0]! >>> 0) / 2 ** 32 + (S[1]! >>> 0) / 2 ** 64
}

/**
 * True when `x` lies on the clockwise arc from `from` to `to`, both ends included. When `from`
 * equals `to` the arc is that single point.
 */
export function onClockwiseArc(from: Id, to: Id, x: Id): boolean {
  sub(x, from, S, 0)
  sub(to, from, S, 4)
  return compareWords(S[0]!, S[1]!, S[2]!, S[3]!, S[4]!, S[5]!, S[6]!, S[7]!) <= 0
}

/**
 * The member of `candidates` numerically closest to `key` (smallest ring distance; on a tie, the
 * smaller unsigned id). `undefined` for an empty list. `idOf` reads the id of a candidate, so the
 * candidates can be handles, not bare ids.
 */
export function closestOf<T>(key: Id, candidates: Iterable<T>, idOf: (candidate: T) => Id): T | undefined {
  let best: T | undefined
  let bestId: Id | undefined
  for (const c of candidates) {
    const id = idOf(c)
    if (bestId === undefined || compareDistance(key, id, bestId) < 0) {
      best = c
      bestId = id
    }
  }
  return best
}

/** The closest of a list of bare ids; see {@link closestOf}. */
export function closestId(key: Id, ids: Iterable<Id>): Id | undefined {
  return closestOf(key, ids, (id) => id)
}
