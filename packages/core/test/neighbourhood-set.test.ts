// Property and unit tests for the neighbourhood set against a reference model: a sorted array of
// (id, proximity) pairs (STYLE.md, convention 9). PASTRY_SEED=<seed> replays a run (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  ConfigError,
  DEFAULT_NEIGHBOURHOOD_SIZE,
  Id,
  MAX_NEIGHBOURHOOD_SIZE,
  NeighbourhoodSet,
} from '../src/index.js'
import { big, id, MAX } from './_ref.js'
import { SEED } from './_seed.js'

interface Node {
  readonly id: Id
  readonly tag: number
}

interface Entry {
  readonly id: bigint
  readonly proximityMs: number
  readonly tag: number
}

/**
 * The M lowest proximities, nearest first; among equal proximities the earlier arrival first. A
 * newcomer enters when there is room or it is strictly nearer than the farthest member. Re-offering
 * a member moves it to its new proximity (behind its equals).
 */
class RefSet {
  entries: Entry[] = []
  constructor(
    readonly self: bigint,
    readonly capacity: number,
  ) {}
  #place(e: Entry): void {
    const i = this.entries.findIndex((m) => m.proximityMs > e.proximityMs)
    this.entries.splice(i < 0 ? this.entries.length : i, 0, e)
  }
  insert(x: bigint, proximityMs: number, tag: number): boolean {
    if (x === this.self) return false
    const present = this.entries.find((m) => m.id === x)
    if (present !== undefined) {
      this.entries = this.entries.filter((m) => m.id !== x)
      this.#place({ id: x, proximityMs, tag })
      return present.proximityMs !== proximityMs
    }
    const last = this.entries[this.entries.length - 1]
    if (this.entries.length >= this.capacity && !(last !== undefined && proximityMs < last.proximityMs))
      return false
    this.#place({ id: x, proximityMs, tag })
    this.entries = this.entries.slice(0, this.capacity)
    return true
  }
  remove(x: bigint): boolean {
    const had = this.entries.some((m) => m.id === x)
    this.entries = this.entries.filter((m) => m.id !== x)
    return had
  }
}

const anyBig = fc.bigInt({ min: 0n, max: MAX })
const proxArb = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.double({ min: 0, max: 300, noNaN: true }))
type Op =
  | { readonly kind: 'insert'; readonly at: number; readonly proximityMs: number }
  | { readonly kind: 'remove'; readonly at: number }
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), proximityMs: proxArb }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }), weight: 1 },
)
const scenario = fc.record({
  capacity: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(32)),
  self: anyBig,
  pool: fc.array(anyBig, { minLength: 1, maxLength: 48 }),
  includeSelf: fc.boolean(),
  ops: fc.array(opArb, { minLength: 1, maxLength: 120 }),
})

test(`insert/remove sequences keep the M lowest proximities, like a sorted array (seed ${SEED})`, () => {
  fc.assert(
    fc.property(scenario, ({ capacity, self, pool: ids, includeSelf, ops }) => {
      const pool = includeSelf ? [...ids, self] : ids
      const ns = new NeighbourhoodSet<Node>(id(self), capacity)
      const ref = new RefSet(self, capacity)
      assert.is(ns.capacity, capacity)
      ops.forEach((op, n) => {
        const x = pool[op.at % pool.length]!
        if (op.kind === 'insert') {
          const want = ref.insert(x, op.proximityMs, n)
          assert.is(ns.insert({ id: id(x), tag: n }, op.proximityMs), want, `insert ${x.toString(16)}`)
        } else {
          assert.is(ns.remove(id(x)), ref.remove(x), `remove ${x.toString(16)}`)
        }
        const members = ns.members()
        assert.equal(
          members.map((m) => big(m.id)),
          ref.entries.map((e) => e.id),
          'members, nearest first',
        )
        assert.equal(
          members.map((m) => m.tag),
          ref.entries.map((e) => e.tag),
          'the latest handles',
        )
        assert.equal(
          [...ns].map((m) => big(m.id)),
          ref.entries.map((e) => e.id),
        )
        assert.is(ns.size, ref.entries.length)
        assert.ok(ns.size <= capacity, 'never exceeds M')
        for (const e of ref.entries) assert.is(ns.proximityOf(id(e.id)), e.proximityMs)
        for (const y of pool) {
          const member = ref.entries.some((e) => e.id === y)
          assert.is(ns.contains(id(y)), member)
          if (!member) assert.is(ns.proximityOf(id(y)), undefined)
        }
        assert.not.ok(ns.contains(id(self)), 'never self')
        // Sorted by proximity.
        for (let i = 1; i < ref.entries.length; i++) {
          assert.ok(ns.proximityOf(members[i - 1]!.id)! <= ns.proximityOf(members[i]!.id)!)
        }
      })
    }),
    { numRuns: 500, includeErrorInReport: true },
  )
})

test('a full set admits only a strictly nearer node, which pushes out the farthest', () => {
  const ns = new NeighbourhoodSet<Node>(id(0n), 3)
  assert.ok(ns.insert({ id: id(1n), tag: 0 }, 30))
  assert.ok(ns.insert({ id: id(2n), tag: 0 }, 10))
  assert.ok(ns.insert({ id: id(3n), tag: 0 }, 20))
  assert.equal(
    ns.members().map((m) => big(m.id)),
    [2n, 3n, 1n],
  )
  assert.not.ok(ns.insert({ id: id(4n), tag: 0 }, 30), 'a tie with the farthest is not enough')
  assert.not.ok(ns.insert({ id: id(5n), tag: 0 }, 31))
  assert.ok(ns.insert({ id: id(6n), tag: 0 }, 15))
  assert.equal(
    ns.members().map((m) => big(m.id)),
    [2n, 6n, 3n],
  )
  assert.not.ok(ns.contains(id(1n)))
  // A member re-offered further away moves back; the set does not grow.
  assert.ok(ns.insert({ id: id(2n), tag: 1 }, 100))
  assert.equal(
    ns.members().map((m) => big(m.id)),
    [6n, 3n, 2n],
  )
  assert.is(ns.proximityOf(id(2n)), 100)
  assert.not.ok(ns.insert({ id: id(2n), tag: 2 }, 100), 'same proximity: no change reported')
  assert.ok(ns.remove(id(3n)))
  assert.not.ok(ns.remove(id(3n)))
  assert.is(ns.size, 2)
  assert.ok(ns.insert({ id: id(7n), tag: 0 }, 1000), 'room again after a removal')
  assert.not.ok(ns.insert({ id: id(0n), tag: 0 }, 0), 'self is never a member')
})

test('the constructor rejects a bad M with ConfigError; default is 32', () => {
  for (const bad of [0, -1, 1.5, MAX_NEIGHBOURHOOD_SIZE + 1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(
      () => new NeighbourhoodSet(Id.ZERO, bad),
      (e: unknown) => e instanceof ConfigError && e.code === 'INVALID_CONFIG',
      `M = ${bad}`,
    )
  }
  assert.is(new NeighbourhoodSet(Id.ZERO, 1).capacity, 1)
  assert.is(new NeighbourhoodSet(Id.ZERO, MAX_NEIGHBOURHOOD_SIZE).capacity, MAX_NEIGHBOURHOOD_SIZE)
  assert.is(new NeighbourhoodSet(Id.ZERO).capacity, DEFAULT_NEIGHBOURHOOD_SIZE)
  assert.is(DEFAULT_NEIGHBOURHOOD_SIZE, 32)
})

test.run()
