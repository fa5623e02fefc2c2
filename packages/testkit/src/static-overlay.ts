/*
 * Theory of operation
 *
 * A static overlay is Pastry's routing-only experiment: given every node's id up front, build each
 * node's tables from the global view, as a perfectly converged overlay would have them, then route
 * keys hop by hop with core's own `nextHop`. It is the fastest way to study routing at 10^6 nodes.
 *
 * Layout. Ids are sorted once; a node is known by its index in that order. Its leaf set needs no
 * storage: the L/2 indices after it and before it, wrapping. The routing tables live in one flat
 * Int32Array of node indices (-1 for an empty cell). Node i owns rows 0..depth(i)-1 of 2^b cells,
 * where depth(i) is one more than the longest prefix it shares with a sorted neighbour: past that
 * row no other node shares its prefix, so every deeper row would be empty. For random ids the
 * total is about N·(log_{2^b} N + 1)·2^b cells.
 *
 * Filling. Nodes that share r digits form a contiguous run of the sorted order, and within it the
 * nodes whose digit r is c form a contiguous sub-run. The builder walks that implicit trie: for each
 * run at depth r it finds the sub-runs, gives every member one representative of each other
 * sub-run for its row r, and descends. Without a topology, the representative is a uniformly
 * random member of the sub-run. With one (proximity neighbour selection), it is the nearest of up to
 * `pnsSamples` members, taken from a random offset; runs no larger than that are searched
 * exhaustively, so deep rows get the truly nearest entry and only the crowded top rows are
 * approximated.
 */
import {
  ConfigError,
  checkDigitBits,
  checkLeafSetSize,
  compareDistance,
  DEFAULT_LEAF_SET_SIZE,
  type DigitBits,
  digitCount,
  type Id,
  type LeafSetView,
  nextHop,
  type Rng,
  type RouteTables,
  type RoutingTableView,
} from '@pastry/core'
import type { Topology } from './topology.js'

/** A node of a static overlay: its id and its index in sorted order. */
export interface StaticNode {
  readonly id: Id
  readonly index: number
}

/** Options for {@link buildStaticOverlay}. */
export interface StaticOverlayOptions {
  /** The node ids. Duplicates are rejected. */
  readonly ids: readonly Id[]
  /** Chooses routing-table representatives. */
  readonly rng: Rng
  /** Bits per digit (default 4). */
  readonly b?: number
  /** Leaf-set size L (default 16). */
  readonly leafSetSize?: number
  /**
   * Latency between nodes, indexed by the position of each id in `ids` (not sorted order). When
   * given, routing-table entries are chosen by proximity (PNS) and routes report their delay.
   */
  readonly topology?: Topology
  /**
   * Choose routing-table entries by proximity (default true when a topology is given). With
   * false, entries are uniformly random and the topology only measures delay: the `--no-pns`
   * baseline.
   */
  readonly pns?: boolean
  /** With a topology: how many members of a crowded cell's candidates to compare (default 32). */
  readonly pnsSamples?: number
}

/** One routed key: where it started, where it ended, and how. */
export interface StaticRoute {
  /** Sorted index of the delivering node. */
  readonly deliveredAt: number
  /** Overlay hops taken; 0 when the start node was the root. */
  readonly hops: number
  /** Sum of one-way latencies along the path (ms); 0 without a topology. */
  readonly delayMs: number
  /** Sorted indices of the nodes visited, start and end included, when `path` was asked for. */
  readonly path?: readonly number[]
}

/** A statically built overlay. Immutable once built. */
export interface StaticOverlay {
  /** Number of nodes. */
  readonly size: number
  /** Bits per digit. */
  readonly b: DigitBits
  /** Leaf-set size L. */
  readonly leafSetSize: number
  /** The nodes in sorted id order. */
  readonly nodes: readonly StaticNode[]
  /** The position in the input `ids` of the node at sorted index i (for the topology). */
  inputIndex(i: number): number
  /** The routing tables of the node at sorted index i, as `nextHop` reads them. */
  tablesOf(i: number): RouteTables<StaticNode>
  /** Routing-table entries of node i. */
  routingTableSize(i: number): number
  /** Rows allocated for node i (rows past these are empty). */
  routingTableRows(i: number): number
  /** The sorted index of the node numerically closest to `key`: the correct root (the oracle). */
  closest(key: Id): number
  /** Routes `key` from node `from` (sorted index) with core's `nextHop`, hop by hop. */
  route(from: number, key: Id, options?: { readonly path?: boolean }): StaticRoute
  /** One-way latency between two nodes by sorted index; 0 without a topology. */
  latencyMs(a: number, b: number): number
}

/**
 * Builds every node's tables from a global view of `ids`. Call it once per experiment; the result
 * does not change. Time and memory grow as N·log N; 10^6 nodes take well under a minute (see
 * BENCHMARKS.md).
 */
export function buildStaticOverlay(options: StaticOverlayOptions): StaticOverlay {
  const b = checkDigitBits(options.b ?? 4)
  const leafSetSize = checkLeafSetSize(options.leafSetSize ?? DEFAULT_LEAF_SET_SIZE)
  const pnsSamples = options.pnsSamples ?? 32
  if (!Number.isInteger(pnsSamples) || pnsSamples < 1)
    throw new ConfigError(`pnsSamples must be ≥ 1, got ${pnsSamples}`)
  const n = options.ids.length
  if (options.topology !== undefined && options.topology.size < n) {
    throw new ConfigError(`the topology has ${options.topology.size} positions for ${n} nodes`)
  }

  // Sort positions by id.
  const order = new Int32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  const ids = options.ids
  order.sort((x, y) => ids[x]!.compare(ids[y]!))
  const nodes: StaticNode[] = new Array(n)
  for (let i = 0; i < n; i++) nodes[i] = { id: ids[order[i]!]!, index: i }
  for (let i = 1; i < n; i++) {
    if (nodes[i]!.id.equals(nodes[i - 1]!.id)) throw new ConfigError(`duplicate id ${nodes[i]!.id.toHex()}`)
  }

  // Rows per node, and offsets into the flat cell array.
  const cols = 1 << b
  const depth = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    let p = -1
    if (i > 0) p = nodes[i]!.id.sharedPrefixLength(nodes[i - 1]!.id, b)
    if (i + 1 < n) p = Math.max(p, nodes[i]!.id.sharedPrefixLength(nodes[i + 1]!.id, b))
    depth[i] = p + 1
  }
  const offset = new Float64Array(n + 1)
  for (let i = 0; i < n; i++) offset[i + 1] = offset[i]! + depth[i]! * cols
  const cells = new Int32Array(offset[n]!).fill(-1)

  const topology = options.topology
  const pns = topology !== undefined && options.pns !== false
  const rng = options.rng
  const latency = (a: number, c: number) =>
    topology === undefined ? 0 : topology.latencyMs(order[a]!, order[c]!)

  // Walk the implicit trie of sorted ids. Explicit stack: (lo, hi, row).
  const starts = new Int32Array(cols + 1)
  const stack: number[] = n > 1 ? [0, n, 0] : []
  while (stack.length > 0) {
    const r = stack.pop()!
    const hi = stack.pop()!
    const lo = stack.pop()!
    // Sub-runs by digit r: starts[c]..starts[c+1].
    let k = lo
    for (let c = 0; c < cols; c++) {
      starts[c] = k
      while (k < hi && nodes[k]!.id.digit(r, b) === c) k++
    }
    starts[cols] = hi
    const subs = starts.slice()
    for (let c = 0; c < cols; c++) {
      const sLo = subs[c]!
      const sHi = subs[c + 1]!
      if (sHi - sLo > 1) stack.push(sLo, sHi, r + 1)
    }
    for (let i = lo; i < hi; i++) {
      const own = nodes[i]!.id.digit(r, b)
      const base = offset[i]! + r * cols
      for (let c = 0; c < cols; c++) {
        if (c === own) continue
        const sLo = subs[c]!
        const size = subs[c + 1]! - sLo
        if (size === 0) continue
        let pick: number
        if (!pns) {
          pick = sLo + (size === 1 ? 0 : rng.int(size))
        } else if (size <= pnsSamples) {
          pick = sLo
          let best = latency(i, sLo)
          for (let j = sLo + 1; j < sLo + size; j++) {
            const d = latency(i, j)
            if (d < best) {
              best = d
              pick = j
            }
          }
        } else {
          const start = rng.int(size)
          pick = sLo + start
          let best = latency(i, pick)
          for (let s = 1; s < pnsSamples; s++) {
            const j = sLo + ((start + s) % size)
            const d = latency(i, j)
            if (d < best) {
              best = d
              pick = j
            }
          }
        }
        cells[base + c] = pick
      }
    }
  }

  const half = leafSetSize / 2
  const sideSize = Math.min(half, n - 1)
  const maxHops = digitCount(b) + leafSetSize + 8

  const tablesOf = (i: number): RouteTables<StaticNode> => {
    const leafSet: LeafSetView<StaticNode> = {
      half,
      cwSize: sideSize,
      ccwSize: sideSize,
      cw: (k) => nodes[(i + 1 + k) % n]!,
      ccw: (k) => nodes[(i - 1 - k + n * 2) % n]!,
    }
    const base = offset[i]!
    const rows = depth[i]!
    const routingTable: RoutingTableView<StaticNode> = {
      rowCount: rows,
      get: (row, col) => {
        if (row >= rows) return undefined
        const v = cells[base + row * cols + col]!
        return v < 0 ? undefined : nodes[v]
      },
    }
    return { self: nodes[i]!.id, b, leafSet, routingTable }
  }

  const closest = (key: Id): number => {
    if (n === 0) throw new ConfigError('an empty overlay has no closest node')
    // First index whose id is ≥ key; the root is it or its predecessor (wrapping).
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (nodes[mid]!.id.compare(key) < 0) lo = mid + 1
      else hi = mid
    }
    const above = lo % n
    const below = (lo - 1 + n) % n
    return compareDistance(key, nodes[above]!.id, nodes[below]!.id) <= 0 ? above : below
  }

  return {
    size: n,
    b,
    leafSetSize,
    nodes,
    inputIndex: (i) => order[i]!,
    tablesOf,
    routingTableSize: (i) => {
      let count = 0
      for (let k = offset[i]!; k < offset[i + 1]!; k++) if (cells[k]! >= 0) count++
      return count
    },
    routingTableRows: (i) => depth[i]!,
    closest,
    latencyMs: latency,
    route(from, key, routeOptions) {
      const path = routeOptions?.path === true ? [from] : undefined
      let at = from
      let hops = 0
      let delayMs = 0
      for (;;) {
        const decision = nextHop(tablesOf(at), key)
        if (decision.type === 'deliver') break
        const next = decision.node.index
        delayMs += latency(at, next)
        at = next
        hops++
        path?.push(next)
        if (hops > maxHops) {
          throw new Error(`routing loop: key ${key.toHex()} from node ${from} passed ${maxHops} hops`)
        }
      }
      return path === undefined
        ? { deliveredAt: at, hops, delayMs }
        : { deliveredAt: at, hops, delayMs, path }
    },
  }
}
