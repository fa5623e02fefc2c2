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
 */
import { ConfigError } from '../errors.js'
import { compareClockwise, compareDistance, type Id, onClockwiseArc } from '../id/id.js'
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

  /** Makes an empty leaf set for `self` with L = `size` (default 16). */
  constructor(self: Id, size: number = DEFAULT_LEAF_SET_SIZE) {
    this.self = self
    this.capacity = checkLeafSetSize(size)
    this.half = size / 2
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
    let n = this.#cw.length
    for (const m of this.#ccw) if (!this.#inHalf(this.#cw, m.id)) n++
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
    for (const m of this.#ccw) if (!this.#inHalf(this.#cw, m.id)) out.push(m)
    return out
  }

  [Symbol.iterator](): Iterator<N> {
    return this.members()[Symbol.iterator]()
  }

  /** True when a member has this id. */
  contains(id: Id): boolean {
    return this.#inHalf(this.#cw, id) || this.#inHalf(this.#ccw, id)
  }

  /** The member with this id, if any. */
  get(id: Id): N | undefined {
    return this.#cw.find((m) => m.id.equals(id)) ?? this.#ccw.find((m) => m.id.equals(id))
  }

  /**
   * Offers a node. It joins each half in which it is among the L/2 nearest; a member pushed out of a
   * full half is dropped from that half. Returns true when the membership changed. Offering this
   * node itself, or a node already present, changes nothing (a present node's handle is replaced
   * by the new one, so a changed address is taken up).
   */
  insert(node: N): boolean {
    if (node.id.equals(this.self)) return false
    const a = this.#insertHalf(this.#cw, node, 1)
    const b = this.#insertHalf(this.#ccw, node, -1)
    return a || b
  }

  /** Removes the member with this id from both halves. Returns true when it was present. */
  remove(id: Id): boolean {
    const a = this.#removeHalf(this.#cw, id)
    const b = this.#removeHalf(this.#ccw, id)
    return a || b
  }

  /** The farthest member of a half, or undefined when that half is empty. */
  farthest(side: Side): N | undefined {
    const half = side === 'cw' ? this.#cw : this.#ccw
    return half[half.length - 1]
  }

  /** Which halves a member is in: 'cw', 'ccw', 'both', or undefined when it is not a member. */
  sideOf(id: Id): Side | 'both' | undefined {
    const inCw = this.#inHalf(this.#cw, id)
    const inCcw = this.#inHalf(this.#ccw, id)
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
    const cw = this.#cw
    const ccw = this.#ccw
    const cwTakes =
      !this.#inHalf(cw, id) &&
      (cw.length < this.half || compareClockwise(this.self, id, cw[cw.length - 1]!.id) < 0)
    const ccwTakes =
      !this.#inHalf(ccw, id) &&
      (ccw.length < this.half || compareClockwise(this.self, id, ccw[ccw.length - 1]!.id) > 0)
    return cwTakes || ccwTakes
  }

  /** The member or self numerically closest to `key`, as an id. */
  closestTo(key: Id): Id {
    let best = this.self
    for (const m of this.#cw) if (compareDistance(key, m.id, best) < 0) best = m.id
    for (const m of this.#ccw) if (compareDistance(key, m.id, best) < 0) best = m.id
    return best
  }

  #inHalf(half: readonly N[], id: Id): boolean {
    for (const m of half) if (m.id.equals(id)) return true
    return false
  }

  /** dir 1 orders by clockwise distance from self; -1 by counter-clockwise distance. */
  #insertHalf(half: N[], node: N, dir: 1 | -1): boolean {
    const existing = half.findIndex((m) => m.id.equals(node.id))
    if (existing >= 0) {
      half[existing] = node
      return false
    }
    // Nodes other than self are never at distance 0, so counter-clockwise order is exactly the
    // reverse of clockwise order.
    let i = half.length
    while (i > 0 && dir * compareClockwise(this.self, node.id, half[i - 1]!.id) < 0) i--
    if (i >= this.half) return false
    half.splice(i, 0, node)
    if (half.length > this.half) half.pop()
    return true
  }

  #removeHalf(half: N[], id: Id): boolean {
    const i = half.findIndex((m) => m.id.equals(id))
    if (i < 0) return false
    half.splice(i, 1)
    return true
  }
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
