/*
 * Theory of operation
 *
 * `PastryNode` is one Pastry node as a sans-IO state machine (see `types.ts` for the driver loop).
 * It owns a leaf set, a routing table and a neighbourhood set, and keeps a record per known peer:
 * when it last heard from it, when it last sent to it, and its smoothed round-trip time.
 *
 * Lifecycle (an illegal transition throws `IllegalStateError`):
 *
 *   idle ──start──► active                      (the first node of a ring)
 *   idle ──join───► joining ──confirmed──► active ──leave──► leaving ──► closed
 *   joining ──join failed──► closed;   any state ──close──► closed
 *
 * Join (MSPastry-style consistent join). The joiner J sends JOIN to a bootstrap node; it is routed
 * toward J's id like any message, with per-hop acks. Each node on the path sends J the two
 * deepest routing rows of the prefix it shares with J (`joinRows`); the root, where the JOIN is
 * delivered, sends its leaf set and all of those rows (`joinReply`). J announces itself to every
 * leaf-set member it learned of; each adds J and answers with its own leaf set (`announceAck`),
 * which may teach J of nearer nodes, which J announces itself to in turn. J becomes active only
 * when every member of its leaf set has confirmed it. Until then it holds any routed message that
 * reaches it. Once active it greets its leaf set and routing table with a heartbeat each, carrying
 * the RTT it measured to the receiver while joining, so that the receiver can weigh J for its own
 * routing table without probing it (a round trip is the same path whichever end starts it).
 *
 * Nearby seed (with PNS). Before its first JOIN the joiner looks for a node near it in the network
 * (`#seek*`): it asks the bootstrap for its leaf set and probes the members; then, from the nearest
 * node found so far, it asks for one routing-table row at a time, from a deep row up to row 0, and
 * probes the row's entries. Deep rows hold nodes scattered over the network, row 0 nodes close to
 * the node asked, so the walk takes long strides first and short ones last. The JOIN then goes
 * through the nearest node found, so the rows the joiner collects along the path are of nodes
 * near it, and every RTT measured on the way seeds its tables. Once active, the new node asks the
 * nearest few entries of each routing-table row for that same row (`#askNearestForRows`): their
 * rows hold valid candidates that are near them, and so near it.
 *
 * Liveness. A node makes sure each of its `heartbeatNeighbours` nearest leaf-set members on each
 * side hears from it at least every Tls (`leafSetHeartbeatMs`), sending a heartbeat when no other
 * traffic did. Such a member not heard from for `leafSetTimeoutMs` is suspected and probed; after
 * `probeRetries` unanswered retries the `indirectProbes` members nearest it are asked to probe it
 * too (`indirectProbe`, a second opinion as in SWIM), and it is declared failed only if none of
 * them reaches it: one bad path must not hand a live leaf's keys to the wrong node. Members farther
 * out are watched by their own nearest neighbours: a node that declares a leaf failed sends its new
 * leaf set to every member at once, and a node that receives a member's leaf set probes any of its
 * own members that the sender's leaf set spans but lacks (`#probeGaps`). Routing-table entries are
 * checked on use: every hop is acknowledged, and a missing ack makes the next hop suspected and the
 * message rerouted around it; an entry is declared failed on this node's own probes.
 *
 * Repair. A failed leaf is replaced by asking the farthest live member on its side for its leaf
 * set. A failed routing-table entry is replaced by asking a peer in the same row for that row.
 * Every Trt (`routingTableMaintenanceMs`) the node asks a random row peer for its row, and offers
 * the entries as candidates. Candidates are probed before they enter the routing table, so that
 * the entry kept for each cell is the one with the lowest measured RTT (PNS). Leaf-set candidates
 * that the node has not heard from recently are probed before they enter, so that stale leaf sets
 * cannot bring dead nodes back.
 *
 * Consistent routing. Only an active node delivers, and it does not deliver while a leaf that is
 * closer to the key is merely suspected: it holds the message until the probe settles the leaf's
 * fate. Deliveries are de-duplicated by message id.
 *
 * Bounds. Every table, queue and memory has a maximum size from the configuration; see
 * `ProtocolConfig`.
 */
import { ConfigError, InvalidIdError, PastryError } from '../errors.js'
import { clockwiseFraction, compareClockwise, compareDistance, type Id, onClockwiseArc } from '../id/id.js'
import type { Rng } from '../id/rng.js'
import { nextHop, type RouteDecision, type RouteTables } from '../route/next-hop.js'
import { LeafSet, spansRing } from '../table/leaf-set.js'
import { NeighbourhoodSet } from '../table/neighbourhood-set.js'
import { RoutingTable } from '../table/routing-table.js'
import {
  MAX_APP_NAME_BYTES,
  MAX_HOPS,
  MAX_LEAF_SET_HANDLES,
  MAX_MESSAGE_ID,
  MAX_RTT_MICROS,
  MESSAGE_TYPE_SLOTS,
  MESSAGE_TYPES,
  type Message,
  type MessageOf,
  type NodeHandle,
  typeCode,
} from '../wire/messages.js'
import { utf8Length } from '../wire/utf8.js'
import { BoundedMap } from './bounded.js'
import { type ProtocolConfig, resolveConfig } from './config.js'
import { DeadlineHeap } from './deadlines.js'
import {
  CREATED,
  IN_LEAF_SET,
  IN_NEIGHBOURHOOD,
  IN_ROUTING_TABLE,
  IN_TABLES,
  KNOWN_SINCE,
  LAST_HEARD,
  LAST_SENT,
  PeerTable,
  PROBE_NONCE,
  PROBE_SENT_AT,
  RTTVAR,
  SRTT,
  SUSPECTED,
  VERSION_SENT,
} from './peers.js'
import type {
  ApplicationHooks,
  Delivery,
  NodeEvent,
  NodeState,
  ProtocolNode,
  RouteFailureReason,
  Transmit,
} from './types.js'

/** A command that the node's current state does not allow, such as `route` before joining. */
export class IllegalStateError extends PastryError {
  constructor(message: string) {
    super('ILLEGAL_STATE', message)
    this.name = 'IllegalStateError'
  }
}

/** Options for {@link PastryNode}. */
export interface PastryNodeOptions {
  /** This node's id. */
  readonly id: Id
  /** The transport address peers reach this node at. */
  readonly address: string
  /** The source of every random choice (message ids, nonces, maintenance peers). */
  readonly rng: Rng
  /** Settings; see {@link ProtocolConfig} for every default. */
  readonly config?: Partial<ProtocolConfig>
  /**
   * This node's handle, when the caller has already made one: a frozen object with this very `id`
   * and `address`, which the node then hands out in its messages instead of a handle of its own
   * (a simulator that makes every node's handle in one pass, for instance). Anything else throws
   * a `ConfigError`. Default: a new frozen handle.
   */
  readonly handle?: NodeHandle
}

/**
 * Why a probe was sent, as bits: a probe in flight to a node serves every purpose it was asked for.
 * SUSPECT: is a suspected node alive? CANDIDATE: its RTT, for the routing table and neighbourhood
 * set. LEAF_CANDIDATE: may it enter the leaf set (and its RTT)? RECOVER: is a failed leaf back?
 */
const SUSPECT = 1
const CANDIDATE = 2
const LEAF_CANDIDATE = 4
const RECOVER = 8
/** SEEK: its RTT, for the nearby-seed search before a join. */
const SEEK = 16
/** CHECK: is a routing-table entry not heard from lately still alive? (No suspicion meanwhile.) */
const CHECK = 32
/** VOUCH: is the node alive? Asked by another node (`indirectProbe`); the answer goes to it. */
const VOUCH = 64
/** Indirect probes this node runs for others at once (targets); more requests are not answered. */
const MAX_VOUCHING = 64
/** Askers remembered per target of an indirect probe. */
const MAX_ASKERS_PER_TARGET = 8
/** Routing-table entries checked at most per maintenance round. */
const MAX_CHECKS_PER_ROUND = 16
/** Nodes the nearby-seed search measures at most. */
const MAX_SEEK_MEASURED = 256
/** Extra asks of row 0, from each nearer node it leads to, once the walk has reached row 0. */
const SEEK_ROW0_REPEATS = 2
/** Joiners awaited at once (see `#arriving`); the oldest is forgotten beyond this. */
const MAX_ARRIVING = 64
/**
 * Bound on each of a joiner's memories of its leaf set (announced, confirmed, second chances):
 * far above any leaf set's turnover during one join attempt, and cleared with each attempt.
 */
const MAX_JOIN_MEMORY = 1024
/** Bound on indirect-probe rounds in flight (each is for a suspected leaf-set member). */
const MAX_INDIRECT_ROUNDS = 1024
/** Routing-table entries asked for their leaf sets at once, to learn their deep cells' members. */
const MAX_CELL_ASKS = 64
/** Every this many Tls, heartbeats carry the leaf set whether it changed or not. */
const LEAF_SET_REFRESH_TLS = 3
/** How many of its nearest entries a new node asks, per row, for that row. */
const ROW_IMPROVE_ASKS = 3
/** Purposes whose probe carries this node's leaf set. */
const WITH_LEAF_SET = SUSPECT | RECOVER | LEAF_CANDIDATE
/** The purposes in the order a retried probe re-asks for them, after the one that sent it. */
const PURPOSES = [SUSPECT, CHECK, CANDIDATE, LEAF_CANDIDATE, RECOVER] as const

/*
 * A probe in flight lives in its peer's record (`PeerTable.setProbe`): its nonce, when it was sent,
 * and one number packing every purpose it serves (bits 0-6), the purpose that sent it (bits 7-13)
 * and its attempt (bits 14-20; at most `probeRetries`, 100). Its timeout's key names the record's
 * slot and the nonce, `slot × 2^32 + nonce`, a safe integer because slots stay below 2^21 (records
 * are the tables' members, the peers probed, at most `maxProbesInFlight` = 10^6 besides suspects,
 * and a few spares); `#prunePeers` renames the keys when compaction renumbers the slots. So
 * sending a probe allocates nothing but its message.
 */
const PURPOSE_BITS = 0x7f
const FIRST_SHIFT = 7
const ATTEMPT_SHIFT = 14
const SLOT_FACTOR = 2 ** 32

function packProbe(purposes: number, first: number, attempt: number): number {
  return purposes | (first << FIRST_SHIFT) | (attempt << ATTEMPT_SHIFT)
}

/** A routed message as this node holds it: JOINs and application messages alike. */
interface Routed {
  readonly kind: 'route' | 'join'
  readonly msgId: number
  readonly key: Id
  readonly origin: NodeHandle
  readonly hops: number
  readonly app: string
  readonly payload: Uint8Array
}

interface PendingRoute {
  readonly routed: Routed
  readonly to: NodeHandle
  readonly sentAt: number
  readonly attempts: number
  readonly deadline: number
}

interface Held {
  readonly routed: Routed
  readonly attempts: number
  /** The hex id of the suspected node this message waits on, or '' when waiting for activation. */
  readonly waitingOn: string
}

const EMPTY = new Uint8Array(0)

/** Peer records kept beyond those of table members and probed nodes. */
const SPARE_PEER_RECORDS = 16

/** The types with a non-zero count among `counts[from + code]`, as a record keyed by type name. */
function countsByType(counts: Float64Array, from: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (const t of MESSAGE_TYPES) {
    const c = counts[from + typeCode(t)]!
    if (c > 0) out[t] = c
  }
  return out
}

/** One Pastry node as a sans-IO state machine. See the module comment and `types.ts`. */
export class PastryNode implements ProtocolNode {
  // The fields that most inputs read come first, so that they share the object's first cache lines
  // (a simulation of 10^5 nodes finds each node's object cold on every input).
  #state: NodeState = 'idle'
  /** The last word of this node's id: most ids differ from it there, so `#isSelf` rarely reads `id`. */
  #selfW3 = 0
  #lastNow = Number.NEGATIVE_INFINITY
  // Counters, for observers.
  /**
   * Messages sent (at the type code) and received (at MESSAGE_TYPE_SLOTS + the code), in one array: a
   * record keyed by type name would take a shape per node.
   */
  readonly #counts = new Float64Array(2 * MESSAGE_TYPE_SLOTS)
  readonly #rng: Rng
  // The output queues: filled at [head, tail), drained by the poll methods. Their arrays keep their
  // room between inputs (most inputs emit something, and a new array per input is garbage), unless
  // a burst made them large.
  /** The next message out when the queue below is empty (see `#transmit`). */
  // The outbox: the first message of a round in two fields (a node that sends one message per input
  // then leaves the cold arrays alone), the rest in two parallel arrays from head to tail. Nothing is
  // wrapped until `pollTransmit` asks; `drainTransmits` wraps nothing.
  #firstTo: string | undefined = undefined
  #firstMessage: Message | undefined = undefined
  readonly #transmitTo: (string | undefined)[] = []
  readonly #transmitMessage: (Message | undefined)[] = []
  #transmitHead = 0
  #transmitTail = 0
  /** The address of the message `#takeTransmit` last took. */
  #takenTo: string | undefined = undefined
  readonly #events: (NodeEvent | undefined)[] = []
  #eventHead = 0
  #eventTail = 0
  readonly #deadlines = new DeadlineHeap()
  /**
   * Peer records: every node in a table or with a probe in flight, plus at most about
   * {@link SPARE_PEER_RECORDS} others, the most recent (see `#prunePeers`). Each record's flags say
   * which tables hold the peer, kept in step with every table change, so membership is O(1).
   */
  readonly #peers = new PeerTable()
  /** Records with the SUSPECTED flag. */
  #suspectedCount = 0
  /** Nodes recently offered to the tables from traffic, so that chatter does not re-probe them. */
  readonly #considered: BoundedMap<string, number>
  #newPeersSincePrune = 0
  /** Set once enough records were made since the last pruning; pruning runs between inputs. */
  #pruneDue = false
  #leafSetVersion = 0
  /** The leaf set's members as one array, shared by messages until the leaf set changes. */
  #leafCache: readonly NodeHandle[] | undefined = undefined
  /** The first deep row, as of leaf-set version {@link #deepRowVersion}. */
  #deepRow = Number.POSITIVE_INFINITY
  #deepRowVersion = -1
  /**
   * The members of deep routing-table cells (see `deepCellMembers`), by cell index: each list is a
   * whole cell, as one leaf set showed it with nodes beyond the cell on both sides, of at most
   * `deepCellMembers` nodes. Null marks a cell asked about that is not so small, or not seen
   * whole. Nodes that join later are added; failed ones are taken out.
   */
  readonly #cellMembers = new Map<number, NodeHandle[] | null>()
  readonly id: Id
  readonly address: string
  readonly handle: NodeHandle
  readonly config: ProtocolConfig
  readonly leafSet: LeafSet<NodeHandle>
  readonly routingTable: RoutingTable<NodeHandle>
  readonly neighbourhood: NeighbourhoodSet<NodeHandle>

  readonly #failed: BoundedMap<
    string,
    {
      handle: NodeHandle
      until: number
      wasLeaf: boolean
      /** When to probe it next (failed leaves only), and the wait after that, which doubles. */
      nextProbe: number
      probeEvery: number
      left: boolean
    }
  >
  /** Probes in flight (each in its peer's record). */
  #probesInFlight = 0
  /**
   * Second opinions this node waits for, by nonce: a suspected leaf that answered none of its
   * probes, and the helpers still to answer (see `#askOthers`). At most one per leaf.
   */
  readonly #indirect = new BoundedMap<number, { readonly peer: NodeHandle; readonly helpers: Set<string> }>(
    MAX_INDIRECT_ROUNDS,
  )
  /** Nodes this node probes for others (hex id), with whom to tell and under which nonce. */
  readonly #vouching = new BoundedMap<string, { to: NodeHandle; nonce: number }[]>(MAX_VOUCHING)
  /**
   * Joiners that announced themselves to this node and have not been heard from as active yet, with
   * when to stop waiting for them. While one of them is closer to a key than this node, this node
   * holds the key's messages rather than deliver them: the joiner owns the key the moment it is
   * active, a moment before this node hears of it.
   */
  readonly #arriving = new BoundedMap<string, { readonly handle: NodeHandle; until: number }>(MAX_ARRIVING)
  readonly #pending = new Map<number, PendingRoute>()
  readonly #held: Held[] = []
  readonly #delivered: BoundedMap<number, true>
  readonly #apps = new Map<string, ApplicationHooks>()
  /** When the watched members next get the whole leaf set, changed or not (anti-entropy). */
  #nextLeafSetRefresh = 0
  /** Failures of table members seen lately: a count decaying by e every Trt, as of `#failuresAt`. */
  #failures = 0
  #failuresAt = 0
  /** When silent routing-table entries are next checked between maintenance rounds. */
  #nextCheck = 0
  /** The tables as `nextHop` reads them. */
  readonly #routeTables: RouteTables<NodeHandle>
  /** The members of each deep row's cells in one array, made on demand; dropped on a change. */
  readonly #rowMemberCache: (readonly NodeHandle[] | undefined)[] = []
  /** Entries asked for their leaf sets to learn their cells' members: id hex → cell index. */
  #cellAsks: BoundedMap<string, number> | undefined = undefined
  /** By deep cell: when it may be asked again after a hop to one of its members went unanswered. */
  #cellRefreshAt: Map<number, number> | undefined = undefined
  /** The first deep row when {@link #seedDeepCells} last ran. */
  #deepRowSeeded = Number.NaN
  /**
   * For a few seconds after activation: the nodes told that this node is active. The
   * members of deep cells learned meanwhile are told too, since their own lists of this node's
   * cell lack it.
   */
  #greeted: Set<string> | undefined = undefined
  #greetUntil = 0
  /** While routing a JOIN: the joiner, which is never its own next hop. */
  #excludeJoiner: Id | undefined = undefined
  readonly #exclude = (n: NodeHandle): boolean =>
    this.#unusable(n) || (this.#excludeJoiner !== undefined && n.id.equals(this.#excludeJoiner))
  // Join progress.
  #bootstrap: readonly string[] = []
  #joinAttempt = 0
  #joinMsgId = 0
  #joinReplied = false
  // The join's memories below, and the search's, are empty once the node is active: each holds
  // a Map only while it has entries (`BoundedMap`), which 10^5 simulated nodes feel in memory.
  /** Leaf-set members this joiner has announced itself to, and those that have confirmed it. */
  readonly #announced = new BoundedMap<string, number>(MAX_JOIN_MEMORY)
  /**
   * When the announce to each member went out, while it has been sent once: its answer then
   * measures the RTT (an answer to a repeated announce could belong to either, and measures none).
   */
  readonly #announceSentAt = new BoundedMap<string, number>(MAX_JOIN_MEMORY)
  readonly #confirmed = new BoundedMap<string, true>(MAX_JOIN_MEMORY)
  /**
   * Members that did not confirm but that another member reached (a second opinion): each is
   * announced to once more, `probeRetries` more times, before it may be taken for failed.
   */
  readonly #secondChance = new BoundedMap<string, true>(MAX_JOIN_MEMORY)
  // The nearby-seed search (see the module comment), before the first JOIN.
  /** The search's step, bumped per request; -1 when no search runs. */
  #seekStep = -1
  /** What the current step waits for: the bootstrap's leaf set, a row, or probe replies. */
  #seekWaiting: 'leafSet' | 'row' | 'probes' = 'leafSet'
  /** The next row to ask for; -1 once the walk is past row 0. */
  #seekRow = -1
  /** Further asks of row 0 left. */
  #seekRow0Left = 0
  /** The node the last row was asked of. */
  #seekAsked: NodeHandle | undefined = undefined
  /** Probes of this step still unanswered. */
  #seekPending = 0
  /** The nearest node measured so far, and its RTT. */
  #seekBest: NodeHandle | undefined = undefined
  #seekBestRtt = Number.POSITIVE_INFINITY
  /**
   * Every node the search has probed, by hex id, with its RTT once measured (NaN before); bounded
   * by {@link MAX_SEEK_MEASURED}. Kept here because peer records of nodes in no table may be pruned.
   */
  readonly #seekSeen = new BoundedMap<
    string,
    { readonly node: NodeHandle; readonly step: number; rtt: number }
  >(MAX_SEEK_MEASURED)
  /** Where the first JOIN goes: the nearest node found, when the search found one. */
  #seed: string | undefined = undefined

  /** Makes an idle node. Call `start` (first node) or `join` next. */
  constructor(options: PastryNodeOptions) {
    this.config = resolveConfig(options.config)
    if (utf8Length(options.address) > 262) throw new InvalidIdError('an address is at most 262 UTF-8 bytes')
    this.id = options.id
    this.#selfW3 = options.id.w3
    this.address = options.address
    this.handle = ownHandle(options)
    this.#rng = options.rng
    this.leafSet = new LeafSet(this.id, this.config.leafSetSize)
    this.routingTable = new RoutingTable(this.id, this.config.b)
    this.neighbourhood = new NeighbourhoodSet(this.id, this.config.neighbourhoodSize)
    this.#considered = new BoundedMap(256)
    this.#failed = new BoundedMap(this.config.maxFailedMemory)
    this.#delivered = new BoundedMap(this.config.maxDeliveredMemory)
    this.#routeTables = {
      self: this.id,
      b: this.config.b,
      leafSet: this.leafSet,
      routingTable: this.routingTable,
      extra: this.neighbourhood,
      rowMembers: (row) => this.#rowMembers(row),
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Getters

  /** The lifecycle state. */
  get state(): NodeState {
    return this.#state
  }

  /** Messages sent and received, by type, since the node was made. */
  get counters(): { sent: Readonly<Record<string, number>>; received: Readonly<Record<string, number>> } {
    return { sent: countsByType(this.#counts, 0), received: countsByType(this.#counts, MESSAGE_TYPE_SLOTS) }
  }

  /** Routed messages awaiting a hop's ack. */
  get pendingRoutes(): number {
    return this.#pending.size
  }

  /** Routed messages held (waiting for activation or for a suspected leaf's fate). */
  get heldMessages(): number {
    return this.#held.length
  }

  /**
   * The peers this node keeps a record of: its tables' members, nodes it is probing or suspects,
   * and a few spare records of others ({@link SPARE_PEER_RECORDS} and those made since the last
   * prune). Strangers that only probe or ask this node get none. A measure of its memory.
   */
  get peerRecords(): number {
    return this.#peers.size
  }

  /** The smoothed RTT to a peer in ms, if measured. */
  rttTo(id: Id): number | undefined {
    const s = this.#peers.find(id)
    const srtt = s < 0 ? Number.NaN : this.#peers.get(s, SRTT)
    return Number.isFinite(srtt) ? srtt : undefined
  }

  /** True when this node suspects the peer (a probe to it is unanswered). */
  isSuspected(id: Id): boolean {
    const s = this.#peers.find(id)
    return s >= 0 && (this.#peers.flags(s) & SUSPECTED) !== 0
  }

  // ---------------------------------------------------------------------------------------------
  // Outputs

  pollTransmit(): Transmit | undefined {
    const message = this.#takeTransmit()
    return message === undefined ? undefined : { to: this.#takenTo!, message }
  }

  /**
   * Hands every message waiting to be sent to `send(address, message)`, in the order
   * {@link pollTransmit} would return them, and leaves the outbox empty. The same as calling
   * `pollTransmit` until it returns undefined, without an object per message: for drivers of many
   * nodes, such as a simulator. Messages that `send` makes this node queue are handed over too. If
   * `send` throws, the message it was given has left the outbox and the rest stay queued.
   */
  drainTransmits(send: (address: string, message: Message) => void): void {
    for (let m = this.#takeTransmit(); m !== undefined; m = this.#takeTransmit()) send(this.#takenTo!, m)
  }

  /**
   * Takes the next message out of the outbox, its address into `#takenTo`; undefined (and the
   * outbox reset) when it is empty.
   */
  #takeTransmit(): Message | undefined {
    const first = this.#firstMessage
    if (first !== undefined) {
      this.#takenTo = this.#firstTo
      this.#firstMessage = undefined
      this.#firstTo = undefined
      return first
    }
    if (this.#transmitHead === this.#transmitTail) {
      this.#resetOutbox()
      return undefined
    }
    const h = this.#transmitHead++
    const message = this.#transmitMessage[h]
    this.#takenTo = this.#transmitTo[h]
    this.#transmitTo[h] = undefined
    this.#transmitMessage[h] = undefined
    return message
  }

  /** Empties the outbox's arrays once drained. */
  #resetOutbox(): void {
    // The arrays themselves are left untouched unless this round filled them past the bound (they
    // are cold in a large simulation, and this runs after every input).
    if (this.#transmitTail > MAX_KEPT_QUEUE) {
      this.#transmitTo.length = 0
      this.#transmitMessage.length = 0
    }
    this.#transmitHead = 0
    this.#transmitTail = 0
  }

  pollEvent(): NodeEvent | undefined {
    if (this.#eventHead === this.#eventTail) {
      // The array itself is left untouched unless this round filled it past the bound (it is cold
      // in a large simulation, and this runs after every input).
      if (this.#eventTail > MAX_KEPT_QUEUE) this.#events.length = 0
      this.#eventHead = 0
      this.#eventTail = 0
      return undefined
    }
    const q = this.#events
    const e = q[this.#eventHead]
    q[this.#eventHead++] = undefined
    return e
  }

  nextDeadline(): number | undefined {
    this.#dropStaleDeadlines()
    return this.#deadlines.peekAt()
  }

  // ---------------------------------------------------------------------------------------------
  // Commands

  /**
   * Registers an application under `name` (at most 64 UTF-8 bytes). Its `forward` hook, if any, is
   * consulted at every hop; its deliveries arrive as `deliver` events with `app === name`.
   */
  register(name: string, hooks: ApplicationHooks = {}): void {
    checkAppName(name)
    this.#apps.set(name, hooks)
  }

  /** Starts the first node of a new ring: it becomes active alone. */
  start(now: number): void {
    this.#advance(now)
    this.#transition('idle', 'active')
    this.#scheduleTimers(now)
  }

  /**
   * Joins the overlay through any of the bootstrap addresses (tried in turn). The node becomes
   * active when its leaf set has confirmed it; a `joinFailed` event and the closed state follow
   * `joinAttempts` unanswered attempts.
   */
  join(now: number, bootstrap: readonly string[]): void {
    this.#advance(now)
    if (bootstrap.length === 0) throw new IllegalStateError('join needs at least one bootstrap address')
    this.#transition('idle', 'joining')
    this.#bootstrap = [...bootstrap]
    this.#joinAttempt = 0
    if (this.config.pns && this.config.findNearbySeed) this.#startSeek(now)
    else this.#sendJoin(now)
  }

  /**
   * Routes `payload` for application `app` toward the live node numerically closest to `key`.
   * Returns the message id, which the `deliver` event at the root (and a `routeFailed` event, if
   * it comes to that) carries. Allowed while active; while joining the message is held.
   */
  route(now: number, key: Id, app: string, payload: Uint8Array): number {
    this.#advance(now)
    if (this.#state !== 'active' && this.#state !== 'joining') {
      throw new IllegalStateError(`cannot route in state ${this.#state}`)
    }
    checkAppName(app)
    let msgId = this.#newMsgId()
    while (this.#pending.has(msgId) || this.#delivered.has(msgId)) msgId = this.#newMsgId()
    const routed: Routed = { kind: 'route', msgId, key, origin: this.handle, hops: 0, app, payload }
    this.#process(now, routed, 0)
    return msgId
  }

  /** Sends `payload` straight to one node (the KBR `send`); it arrives as a `direct` event. */
  send(now: number, to: NodeHandle, app: string, payload: Uint8Array): void {
    this.#advance(now)
    if (this.#state === 'closed' || this.#state === 'idle')
      throw new IllegalStateError(`cannot send in state ${this.#state}`)
    checkAppName(app)
    this.#transmit(now, to.address, to, { type: 'direct', from: this.handle, app, payload })
  }

  /**
   * Leaves gracefully: tells the leaf set and routing table, hands every message in its care to the
   * next closest node, and closes.
   */
  leave(now: number): void {
    this.#advance(now)
    this.#transition('active', 'leaving')
    const leafSet = this.#leafMembers()
    const told = new Set<string>()
    for (const n of [...leafSet, ...this.routingTable]) {
      const hex = n.id.toHex()
      if (told.has(hex)) continue
      told.add(hex)
      this.#transmit(now, n.address, n, { type: 'leave', from: this.handle, leafSet })
    }
    // Hand over what is in this node's care: to the closest other node it knows, never to the hop
    // that has not acknowledged a message yet (it may be gone: it is not waited for any more).
    const inCare: { routed: Routed; avoid: Id | undefined }[] = [
      ...[...this.#pending.values()].map((p) => ({ routed: p.routed, avoid: p.to.id })),
      ...this.#held.map((h) => ({ routed: h.routed, avoid: undefined })),
    ]
    this.#pending.clear()
    this.#held.length = 0
    this.#excludeJoiner = undefined
    for (const { routed, avoid } of inCare) {
      const exclude =
        avoid === undefined ? this.#exclude : (n: NodeHandle) => n.id.equals(avoid) || this.#exclude(n)
      const decision = nextHop(this.#routeTables, routed.key, exclude)
      const to = decision.type === 'forward' ? decision.node : this.#closestOther(routed.key, avoid)
      if (to === undefined) this.#fail(routed, 'closed')
      else this.#transmitRouted(now, routed, to)
    }
    // The node is going: nobody will be here to see the acks.
    this.#pending.clear()
    this.#shutdown('leaving')
  }

  /** Stops at once, without notice to anyone (as a crash would). */
  close(now: number): void {
    this.#advance(now)
    if (this.#state === 'closed') return
    for (const p of this.#pending.values()) this.#fail(p.routed, 'closed')
    for (const h of this.#held) this.#fail(h.routed, 'closed')
    this.#pending.clear()
    this.#held.length = 0
    this.#firstTo = undefined
    this.#firstMessage = undefined
    this.#transmitTo.length = 0
    this.#transmitMessage.length = 0
    this.#transmitHead = 0
    this.#transmitTail = 0
    this.#shutdown(this.#state)
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  /** Hands in a decoded message from a peer. Messages that do not fit the state are ignored. */
  handleMessage(now: number, message: Message): void {
    this.#advance(now)
    if (this.#state === 'closed' || this.#state === 'idle') return
    this.#dispatch(now, message)
    if (this.#pruneDue) this.#prunePeers()
  }

  #dispatch(now: number, message: Message): void {
    const from = message.from
    if (this.#isSelf(from.id)) {
      if (from.address !== this.address)
        this.#error('ID_CONFLICT', `a peer at ${from.address} claims this node's id`)
      return
    }
    this.#counts[MESSAGE_TYPE_SLOTS + typeCode(message.type)]!++
    // A round trip the sender measured is this node's too (the same path either way): with it, the
    // sender is weighed for the routing table without a probe.
    if (message.type === 'heartbeat' && message.rttMicros !== undefined)
      this.#reportedRtt(from, message.rttMicros)
    this.#heard(now, from, sentOnlyWhenActive(message))
    switch (message.type) {
      case 'route':
        this.#onRouted(now, from, {
          kind: 'route',
          msgId: message.msgId,
          key: message.key,
          origin: message.origin,
          hops: message.hops,
          app: message.app,
          payload: message.payload,
        })
        return
      case 'join':
        this.#onRouted(now, from, {
          kind: 'join',
          msgId: message.msgId,
          key: message.joiner.id,
          origin: message.joiner,
          hops: message.hops,
          app: '',
          payload: EMPTY,
        })
        return
      case 'ack':
        this.#onAck(now, from, message.msgId)
        return
      case 'joinRows':
        if (this.#state !== 'joining') return
        for (const row of message.rows) for (const n of row.entries) this.#consider(now, n)
        this.#consider(now, from)
        return
      case 'joinReply':
        this.#onJoinReply(now, message)
        return
      case 'announce':
        this.#onAnnounce(now, message)
        return
      case 'announceAck':
        this.#onAnnounceAck(now, message)
        return
      case 'heartbeat':
        if (message.leafSet !== undefined) {
          this.#mergeLeafSet(now, message.leafSet)
          this.#probeGaps(now, from, message.leafSet)
        }
        return
      case 'probe':
        if (message.leafSet === undefined) {
          this.#transmit(now, from.address, from, {
            type: 'probeReply',
            from: this.handle,
            nonce: message.nonce,
          })
          return
        }
        this.#transmit(now, from.address, from, {
          type: 'probeReply',
          from: this.handle,
          nonce: message.nonce,
          leafSet: this.#leafMembers(),
        })
        this.#mergeLeafSet(now, message.leafSet)
        return
      case 'probeReply':
        this.#onProbeReply(now, message)
        return
      case 'indirectProbe':
        this.#onIndirectProbe(now, from, message.nonce, message.target)
        return
      case 'indirectProbeReply':
        this.#onIndirectProbeReply(now, message)
        return
      case 'leafSetRequest':
        this.#transmit(now, from.address, from, {
          type: 'leafSetReply',
          from: this.handle,
          leafSet: this.#leafMembers(),
        })
        return
      case 'leafSetReply': {
        if (this.#seekStep >= 0) {
          if (this.#state === 'joining') this.#onSeekLeafSet(now, message.from, message.leafSet)
          return
        }
        const hex = from.id.toHex()
        const cell = this.#cellAsks?.get(hex)
        if (cell !== undefined) {
          this.#cellAsks!.delete(hex)
          this.#learnCell(from, message.leafSet, cell)
          // A leaf-set member's answer also serves leaf-set repair, which may have asked the
          // same node at the same time (one answer meets both asks).
          if (!this.leafSet.contains(from.id)) return
        }
        this.#mergeLeafSet(now, message.leafSet)
        return
      }
      case 'rowRequest':
        this.#transmit(now, from.address, from, {
          type: 'rowReply',
          from: this.handle,
          row: message.row,
          entries: this.routingTable.row(message.row),
        })
        return
      case 'rowReply':
        if (this.#seekStep >= 0) {
          if (this.#state === 'joining') this.#onSeekRow(now, message.from, message.entries)
          return
        }
        for (const n of message.entries) this.#consider(now, n)
        return
      case 'leave':
        this.#onLeave(now, from, message.leafSet)
        return
      case 'direct':
        this.#emit({ type: 'direct', app: message.app, payload: message.payload, from })
        return
    }
  }

  /** Hands in the passing of time: call when `now` reaches `nextDeadline()`. */
  handleTimeout(now: number): void {
    this.#advance(now)
    const deadlines = this.#deadlines
    for (;;) {
      const at = deadlines.peekAt()
      if (at === undefined || at > now) break
      deadlines.pop()
      if (this.#state === 'closed') continue
      const key = deadlines.topKey
      switch (deadlines.topKind) {
        case 'tick':
          this.#onTick(now)
          break
        case 'maintenance':
          this.#onMaintenance(now)
          break
        case 'join':
          if (key === this.#joinAttempt) this.#onJoinTimeout(now)
          break
        case 'ack':
          this.#onAckTimeout(now, key)
          break
        case 'probe':
          this.#onProbeTimeout(now, key)
          break
        case 'indirect':
          this.#onIndirectTimeout(now, key)
          break
        case 'announce':
          if (key === this.#joinAttempt) this.#onAnnounceTimeout(now)
          break
        case 'seek':
          if (key === this.#seekStep && this.#state === 'joining') this.#seekAdvance(now)
          break
      }
    }
    if (this.#pruneDue) this.#prunePeers()
  }

  /**
   * Drops deadlines at the top of the heap whose owner has moved on (an answered probe, an
   * acknowledged hop, a join attempt that got its answer), so that the driver does not wake the
   * node only for `handleTimeout` to find nothing to do. Handling them would change nothing.
   */
  #dropStaleDeadlines(): void {
    const deadlines = this.#deadlines
    while (deadlines.size > 0) {
      const key = deadlines.peekKey()
      switch (deadlines.peekKind()) {
        case 'probe':
          if (this.#probeSlot(key) >= 0) return
          break
        case 'indirect':
          if (this.#indirect.has(key)) return
          break
        case 'ack': {
          const p = this.#pending.get(key)
          if (p !== undefined && p.deadline <= deadlines.peekAt()!) return
          break
        }
        case 'join':
          if (key === this.#joinAttempt && this.#state === 'joining' && !this.#joinReplied) return
          break
        case 'announce':
          if (key === this.#joinAttempt && this.#state === 'joining') return
          break
        case 'seek':
          if (key === this.#seekStep && this.#state === 'joining') return
          break
        default:
          return
      }
      deadlines.pop()
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  #advance(now: number): void {
    if (!(typeof now === 'number' && Number.isFinite(now)) || now < this.#lastNow)
      throw badTime(now, this.#lastNow)
    this.#lastNow = now
  }

  #transition(from: NodeState, to: NodeState): void {
    if (this.#state !== from)
      throw new IllegalStateError(`cannot go from ${this.#state} to ${to} (expected ${from})`)
    this.#state = to
    this.#emit({ type: 'stateChanged', from, to })
  }

  #shutdown(from: NodeState): void {
    this.#state = 'closed'
    this.#emit({ type: 'stateChanged', from, to: 'closed' })
    this.#deadlines.clear()
    this.#probesInFlight = 0
    for (let s = 0; s < this.#peers.highWater; s++) if (this.#peers.inUse(s)) this.#peers.clearProbe(s)
    this.#indirect.clear()
    this.#vouching.clear()
    this.#announced.clear()
    this.#announceSentAt.clear()
    this.#confirmed.clear()
    this.#secondChance.clear()
    this.#seekStep = -1
    this.#seekSeen.clear()
    this.#arriving.clear()
  }

  #scheduleTimers(now: number): void {
    this.#deadlines.push(now + this.#tickMs(), 'tick', 0)
    const trt = this.config.routingTableMaintenanceMs
    this.#deadlines.push(now + trt * (0.5 + this.#rng.float()), 'maintenance', 0)
  }

  #tickMs(): number {
    return Math.min(this.config.leafSetHeartbeatMs, this.config.leafSetTimeoutMs) / 4
  }

  #becomeActive(now: number): void {
    this.#transition('joining', 'active')
    this.#scheduleTimers(now)
    // Tell the leaf set and the routing table's nodes that this node is active, so that they take
    // it into their tables.
    const leafSet = this.#leafMembers()
    const told = new Set<string>()
    if (this.config.deepCellMembers > 0) {
      this.#greeted = told
      this.#greetUntil = now + 2 * this.config.probeTimeoutMs
    }
    // Each greeting carries this node's RTT to the receiver when it measured one while joining, so
    // that the receiver, weighing this node for its routing table, need not probe it again.
    for (const n of leafSet) {
      told.add(n.id.toHex())
      this.#transmit(now, n.address, n, this.#greeting(n, leafSet))
    }
    for (const n of this.routingTable) {
      if (told.has(n.id.toHex())) continue
      told.add(n.id.toHex())
      this.#transmit(now, n.address, n, this.#greeting(n, undefined))
    }
    const held = this.#held.splice(0)
    for (const h of held) this.#process(now, h.routed, h.attempts)
    if (this.config.pns && this.#bootstrap.length > 0) this.#askNearestForRows(now)
    // The deep cells filled while joining learn their members now that the leaf set is known.
    this.#seedDeepCells(now)
  }

  /** The heartbeat that tells `n` this node is active, with this node's RTT to it if measured. */
  #greeting(n: NodeHandle, leafSet: readonly NodeHandle[] | undefined): MessageOf<'heartbeat'> {
    const s = this.#peers.find(n.id)
    const srtt = s < 0 ? Number.NaN : this.#peers.get(s, SRTT)
    const rttMicros = Number.isFinite(srtt) ? Math.min(MAX_RTT_MICROS, Math.round(srtt * 1000)) : undefined
    return {
      type: 'heartbeat',
      from: this.handle,
      ...(leafSet !== undefined && { leafSet }),
      ...(rttMicros !== undefined && { rttMicros }),
    }
  }

  /**
   * Asks the entries of the deep cells that have no member list yet for their leaf sets, when the
   * first deep row has moved since the last time (on activation, then as the overlay grows or
   * shrinks, checked every tick).
   */
  #seedDeepCells(now: number): void {
    if (this.config.deepCellMembers === 0) return
    const deep = this.#firstDeepRow()
    if (deep === this.#deepRowSeeded) return
    this.#deepRowSeeded = deep
    const rt = this.routingTable
    for (let row = deep; row < rt.rowCount; row++) {
      for (let col = 0; col < rt.columns; col++) {
        const at = row * rt.columns + col
        const e = rt.atIndex(at)
        if (e !== undefined && !this.#cellMembers.has(at)) this.#noteCellMember(now, e, at)
      }
    }
  }

  /**
   * Once active, a joiner asks the nearest entries of each routing-table row for that same row. An
   * entry in row r shares r digits with this node, so its own row r holds valid row-r candidates,
   * chosen by proximity to the entry, and a near entry's near nodes are near this node too. The
   * answers are offered to the tables like any (PNS probes them).
   */
  #askNearestForRows(now: number): void {
    const rt = this.routingTable
    const per = ROW_IMPROVE_ASKS
    for (let r = 0; r < rt.rowCount; r++) {
      const nearest: { n: NodeHandle; p: number }[] = []
      for (let c = 0; c < rt.columns; c++) {
        const n = rt.get(r, c)
        if (n === undefined) continue
        const p = rt.proximityAt(r, c)
        if (!(p > 0)) continue
        nearest.push({ n, p })
      }
      nearest.sort((a, b) => a.p - b.p)
      for (const { n } of nearest.slice(0, per)) {
        this.#transmit(now, n.address, n, { type: 'rowRequest', from: this.handle, row: r })
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Nearby-seed search

  #startSeek(now: number): void {
    this.#seekSeen.clear()
    this.#seekBest = undefined
    this.#seekBestRtt = Number.POSITIVE_INFINITY
    this.#seekAsked = undefined
    this.#seekRow = -1
    this.#seekRow0Left = SEEK_ROW0_REPEATS
    this.#seekStep = 0
    this.#seekWaiting = 'leafSet'
    const address = this.#bootstrap[0]!
    this.#transmit(now, address, undefined, { type: 'leafSetRequest', from: this.handle })
    this.#deadlines.push(now + this.config.probeTimeoutMs, 'seek', this.#seekStep)
  }

  /** The bootstrap's leaf set: measure it, and pick the row the walk starts from. */
  #onSeekLeafSet(now: number, from: NodeHandle, leafSet: readonly NodeHandle[]): void {
    if (this.#seekWaiting !== 'leafSet') return
    this.#seekRow = Math.max(0, Math.floor(this.#estimateRows(from, leafSet)) - 1)
    this.#seekMeasure(now, [from, ...leafSet])
  }

  #onSeekRow(now: number, from: NodeHandle, entries: readonly NodeHandle[]): void {
    if (this.#seekWaiting !== 'row' || this.#seekAsked?.id.equals(from.id) !== true) return
    this.#seekMeasure(now, entries)
  }

  /** Probes the nodes not yet measured; the step ends when all have answered or timed out. */
  #seekMeasure(now: number, handles: readonly NodeHandle[]): void {
    this.#seekStep++
    this.#seekWaiting = 'probes'
    this.#seekPending = 0
    for (const n of handles) {
      if (this.#isSelf(n.id) || this.#seekSeen.size >= MAX_SEEK_MEASURED) continue
      const hex = n.id.toHex()
      if (this.#seekSeen.has(hex)) continue
      this.#seekSeen.set(hex, { node: n, step: this.#seekStep, rtt: Number.NaN })
      this.#seekPending++
      this.#probe(now, n, SEEK)
    }
    if (this.#seekPending === 0) this.#seekAdvance(now)
    else this.#deadlines.push(now + this.config.probeTimeoutMs, 'seek', this.#seekStep)
  }

  /** A probe of the search answered (with its RTT) or timed out (with an infinite one). */
  #onSeekMeasured(now: number, n: NodeHandle, rttMs: number): void {
    if (this.#seekStep < 0 || this.#seekWaiting !== 'probes' || this.#state !== 'joining') return
    const seen = this.#seekSeen.get(n.id.toHex())
    // A late answer to an earlier step counts for nothing: that step has ended.
    if (seen === undefined || seen.step !== this.#seekStep) return
    seen.rtt = rttMs
    if (rttMs < this.#seekBestRtt) {
      this.#seekBest = n
      this.#seekBestRtt = rttMs
    }
    if (--this.#seekPending <= 0) this.#seekAdvance(now)
  }

  /** The step is over (answered or timed out): ask the nearest node for the next row, or join. */
  #seekAdvance(now: number): void {
    // A node that does not answer for its row is likely gone: join through the bootstrap.
    if (this.#seekWaiting === 'row') this.#seekBest = undefined
    const best = this.#seekBest
    let row = -1
    if (best !== undefined) {
      if (this.#seekRow >= 0) row = this.#seekRow--
      else if (this.#seekRow0Left > 0 && this.#seekAsked?.id.equals(best.id) === false) {
        // Past row 0: a nearer node was found there, so its own row 0 may hold nearer ones still.
        this.#seekRow0Left--
        row = 0
      }
    }
    if (row < 0) {
      this.#seekStep = -1
      this.#seed = best?.address
      this.#sendJoin(now)
      return
    }
    this.#seekStep++
    this.#seekWaiting = 'row'
    this.#seekAsked = best
    this.#transmit(now, best!.address, best, { type: 'rowRequest', from: this.handle, row })
    this.#deadlines.push(now + this.config.probeTimeoutMs, 'seek', this.#seekStep)
  }

  /**
   * About log_{2^b} N, from how much of the ring a leaf set covers: a full leaf set of L members
   * around its owner spans about (L + 1)/N of it. A leaf set that is not full means a small ring.
   */
  #estimateRows(owner: NodeHandle, leafSet: readonly NodeHandle[]): number {
    const count = leafSet.length + 1
    if (leafSet.length < this.config.leafSetSize) return Math.log(count) / Math.log(2 ** this.config.b)
    // The farthest member on each side, as fractions of the ring (64 bits of precision).
    let cw = 0
    let ccw = 0
    for (const n of leafSet) {
      const f = clockwiseFraction(owner.id, n.id)
      if (f < 0.5) cw = Math.max(cw, f)
      else ccw = Math.max(ccw, 1 - f)
    }
    const span = cw + ccw
    if (!(span > 0)) return 0
    return Math.log(count / span) / Math.log(2 ** this.config.b)
  }

  /**
   * Offers every node the search measured to the routing table and neighbourhood set. A measured
   * node's record may have been pruned since its probe came back (it was in no table then): the
   * record made again gets the measured RTT, so that the greeting and the ack timeouts use it.
   */
  #offerSeekMeasurements(): void {
    if (this.#seekSeen.size === 0) return
    const peers = this.#peers
    for (const { node, rtt } of this.#seekSeen.values()) {
      if (!Number.isFinite(rtt) || (this.#failed.size > 0 && this.#failed.has(node.id.toHex()))) continue
      this.#rtInsert(node, rtt)
      this.#nbInsert(node, rtt)
      const s = peers.find(node.id)
      if (s >= 0 && !Number.isFinite(peers.get(s, SRTT))) this.#rttSample(s, rtt)
    }
    this.#seekSeen.clear()
  }

  // ---------------------------------------------------------------------------------------------
  // Join

  #sendJoin(now: number): void {
    const address =
      this.#joinAttempt === 0 && this.#seed !== undefined
        ? this.#seed
        : this.#bootstrap[this.#joinAttempt % this.#bootstrap.length]!
    this.#joinMsgId = this.#newMsgId()
    this.#joinReplied = false
    this.#transmit(now, address, undefined, {
      type: 'join',
      from: this.handle,
      msgId: this.#joinMsgId,
      joiner: this.handle,
      hops: 0,
    })
    this.#deadlines.push(now + this.config.joinTimeoutMs, 'join', this.#joinAttempt)
  }

  #onJoinTimeout(now: number): void {
    if (this.#state !== 'joining' || this.#joinReplied) return
    this.#restartJoin(now)
  }

  #restartJoin(now: number): void {
    this.#joinAttempt++
    this.#announced.clear()
    this.#announceSentAt.clear()
    this.#confirmed.clear()
    this.#secondChance.clear()
    // Failure verdicts of a joiner come from its own unanswered announces: when the network lost
    // them, the nodes are alive, and a new attempt must not keep them out of its leaf set.
    this.#failed.clear()
    if (this.#joinAttempt >= this.config.joinAttempts) {
      this.#emit({
        type: 'joinFailed',
        reason: `no answer to ${this.config.joinAttempts} join attempts`,
      })
      for (const h of this.#held) this.#fail(h.routed, 'closed')
      this.#held.length = 0
      this.#shutdown('joining')
      return
    }
    this.#sendJoin(now)
  }

  #onJoinReply(now: number, message: MessageOf<'joinReply'>): void {
    if (this.#state !== 'joining') return
    // The leaf set first, from the root's: what follows is weighed against it. Taken while it was
    // empty or half-built, row entries and the search's nodes would enter it for a moment, and be
    // probed or announced to before nearer members pushed them out. Announces go out once it is
    // built (below), to its members alone.
    this.#insertLeaf(now, message.from)
    for (const n of message.leafSet) this.#insertLeaf(now, n)
    this.#joinReplied = true
    this.#offerSeekMeasurements()
    for (const row of message.rows) for (const n of row.entries) this.#consider(now, n)
    this.#consider(now, message.from)
    for (const n of this.#leafMembers()) this.#announceTo(now, n)
    this.#deadlines.push(now + this.#announceWaitMs(), 'announce', this.#joinAttempt)
    this.#maybeActivate(now)
  }

  #announceWaitMs(): number {
    return this.config.probeTimeoutMs
  }

  #announceTo(now: number, n: NodeHandle, retry = false): void {
    const hex = n.id.toHex()
    const tries = this.#announced.get(hex)
    if (tries !== undefined && !retry) return
    this.#announced.set(hex, (tries ?? 0) + 1)
    if (tries === undefined) this.#announceSentAt.set(hex, now)
    else this.#announceSentAt.delete(hex)
    this.#transmit(now, n.address, n, {
      type: 'announce',
      from: this.handle,
      leafSet: this.#leafMembers(),
    })
  }

  #onAnnounce(now: number, message: MessageOf<'announce'>): void {
    if (this.#state !== 'active' && this.#state !== 'joining') return
    // The joiner enters this node's tables only once it is active (its first heartbeat): tables
    // hold active nodes alone, so no message is ever routed to a node that may not deliver it.
    // A node that left and now rejoins is welcome again.
    const from = message.from
    if (this.#failed.get(from.id.toHex())?.left === true) this.#failed.delete(from.id.toHex())
    if (this.#state === 'active') {
      const evicted = this.#arriving.set(from.id.toHex(), {
        handle: from,
        until: now + this.config.joinTimeoutMs,
      })
      if (evicted !== undefined) this.#release(now, evicted[0])
    }
    this.#transmit(now, from.address, from, {
      type: 'announceAck',
      from: this.handle,
      accepted: true,
      leafSet: this.#leafMembers(),
    })
    // The joiner's view may teach this node of others it has missed.
    this.#mergeLeafSet(now, message.leafSet)
  }

  #onAnnounceAck(now: number, message: MessageOf<'announceAck'>): void {
    this.#mergeLeafSet(now, message.leafSet)
    if (this.#state !== 'joining') return
    const hex = message.from.id.toHex()
    // The first answer to a single announce measures the RTT to the member, which the greeting
    // on activation passes on: the member then weighs this node for its tables without a probe.
    const sentAt = this.#announceSentAt.get(hex)
    if (sentAt !== undefined) {
      this.#announceSentAt.delete(hex)
      const s = this.#slot(message.from)
      if (!Number.isFinite(this.#peers.get(s, SRTT))) this.#rttSample(s, now - sentAt)
    }
    this.#confirmed.set(hex, true)
    this.#insertLeaf(now, message.from)
    this.#maybeActivate(now)
  }

  #onAnnounceTimeout(now: number): void {
    if (this.#state !== 'joining') return
    // Members that have not confirmed are asked again, `probeRetries` times, and then taken for
    // failed; the rest of the leaf set decides.
    for (const n of this.#leafMembers()) {
      const hex = n.id.toHex()
      const tries = this.#announced.get(hex)
      if (tries === undefined || this.#confirmed.has(hex)) continue
      if (tries <= this.config.probeRetries) this.#announceTo(now, n, true)
      else if (!this.#askOthers(now, n)) this.#declareFailed(now, n)
    }
    for (const n of this.#leafMembers()) this.#announceTo(now, n)
    const attempt = this.#joinAttempt
    const active = this.#maybeActivate(now)
    if (!active && this.#state === 'joining' && attempt === this.#joinAttempt) {
      // The members that confirmed hold the keys this node will own for joinTimeoutMs after its
      // announce (`#arriving`), and a join still waiting on a silent member can last longer: each
      // round renews their wait, so that none delivers such a key itself when this node turns
      // active and its first heartbeat is still on the way.
      for (const n of this.#leafMembers())
        if (this.#confirmed.has(n.id.toHex())) this.#announceTo(now, n, true)
      this.#deadlines.push(now + this.#announceWaitMs(), 'announce', this.#joinAttempt)
    }
  }

  #maybeActivate(now: number): boolean {
    if (this.#state !== 'joining' || !this.#joinReplied) return false
    if (this.leafSet.isEmpty) {
      // Everyone it heard of went silent: this join attempt failed. Never become active alone on
      // the word of nodes that vanished; ask again.
      this.#restartJoin(now)
      return false
    }
    for (const n of this.#leafMembers()) if (!this.#confirmed.has(n.id.toHex())) return false
    this.#announced.clear()
    this.#announceSentAt.clear()
    this.#confirmed.clear()
    this.#secondChance.clear()
    this.#becomeActive(now)
    return true
  }

  // ---------------------------------------------------------------------------------------------
  // Routing

  #onRouted(now: number, from: NodeHandle, routed: Routed): void {
    // Every hop is acknowledged, duplicates included, so that the sender stops retrying.
    this.#transmit(now, from.address, from, { type: 'ack', from: this.handle, msgId: routed.msgId })
    // A copy of a message this node is still forwarding is a duplicate. (A message that comes back
    // after it was acknowledged onward is routed again: hop limits bound any loop, and deliveries
    // are de-duplicated at the root.)
    if (this.#pending.has(routed.msgId)) return
    if (routed.kind === 'join') this.#sendJoinRows(now, routed.origin)
    this.#process(now, routed, 0)
  }

  /** Decides what to do with a message in this node's care, and does it. */
  #process(now: number, routed: Routed, attempts: number): void {
    if (this.#state === 'joining') {
      this.#hold(routed, attempts, '')
      return
    }
    if (this.#state !== 'active') return
    this.#excludeJoiner = routed.kind === 'join' ? routed.origin.id : undefined
    const decision: RouteDecision<NodeHandle> = nextHop(this.#routeTables, routed.key, this.#exclude)
    this.#excludeJoiner = undefined
    if (decision.type === 'deliver') {
      // Consistent routing: not while a closer leaf is only suspected.
      const waitOn = this.#closerSuspectedLeaf(routed) ?? this.#closerArriving(now, routed)
      if (waitOn !== undefined) {
        this.#hold(routed, attempts, waitOn.id.toHex())
        return
      }
      this.#deliver(now, routed)
      return
    }
    let to = decision.node
    let payload = routed.payload
    if (routed.kind === 'route') {
      const hooks = this.#apps.get(routed.app)
      if (hooks?.forward !== undefined) {
        const verdict = hooks.forward(deliveryOf(routed), to)
        if (verdict.action === 'drop') return
        if (verdict.action === 'replace') payload = verdict.payload
        if (verdict.action === 'redirect') to = verdict.to
      }
    }
    if (routed.hops + 1 > MAX_HOPS) {
      this.#fail(routed, 'hop-limit')
      return
    }
    this.#transmitRouted(now, payload === routed.payload ? routed : { ...routed, payload }, to, attempts)
  }

  /**
   * Sends a routed message one hop on, to `to`, and awaits its ack. `routed.hops` counts the hops
   * before this one: the message leaves with one more, and is kept pending as it is.
   */
  #transmitRouted(now: number, routed: Routed, to: NodeHandle, attempts = 0): void {
    if (this.#pending.size >= this.config.maxPendingRoutes) {
      this.#fail(routed, 'overloaded')
      return
    }
    const hops = routed.hops + 1
    const message: Message =
      routed.kind === 'route'
        ? {
            type: 'route',
            from: this.handle,
            msgId: routed.msgId,
            key: routed.key,
            origin: routed.origin,
            hops,
            app: routed.app,
            payload: routed.payload,
          }
        : { type: 'join', from: this.handle, msgId: routed.msgId, joiner: routed.origin, hops }
    this.#transmit(now, to.address, to, message)
    const deadline = now + this.#ackTimeoutMs(to)
    this.#pending.set(routed.msgId, {
      routed,
      to,
      sentAt: now,
      attempts: attempts + 1,
      deadline,
    })
    this.#deadlines.push(deadline, 'ack', routed.msgId)
  }

  #onAck(now: number, from: NodeHandle, msgId: number): void {
    const p = this.#pending.get(msgId)
    if (p === undefined || !p.to.id.equals(from.id)) return
    this.#pending.delete(msgId)
    // Each pending record is one transmission to one node, so its ack times that round trip
    // unambiguously (retransmissions go to other nodes, under records of their own).
    this.#rttSample(this.#slot(from), now - p.sentAt)
  }

  #onAckTimeout(now: number, msgId: number): void {
    const p = this.#pending.get(msgId)
    if (p === undefined || p.deadline > now) return
    this.#pending.delete(msgId)
    this.#suspect(now, p.to)
    if (this.#cellMembers.size > 0) this.#refreshCellOf(now, p.to)
    if (p.attempts >= this.config.maxRouteAttempts) {
      this.#fail(p.routed, 'attempts-exhausted')
      return
    }
    this.#process(now, p.routed, p.attempts)
  }

  #deliver(now: number, routed: Routed): void {
    if (routed.kind === 'join') {
      const rows = this.#rowsFor(routed.origin.id)
      this.#transmit(now, routed.origin.address, routed.origin, {
        type: 'joinReply',
        from: this.handle,
        leafSet: this.#leafMembers(),
        rows,
      })
      return
    }
    if (this.#delivered.has(routed.msgId)) return
    this.#delivered.set(routed.msgId, true)
    this.#emit({
      type: 'deliver',
      msgId: routed.msgId,
      key: routed.key,
      app: routed.app,
      payload: routed.payload,
      origin: routed.origin,
      hops: routed.hops,
    })
  }

  #hold(routed: Routed, attempts: number, waitingOn: string): void {
    if (this.#held.length >= this.config.maxHeldMessages) {
      this.#fail(routed, 'overloaded')
      return
    }
    this.#held.push({ routed, attempts, waitingOn })
  }

  /** Routes again every message held on the peer `hex` (whose fate is now known). */
  #release(now: number, hex: string): void {
    if (this.#held.length === 0) return
    const ready: Held[] = []
    for (let i = this.#held.length - 1; i >= 0; i--) {
      if (this.#held[i]!.waitingOn === hex) ready.push(...this.#held.splice(i, 1))
    }
    for (const h of ready.reverse()) this.#process(now, h.routed, h.attempts)
  }

  #closerSuspectedLeaf(routed: Routed): NodeHandle | undefined {
    if (this.#suspectedCount === 0) return undefined
    let best: NodeHandle | undefined
    let bestId = this.id
    for (const n of this.#leafMembers()) {
      const s = this.#peers.find(n.id)
      if (s < 0 || (this.#peers.flags(s) & SUSPECTED) === 0) continue
      if (routed.kind === 'join' && n.id.equals(routed.origin.id)) continue
      if (compareDistance(routed.key, n.id, bestId) < 0) {
        best = n
        bestId = n.id
      }
    }
    return best
  }

  /** The closest joiner still arriving (see `#arriving`) that is closer to the key than this node. */
  #closerArriving(now: number, routed: Routed): NodeHandle | undefined {
    if (this.#arriving.size === 0) return undefined
    let best: NodeHandle | undefined
    let bestId = this.id
    for (const { handle, until } of this.#arriving.values()) {
      if (until <= now) continue
      // A joiner's own JOIN never waits on the joiner.
      if (routed.kind === 'join' && handle.id.equals(routed.origin.id)) continue
      if (compareDistance(routed.key, handle.id, bestId) < 0) {
        best = handle
        bestId = handle.id
      }
    }
    return best
  }

  #fail(routed: Routed, reason: RouteFailureReason): void {
    if (routed.kind !== 'route') return
    this.#emit({ type: 'routeFailed', msgId: routed.msgId, key: routed.key, app: routed.app, reason })
  }

  /**
   * A node on the join path sends the joiner the two deepest rows it shares with it: the row that
   * is its own on the path (it shares that many digits) and the one before, which the hop before
   * it shares in the usual case of one digit more per hop. Its shallower rows hold nodes near it,
   * not near the joiner, which already has nearer candidates for those rows from earlier hops
   * (the first hop, found near it, sends row 0): at 10,000 nodes sending every row cost 3.4 %
   * more events, almost all of them probes of such candidates, for an RDP better by 0.006. The
   * root's `joinReply` still carries all of its rows, so no row goes without candidates.
   */
  #sendJoinRows(now: number, joiner: NodeHandle): void {
    if (this.#state !== 'active') return
    const rows = this.#rowsFor(joiner.id, 2)
    this.#transmit(now, joiner.address, joiner, { type: 'joinRows', from: this.handle, rows })
  }

  /**
   * The non-empty rows of the prefix this node shares with `joiner`, at most the `deepest` of them,
   * counted from the last row the table has allocated (rows past it are empty).
   */
  #rowsFor(joiner: Id, deepest = Number.POSITIVE_INFINITY): { row: number; entries: NodeHandle[] }[] {
    const l = this.id.sharedPrefixLength(joiner, this.config.b)
    const rows: { row: number; entries: NodeHandle[] }[] = []
    const last = Math.min(l, this.routingTable.rowCount - 1)
    for (let r = Math.max(0, last + 1 - deepest); r <= last; r++) {
      const entries = this.routingTable.row(r)
      if (entries.length > 0) rows.push({ row: r, entries })
    }
    return rows
  }

  #unusable(n: NodeHandle): boolean {
    if (this.#suspectedCount > 0) {
      const s = this.#peers.find(n.id)
      if (s >= 0 && (this.#peers.flags(s) & SUSPECTED) !== 0) return true
    }
    return this.#failed.size > 0 && this.#failed.has(n.id.toHex())
  }

  #closestOther(key: Id, avoid?: Id): NodeHandle | undefined {
    let best: NodeHandle | undefined
    for (const n of this.#leafMembers()) {
      if (this.#unusable(n) || (avoid !== undefined && n.id.equals(avoid))) continue
      if (best === undefined || compareDistance(key, n.id, best.id) < 0) best = n
    }
    return best
  }

  // ---------------------------------------------------------------------------------------------
  // Tables and peers

  #heard(now: number, from: NodeHandle, learn: boolean): void {
    const peers = this.#peers
    // A node this one has no record of, heard in passing (a probe, a request, an answer: nothing
    // that shows it may enter the tables), gets none: every joiner probes and asks a few hundred
    // nodes, and a record each would only be made to be pruned. A node declared failed is the
    // exception: hearing from it at all revives it (below).
    if (!learn && peers.find(from.id) < 0 && (this.#failed.size === 0 || !this.#failed.has(from.id.toHex())))
      return
    const known = peers.size
    const s = this.#slot(from)
    const isNew = peers.size > known
    peers.set(s, LAST_HEARD, now)
    const failure = this.#failed.size === 0 ? undefined : this.#failed.get(from.id.toHex())
    // A node that left stays out of the tables, whatever it sends on its way out, until it
    // announces itself again.
    if (failure?.left === true) return
    const wasFailed = failure !== undefined
    if (wasFailed) this.#forgetFailure(from)
    if ((peers.flags(s) & SUSPECTED) !== 0) {
      this.#setSuspected(s, false)
      this.#release(now, from.id.toHex())
    }
    if (learn && this.#arriving.size > 0 && this.#state === 'active') {
      const hex = from.id.toHex()
      if (this.#arriving.delete(hex)) {
        // The joiner is active: into the tables now, then what waited on it goes on to it.
        this.#considered.delete(hex)
        this.#consider(now, from)
        this.#release(now, hex)
        return
      }
    }
    // An active node in a deep cell known whole belongs in its list (it joined the cell since).
    // (The row is checked first: most senders sit in shallow rows, and the map is then not read.)
    if (learn && this.#state === 'active') {
      const at = this.routingTable.cellIndexOf(from.id)
      if (at >= 0 && at >> this.config.b >= this.#firstDeepRow()) {
        const list = this.#cellMembers.get(at)
        if (list != null && !this.#listed(list, from)) this.#noteCellMember(now, from, at)
      }
    }
    // Learn from traffic: an active node heard from for the first time, or back from the dead, or
    // not in the tables and not offered lately, is a candidate for the tables.
    if (
      learn &&
      this.#state === 'active' &&
      (isNew || wasFailed || (peers.flags(s) & (IN_LEAF_SET | IN_ROUTING_TABLE)) === 0)
    ) {
      const hex = from.id.toHex()
      const until = this.#considered.get(hex)
      if (wasFailed || until === undefined || until <= now) {
        // Whole milliseconds, rounded up: a small integer is stored in the map's entry itself,
        // where a fractional time would be a number object of its own (256 entries per node).
        this.#considered.set(hex, Math.ceil(now + this.config.routingTableMaintenanceMs))
        this.#consider(now, from)
      }
    }
  }

  /**
   * Keeps the peer records bounded: records of nodes that are in no table, have no probe in flight
   * and are not suspected are dropped, oldest first, beyond {@link SPARE_PEER_RECORDS} of them.
   * Runs at the end of an input, once {@link SPARE_PEER_RECORDS} records were made since the last
   * time and on every tick, so that a record's slot stays valid for the whole of the input that
   * reads it.
   */
  #prunePeers(): void {
    // While many records are pinned (probes in flight during a join), a walk may free nothing, and
    // walking on every insertion would cost O(records) each time. The bound stays: records ≤
    // pinned + 3 × SPARE_PEER_RECORDS + the records one input makes (bounded by its message).
    this.#pruneDue = false
    this.#newPeersSincePrune = 0
    const peers = this.#peers
    const pinned = this.leafSet.size + this.routingTable.size + this.neighbourhood.size
    if (peers.size > pinned + 2 * SPARE_PEER_RECORDS) {
      // The spare records, and their creation orders (distinct numbers) sorted apart: the oldest
      // `excess` of them go, those made no later than the excess-th oldest.
      const high = peers.highWater
      if (PRUNE_SLOTS.length < high) {
        PRUNE_SLOTS = new Int32Array(high * 2)
        PRUNE_CREATED = new Float64Array(high * 2)
      }
      const slots = PRUNE_SLOTS
      const created = PRUNE_CREATED
      let count = 0
      for (let s = 0; s < high; s++) {
        if (!peers.inUse(s) || peers.get(s, PROBE_NONCE) >= 0) continue
        if ((peers.flags(s) & (SUSPECTED | IN_TABLES)) === 0) {
          slots[count] = s
          created[count++] = peers.get(s, CREATED)
        }
      }
      const excess = Math.min(count, peers.size - pinned - SPARE_PEER_RECORDS)
      if (excess > 0) {
        const last = created.subarray(0, count).sort()[excess - 1]!
        for (let i = 0; i < count; i++) {
          const s = slots[i]!
          if (peers.get(s, CREATED) <= last) peers.remove(s)
        }
      }
    }
    // A join pins many records for a while (probes in flight); give the room back after. The
    // probes' timeouts name their records' slots, which compaction renumbers.
    const moved = peers.compact()
    if (moved !== undefined)
      this.#deadlines.rekey('probe', (key) => {
        const s = Math.floor(key / SLOT_FACTOR)
        const to = s >= 0 && s < moved.length ? moved[s]! : -1
        return to < 0 ? -1 : to * SLOT_FACTOR + (key - s * SLOT_FACTOR)
      })
  }

  /** The slot of a peer's record, made if new. A changed address replaces the stored handle. */
  #slot(handle: NodeHandle): number {
    const peers = this.#peers
    let s = peers.find(handle.id)
    if (s < 0) {
      // Every table member has a record (pruning spares them), so a new record is in no table.
      s = peers.add(handle, this.#lastNow)
      if (++this.#newPeersSincePrune >= SPARE_PEER_RECORDS) this.#pruneDue = true
    } else {
      const stored = peers.handle(s)
      if (stored !== handle && stored.address !== handle.address) peers.setHandle(s, handle)
    }
    return s
  }

  /** Sets or clears one flag on the record of `id`, if it has one. */
  #flag(id: Id, bit: number, on: boolean): void {
    const s = this.#peers.find(id)
    if (s < 0) return
    const f = this.#peers.flags(s)
    this.#peers.setFlags(s, on ? f | bit : f & ~bit)
  }

  #setSuspected(s: number, on: boolean): void {
    const f = this.#peers.flags(s)
    if (((f & SUSPECTED) !== 0) === on) return
    this.#peers.setFlags(s, on ? f | SUSPECTED : f & ~SUSPECTED)
    this.#suspectedCount += on ? 1 : -1
  }

  /**
   * The leaf set's members (clockwise half first), as one array shared until the set changes: by
   * outgoing messages too, so nothing may change it. It is not frozen, because V8 reads a frozen
   * array's elements through a generic path that cost about 8 % of a simulation's instructions.
   */
  #leafMembers(): readonly NodeHandle[] {
    let m = this.#leafCache
    if (m === undefined) {
      m = this.leafSet.members()
      this.#leafCache = m
    }
    return m
  }

  /** Offers a node to the routing table, keeping the membership flags in step. */
  #rtInsert(n: NodeHandle, proximityMs: number): void {
    const rt = this.routingTable
    const at = rt.cellIndexOf(n.id)
    if (at < 0) return
    const present = rt.atIndex(at)
    rt.insert(n, proximityMs)
    if (this.config.deepCellMembers > 0 && this.#state === 'active')
      this.#noteCellMember(this.#lastNow, n, at)
    if (rt.atIndex(at) === present || present?.id.equals(n.id) === true) return
    if (present !== undefined) this.#flag(present.id, IN_ROUTING_TABLE, false)
    const s = this.#slot(n)
    this.#peers.setFlags(s, this.#peers.flags(s) | IN_ROUTING_TABLE)
  }

  /** Offers a node to the neighbourhood set, keeping the membership flags in step. */
  #nbInsert(n: NodeHandle, proximityMs: number): void {
    const nb = this.neighbourhood
    const peers = this.#peers
    const s = this.#slot(n)
    const wasMember = (peers.flags(s) & IN_NEIGHBOURHOOD) !== 0
    const size = nb.size
    const last = nb.farthest()
    nb.insert(n, proximityMs)
    if (wasMember) return
    // A new member either took room (the set grew) or pushed out the farthest.
    const grew = nb.size > size
    if (!grew && nb.farthest() === last) return
    if (!grew && last !== undefined) this.#flag(last.id, IN_NEIGHBOURHOOD, false)
    peers.setFlags(s, peers.flags(s) | IN_NEIGHBOURHOOD)
  }

  /**
   * The first routing-table row whose cells should hold at most `deepCellMembers` nodes, by the
   * overlay size that the leaf set's span implies (L members over that fraction of the ring), or
   * Infinity when the leaf set cannot tell (not full on both sides, or spanning the whole ring).
   */
  #firstDeepRow(): number {
    if (this.#deepRowVersion === this.#leafSetVersion) return this.#deepRow
    this.#deepRowVersion = this.#leafSetVersion
    const ls = this.leafSet
    const half = this.config.leafSetSize / 2
    let row = Number.POSITIVE_INFINITY
    if (this.config.deepCellMembers > 0 && ls.cwSize === half && ls.ccwSize === half && !spansRing(ls)) {
      const fraction = clockwiseFraction(ls.farthest('ccw')!.id, ls.farthest('cw')!.id) + 2 ** -64
      const nodes = (ls.size + 1) / fraction
      const b = this.config.b
      row = Math.max(0, Math.ceil(Math.log2(nodes / this.config.deepCellMembers) / b - 1))
    }
    this.#deepRow = row
    return row
  }

  /**
   * Keeps `n`, a live node that belongs in routing-table cell `at`, among the cell's known members
   * when the cell is in a deep row and has room. The first member known of a cell is asked for its
   * leaf set, which holds the rest of so small a cell.
   */
  #noteCellMember(now: number, n: NodeHandle, at: number): void {
    if (at >> this.config.b < this.#firstDeepRow()) return
    const list = this.#cellMembers.get(at)
    if (list === undefined) {
      this.#cellMembers.set(at, null)
      this.#askCell(now, n, at)
      return
    }
    if (list === null || this.#listed(list, n)) return
    // A node new to a whole cell joined it since: the cell stays whole, or grew past small.
    if (list.length < this.config.deepCellMembers) list.push(n)
    else this.#cellMembers.set(at, null)
    this.#uncacheRow(at >> this.config.b)
  }

  /**
   * True when `list` holds `n`'s node, which then replaces the handle stored (the same node may come
   * with a new address). The identity pass first: a node's handle is usually one shared object, and
   * comparing ids reads every member's handle and id.
   */
  #listed(list: NodeHandle[], n: NodeHandle): boolean {
    for (let i = 0; i < list.length; i++) if (list[i] === n) return true
    const id = n.id
    for (let i = 0; i < list.length; i++) {
      if (list[i]!.id.equals(id)) {
        list[i] = n
        return true
      }
    }
    return false
  }

  /** Forgets the members of `row` gathered for `nextHop`, after a list of the row changed. */
  #uncacheRow(row: number): void {
    if (row < this.#rowMemberCache.length) this.#rowMemberCache[row] = undefined
  }

  /**
   * The known members of the cells of `row` when it is deep now, for `nextHop`. Only rows that are
   * deep now: a list kept while the overlay was smaller holds a few of a cell that has since
   * grown, where the proximity-chosen entry is the better hop.
   */
  #rowMembers(row: number): readonly NodeHandle[] | undefined {
    if (this.#cellMembers.size === 0 || row < this.#firstDeepRow()) return undefined
    let all = this.#rowMemberCache[row]
    if (all === undefined) {
      const out: NodeHandle[] = []
      const cols = 1 << this.config.b
      for (let at = row * cols; at < (row + 1) * cols; at++) {
        const list = this.#cellMembers.get(at)
        if (list != null) for (const m of list) out.push(m)
      }
      all = out
      this.#rowMemberCache[row] = all
    }
    return all.length === 0 ? undefined : all
  }

  #askCell(now: number, n: NodeHandle, at: number): void {
    this.#cellAsks ??= new BoundedMap<string, number>(MAX_CELL_ASKS)
    this.#cellAsks.set(n.id.toHex(), at)
    this.#transmit(now, n.address, n, { type: 'leafSetRequest', from: this.handle })
  }

  /**
   * The answer to {@link #askCell}. `from` and its leaf set are a run of consecutive nodes of the
   * ring; a deep cell with nodes of the run beyond it on both sides lies whole inside the run, so
   * its members there are all its members. Each such cell of at most `deepCellMembers` nodes gets
   * that list; a larger one is marked null. The asked cell, if not seen whole, is marked null.
   */
  #learnCell(from: NodeHandle, leafSet: readonly NodeHandle[], at: number): void {
    const b = this.config.b
    const deep = this.#firstDeepRow()
    const rt = this.routingTable
    // The run in ring order, by signed clockwise offset from `from` (a leaf set spans a tiny arc):
    // an insertion sort into scratch arrays (stable, and a run holds at most 65 nodes).
    const runNodes = RUN_NODES
    const runOffsets = RUN_OFFSETS
    const runCells = RUN_CELLS
    let length = 0
    for (let i = -1; i < leafSet.length && length < RUN_OFFSETS.length; i++) {
      const m = i < 0 ? from : leafSet[i]!
      const f = clockwiseFraction(from.id, m.id)
      const offset = f >= 0.5 ? f - 1 : f
      // A node listed twice has the same offset, so only the entries of an equal offset, which sit
      // just before the insertion point, need their ids compared.
      let k = length
      while (k > 0 && runOffsets[k - 1]! > offset) k--
      let dup = false
      for (let d = k - 1; d >= 0 && runOffsets[d] === offset && !dup; d--)
        dup = runNodes[d] === m || runNodes[d]!.id.equals(m.id)
      if (dup) continue
      k = length++
      for (; k > 0 && runOffsets[k - 1]! > offset; k--) {
        runNodes[k] = runNodes[k - 1]!
        runOffsets[k] = runOffsets[k - 1]!
        runCells[k] = runCells[k - 1]!
      }
      runNodes[k] = m
      runOffsets[k] = offset
      runCells[k] = this.#isSelf(m.id) ? -1 : rt.cellIndexOf(m.id)
    }
    const cap = this.config.deepCellMembers
    let askedWhole = false
    for (let i = 0; i < length; ) {
      let j = i
      while (j < length && runCells[j] === runCells[i]) j++
      const cell = runCells[i]!
      // Whole when nodes of the run lie on both sides of it.
      if (cell >= 0 && cell >> b >= deep && i > 0 && j < length) {
        if (cell === at) askedWhole = true
        const members: NodeHandle[] = []
        for (let k = i; k < j; k++) {
          const m = runNodes[k]!
          const hex = m.id.toHex()
          if (this.#failed.size > 0 && this.#failed.has(hex)) continue
          members.push(m)
          if (this.#greeted !== undefined && !this.#greeted.has(hex)) {
            this.#greeted.add(hex)
            this.#transmit(this.#lastNow, m.address, m, { type: 'heartbeat', from: this.handle })
          }
        }
        this.#cellMembers.set(cell, members.length <= cap && members.length > 0 ? members : null)
        this.#uncacheRow(cell >> b)
      }
      i = j
    }
    runNodes.fill(undefined, 0, length)
    if (!askedWhole && at >> b >= deep) {
      this.#cellMembers.set(at, null)
      this.#uncacheRow(at >> b)
    }
  }

  /**
   * A hop to `n` went unacknowledged. When `n` is on a deep cell's member list, that list was
   * learned a while ago and may hold other nodes that have left since: `n` leaves the list (an
   * answer that lists it brings it back), and the cell is asked again, through its entry or another
   * member, at most once per probe timeout. This costs a request and its answer, on failures only.
   */
  #refreshCellOf(now: number, n: NodeHandle): void {
    const at = this.routingTable.cellIndexOf(n.id)
    if (at < 0 || at >> this.config.b < this.#firstDeepRow()) return
    const list = this.#cellMembers.get(at)
    if (list == null || !this.#listed(list, n)) return
    this.#dropCellMember(n)
    this.#cellRefreshAt ??= new Map<number, number>()
    const next = this.#cellRefreshAt.get(at)
    if (next !== undefined && next > now) return
    this.#cellRefreshAt.set(at, now + this.config.probeTimeoutMs)
    this.#askCellAgain(now, at, n)
  }

  /**
   * Asks every deep cell with a member list again, through its entry (or a member). Called with the
   * checks of silent entries that failures bring on (`#checkEvery`): under churn the members of a
   * cell come and go, and a list learned once would keep crashed nodes until a hop to each timed
   * out, and miss the nodes that joined since. One answer renews a whole list, so this costs a
   * request and its answer per cell rather than a probe per member.
   */
  #refreshDeepCells(now: number): void {
    const deep = this.#firstDeepRow()
    const b = this.config.b
    for (const [at, list] of this.#cellMembers)
      if (list !== null && at >> b >= deep) this.#askCellAgain(now, at)
  }

  /**
   * Asks deep cell `at` for its members again, through its routing-table entry, or a listed member
   * when it has none or the entry is `avoid` (a node that did not answer).
   */
  #askCellAgain(now: number, at: number, avoid?: NodeHandle): void {
    const entry = this.routingTable.atIndex(at)
    const ask =
      entry !== undefined && (avoid === undefined || !entry.id.equals(avoid.id))
        ? entry
        : this.#cellMembers.get(at)?.[0]
    if (ask !== undefined) this.#askCell(now, ask, at)
  }

  /** Takes a node out of its deep cell's members. */
  #dropCellMember(n: NodeHandle): void {
    const at = this.routingTable.cellIndexOf(n.id)
    const list = this.#cellMembers.get(at)
    if (list == null) return
    const i = list.findIndex((m) => m.id.equals(n.id))
    if (i < 0) return
    list.splice(i, 1)
    // An empty cell stays known as empty (a whole cell with no members is still whole).
    this.#uncacheRow(at >> this.config.b)
  }

  /** Takes a peer's report of its RTT to this node as a first sample, when none was measured here. */
  #reportedRtt(n: NodeHandle, rttMicros: number): void {
    const s = this.#slot(n)
    if (!Number.isFinite(this.#peers.get(s, SRTT))) this.#rttSample(s, rttMicros / 1000)
  }

  #rttSample(s: number, sampleMs: number): void {
    const peers = this.#peers
    const srtt = peers.get(s, SRTT)
    if (!Number.isFinite(srtt)) {
      peers.set(s, SRTT, sampleMs)
      peers.set(s, RTTVAR, sampleMs / 2)
    } else {
      peers.set(s, RTTVAR, 0.75 * peers.get(s, RTTVAR) + 0.25 * Math.abs(srtt - sampleMs))
      peers.set(s, SRTT, 0.875 * srtt + 0.125 * sampleMs)
    }
  }

  #ackTimeoutMs(to: NodeHandle): number {
    const s = this.#peers.find(to.id)
    const { ackTimeoutMinMs: lo, ackTimeoutMaxMs: hi } = this.config
    const srtt = s < 0 ? Number.NaN : this.#peers.get(s, SRTT)
    if (!Number.isFinite(srtt)) return hi
    return Math.min(hi, Math.max(lo, srtt + 4 * this.#peers.get(s, RTTVAR)))
  }

  /** Inserts a node into the leaf set, emitting `update` events for members that came and went. */
  #insertLeaf(now: number, n: NodeHandle): void {
    if (this.#isSelf(n.id) || (this.#failed.size > 0 && this.#failed.has(n.id.toHex()))) return
    if (!this.leafSet.wouldAccept(n.id)) return
    const before = this.#leafMembers()
    // The record first, so that its flags tell the leaf set as it was.
    this.#slot(n)
    if (!this.leafSet.insert(n)) return
    this.#leafSetChanged(now, before)
    // While joining, every member must confirm this node before it may become active.
    if (this.#state === 'joining' && this.#joinReplied) this.#announceTo(now, n)
  }

  /**
   * After the leaf set changed from `before`: bumps its version, updates the members' flags, and
   * emits `update` events (joined ones in the new order, then departed ones in the old) and
   * `leafSetChanged`.
   */
  #leafSetChanged(_now: number, before: readonly NodeHandle[]): void {
    this.#leafSetVersion++
    this.#leafCache = undefined
    const after = this.#leafMembers()
    const peers = this.#peers
    // A member that stayed is usually the very same handle object, so most checks are a pointer
    // comparison; ids settle the rest (a member whose handle was replaced).
    for (let i = 0; i < after.length; i++) {
      const m = after[i]!
      if (containsHandle(before, m)) continue
      const s = this.#slot(m)
      peers.setFlags(s, peers.flags(s) | IN_LEAF_SET)
      this.#emit({ type: 'update', node: m, joined: true })
    }
    for (let i = 0; i < before.length; i++) {
      const m = before[i]!
      if (containsHandle(after, m)) continue
      this.#flag(m.id, IN_LEAF_SET, false)
      this.#emit({ type: 'update', node: m, joined: false })
    }
    this.#emit({ type: 'leafSetChanged', size: after.length })
  }

  /**
   * Offers a node for the tables. Leaf-set candidates heard from recently go straight in; others
   * are probed first. Routing-table and neighbourhood candidates are probed for their RTT, unless
   * it is already known.
   */
  #consider(now: number, n: NodeHandle): void {
    if (this.#isSelf(n.id)) return
    if (this.#failed.size > 0 && this.#failed.has(n.id.toHex())) return
    // Until the root's answer, a joiner's leaf set is empty and would take anyone: the rows that
    // path nodes send are for its routing table, and the root's answer brings the leaf set.
    const leafCandidate = (this.#state !== 'joining' || this.#joinReplied) && this.leafSet.wouldAccept(n.id)
    this.#offer(now, n, leafCandidate)
  }

  /** `#consider` past its checks, told whether the leaf set would take the node. */
  #offer(now: number, n: NodeHandle, leafCandidate: boolean): void {
    const peers = this.#peers
    const s = peers.find(n.id)
    if (leafCandidate) {
      const fresh = s >= 0 && now - peers.get(s, LAST_HEARD) < this.config.leafSetTimeoutMs
      if (fresh) this.#insertLeaf(now, n)
      else this.#probe(now, n, LEAF_CANDIDATE)
    }
    const rt = this.routingTable
    const at = rt.cellIndexOf(n.id)
    if (at < 0) return
    const present = rt.atIndex(at)
    if (present?.id.equals(n.id) === true) return
    if (!this.config.pns) {
      // Without PNS the first candidate keeps the cell; proximity plays no part.
      this.#rtInsert(n, 0)
      return
    }
    // The RTT known before this offer (a record made just now by a probe has none).
    let rtt = s < 0 ? Number.NaN : peers.get(s, SRTT)
    // While joining, the nearby-seed search may have measured it already, and its record may have
    // been pruned since (it was in no table then).
    if (!Number.isFinite(rtt) && this.#seekSeen.size > 0) rtt = this.#seekSeen.get(n.id.toHex())?.rtt ?? rtt
    if (Number.isFinite(rtt)) {
      this.#rtInsert(n, rtt)
      this.#nbInsert(n, rtt)
      return
    }
    // Probe only when the candidate could take the cell or the neighbourhood set.
    if (present === undefined || rt.proximityAtIndex(at) > 0) this.#probe(now, n, CANDIDATE)
  }

  /** The leaf-set members this node heartbeats and watches: the nearest few on each side. */
  #watchedLeaves(): NodeHandle[] {
    const ls = this.leafSet
    const k = this.config.heartbeatNeighbours
    const out: NodeHandle[] = []
    for (let i = 0; i < k && i < ls.cwSize; i++) out.push(ls.cw(i))
    for (let i = 0; i < k && i < ls.ccwSize; i++) {
      const m = ls.ccw(i)
      if (!containsHandle(out, m)) out.push(m)
    }
    return out
  }

  /**
   * A leaf-set member sent its leaf set: any member of this node's own leaf set that lies within the
   * span of the sender's (or anywhere, when the sender's is not full, so that it knows every node)
   * but is missing from it may have failed, seen from the sender's side. Such a member is probed.
   * A node that has merely not learned of a new member yet costs one answered probe.
   */
  #probeGaps(now: number, from: NodeHandle, theirs: readonly NodeHandle[]): void {
    if (!this.leafSet.contains(from.id)) return
    const half = this.config.leafSetSize / 2
    let ccwEnd: Id | undefined
    let cwEnd: Id | undefined
    if (theirs.length === 2 * half && inLeafSetOrder(from.id, theirs, half)) {
      // The usual case, a full leaf set as its node sends it: the ends are known without a sort.
      cwEnd = theirs[half - 1]!.id
      ccwEnd = theirs[2 * half - 1]!.id
    } else if (theirs.length >= 2 * half) {
      // The half-th nearest clockwise and counter-clockwise of the sender's members.
      const count = sortClockwise(from.id, theirs)
      cwEnd = ORDER[half - 1]!
      ccwEnd = ORDER[count - half]!
    }
    const members = this.#leafMembers()
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!
      if (m.id.equals(from.id) || containsHandle(theirs, m)) continue
      if (ccwEnd !== undefined && cwEnd !== undefined && !onClockwiseArc(ccwEnd, cwEnd, m.id)) continue
      const s = this.#peers.find(m.id)
      if (s >= 0 && (this.#peers.flags(s) & SUSPECTED) !== 0) continue
      this.#suspect(now, m)
    }
  }

  /** True for this node's own id. */
  #isSelf(id: Id): boolean {
    return id.w3 === this.#selfW3 && id.equals(this.id)
  }

  /** Merges a leaf set received from a peer. */
  #mergeLeafSet(now: number, handles: readonly NodeHandle[]): void {
    const failed = this.#failed.size > 0
    const ls = this.leafSet
    for (let i = 0; i < handles.length; i++) {
      const n = handles[i]!
      // Members received as the very objects this node holds, which the leaf set would not take
      // again, are passed over without reading their ids (a large simulation keeps them out of
      // the caches).
      if (n === this.handle || ls.refusesHeld(n)) continue
      if (this.#isSelf(n.id) || (failed && this.#failed.has(n.id.toHex()))) continue
      if (ls.wouldAccept(n.id)) this.#offer(now, n, true)
    }
  }

  #onLeave(now: number, from: NodeHandle, leafSet: readonly NodeHandle[]): void {
    this.#removeEverywhere(now, from, false)
    this.#mergeLeafSet(now, leafSet)
  }

  #suspect(now: number, n: NodeHandle): void {
    const s = this.#slot(n)
    if ((this.#peers.flags(s) & SUSPECTED) !== 0) return
    this.#setSuspected(s, true)
    this.#probe(now, n, SUSPECT)
  }

  #probe(now: number, n: NodeHandle, purpose: number, attempt = 0): void {
    const peers = this.#peers
    const s = this.#slot(n)
    if (peers.get(s, PROBE_NONCE) >= 0) {
      peers.setProbeInfo(s, peers.probeInfo(s) | purpose)
      return
    }
    if (purpose !== SUSPECT && this.#probesInFlight >= this.config.maxProbesInFlight) return
    const nonce = this.#rng.u32()
    peers.setProbe(s, nonce, now, packProbe(purpose, purpose, attempt))
    this.#probesInFlight++
    this.#transmit(
      now,
      n.address,
      n,
      (purpose & WITH_LEAF_SET) !== 0
        ? { type: 'probe', from: this.handle, nonce, leafSet: this.#leafMembers() }
        : { type: 'probe', from: this.handle, nonce },
    )
    this.#deadlines.push(now + this.config.probeTimeoutMs, 'probe', s * SLOT_FACTOR + nonce)
  }

  /** The slot of the record whose probe a timeout's key names, if that probe is still in flight; else -1. */
  #probeSlot(key: number): number {
    const s = Math.floor(key / SLOT_FACTOR)
    const peers = this.#peers
    if (s < 0 || s >= peers.highWater || !peers.inUse(s)) return -1
    return peers.get(s, PROBE_NONCE) === key - s * SLOT_FACTOR ? s : -1
  }

  #onProbeReply(now: number, message: MessageOf<'probeReply'>): void {
    const peers = this.#peers
    const found = peers.find(message.from.id)
    if (found < 0 || peers.get(found, PROBE_NONCE) !== message.nonce) return
    const purposes = peers.probeInfo(found) & PURPOSE_BITS
    const sentAt = peers.get(found, PROBE_SENT_AT)
    peers.clearProbe(found)
    this.#probesInFlight--
    const s = this.#slot(message.from)
    this.#rttSample(s, now - sentAt)
    const rtt = peers.get(s, SRTT)
    const n = message.from
    if ((purposes & (LEAF_CANDIDATE | RECOVER)) !== 0) this.#insertLeaf(now, n)
    if ((purposes & (CANDIDATE | LEAF_CANDIDATE | RECOVER)) !== 0) {
      this.#rtInsert(n, rtt)
      this.#nbInsert(n, rtt)
    }
    if ((purposes & RECOVER) !== 0) this.#emit({ type: 'nodeRecovered', node: n })
    if (message.leafSet !== undefined) this.#mergeLeafSet(now, message.leafSet)
    if ((purposes & SEEK) !== 0) this.#onSeekMeasured(now, n, rtt)
    if ((purposes & VOUCH) !== 0) this.#vouch(now, n, true)
  }

  #onProbeTimeout(now: number, key: number): void {
    const s = this.#probeSlot(key)
    if (s < 0) return
    const peers = this.#peers
    const info = peers.probeInfo(s)
    const sentAt = peers.get(s, PROBE_SENT_AT)
    const peer = peers.handle(s)
    peers.clearProbe(s)
    this.#probesInFlight--
    const attempt = info >>> ATTEMPT_SHIFT
    const sentFirst = (info >>> FIRST_SHIFT) & PURPOSE_BITS
    let purposes = info & PURPOSE_BITS
    // Those who asked for this probe hear of its silence now; it is not repeated for them.
    if ((purposes & VOUCH) !== 0) {
      purposes &= ~VOUCH
      this.#vouch(now, peer, false)
    }
    // Anything heard from a suspected node since clears the suspicion (`#heard`): it is alive, even
    // if every probe or its answer was lost, and must not be declared failed.
    if ((purposes & SUSPECT) !== 0 && (peers.flags(s) & SUSPECTED) === 0) purposes &= ~SUSPECT
    // A checked entry heard from since the check began is alive.
    if ((purposes & CHECK) !== 0 && peers.get(s, LAST_HEARD) >= sentAt - attempt * this.config.probeTimeoutMs)
      purposes &= ~CHECK
    if (attempt < this.config.probeRetries && (purposes & (SUSPECT | LEAF_CANDIDATE | CHECK)) !== 0) {
      // Asked again for every purpose, the one that sent it first.
      const first = (purposes & sentFirst) !== 0 ? sentFirst : PURPOSES.find((p) => (purposes & p) !== 0)!
      this.#probe(now, peer, first, attempt + 1)
      for (const purpose of PURPOSES) {
        if ((purposes & purpose) !== 0 && purpose !== first) this.#probe(now, peer, purpose, attempt + 1)
      }
      return
    }
    if ((purposes & (SUSPECT | CHECK)) !== 0 && !((purposes & SUSPECT) !== 0 && this.#askOthers(now, peer)))
      this.#declareFailed(now, peer)
    if ((purposes & SEEK) !== 0) this.#onSeekMeasured(now, peer, Number.POSITIVE_INFINITY)
  }

  /**
   * A suspected leaf answered none of this node's probes (or, while joining, none of its
   * announces). Before declaring it failed, which hands its keys to others, asks up to
   * `indirectProbes` other live members, nearest it first (they watch it), to probe it. Returns
   * false when there is nobody to ask or the node is not a leaf.
   */
  #askOthers(now: number, n: NodeHandle): boolean {
    const k = this.config.indirectProbes
    const joining = this.#state === 'joining'
    if (k === 0 || !(this.#state === 'active' || joining) || !this.leafSet.contains(n.id)) return false
    const hex = n.id.toHex()
    // One round per leaf: a leaf set holds few members, so a scan finds one under way.
    for (const round of this.#indirect.values()) if (round.peer.id.equals(n.id)) return true
    // A joiner gives one second chance per member, so that one it can never reach does not hold
    // its join for ever; it asks members that confirmed it (active, and reachable).
    if (joining && this.#secondChance.has(hex)) return false
    const peers = this.#peers
    const candidates = this.#leafMembers().filter((m) => {
      if (m.id.equals(n.id)) return false
      if (joining) return this.#confirmed.has(m.id.toHex())
      const s = peers.find(m.id)
      return s < 0 || (peers.flags(s) & SUSPECTED) === 0
    })
    if (candidates.length === 0) return false
    candidates.sort((a, b) => compareDistance(n.id, a.id, b.id))
    let nonce = this.#rng.u32()
    while (this.#indirect.has(nonce)) nonce = this.#rng.u32()
    const helpers = new Set<string>()
    for (const h of candidates.slice(0, k)) {
      helpers.add(h.id.toHex())
      this.#transmit(now, h.address, h, { type: 'indirectProbe', from: this.handle, nonce, target: n })
    }
    this.#indirect.set(nonce, { peer: n, helpers })
    this.#deadlines.push(now + 2 * this.config.probeTimeoutMs, 'indirect', nonce)
    return true
  }

  #onIndirectProbeReply(now: number, message: MessageOf<'indirectProbeReply'>): void {
    const round = this.#indirect.get(message.nonce)
    if (round === undefined || !round.peer.id.equals(message.target)) return
    if (!round.helpers.delete(message.from.id.toHex())) return
    if (message.alive) {
      const peer = round.peer
      this.#indirect.delete(message.nonce)
      // Alive, as another member sees it: as good as hearing from it, so it stays, and what was
      // held for it goes on. Only this node's path to it is in doubt.
      const s = this.#slot(peer)
      this.#peers.set(s, LAST_HEARD, now)
      if ((this.#peers.flags(s) & SUSPECTED) !== 0) {
        this.#setSuspected(s, false)
        this.#release(now, peer.id.toHex())
      }
      const hex = peer.id.toHex()
      if (this.#state === 'joining' && !this.#confirmed.has(hex) && this.leafSet.contains(peer.id)) {
        // A joiner announces itself to it again, from the start.
        this.#secondChance.set(hex, true)
        this.#announced.set(hex, 0)
        this.#announceTo(now, peer, true)
      }
      return
    }
    if (round.helpers.size === 0) this.#indirectVerdict(now, message.nonce)
  }

  #onIndirectTimeout(now: number, nonce: number): void {
    if (this.#indirect.has(nonce)) this.#indirectVerdict(now, nonce)
  }

  /** Nobody reached the leaf: failed, unless it was heard from meanwhile (or, joining, it confirmed). */
  #indirectVerdict(now: number, nonce: number): void {
    const round = this.#indirect.get(nonce)!
    this.#indirect.delete(nonce)
    if (this.#state === 'joining') {
      if (this.#confirmed.has(round.peer.id.toHex())) return
      this.#declareFailed(now, round.peer)
      // As after an announce timeout: newcomers to the leaf set hear of this node, and the join may
      // be complete without the failed member.
      for (const n of this.#leafMembers()) this.#announceTo(now, n)
      this.#maybeActivate(now)
      return
    }
    const s = this.#peers.find(round.peer.id)
    if (s >= 0 && (this.#peers.flags(s) & SUSPECTED) !== 0) this.#declareFailed(now, round.peer)
  }

  /** Another node asks this one to probe `target` for it (`indirectProbe`). */
  #onIndirectProbe(now: number, from: NodeHandle, nonce: number, target: NodeHandle): void {
    if (this.#state !== 'active') return
    if (this.#isSelf(target.id)) {
      this.#transmit(now, from.address, from, {
        type: 'indirectProbeReply',
        from: this.handle,
        nonce,
        target: this.id,
        alive: true,
      })
      return
    }
    const hex = target.id.toHex()
    let asks = this.#vouching.get(hex)
    if (asks === undefined) {
      if (this.#vouching.size >= MAX_VOUCHING) return
      asks = []
      this.#vouching.set(hex, asks)
    }
    if (asks.length >= MAX_ASKERS_PER_TARGET) return
    asks.push({ to: from, nonce })
    this.#probe(now, target, VOUCH)
    // No room for another probe: nothing will come of it, and the asker decides without this node.
    const s = this.#peers.find(target.id)
    if (s < 0 || this.#peers.get(s, PROBE_NONCE) < 0) this.#vouching.delete(hex)
  }

  /** Tells everyone who asked about `n` whether it answered this node's probe. */
  #vouch(now: number, n: NodeHandle, alive: boolean): void {
    const hex = n.id.toHex()
    const asks = this.#vouching.get(hex)
    if (asks === undefined) return
    this.#vouching.delete(hex)
    for (const a of asks)
      this.#transmit(now, a.to.address, a.to, {
        type: 'indirectProbeReply',
        from: this.handle,
        nonce: a.nonce,
        target: n.id,
        alive,
      })
  }

  /** A node is gone: out of every table, remembered as failed, and its holes repaired. */
  #declareFailed(now: number, n: NodeHandle): void {
    this.#removeEverywhere(now, n, true)
  }

  #removeEverywhere(now: number, n: NodeHandle, failed: boolean): void {
    const hex = n.id.toHex()
    const side = this.leafSet.sideOf(n.id)
    const cellRow = this.routingTable.cellOf(n.id)?.row
    const inRt = this.routingTable.contains(n.id)
    const before = side === undefined ? [] : this.#leafMembers()
    const inLeafSet = this.leafSet.remove(n.id)
    if (inLeafSet) this.#leafCache = undefined
    this.routingTable.remove(n.id)
    this.neighbourhood.remove(n.id)
    if (this.#cellMembers.size > 0) this.#dropCellMember(n)
    const s = this.#peers.find(n.id)
    if (s >= 0) this.#peers.setFlags(s, this.#peers.flags(s) & ~(IN_ROUTING_TABLE | IN_NEIGHBOURHOOD))
    this.#announced.delete(hex)
    this.#announceSentAt.delete(hex)
    this.#failed.set(hex, {
      handle: n,
      until: now + this.config.failedMemoryMs,
      wasLeaf: inLeafSet && failed,
      // A verdict may be wrong (lost probes): look again after Tls, then ever less often.
      nextProbe: now + this.config.leafSetHeartbeatMs,
      probeEvery: 2 * this.config.leafSetHeartbeatMs,
      left: !failed,
    })
    if (s >= 0) this.#setSuspected(s, false)
    if (failed && (inLeafSet || inRt)) this.#failures = this.#decayedFailures(now) + 1
    if (failed) this.#emit({ type: 'nodeFailed', node: n })
    if (inLeafSet) {
      this.#leafSetChanged(now, before)
      if (failed) {
        // Members farther out do not watch the failed node themselves: tell them all at once.
        const leafSet = this.#leafMembers()
        for (const m of leafSet)
          this.#transmit(now, m.address, m, { type: 'heartbeat', from: this.handle, leafSet })
      }
      // Refill the hole from the farthest live member on that side.
      for (const side2 of side === 'both' ? (['cw', 'ccw'] as const) : [side!]) {
        const far = this.leafSet.farthest(side2)
        if (far !== undefined)
          this.#transmit(now, far.address, far, { type: 'leafSetRequest', from: this.handle })
      }
    }
    if (inRt && cellRow !== undefined) {
      const peers = this.routingTable.row(cellRow)
      if (peers.length > 0) {
        const ask = peers[this.#rng.int(peers.length)]!
        this.#transmit(now, ask.address, ask, { type: 'rowRequest', from: this.handle, row: cellRow })
      }
    }
    // Messages in flight to it go another way; messages held on it are released.
    if (this.#pending.size > 0) {
      for (const [msgId, p] of [...this.#pending]) {
        if (p.to.id.equals(n.id)) {
          this.#pending.delete(msgId)
          this.#process(now, p.routed, p.attempts)
        }
      }
    }
    this.#release(now, hex)
  }

  #forgetFailure(n: NodeHandle): void {
    const hex = n.id.toHex()
    if (this.#failed.delete(hex)) this.#emit({ type: 'nodeRecovered', node: n })
  }

  // ---------------------------------------------------------------------------------------------
  // Periodic work

  #onTick(now: number): void {
    /** When the next tick runs. */
    const next = now + this.#tickMs()
    // Records pinned by a burst of probes become prunable once the probes settle, whether or not
    // new records come to trigger a pruning.
    this.#pruneDue = true
    if (this.#greeted !== undefined && now >= this.#greetUntil) this.#greeted = undefined
    if (this.#state === 'active') {
      this.#seedDeepCells(now)
      const { leafSetHeartbeatMs, leafSetTimeoutMs } = this.config
      const peers = this.#peers
      // Every few Tls the next heartbeats carry the leaf set even if it has not changed, so that
      // two members that do not watch each other and missed each other's arrival still meet, through
      // a neighbour both watch (it merges the leaf set, and `#probeGaps` checks it).
      if (now >= this.#nextLeafSetRefresh) {
        this.#nextLeafSetRefresh = now + LEAF_SET_REFRESH_TLS * leafSetHeartbeatMs
        this.#leafSetVersion++
      }
      for (const m of this.#watchedLeaves()) {
        const s = this.#slot(m)
        // Sent once 3/4 Tls have passed, so with ticks every Tls/4 no member waits more than Tls.
        // (Every Tls instead would cut maintenance by a quarter, but then two lost heartbeats in a
        // row, rather than three, make a member suspected: under 5% loss that raised false failure
        // verdicts, and with them wrong deliveries, about twentyfold.)
        if (now - peers.get(s, LAST_SENT) >= leafSetHeartbeatMs - this.#tickMs()) {
          const changed = peers.get(s, VERSION_SENT) !== this.#leafSetVersion
          this.#transmit(
            now,
            m.address,
            m,
            changed
              ? { type: 'heartbeat', from: this.handle, leafSet: this.#leafMembers() }
              : { type: 'heartbeat', from: this.handle },
          )
        }
        if (
          (peers.flags(s) & SUSPECTED) === 0 &&
          now - Math.max(peers.get(s, LAST_HEARD), peers.get(s, KNOWN_SINCE)) >= leafSetTimeoutMs
        ) {
          this.#suspect(now, m)
        }
      }
      // Checks between the rounds, when failures call for them; looked at again every tick until
      // then, so that churn starting in a quiet overlay is met within a tick of its first failure.
      if (now >= this.#nextCheck) {
        const every = this.#checkEvery(now)
        if (every < this.config.routingTableMaintenanceMs) {
          this.#checkRoutingTable(now, every)
          if (this.#cellMembers.size > 0) this.#refreshDeepCells(now)
          this.#nextCheck = now + every
        }
      }
      // Joiners that never became active: what waited on them is delivered here after all.
      if (this.#arriving.size > 0) {
        for (const [hex, a] of [...this.#arriving.entries()]) {
          if (a.until > now) continue
          this.#arriving.delete(hex)
          this.#release(now, hex)
        }
      }
      // Look again at a few nodes that failed while in the leaf set: partitions heal.
      if (this.#failed.size > 0) {
        let looked = 0
        for (const [hex, f] of [...this.#failed.entries()]) {
          if (f.until <= now) {
            this.#failed.delete(hex)
            continue
          }
          if (looked < 2 && f.wasLeaf && f.nextProbe <= now) {
            looked++
            f.nextProbe = now + f.probeEvery
            f.probeEvery = Math.min(2 * f.probeEvery, 4 * this.config.leafSetTimeoutMs)
            this.#probeRecovery(now, f.handle)
          }
        }
      }
    }
    this.#deadlines.push(next, 'tick', 0)
  }

  #probeRecovery(now: number, n: NodeHandle): void {
    // The failed mark stays until the node answers; the probe does not count as hearing from it.
    const s = this.#slot(n)
    const peers = this.#peers
    if (peers.get(s, PROBE_NONCE) >= 0) return
    const nonce = this.#rng.u32()
    peers.setProbe(s, nonce, now, packProbe(RECOVER, RECOVER, this.config.probeRetries))
    this.#probesInFlight++
    this.#transmit(now, n.address, n, {
      type: 'probe',
      from: this.handle,
      nonce,
      leafSet: this.#leafMembers(),
    })
    this.#deadlines.push(now + this.config.probeTimeoutMs, 'probe', s * SLOT_FACTOR + nonce)
  }

  #onMaintenance(now: number): void {
    if (this.#state === 'active') this.#checkRoutingTable(now, this.config.routingTableMaintenanceMs)
    if (this.#state === 'active' && this.#cellMembers.size > 0) {
      // Lists of rows no longer deep (the overlay grew) go; one deep cell a round is asked again:
      // members that joined since come in, and the list follows the entry's leaf set, which its
      // own liveness checks keep current.
      const deep = this.#firstDeepRow()
      for (const at of this.#cellMembers.keys()) {
        if (at >> this.config.b >= deep) continue
        this.#cellMembers.delete(at)
        this.#uncacheRow(at >> this.config.b)
      }
      const cells = [...this.#cellMembers.keys()]
      if (cells.length > 0) this.#askCellAgain(now, cells[this.#rng.int(cells.length)]!)
    }
    if (this.#state === 'active' && this.routingTable.rowCount > 0) {
      const row = this.#rng.int(this.routingTable.rowCount)
      const peers = this.routingTable.row(row)
      if (peers.length > 0) {
        const ask = peers[this.#rng.int(peers.length)]!
        this.#transmit(now, ask.address, ask, { type: 'rowRequest', from: this.handle, row })
      }
    }
    const trt = this.config.routingTableMaintenanceMs
    this.#deadlines.push(now + trt * (0.5 + this.#rng.float()), 'maintenance', 0)
  }

  /** `#failures` decayed to `now`, which becomes `#failuresAt`. */
  #decayedFailures(now: number): number {
    const since = this.#failuresAt
    this.#failuresAt = now
    if (this.#failures === 0) return 0
    const f = this.#failures * Math.exp((since - now) / this.config.routingTableMaintenanceMs)
    this.#failures = f < 0.01 ? 0 : f
    return this.#failures
  }

  /**
   * How often silent routing-table entries need checking for about `deadEntryTarget` of them to be
   * dead. A member of the tables fails at a rate μ ≈ failures / (Trt × members) (the decaying count
   * spans about Trt), and a crashed entry, silent from its crash, is found between one and two
   * periods later: about 1.5 periods on average, so a share μ × 1.5 × period of entries is dead.
   * Bounded by `routingTableCheckMinMs` and Trt; Trt when no failure was seen lately.
   */
  #checkEvery(now: number): number {
    const trt = this.config.routingTableMaintenanceMs
    const target = this.config.deadEntryTarget
    const failures = this.#decayedFailures(now)
    if (failures === 0 || target === 0) return trt
    const members = this.leafSet.size + this.routingTable.size
    const every = (target * trt * members) / (1.5 * failures)
    return Math.min(trt, Math.max(Math.min(this.config.routingTableCheckMinMs, trt), every))
  }

  /**
   * Entries are otherwise checked only when a message goes to them; a node that routes little would
   * keep crashed entries for ever, and then try them one after another. Each round probes up to
   * {@link MAX_CHECKS_PER_ROUND} entries outside the leaf set (which has heartbeats) not heard from
   * for `silentMs` (Trt in a maintenance round, less between rounds under churn: `#checkEvery`);
   * one that answers none of the probes is declared failed and its cell repaired.
   */
  #checkRoutingTable(now: number, silentMs: number): void {
    const peers = this.#peers
    const stale = now - silentMs
    let checks = 0
    for (const e of this.routingTable) {
      if (checks >= MAX_CHECKS_PER_ROUND) break
      const s = peers.find(e.id)
      if (s < 0 || (peers.flags(s) & (IN_LEAF_SET | SUSPECTED)) !== 0 || peers.get(s, PROBE_NONCE) >= 0)
        continue
      if (Math.max(peers.get(s, LAST_HEARD), peers.get(s, KNOWN_SINCE)) > stale) continue
      this.#probe(now, e, CHECK)
      checks++
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Output helpers

  #transmit(now: number, address: string, to: NodeHandle | undefined, message: Message): void {
    // The first message of an input waits in a field, and only later ones in the queue: most
    // inputs send one or two, and the queue's array is cold in a large simulation.
    if (this.#firstMessage === undefined && this.#transmitHead === this.#transmitTail) {
      this.#firstTo = address
      this.#firstMessage = message
    } else {
      this.#transmitTo[this.#transmitTail] = address
      this.#transmitMessage[this.#transmitTail++] = message
    }
    this.#counts[typeCode(message.type)]!++
    if (to !== undefined) {
      // Only a peer with a record has its sending noted: a reply to a stranger makes none.
      const s = this.#peers.find(to.id)
      if (s < 0) return
      this.#peers.set(s, LAST_SENT, now)
      if (message.type === 'heartbeat' && message.leafSet !== undefined)
        this.#peers.set(s, VERSION_SENT, this.#leafSetVersion)
    }
  }

  #emit(event: NodeEvent): void {
    this.#events[this.#eventTail++] = event
  }

  #error(code: string, message: string): void {
    this.#emit({ type: 'error', code, message })
  }

  #newMsgId(): number {
    // 53 random bits: two draws.
    return ((this.#rng.u32() & 0x1fffff) * 0x100000000 + this.#rng.u32()) % (MAX_MESSAGE_ID + 1)
  }
}

/**
 * True for messages that only an active node sends, so that hearing one proves the sender may
 * enter the tables. A joiner's announce, probes, row and leaf-set requests (the nearby-seed search)
 * and replies do not count; nor does a JOIN sent by the joiner itself to its bootstrap.
 */
function sentOnlyWhenActive(message: Message): boolean {
  switch (message.type) {
    case 'heartbeat':
    case 'joinRows':
    case 'joinReply':
    case 'route':
      return true
    case 'join':
      return !message.joiner.id.equals(message.from.id)
    default:
      return false
  }
}

// Scratch for #learnCell's run of nodes (one leaf set and its owner), reused by every node: the
// simulator runs many nodes in one thread, and the method neither re-enters nor keeps them.
const RUN_NODES: (NodeHandle | undefined)[] = []
const RUN_OFFSETS = new Float64Array(MAX_LEAF_SET_HANDLES + 1)
const RUN_CELLS = new Int32Array(MAX_LEAF_SET_HANDLES + 1)

// Scratch for #probeGaps: a peer's leaf-set ids in clockwise order from the peer.
const ORDER: Id[] = []

/**
 * Puts the ids of `handles` into {@link ORDER} sorted by clockwise distance from `origin` (an
 * insertion sort: a leaf set is short and arrives nearly in order), and returns how many.
 */
function sortClockwise(origin: Id, handles: readonly NodeHandle[]): number {
  const order = ORDER
  for (let i = 0; i < handles.length; i++) {
    const x = handles[i]!.id
    let k = i
    for (; k > 0 && compareClockwise(origin, order[k - 1]!, x) > 0; k--) order[k] = order[k - 1]!
    order[k] = x
  }
  return handles.length
}

/**
 * True when the 2 × `half` handles are in the order a full leaf set sends them, seen from its node
 * `origin`: the clockwise half nearest first, then the counter-clockwise half nearest first, each
 * strictly farther than the one before and the two halves apart. The clockwise order is then
 * fully known (the first half ascending, then the second descending), so the half-th nearest each
 * way are `handles[half - 1]` and the last, as `sortClockwise` would find; 2 × half − 1
 * comparisons settle it.
 */
function inLeafSetOrder(origin: Id, handles: readonly NodeHandle[], half: number): boolean {
  const n = 2 * half
  for (let i = 1; i < half; i++)
    if (compareClockwise(origin, handles[i - 1]!.id, handles[i]!.id) >= 0) return false
  if (compareClockwise(origin, handles[half - 1]!.id, handles[n - 1]!.id) >= 0) return false
  for (let i = half + 1; i < n; i++)
    if (compareClockwise(origin, handles[i]!.id, handles[i - 1]!.id) >= 0) return false
  return true
}

/** Output queues longer than this are given back once drained, rather than kept for reuse. */
const MAX_KEPT_QUEUE = 64

/** `#prunePeers`'s scratch: spare slots, and their creation orders (sorted in place). */
let PRUNE_SLOTS = new Int32Array(256)
let PRUNE_CREATED = new Float64Array(256)

/** True when `handles` holds `h` itself or another handle with its id. */
function containsHandle(handles: readonly NodeHandle[], h: NodeHandle): boolean {
  for (let i = 0; i < handles.length; i++) if (handles[i] === h) return true
  for (let i = 0; i < handles.length; i++) if (handles[i]!.id.equals(h.id)) return true
  return false
}

/** The node's handle: the one in the options when it fits them, else a new one. */
function ownHandle(options: PastryNodeOptions): NodeHandle {
  const given = options.handle
  if (given === undefined) return Object.freeze({ id: options.id, address: options.address })
  if (
    given === null ||
    typeof given !== 'object' ||
    !Object.isFrozen(given) ||
    !(given.id instanceof Object && typeof given.id.equals === 'function' && given.id.equals(options.id)) ||
    given.address !== options.address
  )
    throw new ConfigError('handle must be a frozen { id, address } with the id and address of the options')
  return given
}

/** The error for a `now` that is not a finite number or went backwards (built out of the hot path). */
function badTime(now: number, last: number): PastryError {
  if (!(typeof now === 'number' && Number.isFinite(now)))
    return new PastryError('BAD_TIME', `now must be a finite number, got ${now}`)
  return new PastryError('TIME_WENT_BACKWARDS', `now went backwards: ${now} after ${last}`)
}

function deliveryOf(routed: Routed): Delivery {
  return {
    msgId: routed.msgId,
    key: routed.key,
    app: routed.app,
    payload: routed.payload,
    origin: routed.origin,
    hops: routed.hops,
  }
}

function checkAppName(name: string): void {
  if (typeof name !== 'string' || utf8Length(name) > MAX_APP_NAME_BYTES) {
    throw new PastryError(
      'BAD_APP_NAME',
      `an application name is a string of at most ${MAX_APP_NAME_BYTES} UTF-8 bytes`,
    )
  }
}
