/*
 * Theory of operation
 *
 * The leaf set holds the nodes numerically nearest to this node: up to L/2 going clockwise (larger
 * ids, wrapping at 2^128) and up to L/2 going counter-clockwise. The two halves are kept
 * independently, each sorted nearest first. A node belongs to a half when it is among the L/2
 * nearest in that direction of everything inserted and not removed since, so when fewer than L
 * other nodes are known, a node can sit in both halves. That makes the small-ring case need no
 * special code: with k < L/2 others known, both halves hold all k.
 *
 * The set covers the arc from its farthest counter-clockwise member, through this node, to its
 * farthest clockwise member. A key on that arc is delivered by the leaf set. With overlapping
 * halves the two arcs together cover the whole ring, and an empty leaf set means this node is alone
 * and covers everything.
 *
 * Removing a member does not bring back a node dropped earlier: the set only knows what it was
 * told. Refilling a hole is the protocol's job (it asks the farthest live leaf on that side).
 *
 * Layout. Beside each half's members, the set keeps their distances from this node in that
 * direction, four int32 words each, in one small typed array. Membership, insertion points and
 * `wouldAccept` scan those contiguous words (one subtraction for the id looked up, then at most
 * L/2 comparisons) and never touch the member objects, which a simulation of many nodes keeps
 * scattered over the heap.
 */
import { ConfigError } from '../errors.js'
import { compareDistance, type Id, onClockwiseArc } from '../id/id.js'
import { insertAt, removeAt } from './array.js'
import type { HasId } from './types.js'

/** The default leaf-set size L. */
export const DEFAULT_LEAF_SET_SIZE = 16

/** The largest leaf-set size accepted. */
export const MAX_LEAF_SET_SIZE = 256

/** Checks a leaf-set size: even, from 2 to {@link MAX_LEAF_SET_SIZE}. */
export function checkLeafSetSize(size: number): number {
  if (!Number.isInteger(size) || size < 2 || size > MAX_LEAF_SET_SIZE || size % 2 !== 0) {
    throw new ConfigError(
      `the leaf-set size L must be an even integer from 2 to ${MAX_LEAF_SET_SIZE}, got ${size}`,
    )
  }
  return size
}

/** Which half of the leaf set: `cw` (clockwise, larger ids) or `ccw` (counter-clockwise). */
export type Side = 'cw' | 'ccw'

/** A read-only view of a leaf set, which is all that routing needs. */
export interface LeafSetView<N extends HasId> {
  /** L/2: the most members one half can hold. */
  readonly half: number
  /** Members in the clockwise half. */
  readonly cwSize: number
  /** Members in the counter-clockwise half. */
  readonly ccwSize: number
  /** The i-th nearest clockwise member, for 0 ≤ i < cwSize. */
  cw(i: number): N
  /** The i-th nearest counter-clockwise member, for 0 ≤ i < ccwSize. */
  ccw(i: number): N
}

/** The leaf set of the node `self`. Bounded by construction: at most L members. */
export class LeafSet<N extends HasId> implements LeafSetView<N> {
  /** This node's id. */
  readonly self: Id
  /** L: the most members in both halves together. */
  readonly capacity: number
  /** L/2: the most members in one half. */
  readonly half: number
  readonly #cw: N[] = []
  readonly #ccw: N[] = []
  /**
   * Distances from self, four words per member, nearest first: clockwise ones (member − self) at
   * [0, 4 × half), counter-clockwise ones (self − member) at [4 × half, 8 × half).
   */
  readonly #dist: Int32Array
  /** The number of distinct members, or -1 until counted again after a change. */
  #size = 0

  /** Makes an empty leaf set for `self` with L = `size` (default 16). */
  constructor(self: Id, size: number = DEFAULT_LEAF_SET_SIZE) {
    this.self = self
    this.capacity = checkLeafSetSize(size)
    this.half = size / 2
    this.#dist = new Int32Array(size * 4)
  }

  get cwSize(): number {
    return this.#cw.length
  }

  get ccwSize(): number {
    return this.#ccw.length
  }

  cw(i: number): N {
    return this.#cw[i]!
  }

  ccw(i: number): N {
    return this.#ccw[i]!
  }

  /** The clockwise half, nearest first. A copy: it does not follow later changes. */
  cwMembers(): N[] {
    return this.#cw.slice()
  }

  /** The counter-clockwise half, nearest first. A copy: it does not follow later changes. */
  ccwMembers(): N[] {
    return this.#ccw.slice()
  }

  /** The number of distinct members. */
  get size(): number {
    // Counted once per change of membership: counting reads every counter-clockwise member's id.
    let n = this.#size
    if (n < 0) {
      n = this.#cw.length
      for (const m of this.#ccw) if (!this.#has(CW, m.id)) n++
      this.#size = n
    }
    return n
  }

  /** True when no other node is known. */
  get isEmpty(): boolean {
    return this.#cw.length === 0 && this.#ccw.length === 0
  }

  /** True when both halves hold L/2 members. */
  get isFull(): boolean {
    return this.#cw.length === this.half && this.#ccw.length === this.half
  }

  /** The distinct members, clockwise half first, then the rest of the counter-clockwise half. */
  members(): N[] {
    const out = this.#cw.slice()
    for (const m of this.#ccw) if (!this.#has(CW, m.id)) out.push(m)
    return out
  }

  [Symbol.iterator](): Iterator<N> {
    return this.members()[Symbol.iterator]()
  }

  /** True when a member has this id. */
  contains(id: Id): boolean {
    return this.#has(CW, id) || this.#has(CCW, id)
  }

  /**
   * True when `node`, this very object, is a member that {@link wouldAccept} would refuse; false
   * when it is not a member or when that cannot be told without its id. A member of one half only
   * could still enter the other one; this is ruled out when that half is full and the halves do
   * not overlap. Reads no member's id (only the distance words), so it is a cheap first check for
   * callers that pass the same objects around, as a simulation does.
   */
  refusesHeld(node: N): boolean {
    const inCw = this.#cw.includes(node)
    const inCcw = this.#ccw.includes(node)
    if (inCw && inCcw) return true
    if (!inCw && !inCcw) return false
    const other = inCw ? this.#ccw : this.#cw
    return other.length === this.half && this.#halvesApart()
  }

  /**
   * True when the farthest distances of the two halves add up to less than the ring: no id lies
   * in both halves' ranges, so a member of one half is farther from self the other way round than
   * anything the other half holds. Both halves must be non-empty.
   */
  #halvesApart(): boolean {
    const d = this.#dist
    const a = (this.#cw.length - 1) * 4
    const c = (this.half + this.#ccw.length - 1) * 4
    let carry = 0
    for (let k = 3; k >= 0; k--) carry = (d[a + k]! >>> 0) + (d[c + k]! >>> 0) + carry > 0xffffffff ? 1 : 0
    return carry === 0
  }

  /** The member with this id, if any. */
  get(id: Id): N | undefined {
    for (const m of this.#cw) if (m.id.equals(id)) return m
    for (const m of this.#ccw) if (m.id.equals(id)) return m
    return undefined
  }

  /**
   * Offers a node. It joins each half in which it is among the L/2 nearest; a member pushed out of a
   * full half is dropped from that half. Returns true when the membership changed. Offering this
   * node itself, or a node already present, changes nothing (a present node's handle is replaced
   * by the new one, so a changed address is taken up).
   */
  insert(node: N): boolean {
    if (node.id.equals(this.self)) return false
    const a = this.#insertHalf(CW, node)
    const b = this.#insertHalf(CCW, node)
    return a || b
  }

  /** Removes the member with this id from both halves. Returns true when it was present. */
  remove(id: Id): boolean {
    const a = this.#removeHalf(CW, id)
    const b = this.#removeHalf(CCW, id)
    return a || b
  }

  /** The farthest member of a half, or undefined when that half is empty. */
  farthest(side: Side): N | undefined {
    const half = side === 'cw' ? this.#cw : this.#ccw
    return half[half.length - 1]
  }

  /** Which halves a member is in: 'cw', 'ccw', 'both', or undefined when it is not a member. */
  sideOf(id: Id): Side | 'both' | undefined {
    const inCw = this.#has(CW, id)
    const inCcw = this.#has(CCW, id)
    return inCw && inCcw ? 'both' : inCw ? 'cw' : inCcw ? 'ccw' : undefined
  }

  /**
   * True when `key` lies within the leaf set's range: on the arc from the farthest
   * counter-clockwise member, through this node, to the farthest clockwise member. Always true for
   * an empty leaf set. Stale as soon as the membership changes.
   */
  inRange(key: Id): boolean {
    return leafSetCovers(this, this.self, key)
  }

  /**
   * True when `id` would enter at least one half if inserted now: it is nearer, in that direction,
   * than the farthest member of a half, or a half has room.
   */
  wouldAccept(id: Id): boolean {
    if (id.equals(this.self)) return false
    // A half takes a non-member whose place in distance order is within its first L/2.
    return this.#takes(CW, id) || this.#takes(CCW, id)
  }

  /** The member or self numerically closest to `key`, as an id. */
  closestTo(key: Id): Id {
    let best = this.self
    for (const m of this.#cw) if (compareDistance(key, m.id, best) < 0) best = m.id
    for (const m of this.#ccw) if (compareDistance(key, m.id, best) < 0) best = m.id
    return best
  }

  #members(side: number): N[] {
    return side === CW ? this.#cw : this.#ccw
  }

  /** Puts the distance of `id` from self in the direction of `side` into the scratch words Q. */
  #measure(side: number, id: Id): void {
    if (side === CW) sub(id, this.self)
    else sub(this.self, id)
  }

  /**
   * The position of the scratch distance Q in a half: the number of members nearer than it. Sets
   * `found` when the member at that position is at exactly that distance (the id is a member).
   */
  #position(side: number): number {
    const d = this.#dist
    const len = side === CW ? this.#cw.length : this.#ccw.length
    const base = side === CW ? 0 : this.half * 4
    const q0 = Q[0]! ^ SIGN
    for (let i = 0, o = base; i < len; i++, o += 4) {
      const d0 = d[o]! ^ SIGN
      if (d0 < q0) continue
      if (d0 === q0) {
        const c = compareLow(d[o + 1]!, d[o + 2]!, d[o + 3]!)
        if (c < 0) continue
        found = c === 0
        return i
      }
      found = false
      return i
    }
    found = false
    return len
  }

  #has(side: number, id: Id): boolean {
    this.#measure(side, id)
    this.#position(side)
    return found
  }

  #takes(side: number, id: Id): boolean {
    this.#measure(side, id)
    const len = side === CW ? this.#cw.length : this.#ccw.length
    if (len === this.half) {
      // A full half takes only ids nearer than its farthest member: most offers fail here at once.
      const o = (side === CW ? 0 : this.half * 4) + (len - 1) * 4
      const d = this.#dist
      const far0 = d[o]! ^ SIGN
      const q0 = Q[0]! ^ SIGN
      if (q0 > far0 || (q0 === far0 && compareLow(d[o + 1]!, d[o + 2]!, d[o + 3]!) <= 0)) return false
    }
    const i = this.#position(side)
    return !found && i < this.half
  }

  #insertHalf(side: number, node: N): boolean {
    const half = this.#members(side)
    this.#measure(side, node.id)
    const i = this.#position(side)
    if (found) {
      half[i] = node
      return false
    }
    if (i >= this.half) return false
    insertAt(half, i, node)
    if (half.length > this.half) half.pop()
    this.#size = -1
    // Shift the distances after i one place on (the last falls off a full half), then write Q at i.
    const d = this.#dist
    const base = side === CW ? 0 : this.half * 4
    d.copyWithin(base + (i + 1) * 4, base + i * 4, base + (half.length - 1) * 4)
    d.set(Q, base + i * 4)
    return true
  }

  #removeHalf(side: number, id: Id): boolean {
    const half = this.#members(side)
    this.#measure(side, id)
    const i = this.#position(side)
    if (!found) return false
    removeAt(half, i)
    this.#size = -1
    const d = this.#dist
    const base = side === CW ? 0 : this.half * 4
    d.copyWithin(base + i * 4, base + (i + 1) * 4, base + (half.length + 1) * 4)
    return true
  }
}

const CW = 0
const CCW = 1
const SIGN = 0x80000000 | 0
/** Scratch: the distance being looked up, as four words, most significant first. */
const Q = new Int32Array(4)
/** Set by `#position`: whether the distance looked up is a member's. */
let found = false

/** Q = (a − b) mod 2^128. */
function sub(a: Id, b: Id): void {
  let x = (a.w3 >>> 0) - (b.w3 >>> 0)
  Q[3] = x
  let borrow = x < 0 ? 1 : 0
  x = (a.w2 >>> 0) - (b.w2 >>> 0) - borrow
  Q[2] = x
  borrow = x < 0 ? 1 : 0
  x = (a.w1 >>> 0) - (b.w1 >>> 0) - borrow
  Q[1] = x
  borrow = x < 0 ? 1 : 0
  Q[0] = (a.w0 >>> 0) - (b.w0 >>> 0) - borrow
}

/** Unsigned comparison of words 1..3 of a stored distance with those of Q. */
function compareLow(d1: number, d2: number, d3: number): number {
  if (d1 !== Q[1]) return (d1 ^ SIGN) < (Q[1]! ^ SIGN) ? -1 : 1
  if (d2 !== Q[2]) return (d2 ^ SIGN) < (Q[2]! ^ SIGN) ? -1 : 1
  if (d3 !== Q[3]) return (d3 ^ SIGN) < (Q[3]! ^ SIGN) ? -1 : 1
  return 0
}

/**
 * True when the two halves overlap, so the leaf set sees the whole ring: fewer than L other nodes
 * exist, and every one of them is a member. False for an empty leaf set, which cannot tell a node
 * alone from one whose neighbours all failed. After removals, a half may be short while the ring
 * is larger; that does not count as spanning either.
 */
export function spansRing<N extends HasId>(view: LeafSetView<N>): boolean {
  if (view.cwSize === 0 || view.ccwSize === 0) return false
  // The halves overlap when the farthest clockwise member is also in the counter-clockwise half.
  const cwFar = view.cw(view.cwSize - 1).id
  for (let i = 0; i < view.ccwSize; i++) if (view.ccw(i).id.equals(cwFar)) return true
  return false
}

/**
 * True when `key` lies within the range of the leaf set `view` of the node `self` (see
 * {@link LeafSet.inRange}). Works on any {@link LeafSetView}, so static overlays can use it too.
 */
export function leafSetCovers<N extends HasId>(view: LeafSetView<N>, self: Id, key: Id): boolean {
  if (view.cwSize === 0 && view.ccwSize === 0) return true
  // An empty half reaches no farther than self.
  const cwFar = view.cwSize === 0 ? self : view.cw(view.cwSize - 1).id
  const ccwFar = view.ccwSize === 0 ? self : view.ccw(view.ccwSize - 1).id
  // Counter-clockwise half: the arc from its farthest member clockwise up to self. (The Go package
  // tested this side the wrong way round; see the regression test in leaf-set.test.ts.) When the
  // halves overlap, the two arcs together cover the whole ring.
  return onClockwiseArc(ccwFar, self, key) || onClockwiseArc(self, cwFar, key)
}
