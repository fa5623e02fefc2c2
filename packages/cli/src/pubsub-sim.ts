/*
 * The pub/sub experiment: Scribe trees and Peter's delivery over the real protocol, in the testkit
 * simulator, deterministically from a seed. It lives here, in the composition root, because it
 * joins two packages (testkit's simulator and @pastry/pubsub) that do not depend on each other.
 *
 * Phases: (1) N nodes join through the protocol and settle; (2) T topics get subscribers, topic of
 * rank r having about N·r^-1.25 of them (the Zipf-like law of the Scribe evaluation), on random
 * nodes; the run waits until every subscriber is attached to its tree; (3) K publishes from random
 * live nodes to random topics, spread evenly over the publish window; (4) optionally, halfway
 * through, a fraction of the nodes crash at once, the roots of the busiest topics and interior
 * forwarders among them; (5) the run drains until every publish is settled (acknowledged by a root,
 * failed, or its publisher crashed) and every acknowledged one has reached every subscriber that
 * was subscribed, attached and alive when it was published and is still alive, or until the drain
 * bound; (6) it goes on, within the same bound, until every live subscription is attached again.
 *
 * What is checked and reported: each subscriber's stream per (topic, publisher) must be exactly
 * once and in order; `delivered` counts expected deliveries that arrived, `missing` those that did
 * not, `duplicates` and `outOfOrder` count violations, and `gaps` counts gap events. RDP is the
 * tree delay (from the root taking the publish in to the subscriber's delivery) over the direct
 * delay from the root to the subscriber. Stress is children per node over all topics.
 * `messagesByType` splits the pub/sub traffic of the publish and drain window by message type.
 *
 * The repair bound. After a crash, a publish made at time t reaches every live subscriber by
 * t + `repairBoundMs` (see {@link repairBoundMs}): core declares the crashed node failed after its
 * probes time out, the hop that noticed it waits one ack timeout, a child notices a silent parent,
 * one SUBSCRIBE and one publish may be lost on the way and retried, and one replay fills the hole.
 * The experiment reports it beside `maxDelayAfterCrashMs`, the longest delay it measured.
 */
import { ConfigError, createRng, type Id, type ProtocolConfig, resolveConfig } from '@pastry/core'
import {
  type CompositeEvent,
  decodePubSub,
  PastryPubSubNode,
  type PubSubConfig,
  resolvePubSubConfig,
} from '@pastry/pubsub'
import { Simulator, type TopologyKind } from '@pastry/testkit'

/** Options for {@link runPubSubExperiment}. */
export interface PubSubExperimentOptions {
  readonly seed: string
  readonly nodes: number
  readonly topics: number
  readonly publishes: number
  readonly topology?: TopologyKind
  /** Crash this fraction of live nodes halfway through the publishes (default 0). */
  readonly failFraction?: number
  /** The publish window, in virtual ms (default 60,000). */
  readonly publishWindowMs?: number
  /** Exponent of the subscriber-count law (default 1.25). */
  readonly zipf?: number
  readonly config?: Partial<ProtocolConfig>
  readonly pubsub?: Partial<PubSubConfig>
  readonly onProgress?: (phase: string, fraction: number) => void
}

/** What {@link runPubSubExperiment} reports. */
export interface PubSubExperimentReport {
  readonly mode: 'pubsub'
  readonly seed: string
  readonly nodes: number
  readonly live: number
  readonly topics: number
  readonly subscriptions: number
  readonly publishes: number
  /** Publishes the publisher refused at once (its bound on unacknowledged publishes). */
  readonly refused: number
  /** Publishes a root acknowledged. */
  readonly acknowledged: number
  readonly publishFailed: number
  readonly expectedDeliveries: number
  readonly delivered: number
  readonly missing: number
  readonly deliveryRatio: number
  readonly duplicates: number
  readonly outOfOrder: number
  readonly gaps: number
  readonly rdp: { readonly mean: number; readonly p50: number; readonly p99: number }
  readonly stress: { readonly mean: number; readonly meanNonZero: number; readonly max: number }
  /** Pub/sub transmissions (routed hops and direct sends, heartbeats included) per publish. */
  readonly messagesPerPublish: number
  /**
   * The same transmissions (publish and drain window) by pub/sub message type, decoded from their
   * payloads; a payload that does not decode counts as `invalid`. Sums to messagesPerPublish × publishes.
   */
  readonly messagesByType: Readonly<Record<string, number>>
  /** Publish-to-delivery delay, ms. */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly crashed: number
  /** Of the crashed nodes: topic roots and interior forwarders (nodes with children). */
  readonly crashedRoots: number
  readonly crashedForwarders: number
  /**
   * The longest publish-to-delivery delay of an acknowledged publish made after the crash, ms (null
   * without a crash). A publish that failed (`publishFailed`) may still arrive, later; it is not
   * counted, as it is not in `expectedDeliveries`.
   */
  readonly maxDelayAfterCrashMs: number | null
  /** The bound `maxDelayAfterCrashMs` should stay within, from the protocol periods ({@link repairBoundMs}). */
  readonly repairBoundMs: number
  /**
   * Live subscriptions neither the root nor attached to a parent when the run ended. After the
   * drain the run goes on (within the drain's bound) until every one is attached again.
   */
  readonly detachedAtEnd: number
  readonly simulatedMs: number
  readonly wallMs: number
  readonly peakRssMb: number
  readonly traceHash: string
  /** Up to five expected deliveries that never happened, described, for diagnosis. */
  readonly missingSample: readonly string[]
}

/**
 * How long after a crash a publish may take to reach every live subscriber, by the sum of the
 * protocol periods that repair waits on, in order: core's failure declaration (a probe and its
 * retries, `probeTimeoutMs × (1 + probeRetries)`, then for a leaf the other members' probes,
 * `2 × probeTimeoutMs` when `indirectProbes` is on), the ack timeout of the hop that ran into the
 * crashed node (`ackTimeoutMaxMs`), a child's wait on a silent parent (`parentTimeoutMs`), one
 * SUBSCRIBE retry (`subscribeTimeoutMs`), one publish retry (`publishAckTimeoutMs`) and one replay
 * (`replayTimeoutMs`). The failure declaration and the ack timeout count twice: when a tenth of
 * the nodes crash at once, the route a repair takes (toward the new root, or the new parent) may
 * run into a second crashed node and wait for it to be declared failed too. (Counted once, the bound
 * was 12 s in the CI test's settings, and seed `pubsub-crash-24` measured 12.9 s.) The steps
 * overlap in practice, so the sum is an upper bound, not an estimate.
 */
export function repairBoundMs(node: ProtocolConfig, pubsub: PubSubConfig): number {
  return (
    2 *
      (node.probeTimeoutMs * (1 + node.probeRetries + (node.indirectProbes > 0 ? 2 : 0)) +
        node.ackTimeoutMaxMs) +
    pubsub.parentTimeoutMs +
    pubsub.subscribeTimeoutMs +
    pubsub.publishAckTimeoutMs +
    pubsub.replayTimeoutMs
  )
}

interface Early {
  acked: boolean
  failed: boolean
  root: number
  rootAt: number
}

interface Expected {
  readonly topic: number
  readonly publisher: string
  readonly seq: number
  readonly at: number
  /** Subscribers (node indexes) that must receive it. */
  readonly subscribers: readonly number[]
  /** The publishing node's index. */
  readonly from: number
  acked: boolean
  /** The publisher gave up on it (`publishFailed`). */
  failed: boolean
  rootAt: number
  root: number
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
}

/** Runs the experiment. Deterministic for a seed and options. */
export function runPubSubExperiment(options: PubSubExperimentOptions): PubSubExperimentReport {
  const started = performance.now()
  const n = options.nodes
  const topicCount = options.topics
  if (!Number.isInteger(n) || n < 2) throw new ConfigError(`nodes must be an integer ≥ 2, got ${n}`)
  if (!Number.isInteger(topicCount) || topicCount < 1)
    throw new ConfigError(`topics must be ≥ 1, got ${topicCount}`)
  const failFraction = options.failFraction ?? 0
  if (!(failFraction >= 0 && failFraction < 1))
    throw new ConfigError(`fail must be in [0, 1), got ${failFraction}`)
  const progress = options.onProgress ?? (() => {})
  const windowMs = options.publishWindowMs ?? 60_000
  const nodeConfig = resolveConfig(options.config ?? {})
  const pubsubConfig = resolvePubSubConfig(options.pubsub ?? {})
  const rng = createRng(options.seed).derive('pubsub-experiment')
  const names = Array.from({ length: topicCount }, (_, t) => `topic-${t}`)
  const topicIndex = new Map(names.map((name, t) => [name, t]))

  const expected = new Map<string, Expected>()
  const keyOf = (topic: number, publisher: string, seq: number) => `${topic}|${publisher}|${seq}`
  const seen = new Map<string, number>() // `${sub}|${topic}|${publisher}` → last seq
  const received = new Set<string>() // `${sub}|${key}`
  let duplicates = 0
  let outOfOrder = 0
  let gaps = 0
  let publishFailed = 0
  let refused = 0
  const rdp: number[] = []
  const latency: number[] = []
  let crashAt = Number.POSITIVE_INFINITY
  /** The last delivery of each publish made after the crash, by key. */
  const lastAfterCrash = new Map<string, number>()
  let pubsubTransmits = 0
  const byType = new Map<string, number>()
  // A payload pushed to many children is one object: decode it once.
  const typeOf = new WeakMap<Uint8Array, string>()
  const countType = (payload: Uint8Array) => {
    let type = typeOf.get(payload)
    if (type === undefined) {
      const d = decodePubSub(payload, Number.POSITIVE_INFINITY)
      type = d.ok ? d.message.type : 'invalid'
      typeOf.set(payload, type)
    }
    byType.set(type, (byType.get(type) ?? 0) + 1)
  }
  let counting = false
  let sim: Simulator<PastryPubSubNode>

  // What happens to a publish while its command still runs (a publisher that is the topic's root is
  // acknowledged at once) is kept here until the publish is registered in `expected`.
  const early = new Map<string, Early>()
  const record = (key: string): Early => {
    let x: Early | undefined = expected.get(key) ?? early.get(key)
    if (x === undefined) early.set(key, (x = { acked: false, failed: false, root: -1, rootAt: 0 }))
    return x
  }
  const onEvent = (index: number, event: CompositeEvent, now: number) => {
    if (event.type !== 'pubsub') return
    const e = event.event
    if (e.type === 'message') {
      const t = topicIndex.get(e.topic) ?? -1
      const publisher = e.publisher.id.toHex()
      const stream = `${index}|${t}|${publisher}`
      const last = seen.get(stream) ?? 0
      const key = keyOf(t, publisher, e.seq)
      if (received.has(`${index}|${key}`)) duplicates++
      else {
        received.add(`${index}|${key}`)
        if (e.seq <= last) outOfOrder++
      }
      seen.set(stream, Math.max(last, e.seq))
      const x = expected.get(key)
      if (x !== undefined) {
        latency.push(now - x.at)
        if (x.at >= crashAt) lastAfterCrash.set(key, now)
        if (x.root >= 0 && x.root !== index) {
          const direct = sim.latencyMs(x.root, index)
          if (direct > 0) rdp.push((now - x.rootAt) / direct)
        }
      }
    } else if (e.type === 'gap') gaps++
    else if (e.type === 'published') {
      record(keyOf(topicIndex.get(e.topic) ?? -1, sim.idOf(index).toHex(), e.seq)).acked = true
    } else if (e.type === 'publishFailed') {
      publishFailed++
      record(keyOf(topicIndex.get(e.topic) ?? -1, sim.idOf(index).toHex(), e.seq)).failed = true
    }
  }

  sim = new Simulator<PastryPubSubNode>({
    seed: options.seed,
    topology: { kind: options.topology ?? 'sphere', size: n },
    createNode: (ctx) => {
      const node = new PastryPubSubNode({
        id: ctx.id,
        address: ctx.address,
        handle: ctx.handle,
        rng: ctx.rng,
        config: nodeConfig,
        ...(options.pubsub === undefined ? {} : { pubsub: options.pubsub }),
        onRootReceive: (now, topic, publisher: Id, seq) => {
          const x = record(keyOf(topicIndex.get(topic) ?? -1, publisher.toHex(), seq))
          if (x.root < 0) {
            x.root = ctx.index
            x.rootAt = now
          }
        },
      })
      // Count pub/sub's own transmissions, for messages per publish.
      const poll = node.pollTransmit.bind(node)
      node.pollTransmit = () => {
        const t = poll()
        if (
          counting &&
          t !== undefined &&
          (t.message.type === 'route' || t.message.type === 'direct') &&
          t.message.app === node.app
        ) {
          pubsubTransmits++
          countType(t.message.payload)
        }
        return t
      }
      return node
    },
    onEvent,
    tableStats: (node) => ({ leafSet: node.node.leafSet.size, routingTable: node.node.routingTable.size }),
  })

  // 1. Join and settle.
  sim.addNodes(n)
  sim.start(0)
  for (let i = 1; i < n; i++) {
    sim.at(i * 10, (s) => {
      s.join(i, [s.oracle.randomLive(rng) ?? 0])
      if (i % 256 === 0) progress('join', i / n)
    })
  }
  sim.runUntil((s) => s.now >= (n - 1) * 10 && s.oracle.liveCount === n, n * 10 + 30 * 60_000)
  sim.runFor(2 * nodeConfig.leafSetHeartbeatMs)
  progress('join', 1)

  // 2. Subscribe: topic of rank r (from 1) gets round(n · r^-zipf) subscribers, at least one.
  const zipf = options.zipf ?? 1.25
  const subscribers: number[][] = names.map((_, t) => {
    const count = Math.max(1, Math.min(n, Math.round(n * (t + 1) ** -zipf)))
    const pool = Array.from({ length: n }, (_, i) => i)
    for (let k = 0; k < count; k++) {
      const j = k + rng.int(n - k)
      ;[pool[k], pool[j]] = [pool[j] as number, pool[k] as number]
    }
    return pool.slice(0, count)
  })
  const subscribeStart = sim.now
  let subscriptions = 0
  subscribers.forEach((subs, t) => {
    for (const i of subs) {
      subscriptions++
      sim.at(subscribeStart + rng.int(10_000), (s) => {
        if (s.isAlive(i))
          s.command(i, (node, now) => node.command(now, () => node.pubsub.subscribe(now, names[t] as string)))
      })
    }
  })
  const attached = (s: Simulator<PastryPubSubNode>) =>
    subscribers.every((subs, t) =>
      subs.every((i) => {
        const m = s.node(i)?.pubsub
        const name = names[t] as string
        return m === undefined || m.isRoot(name) || m.parentOf(name) !== undefined
      }),
    )
  // Checked once per simulated second: the check walks every subscription.
  sim.runUntil(subscribeStart + 10_000)
  while (!attached(sim) && sim.now < subscribeStart + 10 * 60_000) sim.runFor(1_000)
  progress('subscribe', 1)

  // 3 and 4. Publish, crashing a fraction halfway.
  const publishStart = sim.now
  const publishes = options.publishes
  counting = true
  for (let k = 0; k < publishes; k++) {
    sim.at(publishStart + Math.floor((k * windowMs) / Math.max(1, publishes)), (s) => {
      const from = s.oracle.randomLive(rng)
      if (from === undefined) return
      const t = rng.int(topicCount)
      const node = s.node(from) as PastryPubSubNode
      const data = new Uint8Array(16)
      let r: { seq: number }
      try {
        r = s.command(from, (nd, now) =>
          nd.command(now, () => nd.pubsub.publish(now, names[t] as string, data)),
        )
      } catch {
        refused++ // the publisher's own bound (OVERLOADED): reported, not expected anywhere
        return
      }
      const key = keyOf(t, node.id.toHex(), r.seq)
      expected.set(key, {
        topic: t,
        publisher: node.id.toHex(),
        seq: r.seq,
        at: s.now,
        subscribers: (subscribers[t] as number[]).filter((i) => s.isAlive(i)),
        from,
        acked: false,
        failed: false,
        rootAt: 0,
        root: -1,
        ...early.get(key),
      })
      early.clear()
      if (k % 64 === 0) progress('publish', k / publishes)
    })
  }
  let crashed = 0
  let crashedRoots = 0
  let crashedForwarders = 0
  if (failFraction > 0) {
    sim.at(publishStart + windowMs / 2, (s) => {
      const live = s.oracle.liveIndexes()
      const count = Math.floor(live.length * failFraction)
      const roots = new Set<number>()
      const forwarders = new Set<number>()
      for (const i of live) {
        const m = s.node(i)?.pubsub
        if (m === undefined) continue
        for (const name of names) {
          if (m.isRoot(name)) roots.add(i)
          else if (m.childrenOf(name).length > 0 && !m.isSubscribed(name)) forwarders.add(i)
        }
      }
      // The roots of the busiest topics and some forwarders first, then random nodes.
      const victims = new Set<number>()
      const rootOfBusiest = names.slice(0, 3).map((name) => live.find((i) => s.node(i)?.pubsub.isRoot(name)))
      for (const r of rootOfBusiest) if (r !== undefined && victims.size < count) victims.add(r)
      for (const f of [...forwarders].slice(0, Math.ceil(count / 4))) if (victims.size < count) victims.add(f)
      while (victims.size < count) victims.add(live[rng.int(live.length)] as number)
      for (const v of victims) {
        if (roots.has(v)) crashedRoots++
        if (forwarders.has(v)) crashedForwarders++
        s.crash(v)
      }
      crashed = victims.size
      crashAt = s.now
    })
  }
  sim.runUntil(publishStart + windowMs)
  progress('publish', 1)

  // 5. Drain: until every publish is settled (acknowledged, failed, or its publisher crashed) and
  // every acknowledged one reached its live subscribers, or the bound. Without waiting for the
  // settling, a publish still unacknowledged when the window closes would go uncounted.
  const complete = (s: Simulator<PastryPubSubNode>) => {
    for (const [key, x] of expected) {
      if (!x.acked) {
        if (!x.failed && s.isAlive(x.from)) return false
        continue
      }
      for (const i of x.subscribers) if (s.isAlive(i) && !received.has(`${i}|${key}`)) return false
    }
    return true
  }
  const drainUntil = sim.now + 2 * nodeConfig.leafSetTimeoutMs + 60_000
  while (!complete(sim) && sim.now < drainUntil) sim.runFor(1_000)
  counting = false

  // 6. Heal: every live subscription is attached again (a subscription whose topic saw no publish
  // after the crash may still be repairing), within the same bound.
  const detached = (s: Simulator<PastryPubSubNode>) => {
    let count = 0
    subscribers.forEach((subs, t) => {
      const name = names[t] as string
      for (const i of subs) {
        const m = s.isAlive(i) ? s.node(i)?.pubsub : undefined
        if (m?.isSubscribed(name) === true && !m.isRoot(name) && m.parentOf(name) === undefined) count++
      }
    })
    return count
  }
  while (detached(sim) > 0 && sim.now < drainUntil) sim.runFor(1_000)
  const detachedAtEnd = detached(sim)

  let maxDelayAfterCrash = 0
  for (const [key, last] of lastAfterCrash) {
    const x = expected.get(key)
    if (x?.acked === true) maxDelayAfterCrash = Math.max(maxDelayAfterCrash, last - x.at)
  }
  let expectedDeliveries = 0
  let delivered = 0
  let acknowledged = 0
  const missingSample: string[] = []
  for (const [key, x] of expected) {
    if (!x.acked) continue
    acknowledged++
    for (const i of x.subscribers) {
      if (!sim.isAlive(i)) continue
      expectedDeliveries++
      if (received.has(`${i}|${key}`)) delivered++
      else if (missingSample.length < 5) {
        const m = sim.node(i)?.pubsub
        const name = names[x.topic] as string
        missingSample.push(
          `node ${i} missed ${name} ${x.publisher.slice(0, 8)} #${x.seq} (published at ${x.at.toFixed(0)} ms, root ${x.root}${sim.isAlive(x.root) ? '' : ' crashed'}; now ${m?.isRoot(name) ? 'root' : m?.parentOf(name) === undefined ? 'detached' : 'attached'})`,
        )
      }
    }
  }
  const live = sim.oracle.liveIndexes()
  const children = live.map((i) => {
    const m = sim.node(i)?.pubsub
    return m === undefined ? 0 : names.reduce((sum, name) => sum + m.childrenOf(name).length, 0)
  })
  const nonZero = children.filter((c) => c > 0)
  rdp.sort((a, b) => a - b)
  latency.sort((a, b) => a - b)
  const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)
  const round = (x: number, digits = 3) => Number(x.toFixed(digits))
  return {
    mode: 'pubsub',
    seed: options.seed,
    nodes: n,
    live: live.length,
    topics: topicCount,
    subscriptions,
    publishes,
    refused,
    acknowledged,
    publishFailed,
    expectedDeliveries,
    delivered,
    missing: expectedDeliveries - delivered,
    deliveryRatio: expectedDeliveries === 0 ? 1 : delivered / expectedDeliveries,
    duplicates,
    outOfOrder,
    gaps,
    rdp: { mean: round(mean(rdp)), p50: round(quantile(rdp, 0.5)), p99: round(quantile(rdp, 0.99)) },
    stress: { mean: round(mean(children)), meanNonZero: round(mean(nonZero)), max: Math.max(0, ...children) },
    messagesPerPublish: round(publishes === 0 ? 0 : pubsubTransmits / publishes, 2),
    messagesByType: Object.fromEntries([...byType].sort((a, b) => b[1] - a[1])),
    latencyMs: {
      p50: round(quantile(latency, 0.5), 1),
      p99: round(quantile(latency, 0.99), 1),
      max: round(latency[latency.length - 1] ?? 0, 1),
    },
    crashed,
    crashedRoots,
    crashedForwarders,
    maxDelayAfterCrashMs: failFraction > 0 ? round(maxDelayAfterCrash, 1) : null,
    repairBoundMs: repairBoundMs(nodeConfig, pubsubConfig),
    detachedAtEnd,
    simulatedMs: sim.now,
    wallMs: Math.round(performance.now() - started),
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    traceHash: sim.traceHash(),
    missingSample,
  }
}
