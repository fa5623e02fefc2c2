// Hostile input against a live `pastry node`: random frames and mutated valid frames over a real,
// handshaken TCP connection; raw connections with an oversized length prefix, half-open ones, idle
// ones, and 200 that never send a byte. Throughout, the node must keep routing correctly through
// /route, and its resident memory must stay bounded. Randomness comes from the printed seed.
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { encodeMessage, type Message } from '@pastry/core'
import { createTcpTransport } from '@pastry/transport-tcp'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  admin,
  createRng,
  eventually,
  Id,
  leafSetsComplete,
  type Member,
  randomHex,
  routeAndCollect,
  SEED,
  sourceCluster,
  statuses,
} from './_cluster.js'

const rng = createRng(`fuzz-${SEED}`)
const cluster = sourceCluster()
let members: Member[] = []
let target: Member
let baselineRssMb = 0

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)
  return kb === null ? 0 : Number(kb[1]) / 1024
}

function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = rng.int(256)
  return out
}

async function assertRoutingCorrect(label: string, count = 200): Promise<void> {
  const r = await routeAndCollect(members, count, rng)
  const wrong = r.deliveredAt.filter((at, i) => !(at.length === 1 && at[0] === r.expected[i])).length
  assert.is(wrong, 0, `${label}: ${wrong} of ${count} not delivered exactly once at the closest node`)
}

/** Opens a raw TCP connection to `address` and resolves once connected. */
function rawConnect(address: string): Promise<Socket> {
  const i = address.lastIndexOf(':')
  return new Promise((resolve, reject) => {
    const s = connect(Number(address.slice(i + 1)), address.slice(0, i), () => resolve(s))
    s.on('error', reject)
  })
}

const fuzz = suite('a pastry node under hostile input')

fuzz.before(async () => {
  const first = await cluster.add(['--id', randomHex(rng)])
  await first.active
  const rest = await Promise.all(
    Array.from({ length: 3 }, () => cluster.add(['--id', randomHex(rng), '--bootstrap', first.address])),
  )
  await Promise.all(rest.map((m) => m.active))
  members = [first, ...rest]
  target = rest[0] as Member
  await eventually('leaf sets to converge', 20_000, async () => leafSetsComplete(await statuses(members)))
  await assertRoutingCorrect('before the fuzzing')
  baselineRssMb = rssMb(target.process.pid as number)
})

fuzz.after(async () => {
  await cluster.stop()
})

fuzz('random and mutated frames over a handshaken connection', async () => {
  const client = createTcpTransport()
  const errors: string[] = []
  const id = Id.fromWords(rng.u32(), rng.u32(), rng.u32(), rng.u32())
  const address = await client.listen({
    address: '127.0.0.1:0',
    localId: id,
    handlers: { message() {}, error: (e) => errors.push(e.code) },
  })
  const from = { id, address }
  const valid: Message[] = [
    { type: 'heartbeat', from },
    { type: 'probe', from, nonce: 7 },
    { type: 'ack', from, msgId: 1 },
    { type: 'leafSetRequest', from },
    {
      type: 'route',
      from,
      msgId: 9,
      key: id,
      origin: from,
      hops: 1,
      app: 'pastry.admin',
      payload: new Uint8Array(8),
    } as unknown as Message,
  ]
  try {
    for (let i = 0; i < 3_000; i++) {
      if (i % 2 === 0) {
        client.send(target.address, bytes(1 + rng.int(2048)))
      } else {
        const frame = encodeMessage(valid[rng.int(valid.length)] as Message)
        const flips = 1 + rng.int(3)
        for (let f = 0; f < flips; f++) frame[rng.int(frame.length)] = rng.int(256)
        client.send(target.address, frame)
      }
    }
    const metrics = async () => (await fetch(`http://${target.admin}/metrics`)).text()
    await eventually('the target to count the bad frames', 20_000, async () => {
      const m = /pastry_runtime_events_total\{counter="badFrames"\} (\d+)/.exec(await metrics())
      return m !== null && Number(m[1]) >= 1_000
    })
    // A flipped byte in a frame's sender id still decodes: the runtime drops it for naming another
    // node than the connection's, and its forged handle never reaches the tables.
    const s = /pastry_runtime_events_total\{counter="senderMismatches"\} (\d+)/.exec(await metrics())
    assert.ok(s !== null && Number(s[1]) >= 1, 'the runtime dropped frames naming another sender')
    await assertRoutingCorrect('after random and mutated frames')
  } finally {
    await client.close()
  }
})

/** How long the node may take to close every hostile connection (its own timeouts are seconds). */
const CLOSE_BOUND_MS = 60_000

fuzz('an oversized length prefix, half-open and idle connections, and 200 silent ones', async () => {
  const oversized = await rawConnect(target.address)
  oversized.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]))
  const halfOpen = await rawConnect(target.address)
  halfOpen.end(Buffer.from([0, 0, 0, 9, 1]))
  const silent = await Promise.all(Array.from({ length: 200 }, () => rawConnect(target.address)))
  const all = [oversized, halfOpen, ...silent]
  const closedByNode = all.map(
    (s) =>
      new Promise<void>((resolve) => {
        s.on('error', () => {})
        s.on('close', () => resolve())
        s.resume()
      }),
  )
  // The node keeps serving while they hang on.
  await assertRoutingCorrect('with 202 hostile connections open')
  // The node cuts every one of them off by its own timeouts, without help from this side. The
  // wait is bounded, so that a node that never does fails the test rather than hangs the run.
  let guard: NodeJS.Timeout | undefined
  const bounded = new Promise<'timeout'>((resolve) => {
    guard = setTimeout(() => resolve('timeout'), CLOSE_BOUND_MS)
  })
  const outcome = await Promise.race([Promise.all(closedByNode).then(() => 'closed' as const), bounded])
  clearTimeout(guard)
  if (outcome === 'timeout') {
    const open = all.filter((s) => !s.closed).length
    for (const s of all) s.destroy()
    assert.unreachable(`${open} of ${all.length} hostile connections still open after ${CLOSE_BOUND_MS} ms`)
  }
  await assertRoutingCorrect('after the node closed them')
  const status = await admin<{ state: string }>(target, '/status')
  assert.is(status.state, 'active')
})

fuzz('resident memory stays bounded', () => {
  const rss = rssMb(target.process.pid as number)
  assert.ok(rss < baselineRssMb + 150, `RSS grew from ${baselineRssMb.toFixed(0)} MB to ${rss.toFixed(0)} MB`)
  assert.ok(rss < 400, `RSS ${rss.toFixed(0)} MB`)
})

fuzz.run()
