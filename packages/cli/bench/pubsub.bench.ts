// Pub/sub over a real transport: 16 nodes in one process over loopback TCP, each a full Pastry node
// (createNode) with `@pastry/pubsub` on it (createPubSub), and one topic every node subscribes to.
// Two figures, measured in the same invocation:
//   - latency: publish-to-deliver p50, p99 and max over every delivery at every subscriber, with
//     publishes from random nodes at a fixed rate (1,000 per second);
//   - saturation: the most publishes per second that reach every subscriber, from random nodes,
//     with a fixed window of publishes not yet delivered everywhere.
// Every delivery is checked: each message once at each subscriber, and no gap.
// Run: pnpm bench pubsub            (options: [seconds per phase, default 5])
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createNode, createRng, type OverlayNode, type Rng } from '@pastry/core'
import { createPubSub, type PubSub } from '@pastry/pubsub'
import { createTcpTransport } from '@pastry/transport-tcp'

const NODES = 16
const TOPIC = 'bench'
const RATE_PER_S = 1_000
const WINDOW = 256
const DATA_BYTES = 64
const seconds = Number(process.argv[2] ?? 5)
const seed = process.env.PASTRY_SEED ?? 'bench-pubsub'

interface Member {
  readonly node: OverlayNode
  readonly pubsub: PubSub
}

async function cluster(): Promise<Member[]> {
  const rng = createRng(seed)
  const config = { leafSetHeartbeatMs: 1_000 }
  const members: Member[] = []
  for (let i = 0; i < NODES; i++) {
    const node = await createNode({ transport: createTcpTransport(), rng: rng.derive(`n${i}`), config })
    const pubsub = createPubSub(node)
    if (i === 0) node.start()
    else await node.join([(members[0] as Member).node.address])
    members.push({ node, pubsub })
  }
  await until(() => members.every((m) => m.node.machine.leafSet.size === NODES - 1), 'leaf sets')
  return members
}

function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) resolve()
      else if (performance.now() > deadline) reject(new Error(`timed out waiting for ${what}`))
      else setTimeout(check, 10)
    }
    check()
  })
}

/** Per message index: when it was published, and how many subscribers have it. */
class Ledger {
  readonly sentAt: number[] = []
  readonly received: number[] = []
  readonly samples: number[] = []
  duplicates = 0
  gaps = 0
  /** Messages delivered at every subscriber. */
  complete = 0
  onComplete: () => void = () => {}
  measure = true

  delivered(index: number): void {
    const at = this.sentAt[index]
    if (at === undefined) return
    const n = (this.received[index] ?? 0) + 1
    this.received[index] = n
    if (n > NODES) this.duplicates++
    if (this.measure) this.samples.push(performance.now() - at)
    if (n === NODES) {
      this.complete++
      this.onComplete()
    }
  }
}

function publish(members: readonly Member[], ledger: Ledger, rng: ReturnType<typeof createRng>): void {
  const index = ledger.sentAt.length
  const data = new Uint8Array(DATA_BYTES)
  new DataView(data.buffer).setUint32(0, index)
  ledger.sentAt.push(performance.now())
  const m = members[rng.int(members.length)] as Member
  m.pubsub.publish(TOPIC, data).catch((e: unknown) => console.error(`publish ${index} failed: ${String(e)}`))
}

async function atRate(members: readonly Member[], ledger: Ledger, rng: Rng, ms: number): Promise<void> {
  const total = Math.round((RATE_PER_S * ms) / 1_000)
  const first = ledger.sentAt.length
  const t0 = performance.now()
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * RATE_PER_S) / 1_000))
      while (ledger.sentAt.length - first < due) publish(members, ledger, rng)
      if (ledger.sentAt.length - first < total) setTimeout(tick, 1)
      else resolve()
    }
    tick()
  })
  await until(() => ledger.complete === ledger.sentAt.length, 'the publishes to drain', 10_000).catch(
    () => {},
  )
}

/** One second at the rate unmeasured (connections, JIT, the publishers' cached roots), then `seconds`. */
async function latency(members: readonly Member[], ledger: Ledger): Promise<number> {
  const rng = createRng(`${seed}-latency`)
  ledger.measure = false
  await atRate(members, ledger, rng, 1_000)
  ledger.measure = true
  const first = ledger.sentAt.length
  loopDelay.enable()
  await atRate(members, ledger, rng, seconds * 1_000)
  loopDelay.disable()
  return ledger.sentAt.length - first
}

async function saturation(members: readonly Member[], ledger: Ledger): Promise<number> {
  const rng = createRng(`${seed}-saturation`)
  ledger.measure = false
  let running = true
  const refill = () => {
    while (running && ledger.sentAt.length - ledger.complete < WINDOW) publish(members, ledger, rng)
  }
  ledger.onComplete = refill
  refill()
  await new Promise((r) => setTimeout(r, 1_000)) // warm up
  const start = ledger.complete
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, seconds * 1_000))
  const rate = ((ledger.complete - start) * 1_000) / (performance.now() - t0)
  running = false
  await until(() => ledger.complete === ledger.sentAt.length, 'the saturation phase to drain', 10_000).catch(
    () => {},
  )
  return rate
}

/** How late the event loop ran during the measured latency phase: stalls show up in every delivery. */
const loopDelay = monitorEventLoopDelay({ resolution: 1 })
const members = await cluster()
const ledger = new Ledger()
for (const m of members) {
  m.pubsub.subscribe(TOPIC, (d) => {
    if (d.type === 'gap') ledger.gaps += d.toSeq - d.fromSeq + 1
    else ledger.delivered(new DataView(d.data.buffer, d.data.byteOffset).getUint32(0))
  })
}
await until(
  () =>
    members.every((m) => m.pubsub.machine.isRoot(TOPIC) || m.pubsub.machine.parentOf(TOPIC) !== undefined),
  'every subscription to attach',
)
const parents = members.filter((m) => m.pubsub.machine.childrenOf(TOPIC).length > 0).length

const latencySent = await latency(members, ledger)
const beforeSaturation = ledger.sentAt.length
const latencyLost = beforeSaturation * NODES - ledger.received.reduce((a, b) => a + Math.min(b, NODES), 0)
const samples = [...ledger.samples].sort((a, b) => a - b)
const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? Number.NaN
const rate = await saturation(members, ledger)
const lost = ledger.sentAt.length * NODES - ledger.received.reduce((a, b) => a + Math.min(b, NODES), 0)

console.log(
  `${NODES} nodes in one process over loopback TCP, one topic with ${NODES} subscribers (${parents} of them with children), ` +
    `${DATA_BYTES}-byte messages, ${seconds} s per phase, seed ${seed}`,
)
console.table([
  {
    phase: `latency @${RATE_PER_S}/s`,
    publishes: latencySent,
    deliveries: samples.length,
    'p50 ms': Number(q(0.5).toFixed(3)),
    'p99 ms': Number(q(0.99).toFixed(3)),
    'max ms': Number((samples[samples.length - 1] ?? Number.NaN).toFixed(3)),
    'publishes/s': RATE_PER_S,
    'deliveries/s': RATE_PER_S * NODES,
    lost: latencyLost,
  },
  {
    phase: `saturation (window ${WINDOW})`,
    publishes: ledger.sentAt.length - beforeSaturation,
    deliveries: '',
    'p50 ms': '',
    'p99 ms': '',
    'max ms': '',
    'publishes/s': Math.round(rate),
    'deliveries/s': Math.round(rate * NODES),
    lost: lost - latencyLost,
  },
])
console.log(
  `duplicates ${ledger.duplicates}, gaps ${ledger.gaps}; event-loop delay during the latency phase: ` +
    `p50 ${(loopDelay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, ` +
    `max ${(loopDelay.max / 1e6).toFixed(1)} ms`,
)
await Promise.all(members.map((m) => m.node.close()))
if (ledger.duplicates > 0 || ledger.gaps > 0 || lost > 0) process.exitCode = 1
