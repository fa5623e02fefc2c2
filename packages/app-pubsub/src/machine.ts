/*
 * Theory of operation
 *
 * `PubSubMachine` is Scribe plus the "Peter" delivery layer as a sans-IO state machine, one per
 * node, running as an application of that node (core's route/send/deliver/direct/forward/update).
 * It never reads a clock, sets a timer or draws randomness: time comes in as `now`.
 *
 * Driver contract. Inputs, each with `now` (monotonic ms, never decreasing):
 *   - `handleDeliver(now, delivery)`: core delivered a routed pubsub message here (this node is the
 *     root for its key);
 *   - `handleDirect(now, payload, from)`: a pubsub message sent straight to this node;
 *   - `handleForward(now, delivery, next)`: core's synchronous forward upcall; returns the decision;
 *   - `handleUpdate(now, node, joined)`: core's update upcall (leaf-set membership);
 *   - `handleNodeFailed(now, node)`: core declared a node failed (optional; speeds up repair);
 *   - `handleTimeout(now)`: `now` reached `nextDeadline()`;
 *   - commands `subscribe`, `unsubscribe`, `publish`, `anycast`, `close`.
 * Outputs: calls on the injected {@link PubSubHost} (`route`, `send`), events from `pollEvent()`, and
 * `nextDeadline()`. After any input the driver drains `pollEvent()` and sets its one timer for
 * `nextDeadline()`. A host must not re-enter the machine from `route` or `send`: it queues what
 * they ask for and performs it after the input returns (a must during `handleForward`, which runs
 * inside core's own routing step).
 *
 * Trees (Scribe). A topic's id is `hashId(name)`; its root is the node where a message routed to
 * that id is delivered. SUBSCRIBE is routed to the id. At each hop (`handleForward`) a node already
 * in the tree records the subscriber as a child and drops the message (unless the subscriber is
 * on its path from the root: an ancestor's SUBSCRIBE passes by); any other node records it,
 * becomes a forwarder, and lets the message go on with itself as the subscriber. Where it is
 * delivered, the node becomes the root. A child learns its parent from a `subscribeAck`, sent as
 * soon as the parent is itself attached; the ack carries the parent's path from the root (to catch
 * cycles) and its heads (the latest seq per publisher), which start a new subscriber's streams.
 * Parents and children heartbeat each other every `heartbeatMs` (data pushed down counts); a child
 * that stops hearing its parent subscribes again, a parent removes a silent child. A node that
 * learns of a closer node (update upcall) or sees a message for its topic forwarded past it stops
 * being the root and subscribes toward the new one; a node where a SUBSCRIBE or publish is
 * delivered becomes the root. A node with `maxChildren` children hands a new one down to the child
 * nearest it in the network when the host measures RTTs, else to the child whose id is closest to
 * the newcomer's (`subscribeRedirect`), at most `maxRedirects` times in a row.
 *
 * Delivery (Peter). A publisher numbers its messages per topic (seq from 1, in an epoch) and keeps
 * each until the root acknowledges it, retrying by routing. Every tree node keeps a replay buffer
 * (the last `replayWindow` messages per publisher) and pushes a message down only the first time
 * it sees it. A subscriber delivers each publisher's messages in seq order, exactly once: a message
 * ahead of a hole is held while the hole is asked for (`replayRequest`, to the parent, passed up the
 * tree to the first node holding the whole range, and finally to the publisher, whose own window
 * answers for good). A request unanswered for `replayTimeoutMs` is repeated, to the parent and
 * straight to the publisher; what `replayAttempts` requests in a row do not bring is reported as a
 * `gap` event.
 */
import {
  compareDistance,
  type Delivery,
  type ForwardDecision,
  hashId,
  type Id,
  type NodeHandle,
} from '@pastry/core'
import { type PubSubConfig, resolvePubSubConfig } from './config.js'
import { PubSubError } from './errors.js'
import {
  type DataMessage,
  decodePubSub,
  encodePubSub,
  type Head,
  MAX_BEAT_TOPICS,
  MAX_HEADS,
  MAX_PATH_IDS,
  MAX_REPLAY_MESSAGES,
  MAX_SEQ,
  MAX_TOPIC_BYTES,
  type PubSubWireMessage,
  type PubSubWireOf,
} from './wire.js'

/** What the machine needs from its node: its handle, and the two ways to send. */
export interface PubSubHost {
  /** This node, as others know it. */
  readonly handle: NodeHandle
  /** Routes `payload` (for the pubsub application) toward the node closest to `key`. */
  route(now: number, key: Id, payload: Uint8Array): void
  /** Sends `payload` (for the pubsub application) straight to `to`. Never called with this node. */
  send(now: number, to: NodeHandle, payload: Uint8Array): void
  /**
   * The measured round-trip time to a peer in ms, or undefined when the node has none (optional).
   * The max-children policy uses it to hand a new child down to the nearest existing child.
   */
  proximity?(id: Id): number | undefined
}

/** Options for {@link PubSubMachine}. */
export interface PubSubMachineOptions {
  readonly host: PubSubHost
  /** Settings; see {@link PubSubConfig} for every default. */
  readonly config?: Partial<PubSubConfig>
  /**
   * This publisher's incarnation, an unsigned safe integer: a node that restarts with the same id
   * must use a larger epoch, so that subscribers take its new sequence (from 1) as a new stream.
   * Default 0.
   */
  readonly epoch?: number
  /**
   * Decides, synchronously, whether this member takes an anycast on `topic`. Consulted only when
   * this node subscribes to the topic and did not send the anycast. It must only decide: never
   * call the machine from it. Default: declines.
   */
  readonly accept?: (topic: string, data: Uint8Array, requester: NodeHandle) => boolean
}

/** Why a child was removed. */
export type ChildRemovedReason = 'left' | 'timeout' | 'failed' | 'parent' | 'closed'

/** Events, as immutable values, in the order they happened. */
export type PubSubEvent =
  /** A message for a topic this node subscribes to: each exactly once, in seq order per publisher. */
  | {
      readonly type: 'message'
      readonly topic: string
      readonly publisher: NodeHandle
      readonly epoch: number
      readonly seq: number
      readonly data: Uint8Array
    }
  /** Messages `fromSeq..toSeq` (inclusive) of a publisher will never be delivered here. */
  | {
      readonly type: 'gap'
      readonly topic: string
      readonly publisher: NodeHandle
      readonly epoch: number
      readonly fromSeq: number
      readonly toSeq: number
    }
  | { readonly type: 'childAdded'; readonly topic: string; readonly child: NodeHandle }
  | {
      readonly type: 'childRemoved'
      readonly topic: string
      readonly child: NodeHandle
      readonly reason: ChildRemovedReason
    }
  /** This node's place in a topic's tree changed: a new parent, root (`root`), or detached (neither). */
  | {
      readonly type: 'parentChanged'
      readonly topic: string
      readonly parent: NodeHandle | undefined
      readonly root: boolean
    }
  /** `subscribeAttempts` SUBSCRIBEs in a row went unanswered; retries go on. */
  | { readonly type: 'subscribeFailed'; readonly topic: string; readonly attempts: number }
  /** The root acknowledged a publish. */
  | {
      readonly type: 'published'
      readonly topic: string
      readonly epoch: number
      readonly seq: number
      readonly root: NodeHandle
    }
  | {
      readonly type: 'publishFailed'
      readonly topic: string
      readonly epoch: number
      readonly seq: number
      readonly reason: 'attempts-exhausted' | 'closed'
    }
  /** An anycast this node sent is settled: taken by `by`, or by nobody. */
  | {
      readonly type: 'anycastDone'
      readonly anycastId: number
      readonly topic: string
      readonly accepted: boolean
      readonly by: NodeHandle | undefined
    }
  /** A peer sent something unusable (`BAD_MESSAGE`); it was counted and ignored. */
  | { readonly type: 'error'; readonly code: string; readonly message: string }

/** Counters, for observers. */
export interface PubSubStats {
  /** Payloads that did not decode or did not fit their context. */
  badMessages: number
  /** Messages (data, replays) seen again and dropped. */
  duplicates: number
  /** Data messages pushed to children. */
  dataSent: number
  /** Data messages received from a parent. */
  dataReceived: number
  /** Publishes sent again after a missing acknowledgement or a refusal. */
  publishRetries: number
  /** Replay requests sent by this node as a subscriber. */
  replayRequests: number
  /** Replay requests this node answered. */
  replaysServed: number
  /** Gap events emitted. */
  gaps: number
  /** SUBSCRIBEs handed down to a child by the max-children policy. */
  redirects: number
  /**
   * Messages sent back toward the root after reattaching, because the new parent had not seen them
   * (a root failed or stepped down after pushing them to part of the tree only).
   */
  pushedUp: number
}

interface Child {
  readonly handle: NodeHandle
  heard: number
  sent: number
  acked: boolean
}

/** The recent messages of one publisher on one topic, by seq. */
class Log {
  readonly publisher: NodeHandle
  epoch: number
  /** The highest seq seen. */
  head = 0
  /** Every seq at or below it is forgotten (and treated as seen). */
  floor = 0
  /** Held seqs, ascending. */
  readonly seqs: number[] = []
  readonly data = new Map<number, Uint8Array>()
  bytes = 0

  constructor(publisher: NodeHandle, epoch: number) {
    this.publisher = publisher
    this.epoch = epoch
  }

  has(seq: number): boolean {
    return seq <= this.floor || this.data.has(seq)
  }

  /** Adds a message; false when it is already seen or forgotten. */
  add(seq: number, data: Uint8Array): boolean {
    if (this.has(seq)) return false
    this.data.set(seq, data)
    this.bytes += data.length
    if (seq > this.head) this.head = seq
    const s = this.seqs
    let i = s.length
    if (i === 0 || s[i - 1]! < seq) s.push(seq)
    else {
      i = lowerBound(s, seq)
      s.splice(i, 0, seq)
    }
    return true
  }

  /** Forgets the oldest message; returns its size. */
  evictOldest(): number {
    const seq = this.seqs.shift()
    if (seq === undefined) return 0
    const d = this.data.get(seq)!
    this.data.delete(seq)
    this.bytes -= d.length
    if (seq > this.floor) this.floor = seq
    return d.length
  }

  /** True when every message from..to is held. */
  covers(from: number, to: number): boolean {
    if (from <= this.floor) return false
    const i = lowerBound(this.seqs, from)
    const j = lowerBound(this.seqs, to + 1)
    return j - i === to - from + 1
  }

  range(from: number, to: number): { seq: number; data: Uint8Array }[] {
    const out: { seq: number; data: Uint8Array }[] = []
    for (let i = lowerBound(this.seqs, from); i < this.seqs.length && this.seqs[i]! <= to; i++) {
      const seq = this.seqs[i]!
      out.push({ seq, data: this.data.get(seq)! })
    }
    return out
  }

  reset(epoch: number): number {
    const freed = this.bytes
    this.epoch = epoch
    this.head = 0
    this.floor = 0
    this.seqs.length = 0
    this.data.clear()
    this.bytes = 0
    return freed
  }
}

function lowerBound(a: readonly number[], x: number): number {
  let lo = 0
  let hi = a.length
  while (lo < hi) {
    const m = (lo + hi) >> 1
    if (a[m]! < x) lo = m + 1
    else hi = m
  }
  return lo
}

/** A subscriber's delivery state for one publisher on one topic. */
interface Inbox {
  readonly publisher: NodeHandle
  epoch: number
  /** The next seq to deliver. */
  next: number
  /** Messages ahead of `next`, waiting for the hole to fill. */
  readonly held: Map<number, Uint8Array>
  /**
   * The hole being asked for, `from` (the `next` when asked) up to `to`: asked again at `deadline`
   * if still open, and reported once `attempts` requests in a row have brought nothing.
   */
  gap: { from: number; to: number; deadline: number; attempts: number } | undefined
}

interface Topic {
  readonly name: string
  readonly id: Id
  subscribed: boolean
  isRoot: boolean
  parent: NodeHandle | undefined
  /** The parent's path from the root, root first, ending with the parent. */
  parentPath: readonly Id[]
  parentHeard: number
  parentSent: number
  joining: { attempts: number; deadline: number; reported: boolean } | undefined
  readonly children: Map<string, Child>
  /** Replay buffers, least recently heard publisher first. */
  readonly logs: Map<string, Log>
  bufferBytes: number
  readonly inboxes: Map<string, Inbox>
  /**
   * Set once the subscription first attached (or became the root): from then on a publisher new
   * to this subscriber is delivered from seq 1, since its stream began while this node subscribed.
   * Before, the parent's heads are the starting point and a first message starts its stream.
   */
  baselined: boolean
  lastActivity: number
}

/** A topic this node publishes to. */
interface Stream {
  readonly topic: string
  readonly id: Id
  nextSeq: number
  readonly log: Log
  /** The root that acknowledged the last publish, for sending the next one straight to it. */
  root: NodeHandle | undefined
}

interface Outgoing {
  readonly stream: Stream
  readonly message: DataMessage
  attempts: number
  retryAt: number
}

/** Hops a replay request may take up the tree before it is dropped. */
const MAX_REPLAY_HOPS = 32

/** One node's Scribe trees and Peter delivery as a sans-IO state machine. See the module comment. */
export class PubSubMachine {
  readonly config: PubSubConfig
  readonly host: PubSubHost
  readonly epoch: number
  readonly stats: PubSubStats = {
    badMessages: 0,
    duplicates: 0,
    dataSent: 0,
    dataReceived: 0,
    publishRetries: 0,
    replayRequests: 0,
    replaysServed: 0,
    gaps: 0,
    redirects: 0,
    pushedUp: 0,
  }
  readonly #self: NodeHandle
  readonly #accept: ((topic: string, data: Uint8Array, requester: NodeHandle) => boolean) | undefined
  readonly #tickMs: number
  #lastNow = Number.NEGATIVE_INFINITY
  #nextTick: number | undefined = undefined
  #closed = false
  readonly #events: PubSubEvent[] = []
  #eventHead = 0
  /** Messages this node sent to itself, handled at the end of the current input. */
  readonly #loopback: PubSubWireMessage[] = []
  readonly #topics = new Map<string, Topic>()
  readonly #streams = new Map<string, Stream>()
  readonly #outbox = new Map<string, Outgoing>()
  readonly #anycasts = new Map<number, { topic: string; deadline: number }>()
  #anycastSeq = 0

  /** Makes a machine with no topics. Throws `ConfigError` for a bad setting. */
  constructor(options: PubSubMachineOptions) {
    this.config = resolvePubSubConfig(options.config)
    this.host = options.host
    this.#self = options.host.handle
    const epoch = options.epoch ?? 0
    if (!Number.isSafeInteger(epoch) || epoch < 0)
      throw new PubSubError('BAD_EPOCH', 'an epoch is an unsigned safe integer')
    this.epoch = epoch
    this.#accept = options.accept
    const c = this.config
    this.#tickMs = Math.max(
      1,
      Math.floor(Math.min(c.heartbeatMs, c.replayTimeoutMs, c.publishAckTimeoutMs, c.subscribeTimeoutMs) / 4),
    )
  }

  // ---------------------------------------------------------------------------------------------
  // Getters (stale after the next input)

  /** Topics this node has state for: subscribed, forwarding or root. */
  get topics(): readonly string[] {
    return [...this.#topics.keys()]
  }

  /** True when this node subscribes to `topic`. */
  isSubscribed(topic: string): boolean {
    return this.#topics.get(topic)?.subscribed === true
  }

  /** True when this node believes it is `topic`'s root. */
  isRoot(topic: string): boolean {
    return this.#topics.get(topic)?.isRoot === true
  }

  /** This node's parent in `topic`'s tree, if attached below the root. */
  parentOf(topic: string): NodeHandle | undefined {
    return this.#topics.get(topic)?.parent
  }

  /** This node's children in `topic`'s tree. */
  childrenOf(topic: string): readonly NodeHandle[] {
    const t = this.#topics.get(topic)
    return t === undefined ? [] : [...t.children.values()].map((c) => c.handle)
  }

  /** Publishes awaiting the root's acknowledgement. */
  get pendingPublishes(): number {
    return this.#outbox.size
  }

  /** True once `close` ran: the machine ignores every input. */
  get closed(): boolean {
    return this.#closed
  }

  // ---------------------------------------------------------------------------------------------
  // Outputs

  /** The next event, or undefined. Drain after every input. */
  pollEvent(): PubSubEvent | undefined {
    const q = this.#events
    if (this.#eventHead === q.length) {
      if (q.length > 0) {
        q.length = 0
        this.#eventHead = 0
      }
      return undefined
    }
    return q[this.#eventHead++]
  }

  /** When to call `handleTimeout` next; undefined while there is nothing to time. */
  nextDeadline(): number | undefined {
    return this.#nextTick
  }

  // ---------------------------------------------------------------------------------------------
  // Commands

  /**
   * Subscribes this node to `topic` (at most 256 UTF-8 bytes): joins its tree unless already in
   * it. Idempotent. Throws `PubSubError` `BAD_TOPIC` or `TOO_MANY_TOPICS`.
   */
  subscribe(now: number, topic: string): void {
    this.#advance(now)
    checkTopic(topic)
    if (this.#closed) throw new PubSubError('CLOSED', 'the pubsub machine is closed')
    const t = this.#ensureTopic(now, topic)
    if (t === undefined)
      throw new PubSubError('TOO_MANY_TOPICS', `this node keeps at most ${this.config.maxTopics} topics`)
    if (!t.subscribed) {
      t.subscribed = true
      if (t.isRoot || t.parent !== undefined) {
        // Already in the tree (forwarder or root): this is the subscription's first attachment,
        // and this node's own heads are its starting point. Without this, the next parent's heads
        // would be taken as the start, silently skipping what was published while it reattached.
        t.baselined = true
        for (const [hex, log] of t.logs) {
          if (t.inboxes.size >= this.config.maxPublishersPerTopic) break
          t.inboxes.set(hex, {
            publisher: log.publisher,
            epoch: log.epoch,
            next: log.head + 1,
            held: new Map(),
            gap: undefined,
          })
        }
      } else if (t.joining === undefined) this.#join(now, t)
    }
    this.#finish(now)
  }

  /** Stops delivering `topic` here; the node leaves the tree unless it still forwards for children. */
  unsubscribe(now: number, topic: string): void {
    this.#advance(now)
    const t = this.#topics.get(topic)
    if (t?.subscribed === true) {
      t.subscribed = false
      t.baselined = false
      t.inboxes.clear()
      this.#maybePrune(now, t)
    }
    this.#finish(now)
  }

  /**
   * Publishes `data` on `topic`: numbers it (per topic, from 1), keeps it until the root
   * acknowledges it (retrying by routing), and returns its identity. A `published` or
   * `publishFailed` event follows. Throws `PubSubError`: `BAD_TOPIC`, `BAD_DATA`,
   * `DATA_TOO_LARGE`, `OVERLOADED` (too many unacknowledged publishes), `TOO_MANY_TOPICS`, `CLOSED`.
   */
  publish(
    now: number,
    topic: string,
    data: Uint8Array,
  ): { publisher: NodeHandle; epoch: number; seq: number } {
    this.#advance(now)
    checkTopic(topic)
    if (this.#closed) throw new PubSubError('CLOSED', 'the pubsub machine is closed')
    checkData(data, this.config.maxDataBytes)
    if (this.#outbox.size >= this.config.maxPendingPublishes)
      throw new PubSubError('OVERLOADED', `${this.#outbox.size} publishes await acknowledgement`)
    let s = this.#streams.get(topic)
    if (s === undefined) {
      if (this.#streams.size >= this.config.maxTopics)
        throw new PubSubError(
          'TOO_MANY_TOPICS',
          `this node publishes to at most ${this.config.maxTopics} topics`,
        )
      s = { topic, id: hashId(topic), nextSeq: 1, log: new Log(this.#self, this.epoch), root: undefined }
      this.#streams.set(topic, s)
    }
    const seq = s.nextSeq++
    const message: DataMessage = { publisher: this.#self, epoch: this.epoch, seq, data: data.slice() }
    s.log.add(seq, message.data)
    while (s.log.seqs.length > this.config.replayWindow) s.log.evictOldest()
    const out: Outgoing = { stream: s, message, attempts: 0, retryAt: now }
    this.#outbox.set(outKey(topic, seq), out)
    this.#transmitPublish(now, out)
    this.#finish(now)
    return { publisher: this.#self, epoch: this.epoch, seq }
  }

  /**
   * Sends `data` to one member of `topic` that accepts it, found by walking the tree depth first
   * from where the route meets it. Returns the anycast id that the `anycastDone` event carries.
   * Throws `PubSubError` `BAD_TOPIC`, `BAD_DATA`, `DATA_TOO_LARGE`, `OVERLOADED`, `CLOSED`.
   */
  anycast(now: number, topic: string, data: Uint8Array): number {
    this.#advance(now)
    checkTopic(topic)
    if (this.#closed) throw new PubSubError('CLOSED', 'the pubsub machine is closed')
    checkData(data, this.config.maxDataBytes)
    if (this.#anycasts.size >= this.config.maxPendingAnycasts)
      throw new PubSubError('OVERLOADED', `${this.#anycasts.size} anycasts await an answer`)
    this.#anycastSeq = this.#anycastSeq >= MAX_SEQ ? 1 : this.#anycastSeq + 1
    const anycastId = this.#anycastSeq
    this.#anycasts.set(anycastId, { topic, deadline: now + this.config.anycastTimeoutMs })
    const msg: PubSubWireMessage = {
      type: 'anycast',
      topic,
      anycastId,
      requester: this.#self,
      data: data.slice(),
      visited: [],
      steps: 0,
    }
    this.host.route(now, hashId(topic), encodePubSub(msg))
    this.#finish(now)
    return anycastId
  }

  /**
   * Stops the machine. With `graceful`, tells every parent (`leave`) and child (`reject`) first, so
   * that the trees repair at once. Pending publishes fail (`closed`), pending anycasts settle
   * unaccepted. Afterwards every input is ignored.
   */
  close(now: number, graceful = false): void {
    this.#advance(now)
    if (this.#closed) return
    for (const t of this.#topics.values()) {
      if (!graceful) break
      if (t.parent !== undefined) this.#send(now, t.parent, { type: 'leave', topic: t.name })
      for (const c of t.children.values()) this.#send(now, c.handle, { type: 'reject', topic: t.name })
    }
    for (const o of this.#outbox.values()) {
      this.#events.push({
        type: 'publishFailed',
        topic: o.stream.topic,
        epoch: o.message.epoch,
        seq: o.message.seq,
        reason: 'closed',
      })
    }
    for (const [anycastId, a] of this.#anycasts) {
      this.#events.push({ type: 'anycastDone', anycastId, topic: a.topic, accepted: false, by: undefined })
    }
    this.#outbox.clear()
    this.#anycasts.clear()
    this.#topics.clear()
    this.#streams.clear()
    this.#loopback.length = 0
    this.#closed = true
    this.#nextTick = undefined
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  /** Core delivered a routed pubsub message at this node: this node is the root for its key. */
  handleDeliver(now: number, delivery: Delivery): void {
    this.#advance(now)
    if (this.#closed) return
    const m = this.#decode(delivery.payload, 'deliver')
    if (m !== undefined) {
      if (
        (m.type !== 'subscribe' && m.type !== 'publish' && m.type !== 'anycast') ||
        !keyMatches(delivery.key, m.topic)
      ) {
        this.#bad(`a routed ${m.type} that does not fit its key`)
      } else this.#onDelivered(now, m)
    }
    this.#finish(now)
  }

  /** A pubsub message sent straight to this node by `from`. */
  handleDirect(now: number, payload: Uint8Array, from: NodeHandle): void {
    this.#advance(now)
    if (this.#closed) return
    const m = this.#decode(payload, 'direct')
    if (m !== undefined) this.#onDirect(now, m, from)
    this.#finish(now)
  }

  /**
   * Core's forward upcall for a routed pubsub message about to go to `next`. Synchronous; the
   * answer is `continue`, `replace` (a SUBSCRIBE goes on with this node as the subscriber) or
   * `drop` (this node took it: a SUBSCRIBE or anycast that met the tree, or a bad payload).
   */
  handleForward(now: number, delivery: Delivery, _next: NodeHandle): ForwardDecision {
    this.#advance(now)
    if (this.#closed) return CONTINUE
    const m = this.#decode(delivery.payload, 'forward')
    let decision: ForwardDecision = DROP
    if (m !== undefined) {
      if (
        (m.type !== 'subscribe' && m.type !== 'publish' && m.type !== 'anycast') ||
        !keyMatches(delivery.key, m.topic)
      ) {
        this.#bad(`a routed ${m.type} that does not fit its key`)
      } else decision = this.#onForward(now, m)
    }
    this.#finish(now)
    return decision
  }

  /** Core's update upcall: `node` entered (`joined`) or left this node's leaf set. */
  handleUpdate(now: number, node: NodeHandle, joined: boolean): void {
    this.#advance(now)
    if (this.#closed) return
    if (joined && !node.id.equals(this.#self.id)) {
      for (const t of [...this.#topics.values()]) {
        if (t.isRoot && compareDistance(t.id, node.id, this.#self.id) < 0) this.#loseRoot(now, t)
      }
      for (const s of this.#streams.values()) {
        if (s.root !== undefined && compareDistance(s.id, node.id, s.root.id) < 0) s.root = undefined
      }
    }
    this.#finish(now)
  }

  /** Core declared `node` failed: it stops being a child, a parent or a cached root at once. */
  handleNodeFailed(now: number, node: NodeHandle): void {
    this.#advance(now)
    if (this.#closed) return
    const hex = node.id.toHex()
    for (const t of [...this.#topics.values()]) {
      if (t.children.has(hex)) this.#removeChild(now, t, hex, 'failed')
      if (this.#topics.get(t.name) === t && t.parent?.id.equals(node.id) === true) this.#parentLost(now, t)
    }
    for (const s of this.#streams.values()) if (s.root?.id.equals(node.id) === true) s.root = undefined
    this.#finish(now)
  }

  /** Call when `now` reaches `nextDeadline()`. */
  handleTimeout(now: number): void {
    this.#advance(now)
    if (this.#closed) return
    if (this.#nextTick !== undefined && now >= this.#nextTick) {
      this.#nextTick = now + this.#tickMs
      this.#tick(now)
    }
    this.#finish(now)
  }

  // ---------------------------------------------------------------------------------------------
  // Routed messages

  #onDelivered(now: number, m: PubSubWireOf<'subscribe' | 'publish' | 'anycast'>): void {
    switch (m.type) {
      case 'subscribe': {
        const t = this.#ensureTopic(now, m.topic)
        if (t === undefined) return
        t.lastActivity = now
        this.#becomeRoot(now, t)
        this.#addChild(now, t, m.subscriber, m.redirects)
        return
      }
      case 'publish': {
        const t = this.#ensureTopic(now, m.topic)
        if (t !== undefined) {
          this.#becomeRoot(now, t)
          this.#acceptData(now, t, m.message)
        }
        this.#ackPublish(now, m)
        return
      }
      case 'anycast': {
        const t = this.#topics.get(m.topic)
        if (t === undefined) this.#anycastFail(now, m)
        else this.#anycastStep(now, t, m)
        return
      }
    }
  }

  #onForward(now: number, m: PubSubWireOf<'subscribe' | 'publish' | 'anycast'>): ForwardDecision {
    switch (m.type) {
      case 'subscribe': {
        const s = m.subscriber
        if (s.id.equals(this.#self.id)) return CONTINUE
        let t = this.#topics.get(m.topic)
        // A message for this topic going past this node: another node is the root.
        if (t?.isRoot === true) this.#notRoot(t)
        // A SUBSCRIBE for one of this node's ancestors (one that lost its own parent, as the
        // subscriber or earlier in the chain) passes by: taken here, it would hang the ancestor
        // below its own subtree, a cycle cut off from the root for as long as routes from the
        // subtree keep meeting the subtree.
        if (t !== undefined && (isAncestor(t, s) || m.chain.some((id) => containsId(t!.parentPath, id))))
          return CONTINUE
        if (t !== undefined && (t.parent !== undefined || t.joining !== undefined)) {
          this.#addChild(now, t, s, m.redirects)
          return DROP
        }
        t ??= this.#ensureTopic(now, m.topic)
        if (t === undefined) return CONTINUE // no room: let it pass, the next hop takes it
        this.#addChild(now, t, s, 0)
        // This node subscribes onward, with this very message.
        t.joining = { attempts: 1, deadline: now + this.config.subscribeTimeoutMs, reported: false }
        return {
          action: 'replace',
          payload: encodePubSub({
            type: 'subscribe',
            topic: m.topic,
            subscriber: this.#self,
            redirects: 0,
            chain: extendChain(m.chain, s.id),
          }),
        }
      }
      case 'publish': {
        const t = this.#topics.get(m.topic)
        if (t?.isRoot === true) this.#loseRoot(now, t)
        return CONTINUE
      }
      case 'anycast': {
        const t = this.#topics.get(m.topic)
        if (t !== undefined && (t.isRoot || t.parent !== undefined || t.children.size > 0)) {
          this.#anycastStep(now, t, m)
          return DROP
        }
        return CONTINUE
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Direct messages

  #onDirect(now: number, m: PubSubWireMessage, from: NodeHandle): void {
    switch (m.type) {
      case 'subscribe': {
        const t = this.#topics.get(m.topic)
        if (
          t !== undefined &&
          (t.isRoot || t.parent !== undefined || t.joining !== undefined) &&
          !isAncestor(t, m.subscriber) &&
          !m.subscriber.id.equals(this.#self.id)
        ) {
          this.#addChild(now, t, m.subscriber, m.redirects)
        } else this.#send(now, m.subscriber, { type: 'subscribeNack', topic: m.topic })
        return
      }
      case 'subscribeAck': {
        const t = this.#topics.get(m.topic)
        if (t === undefined || (!t.subscribed && t.children.size === 0)) {
          this.#send(now, from, { type: 'leave', topic: m.topic })
          return
        }
        if (t.parent?.id.equals(from.id) === true) {
          t.parentHeard = now
          t.parentPath = m.path
          this.#pushUp(now, t, m.heads)
          const advanced = this.#seedHeads(t, m.heads)
          this.#applyHeads(now, t, m.heads)
          // Pass news of messages this subtree has not seen down, so that its subscribers ask.
          if (advanced) for (const c of t.children.values()) this.#ackChild(now, t, c)
          return
        }
        if (
          t.isRoot ||
          (t.parent !== undefined && t.joining === undefined) ||
          containsId(m.path, this.#self.id)
        ) {
          this.#send(now, from, { type: 'leave', topic: m.topic })
          return
        }
        this.#attach(now, t, from, m.path, m.heads)
        return
      }
      case 'subscribeRedirect': {
        const t = this.#topics.get(m.topic)
        if (
          t === undefined ||
          t.joining === undefined ||
          m.to.id.equals(this.#self.id) ||
          t.children.has(m.to.id.toHex())
        )
          return
        t.joining.deadline = now + this.config.subscribeTimeoutMs
        this.#send(now, m.to, {
          type: 'subscribe',
          topic: m.topic,
          subscriber: this.#self,
          redirects: m.redirects,
          chain: [],
        })
        return
      }
      case 'subscribeNack': {
        const t = this.#topics.get(m.topic)
        if (t?.joining !== undefined) this.#join(now, t)
        return
      }
      case 'leave': {
        const t = this.#topics.get(m.topic)
        const hex = from.id.toHex()
        if (t?.children.has(hex) === true) this.#removeChild(now, t, hex, 'left')
        return
      }
      case 'reject': {
        const t = this.#topics.get(m.topic)
        if (t?.parent?.id.equals(from.id) === true) this.#parentLost(now, t)
        return
      }
      case 'beatDown':
        for (const item of m.items) {
          const t = this.#topics.get(item.topic)
          if (t === undefined) {
            this.#send(now, from, { type: 'leave', topic: item.topic })
          } else if (t.parent?.id.equals(from.id) === true) {
            t.parentHeard = now
            t.parentPath = item.path
            if (containsId(item.path, this.#self.id)) this.#parentLost(now, t, true) // a cycle
          } else if (t.parent === undefined && !t.isRoot && !containsId(item.path, this.#self.id)) {
            this.#attach(now, t, from, item.path)
          } else this.#send(now, from, { type: 'leave', topic: item.topic })
        }
        return
      case 'beatUp':
        for (const topic of m.topics) {
          const t = this.#topics.get(topic)
          const child = t?.children.get(from.id.toHex())
          if (child !== undefined) child.heard = now
          else if (t !== undefined && (t.isRoot || t.parent !== undefined) && !isAncestor(t, from))
            this.#addChild(now, t, from, 0)
          else this.#send(now, from, { type: 'reject', topic })
        }
        return
      case 'publish': {
        const t = this.#topics.get(m.topic)
        if (t?.isRoot === true) {
          this.#acceptData(now, t, m.message)
          this.#ackPublish(now, m)
        } else {
          this.#send(now, m.message.publisher, {
            type: 'publishNack',
            topic: m.topic,
            epoch: m.message.epoch,
            seq: m.message.seq,
          })
        }
        return
      }
      case 'publishAck':
      case 'publishNack': {
        const o = this.#outbox.get(outKey(m.topic, m.seq))
        if (o === undefined || o.message.epoch !== m.epoch) return
        if (m.type === 'publishAck') {
          this.#outbox.delete(outKey(m.topic, m.seq))
          if (!from.id.equals(this.#self.id)) o.stream.root = from
          this.#events.push({ type: 'published', topic: m.topic, epoch: m.epoch, seq: m.seq, root: from })
        } else {
          o.stream.root = undefined
          this.stats.publishRetries++
          this.#transmitPublish(now, o)
        }
        return
      }
      case 'data': {
        const t = this.#topics.get(m.topic)
        if (t === undefined) {
          this.#send(now, from, { type: 'leave', topic: m.topic })
          return
        }
        this.stats.dataReceived++
        if (t.parent?.id.equals(from.id) === true) t.parentHeard = now
        else if (t.parent === undefined && !t.isRoot && t.joining !== undefined)
          this.#attach(now, t, from, [from.id])
        else this.#send(now, from, { type: 'leave', topic: m.topic })
        this.#acceptData(now, t, m.message)
        return
      }
      case 'replayRequest':
        this.#serveReplay(now, m)
        return
      case 'replay':
        this.#onReplay(now, m)
        return
      case 'anycast': {
        const t = this.#topics.get(m.topic)
        if (t === undefined) this.#anycastFail(now, m)
        else this.#anycastStep(now, t, m)
        return
      }
      case 'anycastResult': {
        const a = this.#anycasts.get(m.anycastId)
        if (a === undefined) return
        this.#anycasts.delete(m.anycastId)
        this.#events.push({
          type: 'anycastDone',
          anycastId: m.anycastId,
          topic: a.topic,
          accepted: m.accepted,
          by: m.accepted ? m.by : undefined,
        })
        return
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The tree

  #ensureTopic(now: number, name: string): Topic | undefined {
    const existing = this.#topics.get(name)
    if (existing !== undefined) return existing
    if (this.#topics.size >= this.config.maxTopics) {
      // Make room by forgetting the longest-idle root that nobody below needs.
      let victim: Topic | undefined
      for (const t of this.#topics.values()) {
        if (t.subscribed || t.children.size > 0 || t.joining !== undefined || t.parent !== undefined) continue
        if (victim === undefined || t.lastActivity < victim.lastActivity) victim = t
      }
      if (victim === undefined) return undefined
      this.#topics.delete(victim.name)
    }
    const t: Topic = {
      name,
      id: hashId(name),
      subscribed: false,
      isRoot: false,
      parent: undefined,
      parentPath: [],
      parentHeard: now,
      parentSent: now,
      joining: undefined,
      children: new Map(),
      logs: new Map(),
      bufferBytes: 0,
      inboxes: new Map(),
      baselined: false,
      lastActivity: now,
    }
    this.#topics.set(name, t)
    return t
  }

  /** Routes a SUBSCRIBE for `t` toward its id. */
  #join(now: number, t: Topic): void {
    const attempts = (t.joining?.attempts ?? 0) + 1
    t.joining = {
      attempts,
      deadline: now + this.config.subscribeTimeoutMs,
      reported: t.joining?.reported ?? false,
    }
    this.host.route(
      now,
      t.id,
      encodePubSub({ type: 'subscribe', topic: t.name, subscriber: this.#self, redirects: 0, chain: [] }),
    )
  }

  /**
   * Makes `parent` this node's parent. `heads` come with a `subscribeAck`; an attachment on a
   * heartbeat or data message has none (undefined), and its acknowledgement brings them later.
   */
  #attach(now: number, t: Topic, parent: NodeHandle, path: readonly Id[], heads?: readonly Head[]): void {
    const old = t.parent
    t.isRoot = false
    t.parent = parent
    t.parentPath = path
    t.parentHeard = now
    t.parentSent = now
    t.joining = undefined
    const hex = parent.id.toHex()
    if (t.children.has(hex)) this.#removeChild(now, t, hex, 'parent', false)
    if (old !== undefined && !old.id.equals(parent.id)) this.#send(now, old, { type: 'leave', topic: t.name })
    if (old === undefined || !old.id.equals(parent.id))
      this.#events.push({ type: 'parentChanged', topic: t.name, parent, root: false })
    let advanced = false
    if (heads !== undefined) {
      this.#pushUp(now, t, heads)
      advanced = this.#seedHeads(t, heads)
      this.#applyHeads(now, t, heads)
    }
    if (t.subscribed) t.baselined = true
    for (const c of t.children.values()) if (!c.acked || advanced) this.#ackChild(now, t, c)
  }

  /**
   * Takes the parent's heads into the replay buffers, so that this node's own acknowledgements
   * pass them down: a publisher new to this node starts at its head (everything before counts as
   * seen); a known one has its head raised (the messages in between are for its subscribers to ask
   * for). True when some head moved.
   */
  #seedHeads(t: Topic, heads: readonly Head[]): boolean {
    let advanced = false
    for (const h of heads) {
      const hex = h.publisher.id.toHex()
      let log = t.logs.get(hex)
      if (log !== undefined && log.epoch > h.epoch) continue
      if (log !== undefined && log.epoch === h.epoch) {
        if (h.seq > log.head) {
          log.head = h.seq
          advanced = true
        }
        continue
      }
      if (log === undefined) {
        if (t.logs.size >= this.config.maxPublishersPerTopic) continue
        log = new Log(h.publisher, h.epoch)
        t.logs.set(hex, log)
      } else t.bufferBytes -= log.reset(h.epoch)
      log.head = h.seq
      log.floor = h.seq
      advanced = true
    }
    return advanced
  }

  /**
   * Sends toward the root, as routed publishes, the messages this node holds that its parent's
   * `heads` do not cover. A tree node only ever holds what came down from its parent, so this finds
   * something only after a split: messages taken in by a root that has since failed or stepped
   * down, and pushed to part of the tree only. The root takes them in (once) and pushes them down,
   * so the rest of the tree gets them too instead of losing them silently.
   */
  #pushUp(now: number, t: Topic, heads: readonly Head[]): void {
    // A publisher missing from heads is news to the parent only when the list is whole: neither cut
    // at MAX_HEADS nor at a parent that may have forgotten publishers (maxPublishersPerTopic).
    const complete = heads.length < Math.min(MAX_HEADS, this.config.maxPublishersPerTopic)
    for (const log of t.logs.values()) {
      const last = log.seqs[log.seqs.length - 1]
      if (last === undefined) continue
      let after = 0
      let known = false
      for (const h of heads) {
        if (!h.publisher.id.equals(log.publisher.id)) continue
        known = true
        after = h.epoch > log.epoch ? Number.POSITIVE_INFINITY : h.epoch === log.epoch ? h.seq : 0
        break
      }
      if ((!known && !complete) || last <= after) continue
      for (const x of log.range(after + 1, last)) {
        const message: DataMessage = { publisher: log.publisher, epoch: log.epoch, seq: x.seq, data: x.data }
        this.stats.pushedUp++
        this.host.route(now, t.id, encodePubSub({ type: 'publish', topic: t.name, message }))
      }
    }
  }

  #becomeRoot(now: number, t: Topic): void {
    t.joining = undefined
    if (t.isRoot) return
    if (t.parent !== undefined) this.#send(now, t.parent, { type: 'leave', topic: t.name })
    t.parent = undefined
    t.parentPath = []
    t.isRoot = true
    if (t.subscribed) t.baselined = true
    this.#events.push({ type: 'parentChanged', topic: t.name, parent: undefined, root: true })
    this.#ackChildren(now, t)
  }

  /** This node is not `t`'s root after all: it stops acting as one (and subscribes onward if needed). */
  #notRoot(t: Topic): void {
    t.isRoot = false
    this.#events.push({ type: 'parentChanged', topic: t.name, parent: undefined, root: false })
  }

  #loseRoot(now: number, t: Topic): void {
    this.#notRoot(t)
    if (t.subscribed || t.children.size > 0) this.#join(now, t)
    else this.#topics.delete(t.name)
  }

  /** Drops the parent, optionally telling it. */
  #detach(now: number, t: Topic, tell: boolean): void {
    if (t.parent === undefined) return
    if (tell) this.#send(now, t.parent, { type: 'leave', topic: t.name })
    t.parent = undefined
    t.parentPath = []
    this.#events.push({ type: 'parentChanged', topic: t.name, parent: undefined, root: false })
  }

  /** The parent is gone (silent, failed, refused us, or a cycle): subscribe again if still needed. */
  #parentLost(now: number, t: Topic, tell = false): void {
    this.#detach(now, t, tell)
    if (t.subscribed || t.children.size > 0) this.#join(now, t)
    else this.#topics.delete(t.name)
  }

  #addChild(now: number, t: Topic, s: NodeHandle, redirects: number): void {
    if (s.id.equals(this.#self.id)) return
    const hex = s.id.toHex()
    const existing = t.children.get(hex)
    if (existing !== undefined) {
      existing.heard = now
      if (t.isRoot || t.parent !== undefined) this.#ackChild(now, t, existing)
      return
    }
    if (t.children.size >= this.config.maxChildren && redirects < this.config.maxRedirects) {
      // Bottleneck removal: hand the newcomer down to the child nearest this node in the network,
      // which adds the least delay on the way down (at most twice that child's distance, by the
      // triangle inequality). Without RTTs, to the child whose id is closest to the newcomer's.
      const best = this.#nearestChild(t) ?? this.#closestChild(t, s.id)
      this.stats.redirects++
      this.#send(now, s, {
        type: 'subscribeRedirect',
        topic: t.name,
        to: best!.handle,
        redirects: redirects + 1,
      })
      return
    }
    const child: Child = { handle: s, heard: now, sent: now, acked: false }
    t.children.set(hex, child)
    t.lastActivity = now
    this.#events.push({ type: 'childAdded', topic: t.name, child: s })
    if (t.isRoot || t.parent !== undefined) this.#ackChild(now, t, child)
  }

  /** The child with the lowest measured RTT, if the host measures any. */
  #nearestChild(t: Topic): Child | undefined {
    const proximity = this.host.proximity
    if (proximity === undefined) return undefined
    let best: Child | undefined
    let bestRtt = Number.POSITIVE_INFINITY
    for (const c of t.children.values()) {
      const rtt = proximity.call(this.host, c.handle.id)
      if (rtt !== undefined && rtt < bestRtt) {
        best = c
        bestRtt = rtt
      }
    }
    return best
  }

  /** The child whose id is numerically closest to `id`. */
  #closestChild(t: Topic, id: Id): Child | undefined {
    let best: Child | undefined
    for (const c of t.children.values()) {
      if (best === undefined || compareDistance(id, c.handle.id, best.handle.id) < 0) best = c
    }
    return best
  }

  #ackChildren(now: number, t: Topic): void {
    for (const c of t.children.values()) if (!c.acked) this.#ackChild(now, t, c)
  }

  #ackChild(now: number, t: Topic, c: Child): void {
    const heads: Head[] = []
    for (const log of t.logs.values()) {
      if (heads.length >= MAX_HEADS) break
      if (log.head > 0) heads.push({ publisher: log.publisher, epoch: log.epoch, seq: log.head })
    }
    c.acked = true
    c.sent = now
    this.#send(now, c.handle, { type: 'subscribeAck', topic: t.name, path: this.#pathOf(t), heads })
  }

  #pathOf(t: Topic): Id[] {
    if (t.isRoot || t.parent === undefined) return [this.#self.id]
    const p = [...t.parentPath, this.#self.id]
    return p.length > MAX_PATH_IDS ? p.slice(p.length - MAX_PATH_IDS) : p
  }

  #removeChild(now: number, t: Topic, hex: string, reason: ChildRemovedReason, prune = true): void {
    const c = t.children.get(hex)
    if (c === undefined) return
    t.children.delete(hex)
    this.#events.push({ type: 'childRemoved', topic: t.name, child: c.handle, reason })
    if (prune) this.#maybePrune(now, t)
  }

  /** Leaves the tree when nobody here or below needs the topic (a root stays until idle). */
  #maybePrune(now: number, t: Topic): void {
    if (t.subscribed || t.children.size > 0) return
    if (t.isRoot) {
      t.lastActivity = now
      return
    }
    if (t.parent !== undefined) this.#send(now, t.parent, { type: 'leave', topic: t.name })
    this.#topics.delete(t.name)
  }

  // ---------------------------------------------------------------------------------------------
  // Data

  #transmitPublish(now: number, o: Outgoing): void {
    o.attempts++
    o.retryAt = now + this.config.publishAckTimeoutMs
    const payload = encodePubSub({ type: 'publish', topic: o.stream.topic, message: o.message })
    const root = o.stream.root
    if (root !== undefined) this.host.send(now, root, payload)
    else this.host.route(now, o.stream.id, payload)
  }

  #ackPublish(now: number, m: PubSubWireOf<'publish'>): void {
    this.#send(now, m.message.publisher, {
      type: 'publishAck',
      topic: m.topic,
      epoch: m.message.epoch,
      seq: m.message.seq,
    })
  }

  /** A message reached this tree node: buffer it, push it down the first time, deliver it here. */
  #acceptData(now: number, t: Topic, m: DataMessage): void {
    t.lastActivity = now
    if (this.#logAdd(t, m.publisher, m.epoch, m.seq, m.data)) {
      if (t.children.size > 0) {
        const payload = encodePubSub({ type: 'data', topic: t.name, message: m })
        for (const c of t.children.values()) {
          c.sent = now
          this.stats.dataSent++
          this.host.send(now, c.handle, payload)
        }
      }
    } else this.stats.duplicates++
    if (t.subscribed) this.#receive(now, t, m.publisher, m.epoch, m.seq, m.data)
  }

  /** Adds a message to `t`'s replay buffer; false when it was seen before (or is too old). */
  #logAdd(t: Topic, publisher: NodeHandle, epoch: number, seq: number, data: Uint8Array): boolean {
    const hex = publisher.id.toHex()
    let log = t.logs.get(hex)
    if (log === undefined) {
      if (t.logs.size >= this.config.maxPublishersPerTopic) {
        const [oldHex, old] = t.logs.entries().next().value as [string, Log]
        t.bufferBytes -= old.bytes
        t.logs.delete(oldHex)
      }
      log = new Log(publisher, epoch)
      t.logs.set(hex, log)
    } else {
      if (epoch < log.epoch) return false
      if (epoch > log.epoch) t.bufferBytes -= log.reset(epoch)
      // Most recently heard last.
      t.logs.delete(hex)
      t.logs.set(hex, log)
    }
    if (!log.add(seq, data)) return false
    t.bufferBytes += data.length
    while (log.seqs.length > this.config.replayWindow) t.bufferBytes -= log.evictOldest()
    while (t.bufferBytes > this.config.maxTopicBufferBytes) {
      let biggest: Log | undefined
      for (const l of t.logs.values()) if (biggest === undefined || l.bytes > biggest.bytes) biggest = l
      if (biggest === undefined || biggest.seqs.length === 0) break
      t.bufferBytes -= biggest.evictOldest()
    }
    return true
  }

  /** A subscriber's in-order, exactly-once delivery for one publisher. */
  #receive(now: number, t: Topic, publisher: NodeHandle, epoch: number, seq: number, data: Uint8Array): void {
    const ib = this.#inbox(t, publisher, epoch, t.baselined ? 1 : seq)
    if (ib === undefined) return
    if (seq < ib.next || ib.held.has(seq)) return
    if (seq === ib.next) {
      this.#deliver(t, ib, seq, data)
      this.#drain(t, ib)
      if (ib.held.size === 0 && (ib.gap === undefined || ib.gap.to < ib.next)) ib.gap = undefined
      return
    }
    ib.held.set(seq, data)
    if (ib.held.size > this.config.maxHeldPerPublisher) {
      // Too far behind: give the hole up rather than hold without bound.
      this.#declareGap(t, ib, minKey(ib.held) - 1)
      this.#drain(t, ib)
    }
    if (ib.held.size > 0 && ib.gap === undefined) this.#askReplay(now, t, ib, maxKey(ib.held) - 1)
  }

  /** The inbox for a publisher, made or reset as the epoch says; undefined for a stale epoch. */
  #inbox(t: Topic, publisher: NodeHandle, epoch: number, firstSeq: number): Inbox | undefined {
    const hex = publisher.id.toHex()
    let ib = t.inboxes.get(hex)
    if (ib === undefined) {
      if (t.inboxes.size >= this.config.maxPublishersPerTopic) {
        const [oldHex, old] = t.inboxes.entries().next().value as [string, Inbox]
        if (old.held.size > 0) {
          this.#declareGap(t, old, maxKey(old.held))
        }
        t.inboxes.delete(oldHex)
      }
      ib = { publisher, epoch, next: firstSeq, held: new Map(), gap: undefined }
      t.inboxes.set(hex, ib)
      return ib
    }
    if (epoch < ib.epoch) return undefined
    if (epoch > ib.epoch) {
      // A new incarnation of the publisher: its old stream ends here, the new one starts at 1.
      if (ib.held.size > 0) this.#declareGap(t, ib, maxKey(ib.held))
      ib.epoch = epoch
      ib.next = 1
      ib.held.clear()
      ib.gap = undefined
    }
    t.inboxes.delete(hex)
    t.inboxes.set(hex, ib)
    return ib
  }

  #deliver(t: Topic, ib: Inbox, seq: number, data: Uint8Array): void {
    ib.next = seq + 1
    this.#events.push({ type: 'message', topic: t.name, publisher: ib.publisher, epoch: ib.epoch, seq, data })
  }

  #drain(t: Topic, ib: Inbox): void {
    for (let d = ib.held.get(ib.next); d !== undefined; d = ib.held.get(ib.next)) {
      ib.held.delete(ib.next)
      this.#deliver(t, ib, ib.next, d)
    }
  }

  /** Reports `ib.next..upTo` as lost (delivering any held message up to it) and moves past it. */
  #declareGap(t: Topic, ib: Inbox, upTo: number): void {
    while (ib.next <= upTo) {
      let end = upTo
      for (const s of ib.held.keys()) if (s >= ib.next && s <= end) end = s - 1
      if (end >= ib.next) {
        this.stats.gaps++
        this.#events.push({
          type: 'gap',
          topic: t.name,
          publisher: ib.publisher,
          epoch: ib.epoch,
          fromSeq: ib.next,
          toSeq: end,
        })
        ib.next = end + 1
      }
      this.#drain(t, ib)
    }
  }

  /**
   * Asks for `ib.next..to`: from the parent (which passes it up), or, at the root, the publisher.
   * A repeated request (`attempt` > 1) also goes straight to the publisher: the parent may be dead
   * and not yet noticed, or the tree above it split.
   */
  #askReplay(now: number, t: Topic, ib: Inbox, to: number, attempt = 1): void {
    if (to < ib.next) return
    ib.gap = { from: ib.next, to, deadline: now + this.config.replayTimeoutMs, attempts: attempt }
    this.stats.replayRequests++
    const request: PubSubWireOf<'replayRequest'> = {
      type: 'replayRequest',
      topic: t.name,
      publisher: ib.publisher,
      epoch: ib.epoch,
      from: ib.next,
      to,
      replyTo: this.#self,
      hops: 0,
    }
    if (ib.publisher.id.equals(this.#self.id)) {
      this.#serveReplay(now, request)
      return
    }
    const first = t.parent ?? ib.publisher
    this.#send(now, first, request)
    if (attempt > 1 && !first.id.equals(ib.publisher.id)) this.#send(now, ib.publisher, request)
  }

  #applyHeads(now: number, t: Topic, heads: readonly Head[]): void {
    if (!t.subscribed) return
    for (const h of heads) {
      const ib = t.inboxes.get(h.publisher.id.toHex())
      if (ib === undefined || h.epoch > ib.epoch) {
        // A publisher new to a first attachment starts after its head; otherwise (and for a new
        // epoch) from 1.
        const made = this.#inbox(t, h.publisher, h.epoch, t.baselined ? 1 : h.seq + 1)
        if (made !== undefined && h.seq >= made.next && made.gap === undefined)
          this.#askReplay(now, t, made, h.seq)
      } else if (h.epoch === ib.epoch && h.seq >= ib.next && (ib.gap === undefined || h.seq > ib.gap.to)) {
        // Also while a request is open for less: its answer would not cover the news.
        this.#askReplay(
          now,
          t,
          ib,
          Math.max(h.seq, ib.held.size > 0 ? maxKey(ib.held) - 1 : 0),
          ib.gap?.attempts ?? 1,
        )
      }
    }
  }

  #serveReplay(now: number, r: PubSubWireOf<'replayRequest'>): void {
    if (r.publisher.id.equals(this.#self.id)) {
      // The publisher's own window answers for good.
      const s = this.#streams.get(r.topic)
      this.stats.replaysServed++
      if (s === undefined || s.log.epoch !== r.epoch) {
        this.#reply(now, r, [], r.to)
        return
      }
      const lostTo = r.from <= s.log.floor ? Math.min(r.to, s.log.floor) : 0
      this.#reply(now, r, s.log.range(r.from, r.to), lostTo)
      return
    }
    const t = this.#topics.get(r.topic)
    const log = t?.logs.get(r.publisher.id.toHex())
    if (log !== undefined && log.epoch === r.epoch && log.covers(r.from, r.to)) {
      this.stats.replaysServed++
      this.#reply(now, r, log.range(r.from, r.to), 0)
      return
    }
    if (r.hops >= MAX_REPLAY_HOPS) return
    const up = t?.parent !== undefined && !t.parent.id.equals(r.replyTo.id) ? t.parent : r.publisher
    this.#send(now, up, { ...r, hops: r.hops + 1 })
  }

  #reply(
    now: number,
    r: PubSubWireOf<'replayRequest'>,
    messages: readonly { seq: number; data: Uint8Array }[],
    lostTo: number,
  ): void {
    let i = 0
    let first = true
    while (first || i < messages.length) {
      const chunk: { seq: number; data: Uint8Array }[] = []
      let bytes = 0
      while (i < messages.length && chunk.length < MAX_REPLAY_MESSAGES) {
        const m = messages[i]!
        if (chunk.length > 0 && bytes + m.data.length > this.config.maxReplayBytes) break
        chunk.push(m)
        bytes += m.data.length
        i++
      }
      this.#send(now, r.replyTo, {
        type: 'replay',
        topic: r.topic,
        publisher: r.publisher,
        epoch: r.epoch,
        messages: chunk,
        lostTo: first ? lostTo : 0,
      })
      first = false
    }
  }

  #onReplay(now: number, m: PubSubWireOf<'replay'>): void {
    const t = this.#topics.get(m.topic)
    if (t === undefined || !t.subscribed) return
    const ib = t.inboxes.get(m.publisher.id.toHex())
    if (ib === undefined || ib.epoch !== m.epoch) return
    for (const x of m.messages) {
      if (!this.#logAdd(t, m.publisher, m.epoch, x.seq, x.data)) this.stats.duplicates++
      this.#receive(now, t, m.publisher, m.epoch, x.seq, x.data)
    }
    if (m.lostTo >= ib.next) this.#declareGap(t, ib, m.lostTo)
    if (ib.held.size === 0 && (ib.gap === undefined || ib.gap.to < ib.next)) ib.gap = undefined
  }

  #gapTimeout(now: number, t: Topic, ib: Inbox): void {
    const g = ib.gap!
    const want = Math.max(g.to, ib.held.size > 0 ? maxKey(ib.held) - 1 : 0)
    if (want < ib.next) {
      ib.gap = undefined
      return
    }
    // Part of the hole came in: the request is answered, if slowly; start counting afresh.
    const attempt = ib.next > g.from ? 1 : g.attempts + 1
    if (attempt <= this.config.replayAttempts) {
      this.#askReplay(now, t, ib, want, attempt)
      return
    }
    ib.gap = undefined
    this.#declareGap(t, ib, ib.held.size > 0 ? minKey(ib.held) - 1 : g.to)
    if (ib.held.size > 0) this.#askReplay(now, t, ib, maxKey(ib.held) - 1)
  }

  // ---------------------------------------------------------------------------------------------
  // Anycast

  #anycastStep(now: number, t: Topic, m: PubSubWireOf<'anycast'>): void {
    const steps = m.steps + 1
    const limit = this.config.maxAnycastVisits
    if (steps > 4 * limit) {
      this.#anycastFail(now, m)
      return
    }
    let visited = m.visited
    if (!containsId(visited, this.#self.id)) {
      if (visited.length >= limit) {
        this.#anycastFail(now, m)
        return
      }
      visited = [...visited, this.#self.id]
      if (
        t.subscribed &&
        !m.requester.id.equals(this.#self.id) &&
        this.#accept?.(t.name, m.data, m.requester) === true
      ) {
        this.#send(now, m.requester, {
          type: 'anycastResult',
          anycastId: m.anycastId,
          accepted: true,
          by: this.#self,
        })
        return
      }
    }
    let next: NodeHandle | undefined
    for (const c of t.children.values()) {
      if (!containsId(visited, c.handle.id)) {
        next = c.handle
        break
      }
    }
    next ??= t.parent
    if (next === undefined) {
      this.#anycastFail(now, m)
      return
    }
    this.#send(now, next, { ...m, visited, steps })
  }

  #anycastFail(now: number, m: PubSubWireOf<'anycast'>): void {
    this.#send(now, m.requester, {
      type: 'anycastResult',
      anycastId: m.anycastId,
      accepted: false,
      by: this.#self,
    })
  }

  // ---------------------------------------------------------------------------------------------
  // Periodic work

  #tick(now: number): void {
    const c = this.config
    const due = c.heartbeatMs - this.#tickMs
    const down = new Map<string, { to: NodeHandle; items: { topic: string; path: readonly Id[] }[] }>()
    const up = new Map<string, { to: NodeHandle; topics: string[] }>()
    for (const t of [...this.#topics.values()]) {
      if (t.joining !== undefined && now >= t.joining.deadline) {
        if (!t.subscribed && t.children.size === 0) {
          this.#topics.delete(t.name)
          continue
        }
        if (t.joining.attempts >= c.subscribeAttempts) {
          if (!t.subscribed) {
            // A forwarder that cannot reattach gives its children back, to find their own way.
            for (const [hex, ch] of [...t.children]) {
              this.#send(now, ch.handle, { type: 'reject', topic: t.name })
              this.#removeChild(now, t, hex, 'parent', false)
            }
            this.#topics.delete(t.name)
            continue
          }
          if (!t.joining.reported) {
            t.joining.reported = true
            this.#events.push({ type: 'subscribeFailed', topic: t.name, attempts: t.joining.attempts })
          }
        }
        this.#join(now, t)
      }
      if (t.parent !== undefined && now - t.parentHeard >= c.parentTimeoutMs) {
        this.#parentLost(now, t)
        if (this.#topics.get(t.name) !== t) continue
      }
      for (const [hex, ch] of [...t.children]) {
        if (now - ch.heard >= c.childTimeoutMs) {
          this.#removeChild(now, t, hex, 'timeout', false)
        } else if (ch.acked && now - ch.sent >= due) {
          ch.sent = now
          let b = down.get(hex)
          if (b === undefined) down.set(hex, (b = { to: ch.handle, items: [] }))
          b.items.push({ topic: t.name, path: this.#pathOf(t) })
        }
      }
      if (this.#topics.get(t.name) !== t) continue
      if (t.parent !== undefined && now - t.parentSent >= due) {
        t.parentSent = now
        const hex = t.parent.id.toHex()
        let b = up.get(hex)
        if (b === undefined) up.set(hex, (b = { to: t.parent, topics: [] }))
        b.topics.push(t.name)
      }
      for (const ib of t.inboxes.values())
        if (ib.gap !== undefined && now >= ib.gap.deadline) this.#gapTimeout(now, t, ib)
      if (!t.subscribed && t.children.size === 0 && t.joining === undefined) {
        if (!t.isRoot) this.#maybePrune(now, t)
        else if (now - t.lastActivity >= c.topicIdleMs) this.#topics.delete(t.name)
      }
    }
    for (const b of down.values()) {
      for (let i = 0; i < b.items.length; i += MAX_BEAT_TOPICS)
        this.#send(now, b.to, { type: 'beatDown', items: b.items.slice(i, i + MAX_BEAT_TOPICS) })
    }
    for (const b of up.values()) {
      for (let i = 0; i < b.topics.length; i += MAX_BEAT_TOPICS)
        this.#send(now, b.to, { type: 'beatUp', topics: b.topics.slice(i, i + MAX_BEAT_TOPICS) })
    }
    for (const [key, o] of [...this.#outbox]) {
      if (now < o.retryAt) continue
      if (o.attempts >= c.publishAttempts) {
        this.#outbox.delete(key)
        this.#events.push({
          type: 'publishFailed',
          topic: o.stream.topic,
          epoch: o.message.epoch,
          seq: o.message.seq,
          reason: 'attempts-exhausted',
        })
        continue
      }
      // The cached root did not answer: find the root by routing.
      o.stream.root = undefined
      this.stats.publishRetries++
      this.#transmitPublish(now, o)
    }
    for (const [anycastId, a] of [...this.#anycasts]) {
      if (now < a.deadline) continue
      this.#anycasts.delete(anycastId)
      this.#events.push({ type: 'anycastDone', anycastId, topic: a.topic, accepted: false, by: undefined })
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  #advance(now: number): void {
    if (typeof now !== 'number' || !Number.isFinite(now))
      throw new PubSubError('BAD_TIME', `now must be a finite number, got ${String(now)}`)
    if (now < this.#lastNow)
      throw new PubSubError('TIME_WENT_BACKWARDS', `now went backwards: ${now} after ${this.#lastNow}`)
    this.#lastNow = now
  }

  /** Runs what this node sent itself, then sets the next deadline. Called at the end of every input. */
  #finish(now: number): void {
    for (let i = 0; i < this.#loopback.length && !this.#closed; i++)
      this.#onDirect(now, this.#loopback[i]!, this.#self)
    this.#loopback.length = 0
    if (this.#closed) return
    const idle = this.#topics.size === 0 && this.#outbox.size === 0 && this.#anycasts.size === 0
    if (idle) this.#nextTick = undefined
    else this.#nextTick ??= now + this.#tickMs
  }

  #send(now: number, to: NodeHandle, m: PubSubWireMessage): void {
    if (to.id.equals(this.#self.id)) {
      this.#loopback.push(m)
      return
    }
    this.host.send(now, to, encodePubSub(m))
  }

  #decode(payload: Uint8Array, where: string): PubSubWireMessage | undefined {
    const r = decodePubSub(payload, this.config.maxPayloadBytes)
    if (r.ok) return r.message
    this.#bad(`a ${where} payload did not decode (${r.error.code}): ${r.error.message}`)
    return undefined
  }

  #bad(message: string): void {
    this.stats.badMessages++
    this.#events.push({ type: 'error', code: 'BAD_MESSAGE', message })
  }
}

const CONTINUE: ForwardDecision = Object.freeze({ action: 'continue' })
const DROP: ForwardDecision = Object.freeze({ action: 'drop' })

const utf8 = new TextEncoder()

function checkTopic(topic: string): void {
  if (typeof topic !== 'string' || utf8.encode(topic).length > MAX_TOPIC_BYTES)
    throw new PubSubError('BAD_TOPIC', `a topic is a string of at most ${MAX_TOPIC_BYTES} UTF-8 bytes`)
}

function checkData(data: Uint8Array, max: number): void {
  if (!(data instanceof Uint8Array)) throw new PubSubError('BAD_DATA', 'data must be a Uint8Array')
  if (data.length > max) throw new PubSubError('DATA_TOO_LARGE', `data has ${data.length} bytes, over ${max}`)
}

const topicIds = new Map<string, Id>()

function keyMatches(key: Id, topic: string): boolean {
  let id = topicIds.get(topic)
  if (id === undefined) {
    id = hashId(topic)
    if (topicIds.size >= 4096) topicIds.clear()
    topicIds.set(topic, id)
  }
  return id.equals(key)
}

/** `chain` with `id` added at the end, keeping the latest `MAX_PATH_IDS`. */
function extendChain(chain: readonly Id[], id: Id): Id[] {
  const out = [...chain, id]
  return out.length > MAX_PATH_IDS ? out.slice(out.length - MAX_PATH_IDS) : out
}

function isAncestor(t: Topic, s: NodeHandle): boolean {
  return containsId(t.parentPath, s.id)
}

function containsId(ids: readonly Id[], x: Id): boolean {
  for (const i of ids) if (i.equals(x)) return true
  return false
}

function outKey(topic: string, seq: number): string {
  return `${seq}\n${topic}`
}

function minKey(m: Map<number, unknown>): number {
  let best = Number.POSITIVE_INFINITY
  for (const k of m.keys()) if (k < best) best = k
  return best
}

function maxKey(m: Map<number, unknown>): number {
  let best = 0
  for (const k of m.keys()) if (k > best) best = k
  return best
}
