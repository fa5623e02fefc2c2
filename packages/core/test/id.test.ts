// Property tests for core/id against a plain bigint reference model (STYLE.md, convention 9).
// Every property runs under the printed seed; PASTRY_SEED=<seed> replays a run (convention 7).

import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { InvalidIdError } from '../src/errors.js'
import { clockwiseFraction } from '../src/id/id.js'
import {
  checkDigitBits,
  closestId,
  closestOf,
  compareClockwise,
  compareDistance,
  type DigitBits,
  digitCount,
  hashId,
  ID_BITS,
  ID_BYTES,
  Id,
  isCloser,
  onClockwiseArc,
} from '../src/id/index.js'
import { big, id, MAX, mod, RING, refDigit, refSharedPrefix } from './_ref.js'
import { SEED } from './_seed.js'

// ---------------------------------------------------------------------------------------------
// The reference model: ids are bigints in [0, 2^128).

const HALF = 1n << 127n
const BS: readonly DigitBits[] = [1, 2, 4, 8]

const sign = (x: bigint | number): number => (x > 0 ? 1 : x < 0 ? -1 : 0)
const refCompare = (a: bigint, b: bigint): number => sign(a - b)
const refDistance = (a: bigint, b: bigint): bigint => {
  const cw = mod(a - b)
  const ccw = mod(b - a)
  // biome-ignore lint/complexity/useMathMinMax: Math.min does not take bigints
  return cw < ccw ? cw : ccw
}
/** Negative when a is closer to key; equal distance: the smaller unsigned id wins. */
const refCompareDistance = (key: bigint, a: bigint, b: bigint): number => {
  const c = refCompare(refDistance(key, a), refDistance(key, b))
  return c !== 0 ? c : refCompare(a, b)
}
const refWithDigit = (x: bigint, i: number, b: DigitBits, v: number): bigint => {
  const shift = BigInt(128 - (i + 1) * b)
  const mask = ((1n << BigInt(b)) - 1n) << shift
  return (x & ~mask) | (BigInt(v) << shift)
}
/** The closed clockwise arc [from, to], written as plain intervals rather than modular arithmetic. */
const refOnArc = (from: bigint, to: bigint, x: bigint): boolean =>
  from <= to ? from <= x && x <= to : x >= from || x <= to
const refHex = (x: bigint): string => x.toString(16).padStart(32, '0')

// ---------------------------------------------------------------------------------------------
// Generators, biased toward edges: 0, 2^128-1, 2^127, word boundaries, near values, long shared
// prefixes and antipodes.

const anyBig = fc.bigInt({ min: 0n, max: MAX })
const edgeBig = fc.constantFrom(
  0n,
  1n,
  2n,
  MAX,
  MAX - 1n,
  HALF,
  HALF - 1n,
  HALF + 1n,
  1n << 96n,
  (1n << 96n) - 1n,
  1n << 64n,
  (1n << 64n) - 1n,
  1n << 32n,
  (1n << 32n) - 1n,
  1n << 31n,
  0x80000000_80000000_80000000_80000000n,
  0x7fffffff_7fffffff_7fffffff_7fffffffn,
  0xffffffff_00000000_ffffffff_00000000n,
)
const edgeWord = fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff)
const word = fc.oneof(edgeWord, fc.integer({ min: 0, max: 0xffffffff }))
const wordsBig = fc
  .tuple(word, word, word, word)
  .map(([a, b, c, d]) => (BigInt(a) << 96n) | (BigInt(b) << 64n) | (BigInt(c) << 32n) | BigInt(d))
const anId = fc.oneof(
  { arbitrary: anyBig, weight: 3 },
  { arbitrary: edgeBig, weight: 1 },
  { arbitrary: wordsBig, weight: 2 },
)
const delta = fc.oneof(
  fc.bigInt({ min: 0n, max: 16n }),
  fc.constantFrom(1n << 31n, 1n << 32n, 1n << 64n, 1n << 96n, HALF - 1n, HALF, HALF + 1n, MAX),
  anyBig,
)
/** Two ids sharing exactly `k` leading bits (k = 128: equal ids). */
const sharedPrefixPair = fc
  .tuple(anId, fc.integer({ min: 0, max: 128 }), anyBig)
  .map(([a, k, r]): [bigint, bigint] => {
    if (k === 128) return [a, a]
    const low = 127 - k
    return [a, a ^ ((r & ((1n << BigInt(low)) - 1n)) | (1n << BigInt(low)))]
  })
const pair: fc.Arbitrary<[bigint, bigint]> = fc.oneof(
  fc.tuple(anId, anId),
  fc.tuple(anId, delta, fc.boolean()).map(([a, d, neg]): [bigint, bigint] => [a, mod(neg ? a - d : a + d)]),
  sharedPrefixPair,
  fc.tuple(anId, fc.bigInt({ min: -4n, max: 4n })).map(([a, d]): [bigint, bigint] => [a, mod(a + HALF + d)]),
  anId.map((a): [bigint, bigint] => [a, a]),
)
/** A point relative to a key: anywhere, or key ± a delta. */
const relative = fc.oneof(
  anId.map((x) => (_key: bigint) => x),
  fc.tuple(delta, fc.boolean()).map(
    ([d, neg]) =>
      (key: bigint) =>
        mod(neg ? key - d : key + d),
  ),
)
/** (key, a, b), a third of them exact ties: a = key + d, b = key - d. */
const triple: fc.Arbitrary<[bigint, bigint, bigint]> = fc.oneof(
  fc.tuple(anId, relative, relative).map(([k, fa, fb]): [bigint, bigint, bigint] => [k, fa(k), fb(k)]),
  fc
    .tuple(anId, delta, fc.boolean())
    .map(([k, d, swap]): [bigint, bigint, bigint] =>
      swap ? [k, mod(k - d), mod(k + d)] : [k, mod(k + d), mod(k - d)],
    ),
)
/** A key and a candidate list that often holds ties (key + d and key - d) and duplicates. */
const keyAndSet = fc
  .tuple(
    anId,
    fc.array(
      fc.oneof(
        anId.map((x) => (_k: bigint) => [x]),
        fc.tuple(delta, fc.boolean()).map(([d, swap]) => (k: bigint) => {
          const two = [mod(k + d), mod(k - d)]
          return swap ? two.reverse() : two
        }),
        relative.map((f) => (k: bigint) => [f(k)]),
      ),
      { maxLength: 10 },
    ),
  )
  .map(([k, parts]): [bigint, bigint[]] => [k, parts.flatMap((f) => f(k))])

const bArb = fc.constantFrom(...BS)
const RUNS = 2000

function assertInvalidId(fn: () => unknown, what: string): void {
  let thrown: unknown
  try {
    fn()
  } catch (e) {
    thrown = e
  }
  assert.ok(thrown !== undefined, `${what}: expected InvalidIdError, nothing was thrown`)
  assert.ok(thrown instanceof InvalidIdError, `${what}: expected InvalidIdError, got ${String(thrown)}`)
  assert.is((thrown as InvalidIdError).code, 'INVALID_ID', what)
}

// ---------------------------------------------------------------------------------------------
// Representations

test('hex: parse(toHex(x)) round-trips; toHex is 32 lowercase characters', () => {
  fc.assert(
    fc.property(anId, (x) => {
      const hex = id(x).toHex()
      assert.is(hex, refHex(x))
      assert.ok(/^[0-9a-f]{32}$/.test(hex))
      assert.is(big(Id.parse(hex)), x)
      assert.ok(Id.parse(hex).equals(id(x)))
      assert.is(id(x).toString(), hex)
      assert.is(JSON.stringify(id(x)), JSON.stringify(hex))
      // The cached second call agrees with the first.
      const y = Id.parse(hex)
      assert.is(y.toHex(), y.toHex())
    }),
    { numRuns: RUNS },
  )
})

test('hex: parse accepts upper and mixed case', () => {
  fc.assert(
    fc.property(anId, fc.array(fc.boolean(), { minLength: 32, maxLength: 32 }), (x, upper) => {
      const hex = refHex(x)
      const mixed = [...hex].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('')
      assert.is(big(Id.parse(mixed)), x)
      assert.is(big(Id.parse(hex.toUpperCase())), x)
      assert.ok(Id.isHex(mixed))
    }),
    { numRuns: RUNS },
  )
})

test('hex: parse rejects wrong lengths, prefixes, whitespace, non-hex and non-strings', () => {
  const ok = '0123456789abcdef0123456789abcdef'
  const bad = [
    '',
    '0',
    ok.slice(1),
    `${ok}0`,
    `0x${ok}`,
    `0x${ok.slice(2)}`,
    `0X${ok.slice(2)}`,
    ` ${ok}`,
    `${ok} `,
    `${ok}\n`,
    ` ${ok.slice(1)}`,
    `${ok.slice(1)}\n`,
    `${ok.slice(0, 16)} ${ok.slice(17)}`,
    `${ok.slice(0, 31)}g`,
    `-${ok.slice(1)}`,
    `+${ok.slice(1)}`,
    `${ok.slice(0, 31)}\u0000`,
    `${ok.slice(0, 31)}\uff10`, // fullwidth digit zero
    'z'.repeat(32),
    '0'.repeat(64),
  ]
  for (const s of bad) {
    assertInvalidId(() => Id.parse(s), `parse(${JSON.stringify(s)})`)
    assert.not.ok(Id.isHex(s), `isHex(${JSON.stringify(s)})`)
  }
  const nonStrings: unknown[] = [undefined, null, 0, 1n, {}, [], new Uint8Array(16), { toString: () => ok }]
  for (const v of nonStrings) {
    assertInvalidId(() => Id.parse(v as string), `parse(${typeof v})`)
    assert.not.ok(Id.isHex(v as string))
  }
})

test('hex: any 32-character string with a non-hex character is rejected', () => {
  const nonHexChar = fc
    .string({ minLength: 1, maxLength: 1, unit: 'binary' })
    .filter((c) => !/[0-9a-fA-F]/.test(c))
  fc.assert(
    fc.property(anId, fc.integer({ min: 0, max: 31 }), nonHexChar, (x, at, c) => {
      const hex = refHex(x)
      const s = hex.slice(0, at) + c + hex.slice(at + 1)
      // (A character outside the BMP makes the string 33 code units long: invalid either way.)
      assertInvalidId(() => Id.parse(s), `parse(${JSON.stringify(s)})`)
      assert.not.ok(Id.isHex(s))
    }),
    { numRuns: RUNS },
  )
})

test('bytes: fromBytes(toBytes(x)) round-trips, big-endian; writeTo/readFrom at an offset', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 8 }),
      (bytes, at) => {
        const x = Id.fromBytes(bytes)
        const expected = bytes.reduce((acc, byte) => (acc << 8n) | BigInt(byte), 0n)
        assert.is(big(x), expected)
        assert.equal(x.toBytes(), bytes)
        const buf = new Uint8Array(at + 16 + 3).fill(0xa5)
        x.writeTo(buf, at)
        assert.equal(buf.subarray(at, at + 16), bytes)
        assert.ok(buf.subarray(0, at).every((v) => v === 0xa5))
        assert.ok(buf.subarray(at + 16).every((v) => v === 0xa5))
        assert.ok(Id.readFrom(buf, at).equals(x))
      },
    ),
    { numRuns: RUNS },
  )
  fc.assert(
    fc.property(anId, (x) => assert.is(big(Id.fromBytes(id(x).toBytes())), x)),
    { numRuns: RUNS },
  )
})

test('bytes: fromBytes rejects other lengths and non-Uint8Array', () => {
  for (const n of [0, 1, 15, 17, 32]) assertInvalidId(() => Id.fromBytes(new Uint8Array(n)), `${n} bytes`)
  const others: unknown[] = [
    undefined,
    null,
    'x'.repeat(16),
    new Array(16).fill(0),
    new ArrayBuffer(16),
    new Uint16Array(8),
  ]
  for (const v of others) assertInvalidId(() => Id.fromBytes(v as Uint8Array), `fromBytes(${String(v)})`)
  // A Node Buffer is a Uint8Array and is accepted.
  assert.is(big(Id.fromBytes(Buffer.alloc(16, 0xff))), MAX)
})

test('bigint: fromBigInt/toBigInt round-trip; out-of-range values are rejected', () => {
  fc.assert(
    fc.property(anId, (x) => {
      assert.is(big(id(x)), x)
    }),
    { numRuns: RUNS },
  )
  for (const v of [-1n, -(1n << 128n), RING, RING + 1n, 1n << 200n]) {
    assertInvalidId(() => Id.fromBigInt(v), `fromBigInt(${v})`)
  }
  fc.assert(
    fc.property(fc.bigInt({ min: -(1n << 130n), max: -1n }), (v) =>
      assertInvalidId(() => Id.fromBigInt(v), `${v}`),
    ),
    { numRuns: 200 },
  )
  fc.assert(
    fc.property(fc.bigInt({ min: RING, max: 1n << 140n }), (v) =>
      assertInvalidId(() => Id.fromBigInt(v), `${v}`),
    ),
    { numRuns: 200 },
  )
  assert.is(big(Id.ZERO), 0n)
  assert.is(big(Id.MAX), MAX)
})

test('words: fromWords takes each word modulo 2^32, signed or unsigned; word(i) reads unsigned', () => {
  fc.assert(
    fc.property(word, word, word, word, (a, b, c, d) => {
      const x = Id.fromWords(a, b, c, d)
      assert.is(big(x), (BigInt(a) << 96n) | (BigInt(b) << 64n) | (BigInt(c) << 32n) | BigInt(d))
      assert.ok(Id.fromWords(a | 0, b | 0, c | 0, d | 0).equals(x))
      assert.equal([x.word(0), x.word(1), x.word(2), x.word(3)], [a, b, c, d])
    }),
    { numRuns: RUNS },
  )
})

// ---------------------------------------------------------------------------------------------
// Digits

test('digits: checkDigitBits and digitCount', () => {
  for (const b of BS) {
    assert.is(checkDigitBits(b), b)
    assert.is(digitCount(b), 128 / b)
  }
  for (const b of [0, 3, 5, 6, 7, 16, 32, -4, 4.5, Number.NaN]) {
    assert.throws(
      () => checkDigitBits(b),
      (e: unknown) => (e as { code?: string }).code === 'INVALID_CONFIG',
    )
  }
  assert.is(ID_BITS, 128)
  assert.is(ID_BYTES, 16)
})

test('digits: digit(i, b) equals the bigint reference for every b and every i', () => {
  fc.assert(
    fc.property(anId, (x) => {
      const a = id(x)
      for (const b of BS) {
        for (let i = 0; i < 128 / b; i++) assert.is(a.digit(i, b), refDigit(x, i, b), `b=${b} i=${i}`)
      }
    }),
    { numRuns: RUNS },
  )
})

test('digits: sharedPrefixLength equals the reference and agrees with digit()', () => {
  fc.assert(
    fc.property(pair, bArb, ([x, y], b) => {
      const a = id(x)
      const c = id(y)
      const n = a.sharedPrefixLength(c, b)
      assert.is(n, refSharedPrefix(x, y, b))
      assert.is(c.sharedPrefixLength(a, b), n)
      for (let i = 0; i < n; i++) assert.is(a.digit(i, b), c.digit(i, b))
      if (n < 128 / b) assert.is.not(a.digit(n, b), c.digit(n, b))
      else assert.ok(a.equals(c))
    }),
    { numRuns: 4 * RUNS },
  )
})

test('digits: withDigit sets exactly that digit', () => {
  fc.assert(
    fc.property(anId, bArb, fc.nat(), fc.nat(), (x, b, ri, rv) => {
      const i = ri % (128 / b)
      const v = rv % (1 << b)
      const y = id(x).withDigit(i, b, v)
      assert.is(big(y), refWithDigit(x, i, b, v))
      assert.is(y.digit(i, b), v)
      for (let j = 0; j < 128 / b; j++) if (j !== i) assert.is(y.digit(j, b), refDigit(x, j, b))
      // The original is unchanged (ids are immutable).
      assert.is(big(id(x)), x)
    }),
    { numRuns: RUNS },
  )
  // Every digit position set to the largest value: exercises the sign bit of each word.
  for (const b of BS) {
    for (let i = 0; i < 128 / b; i++) {
      assert.is(big(Id.ZERO.withDigit(i, b, (1 << b) - 1)), refWithDigit(0n, i, b, (1 << b) - 1))
      assert.is(big(Id.MAX.withDigit(i, b, 0)), refWithDigit(MAX, i, b, 0))
    }
  }
})

// ---------------------------------------------------------------------------------------------
// Order and ring arithmetic

test('order: compare is the sign of the bigint comparison; equals agrees', () => {
  fc.assert(
    fc.property(pair, ([x, y]) => {
      const a = id(x)
      const b = id(y)
      assert.is(sign(a.compare(b)), refCompare(x, y))
      assert.is(sign(b.compare(a)), refCompare(y, x))
      assert.is(a.equals(b), x === y)
      assert.is(a.equals(b), a.compare(b) === 0)
    }),
    { numRuns: RUNS },
  )
})

test('ring: distance is symmetric, at most 2^127, and equals min((a-b), (b-a)) mod 2^128', () => {
  fc.assert(
    fc.property(pair, ([x, y]) => {
      const d = big(id(x).distance(id(y)))
      assert.is(d, refDistance(x, y))
      assert.is(big(id(y).distance(id(x))), d)
      assert.ok(d <= HALF)
      assert.is(d === 0n, x === y)
    }),
    { numRuns: RUNS },
  )
})

test('ring: clockwiseTo, counterClockwiseTo and add equal the mod 2^128 reference', () => {
  fc.assert(
    fc.property(pair, ([x, y]) => {
      const a = id(x)
      const b = id(y)
      assert.is(big(a.clockwiseTo(b)), mod(y - x))
      assert.is(big(a.counterClockwiseTo(b)), mod(x - y))
      assert.is(big(a.add(b)), mod(x + y))
      assert.ok(a.add(a.clockwiseTo(b)).equals(b))
    }),
    { numRuns: RUNS },
  )
})

test('ring: compareDistance and isCloser equal the reference, ties going to the smaller id', () => {
  fc.assert(
    fc.property(triple, ([k, x, y]) => {
      const key = id(k)
      const a = id(x)
      const b = id(y)
      const expected = refCompareDistance(k, x, y)
      assert.is(sign(compareDistance(key, a, b)), expected)
      assert.is(sign(compareDistance(key, b, a)), -expected)
      assert.is(isCloser(key, a, b), expected < 0)
      assert.is(isCloser(key, b, a), expected > 0)
      assert.is(compareDistance(key, a, a), 0)
    }),
    { numRuns: 4 * RUNS },
  )
  // Named ties: key ± d has equal distance; the smaller unsigned id wins.
  const k = id(5n)
  assert.ok(isCloser(k, id(4n), id(6n)))
  assert.not.ok(isCloser(k, id(6n), id(4n)))
  // Across zero: key 0, candidates 1 and 2^128-1: 1 is the smaller id.
  assert.ok(isCloser(Id.ZERO, id(1n), Id.MAX))
  // Antipode: key 0 is 2^127 from 2^127 whichever way round; it is farther than 2^127 - 1.
  assert.ok(isCloser(Id.ZERO, id(HALF - 1n), id(HALF)))
  assert.ok(isCloser(Id.ZERO, id(HALF + 1n), id(HALF)))
})

test('ring: closestOf / closestId equal a brute force over the set, ties included', () => {
  fc.assert(
    fc.property(keyAndSet, ([k, xs]) => {
      const key = id(k)
      const ids = xs.map(id)
      // Stable sort: among equal ids, the first in the list comes first.
      const order = xs.map((x, i) => ({ x, i })).sort((p, q) => refCompareDistance(k, p.x, q.x))
      const best = order[0]
      const got = closestId(key, ids)
      if (best === undefined) {
        assert.is(got, undefined)
        return
      }
      assert.ok(got !== undefined)
      assert.is(big(got), best.x)
      // With handles, the very handle is returned, and the first of duplicates.
      const handles = ids.map((i, n) => ({ i, n }))
      assert.is(
        closestOf(key, handles, (h) => h.i),
        handles[best.i],
      )
      // Any iterable.
      assert.is(big(closestId(key, new Set(ids)) as Id), best.x)
    }),
    { numRuns: RUNS },
  )
  assert.is(closestId(Id.ZERO, []), undefined)
  assert.is(
    closestOf(Id.MAX, new Set<{ i: Id }>(), (h) => h.i),
    undefined,
  )
  assert.is(closestId(Id.MAX, (function* () {})()), undefined)
})

test('ring: onClockwiseArc matches the interval reference, including wrap-around and from === to', () => {
  const arcTriple = fc.oneof(
    fc.tuple(anId, anId, anId),
    // x near one of the ends, so the inclusive ends are hit.
    fc
      .tuple(anId, anId, fc.bigInt({ min: -2n, max: 2n }), fc.boolean())
      .map(([f, t, d, atFrom]): [bigint, bigint, bigint] => [f, t, mod((atFrom ? f : t) + d)]),
    // from === to.
    fc
      .tuple(anId, fc.bigInt({ min: -2n, max: 2n }))
      .map(([f, d]): [bigint, bigint, bigint] => [f, f, mod(f + d)]),
    // Arcs that wrap through zero.
    fc
      .tuple(
        fc.bigInt({ min: MAX - 100n, max: MAX }),
        fc.bigInt({ min: 0n, max: 100n }),
        fc.bigInt({ min: -200n, max: 200n }),
      )
      .map(([f, t, x]): [bigint, bigint, bigint] => [f, t, mod(x)]),
  )
  fc.assert(
    fc.property(arcTriple, ([f, t, x]) => {
      assert.is(onClockwiseArc(id(f), id(t), id(x)), refOnArc(f, t, x), `[${f}, ${t}] ∋ ${x}`)
    }),
    { numRuns: 4 * RUNS },
  )
  assert.ok(onClockwiseArc(Id.MAX, id(1n), Id.ZERO))
  assert.not.ok(onClockwiseArc(id(1n), Id.MAX, Id.ZERO))
  assert.ok(onClockwiseArc(id(7n), id(7n), id(7n)))
  assert.not.ok(onClockwiseArc(id(7n), id(7n), id(8n)))
})

test('ring: clockwiseFraction is the clockwise distance over the ring size, from its top 64 bits', () => {
  fc.assert(
    fc.property(triple, ([o, x]) => {
      const f = clockwiseFraction(id(o), id(x))
      const d = id(o).clockwiseTo(id(x))
      // Exactly what the words of clockwiseTo give, with no Id allocated.
      assert.is(f, d.word(0) / 2 ** 32 + d.word(1) / 2 ** 64)
      const ref = Number(mod(x - o) >> 64n) / 2 ** 64
      assert.ok(f >= 0 && f <= 1, `${f} in [0, 1]`)
      assert.ok(Math.abs(f - ref) <= 2 ** -52, `${f} ≈ ${ref}`)
    }),
    { numRuns: 2 * RUNS },
  )
  assert.is(clockwiseFraction(id(5n), id(5n)), 0)
  assert.is(clockwiseFraction(id(1n << 127n), Id.ZERO), 0.5)
  assert.is(clockwiseFraction(Id.ZERO, id(3n << 126n)), 0.75)
  // One step short of the whole ring rounds up to it.
  assert.is(clockwiseFraction(Id.ZERO, Id.MAX), 1)
  assert.is(clockwiseFraction(id(1n), Id.ZERO), 1)
})

test('ring: compareClockwise is the sign of the clockwise-distance comparison', () => {
  fc.assert(
    fc.property(triple, ([o, x, y]) => {
      const expected = refCompare(mod(x - o), mod(y - o))
      assert.is(sign(compareClockwise(id(o), id(x), id(y))), expected)
      assert.is(sign(compareClockwise(id(o), id(y), id(x))), -expected)
    }),
    { numRuns: 2 * RUNS },
  )
  // The origin itself comes first; the id just counter-clockwise of it comes last.
  assert.ok(compareClockwise(id(10n), id(10n), id(11n)) < 0)
  assert.ok(compareClockwise(id(10n), id(9n), id(11n)) > 0)
  assert.ok(compareClockwise(Id.MAX, Id.ZERO, id(MAX - 1n)) < 0)
})

// ---------------------------------------------------------------------------------------------
// Hashing

test('hashId: known SHA-256 vectors, truncated to 128 bits', () => {
  assert.is(hashId('hello').toHex(), '2cf24dba5fb0a30e26e83b2ac5b9e29e')
  assert.is(hashId('').toHex(), 'e3b0c44298fc1c149afbf4c8996fb924')
  assert.is(hashId(new Uint8Array(0)).toHex(), 'e3b0c44298fc1c149afbf4c8996fb924')
  // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
  assert.is(hashId('abc').toHex(), 'ba7816bf8f01cfea414140de5dae2223')
})

test('hashId: a string and its UTF-8 bytes hash alike, and agree with node:crypto', () => {
  const utf8 = new TextEncoder()
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
      const h = hashId(s)
      assert.ok(h.equals(hashId(utf8.encode(s))))
      assert.is(h.toHex(), createHash('sha256').update(s, 'utf8').digest('hex').slice(0, 32))
    }),
    { numRuns: 500 },
  )
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      assert.is(hashId(bytes).toHex(), createHash('sha256').update(bytes).digest('hex').slice(0, 32))
    }),
    { numRuns: 500 },
  )
  // A view into a larger buffer hashes only its own bytes.
  const backing = new Uint8Array([9, 9, 104, 101, 108, 108, 111, 9])
  assert.is(hashId(backing.subarray(2, 7)).toHex(), '2cf24dba5fb0a30e26e83b2ac5b9e29e')
  assert.is(
    hashId('é').toHex(),
    createHash('sha256')
      .update(Buffer.from([0xc3, 0xa9]))
      .digest('hex')
      .slice(0, 32),
  )
})

test('seed is printed and replayable', () => {
  assert.type(SEED, 'number')
})

test.run()
