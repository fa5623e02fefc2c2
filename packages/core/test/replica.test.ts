// Properties of replicaSet and range against brute force over bigint rings (STYLE.md, convention 9).
// PASTRY_SEED=<seed> replays a run (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ConfigError, type Id, type KeyRange, LeafSet, range, replicaSet } from '../src/index.js'
import { big, HALF_RING, id, MAX, mod, refCompareDistance } from './_ref.js'
import { SEED } from './_seed.js'

/** The nodes sorted by distance to key, closest first, ties to the smaller id. */
const byDistance = (key: bigint, ids: readonly bigint[]): bigint[] =>
  [...ids].sort((a, b) => refCompareDistance(key, a, b))
/** True when node is among the rank + 1 closest of ids to key: at most rank others are closer. */
const amongClosest = (key: bigint, ids: readonly bigint[], node: bigint, rank: number): boolean => {
  let closer = 0
  for (const x of ids) if (refCompareDistance(key, x, node) < 0) closer++
  return closer <= rank
}
const inKeyRange = (r: KeyRange, key: bigint): boolean =>
  r.whole || mod(key - r.from.toBigInt()) <= mod(r.to.toBigInt() - r.from.toBigInt())

interface Node {
  readonly id: Id
}
const node = (x: bigint): Node => ({ id: id(x) })
const showRange = (r: KeyRange | undefined): string =>
  r === undefined
    ? 'undefined'
    : r.whole
      ? 'whole'
      : `[${big(r.from).toString(16)}, ${big(r.to).toString(16)}]`

/** Keys worth probing around a range and a ring: the ends ± 1, every node ± 1 and midpoints. */
function probes(ring: readonly bigint[], r: KeyRange | undefined, extra: readonly bigint[]): bigint[] {
  const out = [...extra, 0n, MAX, HALF_RING]
  if (r !== undefined && !r.whole) {
    const f = big(r.from)
    const t = big(r.to)
    out.push(f, t, mod(f - 1n), mod(t + 1n), mod(f + 1n), mod(t - 1n))
  }
  const sorted = [...ring].sort((a, b) => (a < b ? -1 : 1))
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i]!
    const b = sorted[(i + 1) % sorted.length]!
    const mid = mod(a + mod(b - a) / 2n)
    out.push(a, mod(a + 1n), mod(a - 1n), mid, mod(mid + 1n), mod(mid - 1n))
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Generators: rings with clusters, nodes on both sides of 0, and even gaps (exact midpoint ties).

const anyBig = fc.bigInt({ min: 0n, max: MAX })
const ringId = fc.oneof(
  { arbitrary: anyBig, weight: 3 },
  { arbitrary: fc.bigInt({ min: 0n, max: 40n }), weight: 2 },
  { arbitrary: fc.bigInt({ min: MAX - 40n, max: MAX }), weight: 2 },
  { arbitrary: fc.bigInt({ min: 0n, max: 20n }).map((x) => HALF_RING + 2n * x), weight: 1 },
)
const ringArb = (min: number, max: number) => fc.uniqueArray(ringId, { minLength: min, maxLength: max })
const PARAMS = { numRuns: 300, includeErrorInReport: true } as const

// ---------------------------------------------------------------------------------------------
// replicaSet

test(`replicaSet: the r closest of self and the leaf set, capped at L/2 + 1 (seed ${SEED})`, () => {
  fc.assert(
    fc.property(
      ringArb(1, 40),
      fc.nat(),
      fc.constantFrom(2, 4, 8, 16),
      fc.array(fc.oneof(anyBig, ringId), { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 12 }),
      (ring, at, size, keys, r) => {
        const self = ring[at % ring.length]!
        const ls = new LeafSet<Node>(id(self), size)
        for (const x of ring) ls.insert(node(x))
        const known = [self, ...ls.members().map((m) => big(m.id))]
        const cap = Math.min(r, size / 2 + 1, known.length)
        for (const key of [...keys, ...known]) {
          const got = replicaSet(node(self), ls, id(key), r).map((m) => big(m.id))
          assert.equal(got, byDistance(key, known).slice(0, cap), `key ${key.toString(16)}, r ${r}`)
        }
      },
    ),
    PARAMS,
  )
})

test('replicaSet rejects a negative or fractional r', () => {
  const ls = new LeafSet<Node>(id(5n), 4)
  for (const bad of [-1, 1.5, Number.NaN]) {
    assert.throws(
      () => replicaSet(node(5n), ls, id(0n), bad),
      (e: unknown) => e instanceof ConfigError,
    )
  }
  assert.equal(replicaSet(node(5n), ls, id(0n), 0), [])
  assert.equal(
    replicaSet(node(5n), ls, id(0n), 3).map((m) => big(m.id)),
    [5n],
    'alone: only self',
  )
})

// ---------------------------------------------------------------------------------------------
// range: a small ring that the leaf set spans (L = 16, at most 8 nodes).

test(`range on a ring of 2 to 8 nodes that the leaf set spans equals brute force (seed ${SEED})`, () => {
  fc.assert(
    fc.property(ringArb(2, 8), fc.nat(), fc.array(anyBig, { maxLength: 8 }), (ring, at, keys) => {
      const self = ring[at % ring.length]!
      const ls = new LeafSet<Node>(id(self), 16)
      for (const x of ring) ls.insert(node(x))
      assert.not.ok(ls.isFull)
      for (const who of ring) {
        for (let rank = 0; rank <= ring.length; rank++) {
          const r = range(node(self), ls, id(who), rank)
          assert.ok(r !== undefined, `range(${who.toString(16)}, ${rank}) is defined on a spanned ring`)
          if (rank + 1 >= ring.length) assert.ok(r.whole, 'every node is within rank of every key')
          for (const key of probes(ring, r, keys)) {
            assert.is(
              inKeyRange(r, key),
              amongClosest(key, ring, who, rank),
              `node ${who.toString(16)} rank ${rank} key ${key.toString(16)} range ${showRange(r)}`,
            )
          }
        }
      }
    }),
    PARAMS,
  )
})

test('range(self, 0) on a spanned ring: exact boundaries with a midpoint tie', () => {
  // Ring 0, 10, 100 with self = 10: keys 5 (tie with 0: 0 wins) … 55 (tie with 100: 10 wins).
  const ls = new LeafSet<Node>(id(10n), 16)
  ls.insert(node(0n))
  ls.insert(node(100n))
  const r = range(node(10n), ls, id(10n), 0)!
  assert.equal([big(r.from), big(r.to), r.whole], [6n, 55n, false])
  // Across the wrap: ring MAX - 9 (= -10), 0, 10 with self = 0: keys -5 … 5 (both ties to the
  // smaller id: -5 is 5 from 0 and from 2^128 - 10, so 0 wins; 5 is 5 from 0 and 10, 0 wins).
  const w = new LeafSet<Node>(id(0n), 16)
  w.insert(node(MAX - 9n))
  w.insert(node(10n))
  const rw = range(node(0n), w, id(0n), 0)!
  assert.equal([big(rw.from), big(rw.to)], [MAX - 4n, 5n])
  // An empty leaf set vouches for nothing: alone and cut off look the same from the leaf set.
  assert.is(range(node(7n), new LeafSet<Node>(id(7n), 16), id(7n), 0), undefined)
})

// ---------------------------------------------------------------------------------------------
// range: a larger ring, seen through a full leaf set.

test(`range on a larger ring, after removals too: defined exactly within the known stretch, and then correct (seed ${SEED})`, () => {
  fc.assert(
    fc.property(
      ringArb(12, 60),
      fc.nat(),
      fc.constantFrom(2, 4, 8),
      fc.array(fc.nat(), { maxLength: 3 }),
      fc.array(anyBig, { maxLength: 4 }),
      (ring, at, size, removals, keys) => {
        const self = ring[at % ring.length]!
        fc.pre(ring.length > size + 1)
        const ls = new LeafSet<Node>(id(self), size)
        for (const x of ring) ls.insert(node(x))
        assert.ok(ls.isFull)
        // Nodes that fail: the leaf set is told, and the ring loses them.
        const others = ring.filter((x) => x !== self)
        const removed = new Set(removals.map((r) => others[r % others.length]!))
        for (const x of removed) ls.remove(id(x))
        const live = ring.filter((x) => !removed.has(x))
        const cw = ls.cwMembers().map((m) => big(m.id))
        const ccw = ls.ccwMembers().map((m) => big(m.id))
        // Signed position of each known node: self 0, clockwise 1.., counter-clockwise -1..
        const positions: [bigint, number][] = [[self, 0], ...cw.map((x, i): [bigint, number] => [x, i + 1])]
        for (const [i, x] of ccw.entries()) positions.push([x, -(i + 1)])
        const near = [...positions.map(([x]) => x), ...keys]
        for (const [who, p] of positions) {
          for (let rank = 0; rank <= size + 1; rank++) {
            const r = range(node(self), ls, id(who), rank)
            const reaches = p - rank - 1 >= -ccw.length && p + rank + 1 <= cw.length
            assert.is(
              r !== undefined,
              reaches,
              `range(${who.toString(16)}, ${rank}) at position ${p}: ${showRange(r)}`,
            )
            if (r === undefined) continue
            assert.not.ok(r.whole)
            for (const key of probes(near, r, keys)) {
              const want = amongClosest(key, live, who, rank)
              assert.is(
                inKeyRange(r, key),
                want,
                `node ${who.toString(16)} rank ${rank} key ${key.toString(16)} range ${showRange(r)}`,
              )
              // A range the leaf set vouches for lies within the leaf set's own range.
              if (want) assert.ok(ls.inRange(id(key)), `key ${key.toString(16)} in range of the leaf set`)
            }
          }
        }
        // A node the leaf set does not hold has no range.
        const stranger = live.find((x) => x !== self && !ls.contains(id(x)))
        if (stranger !== undefined) assert.is(range(node(self), ls, id(stranger), 0), undefined)
      },
    ),
    { ...PARAMS, numRuns: 200 },
  )
})

test('regression: a leaf set emptied by removals vouches for no range', () => {
  // Found by the property above (seed 1075491285): with L = 2 both neighbours failed, and the empty
  // leaf set was taken for a node alone on the ring, so range() claimed every key.
  const ls = new LeafSet<Node>(id(100n), 2)
  for (const x of [50n, 150n, 200n, 10n]) ls.insert(node(x))
  assert.ok(ls.remove(id(50n)))
  assert.ok(ls.remove(id(150n)))
  assert.ok(ls.isEmpty)
  for (const rank of [0, 1, 2]) assert.is(range(node(100n), ls, id(100n), rank), undefined)
})

test('range rejects a negative or fractional rank', () => {
  const ls = new LeafSet<Node>(id(5n), 4)
  for (const bad of [-1, 0.5, Number.NaN]) {
    assert.throws(
      () => range(node(5n), ls, id(5n), bad),
      (e: unknown) => e instanceof ConfigError,
    )
  }
})

// Regression (found against commit 7eb3517): after a removal left a hole in a half, `range` took the
// half that was no longer full as proof that the leaf set spans the ring (spansRing) and vouched for
// keys beyond the leaf set's own range. Repro: L = 4, self = 0; insert 10, 20, 30, 2^128 - 10,
// 2^128 - 20; remove 20. The halves are cw [10] and ccw [2^128 - 10, 2^128 - 20]; node 30 was dropped
// from both. range(self, node 10, rank 0) returned [6, 2^127 - 5], claiming key 25, though
// inRange(25) is false and node 30 (which the leaf set was told about) is closer to 25. Expected:
// undefined, since the leaf set does not reach past 10 clockwise.
test('regression: range does not vouch for keys outside the leaf set after a removal', () => {
  const ls = new LeafSet<Node>(id(0n), 4)
  for (const x of [10n, 20n, 30n, MAX - 9n, MAX - 19n]) ls.insert(node(x))
  assert.ok(ls.remove(id(20n)))
  assert.equal(
    ls.cwMembers().map((m) => big(m.id)),
    [10n],
  )
  assert.not.ok(ls.inRange(id(25n)), 'key 25 is outside the leaf set range')
  const r = range(node(0n), ls, id(10n), 0)
  assert.is(showRange(r), 'undefined', 'range of node 10 cannot be known past 10')
})

test.run()
