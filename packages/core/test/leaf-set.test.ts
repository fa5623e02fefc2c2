// Property and unit tests for the leaf set against a reference model written with bigints and sorted
// arrays (STYLE.md, convention 9). Every property runs under the printed seed; PASTRY_SEED=<seed>
// replays a run, and a fast-check failure prints its { seed, path } (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ConfigError, DEFAULT_LEAF_SET_SIZE, Id, LeafSet, nextHop, RoutingTable } from '../src/index.js'
import { big, HALF_RING, id, MAX, mod, refClosest } from './_ref.js'
import { SEED } from './_seed.js'

// ---------------------------------------------------------------------------------------------
// The reference model: ids are bigints in [0, 2^128).

/**
 * The bounded leaf set: each half is the L/2 nearest, in its direction, of what was inserted into
 * it and not removed since. Halves are sorted nearest first.
 */
class RefLeafSet {
  cw: bigint[] = []
  ccw: bigint[] = []
  constructor(
    readonly self: bigint,
    readonly half: number,
  ) {}
  cwDist(x: bigint): bigint {
    return mod(x - this.self)
  }
  ccwDist(x: bigint): bigint {
    return mod(this.self - x)
  }
  /** The halves after inserting x, without changing this model. */
  afterInsert(x: bigint): { cw: bigint[]; ccw: bigint[] } {
    if (x === this.self) return { cw: this.cw, ccw: this.ccw }
    const add = (side: bigint[], dist: (y: bigint) => bigint) =>
      side.includes(x) ? side : [...side, x].sort((a, b) => (dist(a) < dist(b) ? -1 : 1)).slice(0, this.half)
    return { cw: add(this.cw, (y) => this.cwDist(y)), ccw: add(this.ccw, (y) => this.ccwDist(y)) }
  }
  /** Returns true when the membership changed. */
  insert(x: bigint): boolean {
    const next = this.afterInsert(x)
    const changed = !same(next.cw, this.cw) || !same(next.ccw, this.ccw)
    this.cw = next.cw
    this.ccw = next.ccw
    return changed
  }
  remove(x: bigint): boolean {
    const had = this.cw.includes(x) || this.ccw.includes(x)
    this.cw = this.cw.filter((y) => y !== x)
    this.ccw = this.ccw.filter((y) => y !== x)
    return had
  }
  members(): bigint[] {
    return [...this.cw, ...this.ccw.filter((y) => !this.cw.includes(y))]
  }
  /**
   * In range iff the set is empty, or the key is on the clockwise arc from the farthest
   * counter-clockwise member to self, or on the clockwise arc from self to the farthest clockwise
   * member.
   */
  inRange(key: bigint): boolean {
    if (this.cw.length === 0 && this.ccw.length === 0) return true
    const cwFar = this.cw[this.cw.length - 1]
    const ccwFar = this.ccw[this.ccw.length - 1]
    return (
      (ccwFar !== undefined && this.ccwDist(key) <= this.ccwDist(ccwFar)) ||
      (cwFar !== undefined && this.cwDist(key) <= this.cwDist(cwFar))
    )
  }
}

function same(a: readonly bigint[], b: readonly bigint[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

interface Node {
  readonly id: Id
  /** Which insert made this handle, to check that a re-insert replaces the handle. */
  readonly tag: number
}
const bigs = (nodes: readonly Node[]): bigint[] => nodes.map((n) => big(n.id))
const fmt = (xs: readonly bigint[]): string => `[${xs.map((x) => x.toString(16)).join(', ')}]`

// ---------------------------------------------------------------------------------------------
// Generators, biased toward the wrap at 0 and 2^128 - 1 and toward ids clustered around self.

const anyBig = fc.bigInt({ min: 0n, max: MAX })
const nearZero = fc.bigInt({ min: 0n, max: 64n })
const nearMax = fc.bigInt({ min: MAX - 64n, max: MAX })
const selfArb = fc.oneof(
  { arbitrary: anyBig, weight: 2 },
  { arbitrary: nearZero, weight: 2 },
  { arbitrary: nearMax, weight: 2 },
  { arbitrary: fc.constantFrom(0n, MAX, HALF_RING, HALF_RING - 1n), weight: 1 },
)
/** A node id, as a function of self: anywhere, near 0, near 2^128-1, or close to self (even self). */
const relArb: fc.Arbitrary<(self: bigint) => bigint> = fc.oneof(
  anyBig.map((x) => () => x),
  nearZero.map((x) => () => x),
  nearMax.map((x) => () => x),
  fc.bigInt({ min: -48n, max: 48n }).map((d) => (s: bigint) => mod(s + d)),
  fc.tuple(fc.bigInt({ min: 1n, max: 1n << 40n }), fc.boolean()).map(
    ([d, neg]) =>
      (s: bigint) =>
        mod(neg ? s - d : s + d),
  ),
  fc.bigInt({ min: -8n, max: 8n }).map((d) => (s: bigint) => mod(s + HALF_RING + d)),
)
const LS = [2, 4, 8, 16, 32] as const
type Op = { readonly kind: 'insert' | 'remove'; readonly at: number }
const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.oneof(
    { arbitrary: fc.constant('insert' as const), weight: 3 },
    { arbitrary: fc.constant('remove' as const), weight: 1 },
  ),
  at: fc.nat(),
})
/** Concrete ids relative to self (chained, so that a counterexample prints plain bigints). */
const idsNear = (self: bigint, min: number, max: number): fc.Arbitrary<bigint[]> =>
  fc.array(relArb, { minLength: min, maxLength: max }).map((fs) => fs.map((f) => f(self)))
const scenario = fc.constantFrom(...LS).chain((size) =>
  selfArb.chain((self) =>
    fc.record({
      size: fc.constant(size),
      self: fc.constant(self),
      pool: idsNear(self, 1, 48),
      ops: fc.array(opArb, { minLength: 1, maxLength: 96 }),
      keys: idsNear(self, 0, 6),
    }),
  ),
)
const RUNS = 2000
/** Failures print the assertion that failed, not just the counterexample. */
const PARAMS = { numRuns: RUNS, includeErrorInReport: true } as const

/** Keys worth probing: members, self ± 1, the far ends ± 1, and the scenario's own keys. */
function probeKeys(ref: RefLeafSet, extra: readonly bigint[]): bigint[] {
  const out = [ref.self, mod(ref.self + 1n), mod(ref.self - 1n), 0n, MAX, ...extra]
  for (const x of ref.members()) out.push(x, mod(x + 1n), mod(x - 1n))
  return out
}

/** Compares the whole observable state of the leaf set with the reference. */
function checkState(ls: LeafSet<Node>, ref: RefLeafSet, tags: Map<bigint, number>, keys: bigint[]): void {
  assert.equal(bigs(ls.cwMembers()), ref.cw, `cw half ${fmt(bigs(ls.cwMembers()))} vs ${fmt(ref.cw)}`)
  assert.equal(bigs(ls.ccwMembers()), ref.ccw, `ccw half ${fmt(bigs(ls.ccwMembers()))} vs ${fmt(ref.ccw)}`)
  assert.is(ls.cwSize, ref.cw.length)
  assert.is(ls.ccwSize, ref.ccw.length)
  for (let i = 0; i < ref.cw.length; i++) assert.is(big(ls.cw(i).id), ref.cw[i])
  for (let i = 0; i < ref.ccw.length; i++) assert.is(big(ls.ccw(i).id), ref.ccw[i])
  assert.ok(ls.cwSize <= ls.half && ls.ccwSize <= ls.half, 'a half exceeds L/2')
  const members = ref.members()
  assert.equal(bigs(ls.members()), members, 'members(): clockwise half first, then the rest')
  assert.equal(bigs([...ls]), members, 'iteration')
  assert.is(ls.size, members.length, 'size counts distinct members')
  assert.ok(ls.size <= ls.capacity)
  assert.is(ls.isFull, ref.cw.length === ref.half && ref.ccw.length === ref.half, 'isFull')
  assert.is(big(ls.farthest('cw')?.id ?? id(0n)), ref.cw.at(-1) ?? 0n, 'farthest cw')
  assert.is(ls.farthest('cw') === undefined, ref.cw.length === 0)
  assert.is(big(ls.farthest('ccw')?.id ?? id(0n)), ref.ccw.at(-1) ?? 0n, 'farthest ccw')
  assert.is(ls.farthest('ccw') === undefined, ref.ccw.length === 0)
  for (const m of members) {
    const inCw = ref.cw.includes(m)
    const inCcw = ref.ccw.includes(m)
    assert.is(ls.sideOf(id(m)), inCw && inCcw ? 'both' : inCw ? 'cw' : 'ccw', `sideOf ${m.toString(16)}`)
    assert.ok(ls.contains(id(m)))
    assert.is(ls.get(id(m))?.tag, tags.get(m), 'get returns the latest handle')
  }
  for (const k of keys) {
    if (!members.includes(k)) {
      assert.is(ls.sideOf(id(k)), undefined)
      assert.not.ok(ls.contains(id(k)))
      assert.is(ls.get(id(k)), undefined)
    }
    assert.is(big(ls.closestTo(id(k))), refClosest(k, [ref.self, ...members]), `closestTo ${k.toString(16)}`)
    assert.is(ls.inRange(id(k)), ref.inRange(k), `inRange ${k.toString(16)}`)
    // When both halves hold the same nodes (fewer than L/2 others known), the arcs cover the ring.
    if (ref.cw.length > 0 && same(ref.cw, [...ref.ccw].reverse())) assert.ok(ls.inRange(id(k)))
  }
  assert.is(ls.isEmpty, members.length === 0, 'isEmpty')
}

// ---------------------------------------------------------------------------------------------
// The model-based property

test(`insert/remove sequences match the bounded reference for L in {${LS.join(', ')}} (seed ${SEED})`, () => {
  fc.assert(
    fc.property(scenario, ({ size, self, pool, ops, keys }) => {
      const ls = new LeafSet<Node>(id(self), size)
      const ref = new RefLeafSet(self, size / 2)
      const tags = new Map<bigint, number>()
      assert.is(ls.capacity, size)
      assert.is(ls.half, size / 2)
      checkState(ls, ref, tags, probeKeys(ref, keys))
      ops.forEach((op, n) => {
        const x = pool[op.at % pool.length]!
        if (op.kind === 'insert') {
          const accepts = ls.wouldAccept(id(x))
          const changed = ref.insert(x)
          assert.is(
            accepts,
            changed,
            `wouldAccept(${x.toString(16)}) vs whether the insert changes membership`,
          )
          assert.is(ls.insert({ id: id(x), tag: n }), changed, `insert(${x.toString(16)}) return`)
          if (x !== self && (ref.cw.includes(x) || ref.ccw.includes(x))) tags.set(x, n)
        } else {
          assert.is(ls.remove(id(x)), ref.remove(x), `remove(${x.toString(16)}) return`)
        }
        checkState(ls, ref, tags, probeKeys(ref, keys))
        checkRefusesHeld(ls)
      })
    }),
    PARAMS,
  )
})

/** `refusesHeld` never claims a refusal that `wouldAccept` does not make, for every member. */
function checkRefusesHeld(ls: LeafSet<Node>): void {
  const members: Node[] = []
  for (let i = 0; i < ls.cwSize; i++) members.push(ls.cw(i))
  for (let i = 0; i < ls.ccwSize; i++) members.push(ls.ccw(i))
  for (const m of members) {
    if (ls.refusesHeld(m)) assert.not.ok(ls.wouldAccept(m.id), `refusesHeld(${big(m.id).toString(16)})`)
  }
}

test('inserting every node in any order gives the same halves as the L/2 nearest each way', () => {
  fc.assert(
    fc.property(fc.constantFrom(...LS), selfArb, fc.array(relArb, { maxLength: 60 }), (size, self, rel) => {
      const all = [...new Set(rel.map((f) => f(self)))].filter((x) => x !== self)
      const ls = new LeafSet<Node>(id(self), size)
      for (const x of all) ls.insert({ id: id(x), tag: 0 })
      const byCw = [...all].sort((a, b) => (mod(a - self) < mod(b - self) ? -1 : 1))
      const byCcw = [...all].sort((a, b) => (mod(self - a) < mod(self - b) ? -1 : 1))
      assert.equal(bigs(ls.cwMembers()), byCw.slice(0, size / 2))
      assert.equal(bigs(ls.ccwMembers()), byCcw.slice(0, size / 2))
      // Fewer than L/2 others known: both halves hold all of them and the set spans the ring.
      if (all.length < size / 2) {
        assert.is(ls.size, all.length)
        assert.not.ok(ls.isFull)
        for (const k of [0n, MAX, HALF_RING, mod(self + HALF_RING)]) assert.ok(ls.inRange(id(k)))
      }
      assert.is(ls.isFull, all.length >= size / 2)
    }),
    PARAMS,
  )
})

// ---------------------------------------------------------------------------------------------
// Unit tests

test('the constructor rejects odd, too small and too large L with ConfigError; default is 16', () => {
  for (const bad of [0, 1, 3, 5, 15, 17, -2, 258, 512, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(
      () => new LeafSet(Id.ZERO, bad),
      (e: unknown) => e instanceof ConfigError && e.code === 'INVALID_CONFIG',
      `L = ${bad}`,
    )
  }
  for (const good of [2, 4, 16, 32, 256]) assert.is(new LeafSet(Id.ZERO, good).capacity, good)
  const d = new LeafSet(Id.ZERO)
  assert.is(d.capacity, DEFAULT_LEAF_SET_SIZE)
  assert.is(d.capacity, 16)
  assert.is(d.half, 8)
})

test('an empty leaf set covers every key and knows nothing', () => {
  const ls = new LeafSet<Node>(id(42n), 8)
  assert.ok(ls.isEmpty)
  assert.is(ls.size, 0)
  assert.not.ok(ls.isFull)
  assert.equal(ls.members(), [])
  for (const k of [0n, 41n, 42n, 43n, MAX, HALF_RING]) {
    assert.ok(ls.inRange(id(k)))
    assert.is(big(ls.closestTo(id(k))), 42n)
  }
  assert.is(ls.farthest('cw'), undefined)
  assert.is(ls.farthest('ccw'), undefined)
  assert.ok(ls.wouldAccept(id(7n)))
  assert.not.ok(ls.wouldAccept(id(42n)), 'self is never accepted')
  assert.not.ok(ls.insert({ id: id(42n), tag: 0 }), 'inserting self changes nothing')
  assert.ok(ls.isEmpty)
  assert.not.ok(ls.remove(id(7n)))
})

test('refusesHeld: true for member objects of both halves, or of a full leaf set whose halves do not overlap', () => {
  const ls = new LeafSet<Node>(id(1000n), 4)
  const a = { id: id(1010n), tag: 1 }
  const b = { id: id(990n), tag: 2 }
  assert.not.ok(ls.refusesHeld(a), 'not a member')
  ls.insert(a)
  ls.insert(b)
  // Three nodes on the ring: each member is in both halves.
  for (const m of [a, b]) {
    assert.ok(ls.refusesHeld(m), `member ${big(m.id)} of both halves`)
    assert.not.ok(ls.wouldAccept(m.id))
  }
  const c = { id: id(1020n), tag: 3 }
  const d = { id: id(980n), tag: 4 }
  ls.insert(c)
  ls.insert(d)
  assert.ok(ls.isFull)
  for (const m of [a, b, c, d]) {
    assert.ok(ls.refusesHeld(m), `member ${big(m.id)} of a full leaf set`)
    assert.not.ok(ls.wouldAccept(m.id))
  }
  assert.not.ok(ls.refusesHeld({ id: id(1010n), tag: 1 }), 'an equal copy is not the object')
  ls.remove(a.id)
  assert.not.ok(ls.refusesHeld(a), 'removed')
  // Halves that meet (four nodes on the ring, L = 4): a member of one half only is left to the id
  // check, which refuses it here.
  const meet = new LeafSet<Node>(id(1000n), 4)
  const [p, q, r] = [
    { id: id(1010n), tag: 5 },
    { id: id(1020n), tag: 6 },
    { id: id(990n), tag: 7 },
  ]
  for (const m of [p, q, r]) meet.insert(m)
  assert.ok(meet.cwMembers().includes(p) && !meet.ccwMembers().includes(p))
  assert.not.ok(meet.refusesHeld(p))
  assert.not.ok(meet.wouldAccept(p.id))
})

test('nodes on both sides of 0: halves wrap around the ring', () => {
  // self = 2; clockwise: 3, 5, 9, ...; counter-clockwise: 1, 0, MAX, MAX - 1, ...
  const ls = new LeafSet<Node>(id(2n), 4)
  for (const x of [MAX - 1n, 5n, 0n, 9n, MAX, 1n, 3n, HALF_RING]) ls.insert({ id: id(x), tag: 0 })
  assert.equal(bigs(ls.cwMembers()), [3n, 5n])
  assert.equal(bigs(ls.ccwMembers()), [1n, 0n])
  // self near the top: clockwise wraps through 0.
  const top = new LeafSet<Node>(id(MAX - 1n), 4)
  for (const x of [MAX - 5n, 4n, MAX, 0n, 1n, MAX - 3n, HALF_RING]) top.insert({ id: id(x), tag: 0 })
  assert.equal(bigs(top.cwMembers()), [MAX, 0n])
  assert.equal(bigs(top.ccwMembers()), [MAX - 3n, MAX - 5n])
  assert.ok(top.inRange(id(0n)))
  assert.ok(top.inRange(id(MAX - 5n)))
  assert.not.ok(top.inRange(id(1n)), 'one past the clockwise end')
  assert.not.ok(top.inRange(id(MAX - 6n)), 'one past the counter-clockwise end')
  assert.is(top.sideOf(id(0n)), 'cw')
  assert.is(top.sideOf(id(1n)), undefined, 'dropped: not among the L/2 nearest either way')
})

test('duplicates: re-inserting a member replaces its handle and changes nothing else', () => {
  const ls = new LeafSet<Node>(id(100n), 4)
  assert.ok(ls.insert({ id: id(110n), tag: 1 }))
  assert.not.ok(ls.insert({ id: id(110n), tag: 2 }))
  assert.is(ls.size, 1)
  assert.is(ls.sideOf(id(110n)), 'both', 'fewer than L/2 others: in both halves')
  assert.is(ls.get(id(110n))?.tag, 2)
  assert.is(ls.cw(0).tag, 2)
  assert.is(ls.ccw(0).tag, 2)
  assert.not.ok(ls.wouldAccept(id(110n)))
})

test('wouldAccept: true exactly when a full half would take the node', () => {
  const ls = new LeafSet<Node>(id(1000n), 4)
  for (const x of [1010n, 1020n, 990n, 980n]) ls.insert({ id: id(x), tag: 0 })
  assert.ok(ls.isFull)
  assert.ok(ls.wouldAccept(id(1015n)), 'nearer than the farthest cw member')
  assert.ok(ls.wouldAccept(id(985n)), 'nearer than the farthest ccw member')
  assert.not.ok(ls.wouldAccept(id(1020n)), 'already a member')
  assert.not.ok(ls.wouldAccept(id(1021n)), 'past the cw end')
  assert.not.ok(ls.wouldAccept(id(979n)), 'past the ccw end')
  assert.not.ok(ls.wouldAccept(id(mod(1000n + HALF_RING))))
  assert.not.ok(ls.insert({ id: id(1021n), tag: 0 }))
  assert.ok(ls.insert({ id: id(1015n), tag: 0 }))
  assert.equal(bigs(ls.cwMembers()), [1010n, 1015n], 'the farthest cw member was pushed out')
  assert.not.ok(ls.contains(id(1020n)))
  // Removing does not bring back a dropped node.
  assert.ok(ls.remove(id(1015n)))
  assert.equal(bigs(ls.cwMembers()), [1010n])
  assert.not.ok(ls.isFull)
  assert.ok(ls.wouldAccept(id(5000n)), 'a half with room takes anything')
})

test('closestTo breaks ties toward the smaller id, across the wrap', () => {
  const ls = new LeafSet<Node>(id(0n), 4)
  ls.insert({ id: id(10n), tag: 0 })
  ls.insert({ id: id(MAX - 9n), tag: 0 }) // -10
  assert.is(big(ls.closestTo(id(5n))), 0n, '5 is 5 from 0 and from 10: 0 is smaller')
  assert.is(big(ls.closestTo(id(MAX - 4n))), 0n, '-5: 0 is smaller than 2^128 - 10')
  assert.is(big(ls.closestTo(id(6n))), 10n)
  assert.is(big(ls.closestTo(id(MAX - 5n))), MAX - 9n)
})

// The Go package tested the lower (counter-clockwise) side of the range check the wrong way round:
// keys between the farthest counter-clockwise member and the node were reported out of range, and
// keys beyond the counter-clockwise end in range.
test('regression: the lower side of the leaf set range check was reversed', () => {
  const self = 0x8000_0000_0000_0000_0000_0000_0000_0000n
  const step = 1n << 100n
  const ls = new LeafSet<Node>(id(self), 8)
  for (let i = 1n; i <= 6n; i++) {
    ls.insert({ id: id(self + i * step), tag: 0 })
    ls.insert({ id: id(self - i * step), tag: 0 })
  }
  assert.ok(ls.isFull)
  const ccwFar = big(ls.farthest('ccw')!.id)
  const cwFar = big(ls.farthest('cw')!.id)
  assert.is(ccwFar, self - 4n * step)
  assert.is(cwFar, self + 4n * step)
  // Strictly between the farthest ccw member and self, nowhere near the cw side.
  const inside = [ccwFar + 1n, self - 3n * step - step / 3n, self - step / 2n - 1n, self - 1n]
  const tables = {
    self: id(self),
    b: 4 as const,
    leafSet: ls,
    routingTable: new RoutingTable<Node>(id(self), 4),
  }
  for (const key of inside) {
    assert.ok(ls.inRange(id(key)), `key ${key.toString(16)} between the ccw end and self is in range`)
    const want = refClosest(key, [self, ...bigs(ls.members())])
    const d = nextHop(tables, id(key))
    if (want === self) assert.is(d.type, 'deliver')
    else {
      assert.is(d.type, 'forward', `key ${key.toString(16)}`)
      if (d.type === 'forward') {
        assert.is(big(d.node.id), want, 'forwarded to the numerically closest')
        assert.is(d.rule, 'leafSet')
      }
    }
  }
  // Just outside the ccw end: out of range, while the symmetric key on the cw side is too.
  assert.not.ok(ls.inRange(id(ccwFar - 1n)), 'one below the farthest ccw member is out of range')
  assert.not.ok(ls.inRange(id(cwFar + 1n)), 'one above the farthest cw member is out of range')
  assert.ok(ls.inRange(id(ccwFar)), 'the ccw end itself is in range')
  assert.ok(ls.inRange(id(cwFar)), 'the cw end itself is in range')
  // Out of range, routing goes to the routing table (or delivers alone), never to the leaf set.
  const d = nextHop(tables, id(ccwFar - step))
  assert.ok(d.type !== 'forward' || d.rule !== 'leafSet')
})

// Regression (found against commit 7eb3517): when every member of one half had been removed while the
// other half still held members, the leaf set reported itself empty and claimed the whole ring.
// Repro: L = 2, self = 1000; insert 2000 and 500; remove 2000. Then size was 1, yet isEmpty was true
// and inRange(2^127) true, so nextHop delivered a far key locally instead of taking the routing
// table. Expected: isEmpty false, and only the counter-clockwise arc [500, 1000] in range.
test('regression: one empty half must not make the leaf set claim the whole ring', () => {
  const ls = new LeafSet<Node>(id(1000n), 2)
  ls.insert({ id: id(2000n), tag: 0 })
  ls.insert({ id: id(500n), tag: 0 })
  assert.ok(ls.remove(id(2000n)))
  assert.is(ls.size, 1)
  assert.is(ls.cwSize, 0)
  assert.is(ls.ccwSize, 1)
  const far = HALF_RING
  const rt = new RoutingTable<Node>(id(1000n), 4)
  rt.insert({ id: id(far + 5n), tag: 0 })
  const d = nextHop({ self: id(1000n), b: 4, leafSet: ls, routingTable: rt }, id(far))
  const got = `isEmpty=${ls.isEmpty} inRange(2^127)=${ls.inRange(id(far))} nextHop=${d.type}`
  assert.is(got, 'isEmpty=false inRange(2^127)=false nextHop=forward')
  assert.ok(ls.inRange(id(700n)), 'the ccw arc [500, 1000] is still covered')
})

// Regression (found against commit 7eb3517): wouldAccept answered false for every present member,
// but a member of one half only enters the other half on a re-insert when that half has room (after
// a removal) or it is nearer than its farthest member. Repro: L = 4, self = 1000; insert 2000, 3000,
// 500, 400; remove 400. Now 2000 is in the clockwise half only and the counter-clockwise half has
// room: wouldAccept(2000) was false, yet insert(2000) returns true and puts 2000 in both halves.
test('regression: wouldAccept is true for a member that its other half would take', () => {
  const ls = new LeafSet<Node>(id(1000n), 4)
  for (const x of [2000n, 3000n, 500n, 400n]) ls.insert({ id: id(x), tag: 0 })
  assert.equal(bigs(ls.cwMembers()), [2000n, 3000n])
  assert.equal(bigs(ls.ccwMembers()), [500n, 400n])
  assert.ok(ls.remove(id(400n)))
  assert.is(ls.sideOf(id(2000n)), 'cw')
  const predicted = ls.wouldAccept(id(2000n))
  const changed = ls.insert({ id: id(2000n), tag: 1 })
  assert.ok(changed, 'the insert changed the membership')
  assert.is(ls.sideOf(id(2000n)), 'both')
  assert.is(predicted, changed, 'wouldAccept(2000) predicted the insert')
})

test.run()
