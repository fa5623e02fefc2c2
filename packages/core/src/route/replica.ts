/*
 * Replica placement and key ranges, after the common KBR API. Both read only the leaf set, so they
 * answer for keys near this node: a node is asked about keys it is a root, or nearly a root, for.
 */
import { ConfigError } from '../errors.js'
import { compareClockwise, compareDistance, Id } from '../id/id.js'
import { type LeafSetView, spansRing } from '../table/leaf-set.js'
import type { HasId } from '../table/types.js'

/** A node handle, or this node itself when the candidate is `self`. */
export type ReplicaCandidate<N> = { readonly self: true } | { readonly self: false; readonly node: N }

/**
 * The up to `r` nodes numerically closest to `key` among this node and its leaf set, closest first
 * (ring distance, ties to the smaller id). `r` is capped at L/2 + 1, the most the leaf set can
 * vouch for. Call it at a key's root to choose replica holders; it is stale once the leaf set
 * changes.
 */
export function replicaSet<N extends HasId>(self: N, leafSet: LeafSetView<N>, key: Id, r: number): N[] {
  if (!Number.isInteger(r) || r < 0)
    throw new ConfigError(`replicaSet needs a non-negative integer r, got ${r}`)
  const all = distinctMembers(leafSet)
  all.push(self)
  const max = Math.min(r, Math.min(leafSet.cwSize, leafSet.ccwSize) + 1)
  all.sort((a, b) => compareDistance(key, a.id, b.id))
  return all.slice(0, max)
}

/** An inclusive arc of keys, from `from` going clockwise to `to`. `whole` marks the entire ring. */
export interface KeyRange {
  readonly from: Id
  readonly to: Id
  readonly whole: boolean
}

/**
 * The keys for which `node` (this node or a leaf-set member) is among the `rank` + 1 numerically
 * closest nodes, as far as this node's leaf set tells. Rank 0 gives the keys the node is the root
 * of. Undefined when the leaf set does not reach far enough around `node` to say, and always for
 * an empty leaf set, which cannot tell a node alone from one whose neighbours all failed (the
 * protocol, which knows when it started a ring by itself, answers for that case). Stale once the
 * leaf set changes.
 */
export function range<N extends HasId>(
  self: N,
  leafSet: LeafSetView<N>,
  node: Id,
  rank: number,
): KeyRange | undefined {
  if (!Number.isInteger(rank) || rank < 0)
    throw new ConfigError(`range needs a non-negative integer rank, got ${rank}`)
  // The known nodes in clockwise order starting from self.
  const ring = distinctMembers(leafSet).map((m) => m.id)
  ring.push(self.id)
  ring.sort((a, b) => compareClockwise(self.id, a, b))
  const n = ring.length
  if (rank + 1 >= n) {
    // Every known node is within rank of every key, provided the leaf set spans the whole ring.
    // An empty leaf set spans nothing: a node alone and a node cut off look the same from here.
    return spansRing(leafSet) ? { from: Id.ZERO, to: Id.MAX, whole: true } : undefined
  }
  const j = ring.findIndex((id) => id.equals(node))
  if (j < 0) return undefined
  const spans = spansRing(leafSet)
  // Without the whole ring in view, positions must stay inside the known stretch: self sits at
  // index 0, the clockwise half after it and the counter-clockwise half at the end.
  const ccwIdx = j - rank - 1
  const cwIdx = j + rank + 1
  if (!spans) {
    const pos = (i: number) => (i > leafSet.cwSize ? i - n : i) // signed offset from self
    const pj = pos(j)
    if (pj - rank - 1 < -leafSet.ccwSize || pj + rank + 1 > leafSet.cwSize) return undefined
  }
  const lower = ring[((ccwIdx % n) + n) % n]!
  const upper = ring[cwIdx % n]!
  return {
    from: boundary(lower, node, 'after'),
    to: boundary(node, upper, 'before'),
    whole: false,
  }
}

const TWO_128 = 1n << 128n

/**
 * The boundary key between `a` and the clockwise-next node `b` where `node` (one of the two) stops
 * being the closer. With 'before' the result is the last key from `a` (= node) still closer to `a`;
 * with 'after' it is the first key past `a` that is closer to `b` (= node). Ties go to the smaller id.
 */
function boundary(a: Id, b: Id, which: 'before' | 'after'): Id {
  const av = a.toBigInt()
  const d = (b.toBigInt() - av + TWO_128) % TWO_128
  // Key a + t is at distance t from a and d - t from b. a wins for t < d - t, and at t = d/2 when a
  // is the smaller id.
  let lastA: bigint
  if (d % 2n === 0n) lastA = a.compare(b) < 0 ? d / 2n : d / 2n - 1n
  else lastA = (d - 1n) / 2n
  const t = which === 'before' ? lastA : lastA + 1n
  return Id.fromBigInt((av + t) % TWO_128)
}

function distinctMembers<N extends HasId>(leafSet: LeafSetView<N>): N[] {
  const out: N[] = []
  for (let i = 0; i < leafSet.cwSize; i++) out.push(leafSet.cw(i))
  for (let i = 0; i < leafSet.ccwSize; i++) {
    const m = leafSet.ccw(i)
    if (!out.some((o) => o.id.equals(m.id))) out.push(m)
  }
  return out
}
