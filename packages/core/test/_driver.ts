// A small deterministic discrete-event driver for N PastryNodes, used by the protocol tests
// (STYLE.md: quinn-proto's "tests drive endpoints over virtual time until idle"). It is not the
// testkit simulator: it is the least that runs the driver loop of `src/protocol/types.ts` faithfully.
//
// - One queue of (time, seq) items: message arrivals, node timers, and scheduled test actions.
// - Node i lives at address `n:<i>`. A link's latency is a fixed function of its two ends, so every
//   link is FIFO and a run is a pure function of the seed.
// - After every input to a node: drain pollTransmit, drain pollEvent (every event is recorded per
//   node, with its virtual time), and re-arm the node's one timer at nextDeadline(). Timers are
//   cancelled lazily: each arming bumps a generation, and a fired timer of an old generation is
//   skipped.
// - Drop rules (predicates on a sent message) model silent or unreachable nodes; `crash(i)` closes
//   the node and drops every later message to it.
// - With `codec: true` every message crosses the wire as bytes: encodeMessage at the sender,
//   decodeMessage at the receiver (a decoding failure throws: a node sent an invalid message).
// - An oracle (bigint brute force) knows the active nodes: the numerically closest one to a key,
//   and the exact leaf set every node should have.
import { createHash } from 'node:crypto'
import {
  createRng,
  decodeMessage,
  encodeMessage,
  type Id,
  type Message,
  type NodeEvent,
  type NodeState,
  PastryNode,
  type ProtocolConfig,
  type Rng,
  randomId,
} from '../src/index.js'

/** Short periods, so that tests run fast in virtual time. */
export const FAST: Partial<ProtocolConfig> = Object.freeze({
  leafSetHeartbeatMs: 1000,
  probeTimeoutMs: 500,
  joinTimeoutMs: 3000,
  routingTableMaintenanceMs: 20000,
})

/** One-way latency in ms from node i to node j: deterministic, 5 to 44 ms. */
export function defaultLatency(i: number, j: number): number {
  return 5 + ((i * 7919 + j * 104729) % 40)
}

export const addressOf = (i: number): string => `n:${i}`

/** An event as a node emitted it, at the virtual time it was polled. */
export interface Recorded {
  readonly at: number
  readonly event: NodeEvent
}

/** A message as a node handed it to the driver. `to` is -1 for an unknown address. */
export interface Sent {
  readonly at: number
  readonly from: number
  readonly to: number
  readonly message: Message
}

/** True to drop the message. */
export type DropRule = (sent: Sent) => boolean

export interface Delivered {
  readonly at: number
  readonly node: number
  /** The oracle's closest active node at the moment of delivery. */
  readonly expected: number
  readonly hops: number
  readonly app: string
  readonly payload: Uint8Array
}

/** A routed message the driver tracks from `route` to delivery. */
export interface Lookup {
  readonly msgId: number
  readonly key: Id
  readonly origin: number
  readonly app: string
  readonly payload: Uint8Array
  readonly sentAt: number
  readonly deliveries: Delivered[]
  /** `route` transmissions of this message by any node. */
  transmissions: number
  failed: string | undefined
}

export interface LookupReport {
  readonly total: number
  readonly delivered: number
  readonly lost: number
  readonly duplicated: number
  readonly wrong: number
  readonly failed: number
  /** A few readable lines about the bad ones. */
  readonly details: string[]
}

export interface DriverOptions {
  /** Names the run: ids, node rngs and the test's own draws all derive from it. */
  readonly seed: string
  /** Nodes to make; all start idle. */
  readonly n: number
  readonly config?: Partial<ProtocolConfig>
  /** Ids for the first `ids.length` nodes; the rest are random. */
  readonly ids?: readonly Id[]
  /** Encode and decode every message (default false). */
  readonly codec?: boolean
  readonly latency?: (from: number, to: number) => number
  /**
   * Node i's clock reads the driver's clock plus `clockOffset(i)` (default 0): nodes need not agree
   * on the time, only on durations.
   */
  readonly clockOffset?: (i: number) => number
  /** Take each node's messages with `drainTransmits` instead of `pollTransmit` (default false). */
  readonly drainTransmits?: boolean
}

type Item =
  | {
      at: number
      seq: number
      kind: 'msg'
      from: number
      to: number
      /** Counts toward "not quiet": anything but maintenance. */
      work: boolean
      message: Message | undefined
      frame: Uint8Array | undefined
    }
  | { at: number; seq: number; kind: 'timer'; node: number; gen: number }
  | { at: number; seq: number; kind: 'call'; fn: () => void }

const RING = 1n << 128n

/** Message types that never stop flowing: they do not keep `runUntilQuiet` running. */
const MAINTENANCE: ReadonlySet<string> = new Set([
  'heartbeat',
  'probe',
  'probeReply',
  'indirectProbe',
  'indirectProbeReply',
  'leafSetRequest',
  'leafSetReply',
  'rowRequest',
  'rowReply',
])

function ringDistance(a: bigint, b: bigint): bigint {
  const d = (((a - b) % RING) + RING) % RING
  return d <= RING - d ? d : RING - d
}

/** The index in `ids` numerically closest to `key`: smallest ring distance, then smaller value. */
export function closestOf(key: bigint, ids: readonly bigint[]): number {
  let best = -1
  let bestD = 0n
  for (let i = 0; i < ids.length; i++) {
    const x = ids[i]!
    const d = ringDistance(key, x)
    if (best < 0 || d < bestD || (d === bestD && x < ids[best]!)) {
      best = i
      bestD = d
    }
  }
  return best
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** A JSON line for an event: ids as hex, bytes as hex. */
export function formatEvent(e: NodeEvent): string {
  return JSON.stringify(e, (_k, v) => (v instanceof Uint8Array ? hex(v) : v))
}

export class Driver {
  /** The test's own random draws (keys, origins, victims). */
  readonly rng: Rng
  readonly nodes: PastryNode[] = []
  readonly events: Recorded[][] = []
  readonly lookups: Lookup[] = []
  /** Contract breaches the driver saw: a delivery at a node that was not active, and the like. */
  readonly violations: string[] = []
  readonly stats = { sent: 0, dropped: 0, arrived: 0, bytes: 0 }
  now = 0
  readonly #latency: (from: number, to: number) => number
  readonly #codec: boolean
  readonly #offset: number[] = []
  /** The last `now` handed to each node, so that offsets never make a node's clock go backwards. */
  readonly #lastNodeNow: number[] = []
  readonly #index = new Map<string, number>()
  readonly #heap: Item[] = []
  #seq = 0
  #inFlight = 0
  readonly #armed: (number | undefined)[] = []
  readonly #gen: number[] = []
  readonly #crashed: boolean[] = []
  /** Each node's state as its stateChanged events tell it, in event order. */
  readonly #seenState: NodeState[] = []
  readonly #rules = new Set<DropRule>()
  readonly #listeners = new Set<(s: Sent) => void>()
  readonly #byMsgId = new Map<number, Lookup>()
  readonly #drainAll: boolean

  constructor(options: DriverOptions) {
    const root = createRng(options.seed)
    this.rng = root.derive('test')
    const idRng = root.derive('ids')
    this.#latency = options.latency ?? defaultLatency
    this.#codec = options.codec ?? false
    this.#drainAll = options.drainTransmits ?? false
    for (let i = 0; i < options.n; i++) {
      const id = options.ids?.[i] ?? randomId(idRng)
      const node = new PastryNode({
        id,
        address: addressOf(i),
        rng: root.derive(`node/${i}`),
        config: options.config ?? FAST,
      })
      this.nodes.push(node)
      this.events.push([])
      this.#index.set(addressOf(i), i)
      this.#armed.push(undefined)
      this.#gen.push(0)
      this.#crashed.push(false)
      this.#seenState.push('idle')
      this.#offset.push(options.clockOffset?.(i) ?? 0)
      this.#lastNodeNow.push(Number.NEGATIVE_INFINITY)
    }
  }

  node(i: number): PastryNode {
    const n = this.nodes[i]
    if (n === undefined) throw new Error(`no node ${i}`)
    return n
  }

  /** The index of the node with this id, or -1. */
  indexOf(id: Id): number {
    return this.nodes.findIndex((n) => n.id.equals(id))
  }

  // -------------------------------------------------------------------------------------------
  // Inputs, each followed by the driver loop's drain.

  start(i: number): void {
    this.#input(i, (n, now) => n.start(now))
  }

  join(i: number, bootstraps: readonly number[]): void {
    this.#input(i, (n, now) =>
      n.join(
        now,
        bootstraps.map((b) => addressOf(b)),
      ),
    )
  }

  /** Routes a tracked message from node i; its deliveries and failure are recorded. */
  route(i: number, key: Id, app = 'lookup', payload?: Uint8Array): Lookup {
    const bytes = payload ?? this.#payloadFor(this.lookups.length)
    const node = this.node(i)
    const msgId = node.route(this.#nodeNow(i), key, app, bytes)
    const lookup: Lookup = {
      msgId,
      key,
      origin: i,
      app,
      payload: bytes,
      sentAt: this.now,
      deliveries: [],
      transmissions: 0,
      failed: undefined,
    }
    this.lookups.push(lookup)
    this.#byMsgId.set(msgId, lookup)
    this.#drain(i)
    return lookup
  }

  send(i: number, to: number, app: string, payload: Uint8Array): void {
    this.#input(i, (n, now) => n.send(now, this.node(to).handle, app, payload))
  }

  leave(i: number): void {
    this.#input(i, (n, now) => n.leave(now))
  }

  /** Closes node i without notice, and drops every later message to it. */
  crash(i: number): void {
    this.#crashed[i] = true
    this.#input(i, (n, now) => n.close(now))
  }

  /** Hands a message to node i now, as if it had just arrived. */
  inject(i: number, message: Message): void {
    this.#input(i, (n, now) => n.handleMessage(now, message))
  }

  /** Runs `fn` at virtual time `at` (not before now). */
  at(at: number, fn: () => void): void {
    this.#push({ at: Math.max(at, this.now), seq: this.#seq++, kind: 'call', fn })
    this.#inFlight++
  }

  /** Adds a drop rule; returns a function that removes it. */
  drop(rule: DropRule): () => void {
    this.#rules.add(rule)
    return () => this.#rules.delete(rule)
  }

  /** Watches every message sent (before drop rules); returns a function that stops watching. */
  watch(listener: (s: Sent) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  isCrashed(i: number): boolean {
    return this.#crashed[i] === true
  }

  // -------------------------------------------------------------------------------------------
  // Running.

  /** Processes every item due by `t`, then sets the clock to `t`. */
  runUntil(t: number): void {
    for (;;) {
      const top = this.#heap[0]
      if (top === undefined || top.at > t) break
      this.#step()
    }
    this.now = Math.max(this.now, t)
  }

  runFor(ms: number): void {
    this.runUntil(this.now + ms)
  }

  /**
   * Runs until the overlay is idle: no scheduled action left, no routed, join or direct message (or
   * ack) in flight, and no
   * node joining, holding a routed message or awaiting a hop's ack. Maintenance (heartbeats,
   * probes, leaf-set and row exchanges) never stops, so it does not count. Throws after `limitMs`
   * of virtual time.
   */
  runUntilQuiet(limitMs = 60_000): void {
    const limit = this.now + limitMs
    for (;;) {
      if (this.#inFlight === 0 && this.#idle()) return
      const top = this.#heap[0]
      if (top === undefined) return
      if (top.at > limit) throw new Error(`not quiet after ${limitMs} ms of virtual time (now ${this.now})`)
      this.#step()
    }
  }

  /** Runs until `pred()` holds, checking after every item. Throws after `limitMs`. */
  runUntilTrue(pred: () => boolean, limitMs = 60_000): void {
    const limit = this.now + limitMs
    while (!pred()) {
      const top = this.#heap[0]
      if (top === undefined || top.at > limit)
        throw new Error(`condition not reached within ${limitMs} ms of virtual time (now ${this.now})`)
      this.#step()
    }
  }

  // -------------------------------------------------------------------------------------------
  // Building overlays.

  /** Joins `indices` one by one, each once the one before is active. Throws if one fails. */
  growOneByOne(indices: readonly number[], bootstrap: (i: number) => number[] = () => [0]): void {
    for (const i of indices) {
      this.join(i, bootstrap(i))
      this.runUntilTrue(() => this.node(i).state !== 'joining', 30_000)
      if (this.node(i).state !== 'active') throw new Error(`n${i} did not join: ${this.node(i).state}`)
    }
  }

  /** Starts node 0, then joins nodes 1 to count - 1 one by one through node 0. */
  ring(count: number): void {
    this.start(0)
    this.growOneByOne(Array.from({ length: count - 1 }, (_, k) => k + 1))
  }

  // -------------------------------------------------------------------------------------------
  // The oracle.

  /** Indices of the active nodes. */
  active(): number[] {
    const out: number[] = []
    for (let i = 0; i < this.nodes.length; i++) if (this.nodes[i]!.state === 'active') out.push(i)
    return out
  }

  /** The active node numerically closest to `key` (bigint brute force), or -1. */
  closest(key: Id): number {
    const live = this.active()
    const at = closestOf(
      key.toBigInt(),
      live.map((i) => this.nodes[i]!.id.toBigInt()),
    )
    return at < 0 ? -1 : live[at]!
  }

  /** The leaf set node i should have, among active nodes: L/2 nearest on each side, nearest first. */
  expectedLeafSet(i: number): { cw: number[]; ccw: number[] } {
    const live = this.active().filter((j) => j !== i)
    const self = this.node(i).id.toBigInt()
    const half = this.node(i).config.leafSetSize / 2
    const cwDist = (j: number) => (((this.nodes[j]!.id.toBigInt() - self) % RING) + RING) % RING
    const cw = [...live].sort((a, b) => (cwDist(a) < cwDist(b) ? -1 : 1)).slice(0, half)
    const ccw = [...live].sort((a, b) => (cwDist(a) > cwDist(b) ? -1 : 1)).slice(0, half)
    return { cw, ccw }
  }

  /** One line per active node whose leaf set differs from the oracle's. */
  leafSetErrors(): string[] {
    const errors: string[] = []
    for (const i of this.active()) {
      const want = this.expectedLeafSet(i)
      const ls = this.node(i).leafSet
      const got = {
        cw: ls.cwMembers().map((m) => this.indexOf(m.id)),
        ccw: ls.ccwMembers().map((m) => this.indexOf(m.id)),
      }
      if (got.cw.join() !== want.cw.join() || got.ccw.join() !== want.ccw.join()) {
        errors.push(`n${i}: cw [${got.cw}] want [${want.cw}], ccw [${got.ccw}] want [${want.ccw}]`)
      }
    }
    return errors
  }

  /** Routes `count` lookups to random keys from random active nodes, `spacingMs` apart. */
  randomLookups(count: number, spacingMs = 0, origins?: readonly number[]): Lookup[] {
    const out: Lookup[] = []
    const start = this.now
    for (let k = 0; k < count; k++) {
      const key = randomId(this.rng)
      const pick = this.rng.int(1 << 30)
      this.at(start + k * spacingMs, () => {
        const live = origins ?? this.active()
        if (live.length === 0) return
        out.push(this.route(live[pick % live.length]!, key))
      })
    }
    return out
  }

  /** Sums up tracked lookups: delivered exactly once, at the oracle's node, with the bytes sent. */
  report(lookups: readonly Lookup[] = this.lookups): LookupReport {
    let delivered = 0
    let lost = 0
    let duplicated = 0
    let wrong = 0
    let failed = 0
    const details: string[] = []
    const note = (s: string) => {
      if (details.length < 8) details.push(s)
    }
    for (const l of lookups) {
      const tag = `msg ${l.msgId} key ${l.key.toHex().slice(0, 8)}… from n${l.origin} at ${l.sentAt}`
      if (l.failed !== undefined) {
        failed++
        note(`${tag}: routeFailed ${l.failed}`)
      }
      if (l.deliveries.length === 0) {
        lost++
        note(`${tag}: never delivered`)
        continue
      }
      delivered++
      if (l.deliveries.length > 1) {
        duplicated++
        note(`${tag}: delivered ${l.deliveries.length} times at ${l.deliveries.map((d) => `n${d.node}`)}`)
      }
      for (const d of l.deliveries) {
        if (d.node !== d.expected) {
          wrong++
          note(`${tag}: delivered at n${d.node} at ${d.at}, the closest active node was n${d.expected}`)
        }
      }
    }
    return { total: lookups.length, delivered, lost, duplicated, wrong, failed, details }
  }

  // -------------------------------------------------------------------------------------------
  // Transcripts.

  /** Every node's events, one line each: `n<i> <time> <json>`. */
  transcript(): string[] {
    const lines: string[] = []
    this.events.forEach((list, i) => {
      for (const r of list) lines.push(`n${i} ${r.at} ${formatEvent(r.event)}`)
    })
    return lines
  }

  /** SHA-256 of the transcript. */
  transcriptHash(): string {
    const h = createHash('sha256')
    for (const line of this.transcript()) h.update(`${line}\n`)
    return h.digest('hex')
  }

  /** Node i's recorded events of one type. */
  eventsOf<T extends NodeEvent['type']>(
    i: number,
    type: T,
  ): (Recorded & { event: Extract<NodeEvent, { type: T }> })[] {
    return this.events[i]!.filter((r) => r.event.type === type) as (Recorded & {
      event: Extract<NodeEvent, { type: T }>
    })[]
  }

  // -------------------------------------------------------------------------------------------
  // The loop.

  #payloadFor(k: number): Uint8Array {
    const b = new Uint8Array(12)
    new DataView(b.buffer).setUint32(0, k)
    for (let i = 4; i < 12; i++) b[i] = this.rng.int(256)
    return b
  }

  #idle(): boolean {
    for (const n of this.nodes) {
      if (n.state === 'closed') continue // a closed node acts no more, whatever its getters say
      if (n.state === 'joining' || n.pendingRoutes > 0 || n.heldMessages > 0) return false
    }
    return true
  }

  /** Node i's clock now: the driver's plus its offset, never behind what it was last handed. */
  #nodeNow(i: number, atLeast = Number.NEGATIVE_INFINITY): number {
    const t = Math.max(this.now + this.#offset[i]!, this.#lastNodeNow[i]!, atLeast)
    this.#lastNodeNow[i] = t
    return t
  }

  #input(i: number, fn: (n: PastryNode, now: number) => void): void {
    fn(this.node(i), this.#nodeNow(i))
    this.#drain(i)
  }

  #drain(i: number): void {
    const node = this.nodes[i]!
    if (this.#drainAll) node.drainTransmits((to, message) => this.#send(i, to, message))
    else
      for (let t = node.pollTransmit(); t !== undefined; t = node.pollTransmit())
        this.#send(i, t.to, t.message)
    for (let e = node.pollEvent(); e !== undefined; e = node.pollEvent()) this.#record(i, e)
    const d = node.nextDeadline()
    if (d === undefined) {
      if (this.#armed[i] !== undefined) {
        this.#armed[i] = undefined
        this.#gen[i]!++
      }
      return
    }
    if (this.#armed[i] === d) return
    this.#armed[i] = d
    const gen = ++this.#gen[i]!
    this.#push({
      at: Math.max(d - this.#offset[i]!, this.now),
      seq: this.#seq++,
      kind: 'timer',
      node: i,
      gen,
    })
  }

  #record(i: number, event: NodeEvent): void {
    this.events[i]!.push({ at: this.now, event })
    switch (event.type) {
      case 'stateChanged':
        if (event.from !== this.#seenState[i])
          this.violations.push(`n${i}: stateChanged from ${event.from}, but it was ${this.#seenState[i]}`)
        this.#seenState[i] = event.to
        break
      case 'deliver': {
        if (this.#seenState[i] !== 'active')
          this.violations.push(`n${i}: delivered msg ${event.msgId} in state ${this.#seenState[i]}`)
        const l = this.#byMsgId.get(event.msgId)
        if (l !== undefined) {
          l.deliveries.push({
            at: this.now,
            node: i,
            expected: this.closest(event.key),
            hops: event.hops,
            app: event.app,
            payload: event.payload,
          })
        }
        break
      }
      case 'routeFailed': {
        const l = this.#byMsgId.get(event.msgId)
        if (l !== undefined && l.origin === i) l.failed = event.reason
        else if (l !== undefined) l.failed = `${event.reason} at n${i}`
        break
      }
    }
  }

  #send(from: number, address: string, message: Message): void {
    const to = this.#index.get(address) ?? -1
    const sent: Sent = { at: this.now, from, to, message }
    this.stats.sent++
    if (message.type === 'route') {
      const l = this.#byMsgId.get(message.msgId)
      if (l !== undefined) l.transmissions++
    }
    for (const listener of this.#listeners) listener(sent)
    if (to < 0 || this.#crashed[to]) {
      this.stats.dropped++
      return
    }
    for (const rule of this.#rules) {
      if (rule(sent)) {
        this.stats.dropped++
        return
      }
    }
    const at = this.now + this.#latency(from, to)
    const work = !MAINTENANCE.has(message.type)
    if (this.#codec) {
      const frame = encodeMessage(message)
      this.stats.bytes += frame.length
      this.#push({ at, seq: this.#seq++, kind: 'msg', from, to, work, message: undefined, frame })
    } else {
      this.#push({ at, seq: this.#seq++, kind: 'msg', from, to, work, message, frame: undefined })
    }
    if (work) this.#inFlight++
  }

  #step(): void {
    const item = this.#pop()!
    this.now = item.at
    switch (item.kind) {
      case 'call':
        this.#inFlight--
        item.fn()
        return
      case 'timer': {
        if (item.gen !== this.#gen[item.node]) return
        const deadline = this.#armed[item.node]!
        this.#armed[item.node] = undefined
        const node = this.nodes[item.node]!
        // With a clock offset, driver time + offset may round below the deadline: never fire early.
        node.handleTimeout(this.#nodeNow(item.node, deadline))
        this.#drain(item.node)
        return
      }
      case 'msg': {
        if (item.work) this.#inFlight--
        if (this.#crashed[item.to]) {
          this.stats.dropped++
          return
        }
        let message = item.message
        if (item.frame !== undefined) {
          const decoded = decodeMessage(item.frame)
          if (!decoded.ok)
            throw new Error(
              `n${item.from} sent an undecodable frame: ${decoded.error.code} ${decoded.error.message}`,
            )
          message = decoded.message
        }
        this.stats.arrived++
        const node = this.nodes[item.to]!
        node.handleMessage(this.#nodeNow(item.to), message!)
        this.#drain(item.to)
        return
      }
    }
  }

  #less(a: Item, b: Item): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  #push(item: Item): void {
    const h = this.#heap
    h.push(item)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  #pop(): Item | undefined {
    const h = this.#heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.#less(h[l]!, h[m]!)) m = l
        if (r < h.length && this.#less(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}

/** `x` mod 2^128, ready for `Id.fromBigInt`: for ids a little clockwise or counter-clockwise of others. */
export function mod128(x: bigint): bigint {
  return ((x % RING) + RING) % RING
}
