// The simulator, driven with small fake nodes that implement the node contract: latency, network
// faults, partitions, crash and restart, churn, timers, determinism, the oracle's verdicts and the
// codec path. Seeds derive from the printed one; PASTRY_SEED=<seed> replays a run (STYLE.md,
// convention 7). Rates are checked with wide bounds (several standard deviations), so any seed passes.

import {
  compareDistance,
  createRng,
  encodeMessage,
  Id,
  type Message,
  type NodeHandle,
  randomId,
} from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createTopology } from '../src/index.js'
import {
  type NetworkOptions,
  type NodeContext,
  type SimEvent,
  type SimNode,
  type SimNodeState,
  type SimTransmit,
  SimulationError,
  Simulator,
  type SimulatorOptions,
} from '../src/sim/index.js'
import { SEED } from './_seed.js'

const seed = `sim-${SEED}`

// ---------------------------------------------------------------------------------------------
// The fake node

type FakeEvent =
  | { readonly type: 'stateChanged'; readonly from: SimNodeState; readonly to: SimNodeState }
  | {
      readonly type: 'deliver'
      readonly msgId: number
      readonly key: Id
      readonly app: string
      readonly payload: Uint8Array
      readonly origin: NodeHandle
      readonly hops: number
    }

interface FakeOptions {
  /** Send a heartbeat to every peer this often, once active. */
  readonly periodMs?: number
  /** Heartbeat targets (addresses), read lazily. */
  readonly peers?: (self: number) => readonly string[]
  /** On start, send this many heartbeats at once to `burstTo`. */
  readonly burst?: number
  readonly burstTo?: string
  /** Routing candidates besides itself, read lazily: forwards greedily to the closest. */
  readonly table?: (self: number) => readonly NodeHandle[]
  /** Deliver every routed message where it first arrives (a wrong node, on purpose). */
  readonly deliverAnywhere?: boolean
  /** Throw on receiving a heartbeat. */
  readonly throwOnHeartbeat?: boolean
}

/**
 * A fake node: active on start, or on a `joinReply` after sending `join` to a bootstrap (which
 * answers at once); heartbeats its peers every `periodMs`; forwards `route` messages greedily by
 * ring distance over a fixed table, delivering when it is the closest it knows.
 */
class FakeNode implements SimNode {
  readonly id: Id
  readonly address: string
  readonly handle: NodeHandle
  readonly index: number
  state: SimNodeState = 'idle'
  readonly received: { readonly type: string; readonly from: string; readonly at: number }[] = []
  timeouts = 0
  readonly #opts: FakeOptions
  readonly #tx: SimTransmit[] = []
  readonly #ev: FakeEvent[] = []
  #txHead = 0
  #evHead = 0
  #deadline: number | undefined
  #msgId = 0

  constructor(ctx: NodeContext, opts: FakeOptions) {
    this.id = ctx.id
    this.address = ctx.address
    this.handle = { id: ctx.id, address: ctx.address }
    this.index = ctx.index
    this.#opts = opts
  }

  start(now: number): void {
    this.#become('active', now)
    const { burst, burstTo } = this.#opts
    if (burst !== undefined && burstTo !== undefined) {
      for (let k = 0; k < burst; k++) this.#send(burstTo, { type: 'heartbeat', from: this.handle })
    }
  }

  join(_now: number, bootstrap: readonly string[]): void {
    this.#become('joining', _now)
    this.#send(bootstrap[0]!, {
      type: 'join',
      from: this.handle,
      msgId: ++this.#msgId,
      joiner: this.handle,
      hops: 0,
    })
  }

  handleMessage(now: number, m: Message): void {
    this.received.push({ type: m.type, from: m.from.address, at: now })
    switch (m.type) {
      case 'join':
        this.#send(m.joiner.address, {
          type: 'joinReply',
          from: this.handle,
          leafSet: [this.handle],
          rows: [],
        })
        return
      case 'joinReply':
        if (this.state === 'joining') this.#become('active', now)
        return
      case 'heartbeat':
        if (this.#opts.throwOnHeartbeat === true) throw new Error('fake node told to throw')
        return
      case 'route':
        this.#step(m.msgId, m.key, m.origin, m.hops, m.app, m.payload)
        return
    }
  }

  handleTimeout(now: number): void {
    this.timeouts++
    if (this.#deadline === undefined || this.#deadline > now) return
    for (const to of this.#opts.peers?.(this.index) ?? [])
      this.#send(to, { type: 'heartbeat', from: this.handle })
    this.#deadline = now + this.#opts.periodMs!
  }

  route(_now: number, key: Id, app: string, payload: Uint8Array): number {
    const msgId = ++this.#msgId
    this.#step(msgId, key, this.handle, 0, app, payload)
    return msgId
  }

  leave(now: number): void {
    this.#become('leaving', now)
    for (const to of this.#opts.peers?.(this.index) ?? [])
      this.#send(to, { type: 'leave', from: this.handle, leafSet: [] })
    this.#become('closed', now)
  }

  pollTransmit(): SimTransmit | undefined {
    if (this.#txHead === this.#tx.length) return undefined
    const t = this.#tx[this.#txHead++]
    if (this.#txHead === this.#tx.length) this.#tx.length = this.#txHead = 0
    return t
  }

  pollEvent(): SimEvent | undefined {
    if (this.#evHead === this.#ev.length) return undefined
    const e = this.#ev[this.#evHead++]
    if (this.#evHead === this.#ev.length) this.#ev.length = this.#evHead = 0
    return e
  }

  nextDeadline(): number | undefined {
    return this.state === 'active' ? this.#deadline : undefined
  }

  #step(msgId: number, key: Id, origin: NodeHandle, hops: number, app: string, payload: Uint8Array): void {
    let best: NodeHandle = this.handle
    if (this.#opts.deliverAnywhere !== true) {
      for (const h of this.#opts.table?.(this.index) ?? [])
        if (compareDistance(key, h.id, best.id) < 0) best = h
    }
    if (best === this.handle) this.#ev.push({ type: 'deliver', msgId, key, app, payload, origin, hops })
    else
      this.#send(best.address, {
        type: 'route',
        from: this.handle,
        msgId,
        key,
        origin,
        hops: hops + 1,
        app,
        payload,
      })
  }

  #become(to: SimNodeState, now: number): void {
    this.#ev.push({ type: 'stateChanged', from: this.state, to })
    this.state = to
    if (to === 'active' && this.#opts.periodMs !== undefined) this.#deadline = now + this.#opts.periodMs
  }

  #send(to: string, message: Message): void {
    this.#tx.push({ to, message })
  }
}

type Options = Omit<SimulatorOptions<FakeNode>, 'createNode' | 'seed' | 'topology'> &
  Partial<Pick<SimulatorOptions<FakeNode>, 'seed' | 'topology'>>

function makeSim(fake: FakeOptions, options: Options = {}): Simulator<FakeNode> {
  return new Simulator<FakeNode>({
    seed,
    topology: { kind: 'sphere', size: 4096 },
    createNode: (ctx) => new FakeNode(ctx, fake),
    ...options,
  })
}

/** Adds n nodes and starts them all (each its own one-node overlay, which fakes do not mind). */
function startAll(sim: Simulator<FakeNode>, n: number): void {
  for (let i = 0; i < n; i++) sim.start(sim.addNode())
}

/** Ring fingers over the sorted ids: ±1, ±2, ±4, ... positions away. Enough for greedy routing. */
function fingerTables(sim: Simulator<FakeNode>, n: number): NodeHandle[][] {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => sim.idOf(a).compare(sim.idOf(b)))
  const rank = new Array<number>(n)
  order.forEach((node, r) => {
    rank[node] = r
  })
  return Array.from({ length: n }, (_, i) => {
    const out: NodeHandle[] = []
    for (let d = 1; d < n; d *= 2) {
      for (const r of [(rank[i]! + d) % n, (rank[i]! - d + n) % n]) {
        const j = order[r]!
        out.push({ id: sim.idOf(j), address: sim.addressOf(j) })
      }
    }
    return out
  })
}

// ---------------------------------------------------------------------------------------------
// Latency and network faults

test('latency: a message arrives after exactly the topology latency', () => {
  for (const kind of ['sphere', 'plane', 'uniform'] as const) {
    const topology = createTopology(kind, 64, createRng(`${seed}/topo/${kind}`))
    const sim = makeSim({ burst: 1, burstTo: 'sim:0' }, { topology })
    sim.addNode({ position: 0 })
    sim.start(0)
    for (let k = 1; k < 20; k++) {
      const i = sim.addNode({ position: k * 3 })
      sim.start(i) // its burst goes to node 0
    }
    sim.runUntilIdle(10_000)
    const got = sim.node(0)!.received
    assert.is(got.length, 20)
    for (const r of got) {
      const from = sim.indexOfAddress(r.from)!
      assert.is(r.at, topology.latencyMs(sim.positionOf(from), 0))
      assert.is(r.at, sim.latencyMs(from, 0))
    }
  }
})

function burstRun(network: NetworkOptions, count = 4000, s = seed) {
  const sim = makeSim({ burst: count, burstTo: 'sim:1' }, { network, seed: s })
  const a = sim.addNode()
  const b = sim.addNode() // left idle, so that it sends no burst of its own
  sim.start(a)
  sim.runUntilIdle(100_000)
  return { sim, received: sim.node(b)!.received, latency: sim.latencyMs(a, b) }
}

test('network: loss, duplication and jitter rates, deterministic per seed', () => {
  const n = 4000
  // σ of a binomial count is √(n p (1-p)); allow 5σ.
  const within = (x: number, mean: number, p: number) =>
    Math.abs(x - mean) <= 5 * Math.sqrt(n * p * (1 - p)) + 1

  const lossy = burstRun({ loss: 0.2 })
  assert.ok(within(lossy.received.length, n * 0.8, 0.2), `received ${lossy.received.length}`)
  assert.is(lossy.sim.report().messages.lost, n - lossy.received.length)
  assert.is(burstRun({ loss: 0.2 }).received.length, lossy.received.length) // same seed, same draw

  const dup = burstRun({ duplicate: 0.1 })
  assert.ok(within(dup.received.length, n * 1.1, 0.1), `received ${dup.received.length}`)
  assert.is(dup.sim.report().messages.duplicated, dup.received.length - n)

  const jitterMs = 40
  const jit = burstRun({ jitterMs })
  assert.is(jit.received.length, n)
  let sum = 0
  let reordered = false
  for (let k = 0; k < n; k++) {
    const extra = jit.received[k]!.at - jit.latency
    assert.ok(extra >= 0 && extra < jitterMs, `extra ${extra}`)
    sum += extra
    if (k > 0 && jit.received[k]!.at < jit.received[k - 1]!.at) reordered = true
  }
  assert.not(reordered) // arrivals are processed in time order
  // Uniform on [0, 40): mean 20, σ of the mean 40/√(12n).
  assert.ok(Math.abs(sum / n - jitterMs / 2) < (5 * jitterMs) / Math.sqrt(12 * n), `mean ${sum / n}`)
  const first = jit.received.map((r) => r.at)
  assert.equal(
    burstRun({ jitterMs }).received.map((r) => r.at),
    first,
  )
  assert.not.equal(
    burstRun({ jitterMs }, n, `${seed}-other`).received.map((r) => r.at),
    first,
  )
})

test('partitions: symmetric blocks both ways, asymmetric one way, heal restores', () => {
  const all = ['sim:0', 'sim:1', 'sim:2', 'sim:3']
  const sim = makeSim({ periodMs: 100, peers: (self) => all.filter((_, j) => j !== self) })
  startAll(sim, 4)
  const count = (to: number, from: number, after: number) =>
    sim.node(to)!.received.filter((r) => r.from === `sim:${from}` && r.at > after).length
  sim.runFor(1000)
  assert.ok(count(2, 0, 0) >= 7) // ten sent, one-way latency up to 200 ms

  sim.partition([0, 1], [2, 3])
  let t = sim.now + 200 // after messages in flight have landed
  sim.runFor(1000)
  for (const [to, from] of [
    [2, 0],
    [3, 1],
    [0, 2],
    [1, 3],
  ] as const)
    assert.is(count(to, from, t), 0, `${from}→${to}`)
  assert.ok(count(1, 0, t) >= 7 && count(3, 2, t) >= 7) // inside each side, traffic flows
  assert.ok(sim.report().messages.partitioned > 0)

  sim.heal()
  sim.partition([0], [2], { symmetric: false })
  t = sim.now + 200
  sim.runFor(1000)
  assert.is(count(2, 0, t), 0)
  assert.ok(count(0, 2, t) >= 7) // the other way passes
  assert.ok(count(3, 0, t) >= 7 && count(2, 1, t) >= 7)

  sim.heal()
  t = sim.now + 200
  sim.runFor(1000)
  assert.ok(count(2, 0, t) >= 7)
})

// ---------------------------------------------------------------------------------------------
// Crash, restart, leave, timers

test('crash stops a node’s timers and messages; restart makes a fresh node', () => {
  const sim = makeSim({ periodMs: 100, peers: (self) => [`sim:${1 - self}`] })
  startAll(sim, 2)
  sim.runFor(1000)
  const old = sim.node(1)!
  const timeouts = old.timeouts
  const receivedBefore = old.received.length
  assert.ok(timeouts >= 9)
  sim.crash(1)
  assert.is(sim.node(1), undefined)
  assert.not(sim.isAlive(1))
  const heardFrom1 = () => sim.node(0)!.received.filter((r) => r.from === 'sim:1').length
  const heard = heardFrom1()
  sim.runFor(1000)
  assert.is(old.timeouts, timeouts) // never driven again
  assert.is(old.received.length, receivedBefore)
  assert.ok(heardFrom1() - heard <= 2) // at most two in flight (latency ≤ 200 ms, period 100 ms)
  assert.ok(sim.report().messages.vanished >= 7) // node 0's heartbeats vanish
  assert.throws(() => sim.start(1), /crashed/)

  sim.restart(1)
  const fresh = sim.node(1)!
  assert.ok(fresh !== old)
  assert.ok(fresh.id.equals(old.id))
  assert.is(fresh.address, 'sim:1')
  assert.is(fresh.state, 'idle')
  assert.is(fresh.received.length, 0)
  sim.join(1, [0])
  sim.runFor(1000)
  assert.is(fresh.state, 'active')
  // Joined within one round trip (≤ 400 ms), then a heartbeat every 100 ms.
  assert.ok(fresh.timeouts >= 5)
  assert.ok(heardFrom1() - heard >= 3)
  assert.throws(() => sim.restart(1), /alive/)
})

test('leave: a closed node is retired; messages to it vanish', () => {
  const sim = makeSim({ periodMs: 100, peers: (self) => [`sim:${1 - self}`] })
  startAll(sim, 2)
  sim.runFor(500)
  sim.leave(1)
  assert.not(sim.isAlive(1))
  assert.is(sim.oracle.liveCount, 1)
  const vanished = sim.report().messages.vanished
  sim.runFor(500)
  assert.ok(sim.report().messages.vanished >= vanished + 4)
  assert.is(sim.report().messages.byType.leave, 1)
})

/**
 * A node whose deadline the test moves: `route(now, key)` is borrowed as a poke that sets the deadline
 * to `key`'s low word (0 disarms). It records when it is timed out.
 */
class TimerNode implements SimNode {
  readonly id: Id
  readonly address: string
  state: SimNodeState = 'active'
  readonly fired: number[] = []
  #deadline: number | undefined
  constructor(ctx: NodeContext) {
    this.id = ctx.id
    this.address = ctx.address
  }
  start(): void {}
  join(): void {}
  handleMessage(): void {}
  handleTimeout(now: number): void {
    if (this.#deadline !== undefined && this.#deadline <= now) {
      this.fired.push(now)
      this.#deadline = undefined
    }
  }
  route(_now: number, key: Id): number {
    this.#deadline = key.w3 === 0 ? undefined : key.w3
    return 0
  }
  leave(): void {}
  pollTransmit(): undefined {
    return undefined
  }
  pollEvent(): undefined {
    return undefined
  }
  nextDeadline(): number | undefined {
    return this.#deadline
  }
}

test('timers: re-armed earlier, later, or disarmed, a node is timed out only at its deadline', () => {
  const sim = new Simulator<TimerNode>({
    seed,
    topology: { kind: 'plane', size: 4 },
    createNode: (ctx) => new TimerNode(ctx),
  })
  sim.addNode()
  const poke = (at: number, deadline: number) =>
    sim.at(at, (s) => {
      s.route(0, idWithLow(deadline))
    })
  poke(0, 100)
  poke(10, 50) // earlier: fires at 50, the 100 event is stale
  poke(60, 200)
  poke(70, 300) // later: the 200 wake-up sleeps again until 300
  poke(310, 400)
  poke(320, 0) // disarmed: nothing at 400
  poke(330, 500)
  poke(340, 330) // earlier again, and in the past: fires at once; the 500 event is stale
  poke(600, 700)
  sim.runUntilIdle(10_000)
  assert.equal(sim.node(0)!.fired, [50, 300, 340, 700])
  // Stale events were skipped, not delivered, and the queue drained.
  assert.is(sim.pending, 0)
})

function idWithLow(w3: number): Id {
  return Id.fromWords(0, 0, 0, w3)
}

// ---------------------------------------------------------------------------------------------
// Churn

test('churn: Poisson arrivals, sessions that end, leaves by fraction', () => {
  const arrivals: number[] = []
  const sim2 = new Simulator<FakeNode>({
    seed,
    topology: { kind: 'sphere', size: 800 },
    createNode: (ctx) => {
      arrivals.push(ctx.now)
      return new FakeNode(ctx, {})
    },
  })
  sim2.start(sim2.addNode())
  const rate = 10 // per second
  const meanMs = 5_000
  // The first node stays (`existingNodes: 'stay'`), so there is always one to join through: with a
  // session of its own it may end before any arrival is active, and arrivals are then skipped.
  sim2.startChurn({
    arrivalsPerSec: rate,
    session: { kind: 'exponential', meanMs },
    leaveFraction: 0.3,
    existingNodes: 'stay',
  })
  sim2.runFor(100_000)
  const stats = sim2.churnStats()
  const n = stats.arrivals
  // Poisson count: mean 1000, σ ≈ 32.
  assert.ok(Math.abs(n - 1000) < 5 * Math.sqrt(1000), `arrivals ${n}`)
  assert.is(stats.skipped, 0)
  // Inter-arrival gaps: exponential, so mean ≈ 100 ms and coefficient of variation ≈ 1.
  const gaps = arrivals.slice(2).map((t, k) => t - arrivals[k + 1]!)
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length
  const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length)
  // About 100 000 ms / n with n ~ Poisson(1000): ±20 ms fails only when n is 5 sd off or more.
  assert.ok(Math.abs(mean - 100) < 20, `mean gap ${mean}`)
  assert.ok(Math.abs(sd / mean - 1) < 0.2, `cv ${sd / mean}`)
  // Sessions end: about rate × mean session = 50 churned nodes alive in steady state.
  const ended = stats.crashes + stats.leaves
  assert.is(sim2.aliveCount, 1 + n - ended)
  assert.ok(sim2.aliveCount > 20 && sim2.aliveCount < 90, `alive ${sim2.aliveCount}`)
  assert.ok(Math.abs(stats.leaves / ended - 0.3) < 0.08, `leave fraction ${stats.leaves / ended}`)
  // Positions are reused once the 800 run out (n + 1 > 800 would otherwise fail).
  assert.ok(n + 1 > 800)

  sim2.stopChurn()
  const alive = sim2.aliveCount
  sim2.runFor(100_000)
  assert.is(sim2.aliveCount, alive) // no arrivals, no departures
  assert.is(sim2.churnStats().arrivals, n)
})

test('churn: Pareto sessions have the asked mean and end', () => {
  const sim = new Simulator<FakeNode>({
    seed,
    topology: { kind: 'plane', size: 100 },
    createNode: (ctx) => new FakeNode(ctx, {}),
  })
  sim.start(sim.addNode())
  sim.startChurn({ arrivalsPerSec: 50, session: { kind: 'pareto', meanMs: 1_000, shape: 3 } })
  // Little's law: in steady state about 50 × 1 s = 50 churned nodes are alive.
  sim.runFor(5_000)
  let sum = 0
  for (let k = 0; k < 40; k++) {
    sim.runFor(1_000)
    sum += sim.aliveCount - 1
  }
  assert.ok(Math.abs(sum / 40 - 50) < 12, `mean alive ${sum / 40}`)
  const stats = sim.churnStats()
  assert.ok(stats.crashes > 1500 && stats.leaves === 0, JSON.stringify(stats))
  assert.is(sim.aliveCount, 1 + stats.arrivals - stats.crashes)
})

// ---------------------------------------------------------------------------------------------
// Determinism

function scenario(s: string): string {
  const n = 60
  let tables: NodeHandle[][] = []
  const sim = new Simulator<FakeNode>({
    seed: s,
    topology: { kind: 'sphere', size: 400 },
    network: { loss: 0.05, duplicate: 0.02, jitterMs: 10 },
    createNode: (ctx) =>
      new FakeNode(ctx, {
        periodMs: 250,
        peers: (self) => [`sim:${(self + 1) % n}`],
        table: (self) => tables[self] ?? [],
      }),
  })
  startAll(sim, n)
  tables = fingerTables(sim, n)
  const rng = createRng(`${s}/keys`)
  for (let k = 0; k < 100; k++)
    sim.at(k * 37, (x) => {
      const from = rng.int(n)
      if (x.isAlive(from)) x.route(from, randomId(rng))
    })
  // Node 5 may have ended its churn session by then: every node alive at startChurn gets one.
  sim.at(1500, (x) => {
    if (x.isAlive(5)) x.crash(5)
  })
  sim.at(2000, (x) => x.partition([1, 2, 3], [10, 11], { symmetric: false }))
  sim.startChurn({ arrivalsPerSec: 5, session: { kind: 'exponential', meanMs: 2000 } })
  sim.runFor(5000)
  return `${sim.traceHash()} ${JSON.stringify(sim.report())}`
}

test('determinism: the same seed gives the same trace hash and report; another seed another', () => {
  const a = scenario(seed)
  const b = scenario(seed)
  assert.is(a, b)
  const c = scenario(`${seed}-other`)
  assert.is.not(a.slice(0, 8), c.slice(0, 8))
})

// ---------------------------------------------------------------------------------------------
// The oracle, through the simulator

test('oracle in the simulator: closestLive follows starts and crashes (brute force)', () => {
  const sim = makeSim({})
  const n = 120
  startAll(sim, n)
  const rng = createRng(`${seed}/live`)
  const brute = (key: Id) => {
    let best: number | undefined
    for (let i = 0; i < sim.size; i++) {
      if (!sim.isAlive(i) || sim.node(i)!.state !== 'active') continue
      if (best === undefined || compareDistance(key, sim.idOf(i), sim.idOf(best)) < 0) best = i
    }
    return best
  }
  const check = () => {
    for (let k = 0; k < 200; k++) {
      const key = randomId(rng)
      assert.is(sim.oracle.closestLive(key), brute(key))
    }
  }
  check()
  for (let k = 0; k < 40; k++) sim.crash(k * 3)
  assert.is(sim.oracle.liveCount, n - 40)
  check()
  sim.restart(0)
  assert.not(sim.oracle.isLive(0)) // idle: alive but not active
  sim.start(0)
  assert.ok(sim.oracle.isLive(0))
  check()
})

test('lookups: greedy routing is correct, hops and RDP are measured', () => {
  const n = 200
  let tables: NodeHandle[][] = []
  const sim = makeSim({ table: (self) => tables[self] ?? [] })
  startAll(sim, n)
  tables = fingerTables(sim, n)
  const rng = createRng(`${seed}/lookups`)
  for (let k = 0; k < 500; k++) sim.route(rng.int(n), randomId(rng))
  sim.runUntilIdle(60_000)
  const r = sim.report()
  assert.is(r.lookups.issued, 500)
  assert.is(r.lookups.delivered, 500)
  assert.is(r.lookups.correct, 500)
  assert.is(r.lookups.incorrect, 0)
  assert.is(r.lookups.lost, 0)
  assert.ok(r.hops.mean > 2 && r.hops.max <= 16, `hops ${JSON.stringify(r.hops)}`)
  assert.is(
    r.hops.histogram.reduce((a, b) => a + b, 0),
    500,
  )
  // The sphere obeys the triangle inequality, so a path is never shorter than the direct link.
  assert.ok(r.rdp.p50 >= 1 && r.rdp.mean >= 1 && r.rdp.p99 >= r.rdp.p50, `rdp ${JSON.stringify(r.rdp)}`)
  // RDP checked by hand for one lookup: its path delay is the sum of link latencies along the way.
  const paths: number[][] = []
  const sim2 = new Simulator<FakeNode>({
    seed,
    topology: { kind: 'sphere', size: 4096 },
    createNode: (ctx) => new FakeNode(ctx, { table: (self) => tables[self] ?? [] }),
  })
  startAll(sim2, n) // same seed: same ids, positions, tables
  let key = randomId(rng)
  while (sim2.oracle.closestLive(key) === 0) key = randomId(rng)
  sim2.route(0, key)
  sim2.runUntilIdle(60_000)
  for (let i = 0; i < n; i++)
    for (const m of sim2.node(i)!.received) paths.push([sim2.indexOfAddress(m.from)!, i])
  let delay = 0
  for (const [a, b] of paths) delay += sim2.latencyMs(a!, b!)
  const root = sim2.oracle.closestLive(key)!
  const want = delay / sim2.latencyMs(0, root)
  assert.ok(Math.abs(sim2.report().rdp.mean - want) < 1e-9, `${sim2.report().rdp.mean} vs ${want}`)
})

test('lookups: duplicates, wrong deliveries and lost lookups are counted', () => {
  const n = 30
  // Every node delivers where a message arrives: from the origin it is delivered in place (0 hops).
  const wrong = makeSim({ deliverAnywhere: true })
  startAll(wrong, n)
  const rng = createRng(`${seed}/wrong`)
  let expectWrong = 0
  for (let k = 0; k < 50; k++) {
    const from = rng.int(n)
    const key = randomId(rng)
    if (wrong.oracle.closestLive(key) !== from) expectWrong++
    wrong.route(from, key)
  }
  assert.is(wrong.report().lookups.incorrect, expectWrong)
  assert.is(wrong.report().lookups.correct, 50 - expectWrong)

  // Duplication on every hop: each lookup is delivered more than once.
  let tables: NodeHandle[][] = []
  const dup = makeSim({ table: (self) => tables[self] ?? [] }, { network: { duplicate: 1 } })
  startAll(dup, n)
  tables = fingerTables(dup, n)
  let key = randomId(rng)
  while (dup.oracle.closestLive(key) === 0) key = randomId(rng)
  dup.route(0, key)
  dup.runUntilIdle(60_000)
  const s = dup.report().lookups
  assert.is(s.delivered, 1)
  assert.ok(s.duplicates >= 1)
  assert.is(s.correct, 1)
  assert.ok(dup.oracle.lookup(0).deliveredAt.length === s.duplicates + 1)

  // The root crashed: nodes still route to it (their tables are fixed), so the lookup is lost.
  const lost = makeSim({ table: (self) => tables[self] ?? [] })
  startAll(lost, n)
  tables = fingerTables(lost, n)
  const root = lost.oracle.closestLive(key)!
  lost.crash(root)
  const from = root === 1 ? 2 : 1
  lost.route(from, key)
  lost.runUntilIdle(60_000)
  assert.is(lost.report().lookups.lost, 1)
  assert.ok(lost.report().messages.vanished >= 1)
})

// ---------------------------------------------------------------------------------------------
// Codec, metrics, failures, running

test('encode: messages round-trip through the codec and bytes are real', () => {
  const n = 40
  let tables: NodeHandle[][] = []
  const run = (encode: boolean) => {
    const sim = makeSim(
      { periodMs: 100, peers: (self) => [`sim:${(self + 1) % n}`], table: (self) => tables[self] ?? [] },
      { encode },
    )
    sim.start(sim.addNode())
    for (let i = 1; i < n; i++) sim.join(sim.addNode(), [0])
    tables = fingerTables(sim, n)
    sim.runFor(1000) // every join done
    const rng = createRng(`${seed}/encode`)
    for (let k = 0; k < 100; k++) sim.route(rng.int(n), randomId(rng), 'app', new Uint8Array(rng.int(300)))
    sim.runFor(2000)
    return sim
  }
  const plain = run(false)
  const coded = run(true)
  const a = plain.report()
  const b = coded.report()
  assert.is(b.lookups.correct, 100)
  assert.is(b.traceHash, a.traceHash) // the codec changes nothing the nodes see
  assert.equal(b.messages.byType, a.messages.byType)
  assert.equal(b.messages.bytesByType, a.messages.bytesByType) // the estimate is exact
  // Real bytes: a joinReply from node 0 holds one handle with a 5-byte address.
  const reply = encodeMessage({
    type: 'joinReply',
    from: { id: coded.idOf(0), address: 'sim:0' },
    leafSet: [{ id: coded.idOf(0), address: 'sim:0' }],
    rows: [],
  }).length
  assert.is(b.messages.bytesByType.joinReply, reply * (n - 1))
  // Decoded messages are fresh objects, equal in content.
  const got = coded.node(1)!.received.find((r) => r.type === 'joinReply')
  assert.ok(got !== undefined)
})

test('metrics: maintenance per node per second, join messages per node', () => {
  const n = 50
  const sim = makeSim({ periodMs: 500, peers: (self) => [`sim:${(self + 1) % n}`, `sim:${(self + 7) % n}`] })
  sim.start(sim.addNode())
  for (let i = 1; i < n; i++) sim.join(sim.addNode(), [0])
  sim.runFor(1000)
  sim.beginWindow()
  sim.runFor(10_000)
  const r = sim.report()
  // Two heartbeats every 0.5 s: 4 per node per second.
  assert.ok(Math.abs(r.maintenancePerNodePerSec - 4) < 0.05, `${r.maintenancePerNodePerSec}`)
  assert.is(r.joinMessagesPerNode, 2) // join + joinReply
  assert.is(r.table, null)
  const withTables = makeSim({}, { tableStats: (node) => ({ leafSet: node.index % 3, routingTable: 10 }) })
  startAll(withTables, 30)
  assert.equal(withTables.report().table, { meanLeafSet: 1, meanRoutingTable: 10 })
})

test('failures: a node that throws stops the run with the seed in the message', () => {
  const sim = makeSim({ throwOnHeartbeat: true, burst: 1, burstTo: 'sim:1' })
  startAll(sim, 2)
  try {
    sim.runUntilIdle(10_000)
    assert.unreachable('should have thrown')
  } catch (e) {
    assert.ok(e instanceof SimulationError)
    assert.match(e.message, seed)
    assert.is(e.seed, seed)
    assert.is(e.node, 1)
    assert.is(e.during, 'handleMessage')
    assert.match(e.message, 'fake node told to throw')
  }
  assert.is(sim.failures.length, 1)
  // An invalid message is a failure too, when encoding: an app name over 64 bytes.
  let other: NodeHandle[] = []
  const bad = new Simulator<FakeNode>({
    seed,
    topology: { kind: 'plane', size: 2 },
    encode: true,
    createNode: (ctx) => new FakeNode(ctx, { table: () => other }),
  })
  startAll(bad, 2)
  other = [{ id: bad.idOf(1), address: 'sim:1' }]
  assert.throws(
    () => bad.route(0, bad.idOf(1), 'a'.repeat(65)),
    (e: unknown) => e instanceof SimulationError && /INVALID_MESSAGE|app/.test(e.message),
  )
})

test('running: runUntil a predicate, runUntilIdle, scheduled commands, clock rules', () => {
  const progress: { now: number; events: number }[] = []
  const sim = makeSim(
    { periodMs: 100, peers: (self) => [`sim:${1 - self}`] },
    { onProgress: (p) => progress.push({ now: p.now, events: p.events }), progressEveryEvents: 10 },
  )
  startAll(sim, 2)
  const ok = sim.runUntil((s) => s.node(1)!.received.length >= 5, 10_000)
  assert.ok(ok)
  assert.ok(sim.now > 500 && sim.now < 700)
  assert.not(sim.runUntil(() => false, 2000))
  assert.is(sim.now, 2000)
  assert.not(sim.runUntilIdle(3000)) // heartbeats never stop
  assert.is(sim.now, 3000)
  assert.throws(() => sim.runUntil(100), /already/)
  let ran = -1
  sim.at(3500, (s) => {
    ran = s.now
    s.crash(0)
    s.crash(1)
  })
  assert.ok(sim.runUntilIdle(10_000)) // both crashed: only stale timers remain, then nothing
  assert.is(ran, 3500)
  assert.throws(() => sim.at(100, () => {}), /before now/)
  // Progress every 10 events, in order, never past the clock.
  assert.ok(progress.length >= 10)
  progress.forEach((p, k) => {
    assert.is(p.events, 10 * (k + 1))
    if (k > 0) assert.ok(p.now >= progress[k - 1]!.now)
  })
  // Nested runs are refused.
  const nested = makeSim({})
  nested.at(0, (s) => s.runFor(10))
  assert.throws(() => nested.runFor(1), /already running/)
})

test('addNode: ids are unique, drawn from the seed, and positions are checked', () => {
  const sim = makeSim({}, { topology: { kind: 'plane', size: 3 } })
  const a = sim.addNode()
  assert.throws(() => sim.addNode({ id: sim.idOf(a) }), /already/)
  assert.throws(() => sim.addNode({ position: 3 }), /outside/)
  sim.addNode()
  sim.addNode()
  assert.throws(() => sim.addNode(), /positions/)
  const other = makeSim({}, { topology: { kind: 'plane', size: 3 } })
  other.addNode()
  assert.ok(other.idOf(0).equals(sim.idOf(0)))
  assert.throws(
    () =>
      new Simulator({
        seed,
        topology: { kind: 'plane', size: 3 },
        createNode: (ctx: NodeContext) => new FakeNode({ ...ctx, address: 'elsewhere' }, {}),
      }).addNode(),
    /address/,
  )
})

test('addNodes: the ids, positions and indices of as many addNode calls, and one handle per node', () => {
  const contexts: NodeContext[] = []
  const one = makeSim({}, { topology: { kind: 'plane', size: 8 } })
  for (let i = 0; i < 5; i++) one.addNode()
  const many = new Simulator<FakeNode>({
    seed,
    topology: { kind: 'plane', size: 8 },
    createNode: (ctx) => {
      contexts.push(ctx)
      return new FakeNode(ctx, {})
    },
  })
  assert.is(many.addNodes(0), 0)
  assert.is(many.addNodes(5), 0)
  assert.is(many.size, 5)
  assert.is(contexts.length, 5)
  for (let i = 0; i < 5; i++) {
    assert.ok(many.idOf(i).equals(one.idOf(i)), `id of node ${i}`)
    assert.is(many.positionOf(i), one.positionOf(i))
    const { handle } = contexts[i]!
    assert.is(contexts[i]!.index, i)
    assert.ok(Object.isFrozen(handle))
    assert.ok(handle.id === contexts[i]!.id)
    assert.is(handle.address, `sim:${i}`)
  }
  assert.is(many.addNodes(2), 5)
  assert.throws(() => many.addNodes(-1), /count/)
  assert.throws(() => many.addNodes(1.5), /count/)
  assert.throws(() => many.addNodes(2), /positions/) // 7 of 8 taken: none added
  assert.is(many.size, 7)
  // A restart keeps the id, the address and the very handle.
  many.start(0)
  many.crash(0)
  many.restart(0)
  assert.ok(contexts.at(-1)!.handle === contexts[0]!.handle)
})

test.run()
