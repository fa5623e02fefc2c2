// Tests for the seeded Rng: determinism, derivation independent of draw history, ranges and a rough
// uniformity check. Seeds are generated under the printed SEED; PASTRY_SEED=<seed> replays a run.

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createRng, type Rng, randomId } from '../src/id/index.js'
import { SEED } from './_seed.js'

const RUNS = 300

const seedArb = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.integer().map(String),
  fc.constantFrom('', '0', 'seed'),
)
const labelArb = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('', 'node', 'net', 'faults'))

/** A mixed trace of every kind of draw, for comparing two generators. */
function trace(rng: Rng, n = 24): number[] {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    out.push(rng.u32(), rng.int(1000), rng.int(2 ** 40), rng.float())
    const id = randomId(rng)
    out.push(id.word(0), id.word(1), id.word(2), id.word(3))
  }
  return out
}
const u32s = (rng: Rng, n = 8): number[] => Array.from({ length: n }, () => rng.u32())

function assertConfigError(fn: () => unknown, what: string): void {
  let thrown: unknown
  try {
    fn()
  } catch (e) {
    thrown = e
  }
  assert.ok(thrown instanceof Error, `${what}: expected an error to be thrown`)
  assert.is((thrown as { code?: string }).code, 'INVALID_CONFIG', what)
}

test('same seed, same sequence (every kind of draw)', () => {
  fc.assert(
    fc.property(seedArb, (seed) => {
      assert.equal(trace(createRng(seed)), trace(createRng(seed)))
      assert.is(createRng(seed).seed, seed)
    }),
    { numRuns: RUNS },
  )
  // A number seed is its decimal string.
  assert.equal(u32s(createRng(42)), u32s(createRng('42')))
  assert.is(createRng(42).seed, '42')
})

test('different seeds, different sequences', () => {
  fc.assert(
    fc.property(seedArb, seedArb, (a, b) => {
      fc.pre(a !== b)
      assert.not.equal(u32s(createRng(a), 4), u32s(createRng(b), 4))
    }),
    { numRuns: RUNS },
  )
})

test('derive(label) does not depend on how many values were drawn before', () => {
  fc.assert(
    fc.property(seedArb, labelArb, fc.nat({ max: 50 }), (seed, label, drawn) => {
      const fresh = createRng(seed)
      const used = createRng(seed)
      for (let i = 0; i < drawn; i++) used.u32()
      for (let i = 0; i < drawn % 7; i++) used.float()
      assert.equal(trace(used.derive(label), 4), trace(fresh.derive(label), 4))
      // Nested derivation is as stable.
      assert.equal(u32s(used.derive(label).derive('x')), u32s(fresh.derive(label).derive('x')))
    }),
    { numRuns: RUNS },
  )
})

test('deriving and drawing from a child leaves the parent sequence alone', () => {
  fc.assert(
    fc.property(seedArb, labelArb, (seed, label) => {
      const parent = createRng(seed)
      const head = parent.u32()
      const child = parent.derive(label)
      child.u32()
      child.float()
      const reference = createRng(seed)
      assert.is(reference.u32(), head)
      assert.equal(u32s(parent), u32s(reference))
    }),
    { numRuns: RUNS },
  )
})

test('different labels give different children, and a child differs from its parent', () => {
  fc.assert(
    fc.property(seedArb, labelArb, labelArb, (seed, a, b) => {
      fc.pre(a !== b)
      const rng = createRng(seed)
      assert.not.equal(u32s(rng.derive(a), 4), u32s(rng.derive(b), 4))
      assert.not.equal(u32s(rng.derive(a), 4), u32s(createRng(seed), 4))
    }),
    { numRuns: RUNS },
  )
})

test('u32 is an unsigned 32-bit integer; float is in [0, 1)', () => {
  const rng = createRng(`range-${SEED}`)
  for (let i = 0; i < 20_000; i++) {
    const u = rng.u32()
    assert.ok(Number.isInteger(u) && u >= 0 && u <= 0xffffffff, `u32 ${u}`)
    const f = rng.float()
    assert.ok(f >= 0 && f < 1, `float ${f}`)
  }
})

test('int(n) stays in [0, n) for small and large n', () => {
  fc.assert(
    fc.property(
      seedArb,
      fc.oneof(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.constantFrom(1, 2, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 52, Number.MAX_SAFE_INTEGER),
        fc.maxSafeNat().filter((n) => n > 0),
      ),
      (seed, n) => {
        const rng = createRng(seed)
        for (let i = 0; i < 20; i++) {
          const v = rng.int(n)
          assert.ok(Number.isSafeInteger(v) && v >= 0 && v < n, `int(${n}) = ${v}`)
        }
      },
    ),
    { numRuns: RUNS },
  )
  const one = createRng(SEED)
  for (let i = 0; i < 100; i++) assert.is(one.int(1), 0)
})

test('int(n) rejects zero, negative, non-integer and unsafe n', () => {
  const rng = createRng(SEED)
  for (const n of [
    0,
    -0,
    -1,
    -(2 ** 40),
    0.5,
    1.5,
    16.000001,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 53,
    2 ** 60,
  ]) {
    assertConfigError(() => rng.int(n), `int(${n})`)
  }
  fc.assert(
    fc.property(
      fc.double({ noNaN: true }).filter((n) => !Number.isSafeInteger(n) || n <= 0),
      (n) => assertConfigError(() => rng.int(n), `int(${n})`),
    ),
    { numRuns: RUNS },
  )
})

test('randomId is deterministic per seed and differs between seeds', () => {
  fc.assert(
    fc.property(seedArb, seedArb, (a, b) => {
      const ra = createRng(a)
      const rb = createRng(a)
      for (let i = 0; i < 4; i++) assert.ok(randomId(ra).equals(randomId(rb)))
      if (a !== b) assert.not.ok(randomId(createRng(a)).equals(randomId(createRng(b))))
    }),
    { numRuns: RUNS },
  )
})

/** First four u32 of createRng('pastry'), and randomId(createRng('pastry').derive('id')), pinned. */
const GOLDEN_U32 = [457703360, 3874969297, 316760546, 3826412899]
const GOLDEN_ID = '5504d57730f4256f9c00fd6dde62e1fd'

test('golden values: a fixed seed gives the same numbers on every platform and version', () => {
  // If this fails, the seed → sequence mapping changed and every recorded PASTRY_SEED replays
  // differently. Change it only on purpose, with a changeset.
  const rng = createRng('pastry')
  assert.equal(u32s(rng, 4), GOLDEN_U32)
  assert.is(randomId(createRng('pastry').derive('id')).toHex(), GOLDEN_ID)
})

test('derivation paths never collide, whatever the labels contain', () => {
  // Regression: labels were once joined with '/', so these three shared one sequence.
  const a = randomId(createRng('a').derive('b/c')).toHex()
  const b = randomId(createRng('a').derive('b').derive('c')).toHex()
  const c = randomId(createRng('a/b').derive('c')).toHex()
  assert.is(new Set([a, b, c]).size, 3)
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.string(), (root, x, y) => {
      fc.pre(x !== y)
      assert.not.ok(randomId(createRng(root).derive(x)).equals(randomId(createRng(root).derive(y))))
      assert.not.ok(
        randomId(createRng(root).derive(x).derive(y)).equals(randomId(createRng(root).derive(x + y))),
      )
    }),
    { numRuns: 300 },
  )
})

test('rough uniformity: int(16) over 16,000 draws, and every bit of u32', () => {
  const rng = createRng('uniformity')
  const buckets = new Array<number>(16).fill(0)
  for (let i = 0; i < 16_000; i++) {
    const v = rng.int(16)
    buckets[v] = (buckets[v] ?? 0) + 1
  }
  for (const [v, n] of buckets.entries()) assert.ok(n >= 800 && n <= 1200, `bucket ${v}: ${n}`)

  const bits = new Array<number>(32).fill(0)
  const floats = new Array<number>(10).fill(0)
  const r2 = createRng('uniformity-bits')
  for (let i = 0; i < 16_000; i++) {
    const u = r2.u32()
    for (let k = 0; k < 32; k++) if ((u >>> k) & 1) bits[k] = (bits[k] ?? 0) + 1
    const f = Math.floor(r2.float() * 10)
    floats[f] = (floats[f] ?? 0) + 1
  }
  // Each bit is set about 8,000 times (standard deviation about 63).
  for (const [k, n] of bits.entries()) assert.ok(n >= 7_500 && n <= 8_500, `bit ${k}: ${n}`)
  for (const [k, n] of floats.entries()) assert.ok(n >= 1_400 && n <= 1_800, `float decile ${k}: ${n}`)
})

test.run()
