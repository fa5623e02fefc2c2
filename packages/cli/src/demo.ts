/*
 * `pastry demo`: a real cluster on this machine. It starts `pastry node` processes over TCP on
 * 127.0.0.1, lets them join, routes messages through their admin APIs, checks each landed at the
 * numerically closest node, then subscribes nodes to a few topics, publishes from random nodes and
 * checks every subscriber got every message once and in order; prints a summary, and stops every
 * process.
 */
import { parseArgs } from 'node:util'
import { closestId, Id } from '@pastry/core'
import {
  admin,
  type DeliveredEntry,
  LocalCluster,
  type Member,
  type MemberStatus,
  type ReceivedEntry,
  type TopicStatus,
} from './cluster.js'
import { UsageError } from './errors.js'
import { createProgress } from './progress.js'

export const DEMO_USAGE = `Usage: pastry demo [options]

Starts a local Pastry cluster of real processes over TCP on 127.0.0.1, routes messages between
them, prints where they landed, then runs pub/sub: subscribes nodes to 3 topics, publishes from
random nodes, and checks that every subscriber received every message once and in order. It stops
every process at the end, and exits 0 only when everything was correct.

Options:
  --nodes N        processes in the cluster (default 8, 2..32)
  --messages K     messages to route from random nodes to random keys (default 200, 1..10000)
  --publishes P    pub/sub messages to publish from random nodes (default 60, 1..3000)
  -h, --help       show this help`

/** How long the demo waits for the cluster to form, and for the messages to arrive. */
const JOIN_TIMEOUT_MS = 60_000
const DELIVERY_TIMEOUT_MS = 30_000
const SETTLE_TIMEOUT_MS = 15_000
/** How long subscriptions may take to attach, and publishes to reach every subscriber. */
const ATTACH_TIMEOUT_MS = 15_000
const RECEIVE_TIMEOUT_MS = 15_000
/** The demo's topics. */
const TOPICS = ['demo/prices', 'demo/chat', 'demo/jobs'] as const
/** The nodes' leaf-set size L (the protocol's default). */
const LEAF_SET_SIZE = 16

function intOption(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  }
  return n
}

/** Runs `pastry demo`. Resolves to 0 when every message landed at the right node, 1 otherwise. */
export async function runDemo(argv: readonly string[]): Promise<number> {
  let values: { nodes?: string; messages?: string; publishes?: string; help?: boolean }
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        nodes: { type: 'string' },
        messages: { type: 'string' },
        publishes: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message.replace(/^TypeError.*?: /, '') : String(e))
  }
  if (values.help === true) {
    process.stdout.write(`${DEMO_USAGE}\n`)
    return 0
  }
  const count = intOption('nodes', values.nodes, 8, 2, 32)
  const messages = intOption('messages', values.messages, 200, 1, 10_000)
  const publishes = intOption('publishes', values.publishes, 60, 1, 3_000)
  const out = (line = '') => process.stdout.write(`${line}\n`)
  const progress = createProgress()
  // A one-second heartbeat lets concurrent joiners learn of each other within the demo's time.
  const cluster = new LocalCluster({ nodeArgs: ['--log-level', 'warn', '--heartbeat-ms', '1000'] })
  const onSignal = () => {
    cluster.killAll()
    process.exit(130)
  }
  process.once('SIGINT', onSignal)
  try {
    out(`Pastry demo: ${count} nodes over TCP on 127.0.0.1`)
    const started = performance.now()
    const first = await cluster.add()
    await first.active
    const rest = await Promise.all(
      Array.from({ length: count - 1 }, () => cluster.add(['--bootstrap', first.address])),
    )
    let active = 1
    progress.update('joining', active / count)
    await withTimeout(
      Promise.all(
        rest.map((m) =>
          m.active.then(() => {
            active++
            progress.update('joining', active / count)
          }),
        ),
      ),
      JOIN_TIMEOUT_MS,
      'the nodes to become active',
    )
    progress.done()
    out(
      `  all ${count} active ${((performance.now() - started) / 1000).toFixed(1)} s after the first started`,
    )

    // Wait until every leaf set is the true one: each node then knows its real neighbours.
    let statuses: MemberStatus[] = []
    const settleBy = performance.now() + SETTLE_TIMEOUT_MS
    let settled = 0
    for (;;) {
      statuses = await Promise.all(cluster.members.map((m) => admin<MemberStatus>(m, '/status')))
      const truth = trueLeafSets(statuses.map((s) => s.id))
      settled = statuses.filter((s, i) =>
        sameSet(
          s.leafSet.map((l) => l.id),
          truth[i] ?? [],
        ),
      ).length
      progress.update('settling', settled / count)
      if (settled === count || performance.now() > settleBy) break
      await new Promise((r) => setTimeout(r, 50))
    }
    progress.done()
    out(
      `  leaf sets true at ${settled}/${count} nodes ${((performance.now() - started) / 1000).toFixed(1)} s after the first started`,
    )

    // Route messages from random nodes to random keys.
    const ids = statuses.map((s) => Id.parse(s.id))
    const sent = new Map<string, { key: string; from: number }>()
    for (let i = 0; i < messages; i++) {
      const from = Math.floor(Math.random() * count)
      const key = Id.fromBytes(crypto.getRandomValues(new Uint8Array(16))).toHex()
      const member = cluster.members[from]
      if (member === undefined) continue
      const { id } = await admin<{ id: string }>(member, '/route', { key, data: `demo message ${i}` })
      sent.set(id, { key, from })
      progress.update('routing', (i + 1) / messages)
    }
    progress.done()

    // Collect where they landed.
    const landed = new Map<string, { at: number; entry: DeliveredEntry }>()
    const deadline = performance.now() + DELIVERY_TIMEOUT_MS
    while (landed.size < sent.size && performance.now() < deadline) {
      const lists = await Promise.all(cluster.members.map((m) => admin<DeliveredEntry[]>(m, '/delivered')))
      lists.forEach((list, at) => {
        for (const entry of list)
          if (sent.has(entry.id) && !landed.has(entry.id)) landed.set(entry.id, { at, entry })
      })
      if (landed.size < sent.size) await new Promise((r) => setTimeout(r, 50))
    }

    let correct = 0
    const perNode = new Array<number>(count).fill(0)
    const hops: number[] = []
    const latencies: number[] = []
    for (const [id, { at, entry }] of landed) {
      const expected = closestId(Id.parse(sent.get(id)?.key ?? entry.key), ids)
      if (expected?.equals(ids[at] as Id)) correct++
      perNode[at] = (perNode[at] ?? 0) + 1
      hops.push(entry.hops)
      if (entry.latencyMs !== null) latencies.push(entry.latencyMs)
    }

    out()
    out('  node  id                                address            leaf set  table  keys')
    statuses.forEach((s, i) => {
      out(
        `  ${String(i).padStart(4)}  ${s.id}  ${s.address.padEnd(17)}  ${String(s.leafSet.length).padStart(8)}  ${String(s.routingTableEntries).padStart(5)}  ${String(perNode[i]).padStart(4)}`,
      )
    })
    out()
    out(`  routed ${sent.size} messages from random nodes to random keys`)
    out(`  delivered:                 ${landed.size}/${sent.size}`)
    out(`  at the numerically closest: ${correct}/${sent.size}`)
    out(`  hops:    mean ${mean(hops).toFixed(2)}, max ${Math.max(0, ...hops)}, histogram ${histogram(hops)}`)
    out(
      `  latency: p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms (from /route to delivery)`,
    )
    out()
    const pubsubCorrect = await demoPubSub(cluster.members, publishes, out, progress)
    const codes = await cluster.stop()
    const clean = codes.filter((c) => c === 0).length
    out(`  stopped ${count} nodes: ${clean} left gracefully`)
    return correct === sent.size && pubsubCorrect && clean === count ? 0 : 1
  } finally {
    progress.done()
    process.off('SIGINT', onSignal)
    cluster.killAll()
  }
}

/** Each node's true leaf set (by index): the L/2 nearest ids on each side around the ring. */
function trueLeafSets(ids: readonly string[]): string[][] {
  const sorted = [...ids].sort((a, b) => (BigInt(`0x${a}`) < BigInt(`0x${b}`) ? -1 : 1))
  const n = sorted.length
  const half = LEAF_SET_SIZE / 2
  return ids.map((id) => {
    if (n - 1 <= LEAF_SET_SIZE) return ids.filter((x) => x !== id)
    const at = sorted.indexOf(id)
    const out: string[] = []
    for (let k = 1; k <= half; k++) {
      out.push(sorted[(at + k) % n] as string, sorted[(at - k + n) % n] as string)
    }
    return out
  })
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a)
  return a.length === b.length && b.every((x) => set.has(x))
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length
}

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
}

function histogram(xs: readonly number[]): string {
  const counts: number[] = []
  for (const x of xs) counts[x] = (counts[x] ?? 0) + 1
  return Array.from(counts, (c, i) => `${i}:${c ?? 0}`).join(' ')
}

/**
 * The pub/sub part: about half the nodes subscribe to each topic, `publishes` messages go out from
 * random nodes, and every subscriber's `/received` must hold each one exactly once, in order per
 * publisher, with no gap. Prints a table per topic and the latency; resolves to whether all was right.
 */
async function demoPubSub(
  members: readonly Member[],
  publishes: number,
  out: (line?: string) => void,
  progress: ReturnType<typeof createProgress>,
): Promise<boolean> {
  const random = (n: number) => Math.floor(Math.random() * n)
  const plans = TOPICS.map((topic) => {
    const pool = [...members]
    const subscribers: Member[] = []
    const n = Math.max(2, Math.ceil(members.length / 2))
    while (subscribers.length < n && pool.length > 0) subscribers.push(...pool.splice(random(pool.length), 1))
    return { topic, subscribers, sent: [] as { key: string; data: string; atMs: number }[] }
  })
  await Promise.all(
    plans.flatMap((p) => p.subscribers.map((m) => admin(m, '/subscribe', { topic: p.topic }))),
  )
  // Attached: each subscriber is its topic's root or has a parent (which is attached itself).
  const attachBy = performance.now() + ATTACH_TIMEOUT_MS
  let trees: TopicStatus[][] = []
  for (;;) {
    trees = await Promise.all(members.map((m) => admin<TopicStatus[]>(m, '/topics')))
    const attached = plans.every((p) =>
      p.subscribers.every((m) => {
        const e = trees[m.index]?.find((t) => t.topic === p.topic)
        return e !== undefined && (e.root || e.parent !== null)
      }),
    )
    if (attached || performance.now() > attachBy) break
    await new Promise((r) => setTimeout(r, 50))
  }

  for (let i = 0; i < publishes; i++) {
    const p = plans[i % plans.length] as (typeof plans)[number]
    const from = members[random(members.length)] as Member
    const data = `${p.topic} #${Math.floor(i / plans.length) + 1}`
    const atMs = Date.now()
    const r = await admin<{ publisher: string; epoch: number; seq: number }>(from, '/publish', {
      topic: p.topic,
      data,
    })
    p.sent.push({ key: `${r.publisher}/${r.epoch}/${r.seq}`, data, atMs })
    progress.update('publishing', (i + 1) / publishes)
  }
  progress.done()

  // Collect until every subscriber has every message of its topic, or the time is up.
  const collectBy = performance.now() + RECEIVE_TIMEOUT_MS
  let lists: ReceivedEntry[][][] = []
  for (;;) {
    lists = await Promise.all(
      plans.map((p) =>
        Promise.all(
          p.subscribers.map((m) =>
            admin<ReceivedEntry[]>(m, `/received?topic=${encodeURIComponent(p.topic)}`),
          ),
        ),
      ),
    )
    const complete = plans.every((p, t) =>
      (lists[t] ?? []).every((list) => list.filter((e) => e.gap === undefined).length >= p.sent.length),
    )
    if (complete || performance.now() > collectBy) break
    await new Promise((r) => setTimeout(r, 50))
  }

  let allCorrect = true
  const latencies: number[] = []
  out(`  pub/sub: ${TOPICS.length} topics, ${publishes} messages published from random nodes`)
  out('  topic        subscribers  root      messages  deliveries  exactly once, in order')
  plans.forEach((p, t) => {
    const sent = new Map(p.sent.map((s) => [s.key, s]))
    let good = 0
    let deliveries = 0
    for (const list of lists[t] ?? []) {
      const seen = new Set<string>()
      const last = new Map<string, number>()
      let ok = true
      for (const e of list) {
        const stream = `${e.publisher}/${e.epoch}`
        const key = `${stream}/${e.seq}`
        const s = sent.get(key)
        if (e.gap !== undefined || s === undefined || s.data !== e.data || seen.has(key)) ok = false
        if ((last.get(stream) ?? 0) >= (e.seq ?? 0)) ok = false
        last.set(stream, e.seq ?? 0)
        seen.add(key)
        if (s !== undefined) {
          deliveries++
          latencies.push(Math.max(0, e.receivedAtMs - s.atMs))
        }
      }
      if (ok && seen.size === sent.size) good++
    }
    const root = members.find((m) => trees[m.index]?.some((e) => e.topic === p.topic && e.root))
    const correct = good === p.subscribers.length
    if (!correct) allCorrect = false
    out(
      `  ${p.topic.padEnd(11)}  ${String(p.subscribers.length).padStart(11)}  ${(root === undefined ? '?' : `node ${root.index}`).padEnd(8)}  ${String(p.sent.length).padStart(8)}  ${`${deliveries}/${p.sent.length * p.subscribers.length}`.padStart(10)}  ${correct ? 'yes' : `no (${good}/${p.subscribers.length} subscribers)`}`,
    )
  })
  out(
    `  latency: p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms (from POST /publish to a subscriber's handler)`,
  )
  return allCorrect
}
