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
 * toward J's id like any message, with per-hop acks. Each node on the path sends J its routing
 * rows up to the prefix it shares with J (`joinRows`); the root, where the JOIN is delivered,
 * sends its leaf set and rows (`joinReply`). J announces itself to every leaf-set member it
 * learned of; each adds J and answers with its own leaf set (`announceAck`), which may teach J of
 * nearer nodes, which J announces itself to in turn. J becomes active only when every member of
 * its leaf set has confirmed it. Until then it holds any routed message that reaches it.
 *
 * Liveness. A node makes sure each leaf-set member hears from it at least every Tls
 * (`leafSetHeartbeatMs`), sending a heartbeat when no other traffic did. A member not heard from
 * for `leafSetTimeoutMs` is suspected and probed; `probeRetries` unanswered retries declare it
 * failed. Routing-table entries are checked on use: every hop is acknowledged, and a missing ack
 * makes the next hop suspected and the message rerouted around it.
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
import { InvalidIdError, PastryError } from '../errors.js'
import { compareDistance, type Id } from '../id/id.js'
import type { Rng } from '../id/rng.js'
import { nextHop, type RouteDecision } from '../route/next-hop.js'
import { LeafSet } from '../table/leaf-set.js'
import { NeighbourhoodSet } from '../table/neighbourhood-set.js'
import { RoutingTable } from '../table/routing-table.js'
import {
  MAX_APP_NAME_BYTES,
  MAX_HOPS,
  MAX_MESSAGE_ID,
  type Message,
  type MessageOf,
  type NodeHandle,
} from '../wire/messages.js'
import { utf8Length } from '../wire/utf8.js'
import { BoundedMap } from './bounded.js'
import { type ProtocolConfig, resolveConfig } from './config.js'
import { DeadlineHeap } from './deadlines.js'
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
}

interface Peer {
  handle: NodeHandle
  /** When this node first learned of the peer. */
  knownSinceMs: number
  lastHeardMs: number
  lastSentMs: number
  srttMs: number
  rttvarMs: number
  suspected: boolean
  /** Nonce of the probe in flight to this peer, or -1. */
  probeNonce: number
  /** The leaf-set version last sent to this peer. */
  leafSetVersionSent: number
}

type ProbePurpose = 'suspect' | 'candidate' | 'leafCandidate' | 'recover'

interface Probe {
  readonly nonce: number
  readonly peer: NodeHandle
  readonly sentAt: number
  readonly attempt: number
  readonly purposes: Set<ProbePurpose>
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
const SPARE_PEER_RECORDS = 64

/** One Pastry node as a sans-IO state machine. See the module comment and `types.ts`. */
export class PastryNode implements ProtocolNode {
  readonly id: Id
  readonly address: string
  readonly handle: NodeHandle
  readonly config: ProtocolConfig
  readonly leafSet: LeafSet<NodeHandle>
  readonly routingTable: RoutingTable<NodeHandle>
  readonly neighbourhood: NeighbourhoodSet<NodeHandle>

  #state: NodeState = 'idle'
  #lastNow = Number.NEGATIVE_INFINITY
  readonly #rng: Rng
  readonly #transmits: Transmit[] = []
  readonly #events: NodeEvent[] = []
  readonly #deadlines = new DeadlineHeap()
  /**
   * Peer records: every node in a table or with a probe in flight, plus at most
   * {@link SPARE_PEER_RECORDS} others, the most recent (see `#prunePeers`).
   */
  readonly #peers = new Map<string, Peer>()
  /** Nodes recently offered to the tables from traffic, so that chatter does not re-probe them. */
  readonly #considered: BoundedMap<string, number>
  #newPeersSincePrune = 0
  readonly #failed: BoundedMap<
    string,
    { handle: NodeHandle; until: number; wasLeaf: boolean; nextProbe: number; left: boolean }
  >
  readonly #probes = new Map<number, Probe>()
  readonly #pending = new Map<number, PendingRoute>()
  readonly #held: Held[] = []
  readonly #delivered: BoundedMap<number, true>
  readonly #apps = new Map<string, ApplicationHooks>()
  #leafSetVersion = 0
  // Join progress.
  #bootstrap: readonly string[] = []
  #joinAttempt = 0
  #joinMsgId = 0
  #joinReplied = false
  /** Leaf-set members this joiner has announced itself to, and those that have confirmed it. */
  readonly #announced = new Map<string, number>()
  readonly #confirmed = new Set<string>()
  // Counters, for observers.
  readonly #sent: Record<string, number> = {}
  readonly #received: Record<string, number> = {}

  /** Makes an idle node. Call `start` (first node) or `join` next. */
  constructor(options: PastryNodeOptions) {
    this.config = resolveConfig(options.config)
    if (utf8Length(options.address) > 262) throw new InvalidIdError('an address is at most 262 UTF-8 bytes')
    this.id = options.id
    this.address = options.address
    this.handle = Object.freeze({ id: options.id, address: options.address })
    this.#rng = options.rng
    this.leafSet = new LeafSet(this.id, this.config.leafSetSize)
    this.routingTable = new RoutingTable(this.id, this.config.b)
    this.neighbourhood = new NeighbourhoodSet(this.id, this.config.neighbourhoodSize)
    this.#considered = new BoundedMap(256)
    this.#failed = new BoundedMap(this.config.maxFailedMemory)
    this.#delivered = new BoundedMap(this.config.maxDeliveredMemory)
  }

  // ---------------------------------------------------------------------------------------------
  // Getters

  /** The lifecycle state. */
  get state(): NodeState {
    return this.#state
  }

  /** Messages sent and received, by type, since the node was made. */
  get counters(): { sent: Readonly<Record<string, number>>; received: Readonly<Record<string, number>> } {
    return { sent: this.#sent, received: this.#received }
  }

  /** Routed messages awaiting a hop's ack. */
  get pendingRoutes(): number {
    return this.#pending.size
  }

  /** Routed messages held (waiting for activation or for a suspected leaf's fate). */
  get heldMessages(): number {
    return this.#held.length
  }

  /** The smoothed RTT to a peer in ms, if measured. */
  rttTo(id: Id): number | undefined {
    const p = this.#peers.get(id.toHex())
    return p === undefined || !Number.isFinite(p.srttMs) ? undefined : p.srttMs
  }

  /** True when this node suspects the peer (a probe to it is unanswered). */
  isSuspected(id: Id): boolean {
    return this.#peers.get(id.toHex())?.suspected === true
  }

  // ---------------------------------------------------------------------------------------------
  // Outputs

  pollTransmit(): Transmit | undefined {
    return this.#transmits.shift()
  }

  pollEvent(): NodeEvent | undefined {
    return this.#events.shift()
  }

  nextDeadline(): number | undefined {
    return this.#deadlines.peek()?.at
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
    this.#sendJoin(now)
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
    const leafSet = this.leafSet.members()
    const told = new Set<string>()
    for (const n of [...leafSet, ...this.routingTable]) {
      const hex = n.id.toHex()
      if (told.has(hex)) continue
      told.add(hex)
      this.#transmit(now, n.address, n, { type: 'leave', from: this.handle, leafSet })
    }
    // Hand over what is in this node's care: to the closest other node it knows.
    const inCare = [...[...this.#pending.values()].map((p) => p.routed), ...this.#held.map((h) => h.routed)]
    this.#pending.clear()
    this.#held.length = 0
    for (const routed of inCare) {
      const decision = nextHop(this.#tables(), routed.key, (n) => this.#unusable(n))
      const to = decision.type === 'forward' ? decision.node : this.#closestOther(routed.key)
      if (to === undefined) this.#fail(routed, 'closed')
      else this.#transmitRouted(now, { ...routed, hops: routed.hops + 1 }, to)
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
    this.#transmits.length = 0
    this.#shutdown(this.#state)
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  /** Hands in a decoded message from a peer. Messages that do not fit the state are ignored. */
  handleMessage(now: number, message: Message): void {
    this.#advance(now)
    if (this.#state === 'closed' || this.#state === 'idle') return
    const from = message.from
    if (from.id.equals(this.id)) {
      if (from.address !== this.address)
        this.#error('ID_CONFLICT', `a peer at ${from.address} claims this node's id`)
      return
    }
    this.#received[message.type] = (this.#received[message.type] ?? 0) + 1
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
        if (message.leafSet !== undefined) this.#mergeLeafSet(now, message.leafSet)
        return
      case 'probe':
        this.#transmit(now, from.address, from, {
          type: 'probeReply',
          from: this.handle,
          nonce: message.nonce,
          ...(message.leafSet === undefined ? {} : { leafSet: this.leafSet.members() }),
        })
        if (message.leafSet !== undefined) this.#mergeLeafSet(now, message.leafSet)
        return
      case 'probeReply':
        this.#onProbeReply(now, message)
        return
      case 'leafSetRequest':
        this.#transmit(now, from.address, from, {
          type: 'leafSetReply',
          from: this.handle,
          leafSet: this.leafSet.members(),
        })
        return
      case 'leafSetReply':
        this.#mergeLeafSet(now, message.leafSet)
        return
      case 'rowRequest':
        this.#transmit(now, from.address, from, {
          type: 'rowReply',
          from: this.handle,
          row: message.row,
          entries: this.routingTable.row(message.row),
        })
        return
      case 'rowReply':
        for (const n of message.entries) this.#consider(now, n)
        return
      case 'leave':
        this.#onLeave(now, from, message.leafSet)
        return
      case 'direct':
        this.#events.push({ type: 'direct', app: message.app, payload: message.payload, from })
        return
    }
  }

  /** Hands in the passing of time: call when `now` reaches `nextDeadline()`. */
  handleTimeout(now: number): void {
    this.#advance(now)
    for (;;) {
      const d = this.#deadlines.peek()
      if (d === undefined || d.at > now) break
      this.#deadlines.pop()
      if (this.#state === 'closed') continue
      switch (d.kind) {
        case 'tick':
          this.#onTick(now)
          break
        case 'maintenance':
          this.#onMaintenance(now)
          break
        case 'join':
          if (d.key === this.#joinAttempt) this.#onJoinTimeout(now)
          break
        case 'ack':
          this.#onAckTimeout(now, d.key)
          break
        case 'probe':
          this.#onProbeTimeout(now, d.key)
          break
        case 'announce':
          if (d.key === this.#joinAttempt) this.#onAnnounceTimeout(now)
          break
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  #advance(now: number): void {
    if (!(typeof now === 'number' && Number.isFinite(now)))
      throw new PastryError('BAD_TIME', `now must be a finite number, got ${now}`)
    if (now < this.#lastNow) {
      throw new PastryError('TIME_WENT_BACKWARDS', `now went backwards: ${now} after ${this.#lastNow}`)
    }
    this.#lastNow = now
  }

  #transition(from: NodeState, to: NodeState): void {
    if (this.#state !== from)
      throw new IllegalStateError(`cannot go from ${this.#state} to ${to} (expected ${from})`)
    this.#state = to
    this.#events.push({ type: 'stateChanged', from, to })
  }

  #shutdown(from: NodeState): void {
    this.#state = 'closed'
    this.#events.push({ type: 'stateChanged', from, to: 'closed' })
    this.#deadlines.clear()
    this.#probes.clear()
    this.#announced.clear()
    this.#confirmed.clear()
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
    const leafSet = this.leafSet.members()
    const told = new Set<string>()
    for (const n of leafSet) {
      told.add(n.id.toHex())
      this.#transmit(now, n.address, n, { type: 'heartbeat', from: this.handle, leafSet })
    }
    for (const n of this.routingTable) {
      if (told.has(n.id.toHex())) continue
      told.add(n.id.toHex())
      this.#transmit(now, n.address, n, { type: 'heartbeat', from: this.handle })
    }
    const held = this.#held.splice(0)
    for (const h of held) this.#process(now, h.routed, h.attempts)
  }

  // ---------------------------------------------------------------------------------------------
  // Join

  #sendJoin(now: number): void {
    const address = this.#bootstrap[this.#joinAttempt % this.#bootstrap.length]!
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
    this.#confirmed.clear()
    if (this.#joinAttempt >= this.config.joinAttempts) {
      this.#events.push({
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
    this.#joinReplied = true
    for (const row of message.rows) for (const n of row.entries) this.#consider(now, n)
    this.#consider(now, message.from)
    this.#insertLeaf(now, message.from)
    for (const n of message.leafSet) this.#insertLeaf(now, n)
    for (const n of this.leafSet.members()) this.#announceTo(now, n)
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
    this.#transmit(now, n.address, n, {
      type: 'announce',
      from: this.handle,
      leafSet: this.leafSet.members(),
    })
  }

  #onAnnounce(now: number, message: MessageOf<'announce'>): void {
    if (this.#state !== 'active' && this.#state !== 'joining') return
    // The joiner enters this node's tables only once it is active (its first heartbeat): tables
    // hold active nodes alone, so no message is ever routed to a node that may not deliver it.
    // A node that left and now rejoins is welcome again.
    const from = message.from
    if (this.#failed.get(from.id.toHex())?.left === true) this.#failed.delete(from.id.toHex())
    this.#transmit(now, from.address, from, {
      type: 'announceAck',
      from: this.handle,
      accepted: true,
      leafSet: this.leafSet.members(),
    })
    // The joiner's view may teach this node of others it has missed.
    this.#mergeLeafSet(now, message.leafSet)
  }

  #onAnnounceAck(now: number, message: MessageOf<'announceAck'>): void {
    this.#mergeLeafSet(now, message.leafSet)
    if (this.#state !== 'joining') return
    this.#confirmed.add(message.from.id.toHex())
    this.#insertLeaf(now, message.from)
    this.#maybeActivate(now)
  }

  #onAnnounceTimeout(now: number): void {
    if (this.#state !== 'joining') return
    // Members that have not confirmed are asked again, `probeRetries` times, and then taken for
    // failed; the rest of the leaf set decides.
    for (const n of this.leafSet.members()) {
      const hex = n.id.toHex()
      const tries = this.#announced.get(hex)
      if (tries === undefined || this.#confirmed.has(hex)) continue
      if (tries > this.config.probeRetries) this.#declareFailed(now, n)
      else this.#announceTo(now, n, true)
    }
    for (const n of this.leafSet.members()) this.#announceTo(now, n)
    const attempt = this.#joinAttempt
    if (!this.#maybeActivate(now) && this.#state === 'joining' && attempt === this.#joinAttempt) {
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
    for (const n of this.leafSet.members()) if (!this.#confirmed.has(n.id.toHex())) return false
    this.#announced.clear()
    this.#confirmed.clear()
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
    const exclude = (n: NodeHandle) =>
      this.#unusable(n) || (routed.kind === 'join' && n.id.equals(routed.origin.id))
    const decision: RouteDecision<NodeHandle> = nextHop(this.#tables(), routed.key, exclude)
    if (decision.type === 'deliver') {
      // Consistent routing: not while a closer leaf is only suspected.
      const waitOn = this.#closerSuspectedLeaf(routed)
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
    this.#transmitRouted(now, { ...routed, hops: routed.hops + 1, payload }, to, attempts)
  }

  #transmitRouted(now: number, routed: Routed, to: NodeHandle, attempts = 0): void {
    if (this.#pending.size >= this.config.maxPendingRoutes) {
      this.#fail(routed, 'overloaded')
      return
    }
    const message: Message =
      routed.kind === 'route'
        ? {
            type: 'route',
            from: this.handle,
            msgId: routed.msgId,
            key: routed.key,
            origin: routed.origin,
            hops: routed.hops,
            app: routed.app,
            payload: routed.payload,
          }
        : { type: 'join', from: this.handle, msgId: routed.msgId, joiner: routed.origin, hops: routed.hops }
    this.#transmit(now, to.address, to, message)
    const deadline = now + this.#ackTimeoutMs(to)
    // A message sent on from here is stored with the hop count it left with.
    this.#pending.set(routed.msgId, {
      routed: { ...routed, hops: routed.hops - 1 },
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
    this.#rttSample(from, now - p.sentAt)
  }

  #onAckTimeout(now: number, msgId: number): void {
    const p = this.#pending.get(msgId)
    if (p === undefined || p.deadline > now) return
    this.#pending.delete(msgId)
    this.#suspect(now, p.to)
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
        leafSet: this.leafSet.members(),
        rows,
      })
      return
    }
    if (this.#delivered.has(routed.msgId)) return
    this.#delivered.set(routed.msgId, true)
    this.#events.push({ type: 'deliver', ...deliveryOf(routed) })
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
    const ready: Held[] = []
    for (let i = this.#held.length - 1; i >= 0; i--) {
      if (this.#held[i]!.waitingOn === hex) ready.push(...this.#held.splice(i, 1))
    }
    for (const h of ready.reverse()) this.#process(now, h.routed, h.attempts)
  }

  #closerSuspectedLeaf(routed: Routed): NodeHandle | undefined {
    let best: NodeHandle | undefined
    let bestId = this.id
    for (const n of this.leafSet.members()) {
      const peer = this.#peers.get(n.id.toHex())
      if (peer?.suspected !== true) continue
      if (routed.kind === 'join' && n.id.equals(routed.origin.id)) continue
      if (compareDistance(routed.key, n.id, bestId) < 0) {
        best = n
        bestId = n.id
      }
    }
    return best
  }

  #fail(routed: Routed, reason: RouteFailureReason): void {
    if (routed.kind !== 'route') return
    this.#events.push({ type: 'routeFailed', msgId: routed.msgId, key: routed.key, app: routed.app, reason })
  }

  #sendJoinRows(now: number, joiner: NodeHandle): void {
    if (this.#state !== 'active') return
    const rows = this.#rowsFor(joiner.id)
    this.#transmit(now, joiner.address, joiner, { type: 'joinRows', from: this.handle, rows })
  }

  #rowsFor(joiner: Id): { row: number; entries: NodeHandle[] }[] {
    const l = this.id.sharedPrefixLength(joiner, this.config.b)
    const rows: { row: number; entries: NodeHandle[] }[] = []
    const last = Math.min(l, this.routingTable.rowCount - 1)
    for (let r = 0; r <= last; r++) {
      const entries = this.routingTable.row(r)
      if (entries.length > 0) rows.push({ row: r, entries })
    }
    return rows
  }

  #tables() {
    return {
      self: this.id,
      b: this.config.b,
      leafSet: this.leafSet,
      routingTable: this.routingTable,
      extra: this.neighbourhood.members(),
    }
  }

  #unusable(n: NodeHandle): boolean {
    const hex = n.id.toHex()
    return this.#peers.get(hex)?.suspected === true || this.#failed.has(hex)
  }

  #closestOther(key: Id): NodeHandle | undefined {
    let best: NodeHandle | undefined
    for (const n of this.leafSet.members()) {
      if (this.#unusable(n)) continue
      if (best === undefined || compareDistance(key, n.id, best.id) < 0) best = n
    }
    return best
  }

  // ---------------------------------------------------------------------------------------------
  // Tables and peers

  #heard(now: number, from: NodeHandle, learn: boolean): void {
    const hex = from.id.toHex()
    const isNew = !this.#peers.has(hex)
    const peer = this.#peer(from)
    peer.lastHeardMs = now
    const failure = this.#failed.get(hex)
    // A node that left stays out of the tables, whatever it sends on its way out, until it
    // announces itself again.
    if (failure?.left === true) return
    const wasFailed = failure !== undefined
    if (wasFailed) this.#forgetFailure(from)
    if (peer.suspected) {
      peer.suspected = false
      this.#release(now, hex)
    }
    // Learn from traffic: an active node heard from for the first time, or back from the dead, or
    // not in the tables and not offered lately, is a candidate for the tables.
    if (learn && this.#state === 'active' && (isNew || wasFailed || !this.#inTables(from.id))) {
      const until = this.#considered.get(hex)
      if (wasFailed || until === undefined || until <= now) {
        this.#considered.set(hex, now + this.config.routingTableMaintenanceMs)
        this.#consider(now, from)
      }
    }
  }

  /**
   * Keeps the peer records bounded: records of nodes that are in no table, have no probe in flight
   * and are not suspected are dropped, oldest first, beyond {@link SPARE_PEER_RECORDS} of them.
   */
  #prunePeers(): void {
    // At most once per SPARE_PEER_RECORDS new records: while many records are pinned (probes in
    // flight during a join), a walk may free nothing, and walking on every insertion would cost
    // O(records) each time. The bound stays: records ≤ pinned + 3 × SPARE_PEER_RECORDS.
    if (++this.#newPeersSincePrune < SPARE_PEER_RECORDS) return
    this.#newPeersSincePrune = 0
    const pinned = this.leafSet.size + this.routingTable.size + this.neighbourhood.size
    if (this.#peers.size <= pinned + 2 * SPARE_PEER_RECORDS) return
    for (const [hex, peer] of this.#peers) {
      if (this.#peers.size <= pinned + SPARE_PEER_RECORDS) break
      if (peer.probeNonce >= 0 || peer.suspected) continue
      const id = peer.handle.id
      if (this.leafSet.contains(id) || this.routingTable.contains(id) || this.neighbourhood.contains(id))
        continue
      this.#peers.delete(hex)
    }
  }

  #peer(handle: NodeHandle): Peer {
    const hex = handle.id.toHex()
    let peer = this.#peers.get(hex)
    if (peer === undefined) {
      peer = {
        handle,
        knownSinceMs: this.#lastNow,
        lastHeardMs: Number.NEGATIVE_INFINITY,
        lastSentMs: Number.NEGATIVE_INFINITY,
        srttMs: Number.NaN,
        rttvarMs: Number.NaN,
        suspected: false,
        probeNonce: -1,
        leafSetVersionSent: -1,
      }
      this.#peers.set(hex, peer)
      this.#prunePeers()
    } else if (peer.handle.address !== handle.address) {
      peer.handle = handle
    }
    return peer
  }

  #rttSample(from: NodeHandle, sampleMs: number): void {
    const p = this.#peer(from)
    if (!Number.isFinite(p.srttMs)) {
      p.srttMs = sampleMs
      p.rttvarMs = sampleMs / 2
    } else {
      p.rttvarMs = 0.75 * p.rttvarMs + 0.25 * Math.abs(p.srttMs - sampleMs)
      p.srttMs = 0.875 * p.srttMs + 0.125 * sampleMs
    }
  }

  #ackTimeoutMs(to: NodeHandle): number {
    const p = this.#peers.get(to.id.toHex())
    const { ackTimeoutMinMs: lo, ackTimeoutMaxMs: hi } = this.config
    if (p === undefined || !Number.isFinite(p.srttMs)) return hi
    return Math.min(hi, Math.max(lo, p.srttMs + 4 * p.rttvarMs))
  }

  /** Inserts a node into the leaf set, emitting `update` events for members that came and went. */
  #insertLeaf(now: number, n: NodeHandle): void {
    if (n.id.equals(this.id) || this.#failed.has(n.id.toHex())) return
    if (!this.leafSet.wouldAccept(n.id)) return
    const before = this.leafSet.members()
    if (!this.leafSet.insert(n)) return
    this.#peer(n)
    this.#leafSetChanged(now, before)
    // While joining, every member must confirm this node before it may become active.
    if (this.#state === 'joining' && this.#joinReplied) this.#announceTo(now, n)
  }

  #leafSetChanged(_now: number, before: readonly NodeHandle[]): void {
    this.#leafSetVersion++
    const after = this.leafSet.members()
    const was = new Set(before.map((m) => m.id.toHex()))
    const is = new Set(after.map((m) => m.id.toHex()))
    for (const m of after)
      if (!was.has(m.id.toHex())) this.#events.push({ type: 'update', node: m, joined: true })
    for (const m of before)
      if (!is.has(m.id.toHex())) this.#events.push({ type: 'update', node: m, joined: false })
    this.#events.push({ type: 'leafSetChanged', size: after.length })
  }

  /**
   * Offers a node for the tables. Leaf-set candidates heard from recently go straight in; others
   * are probed first. Routing-table and neighbourhood candidates are probed for their RTT, unless
   * it is already known.
   */
  #consider(now: number, n: NodeHandle): void {
    if (n.id.equals(this.id)) return
    const hex = n.id.toHex()
    if (this.#failed.has(hex)) return
    const peer = this.#peers.get(hex)
    const fresh = peer !== undefined && now - peer.lastHeardMs < this.config.leafSetTimeoutMs
    if (this.leafSet.wouldAccept(n.id)) {
      if (fresh) this.#insertLeaf(now, n)
      else this.#probe(now, n, 'leafCandidate')
    }
    if (this.routingTable.contains(n.id)) return
    const cell = this.routingTable.cellOf(n.id)
    if (cell === undefined) return
    if (!this.config.pns) {
      // Without PNS the first candidate keeps the cell; proximity plays no part.
      this.routingTable.insert(n, 0)
      return
    }
    const rtt = peer === undefined || !Number.isFinite(peer.srttMs) ? undefined : peer.srttMs
    if (rtt !== undefined) {
      this.routingTable.insert(n, rtt)
      this.neighbourhood.insert(n, rtt)
      return
    }
    const present = this.routingTable.get(cell.row, cell.col)
    // Probe only when the candidate could take the cell or the neighbourhood set.
    if (present === undefined || this.routingTable.proximityAt(cell.row, cell.col) > 0) {
      this.#probe(now, n, 'candidate')
    }
  }

  /** Merges a leaf set received from a peer. */
  #mergeLeafSet(now: number, handles: readonly NodeHandle[]): void {
    for (const n of handles) {
      if (n.id.equals(this.id) || this.#failed.has(n.id.toHex())) continue
      if (this.leafSet.wouldAccept(n.id)) this.#consider(now, n)
    }
  }

  #onLeave(now: number, from: NodeHandle, leafSet: readonly NodeHandle[]): void {
    this.#removeEverywhere(now, from, false)
    this.#mergeLeafSet(now, leafSet)
  }

  #suspect(now: number, n: NodeHandle): void {
    const peer = this.#peer(n)
    if (peer.suspected) return
    peer.suspected = true
    this.#probe(now, n, 'suspect')
  }

  #probe(now: number, n: NodeHandle, purpose: ProbePurpose, attempt = 0): void {
    const peer = this.#peer(n)
    if (peer.probeNonce >= 0) {
      this.#probes.get(peer.probeNonce)?.purposes.add(purpose)
      return
    }
    if (purpose !== 'suspect' && this.#probes.size >= this.config.maxProbesInFlight) return
    let nonce = this.#rng.u32()
    while (this.#probes.has(nonce)) nonce = this.#rng.u32()
    peer.probeNonce = nonce
    this.#probes.set(nonce, { nonce, peer: n, sentAt: now, attempt, purposes: new Set([purpose]) })
    const withLeafSet = purpose === 'suspect' || purpose === 'recover' || purpose === 'leafCandidate'
    this.#transmit(now, n.address, n, {
      type: 'probe',
      from: this.handle,
      nonce,
      ...(withLeafSet ? { leafSet: this.leafSet.members() } : {}),
    })
    this.#deadlines.push(now + this.config.probeTimeoutMs, 'probe', nonce)
  }

  #onProbeReply(now: number, message: MessageOf<'probeReply'>): void {
    const probe = this.#probes.get(message.nonce)
    if (probe === undefined || !probe.peer.id.equals(message.from.id)) return
    this.#probes.delete(message.nonce)
    const peer = this.#peer(message.from)
    peer.probeNonce = -1
    this.#rttSample(message.from, now - probe.sentAt)
    const rtt = peer.srttMs
    const n = message.from
    if (probe.purposes.has('leafCandidate') || probe.purposes.has('recover')) this.#insertLeaf(now, n)
    if (
      probe.purposes.has('candidate') ||
      probe.purposes.has('leafCandidate') ||
      probe.purposes.has('recover')
    ) {
      this.routingTable.insert(n, rtt)
      this.neighbourhood.insert(n, rtt)
    }
    if (probe.purposes.has('recover')) this.#events.push({ type: 'nodeRecovered', node: n })
    if (message.leafSet !== undefined) this.#mergeLeafSet(now, message.leafSet)
  }

  #onProbeTimeout(now: number, nonce: number): void {
    const probe = this.#probes.get(nonce)
    if (probe === undefined) return
    this.#probes.delete(nonce)
    const peer = this.#peer(probe.peer)
    peer.probeNonce = -1
    if (
      probe.attempt < this.config.probeRetries &&
      (probe.purposes.has('suspect') || probe.purposes.has('leafCandidate'))
    ) {
      for (const purpose of probe.purposes) this.#probe(now, probe.peer, purpose, probe.attempt + 1)
      return
    }
    if (probe.purposes.has('suspect')) this.#declareFailed(now, probe.peer)
  }

  /** A node is gone: out of every table, remembered as failed, and its holes repaired. */
  #declareFailed(now: number, n: NodeHandle): void {
    this.#removeEverywhere(now, n, true)
  }

  #removeEverywhere(now: number, n: NodeHandle, failed: boolean): void {
    const hex = n.id.toHex()
    const side = this.leafSet.sideOf(n.id)
    const cell = this.routingTable.cellOf(n.id)
    const inRt = this.routingTable.contains(n.id)
    const before = side === undefined ? [] : this.leafSet.members()
    const inLeafSet = this.leafSet.remove(n.id)
    this.routingTable.remove(n.id)
    this.neighbourhood.remove(n.id)
    this.#announced.delete(hex)
    this.#failed.set(hex, {
      handle: n,
      until: now + this.config.failedMemoryMs,
      wasLeaf: inLeafSet && failed,
      nextProbe: now + this.config.leafSetTimeoutMs,
      left: !failed,
    })
    const peer = this.#peers.get(hex)
    if (peer !== undefined) peer.suspected = false
    if (failed) this.#events.push({ type: 'nodeFailed', node: n })
    if (inLeafSet) {
      this.#leafSetChanged(now, before)
      // Refill the hole from the farthest live member on that side.
      for (const s of side === 'both' ? (['cw', 'ccw'] as const) : [side!]) {
        const far = this.leafSet.farthest(s)
        if (far !== undefined)
          this.#transmit(now, far.address, far, { type: 'leafSetRequest', from: this.handle })
      }
    }
    if (inRt && cell !== undefined) {
      const peers = this.routingTable.row(cell.row)
      if (peers.length > 0) {
        const ask = peers[this.#rng.int(peers.length)]!
        this.#transmit(now, ask.address, ask, { type: 'rowRequest', from: this.handle, row: cell.row })
      }
    }
    // Messages in flight to it go another way; messages held on it are released.
    for (const [msgId, p] of [...this.#pending]) {
      if (p.to.id.equals(n.id)) {
        this.#pending.delete(msgId)
        this.#process(now, p.routed, p.attempts)
      }
    }
    this.#release(now, hex)
  }

  #inTables(id: Id): boolean {
    return this.leafSet.contains(id) || this.routingTable.contains(id)
  }

  #forgetFailure(n: NodeHandle): void {
    const hex = n.id.toHex()
    if (this.#failed.delete(hex)) this.#events.push({ type: 'nodeRecovered', node: n })
  }

  // ---------------------------------------------------------------------------------------------
  // Periodic work

  #onTick(now: number): void {
    if (this.#state === 'active') {
      const { leafSetHeartbeatMs, leafSetTimeoutMs } = this.config
      for (const m of this.leafSet.members()) {
        const peer = this.#peer(m)
        // Sent once 3/4 Tls have passed, so with ticks every Tls/4 no member waits more than Tls.
        if (now - peer.lastSentMs >= leafSetHeartbeatMs - this.#tickMs()) {
          const changed = peer.leafSetVersionSent !== this.#leafSetVersion
          this.#transmit(now, m.address, m, {
            type: 'heartbeat',
            from: this.handle,
            ...(changed ? { leafSet: this.leafSet.members() } : {}),
          })
        }
        if (!peer.suspected && now - Math.max(peer.lastHeardMs, peer.knownSinceMs) >= leafSetTimeoutMs) {
          this.#suspect(now, m)
        }
      }
      // Look again at a few nodes that failed while in the leaf set: partitions heal.
      let looked = 0
      for (const [hex, f] of [...this.#failed.entries()]) {
        if (f.until <= now) {
          this.#failed.delete(hex)
          continue
        }
        if (looked < 2 && f.wasLeaf && f.nextProbe <= now) {
          looked++
          f.nextProbe = now + this.config.leafSetTimeoutMs
          this.#probeRecovery(now, f.handle)
        }
      }
    }
    this.#deadlines.push(now + this.#tickMs(), 'tick', 0)
  }

  #probeRecovery(now: number, n: NodeHandle): void {
    // The failed mark stays until the node answers; the probe does not count as hearing from it.
    const peer = this.#peer(n)
    if (peer.probeNonce >= 0) return
    let nonce = this.#rng.u32()
    while (this.#probes.has(nonce)) nonce = this.#rng.u32()
    peer.probeNonce = nonce
    this.#probes.set(nonce, {
      nonce,
      peer: n,
      sentAt: now,
      attempt: this.config.probeRetries,
      purposes: new Set(['recover']),
    })
    this.#transmit(now, n.address, n, {
      type: 'probe',
      from: this.handle,
      nonce,
      leafSet: this.leafSet.members(),
    })
    this.#deadlines.push(now + this.config.probeTimeoutMs, 'probe', nonce)
  }

  #onMaintenance(now: number): void {
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

  // ---------------------------------------------------------------------------------------------
  // Output helpers

  #transmit(now: number, address: string, to: NodeHandle | undefined, message: Message): void {
    this.#transmits.push({ to: address, message })
    this.#sent[message.type] = (this.#sent[message.type] ?? 0) + 1
    if (to !== undefined) {
      const peer = this.#peer(to)
      peer.lastSentMs = now
      if (message.type === 'heartbeat' && message.leafSet !== undefined)
        peer.leafSetVersionSent = this.#leafSetVersion
    }
  }

  #error(code: string, message: string): void {
    this.#events.push({ type: 'error', code, message })
  }

  #newMsgId(): number {
    // 53 random bits: two draws.
    return ((this.#rng.u32() & 0x1fffff) * 0x100000000 + this.#rng.u32()) % (MAX_MESSAGE_ID + 1)
  }
}

/**
 * True for messages that only an active node sends, so that hearing one proves the sender may
 * enter the tables. A joiner's announce, probes and replies do not count; nor does a JOIN sent by
 * the joiner itself to its bootstrap.
 */
function sentOnlyWhenActive(message: Message): boolean {
  switch (message.type) {
    case 'heartbeat':
    case 'joinRows':
    case 'joinReply':
    case 'route':
    case 'rowRequest':
      return true
    case 'join':
      return !message.joiner.id.equals(message.from.id)
    default:
      return false
  }
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
