/*
 * Theory of operation
 *
 * A whole overlay in one thread, driven by one seed (after TigerBeetle's VOPR and FoundationDB's
 * simulation). Virtual time is a number of milliseconds that only the event queue advances; nothing
 * reads a wall clock, and every random choice draws from an Rng derived from the seed:
 *   seed ─┬─ 'ids'      node ids drawn by addNode
 *         ├─ 'nodes'    one child per node incarnation ('<index>.<incarnation>'), handed to the factory
 *         ├─ 'network'  loss, duplication and jitter, in transmission order
 *         ├─ 'churn'    arrivals, bootstraps, session times, crash-or-leave
 *         ├─ 'churn-existing'  remaining sessions (and crash-or-leave) of nodes alive at startChurn
 *         └─ 'topology' the latency model, when the simulator builds it
 * Adding a consumer never shifts the numbers another one sees, so a seed replays a run exactly.
 *
 * Nodes. Node i has the address `sim:<i>` and a topology position (i itself, unless given, or a
 * position freed by a churned-out node once the topology's positions run out). Per-node state lives
 * in arrays indexed by i: the instance, status (alive, crashed, closed), position, incarnation,
 * armed deadline, the seq of its queued timer event, and whether the oracle counts it live. An
 * address is parsed back to i by reading its digits: no string-keyed map on the hot path.
 *
 * Driving (the loop of core's protocol/types.ts). After every input to node i (a message, a timer,
 * or a command), the simulator:
 *   0. reads `node.state` and tells the oracle if the node became or stopped being active;
 *   1. drains `pollTransmit`: each message is counted, then dropped by a partition or by loss, or
 *      scheduled to arrive at now + latency(i, to) + jitter (twice when duplicated);
 *   2. drains `pollEvent`: each event is counted, `deliver` and `routeFailed` go to the oracle and
 *      metrics, then to the `onEvent` observer;
 *   3. arms the node's one timer at `nextDeadline()`, or retires the node if it reports `closed`.
 * A node that crashes is dropped at once: it receives nothing, its timer is dead, it is never polled
 * again. Messages arriving for a crashed, closed or unknown address vanish and are counted.
 *
 * Timers. Each alive node has at most one wake-up, kept apart from the event queue in a heap with
 * one entry per node (timers.ts): re-arming moves the entry, disarming and crashing remove it, so
 * a wake-up fires only when the node's deadline has come. A wake-up takes its seq from the queue's
 * counter when it is set, and the loop takes whichever of the two heads is earlier by (time, seq).
 *
 * Messages may be passed as objects (the default: they are immutable values, and bytes are counted
 * by `messageSize`, which equals the encoded length), or with `encode: true` go through
 * `encodeMessage` at the sender and `decodeMessage` at the receiver, so the codec is exercised and
 * bytes are real.
 *
 * Path delay for RDP. A lookup issued by `route()` opens a *flow*, found by the msgId that every hop
 * of the routed message carries (the oracle matches deliveries to lookups by the same msgId) and
 * checked against the message's origin and key; a retry's msgId joins its lookup's flow. Each
 * `route` transmission of a flow carries the sender's path delay plus the link's; on arrival it
 * becomes the receiver's path delay. At the first delivery, RDP = path delay / latency(origin,
 * deliverer). Flows are dropped at delivery and capped at `maxTrackedFlows` (oldest evicted).
 *
 * Churn (`startChurn`). Arrivals are a Poisson process; each arrival joins through a random live node
 * and gets a session drawn from the session distribution. So that an overlay of N nodes with arrivals
 * at N / mean session stays near N (an M/G/∞ queue in steady state), every node alive at startChurn
 * gets a session too: by default the residual of a session in progress (see `ExistingNodesPolicy`).
 * A session's end is a queued event tagged with the node's incarnation and the session generation,
 * so a restart or a `stopChurn` voids it; a node that has one is never given a second.
 *
 * Determinism check. Every processed input is folded into a 32-bit FNV-1a hash: time, node, kind,
 * message type, from, to. Two runs from one seed give one hash; `traceHash()` shows it.
 *
 * Failures. A node or an observer that throws stops the run: the error is recorded in `failures`
 * and rethrown as a {@link SimulationError} whose message carries the seed, the time and the node.
 *
 * Shards. With `shard`, the simulator is one of two that run one simulation in two threads, each
 * owning the nodes on its side of a split of the topology (shard/link.ts). Both place every node
 * (the same ids, positions and handles) but make only their own; a message to the other side goes
 * through the link and comes back as an injected event with a seq above any of the receiver's
 * own. `runSharded` replaces `runUntil`: it runs an event only once the other shard can no longer
 * reach its node earlier, so each node sees exactly the inputs, in the order, that one simulator
 * would give it. Different nodes of a shard may then be run out of time order, so a shard hashes
 * each node's inputs apart and `traceHash` folds them in index order. Commands with global effects
 * (those that read membership) wait until the other shard has run everything earlier. The oracle
 * learns the other shard's membership changes as records, applied by `applyRemoteActivity`, and its
 * lookups as numbers (`routeElsewhere`), bound to msgIds when a route message crosses over.
 */
import {
  type CodecOptions,
  ConfigError,
  createRng,
  decodeMessage,
  encodeMessage,
  type Id,
  type Message,
  type Rng,
  randomId,
  typeCode,
} from '@pastry/core'
import type { Distribution } from '../static-experiment.js'
import { createTopology, type Topology, type TopologyKind, type TopologyOptions } from '../topology.js'
import type { EventOf, SimDeliverEvent, SimNode, SimRouteFailedEvent, SimTransmit } from './contract.js'
import { grown } from './grown.js'
import { type HopsReport, type MessageReport, SimMetrics } from './metrics.js'
import { type LookupSummary, Oracle } from './oracle.js'
import { EventQueue } from './queue.js'
import type { ShardLink, ShardSink } from './shard/link.js'
import { messageSize, sizedHandle } from './size.js'
import { TimerHeap } from './timers.js'

// ---------------------------------------------------------------------------------------------------
// Public types

/** What the node factory is given. */
export interface NodeContext {
  /** The node's id: drawn by the simulator, or given to `addNode`; kept across restarts. */
  readonly id: Id
  /** The node's address, `sim:<index>`. */
  readonly address: string
  /**
   * The node's handle, `{ id, address }`, frozen: made once per node and kept across restarts. A
   * node that takes it as its own, rather than making another, shares it with every peer that
   * learns of the node (messages are passed as objects), and {@link Simulator.addNodes} makes the
   * handles of many nodes in one pass, so that they lie together in memory.
   */
  readonly handle: SimHandle
  /** The node's own random stream, derived from the seed per node and incarnation. */
  readonly rng: Rng
  /** Virtual time at creation. */
  readonly now: number
  /** The node's index in the simulator. */
  readonly index: number
}

/** Network faults. Every field defaults to 0. */
export interface NetworkOptions {
  /** Probability that a transmission is dropped, in [0, 1]. */
  readonly loss?: number
  /** Probability that a transmission arrives twice, in [0, 1]. */
  readonly duplicate?: number
  /** Extra delay per copy, uniform in [0, jitterMs). Reorders messages. */
  readonly jitterMs?: number
}

/** A topology, or what to build one from (with the seed's 'topology' child). */
export type TopologySpec =
  | Topology
  | { readonly kind: TopologyKind; readonly size: number; readonly options?: TopologyOptions }

/** Table fullness of one node, as the `tableStats` hook reports it. */
export interface TableStats {
  readonly leafSet: number
  readonly routingTable: number
}

/** What `onProgress` is told. Only counts and virtual time: the caller adds wall-clock time if it wants. */
export interface SimProgress {
  readonly now: number
  readonly events: number
  readonly pending: number
  readonly alive: number
  readonly live: number
}

/** Options for {@link Simulator}. */
export interface SimulatorOptions<N extends SimNode> {
  /** The root of all randomness. Print it; the same seed replays the run. */
  readonly seed: string
  /** The latency model, or a kind and a number of positions to build one from the seed. */
  readonly topology: TopologySpec
  /** Makes a node. Called by `addNode`, by churn arrivals and by `restart`. */
  readonly createNode: (ctx: NodeContext) => N
  /** Loss, duplication, jitter (default none). Change later with `setNetwork`. */
  readonly network?: NetworkOptions
  /**
   * Pass every message through `encodeMessage` at the sender and `decodeMessage` at the receiver, and
   * count real frame bytes. Default false: the sender's immutable message object is handed over as
   * it is, and bytes are counted with `messageSize` (equal to the encoded length; about 5× faster).
   */
  readonly encode?: boolean
  /** The codec's frame bound when `encode` is on. */
  readonly maxMessageBytes?: number
  /** Sees every event every node emits, after the simulator has. It may issue commands. */
  readonly onEvent?: (index: number, event: EventOf<N>, now: number) => void
  /** Called every `progressEveryEvents` processed events. */
  readonly onProgress?: (progress: SimProgress) => void
  /** Default 2^20. */
  readonly progressEveryEvents?: number
  /** Reads a node's table sizes, for the report's table fullness. */
  readonly tableStats?: (node: N) => TableStats
  /** Bound on pending events (default 2^24). */
  readonly maxEvents?: number
  /** Bound on lookup records (default 2^24). */
  readonly maxLookups?: number
  /** Bound on lookups whose path delay is followed at once (default 2^20). */
  readonly maxTrackedFlows?: number
  /**
   * Run as one of two shards of a simulation split across threads (see shard/link.ts): this
   * simulator makes and runs only the nodes it owns, and hands messages for the others to the
   * link. Loss, duplication, jitter, partitions and churn are not supported in a shard.
   */
  readonly shard?: SimShard
}

/** What a shard's simulator needs to know of the split: see {@link SimulatorOptions.shard}. */
export interface SimShard {
  /** This shard's end of the shared memory. */
  readonly link: ShardLink
  /** The shard (0 or 1) whose node sits at topology position `position`. */
  ownerOf(position: number): number
  /** The least latency, in ms, from `position` to any position of the other shard. */
  horizonOf(position: number): number
}

/**
 * A node's handle as the simulator makes it: its id and address, frozen. (It also keeps its
 * encoded size under a private symbol, for counting bytes; nothing that enumerates or compares
 * handles sees it.)
 */
export interface SimHandle {
  readonly id: Id
  readonly address: string
}

/** Options for {@link Simulator.addNode}. */
export interface AddNodeOptions {
  /** The node's id (default: drawn from the seed). Must not be another node's. */
  readonly id?: Id
  /** Topology position (default: the next free one). Positions may be shared when given. */
  readonly position?: number
}

/** A churn session length distribution, in virtual milliseconds. */
export type SessionDistribution =
  | { readonly kind: 'exponential'; readonly meanMs: number }
  /** Heavy-tailed; `shape` > 1 so that the mean exists. */
  | { readonly kind: 'pareto'; readonly meanMs: number; readonly shape: number }

/**
 * What happens to the nodes already alive when churn starts (see {@link ChurnOptions.existingNodes}):
 * - `residual` (the default): each gets the remaining life of a session in progress, drawn from the
 *   session distribution's equilibrium residual law, so churn is in steady state from the start.
 *   For exponential sessions that is a fresh exponential draw of the same mean (memorylessness). For
 *   Pareto sessions (scale x_m, shape α, mean μ = α·x_m/(α − 1)) it is the residual R with
 *   P(R > r) = 1 − r/μ for r ≤ x_m and (x_m/r)^(α−1)/α beyond: longer than a fresh session, and with
 *   an infinite mean when α ≤ 2 (the inspection paradox: a node seen alive is likely a long-lived one).
 * - `session`: each gets a whole fresh session, as if every one of them had just arrived.
 * - `stay`: none gets a session; they stay until crashed by hand, and the population grows by about
 *   as many as were alive when churn started (the only behaviour before this option; it is not a
 *   steady state).
 */
export type ExistingNodesPolicy = 'residual' | 'session' | 'stay'

/** Options for {@link Simulator.startChurn}. */
export interface ChurnOptions {
  /** Poisson arrival rate. For a steady size N, use N / (mean session in seconds). */
  readonly arrivalsPerSec: number
  /** How long each arrival stays. */
  readonly session: SessionDistribution
  /**
   * Sessions for the nodes alive at `startChurn` that have none yet (default `residual`). With the
   * default and `arrivalsPerSec` = N / mean session, an overlay of N nodes stays near N (it is an
   * M/G/∞ queue: Poisson-distributed about N, standard deviation about √N).
   */
  readonly existingNodes?: ExistingNodesPolicy
  /** How an arrival picks its bootstrap: a uniformly random live (active) node. */
  readonly bootstrap?: 'random-live'
  /**
   * Fraction of sessions that end in a graceful leave rather than a crash (default 0). A session
   * that ends before its node is active ends in a crash whatever was drawn.
   */
  readonly leaveFraction?: number
}

/** Churn counters. */
export interface ChurnStats {
  /** Nodes added by churn. */
  readonly arrivals: number
  /** Nodes alive at `startChurn` that were given a session (see `ChurnOptions.existingNodes`). */
  readonly existing: number
  /** Arrivals skipped because no node was active to bootstrap from. */
  readonly skipped: number
  /** Sessions ended by a crash (of arrivals and of existing nodes alike). */
  readonly crashes: number
  /** Sessions ended by a graceful leave. */
  readonly leaves: number
}

/** The simulation's summary; see {@link Simulator.report}. */
export interface SimReport {
  readonly seed: string
  readonly simulatedMs: number
  /** Events processed: messages (delivered or vanished), node wake-ups, and commands. */
  readonly events: number
  readonly traceHash: string
  readonly nodes: {
    readonly added: number
    readonly alive: number
    /** Alive and active: the oracle's live set. */
    readonly live: number
  }
  readonly lookups: LookupSummary
  /** Hops of first deliveries of lookups. */
  readonly hops: HopsReport
  /** Relative delay penalty of first deliveries away from the origin. */
  readonly rdp: Distribution
  readonly messages: MessageReport
  /** Join-class messages per node told to join; null when none was. */
  readonly joinMessagesPerNode: number | null
  /** Maintenance-class messages per alive node per second, over the window (see `beginWindow`). */
  readonly maintenancePerNodePerSec: number
  /** Mean table sizes over live nodes, when a `tableStats` hook was given. */
  readonly table: { readonly meanLeafSet: number; readonly meanRoutingTable: number } | null
  readonly churn: ChurnStats
  /** Node events by type. */
  readonly nodeEvents: Record<string, number>
  readonly failures: number
}

/** A node or observer threw: the run is not trustworthy past this point. Replay with `seed`. */
export class SimulationError extends Error {
  readonly seed: string
  /** Virtual time of the failure. */
  readonly time: number
  /** The node being driven, or -1. */
  readonly node: number
  /** What the simulator was doing. */
  readonly during: string

  constructor(seed: string, time: number, node: number, during: string, cause: unknown) {
    const what = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)
    super(
      `simulation failed (seed ${JSON.stringify(seed)}, t=${time} ms, ${node >= 0 ? `node ${node}` : 'no node'}, during ${during}): ${what}`,
      { cause },
    )
    this.name = 'SimulationError'
    this.seed = seed
    this.time = time
    this.node = node
    this.during = during
  }
}

// ---------------------------------------------------------------------------------------------------
// Internals

/** Queue event kinds. Message kinds are MESSAGE_BASE + wire type code. */
const K_TIMER = 1
const K_COMMAND = 2
const K_ARRIVAL = 3
const K_DEPART = 4
const K_MESSAGE_BASE = 32
/** Trace-only kinds. */
const H_VANISH = 5
const H_START = 10
const H_JOIN = 11
const H_ROUTE = 12
const H_CRASH = 13
const H_RESTART = 14
const H_LEAVE = 15
const H_ADD = 16
const H_PARTITION = 17
const H_HEAL = 18
const H_NETWORK = 19
const H_COMMAND = 20

const ST_ALIVE = 1
const ST_CRASHED = 2
const ST_CLOSED = 3
/** A node that lives in the other shard (see SimulatorOptions.shard). */
const ST_REMOTE = 4
/** Seqs of events handed over by the other shard start here, above any seq of this shard's own. */
const INJECTED_SEQ_BASE = 2 ** 52

const ROUTE_CODE = typeCode('route')
const EMPTY = new Uint8Array(0)
const MAX_FAILURES = 64
/** Timeouts in a row at one instant after which a node is declared to be spinning. */
const MAX_SPIN = 10_000

const F64 = new Float64Array(1)
const U32 = new Uint32Array(F64.buffer)
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
const LO = LITTLE_ENDIAN ? 0 : 1
const HI = LITTLE_ENDIAN ? 1 : 0

/** Parses `sim:<n>` to n, or -1 for anything else. */
function parseSimAddress(a: string): number {
  const len = a.length
  if (len < 5 || len > 14) return -1
  if (a.charCodeAt(0) !== 115 || a.charCodeAt(1) !== 105 || a.charCodeAt(2) !== 109 || a.charCodeAt(3) !== 58)
    return -1
  if (len > 5 && a.charCodeAt(4) === 48) return -1
  let n = 0
  for (let k = 4; k < len; k++) {
    const c = a.charCodeAt(k) - 48
    if (c < 0 || c > 9) return -1
    n = n * 10 + c
  }
  return n
}

/**
 * One lookup's path delays, for its RDP. Found by the msgId of its messages (numbers: cheaper per
 * hop than a key built from the origin and the routed key); a retry's msgId finds the same flow.
 */
interface Flow {
  readonly lookup: number
  readonly origin: number
  readonly originAddress: string
  readonly key: Id
  /** The msgIds this flow is found by: the lookup's, then its retries'. */
  readonly msgIds: number[]
  readonly at: number[]
  readonly delay: number[]
}

interface Block {
  readonly a: Uint8Array
  readonly b: Uint8Array
  readonly symmetric: boolean
}

function checkRate(name: string, v: number | undefined): number {
  const x = v ?? 0
  if (!(x >= 0 && x <= 1)) throw new ConfigError(`${name} must be in [0, 1], got ${v}`)
  return x
}

function isTopology(t: TopologySpec): t is Topology {
  return typeof (t as Topology).latencyMs === 'function'
}

// ---------------------------------------------------------------------------------------------------

/**
 * A deterministic discrete-event simulator of an overlay of nodes made by a factory. Make one per
 * run; add nodes, issue commands, and run it forward in virtual time. Everything it reports is a
 * function of the seed and the commands issued.
 */
export class Simulator<N extends SimNode = SimNode> {
  /** The seed this run was made from. */
  readonly seed: string
  /** The latency model. */
  readonly topology: Topology
  /** The global truth: live membership, closest nodes, leaf sets, lookup verdicts. */
  readonly oracle: Oracle
  /** Raw counters; `report()` summarises them. */
  readonly metrics = new SimMetrics()

  readonly #createNode: (ctx: NodeContext) => N
  readonly #onEvent: ((index: number, event: EventOf<N>, now: number) => void) | undefined
  readonly #onProgress: ((progress: SimProgress) => void) | undefined
  readonly #progressEvery: number
  readonly #tableStats: ((node: N) => TableStats) | undefined
  readonly #encode: boolean
  readonly #codec: CodecOptions
  readonly #queue: EventQueue
  readonly #idRng: Rng
  readonly #nodeRng: Rng
  readonly #netRng: Rng
  readonly #churnRng: Rng
  readonly #existingRng: Rng
  #now = 0
  #events = 0
  #running = false
  #hash = 0x811c9dc5 | 0
  // Network.
  #loss = 0
  #duplicate = 0
  #jitterMs = 0
  #blocks: Block[] = []
  // Nodes.
  #count = 0
  #cap = 0
  #alive = 0
  #nodes: (N | undefined)[] = []
  #ids: Id[] = []
  #addresses: string[] = []
  #handles: SimHandle[] = []
  #status = new Uint8Array(0)
  #position = new Int32Array(0)
  #incarnation = new Int32Array(0)
  readonly #timers = new TimerHeap()
  #active = new Uint8Array(0)
  /** Set when churn ends a node's session: its position is freed for reuse once it is down. */
  #retireOnDown = new Uint8Array(0)
  #retired = new Uint8Array(0)
  /** Set when the node's current incarnation has a session end queued (cleared by stopChurn). */
  #inSession = new Uint8Array(0)
  readonly #idIndex = new Map<string, number>()
  #nextPosition = 0
  readonly #freePositions: number[] = []
  // Failure context.
  #cur = -1
  #during = 'setup'
  #spinNode = -1
  #spinTime = Number.NaN
  #spinCount = 0
  readonly #failures: SimulationError[] = []
  // Flows, events, churn.
  readonly #flows = new Map<number, Flow>()
  // Sharding (all unused without a shard).
  readonly #shard: SimShard | undefined
  #remote = new Uint8Array(0)
  #nodeHash = new Int32Array(0)
  #horizon = new Float64Array(0)
  #injected = 0
  /** Remote activity not yet applied to the oracle: (time, node, active) triples in arrival order. */
  readonly #pendingActive: number[] = []
  /** Per lookup, 1 once delivered at either shard (for `runSharded`'s `untilDelivered`). */
  #deliveredFlag = new Uint8Array(0)
  #deliveredUnique = 0
  /** Lookup numbers of route messages handed over by the other shard, by msgId, until they arrive. */
  readonly #unbound = new Map<number, number>()
  #lastActivity = Number.NEGATIVE_INFINITY
  readonly #sink: ShardSink = {
    injectMessage: (time, to, from, code, aux, lookup, message) =>
      this.#inject(time, to, from, code, aux, lookup, message),
    remoteActive: (time, node, active) => {
      this.#pendingActive.push(time, node, active ? 1 : 0)
    },
    remoteDelivered: (_time, lookup) => this.#markDelivered(lookup),
  }
  /** The node whose outbox `#sendOut` is draining. */
  #drainFrom = -1
  /** `#transmit` for the node being drained, made once: the callback a node's `drainTransmits` takes. */
  readonly #sendOut = (address: string, message: Message): void =>
    this.#transmit(this.#drainFrom, address, message)
  readonly #maxFlows: number
  /**
   * Node events counted by type, in order of first appearance: two arrays scanned by identity (a
   * handful of types, whose names are literals), cheaper per event than a Map's two lookups.
   */
  readonly #eventTypes: string[] = []
  readonly #eventCounts: number[] = []
  #churn: ChurnOptions | undefined
  /** Bumped by startChurn and stopChurn: older arrival events are void. */
  #arrivalGen = 0
  /** Bumped by stopChurn: older session ends are void. */
  #sessionGen = 0
  #churnArrivals = 0
  #churnExisting = 0
  #churnSkipped = 0
  #churnCrashes = 0
  #churnLeaves = 0

  /** Makes a simulator at virtual time 0 with no nodes. Throws ConfigError for bad options. */
  constructor(options: SimulatorOptions<N>) {
    if (typeof options.seed !== 'string') throw new ConfigError('seed must be a string')
    this.seed = options.seed
    const root = createRng(options.seed)
    this.#idRng = root.derive('ids')
    this.#nodeRng = root.derive('nodes')
    this.#netRng = root.derive('network')
    this.#churnRng = root.derive('churn')
    this.#existingRng = root.derive('churn-existing')
    const t = options.topology
    this.topology = isTopology(t) ? t : createTopology(t.kind, t.size, root.derive('topology'), t.options)
    this.#createNode = options.createNode
    this.#onEvent = options.onEvent
    this.#onProgress = options.onProgress
    this.#progressEvery = options.progressEveryEvents ?? 1 << 20
    if (!Number.isInteger(this.#progressEvery) || this.#progressEvery < 1)
      throw new ConfigError(`progressEveryEvents must be ≥ 1, got ${options.progressEveryEvents}`)
    this.#tableStats = options.tableStats
    this.#encode = options.encode ?? false
    this.#codec = options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }
    this.#queue = new EventQueue(options.maxEvents)
    this.#maxFlows = options.maxTrackedFlows ?? 1 << 20
    if (!Number.isInteger(this.#maxFlows) || this.#maxFlows < 0)
      throw new ConfigError(`maxTrackedFlows must be an integer ≥ 0, got ${options.maxTrackedFlows}`)
    this.oracle = new Oracle(
      (i) => this.#ids[i]!,
      options.maxLookups === undefined ? {} : { maxLookups: options.maxLookups },
    )
    this.#shard = options.shard
    this.#setNetwork(options.network ?? {})
    this.#grow(64)
  }

  // -------------------------------------------------------------------------------------------
  // Getters

  /** Current virtual time, in milliseconds. */
  get now(): number {
    return this.#now
  }

  /** Nodes ever added; indexes run from 0 to size - 1. */
  get size(): number {
    return this.#count
  }

  /** Nodes alive (added or restarted, and not crashed or closed). */
  get aliveCount(): number {
    return this.#alive
  }

  /** Events taken off the queue so far. */
  get eventsProcessed(): number {
    return this.#events
  }

  /** Events pending: queued messages and commands, and the nodes' wake-ups. */
  get pending(): number {
    return this.#queue.size + this.#timers.size
  }

  /** Failures recorded so far (at most 64), oldest first. */
  get failures(): readonly SimulationError[] {
    return this.#failures
  }

  /** Node `index`'s current instance, or undefined when it is crashed or closed. Stale after restart. */
  node(index: number): N | undefined {
    return this.#nodes[index]
  }

  /** Node `index`'s id. */
  idOf(index: number): Id {
    this.#checkIndex(index)
    return this.#ids[index]!
  }

  /** Node `index`'s address, `sim:<index>`. */
  addressOf(index: number): string {
    this.#checkIndex(index)
    return this.#addresses[index]!
  }

  /** The index named by a `sim:<index>` address, or undefined. */
  /** The handle of node `index`, as the simulator made it (every message names nodes by these). */
  handleOf(index: number): SimHandle {
    this.#checkIndex(index)
    return this.#handles[index]!
  }

  indexOfAddress(address: string): number | undefined {
    const i = parseSimAddress(address)
    return i >= 0 && i < this.#count ? i : undefined
  }

  /** The index of the node with `id`, or undefined. */
  indexOfId(id: Id): number | undefined {
    return this.#idIndex.get(id.toHex())
  }

  /** True when node `index` is alive (its instance receives messages and timers). */
  isAlive(index: number): boolean {
    return this.#status[index] === ST_ALIVE
  }

  /** Node `index`'s topology position. */
  positionOf(index: number): number {
    this.#checkIndex(index)
    return this.#position[index]!
  }

  /** One-way link latency between nodes `a` and `b`, without jitter. */
  latencyMs(a: number, b: number): number {
    this.#checkIndex(a)
    this.#checkIndex(b)
    return this.topology.latencyMs(this.#position[a]!, this.#position[b]!)
  }

  /**
   * The run's trace hash so far, 8 hex digits: 32-bit FNV-1a over every processed input. Compare
   * two runs from one seed; any divergence changes it.
   */
  traceHash(): string {
    let h = this.#hash
    // A shard's: the order-free part, then each of its own nodes' hashes in index order.
    if (this.#shard !== undefined)
      for (let i = 0; i < this.#count; i++) if (this.#remote[i] === 0) h = mix(h, this.#nodeHash[i]!)
    return (h >>> 0).toString(16).padStart(8, '0')
  }

  // -------------------------------------------------------------------------------------------
  // Commands. Each runs at the current virtual time; `at` schedules one for later.

  /**
   * Adds a node, made by the factory, and returns its index. It starts `idle`: call `start` (the
   * first node) or `join`. Throws ConfigError for a duplicate id or when no position is free.
   */
  addNode(options: AddNodeOptions = {}): number {
    const i = this.#place(options)
    this.#spawn(i)
    return i
  }

  /**
   * Adds `count` nodes with drawn ids and the next free positions, as `count` calls of
   * {@link addNode} would (the same ids, positions and indices), and returns the first index. The
   * nodes' ids, addresses and handles are all made before any node is: a large simulation then
   * finds them together in memory rather than each among its own node's tables, and reads them
   * from the caches more often (every message names a few nodes).
   */
  addNodes(count: number): number {
    if (!Number.isInteger(count) || count < 0)
      throw new ConfigError(`count must be an integer ≥ 0, got ${count}`)
    // All or none: positions are checked before any node is placed.
    const free = this.topology.size - this.#nextPosition + this.#freePositions.length
    if (count > free)
      throw new ConfigError(
        `${count} nodes do not fit: ${free} of the topology's ${this.topology.size} positions are free`,
      )
    const first = this.#count
    for (let k = 0; k < count; k++) this.#place({})
    for (let k = 0; k < count; k++) this.#spawn(first + k)
    return first
  }

  /** Gives a new node its index, id, address, handle and position; `#spawn` then makes it. */
  #place(options: AddNodeOptions): number {
    let id = options.id
    if (id !== undefined) {
      if (this.#idIndex.has(id.toHex()))
        throw new ConfigError(`id ${id.toHex()} is already node ${this.#idIndex.get(id.toHex())}`)
    } else {
      do id = randomId(this.#idRng)
      while (this.#idIndex.has(id.toHex()))
    }
    let position = options.position
    if (position === undefined) position = this.#allocatePosition()
    else if (!Number.isInteger(position) || position < 0 || position >= this.topology.size)
      throw new ConfigError(`position ${position} is outside the topology's ${this.topology.size} positions`)
    const i = this.#count
    if (i === this.#cap) this.#grow(this.#cap * 2)
    this.#count++
    const address = `sim:${i}`
    this.#ids[i] = id
    this.#addresses[i] = address
    this.#handles[i] = sizedHandle(id, address)
    this.#position[i] = position
    const shard = this.#shard
    if (shard !== undefined) {
      this.#remote[i] = shard.ownerOf(position) === shard.link.self ? 0 : 1
      this.#horizon[i] = shard.horizonOf(position)
    }
    this.#idIndex.set(id.toHex(), i)
    this.#trace(H_ADD, i, position, 0)
    return i
  }

  /** Starts node `index` as the first node of a new overlay. */
  start(index: number): void {
    const node = this.#requireAlive(index)
    this.#trace(H_START, index, -1, 0)
    this.#cur = index
    this.#during = 'start'
    try {
      node.start(this.#now)
      this.#afterInput(index, node)
    } catch (e) {
      throw this.#failure(e)
    }
  }

  /** Tells node `index` to join through the given bootstrap nodes. */
  join(index: number, bootstrap: readonly number[]): void {
    const node = this.#requireAlive(index)
    const addresses = bootstrap.map((b) => this.addressOf(b))
    this.#trace(H_JOIN, index, bootstrap[0] ?? -1, bootstrap.length)
    this.metrics.joins++
    this.#cur = index
    this.#during = 'join'
    try {
      node.join(this.#now, addresses)
      this.#afterInput(index, node)
    } catch (e) {
      throw this.#failure(e)
    }
  }

  /**
   * Routes `key` from node `from` and returns the origin's msgId. The oracle records it as a lookup
   * and judges its deliveries; its hops and RDP go to the metrics. With `retryOf`, the message is
   * lookup `retryOf` sent again by its origin (a new msgId for the same lookup; see `Oracle.retry`).
   */
  route(from: number, key: Id, app = 'sim', payload: Uint8Array = EMPTY, retryOf?: number): number {
    const node = this.#requireAlive(from)
    this.#trace(H_ROUTE, from, -1, key.w3)
    this.#cur = from
    this.#during = 'route'
    try {
      const msgId = node.route(this.#now, key, app, payload)
      if (retryOf !== undefined) {
        this.oracle.retry(retryOf, from, msgId)
        // The retry's hops extend the first attempt's flow.
        const flow = this.#flows.get(this.oracle.lookup(retryOf).msgId)
        if (flow !== undefined && flow.lookup === retryOf && !this.#flows.has(msgId)) {
          flow.msgIds.push(msgId)
          this.#trackFlow(msgId, flow)
        }
        this.#afterInput(from, node)
        return msgId
      }
      const lookup = this.oracle.issue(from, msgId, key, this.#now)
      if (this.#maxFlows > 0 && !this.#flows.has(msgId)) {
        const address = this.#addresses[from]!
        this.#trackFlow(msgId, {
          lookup,
          origin: from,
          originAddress: address,
          key,
          msgIds: [msgId],
          at: [],
          delay: [],
        })
      }
      this.#afterInput(from, node)
      return msgId
    } catch (e) {
      throw this.#failure(e)
    }
  }

  /**
   * Runs an application command on node `index` at the current time (for example a pub/sub
   * `publish` on a node that hosts one), then drains and re-arms the node as after any input.
   * Returns the command's result. Throws `ConfigError` if the node is not alive.
   */
  command<T>(index: number, run: (node: N, now: number) => T): T {
    const node = this.#requireAlive(index)
    this.#trace(H_COMMAND, index, -1, 0)
    this.#cur = index
    this.#during = 'command'
    try {
      const out = run(node, this.#now)
      this.#afterInput(index, node)
      return out
    } catch (e) {
      throw this.#failure(e)
    }
  }

  /** Tells node `index` to leave gracefully. It is retired once it reports `closed`. */
  leave(index: number): void {
    const node = this.#requireAlive(index)
    this.#trace(H_LEAVE, index, -1, 0)
    this.#cur = index
    this.#during = 'leave'
    try {
      node.leave(this.#now)
      this.#afterInput(index, node)
    } catch (e) {
      throw this.#failure(e)
    }
  }

  /**
   * Crashes node `index` without notice: it receives nothing more, its timer is dead, and it is never
   * polled again. Its peers find out only through the protocol.
   */
  crash(index: number): void {
    this.#requireAlive(index)
    this.#trace(H_CRASH, index, -1, 0)
    this.#down(index, ST_CRASHED)
  }

  /**
   * Brings a crashed or closed node back as a fresh instance with the same id and address, `idle`:
   * call `join` next. Throws ConfigError if it is alive or its position went to another node.
   */
  restart(index: number): void {
    this.#checkIndex(index)
    if (this.#status[index] === ST_ALIVE) throw new ConfigError(`node ${index} is alive; crash it first`)
    if (this.#retired[index] === 1)
      throw new ConfigError(`node ${index} ended its churn session; its position is free for reuse`)
    this.#incarnation[index]!++
    this.#trace(H_RESTART, index, -1, this.#incarnation[index]!)
    this.#spawn(index)
  }

  /**
   * Cuts the network between two groups of node indexes until `heal()`. Symmetric by default;
   * `{ symmetric: false }` blocks only A→B. Checked at send time; messages in flight still arrive.
   */
  partition(
    groupA: readonly number[],
    groupB: readonly number[],
    options: { readonly symmetric?: boolean } = {},
  ): void {
    const a = new Uint8Array(this.#count)
    const b = new Uint8Array(this.#count)
    for (const i of groupA) {
      this.#checkIndex(i)
      a[i] = 1
    }
    for (const i of groupB) {
      this.#checkIndex(i)
      b[i] = 1
    }
    const symmetric = options.symmetric ?? true
    this.#blocks.push({ a, b, symmetric })
    this.#trace(H_PARTITION, groupA.length, groupB.length, symmetric ? 1 : 0)
  }

  /** Removes every partition. Loss, duplication and jitter stay: see `setNetwork`. */
  heal(): void {
    this.#blocks = []
    this.#trace(H_HEAL, -1, -1, 0)
  }

  /** Replaces the loss, duplication and jitter settings (omitted fields become 0). */
  setNetwork(options: NetworkOptions): void {
    this.#setNetwork(options)
    this.#trace(H_NETWORK, -1, -1, 0)
  }

  /** The current network settings. */
  get network(): Required<NetworkOptions> {
    return { loss: this.#loss, duplicate: this.#duplicate, jitterMs: this.#jitterMs }
  }

  /**
   * Starts churn: Poisson arrivals at `arrivalsPerSec`, each a new node joining through a random live
   * node and staying for a session drawn from `session`, then crashing (or leaving, for
   * `leaveFraction` of them). Every node alive now (joining or active) that has no session yet gets
   * one too, by `existingNodes` (default: the residual of a session in progress), and ends it the
   * same way; so with `arrivalsPerSec` = N / mean session the overlay stays near its size N.
   * Replaces the arrival process of any churn already running; sessions already scheduled still end
   * and are not drawn again. A node whose session ended frees its topology position, and cannot be
   * restarted. When no node is active to join through, an arrival is skipped (or, with no node alive
   * at all, starts a new overlay). Call it after the overlay has formed; call `stopChurn` before a
   * healed phase.
   */
  startChurn(options: ChurnOptions): void {
    if (!(options.arrivalsPerSec > 0 && Number.isFinite(options.arrivalsPerSec)))
      throw new ConfigError(`arrivalsPerSec must be > 0, got ${options.arrivalsPerSec}`)
    const s = options.session
    if (!(s.meanMs > 0 && Number.isFinite(s.meanMs)))
      throw new ConfigError(`the session mean must be > 0 ms, got ${s.meanMs}`)
    if (s.kind === 'pareto' && !(s.shape > 1))
      throw new ConfigError(`a Pareto session needs shape > 1 for a finite mean, got ${s.shape}`)
    if (s.kind !== 'exponential' && s.kind !== 'pareto')
      throw new ConfigError(`unknown session distribution ${JSON.stringify((s as { kind: string }).kind)}`)
    checkRate('leaveFraction', options.leaveFraction)
    if ((options.bootstrap ?? 'random-live') !== 'random-live')
      throw new ConfigError(`unknown bootstrap policy ${JSON.stringify(options.bootstrap)}`)
    const existing = options.existingNodes ?? 'residual'
    if (existing !== 'residual' && existing !== 'session' && existing !== 'stay')
      throw new ConfigError(`unknown existingNodes policy ${JSON.stringify(existing)}`)
    this.#churn = options
    if (existing !== 'stay') {
      // In index order, from a stream of their own: the arrivals see the same numbers either way.
      const rng = this.#existingRng
      const leaveFraction = options.leaveFraction ?? 0
      for (let i = 0; i < this.#count; i++) {
        if (this.#status[i] !== ST_ALIVE || this.#inSession[i] === 1) continue
        const leave = rng.float() < leaveFraction
        const u = rng.float()
        const length = existing === 'residual' ? residualSession(s, u) : drawSession(s, u)
        this.#churnExisting++
        this.#scheduleDepart(i, this.#now + length, leave)
      }
    }
    const gen = ++this.#arrivalGen
    this.#queue.push(this.#now + this.#interarrival(), K_ARRIVAL, -1, -1, gen, undefined)
  }

  /**
   * Stops churn: no more arrivals, and sessions not yet ended no longer end. Call it before a healed
   * phase in which the overlay must converge.
   */
  stopChurn(): void {
    this.#churn = undefined
    this.#arrivalGen++
    this.#sessionGen++
    this.#inSession.fill(0)
  }

  /**
   * Runs `action` at virtual time `time` (≥ now), after the events already queued for that time.
   * `node` names the one node the action acts on, if it acts on one: a shard's `runSharded` with
   * `freeCommands` then runs it as it would an event of that node.
   */
  at(time: number, action: (sim: this) => void, node = -1): void {
    if (!(time >= this.#now)) throw new ConfigError(`cannot schedule at ${time}, before now (${this.#now})`)
    this.#queue.push(time, K_COMMAND, node, -1, 0, action)
  }

  // -------------------------------------------------------------------------------------------
  // Running

  /** Processes every event up to and including `time`, then sets the clock to `time`. */
  runUntil(time: number): void
  /**
   * Processes events until `predicate` holds (checked before the first and after every event) or the
   * next event is past `maxTime`. Returns whether the predicate held; if not, the clock ends at
   * `maxTime`.
   */
  runUntil(predicate: (sim: this) => boolean, maxTime: number): boolean
  runUntil(arg: number | ((sim: this) => boolean), maxTime?: number): boolean | undefined {
    if (typeof arg === 'function') {
      const limit = this.#checkTime(maxTime ?? Number.NaN)
      if (arg(this)) return true
      const ok = this.#run(limit, arg)
      if (!ok) this.#advance(limit)
      return ok
    }
    const limit = this.#checkTime(arg)
    this.#run(limit, undefined)
    this.#advance(limit)
    return undefined
  }

  /** Runs for `ms` of virtual time from now. */
  runFor(ms: number): void {
    if (!(ms >= 0)) throw new ConfigError(`runFor needs ms ≥ 0, got ${ms}`)
    this.runUntil(this.#now + ms)
  }

  /**
   * Runs until no event is pending or the next is past `maxTime`. Returns true when the queue
   * emptied (the clock then stays at the last event), false when `maxTime` came first.
   */
  runUntilIdle(maxTime: number): boolean {
    const limit = this.#checkTime(maxTime)
    this.#run(limit, undefined)
    if (this.#queue.size === 0 && this.#timers.size === 0) return true
    this.#advance(limit)
    return false
  }

  // -------------------------------------------------------------------------------------------
  // Reporting

  /** Opens a new window for `maintenancePerNodePerSec`, at the current time. */
  beginWindow(): void {
    this.metrics.beginWindow(this.#now)
  }

  /**
   * The run's summary so far. It walks the live nodes (for `tableStats`) and sorts the RDP samples,
   * so call it at checkpoints, not per event. Stale as soon as the run goes on.
   */
  report(): SimReport {
    let table: SimReport['table'] = null
    if (this.#tableStats !== undefined) {
      let leaf = 0
      let rt = 0
      let n = 0
      for (const i of this.oracle.liveIndexes()) {
        const node = this.#nodes[i]
        if (node === undefined) continue
        const s = this.#tableStats(node)
        leaf += s.leafSet
        rt += s.routingTable
        n++
      }
      table = { meanLeafSet: n === 0 ? 0 : leaf / n, meanRoutingTable: n === 0 ? 0 : rt / n }
    }
    const joinMessages = this.metrics.classTotal('join')
    return {
      seed: this.seed,
      simulatedMs: this.#now,
      events: this.#events,
      traceHash: this.traceHash(),
      nodes: { added: this.#count, alive: this.#alive, live: this.oracle.liveCount },
      lookups: this.oracle.summary(),
      hops: this.metrics.hops(),
      rdp: this.metrics.rdp(),
      messages: this.metrics.messages(this.#count),
      joinMessagesPerNode: this.metrics.joins === 0 ? null : joinMessages / this.metrics.joins,
      maintenancePerNodePerSec: this.metrics.maintenancePerNodePerSec(this.#now),
      table,
      churn: this.churnStats(),
      nodeEvents: Object.fromEntries(this.#eventTypes.map((t, k) => [t, this.#eventCounts[k]!])),
      failures: this.#failures.length,
    }
  }

  /** Churn counters so far; stale as soon as the run goes on. */
  churnStats(): ChurnStats {
    return {
      arrivals: this.#churnArrivals,
      existing: this.#churnExisting,
      skipped: this.#churnSkipped,
      crashes: this.#churnCrashes,
      leaves: this.#churnLeaves,
    }
  }

  // -------------------------------------------------------------------------------------------
  // Shards

  /**
   * Records lookup number `lookupCount` as issued at node `from` of the other shard, which routes
   * it: both shards then number lookups alike, and this one judges the deliveries it sees.
   */
  routeElsewhere(from: number, key: Id): number {
    if (this.#shard === undefined || this.#remote[from] !== 1)
      throw new ConfigError(`node ${from} is not a node of the other shard`)
    return this.oracle.issueElsewhere(from, key, this.#now)
  }

  /** Applies the other shard's changes of membership made before `before` to the oracle. */
  applyRemoteActivity(before: number = Number.POSITIVE_INFINITY): void {
    const p = this.#pendingActive
    let kept = 0
    for (let k = 0; k < p.length; k += 3) {
      if (p[k]! < before) {
        if (p[k]! > this.#lastActivity) this.#lastActivity = p[k]!
        if (p[k + 2] === 1) this.oracle.add(p[k + 1]!)
        else this.oracle.remove(p[k + 1]!)
      } else {
        p[kept++] = p[k]!
        p[kept++] = p[k + 1]!
        p[kept++] = p[k + 2]!
      }
    }
    p.length = kept
  }

  /** The latest time at which a node became active or stopped being, in either shard as applied here. */
  get lastActivity(): number {
    return this.#lastActivity
  }

  /** Lookups delivered at either shard so far, as far as this shard has heard. */
  get deliveredLookups(): number {
    return this.#deliveredUnique
  }

  /** True when node `index` lives in the other shard. */
  isRemote(index: number): boolean {
    return this.#remote[index] === 1
  }

  /**
   * Runs this shard's events up to `limit` (inclusive) in step with the other shard: an event runs
   * only once nothing the other shard may still do can reach its node earlier (shard/link.ts).
   * With `lockstep`, every event also waits until the other shard has run everything earlier, and
   * commands always do: use it while a predicate over both shards' state decides when to stop.
   * Returns true when `until` held after an event (checked also after reading the other shard's
   * records), false when the run reached `limit` with the other shard past it too.
   */
  runSharded(
    limit: number,
    options: {
      readonly lockstep?: boolean
      /** Commands run without waiting for the other shard (they must read nothing it changes). */
      readonly freeCommands?: boolean
      readonly until?: (sim: Simulator<N>) => boolean
    } = {},
  ): boolean {
    const shard = this.#shard
    if (shard === undefined) throw new ConfigError('runSharded needs a simulator made with a shard')
    if (this.#running)
      throw new ConfigError('the simulator is already running: call run* only from outside it')
    this.#running = true
    const link = shard.link
    const q = this.#queue
    const timers = this.#timers
    const horizon = this.#horizon
    const lockstep = options.lockstep === true
    const freeCommands = options.freeCommands === true
    const until = options.until
    const sink = this.#sink
    try {
      if (until?.(this)) return true
      for (;;) {
        if (link.drain(sink) > 0 && until?.(this)) return true
        const qt = q.peekTime()
        const tt = timers.peekTime()
        const wake =
          tt < qt || (tt === qt && tt !== Number.POSITIVE_INFINITY && timers.peekSeq() < q.peekSeq())
        const t = wake ? tt : qt
        // Tell the other shard where this one stands (its bound on what this one may still do). Never
        // past `limit`: whoever runs this shard next may schedule commands from `limit` on.
        link.publish(t < limit ? t : limit)
        const atNode = wake || q.peekKind() >= K_MESSAGE_BASE
        // How far past the bound the event may lie: a node's horizon, none in lockstep or for a
        // command that waits for the other shard; a free command for a node of the other shard
        // touches no node here at all (`command`).
        const subject = atNode ? (wake ? timers.peekNode() : q.peekNode()) : freeCommands ? q.peekNode() : -1
        const command = !atNode && subject >= 0 && this.#remote[subject] === 1
        const slack = subject >= 0 && !lockstep ? horizon[subject]! : 0
        // The bound read last still holds (lowered by every message sent since); read a new one
        // only when it does not let the event run.
        if (t > limit || !(command || t < link.bound + slack || (slack === 0 && t <= link.bound))) {
          const bound = link.lowerBound()
          // What the other shard sent before the clock just read must be queued before anything runs.
          if (link.drain(sink) > 0) {
            if (until?.(this)) return true
            continue
          }
          if (t > limit || !(command || t < bound + slack || (slack === 0 && t <= bound))) {
            // Done when nothing is left here up to `limit`, and the other shard has nothing left
            // before it (its clock stops at `limit`) nor anything of ours still to read.
            if (t > limit && bound >= limit) {
              this.#advance(limit)
              return false
            }
            link.pause()
            continue
          }
        }
        link.resume()
        // Both shards run every command; count each once, at shard 0.
        if (wake || link.self === 0 || q.peekKind() >= K_MESSAGE_BASE) this.#events++
        this.#runHead(wake, tt)
        // The clock published above stays true: nothing new here is earlier than the event run.
        if (until?.(this)) return true
      }
    } finally {
      this.#running = false
    }
  }

  #inject(
    time: number,
    to: number,
    from: number,
    code: number,
    aux: number,
    lookup: number,
    message: Message,
  ): void {
    if (lookup >= 0 && message.type === 'route') {
      const origin = parseSimAddress(message.origin.address)
      // Bound when it arrives: by then this shard has numbered the lookup (its command is earlier).
      this.#unbound.set(message.msgId, lookup)
      if (this.#maxFlows > 0 && !this.#flows.has(message.msgId))
        this.#trackFlow(message.msgId, {
          lookup,
          origin,
          originAddress: message.origin.address,
          key: message.key,
          msgIds: [message.msgId],
          at: [],
          delay: [],
        })
    }
    this.#queue.pushWithSeq(
      time,
      K_MESSAGE_BASE + code,
      to,
      from,
      aux,
      message,
      INJECTED_SEQ_BASE + this.#injected++,
    )
  }

  #markDelivered(k: number): void {
    if (k >= this.#deliveredFlag.length)
      this.#deliveredFlag = grown(this.#deliveredFlag, Math.max(k + 1, this.#deliveredFlag.length * 2, 64))
    if (this.#deliveredFlag[k] === 1) return
    this.#deliveredFlag[k] = 1
    this.#deliveredUnique++
  }

  // -------------------------------------------------------------------------------------------
  // The loop

  #run(limit: number, predicate: ((sim: this) => boolean) | undefined): boolean {
    if (this.#running)
      throw new ConfigError('the simulator is already running: call run* only from outside it')
    this.#running = true
    const q = this.#queue
    const timers = this.#timers
    try {
      for (;;) {
        // The earlier of the queue's head and the next wake-up, by (time, seq).
        const qt = q.peekTime()
        const tt = timers.peekTime()
        const wake =
          tt < qt || (tt === qt && tt !== Number.POSITIVE_INFINITY && timers.peekSeq() < q.peekSeq())
        if ((wake ? tt : qt) > limit || (!wake && q.size === 0)) break
        this.#events++
        this.#runHead(wake, tt)
        if (predicate?.(this)) return true
      }
      return false
    } finally {
      this.#running = false
    }
  }

  /** Runs the earliest event: the timer heap's head at `tt` when `wake`, else the queue's. */
  #runHead(wake: boolean, tt: number): void {
    const q = this.#queue
    const timers = this.#timers
    if (wake) {
      const i = timers.peekNode()
      timers.pop()
      this.#now = tt
      try {
        this.#fire(i)
      } catch (e) {
        throw this.#failure(e)
      }
    } else {
      q.pop()
      this.#now = q.topTime
      try {
        this.#dispatch(q)
      } catch (e) {
        throw this.#failure(e)
      }
    }
    if (this.#onProgress !== undefined && this.#events % this.#progressEvery === 0) {
      this.#onProgress({
        now: this.#now,
        events: this.#events,
        pending: q.size + timers.size,
        alive: this.#alive,
        live: this.oracle.liveCount,
      })
    }
  }

  #dispatch(q: EventQueue): void {
    const kind = q.topKind
    if (kind >= K_MESSAGE_BASE) {
      this.#arrive(q.topNode, q.topFrom, kind - K_MESSAGE_BASE, q.topObj, q.topAux)
      return
    }
    switch (kind) {
      case K_COMMAND:
        this.#cur = -1
        this.#during = 'a scheduled command'
        ;(q.topObj as (sim: this) => void)(this)
        return
      case K_ARRIVAL:
        if (q.topAux === this.#arrivalGen) this.#arrival()
        return
      case K_DEPART:
        if (q.topAux === this.#sessionGen) this.#depart(q.topNode, q.topFrom)
        return
    }
  }

  #arrive(to: number, from: number, code: number, obj: unknown, pathDelay: number): void {
    const m = this.metrics
    if (this.#status[to] !== ST_ALIVE) {
      m.vanished[code]!++
      this.#trace(H_VANISH, to, from, code)
      return
    }
    const node = this.#nodes[to]!
    this.#cur = to
    this.#during = 'handleMessage'
    let message: Message
    if (this.#encode) {
      const r = decodeMessage(obj as Uint8Array, this.#codec)
      if (!r.ok) throw new Error(`the codec rejected a frame it encoded: ${r.error.code}: ${r.error.message}`)
      message = r.message
    } else message = obj as Message
    m.arrived[code]!++
    this.#trace(K_MESSAGE_BASE, to, from, code)
    if (this.#unbound.size > 0 && message.type === 'route') {
      const lookup = this.#unbound.get(message.msgId)
      if (lookup !== undefined) {
        this.#unbound.delete(message.msgId)
        this.oracle.bind(lookup, parseSimAddress(message.origin.address), message.msgId)
      }
    }
    if (!Number.isNaN(pathDelay)) this.#flowArrive(to, message, pathDelay)
    node.handleMessage(this.#now, message)
    this.#afterInput(to, node)
  }

  /** Node i's wake-up, just taken off the timer heap. */
  #fire(i: number): void {
    const now = this.#now
    if (this.#spinNode === i && this.#spinTime === now) {
      if (++this.#spinCount > MAX_SPIN)
        throw new Error(`node keeps its deadline at or before now: ${MAX_SPIN} timeouts at t=${now}`)
    } else {
      this.#spinNode = i
      this.#spinTime = now
      this.#spinCount = 0
    }
    const node = this.#nodes[i]!
    this.#cur = i
    this.#during = 'handleTimeout'
    this.#trace(K_TIMER, i, -1, 0)
    node.handleTimeout(now)
    this.#afterInput(i, node)
  }

  /** Steps 0-3 of the driver loop, after any input to node i. */
  #afterInput(i: number, node: N): void {
    this.#syncActive(i, node.state)
    const nodes = this.#nodes
    if (node.drainTransmits !== undefined) {
      this.#drainFrom = i
      node.drainTransmits(this.#sendOut)
    } else {
      let t: SimTransmit | undefined
      while (nodes[i] === node && (t = node.pollTransmit()) !== undefined) this.#transmit(i, t.to, t.message)
    }
    let e: EventOf<N> | undefined
    while (nodes[i] === node && (e = node.pollEvent() as EventOf<N> | undefined) !== undefined)
      this.#observe(i, e)
    if (nodes[i] !== node) return // crashed or restarted by an observer
    if (node.state === 'closed') {
      this.#down(i, ST_CLOSED)
      return
    }
    this.#arm(i, node.nextDeadline())
  }

  #syncActive(i: number, state: string): void {
    const active = state === 'active' ? 1 : 0
    if (this.#active[i] === active) return
    this.#active[i] = active
    if (active === 1) this.oracle.add(i)
    else this.oracle.remove(i)
    if (this.#shard !== undefined) {
      if (this.#now > this.#lastActivity) this.#lastActivity = this.#now
      this.#shard.link.sendActive(this.#now, i, active === 1, this.#sink)
    }
  }

  #arm(i: number, deadline: number | undefined): void {
    const timers = this.#timers
    if (deadline === undefined) {
      timers.delete(i)
      return
    }
    const at = deadline > this.#now ? deadline : this.#now
    if (timers.timeOf(i) === at) return // already set for then
    timers.set(i, at, this.#queue.takeSeq())
  }

  #transmit(from: number, address: string, message: Message): void {
    const code = typeCode(message.type)
    const m = this.metrics
    m.sent[code]!++
    let obj: unknown = message
    if (this.#encode) {
      const frame = encodeMessage(message, this.#codec)
      m.sentBytes[code]! += frame.length
      obj = frame
    } else m.sentBytes[code]! += messageSize(message)
    const to = parseSimAddress(address)
    if (to < 0 || to >= this.#count) {
      m.vanished[code]!++
      return
    }
    if (this.#blocks.length > 0 && this.#blocked(from, to)) {
      m.partitioned[code]!++
      return
    }
    const net = this.#netRng
    if (this.#loss > 0 && net.float() < this.#loss) {
      m.lost[code]!++
      return
    }
    const link = this.topology.latencyMs(this.#position[from]!, this.#position[to]!)
    const base = code === ROUTE_CODE && this.#flows.size > 0 ? this.#flowBase(from, message) : Number.NaN
    if (this.#remote[to] === 1) {
      const lookup = code === ROUTE_CODE ? (this.#flowOf(message)?.lookup ?? -1) : -1
      this.#shard!.link.sendMessage(
        this.#now + link,
        to,
        from,
        code,
        base + link,
        lookup,
        message,
        this.#sink,
      )
      return
    }
    const jitter = this.#jitterMs
    const q = this.#queue
    let d = jitter > 0 ? link + net.float() * jitter : link
    q.push(this.#now + d, K_MESSAGE_BASE + code, to, from, base + d, obj)
    if (this.#duplicate > 0 && net.float() < this.#duplicate) {
      m.duplicated[code]!++
      d = jitter > 0 ? link + net.float() * jitter : link
      q.push(this.#now + d, K_MESSAGE_BASE + code, to, from, base + d, obj)
    }
  }

  #blocked(from: number, to: number): boolean {
    for (const { a, b, symmetric } of this.#blocks) {
      if (a[from] === 1 && b[to] === 1) return true
      if (symmetric && b[from] === 1 && a[to] === 1) return true
    }
    return false
  }

  #observe(i: number, e: EventOf<N>): void {
    const type = e.type
    const types = this.#eventTypes
    let k = 0
    while (k < types.length && types[k] !== type) k++
    if (k === types.length) {
      types.push(type)
      this.#eventCounts.push(0)
    }
    this.#eventCounts[k]!++
    if (type === 'deliver') this.#delivered(i, e as unknown as SimDeliverEvent)
    else if (type === 'routeFailed') this.oracle.recordFailure(i, (e as unknown as SimRouteFailedEvent).msgId)
    if (this.#onEvent !== undefined) {
      const during = this.#during
      this.#during = 'onEvent'
      this.#onEvent(i, e, this.#now)
      this.#during = during
    }
  }

  #delivered(i: number, e: SimDeliverEvent): void {
    const originAddress = e.origin.address
    let origin = parseSimAddress(originAddress)
    if (origin >= this.#count) origin = -1
    const k = this.oracle.recordDelivery(i, this.#active[i] === 1, origin, e.msgId, e.key, this.#now, e.hops)
    if (k < 0) return
    if (this.#shard !== undefined) {
      this.#markDelivered(k)
      this.#shard.link.sendDelivered(this.#now, k, this.#sink)
    }
    this.metrics.recordHops(e.hops)
    const flow = this.#flows.get(e.msgId)
    if (flow === undefined || flow.lookup !== k) return
    for (const msgId of flow.msgIds) if (this.#flows.get(msgId) === flow) this.#flows.delete(msgId)
    if (i === origin) return
    const at = flow.at.indexOf(i)
    if (at < 0) return
    const direct = this.topology.latencyMs(this.#position[origin]!, this.#position[i]!)
    if (direct > 0) this.metrics.recordRdp(flow.delay[at]! / direct)
  }

  /** Adds `flow` under `msgId`, first dropping the oldest entry when the map is at its bound. */
  #trackFlow(msgId: number, flow: Flow): void {
    if (this.#flows.size >= this.#maxFlows) {
      const oldest = this.#flows.keys().next()
      if (oldest.done !== true) this.#flows.delete(oldest.value)
    }
    this.#flows.set(msgId, flow)
  }

  /** The flow a `route` message belongs to, or undefined. */
  #flowOf(message: Message): Flow | undefined {
    if (message.type !== 'route') return undefined
    const flow = this.#flows.get(message.msgId)
    // A msgId is 53 random bits, so another origin's message almost never shares it; check anyway.
    if (flow === undefined || flow.originAddress !== message.origin.address || !flow.key.equals(message.key))
      return undefined
    return flow
  }

  /** The path delay at `from` of the flow a `route` message belongs to; NaN when untracked. */
  #flowBase(from: number, message: Message): number {
    const flow = this.#flowOf(message)
    if (flow === undefined) return Number.NaN
    const at = flow.at.indexOf(from)
    if (at >= 0) return flow.delay[at]!
    return from === flow.origin ? 0 : Number.NaN
  }

  #flowArrive(to: number, message: Message, delay: number): void {
    const flow = this.#flowOf(message)
    if (flow === undefined) return
    const at = flow.at.indexOf(to)
    if (at >= 0) flow.delay[at] = delay
    else {
      flow.at.push(to)
      flow.delay.push(delay)
    }
  }

  // -------------------------------------------------------------------------------------------
  // Node lifecycle

  #spawn(i: number): void {
    if (this.#remote[i] === 1) {
      this.#status[i] = ST_REMOTE
      return
    }
    const id = this.#ids[i]!
    const address = this.#addresses[i]!
    const ctx: NodeContext = {
      id,
      address,
      handle: this.#handles[i]!,
      rng: this.#nodeRng.derive(`${i}.${this.#incarnation[i]!}`),
      now: this.#now,
      index: i,
    }
    this.#cur = i
    this.#during = 'createNode'
    let node: N
    try {
      node = this.#createNode(ctx)
    } catch (e) {
      throw this.#failure(e)
    }
    if (!node.id.equals(id) || node.address !== address)
      throw new ConfigError(`createNode must use the id and address it is given (node ${i}, ${address})`)
    this.#nodes[i] = node
    this.#status[i] = ST_ALIVE
    this.#timers.delete(i)
    this.#active[i] = 0
    this.#inSession[i] = 0
    this.#alive++
    this.metrics.setAlive(this.#now, this.#alive)
    try {
      this.#afterInput(i, node)
    } catch (e) {
      throw this.#failure(e)
    }
  }

  #down(i: number, status: number): void {
    this.#nodes[i] = undefined
    this.#status[i] = status
    this.#timers.delete(i)
    if (this.#active[i] === 1) {
      this.#active[i] = 0
      this.oracle.remove(i)
    }
    this.#alive--
    this.metrics.setAlive(this.#now, this.#alive)
    if (this.#retireOnDown[i] === 1 && this.#retired[i] === 0) {
      this.#retired[i] = 1
      this.#freePositions.push(this.#position[i]!)
    }
  }

  #allocatePosition(): number {
    if (this.#nextPosition < this.topology.size) return this.#nextPosition++
    const p = this.#freePositions.pop()
    if (p !== undefined) return p
    throw new ConfigError(
      `the topology's ${this.topology.size} positions are all taken; give a larger topology`,
    )
  }

  // -------------------------------------------------------------------------------------------
  // Churn

  #interarrival(): number {
    const rate = this.#churn!.arrivalsPerSec
    return (-Math.log(1 - this.#churnRng.float()) * 1000) / rate
  }

  #session(): number {
    return drawSession(this.#churn!.session, this.#churnRng.float())
  }

  /** Queues the end of node i's session (of its current incarnation) at `end`. */
  #scheduleDepart(i: number, end: number, leave: boolean): void {
    this.#inSession[i] = 1
    // from = incarnation, node = i; the crash-or-leave choice rides in the sign of the incarnation.
    const tag = leave ? -1 - this.#incarnation[i]! : this.#incarnation[i]!
    this.#queue.push(end, K_DEPART, i, tag, this.#sessionGen, undefined)
  }

  #arrival(): void {
    const churn = this.#churn!
    const gen = this.#arrivalGen
    this.#cur = -1
    this.#during = 'churn arrival'
    const bootstrap = this.oracle.randomLive(this.#churnRng)
    if (bootstrap === undefined && this.#alive > 0) this.#churnSkipped++
    else {
      const i = this.addNode()
      this.#churnArrivals++
      if (bootstrap === undefined) this.start(i)
      else this.join(i, [bootstrap])
      const leave = this.#churnRng.float() < (churn.leaveFraction ?? 0)
      this.#scheduleDepart(i, this.#now + this.#session(), leave)
    }
    if (this.#arrivalGen === gen)
      this.#queue.push(this.#now + this.#interarrival(), K_ARRIVAL, -1, -1, gen, undefined)
  }

  #depart(i: number, tag: number): void {
    const leave = tag < 0
    const incarnation = leave ? -1 - tag : tag
    if (this.#status[i] !== ST_ALIVE || this.#incarnation[i] !== incarnation) return
    this.#inSession[i] = 0
    this.#retireOnDown[i] = 1
    // Only an active node can leave gracefully; a session that ends sooner ends in a crash.
    if (leave && this.#nodes[i]!.state === 'active') {
      this.#churnLeaves++
      this.leave(i)
    } else {
      this.#churnCrashes++
      this.crash(i)
    }
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  #setNetwork(options: NetworkOptions): void {
    const loss = checkRate('loss', options.loss)
    const duplicate = checkRate('duplicate', options.duplicate)
    const jitterMs = options.jitterMs ?? 0
    if (!(jitterMs >= 0 && Number.isFinite(jitterMs)))
      throw new ConfigError(`jitterMs must be ≥ 0, got ${options.jitterMs}`)
    if (this.#shard !== undefined && (loss > 0 || duplicate > 0 || jitterMs > 0))
      throw new ConfigError('a shard supports no loss, duplication or jitter')
    this.#loss = loss
    this.#duplicate = duplicate
    this.#jitterMs = jitterMs
  }

  #checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.#count)
      throw new ConfigError(`no node ${index}; nodes are 0..${this.#count - 1}`)
  }

  #requireAlive(index: number): N {
    this.#checkIndex(index)
    const node = this.#nodes[index]
    if (node === undefined || this.#status[index] !== ST_ALIVE)
      throw new ConfigError(`node ${index} is ${this.#status[index] === ST_CRASHED ? 'crashed' : 'closed'}`)
    return node
  }

  #checkTime(time: number): number {
    if (!(time >= this.#now)) throw new ConfigError(`cannot run to ${time}: time is already ${this.#now}`)
    return time
  }

  #advance(time: number): void {
    if (Number.isFinite(time) && time > this.#now) this.#now = time
  }

  #failure(e: unknown): SimulationError {
    if (e instanceof SimulationError) return e
    const err = new SimulationError(this.seed, this.#now, this.#cur, this.#during, e)
    if (this.#failures.length < MAX_FAILURES) this.#failures.push(err)
    return err
  }

  /** FNV-1a over (time, kind, node, from, code), byte by byte. */
  #trace(kind: number, node: number, from: number, code: number): void {
    F64[0] = this.#now
    // A shard keeps one hash per node: each node's inputs come in a fixed order, but how a
    // shard interleaves different nodes depends on how the two threads happen to meet.
    const perNode = this.#shard !== undefined && node >= 0 && node < this.#count
    let h = perNode ? this.#nodeHash[node]! : this.#hash
    h = mix(h, U32[LO]!)
    h = mix(h, U32[HI]!)
    h = mix(h, kind)
    h = mix(h, node)
    h = mix(h, from)
    h = mix(h, code)
    if (perNode) this.#nodeHash[node] = h
    else this.#hash = h
  }

  #grow(cap: number): void {
    this.#status = grown(this.#status, cap)
    this.#position = grown(this.#position, cap)
    this.#incarnation = grown(this.#incarnation, cap)
    this.#active = grown(this.#active, cap)
    this.#retireOnDown = grown(this.#retireOnDown, cap)
    this.#retired = grown(this.#retired, cap)
    this.#inSession = grown(this.#inSession, cap)
    // Read for every message (0 without a shard), so always as long as the node arrays.
    this.#remote = grown(this.#remote, cap)
    if (this.#shard !== undefined) {
      this.#horizon = grown(this.#horizon, cap)
      this.#nodeHash = grown(this.#nodeHash, cap)
    }
    this.#cap = cap
  }
}

/** A session length drawn from `s` by inversion of the uniform `u` in [0, 1). */
function drawSession(s: SessionDistribution, u: number): number {
  if (s.kind === 'exponential') return -s.meanMs * Math.log(1 - u)
  const xm = (s.meanMs * (s.shape - 1)) / s.shape
  return xm / (1 - u) ** (1 / s.shape)
}

/**
 * The remaining life of a session in progress at a random moment (the equilibrium residual law,
 * density P(S > r) / E[S]), drawn by inversion of `u` in [0, 1). Exponential: the session law itself.
 * Pareto (scale x_m, shape α > 1, mean μ): uniform on [0, x_m) with probability x_m/μ = (α − 1)/α,
 * else a Pareto tail of shape α − 1 from x_m: P(R > r) = (x_m/r)^(α−1)/α for r ≥ x_m.
 */
function residualSession(s: SessionDistribution, u: number): number {
  if (s.kind === 'exponential') return -s.meanMs * Math.log(1 - u)
  const a = s.shape
  const xm = (s.meanMs * (a - 1)) / a
  const body = (a - 1) / a
  if (u < body) return u * s.meanMs
  return xm * (a * (1 - u)) ** (-1 / (a - 1))
}

function mix(h: number, w: number): number {
  h = Math.imul(h ^ (w & 0xff), 0x01000193)
  h = Math.imul(h ^ ((w >>> 8) & 0xff), 0x01000193)
  h = Math.imul(h ^ ((w >>> 16) & 0xff), 0x01000193)
  return Math.imul(h ^ (w >>> 24), 0x01000193)
}
