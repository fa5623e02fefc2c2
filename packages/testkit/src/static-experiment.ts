/*
 * The routing-only experiment as one call: draw ids and a topology from a seed, build a static
 * overlay, route random keys from random nodes, and report hops, delay stretch and correctness
 * against the oracle. `pastry sim --static` is a thin shell over this.
 */
import { ConfigError, createRng, type Id, randomId } from '@pastry/core'
import { buildStaticOverlay, type StaticOverlay } from './static-overlay.js'
import { createTopology, type TopologyKind } from './topology.js'

/** Options for {@link runStaticExperiment}. */
export interface StaticExperimentOptions {
  /** Number of nodes (≥ 1). */
  readonly nodes: number
  /** Number of random lookups (≥ 0). */
  readonly lookups: number
  /** The seed everything is drawn from. */
  readonly seed: string
  /** Bits per digit (default 4). */
  readonly b?: number
  /** Leaf-set size L (default 16). */
  readonly leafSetSize?: number
  /** The latency model (default sphere). */
  readonly topology?: TopologyKind
  /** Proximity neighbour selection (default true). */
  readonly pns?: boolean
  /** Called with a fraction in [0, 1] and a phase name now and then during long runs. */
  readonly onProgress?: (phase: 'build' | 'route', fraction: number) => void
  /** Called once after the build with the live node ids, in sorted order. */
  readonly onNodes?: (ids: readonly Id[]) => void
  /** Called once per lookup, for writing lookups out. */
  readonly onLookup?: (lookup: StaticLookup) => void
}

/** One lookup, as written to `lookups.ndjson`. */
export interface StaticLookup {
  readonly key: Id
  readonly from: Id
  readonly deliveredAt: Id | null
  readonly hops: number
}

/** Summary statistics of a sample. */
export interface Distribution {
  readonly mean: number
  readonly p50: number
  readonly p99: number
}

/** The report of {@link runStaticExperiment}; the CLI prints it as the `--json` object. */
export interface StaticExperimentReport {
  readonly mode: 'static'
  readonly seed: string
  readonly nodes: number
  readonly live: number
  readonly lookups: number
  readonly delivered: number
  readonly correct: number
  readonly incorrect: number
  readonly lost: number
  readonly hops: Distribution & { readonly max: number; readonly histogram: number[] }
  /** Delay stretch: overlay delay over direct delay, for lookups not delivered at their start. */
  readonly rdp: Distribution
  readonly messages: {
    readonly total: number
    readonly perNode: number
    readonly byType: Record<string, number>
  }
  /** Not applicable to a static overlay: no node joins through the protocol. */
  readonly joinMessagesPerNode: null
  /** Not applicable to a static overlay: there is no maintenance traffic. */
  readonly maintenancePerNodePerSec: null
  /** Not applicable to a static overlay: no simulated time passes. */
  readonly simulatedMs: null
  readonly b: number
  readonly leafSetSize: number
  readonly topology: TopologyKind
  readonly pns: boolean
  readonly table: { readonly meanRoutingTableEntries: number; readonly meanRoutingTableRows: number }
  readonly buildMs: number
  readonly routeMs: number
}

/**
 * Runs the routing-only experiment. Deterministic for a given seed and options: the same seed
 * gives the same report, wall-clock fields aside (those are filled in by the caller).
 */
export function runStaticExperiment(
  options: StaticExperimentOptions,
  clock: () => number,
): StaticExperimentReport {
  const { nodes: n, lookups } = options
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`nodes must be an integer ≥ 1, got ${n}`)
  if (!Number.isInteger(lookups) || lookups < 0)
    throw new ConfigError(`lookups must be an integer ≥ 0, got ${lookups}`)
  const topologyKind = options.topology ?? 'sphere'
  const pns = options.pns ?? true
  const rng = createRng(options.seed)

  const t0 = clock()
  const idRng = rng.derive('ids')
  // Distinct with overwhelming probability; the builder rejects a duplicate if one ever occurs.
  const ids: Id[] = Array.from({ length: n }, () => randomId(idRng))
  options.onProgress?.('build', 0.2)
  const topology = createTopology(topologyKind, n, rng.derive('topology'))
  const overlay = buildStaticOverlay({
    ids,
    rng: rng.derive('tables'),
    topology,
    pns,
    ...(options.b === undefined ? {} : { b: options.b }),
    ...(options.leafSetSize === undefined ? {} : { leafSetSize: options.leafSetSize }),
  })
  options.onProgress?.('build', 1)
  options.onNodes?.(overlay.nodes.map((node) => node.id))
  const buildMs = clock() - t0

  const t1 = clock()
  const lookupRng = rng.derive('lookups')
  const histogram: number[] = []
  const rdps = new Float64Array(lookups)
  let rdpCount = 0
  let hopSum = 0
  let maxHops = 0
  let correct = 0
  const progressEvery = Math.max(1, Math.floor(lookups / 100))
  for (let k = 0; k < lookups; k++) {
    const key = randomId(lookupRng)
    const from = lookupRng.int(n)
    const r = overlay.route(from, key)
    hopSum += r.hops
    if (r.hops > maxHops) maxHops = r.hops
    histogram[r.hops] = (histogram[r.hops] ?? 0) + 1
    if (r.deliveredAt === overlay.closest(key)) correct++
    if (r.deliveredAt !== from) {
      const direct = overlay.latencyMs(from, r.deliveredAt)
      if (direct > 0) rdps[rdpCount++] = r.delayMs / direct
    }
    options.onLookup?.({
      key,
      from: overlay.nodes[from]!.id,
      deliveredAt: overlay.nodes[r.deliveredAt]!.id,
      hops: r.hops,
    })
    if (k % progressEvery === 0) options.onProgress?.('route', k / lookups)
  }
  const routeMs = clock() - t1
  for (let i = 0; i < histogram.length; i++) histogram[i] ??= 0

  return {
    mode: 'static',
    seed: options.seed,
    nodes: n,
    live: n,
    lookups,
    delivered: lookups,
    correct,
    incorrect: lookups - correct,
    lost: 0,
    hops: {
      mean: lookups === 0 ? 0 : hopSum / lookups,
      ...histogramQuantiles(histogram, lookups),
      max: maxHops,
      histogram,
    },
    rdp: distribution(rdps.subarray(0, rdpCount)),
    messages: { total: hopSum, perNode: hopSum / n, byType: { route: hopSum } },
    joinMessagesPerNode: null,
    maintenancePerNodePerSec: null,
    simulatedMs: null,
    b: overlay.b,
    leafSetSize: overlay.leafSetSize,
    topology: topologyKind,
    pns,
    table: tableFill(overlay),
    buildMs,
    routeMs,
  }
}

function histogramQuantiles(histogram: readonly number[], count: number): { p50: number; p99: number } {
  const at = (q: number) => {
    if (count === 0) return 0
    const rank = Math.ceil(q * count)
    let seen = 0
    for (let h = 0; h < histogram.length; h++) {
      seen += histogram[h] ?? 0
      if (seen >= rank) return h
    }
    return histogram.length - 1
  }
  return { p50: at(0.5), p99: at(0.99) }
}

function distribution(values: Float64Array): Distribution {
  if (values.length === 0) return { mean: 0, p50: 0, p99: 0 }
  const sorted = Float64Array.from(values).sort()
  let sum = 0
  for (const v of sorted) sum += v
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
  return { mean: sum / sorted.length, p50: at(0.5), p99: at(0.99) }
}

function tableFill(overlay: StaticOverlay): {
  meanRoutingTableEntries: number
  meanRoutingTableRows: number
} {
  // Sample at most 10,000 nodes evenly: exact for small overlays, cheap for large ones.
  const step = Math.max(1, Math.floor(overlay.size / 10000))
  let entries = 0
  let rows = 0
  let count = 0
  for (let i = 0; i < overlay.size; i += step) {
    entries += overlay.routingTableSize(i)
    rows += overlay.routingTableRows(i)
    count++
  }
  return { meanRoutingTableEntries: entries / count, meanRoutingTableRows: rows / count }
}
