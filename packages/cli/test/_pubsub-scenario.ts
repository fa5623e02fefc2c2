// Pub/sub through ten `pastry node` processes, driven only through their admin APIs, as one uvu
// suite parameterised by transport (the test files pass `--transport ...`). The steps share one
// cluster and run in order:
//   1. ten nodes join (leaf sets of 4 and 2-bit digits, so that SUBSCRIBEs can take several hops;
//      at most two children per tree node, so that every tree of three or more members has an
//      interior forwarder however the routes go);
//   2. the pub/sub endpoints answer bad requests with 4xx and stream a topic as Server-Sent Events;
//   3. five topics get subscribers on random nodes, and the test waits until every subscription is
//      attached (`GET /topics`: root, or a parent);
//   4. several random publishers per topic: every subscriber receives every message exactly once,
//      in order per publisher, with no gap;
//   5. while publishes go on, kill -9 of an interior forwarder and of a topic's root (at once, unless
//      they are ring neighbours, which Pastry with L = 4 does not survive at once); after the trees
//      repair, every surviving subscriber has received every message exactly once and in order,
//      those published around the crash included.
// Every wait is bounded. The seed is printed; PASTRY_SEED replays the ids, topics and choices.
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { ReceivedEntry, TopicStatus } from '../src/cluster.js'
import {
  admin,
  createRng,
  eventually,
  type Member,
  randomHex,
  SEED,
  sourceCluster,
  statuses,
} from './_cluster.js'

const NODES = 10
const TOPICS = 5
/**
 * Leaf sets of 4 and 2-bit digits make routes of several hops in a young ten-node overlay, so that
 * SUBSCRIBEs pass through forwarders. Routes shorten as the nodes learn of each other (in a small
 * overlay they soon reach a topic's root in one hop), so the trees are kept deep by a fan-out of
 * two: a tree node with two children hands a further subscriber down to one of them. A topic with
 * three or more members other than its root then always has an interior forwarder.
 */
const LEAF_SET = 4
const MAX_CHILDREN = 2
const NODE_ARGS = ['--b', '2', '--leaf-set', String(LEAF_SET), '--pubsub-max-children', String(MAX_CHILDREN)]
/** Publishes per topic in the steady phase; 3 publishers each. */
const STEADY_PER_TOPIC = 40
const PUBLISHERS_PER_TOPIC = 3
/** How long publishes go on after the kills: past the pubsub parent timeout (3 s) and repair. */
const CRASH_PUBLISH_MS = 6_000
const CRASH_PUBLISH_INTERVAL_MS = 40

/** A message the test published: what every subscriber must receive. */
interface Sent {
  readonly topic: string
  readonly publisher: string
  readonly epoch: number
  readonly seq: number
  readonly data: string
}

interface Plan {
  readonly topic: string
  subscribers: Member[]
  readonly publishers: Member[]
}

async function request(
  member: Member,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://${member.admin}${path}`, { ...init, signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body }
}

/**
 * What is wrong with `member`'s `/received` list for `topic`, given every message sent on it:
 * a gap, a duplicate or out-of-order seq, wrong data, a message nobody sent, or a missing one.
 * Empty when the list is exactly right.
 */
function problems(list: readonly ReceivedEntry[], sent: readonly Sent[]): string[] {
  const out: string[] = []
  const want = new Map(sent.map((s) => [`${s.publisher}/${s.epoch}/${s.seq}`, s.data]))
  const last = new Map<string, number>()
  const seen = new Set<string>()
  for (const r of list) {
    const stream = `${r.publisher.slice(0, 8)}/${r.epoch}`
    if (r.gap !== undefined) {
      out.push(`gap ${stream} ${r.gap.fromSeq}..${r.gap.toSeq}`)
      continue
    }
    const seq = r.seq ?? -1
    const key = `${r.publisher}/${r.epoch}/${seq}`
    if ((last.get(stream) ?? 0) >= seq) out.push(`${stream} seq ${seq} after ${last.get(stream)}`)
    last.set(stream, seq)
    const data = want.get(key)
    if (data === undefined) out.push(`unexpected ${stream} seq ${seq}`)
    else if (data !== r.data) out.push(`${stream} seq ${seq}: data ${JSON.stringify(r.data)}`)
    seen.add(key)
  }
  const missing = sent.filter((s) => !seen.has(`${s.publisher}/${s.epoch}/${s.seq}`))
  if (missing.length > 0)
    out.push(
      `missing ${missing.length}: ${missing
        .slice(0, 5)
        .map((s) => `${s.publisher.slice(0, 8)}#${s.seq}`)
        .join(' ')}`,
    )
  return out
}

function attached(topics: readonly TopicStatus[], topic: string): boolean {
  const e = topics.find((t) => t.topic === topic)
  return e?.subscribed === true && (e.root || e.parent !== null)
}

/** Each member's true leaf set (by index): the L/2 nearest ids on each side around the ring. */
function trueLeafSets(ids: readonly string[]): string[][] {
  const sorted = [...ids].sort((a, b) => (BigInt(`0x${a}`) < BigInt(`0x${b}`) ? -1 : 1))
  const n = sorted.length
  return ids.map((id) => {
    const at = sorted.indexOf(id)
    const out = new Set<string>()
    for (let k = 1; k <= LEAF_SET / 2; k++) {
      out.add(sorted[(at + k) % n] as string)
      out.add(sorted[(at - k + n) % n] as string)
    }
    out.delete(id)
    return [...out]
  })
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a)
  return a.length === b.length && b.every((x) => set.has(x))
}

/**
 * Registers and runs the scenario as one uvu suite. `transportArgs` are extra `pastry node`
 * arguments for every member, such as `['--transport', 'udp']`; `label` names the transport.
 */
export function pubsubScenario(label: string, transportArgs: readonly string[]): void {
  const rng = createRng(`pubsub-${label}-${SEED}`)
  const cluster = sourceCluster([...NODE_ARGS, ...transportArgs])
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)] as T
  const sample = <T>(xs: readonly T[], n: number): T[] => {
    const pool = [...xs]
    const out: T[] = []
    while (out.length < n && pool.length > 0) out.push(pool.splice(rng.int(pool.length), 1)[0] as T)
    return out
  }
  let live: Member[] = []
  const plans: Plan[] = []
  const sent: Sent[] = []
  let counter = 0

  async function publish(from: Member, topic: string): Promise<void> {
    const data = `${topic}#${counter++}`
    const r = await admin<{ publisher: string; epoch: number; seq: number }>(from, '/publish', {
      topic,
      data,
    })
    assert.is(r.publisher, from.id, 'the publisher is the node that took the /publish')
    sent.push({ topic, publisher: r.publisher, epoch: r.epoch, seq: r.seq, data })
  }

  /** Waits until every live subscriber of every topic has exactly what was sent, then checks it. */
  async function allReceived(what: string, timeoutMs: number): Promise<void> {
    let report: string[] = []
    const check = async () => {
      report = []
      for (const p of plans) {
        const want = sent.filter((s) => s.topic === p.topic)
        const lists = await Promise.all(
          p.subscribers.map((m) =>
            admin<ReceivedEntry[]>(m, `/received?topic=${encodeURIComponent(p.topic)}`),
          ),
        )
        lists.forEach((list, i) => {
          for (const x of problems(list, want))
            report.push(`${p.topic} at ${p.subscribers[i]?.id.slice(0, 8)}: ${x}`)
        })
      }
      return report.length === 0
    }
    try {
      await eventually(what, timeoutMs, check)
    } catch (error) {
      console.log(report.slice(0, 20).join('\n'))
      console.log(`[trees]\n${describeTrees(await trees())}`)
      throw error
    }
    // Nothing was missing: any other problem (a duplicate, disorder, a gap) would remain listed.
    assert.equal(report, [], `${what}: every subscriber has every message once, in order, without gaps`)
  }

  /**
   * Subscribes every planned subscriber and waits until each is attached and every topic has one
   * root. Attached: the node is the root, or has a parent that acknowledged it (a parent
   * acknowledges only once attached itself, so the whole path up to the root is in place).
   */
  async function subscribeAll(): Promise<void> {
    await Promise.all(
      plans.flatMap((p) => p.subscribers.map((m) => admin(m, '/subscribe', { topic: p.topic }))),
    )
    await eventually('every subscription attached, and one root per topic', 20_000, async () => {
      const all = await trees()
      return plans.every(
        (p) =>
          p.subscribers.every((m) => attached(all.get(m) ?? [], p.topic)) &&
          live.filter((m) => all.get(m)?.some((t) => t.topic === p.topic && t.root)).length === 1,
      )
    })
  }

  /** Members that forward some planned topic: not its root, with children. */
  function forwarders(all: Map<Member, TopicStatus[]>): Member[] {
    return live.filter((m) =>
      all.get(m)?.some((t) => plans.some((p) => p.topic === t.topic) && !t.root && t.children.length > 0),
    )
  }

  /** One line per planned topic: each member in its tree, with its role and children. */
  const describeTrees = (all: Map<Member, TopicStatus[]>) =>
    plans
      .map(
        (p) =>
          `${p.topic}: ${live
            .map((m) => {
              const e = all.get(m)?.find((t) => t.topic === p.topic)
              if (e === undefined) return ''
              const role = e.root ? 'root' : e.children.length > 0 ? 'fwd' : 'leaf'
              return `${m.id.slice(0, 6)}(${role}${e.subscribed ? ',sub' : ''},${e.children.length})`
            })
            .filter((x) => x !== '')
            .join(' ')}`,
      )
      .join('\n')

  async function trees(): Promise<Map<Member, TopicStatus[]>> {
    const lists = await Promise.all(live.map((m) => admin<TopicStatus[]>(m, '/topics')))
    return new Map(live.map((m, i) => [m, lists[i] ?? []]))
  }

  const steps = suite(`pub/sub through ${NODES} pastry node processes over ${label}`)

  steps.after(async () => {
    await cluster.stop()
  })

  steps(`${NODES} nodes join and become active`, async () => {
    const first = await cluster.add(['--id', randomHex(rng)])
    await first.active
    const others = await Promise.all(
      Array.from({ length: NODES - 1 }, () =>
        cluster.add(['--id', randomHex(rng), '--bootstrap', first.address]),
      ),
    )
    await Promise.all(others.map((m) => m.active))
    live = [first, ...others]
    await eventually('every node active with its true leaf set', 20_000, async () => {
      const all = await statuses(live)
      const truth = trueLeafSets(all.map((s) => s.id))
      return all.every(
        (s, i) =>
          s.state === 'active' &&
          sameSet(
            s.leafSet.map((l) => l.id),
            truth[i] ?? [],
          ),
      )
    })
  })

  steps('the pub/sub endpoints refuse bad requests and stream a topic as Server-Sent Events', async () => {
    const m = pick(live)
    const post = (body: string): RequestInit => ({ method: 'POST', body })
    const cases: [string, RequestInit | undefined, number][] = [
      ['/subscribe', post('{not json'), 400],
      ['/subscribe', post('{}'), 400],
      ['/subscribe', post(JSON.stringify({ topic: 7 })), 400],
      ['/subscribe', post(JSON.stringify({ topic: 'x'.repeat(257) })), 400],
      ['/unsubscribe', post('[]'), 400],
      ['/publish', post(JSON.stringify({ topic: 'a' })), 400],
      ['/publish', post(JSON.stringify({ topic: 'a', data: 5 })), 400],
      ['/publish', post(JSON.stringify({ topic: 'a', data: 'x'.repeat(70_000) })), 413],
      ['/received', undefined, 400],
      ['/subscribe', undefined, 405],
      ['/topics', post('{}'), 405],
    ]
    for (const [path, init, status] of cases) {
      const res = await request(m, path, init)
      assert.is(
        res.status,
        status,
        `${init?.method ?? 'GET'} ${path} ${String(init?.body ?? '').slice(0, 30)}`,
      )
      assert.type((res.body as { error?: unknown }).error, 'string', 'the body is {"error": "..."}')
    }
    // One subscriber and its stream; the topic is unsubscribed afterwards.
    const topic = `sse/${SEED}`
    assert.equal(await admin(m, '/subscribe', { topic }), { topic, subscribed: true })
    assert.equal(await admin(m, '/subscribe', { topic }), { topic, subscribed: true }, 'idempotent')
    // A subscription receives what is published once it is attached.
    await eventually('the subscription to attach', 20_000, async () =>
      attached(await admin<TopicStatus[]>(m, '/topics'), topic),
    )
    const controller = new AbortController()
    const giveUp = setTimeout(() => controller.abort(), 15_000)
    try {
      const res = await fetch(`http://${m.admin}/topics/${encodeURIComponent(topic)}/events`, {
        signal: controller.signal,
      })
      assert.is(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      const from = pick(live)
      const published = await admin<{ seq: number }>(from, '/publish', { topic, data: 'streamed' })
      assert.is(published.seq, 1)
      let text = ''
      while (!text.includes('"streamed"')) {
        const { value, done } = await reader.read()
        if (done) break
        text += new TextDecoder().decode(value)
      }
      const event = text.split('\n\n').find((e) => e.includes('"streamed"')) ?? ''
      assert.match(event, /^event: message$/m)
      const record = JSON.parse(/^data: (.*)$/m.exec(event)?.[1] ?? '{}') as ReceivedEntry
      assert.equal(
        { topic: record.topic, data: record.data, publisher: record.publisher, seq: record.seq },
        { topic, data: 'streamed', publisher: from.id, seq: 1 },
      )
    } finally {
      clearTimeout(giveUp)
      controller.abort()
    }
    assert.equal(await admin(m, '/unsubscribe', { topic }), { topic, subscribed: false })
    const metrics = await fetch(`http://${m.admin}/metrics`).then((r) => r.text())
    assert.match(metrics, /^pastry_pubsub_messages_received_total\{app="pubsub"\} 1$/m)
    assert.match(metrics, /^# TYPE pastry_pubsub_children gauge$/m)
  })

  steps(`${TOPICS} topics with subscribers on random nodes: every subscription attaches`, async () => {
    for (let i = 0; i < TOPICS; i++) {
      plans.push({
        topic: `topic-${i}-${SEED}`,
        subscribers: sample(live, 4 + rng.int(3)),
        publishers: sample(live, PUBLISHERS_PER_TOPIC),
      })
    }
    await subscribeAll()
    // Four or more subscribers per topic, at most one of them its root, and two children per node.
    const all = await trees()
    assert.ok(forwarders(all).length > 0, `some tree has an interior forwarder:\n${describeTrees(all)}`)
  })

  steps('publishes from several random nodes per topic: each received once, in order, by all', async () => {
    const order = plans.flatMap((p) => Array.from({ length: STEADY_PER_TOPIC }, () => p))
    // Interleave the topics; ten requests in flight at a time.
    const shuffled = sample(order, order.length)
    for (let i = 0; i < shuffled.length; i += 10) {
      await Promise.all(shuffled.slice(i, i + 10).map((p) => publish(pick(p.publishers), p.topic)))
    }
    await allReceived('the steady-state publishes', 20_000)
  })

  steps('kill -9 of an interior forwarder and of a root while publishing: nothing lost', async () => {
    const all = await trees()
    console.log(`[trees]\n${describeTrees(all)}`)
    const interior = forwarders(all)
    assert.ok(interior.length > 0, `some tree has an interior forwarder:\n${describeTrees(all)}`)
    const roots = live.filter((m) =>
      all.get(m)?.some((t) => plans.some((p) => p.topic === t.topic) && t.root),
    )
    const pairs = interior.flatMap((f) => roots.filter((r) => r !== f).map((r) => [f, r] as const))
    assert.ok(pairs.length > 0, 'some topic has a root other than the forwarder')
    // A leaf set is repaired from its farthest live member on each side, so Pastry survives any
    // simultaneous failures but those of L/2 ring neighbours. With L = 4 the two victims die at
    // once only when they are not neighbours on the ring; otherwise the root dies once the leaf sets
    // have repaired around the forwarder.
    const sorted = live.map((m) => m.id).sort((a, b) => (BigInt(`0x${a}`) < BigInt(`0x${b}`) ? -1 : 1))
    const neighbours = (a: Member, b: Member) => {
      const d = Math.abs(sorted.indexOf(a.id) - sorted.indexOf(b.id))
      return d === 1 || d === sorted.length - 1
    }
    const apart = pairs.filter(([f, r]) => !neighbours(f, r))
    const [forwarder, root] = pick(apart.length > 0 ? apart : pairs)
    const together = apart.length > 0
    const victims = [forwarder, root]
    console.log(
      `[kill] forwarder ${forwarder.id.slice(0, 8)}, root ${root.id.slice(0, 8)}${together ? ' at once' : ', one after the other'}`,
    )

    // Publish from survivors before, across and after the kills.
    live = live.filter((m) => !victims.includes(m))
    for (const p of plans) {
      p.subscribers = p.subscribers.filter((m) => !victims.includes(m))
      const publishers = p.publishers.filter((m) => !victims.includes(m))
      p.publishers.splice(0, p.publishers.length, ...(publishers.length > 0 ? publishers : [pick(live)]))
    }
    let lastKillAt = Number.POSITIVE_INFINITY
    const killing = (async () => {
      await new Promise((r) => setTimeout(r, 500))
      try {
        if (together) await Promise.all(victims.map((v) => cluster.kill(v, 'SIGKILL')))
        else {
          await cluster.kill(forwarder, 'SIGKILL')
          const rest = [...live, root]
          await eventually('leaf sets repaired around the forwarder', 15_000, async () => {
            const all = await statuses(rest)
            const truth = trueLeafSets(all.map((s) => s.id))
            return all.every((s, i) =>
              sameSet(
                s.leafSet.map((l) => l.id),
                truth[i] ?? [],
              ),
            )
          })
          await cluster.kill(root, 'SIGKILL')
        }
      } finally {
        lastKillAt = performance.now() // also when a wait failed: the publish loop ends
      }
    })()
    killing.catch(() => {}) // awaited below; never an unhandled rejection meanwhile
    while (performance.now() < lastKillAt + CRASH_PUBLISH_MS) {
      const p = pick(plans)
      await publish(pick(p.publishers), p.topic)
      await new Promise((r) => setTimeout(r, CRASH_PUBLISH_INTERVAL_MS))
    }
    await killing
    // A subscriber finds a hole from a later message of the same publisher (or from its parent's
    // heads): one last message from every publisher of every topic makes any hole visible.
    for (const p of plans) for (const m of p.publishers) await publish(m, p.topic)
    // Repair: pubsub parent timeout (3 s) plus a resubscription and the replays; 30 s leaves room
    // for a loaded machine.
    const repairStart = performance.now()
    await allReceived('every message published around the crash', 30_000)
    const metrics = await Promise.all(
      live.map((m) => fetch(`http://${m.admin}/metrics`).then((r) => r.text())),
    )
    const total = (name: string) =>
      metrics.reduce((n, t) => n + Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(t)?.[1] ?? 0), 0)
    console.log(
      `[repair] ${sent.length} messages in all; every subscriber complete ${Math.round(performance.now() - repairStart)} ms ` +
        `after the last publish; ${total('pastry_pubsub_events_total\\{counter="publishRetries"\\}')} publish retries, ` +
        `${total('pastry_pubsub_events_total\\{counter="replayRequests"\\}')} replay requests`,
    )
    const gaps = metrics.map((t) =>
      Number(/^pastry_pubsub_gaps_total\{app="pubsub"\} (\d+)$/m.exec(t)?.[1] ?? -1),
    )
    assert.equal(
      gaps,
      gaps.map(() => 0),
      'no gap anywhere',
    )
  })

  steps('SIGTERM stops every member gracefully with exit code 0', async () => {
    const codes = await cluster.stop()
    assert.equal(
      codes,
      codes.map(() => 0),
    )
  })

  steps.run()
}
