/*
 * Theory of operation
 *
 * `nextHop` is Pastry's routing decision, a pure function of a node's tables and a key:
 *
 * 1. Leaf set. When the key lies within the leaf set's range, the answer is the numerically closest
 *    of the leaf-set members and this node: deliver here if that is this node, else forward to it.
 * 2. Routing table. Otherwise let l be the length of the prefix this node shares with the key. The
 *    cell at row l, column (digit l of the key) holds a node sharing at least l + 1 digits: forward.
 *    When the tables also know the members of row l's cells (`rowMembers`, kept for the deep rows,
 *    where a cell holds only a few nodes), forward instead to whichever of them and the entry is
 *    numerically closest to the key, of those that share l + 1 digits with it (its cell) or are
 *    strictly closer than this node (rule 'rare' for the latter). That node is often the key's
 *    root itself, in the key's cell or across the cell's edge, which saves the hop from the entry
 *    to the root, as long as a random one.
 * 3. Rare case. Otherwise forward to a known node (leaf set, routing table, extra candidates such as
 *    the neighbourhood set) that shares at least l digits with the key and is strictly closer to it
 *    than this node; of those, the closest. When there is none, deliver here.
 *
 * Each forward strictly reduces the distance to the key (steps 1 and 3, and step 2 to a member of
 * another cell of row l, which keeps at least l digits), or lengthens the shared prefix (step 2),
 * so a route cannot loop. An `exclude` predicate removes candidates, such as nodes
 * suspected of having failed, so that reliable routing can route around them. With exclusions in
 * play, "deliver here" means that no usable node is closer; it is the protocol's job not to deliver
 * while a closer leaf is only suspected (consistent routing).
 */
import type { DigitBits } from '../id/digits.js'
import { compareDistance, type Id } from '../id/id.js'
import { type LeafSetView, leafSetCovers } from '../table/leaf-set.js'
import type { RoutingTableView } from '../table/routing-table.js'
import type { HasId } from '../table/types.js'

/** The tables that a routing decision reads. `LeafSet` and `RoutingTable` satisfy the views. */
export interface RouteTables<N extends HasId> {
  /** This node's id. */
  readonly self: Id
  /** Bits per digit. */
  readonly b: DigitBits
  readonly leafSet: LeafSetView<N>
  readonly routingTable: RoutingTableView<N>
  /** More candidates for the rare case, such as the neighbourhood set. */
  readonly extra?: Iterable<N>
  /**
   * Known members of the cells of one routing-table row (each shares exactly `row` digits with
   * this node), or undefined when none are known: more candidates for step 2.
   */
  readonly rowMembers?: (row: number) => readonly N[] | undefined
}

/** Which rule chose a forward. */
export type RouteRule = 'leafSet' | 'routingTable' | 'rare'

/** The outcome of {@link nextHop}. */
export type RouteDecision<N> =
  | { readonly type: 'deliver' }
  | { readonly type: 'forward'; readonly node: N; readonly rule: RouteRule }

const DELIVER: RouteDecision<never> = Object.freeze({ type: 'deliver' })

/**
 * Decides where a message for `key` goes next from this node. Call it once per hop, with the
 * tables as they are now; a decision is stale once the tables change. `exclude`, when given, rules
 * out candidates (for example nodes suspected of failure, or a next hop whose ack timed out).
 */
export function nextHop<N extends HasId>(
  tables: RouteTables<N>,
  key: Id,
  exclude?: (node: N) => boolean,
): RouteDecision<N> {
  const { self, b, leafSet, routingTable } = tables

  // 1. Within the leaf set's range: the closest of the leaf set and self.
  if (leafSetCovers(leafSet, self, key)) {
    let best: N | undefined
    let bestId = self
    for (let i = 0; i < leafSet.cwSize; i++) {
      const m = leafSet.cw(i)
      if (compareDistance(key, m.id, bestId) < 0 && (exclude === undefined || !exclude(m))) {
        best = m
        bestId = m.id
      }
    }
    for (let i = 0; i < leafSet.ccwSize; i++) {
      const m = leafSet.ccw(i)
      if (compareDistance(key, m.id, bestId) < 0 && (exclude === undefined || !exclude(m))) {
        best = m
        bestId = m.id
      }
    }
    return best === undefined ? DELIVER : { type: 'forward', node: best, rule: 'leafSet' }
  }

  // 2. The routing-table cell for the next digit of the key.
  const l = self.sharedPrefixLength(key, b)
  const col = key.digit(l, b)
  const cell = routingTable.get(l, col)
  const usable = cell !== undefined && (exclude === undefined || !exclude(cell))
  const members = tables.rowMembers?.(l)
  if (members !== undefined && members.length > 0) {
    // The numerically closest of the entry and the row's members that share l + 1 digits with the
    // key (those in its cell) or are strictly closer than this node.
    let pick = usable ? cell : undefined
    for (const m of members) {
      if (pick !== undefined && compareDistance(key, m.id, pick.id) >= 0) continue
      if (m.id.digit(l, b) !== col && compareDistance(key, m.id, self) >= 0) continue
      if (exclude === undefined || !exclude(m)) pick = m
    }
    if (pick !== undefined) {
      return { type: 'forward', node: pick, rule: pick.id.digit(l, b) === col ? 'routingTable' : 'rare' }
    }
  } else if (usable) {
    return { type: 'forward', node: cell, rule: 'routingTable' }
  }

  // 3. The rare case: any known node at least as far along the prefix and strictly closer.
  // (The cast keeps TypeScript from narrowing `best` to undefined: it is assigned in `consider`.)
  let best = undefined as N | undefined
  let bestId = self
  const consider = (m: N) => {
    if (
      compareDistance(key, m.id, bestId) < 0 &&
      m.id.sharedPrefixLength(key, b) >= l &&
      (exclude === undefined || !exclude(m))
    ) {
      best = m
      bestId = m.id
    }
  }
  for (let i = 0; i < leafSet.cwSize; i++) consider(leafSet.cw(i))
  for (let i = 0; i < leafSet.ccwSize; i++) consider(leafSet.ccw(i))
  // Entries in rows below l differ from the key within the first l digits, so only rows ≥ l qualify.
  const columns = 1 << b
  for (let r = l; r < routingTable.rowCount; r++) {
    for (let c = 0; c < columns; c++) {
      const m = routingTable.get(r, c)
      if (m !== undefined) consider(m)
    }
  }
  if (tables.extra !== undefined) for (const m of tables.extra) consider(m)
  return best === undefined ? DELIVER : { type: 'forward', node: best, rule: 'rare' }
}
