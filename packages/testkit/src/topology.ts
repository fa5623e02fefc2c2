/*
 * Network topologies: where simulated nodes sit, and the one-way latency between two of them.
 * Nodes are numbered 0..n-1 by the caller. Every topology is drawn from a seeded Rng, so a seed
 * gives the same coordinates every time.
 */
import { ConfigError, type Rng } from '@pastry/core'

/** The latency model under a simulation. */
export interface Topology {
  /** The kind, as named on the command line. */
  readonly kind: TopologyKind
  /** How many node positions the topology holds. */
  readonly size: number
  /** One-way latency in milliseconds between node positions `a` and `b`; 0 when a === b. */
  latencyMs(a: number, b: number): number
  /**
   * Where `position` lies against a split of the topology in two halves: the sign names the half
   * (≥ 0 or < 0), and the magnitude is a lower bound on the latency from it to any position of
   * the other half. Simulator shards split a run by it (sim/shard/link.ts).
   */
  splitMargin?(position: number): number
}

/** The topologies on offer: `sphere` (the default), `plane` and `uniform`. */
export type TopologyKind = 'sphere' | 'plane' | 'uniform'

/** The topology kinds, for validating user input. */
export const TOPOLOGY_KINDS: readonly TopologyKind[] = ['sphere', 'plane', 'uniform']

/** Options for {@link createTopology}. */
export interface TopologyOptions {
  /** For `sphere`: latency between antipodal points (default 200 ms). */
  readonly sphereDiameterMs?: number
  /** For `plane`: latency across the unit square's side (default 100 ms). */
  readonly planeSideMs?: number
  /** For `uniform`: the range each pair's latency is drawn from (default 1 to 200 ms). */
  readonly uniformMinMs?: number
  readonly uniformMaxMs?: number
}

/**
 * Makes a topology of `size` node positions of the given kind, from `rng`. Call it once per
 * simulation; the positions never change afterwards.
 */
export function createTopology(
  kind: TopologyKind,
  size: number,
  rng: Rng,
  options: TopologyOptions = {},
): Topology {
  if (!Number.isInteger(size) || size < 0) throw new ConfigError(`a topology needs a size ≥ 0, got ${size}`)
  switch (kind) {
    case 'sphere':
      return new SphereTopology(size, rng, options.sphereDiameterMs ?? 200)
    case 'plane':
      return new PlaneTopology(size, rng, options.planeSideMs ?? 100)
    case 'uniform':
      return new UniformTopology(size, rng, options.uniformMinMs ?? 1, options.uniformMaxMs ?? 200)
    default:
      throw new ConfigError(
        `unknown topology ${JSON.stringify(kind)}; choose one of ${TOPOLOGY_KINDS.join(', ')}`,
      )
  }
}

/** Points uniformly on a sphere; latency is great-circle distance, antipodes `diameterMs` apart. */
class SphereTopology implements Topology {
  readonly kind = 'sphere'
  readonly size: number
  readonly #xyz: Float64Array
  readonly #scale: number

  constructor(size: number, rng: Rng, diameterMs: number) {
    this.size = size
    this.#scale = diameterMs / Math.PI
    this.#xyz = new Float64Array(size * 3)
    for (let i = 0; i < size; i++) {
      const z = 2 * rng.float() - 1
      const phi = 2 * Math.PI * rng.float()
      const r = Math.sqrt(1 - z * z)
      this.#xyz[3 * i] = r * Math.cos(phi)
      this.#xyz[3 * i + 1] = r * Math.sin(phi)
      this.#xyz[3 * i + 2] = z
    }
  }

  latencyMs(a: number, b: number): number {
    if (a === b) return 0
    const p = this.#xyz
    const dot = p[3 * a]! * p[3 * b]! + p[3 * a + 1]! * p[3 * b + 1]! + p[3 * a + 2]! * p[3 * b + 2]!
    return Math.acos(Math.max(-1, Math.min(1, dot))) * this.#scale
  }

  /** Split at the equator: the arc from the point to it. */
  splitMargin(position: number): number {
    return Math.asin(Math.max(-1, Math.min(1, this.#xyz[3 * position + 2]!))) * this.#scale
  }
}

/** Points uniformly in a square; latency is Euclidean distance. */
class PlaneTopology implements Topology {
  readonly kind = 'plane'
  readonly size: number
  readonly #xy: Float64Array
  readonly #side: number

  constructor(size: number, rng: Rng, sideMs: number) {
    this.size = size
    this.#side = sideMs
    this.#xy = new Float64Array(size * 2)
    for (let i = 0; i < size * 2; i++) this.#xy[i] = rng.float()
  }

  latencyMs(a: number, b: number): number {
    if (a === b) return 0
    const dx = this.#xy[2 * a]! - this.#xy[2 * b]!
    const dy = this.#xy[2 * a + 1]! - this.#xy[2 * b + 1]!
    return Math.sqrt(dx * dx + dy * dy) * this.#side
  }

  /** Split at x = 1/2: the distance from the point to that line. */
  splitMargin(position: number): number {
    return (this.#xy[2 * position]! - 0.5) * this.#side
  }
}

/**
 * Each pair gets its own latency, uniform in [min, max], derived by hashing the pair with a seed so
 * that nothing is stored per pair. Symmetric, but it obeys no triangle inequality: the model in
 * which proximity tells the least.
 */
class UniformTopology implements Topology {
  readonly kind = 'uniform'
  readonly size: number
  readonly #seed: number
  readonly #min: number
  readonly #span: number

  constructor(size: number, rng: Rng, minMs: number, maxMs: number) {
    if (!(minMs >= 0 && maxMs >= minMs))
      throw new ConfigError(`uniform latency needs 0 ≤ min ≤ max, got ${minMs}..${maxMs}`)
    this.size = size
    this.#seed = rng.u32()
    this.#min = minMs
    this.#span = maxMs - minMs
  }

  latencyMs(a: number, b: number): number {
    if (a === b) return 0
    const lo = Math.min(a, b)
    const hi = Math.max(a, b)
    return this.#min + this.#span * (mix(this.#seed ^ Math.imul(lo, 0x9e3779b1), hi) / 4294967296)
  }

  /** Split by the parity of the position: every latency is at least the minimum. */
  splitMargin(position: number): number {
    return position % 2 === 0 ? this.#min : -this.#min
  }
}

/** A 32-bit integer hash of two words (murmur3's finaliser over a simple combination). */
function mix(a: number, b: number): number {
  let h = Math.imul(a ^ Math.imul(b, 0x85ebca6b), 0xcc9e2d51)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
