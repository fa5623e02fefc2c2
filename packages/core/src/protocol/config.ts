import { ConfigError } from '../errors.js'
import { checkDigitBits, type DigitBits } from '../id/digits.js'
import { checkLeafSetSize, DEFAULT_LEAF_SET_SIZE } from '../table/leaf-set.js'
import { DEFAULT_NEIGHBOURHOOD_SIZE, MAX_NEIGHBOURHOOD_SIZE } from '../table/neighbourhood-set.js'
import { MAX_LEAF_SET_HANDLES } from '../wire/messages.js'

/**
 * The protocol's settings. Every period and timeout is in milliseconds of the `now` the driver
 * hands in. The defaults suit a real deployment; simulations and tests often shorten the periods.
 */
export interface ProtocolConfig {
  /** Bits per digit, b (default 4). */
  readonly b: DigitBits
  /** Leaf-set size L (default 16). */
  readonly leafSetSize: number
  /** Neighbourhood-set size M (default 32). */
  readonly neighbourhoodSize: number
  /**
   * Proximity neighbour selection (default true): routing-table candidates are probed and each
   * cell keeps the lowest RTT. With false, the first live candidate for a cell keeps it: the
   * baseline PNS is measured against.
   */
  readonly pns: boolean
  /**
   * Before its first JOIN, a joiner looks for a node near it in the network, and joins through that
   * node rather than through the bootstrap it was given (default true; used only with `pns`). It
   * measures the bootstrap's leaf set, then walks up the routing-table rows of the nearest node
   * found, from a deep row to row 0, moving to a nearer node at each step. A nearby first hop gives
   * the joiner a routing table of nearby nodes, which is what makes PNS routes short. It costs
   * about L + (log_{2^b} N + 2)·(2^b − 1) probes, whose RTTs then seed the joiner's tables, and a
   * few round trips of join latency.
   */
  readonly findNearbySeed: boolean
  /**
   * Tls: how often a node makes sure each leaf-set member has heard from it (default 30,000). A
   * member that has had other traffic from the node within the period gets no separate heartbeat.
   */
  readonly leafSetHeartbeatMs: number
  /**
   * How many leaf-set members on each side a node heartbeats and watches for silence (default 2,
   * at most L/2). A member farther out is neither: its own nearest neighbours watch it, and when
   * they declare it failed they send their leaf sets at once to all their members, each of which
   * then probes a member that its neighbour's leaf set should hold but does not. In a run of
   * adjacent failures the live neighbours watch the nearest two on each side; once those are
   * declared failed the next ones are the nearest, long silent, and suspected at the next tick, so
   * a run of L/2 − 1 is repaired a few probe rounds later than with every member watched. Every
   * node still has four watchers, and they cost a quarter of the heartbeats of watching all L (at
   * 10,000 nodes, maintenance 0.18 messages per node per second against 0.36 with four). With a
   * leaf set smaller than the default, the default is L/2 when that is fewer.
   */
  readonly heartbeatNeighbours: number
  /** A leaf-set member not heard from for this long is suspected and probed (default 2.5 × Tls). */
  readonly leafSetTimeoutMs: number
  /** How long to wait for a probe's reply before trying again (default 3,000). */
  readonly probeTimeoutMs: number
  /** Probes sent, after the first, before a suspected node is declared failed (default 2). */
  readonly probeRetries: number
  /**
   * Leaf-set members asked to probe a suspected member for this node before it is declared failed
   * (default 3; 0 turns the second opinion off). A member that answers none of this node's probes
   * is declared failed only when none of the helpers reaches it either, within 2 × probeTimeoutMs:
   * one lossy or broken path then no longer makes a live leaf look dead, which would hand its keys
   * to the wrong node.
   */
  readonly indirectProbes: number
  /**
   * In the deep routing-table rows, where a cell holds only a few nodes, a node keeps up to this
   * many of each cell's members rather than the one entry (default 8; 0 turns it off). It learns
   * them from the entry's leaf set, which holds the whole cell when the cell is that small, and
   * routes to whichever member is numerically closest to the key: often the key's root itself, so
   * the hop from the entry to the root, as long as a random one, is saved. A row counts as deep
   * when its cells should hold at most this many nodes, by the size of the overlay that the leaf
   * set's span implies. Each Trt one deep cell is asked for its members again; a cell also is
   * after a hop to one of its members goes unacknowledged, and every cell is with each check that
   * failures bring on (see {@link deadEntryTarget}).
   */
  readonly deepCellMembers: number
  /** The shortest time to wait for a hop's ack (default 200). */
  readonly ackTimeoutMinMs: number
  /** The longest time to wait for a hop's ack, and the wait when no RTT is known (default 2,000). */
  readonly ackTimeoutMaxMs: number
  /**
   * Transmissions of one routed message, rerouting after each unacknowledged one (default 12:
   * enough to walk past L/2 − 1 adjacent dead leaves with L = 16, plus retries).
   */
  readonly maxRouteAttempts: number
  /**
   * How long a joiner waits for the join's answer before trying again (default 10,000). Also how
   * long a member that confirmed a joiner holds the joiner's keys after its latest announce (the
   * joiner announces again each round while it waits on other members).
   */
  readonly joinTimeoutMs: number
  /** Join attempts before the join fails (default 5). */
  readonly joinAttempts: number
  /** Trt: how often a node asks a row peer for its row, to find nearer or missing entries (default 600,000). */
  readonly routingTableMaintenanceMs: number
  /**
   * The share of routing-table entries that may, on average, point at crashed nodes. From the rate
   * at which it sees members of its tables fail, a node checks its silent entries as often as that
   * share needs, between every {@link routingTableCheckMinMs} and every Trt: a quiet overlay checks
   * every Trt, a churning one more often (default 0.1; 0 checks every Trt whatever the failures).
   * Each check more often than Trt also asks every deep cell for its members again.
   */
  readonly deadEntryTarget: number
  /** The shortest period of those checks (default 30,000). */
  readonly routingTableCheckMinMs: number
  /** Routed messages awaiting an ack at once; more are refused (default 10,000). */
  readonly maxPendingRoutes: number
  /** Messages held while a route waits on a suspected leaf or on the join completing (default 1,024). */
  readonly maxHeldMessages: number
  /** Probes in flight at once; further candidates wait (default 256). */
  readonly maxProbesInFlight: number
  /** Recently failed nodes remembered, so that stale leaf sets do not bring them back (default 4,096). */
  readonly maxFailedMemory: number
  /** How long a failed node is remembered (default 10 × leafSetTimeoutMs). */
  readonly failedMemoryMs: number
  /** Recently delivered message ids remembered, for duplicate suppression (default 4,096). */
  readonly maxDeliveredMemory: number
}

/** Every default, as documented on {@link ProtocolConfig}. */
export const DEFAULT_PROTOCOL_CONFIG: ProtocolConfig = Object.freeze({
  b: 4,
  leafSetSize: DEFAULT_LEAF_SET_SIZE,
  neighbourhoodSize: DEFAULT_NEIGHBOURHOOD_SIZE,
  pns: true,
  findNearbySeed: true,
  leafSetHeartbeatMs: 30_000,
  heartbeatNeighbours: 2,
  leafSetTimeoutMs: 75_000,
  probeTimeoutMs: 3_000,
  probeRetries: 2,
  indirectProbes: 3,
  deepCellMembers: 8,
  ackTimeoutMinMs: 200,
  ackTimeoutMaxMs: 2_000,
  maxRouteAttempts: 12,
  joinTimeoutMs: 10_000,
  joinAttempts: 5,
  routingTableMaintenanceMs: 600_000,
  deadEntryTarget: 0.1,
  routingTableCheckMinMs: 30_000,
  maxPendingRoutes: 10_000,
  maxHeldMessages: 1_024,
  maxProbesInFlight: 256,
  maxFailedMemory: 4_096,
  failedMemoryMs: 750_000,
  maxDeliveredMemory: 4_096,
})

/** Configurations made by {@link resolveConfig}: frozen and checked, so they pass through as they are. */
const RESOLVED = new WeakSet<object>()

/**
 * Fills in defaults and checks every setting, throwing {@link ConfigError} with the setting's name
 * for a bad one. When only `leafSetHeartbeatMs` is given, the timeouts that default to multiples of
 * it follow it. A configuration this function returned comes back unchanged, so that many nodes
 * made from one resolved configuration share it.
 */
export function resolveConfig(partial: Partial<ProtocolConfig> = {}): ProtocolConfig {
  if (RESOLVED.has(partial)) return partial as ProtocolConfig
  const tls = partial.leafSetHeartbeatMs ?? DEFAULT_PROTOCOL_CONFIG.leafSetHeartbeatMs
  const leafSetTimeoutMs = partial.leafSetTimeoutMs ?? tls * 2.5
  const leafSetSize = partial.leafSetSize ?? DEFAULT_PROTOCOL_CONFIG.leafSetSize
  const c: ProtocolConfig = {
    ...DEFAULT_PROTOCOL_CONFIG,
    leafSetTimeoutMs,
    failedMemoryMs: leafSetTimeoutMs * 10,
    // A smaller leaf set than the default watches all of itself when it has room for no more.
    heartbeatNeighbours: Math.min(
      DEFAULT_PROTOCOL_CONFIG.heartbeatNeighbours,
      Math.max(1, Math.floor(leafSetSize / 2)),
    ),
    ...partial,
  }
  named('b', () => checkDigitBits(c.b))
  named('leafSetSize', () => checkLeafSetSize(c.leafSetSize))
  if (c.leafSetSize > MAX_LEAF_SET_HANDLES) {
    throw new ConfigError(
      `leafSetSize must be at most ${MAX_LEAF_SET_HANDLES} to fit on the wire, got ${c.leafSetSize}`,
    )
  }
  if (typeof c.pns !== 'boolean') throw new ConfigError(`pns must be true or false, got ${String(c.pns)}`)
  if (typeof c.findNearbySeed !== 'boolean')
    throw new ConfigError(`findNearbySeed must be true or false, got ${String(c.findNearbySeed)}`)
  positiveInt('neighbourhoodSize', c.neighbourhoodSize, MAX_NEIGHBOURHOOD_SIZE)
  positiveInt('heartbeatNeighbours', c.heartbeatNeighbours, c.leafSetSize / 2)
  for (const name of [
    'leafSetHeartbeatMs',
    'leafSetTimeoutMs',
    'probeTimeoutMs',
    'ackTimeoutMinMs',
    'ackTimeoutMaxMs',
    'joinTimeoutMs',
    'routingTableMaintenanceMs',
    'routingTableCheckMinMs',
    'failedMemoryMs',
  ] as const) {
    const v = c[name]
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) {
      throw new ConfigError(`${name} must be a positive number of milliseconds, got ${String(v)}`)
    }
  }
  if (c.ackTimeoutMinMs > c.ackTimeoutMaxMs) {
    throw new ConfigError(
      `ackTimeoutMinMs (${c.ackTimeoutMinMs}) exceeds ackTimeoutMaxMs (${c.ackTimeoutMaxMs})`,
    )
  }
  if (!(typeof c.deadEntryTarget === 'number' && c.deadEntryTarget >= 0 && c.deadEntryTarget < 1)) {
    throw new ConfigError(`deadEntryTarget must be a number from 0 up to 1, got ${String(c.deadEntryTarget)}`)
  }
  if (!(Number.isInteger(c.probeRetries) && c.probeRetries >= 0 && c.probeRetries <= 100)) {
    throw new ConfigError(`probeRetries must be an integer from 0 to 100, got ${String(c.probeRetries)}`)
  }
  if (!(Number.isInteger(c.indirectProbes) && c.indirectProbes >= 0 && c.indirectProbes <= 16)) {
    throw new ConfigError(`indirectProbes must be an integer from 0 to 16, got ${String(c.indirectProbes)}`)
  }
  if (!(Number.isInteger(c.deepCellMembers) && c.deepCellMembers >= 0 && c.deepCellMembers <= 16)) {
    throw new ConfigError(`deepCellMembers must be an integer from 0 to 16, got ${String(c.deepCellMembers)}`)
  }
  positiveInt('maxRouteAttempts', c.maxRouteAttempts, 100)
  positiveInt('joinAttempts', c.joinAttempts, 1000)
  positiveInt('maxPendingRoutes', c.maxPendingRoutes, 10_000_000)
  positiveInt('maxHeldMessages', c.maxHeldMessages, 10_000_000)
  positiveInt('maxProbesInFlight', c.maxProbesInFlight, 1_000_000)
  positiveInt('maxFailedMemory', c.maxFailedMemory, 10_000_000)
  positiveInt('maxDeliveredMemory', c.maxDeliveredMemory, 10_000_000)
  const resolved = Object.freeze(c)
  RESOLVED.add(resolved)
  return resolved
}

function named(name: string, check: () => unknown): void {
  try {
    check()
  } catch (e) {
    throw new ConfigError(`${name}: ${e instanceof Error ? e.message : String(e)}`)
  }
}

function positiveInt(name: string, v: unknown, max: number): void {
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max)) {
    throw new ConfigError(`${name} must be an integer from 1 to ${max}, got ${String(v)}`)
  }
}
