// Real transports under the runtime: 16 nodes in one process over loopback, each a full Pastry node
// (createNode) on its own transport. Two figures per transport, measured in the same invocation so
// that transports compare as ratios:
//   - saturation: routed messages per second delivered, with a fixed window of messages in flight
//     per node, from random nodes to random keys;
//   - latency: p50 and p99 from `route` to `deliver` at a fixed moderate rate (2,000 messages/s).
// Run: pnpm bench transports            (options: [seconds per phase, default 5])
import { createNode, createRng, Id, type OverlayNode, type Transport } from '@pastry/core'
import { createTcpTransport } from '@pastry/transport-tcp'
import { createUdpTransport } from '@pastry/transport-udp'

const NODES = 16
const WINDOW_PER_NODE = 64
const RATE_PER_S = 2_000
const APP = 'bench'
const seconds = Number(process.argv[2] ?? 5)
const seed = process.env.PASTRY_SEED ?? 'bench-transports'

const transports: Record<string, () => Transport> = {
  tcp: () => createTcpTransport(),
  udp: () => createUdpTransport(),
}

async function cluster(make: () => Transport): Promise<OverlayNode[]> {
  const rng = createRng(seed)
  const config = { leafSetHeartbeatMs: 1_000 }
  const first = await createNode({ transport: make(), rng: rng.derive('n0'), config })
  first.start()
  const nodes = [first]
  for (let i = 1; i < NODES; i++) {
    const n = await createNode({ transport: make(), rng: rng.derive(`n${i}`), config })
    await n.join([first.address])
    nodes.push(n)
  }
  for (const n of nodes) n.register(APP)
  // Let the leaf sets settle: every node knows all the others (16 ≤ L + 1).
  await new Promise<void>((resolve) => {
    const check = () =>
      nodes.every((n) => n.machine.leafSet.size === NODES - 1) ? resolve() : setTimeout(check, 20)
    check()
  })
  return nodes
}

function keyFrom(rng: ReturnType<typeof createRng>): Id {
  return Id.fromWords(rng.u32(), rng.u32(), rng.u32(), rng.u32())
}

async function saturation(nodes: OverlayNode[]): Promise<number> {
  const rng = createRng(`${seed}-saturation`)
  const payload = new Uint8Array(64)
  let delivered = 0
  let running = true
  const inFlight = new Map<OverlayNode, number>()
  const pump = (n: OverlayNode) => {
    while (running && (inFlight.get(n) ?? 0) < WINDOW_PER_NODE) {
      inFlight.set(n, (inFlight.get(n) ?? 0) + 1)
      n.route(keyFrom(rng), APP, payload)
    }
  }
  const byAddress = new Map(nodes.map((n) => [n.address, n]))
  for (const n of nodes) {
    n.on('deliver', (d) => {
      delivered++
      const origin = byAddress.get(d.origin.address)
      if (origin === undefined) return
      inFlight.set(origin, (inFlight.get(origin) ?? 1) - 1)
      pump(origin)
    })
    n.on('routeFailed', () => {
      inFlight.set(n, (inFlight.get(n) ?? 1) - 1)
      pump(n)
    })
  }
  for (const n of nodes) pump(n)
  // Warm up for one second, then count.
  await new Promise((r) => setTimeout(r, 1_000))
  const start = delivered
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, seconds * 1_000))
  const rate = ((delivered - start) * 1_000) / (performance.now() - t0)
  running = false
  // Drain what is in flight before the next phase.
  await new Promise<void>((resolve) => {
    const check = () => ([...inFlight.values()].every((v) => v <= 0) ? resolve() : setTimeout(check, 20))
    check()
  })
  return rate
}

async function latency(nodes: OverlayNode[]): Promise<{ p50: number; p99: number; lost: number }> {
  const rng = createRng(`${seed}-latency`)
  const payload = new Uint8Array(64)
  const sentAt = new Map<string, number>()
  const samples: number[] = []
  // A key the origin owns is delivered inside `route`, before its id is known here.
  const early = new Set<string>()
  for (const n of nodes) {
    n.on('deliver', (d) => {
      const k = `${d.origin.address}/${d.msgId}`
      const t = sentAt.get(k)
      if (t === undefined) {
        early.add(k)
        return
      }
      samples.push(performance.now() - t)
      sentAt.delete(k)
    })
  }
  const total = RATE_PER_S * seconds
  let sent = 0
  const t0 = performance.now()
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * RATE_PER_S) / 1_000))
      while (sent < due) {
        const n = nodes[rng.int(nodes.length)] as OverlayNode
        const t = performance.now()
        const k = `${n.address}/${n.route(keyFrom(rng), APP, payload)}`
        if (early.delete(k)) samples.push(performance.now() - t)
        else sentAt.set(k, t)
        sent++
      }
      if (sent < total) setTimeout(tick, 1)
      else resolve()
    }
    tick()
  })
  await new Promise<void>((resolve) => {
    const deadline = performance.now() + 5_000
    const check = () =>
      sentAt.size === 0 || performance.now() > deadline ? resolve() : setTimeout(check, 20)
    check()
  })
  samples.sort((a, b) => a - b)
  const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? Number.NaN
  return { p50: q(0.5), p99: q(0.99), lost: sentAt.size }
}

const rows: Record<string, string | number>[] = []
for (const [name, make] of Object.entries(transports)) {
  const nodes = await cluster(make)
  const rate = await saturation(nodes)
  const lat = await latency(nodes)
  rows.push({
    transport: name,
    'routed msgs/s (saturation)': Math.round(rate),
    [`p50 ms @${RATE_PER_S}/s`]: Number(lat.p50.toFixed(3)),
    [`p99 ms @${RATE_PER_S}/s`]: Number(lat.p99.toFixed(3)),
    'lost @rate': lat.lost,
  })
  await Promise.all(nodes.map((n) => n.close()))
}
console.log(`${NODES} nodes in one process over loopback, ${seconds} s per phase, seed ${seed}`)
console.table(rows)
