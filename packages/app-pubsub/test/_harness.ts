// A deterministic driver for PubSubMachine tests: many machines over an idealised Pastry (prefix
// routing over a global view of the live nodes, the forward upcall at every hop, FIFO links with a
// fixed latency) in virtual time. It is a test double for core, not the simulator.
import { compareDistance, createRng, type Delivery, Id, type NodeHandle, type Rng } from '@pastry/core'
import { type PubSubConfig, type PubSubEvent, PubSubMachine } from '../src/index.js'

export interface SimNode {
  readonly handle: NodeHandle
  readonly machine: PubSubMachine
  alive: boolean
  /** Routing still counts the node (a crashed node stays routable until its failure is noticed). */
  routable: boolean
  /** Incoming traffic is dropped while set (a one-way partition toward this node). */
  deaf: boolean
  readonly events: PubSubEvent[]
  accept: (topic: string, data: Uint8Array, requester: NodeHandle) => boolean
}

type Packet =
  | {
      readonly kind: 'route'
      readonly at: SimNode
      readonly key: Id
      readonly payload: Uint8Array
      readonly origin: NodeHandle
      readonly hops: number
      readonly msgId: number
    }
  | { readonly kind: 'direct'; readonly to: SimNode; readonly from: NodeHandle; readonly payload: Uint8Array }

export class Harness {
  now = 0
  readonly nodes: SimNode[] = []
  readonly rng: Rng
  readonly latencyMs: number
  /** Each packet takes `latencyMs` plus up to this much more, in order per link (0: fixed latency). */
  readonly jitterMs: number
  readonly config: Partial<PubSubConfig>
  #queue: { at: number; seq: number; p: Packet }[] = []
  #seq = 0
  #msgId = 0
  /** The latest arrival time scheduled on each link ("from>to"), which keeps links FIFO. */
  #linkLast = new Map<string, number>()
  #timers: { at: number; run: () => void }[] = []
  /** Direct payloads sent, for counting traffic. */
  sent = 0
  /** A hop goes to a random node sharing a longer prefix rather than the lowest such id. */
  randomHops = false

  constructor(seed: string, config: Partial<PubSubConfig> = {}, latencyMs = 1, jitterMs = 0) {
    this.rng = createRng(seed)
    this.config = config
    this.latencyMs = latencyMs
    this.jitterMs = jitterMs
  }

  add(id?: Id): SimNode {
    const r = this.rng
    const handle: NodeHandle = Object.freeze({
      id: id ?? Id.fromWords(r.u32(), r.u32(), r.u32(), r.u32()),
      address: `sim:${this.nodes.length + 1}`,
    })
    let self: SimNode | undefined
    const machine = new PubSubMachine({
      host: {
        handle,
        route: (_now, key, payload) =>
          this.#push(handle.id, handle.id, {
            kind: 'route',
            at: self!,
            key,
            payload,
            origin: handle,
            hops: 0,
            msgId: ++this.#msgId,
          }),
        send: (_now, to, payload) => {
          this.sent++
          const target = this.byId(to.id)
          if (target !== undefined)
            this.#push(handle.id, to.id, { kind: 'direct', to: target, from: handle, payload })
        },
      },
      config: this.config,
      accept: (topic, data, requester) => self!.accept(topic, data, requester),
    })
    self = { handle, machine, alive: true, routable: true, deaf: false, events: [], accept: () => false }
    // Every live node learns of the newcomer, as the update upcall would tell its leaf set.
    for (const n of this.nodes) if (n.alive) this.input(n, (now) => n.machine.handleUpdate(now, handle, true))
    this.nodes.push(self)
    return self
  }

  byId(id: Id): SimNode | undefined {
    return this.nodes.find((n) => n.handle.id.equals(id))
  }

  live(): SimNode[] {
    return this.nodes.filter((n) => n.alive)
  }

  /** The nodes routing counts: the live ones, and crashed ones whose failure is not noticed yet. */
  routable(): SimNode[] {
    return this.nodes.filter((n) => n.routable)
  }

  /** The routable node numerically closest to `key`: the root. */
  rootOf(key: Id): SimNode {
    let best: SimNode | undefined
    for (const n of this.routable())
      if (best === undefined || compareDistance(key, n.handle.id, best.handle.id) < 0) best = n
    return best!
  }

  /**
   * Crashes a node. By default routing forgets it at once, as the routing layer will soon; with
   * `noticedAfterMs`, routing keeps sending to it (the messages are lost) for that long, and then
   * every live node is told it failed.
   */
  crash(n: SimNode, tellFailure = false, noticedAfterMs?: number): void {
    n.alive = false
    const notice = () => {
      n.routable = false
      if (tellFailure || noticedAfterMs !== undefined)
        for (const m of this.live()) this.input(m, (now) => m.machine.handleNodeFailed(now, n.handle))
    }
    if (noticedAfterMs === undefined) notice()
    else this.at(this.now + noticedAfterMs, notice)
  }

  /** Runs `run` when virtual time reaches `at`. */
  at(at: number, run: () => void): void {
    this.#timers.push({ at, run })
    this.#timers.sort((a, b) => a.at - b.at)
  }

  /** Runs a command or input at `now` and collects the node's events. */
  input<T>(n: SimNode, run: (now: number) => T): T {
    const r = run(this.now)
    this.#collect(n)
    return r
  }

  /** Advances virtual time by `ms`, delivering packets and firing deadlines in order. */
  run(ms: number): void {
    const end = this.now + ms
    for (;;) {
      const nextPacket = this.#queue.length > 0 ? this.#queue[0]!.at : Number.POSITIVE_INFINITY
      let nextTimer = Number.POSITIVE_INFINITY
      let timerNode: SimNode | undefined
      for (const n of this.nodes) {
        if (!n.alive) continue
        const d = n.machine.nextDeadline()
        if (d !== undefined && d < nextTimer) {
          nextTimer = d
          timerNode = n
        }
      }
      const nextOwn = this.#timers.length > 0 ? this.#timers[0]!.at : Number.POSITIVE_INFINITY
      const at = Math.min(nextPacket, nextTimer, nextOwn)
      if (at > end) break
      this.now = Math.max(this.now, at)
      if (nextOwn <= nextPacket && nextOwn <= nextTimer) this.#timers.shift()!.run()
      else if (nextPacket <= nextTimer) this.#deliver(this.#queue.shift()!.p)
      else this.input(timerNode!, (now) => timerNode!.machine.handleTimeout(now))
    }
    this.now = end
  }

  #push(from: Id, to: Id, p: Packet): void {
    if (this.jitterMs === 0) {
      // Appends are already in (time, seq) order since latency is fixed.
      this.#queue.push({ at: this.now + this.latencyMs, seq: this.#seq++, p })
      return
    }
    const link = `${from.toHex()}>${to.toHex()}`
    const at = Math.max(
      this.now + this.latencyMs + this.rng.int(this.jitterMs + 1),
      this.#linkLast.get(link) ?? 0,
    )
    this.#linkLast.set(link, at)
    const item = { at, seq: this.#seq++, p }
    let i = this.#queue.length
    while (i > 0 && this.#queue[i - 1]!.at > at) i--
    this.#queue.splice(i, 0, item)
  }

  #collect(n: SimNode): void {
    for (let e = n.machine.pollEvent(); e !== undefined; e = n.machine.pollEvent()) n.events.push(e)
  }

  #deliver(p: Packet): void {
    if (p.kind === 'direct') {
      if (!p.to.alive || p.to.deaf) return
      this.input(p.to, (now) => p.to.machine.handleDirect(now, p.payload, p.from))
      return
    }
    const at = p.at
    if (!at.alive || (at.deaf && p.hops > 0)) return
    const next = this.#nextHop(at.handle.id, p.key)
    const delivery: Delivery = {
      msgId: p.msgId,
      key: p.key,
      app: 'pubsub',
      payload: p.payload,
      origin: p.origin,
      hops: p.hops,
    }
    if (next === undefined) {
      this.input(at, (now) => at.machine.handleDeliver(now, delivery))
      return
    }
    const decision = this.input(at, (now) => at.machine.handleForward(now, delivery, next.handle))
    if (decision.action === 'drop') return
    const payload = decision.action === 'replace' ? decision.payload : p.payload
    const to = decision.action === 'redirect' ? this.byId(decision.to.id)! : next
    this.#push(at.handle.id, to.handle.id, { ...p, at: to, payload, hops: p.hops + 1 })
  }

  /** Prefix routing over the live nodes: a node sharing one more digit, else a numerically closer one. */
  #nextHop(self: Id, key: Id): SimNode | undefined {
    const root = this.rootOf(key)
    if (root.handle.id.equals(self)) return undefined
    const l = self.sharedPrefixLength(key, 4)
    const longer = this.routable().filter((n) => n.handle.id.sharedPrefixLength(key, 4) > l)
    if (this.randomHops && longer.length > 0) return longer[this.rng.int(longer.length)]
    let best: SimNode | undefined
    for (const n of longer) if (best === undefined || n.handle.id.compare(best.handle.id) < 0) best = n
    return best ?? root
  }
}

/** Message events of one node, as `publisherHex/seq` strings per topic, in delivery order. */
export function received(n: SimNode, topic: string): string[] {
  const out: string[] = []
  for (const e of n.events)
    if (e.type === 'message' && e.topic === topic) out.push(`${e.publisher.id.toHex()}/${e.seq}`)
  return out
}

export function gaps(n: SimNode, topic?: string): Extract<PubSubEvent, { type: 'gap' }>[] {
  return n.events.filter(
    (e): e is Extract<PubSubEvent, { type: 'gap' }> =>
      e.type === 'gap' && (topic === undefined || e.topic === topic),
  )
}

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
