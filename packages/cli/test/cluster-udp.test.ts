// The multi-process tests over UDP (`--transport udp`). First the cluster scenario of
// cluster.test.ts (from _scenarios.ts): ten nodes with a cluster key, routing, kill -9 and repair,
// a graceful leave, a wrong key refused. Then hostile datagrams against a live node, as
// cluster-fuzz.test.ts does for TCP: random bytes, recorded datagrams mutated, garbage frames over
// a genuine connection, stalled reassemblies, a flood of handshakes that are never confirmed, and
// oversized datagrams. Throughout, the node must keep routing correctly through /route, and its
// resident memory must stay bounded. Randomness comes from the printed seed.
import { createSocket, type Socket } from 'node:dgram'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { encodeMessage, type Message, PROTOCOL_VERSION, parseAddress } from '@pastry/core'
import { createUdpTransport } from '@pastry/transport-udp'
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
import { clusterScenario } from './_scenarios.js'

clusterScenario('UDP', ['--transport', 'udp'], 'cluster-udp')

const rng = createRng(`fuzz-udp-${SEED}`)
const cluster = sourceCluster(['--transport', 'udp'])
let members: Member[] = []
let target: Member
let baselineRssMb = 0
let raw: Socket

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)
  return kb === null ? 0 : Number(kb[1]) / 1024
}

function randomBytes(n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) out[i] = rng.int(256)
  return out
}

async function assertRoutingCorrect(label: string, count = 200): Promise<void> {
  const r = await routeAndCollect(members, count, rng)
  const wrong = r.deliveredAt.filter((at, i) => !(at.length === 1 && at[0] === r.expected[i])).length
  assert.is(wrong, 0, `${label}: ${wrong} of ${count} not delivered exactly once at the closest node`)
}

/** The target's transport counter `name`, from /metrics. */
async function transportCounter(name: string): Promise<number> {
  const text = await (await fetch(`http://${target.admin}/metrics`)).text()
  const m = new RegExp(`pastry_transport_events_total\\{counter="${name}"\\} (\\d+)`).exec(text)
  return m === null ? Number.NaN : Number(m[1])
}

/** Sends every datagram to the target, a turn of the event loop every 16 so the sends go out paced. */
async function blast(datagrams: readonly Uint8Array[]): Promise<void> {
  const { host, port } = parseAddress(target.address)
  for (let i = 0; i < datagrams.length; i++) {
    await new Promise<void>((resolve) => raw.send(datagrams[i]!, port, host, () => resolve()))
    if (i % 16 === 15) await nextTurn()
  }
}

/**
 * Sends the datagrams in batches of 250, each once the target has read most of the last: a busy
 * node on a loaded machine would otherwise leave its socket buffer to overflow (UDP drops then,
 * which is allowed, but the test wants the datagrams handled).
 */
async function blastPaced(datagrams: readonly Uint8Array[]): Promise<void> {
  for (let i = 0; i < datagrams.length; i += 250) {
    const before = await transportCounter('datagramsReceived')
    const batch = datagrams.slice(i, i + 250)
    await blast(batch)
    await eventually('the target to read the batch', 20_000, async () => {
      return (await transportCounter('datagramsReceived')) >= before + batch.length * 0.8
    })
  }
}

/** An unkeyed HELLO, as the transport's README draws it, from a connection id never confirmed. */
function hello(cid: number, address: string): Buffer {
  const addr = Buffer.from(address, 'ascii')
  const b = Buffer.alloc(56 + addr.length)
  b.writeUInt16BE(0x5044, 0)
  b.writeUInt16BE(PROTOCOL_VERSION, 2)
  b[4] = 1
  b.writeUInt32BE(0, 6)
  b.writeUInt32BE(cid, 10)
  randomBytes(16).copy(b, 14)
  randomBytes(16).copy(b, 30)
  b.writeUInt32BE(1024 * 1024, 46)
  b.writeUInt16BE(128, 50)
  b.writeUInt16BE(1200, 52)
  b.writeUInt16BE(addr.length, 54)
  addr.copy(b, 56)
  return b
}

const fuzz = suite('a pastry node over UDP under hostile datagrams')

fuzz.before(async () => {
  raw = createSocket('udp4')
  raw.on('error', () => {})
  raw.bind(0, '127.0.0.1')
  await once(raw, 'listening')
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
  await new Promise<void>((resolve) => raw.close(() => resolve()))
})

fuzz('random datagrams, mutated recorded ones, and garbage frames over a genuine connection', async () => {
  // A genuine client, whose datagrams a relay records on their way to the target.
  const relay = createSocket('udp4')
  relay.on('error', () => {})
  relay.bind(0, '127.0.0.1')
  await once(relay, 'listening')
  const recorded: Buffer[] = []
  const t = parseAddress(target.address)
  let client: { port: number; address: string } | undefined
  relay.on('message', (msg, rinfo) => {
    if (rinfo.port === t.port) {
      if (client !== undefined) relay.send(msg, client.port, client.address)
      return
    }
    client = rinfo
    recorded.push(Buffer.from(msg))
    relay.send(msg, t.port, t.host)
  })
  const relayAddress = `127.0.0.1:${relay.address().port}`
  const client1 = createUdpTransport()
  const id = Id.fromWords(rng.u32(), rng.u32(), rng.u32(), rng.u32())
  const address = await client1.listen({
    address: '127.0.0.1:0',
    localId: id,
    handlers: { message() {}, error() {} },
  })
  const from = { id, address }
  const valid: Message[] = [
    { type: 'heartbeat', from },
    { type: 'probe', from, nonce: 7 },
    { type: 'ack', from, msgId: 1 },
    { type: 'leafSetRequest', from },
  ]
  try {
    const badFramesBefore = await transportCounter('framesReceived')
    // Garbage frames in genuine datagrams: the transport delivers them, the runtime rejects them.
    for (let i = 0; i < 1_500; i++) {
      if (i % 2 === 0) {
        client1.send(relayAddress, randomBytes(1 + rng.int(2048)))
      } else {
        const frame = encodeMessage(valid[rng.int(valid.length)] as Message)
        for (let f = 0, n = 1 + rng.int(3); f < n; f++) frame[rng.int(frame.length)] = rng.int(256)
        client1.send(relayAddress, frame)
      }
      if (i % 50 === 49) await nextTurn()
    }
    await eventually('the target to receive the garbage frames', 20_000, async () => {
      return (await transportCounter('framesReceived')) >= badFramesBefore + 1_400
    })
    // Random datagrams, and recorded ones mutated.
    const datagrams: Buffer[] = []
    for (let i = 0; i < 4_000; i++) {
      const kind = rng.int(4)
      if (kind === 0) datagrams.push(randomBytes(rng.int(1300)))
      else if (kind === 3) datagrams.push(randomBytes(1201 + rng.int(4000)))
      else {
        const b = Buffer.from(recorded[rng.int(recorded.length)] as Buffer)
        if (kind === 1) for (let f = 0, n = 1 + rng.int(4); f < n; f++) b[rng.int(b.length)] = rng.int(256)
        datagrams.push(kind === 1 ? b : b.subarray(0, rng.int(b.length)))
      }
    }
    const badBefore =
      (await transportCounter('badDatagrams')) + (await transportCounter('oversizedDatagrams'))
    await blastPaced(datagrams)
    await eventually('the target to count the bad datagrams', 20_000, async () => {
      const bad = (await transportCounter('badDatagrams')) + (await transportCounter('oversizedDatagrams'))
      return bad - badBefore >= 1_200
    })
    const m = /pastry_runtime_events_total\{counter="badFrames"\} (\d+)/.exec(
      await (await fetch(`http://${target.admin}/metrics`)).text(),
    )
    assert.ok(m !== null && Number(m[1]) >= 500, 'the runtime counted the garbage frames')
    // A flipped byte in a frame's sender id still decodes: the runtime drops it for naming another
    // node than the connection's, and its forged handle never reaches the tables.
    const s = /pastry_runtime_events_total\{counter="senderMismatches"\} (\d+)/.exec(
      await (await fetch(`http://${target.admin}/metrics`)).text(),
    )
    assert.ok(s !== null && Number(s[1]) >= 1, 'the runtime dropped frames naming another sender')
    await assertRoutingCorrect('after random and mutated datagrams')
  } finally {
    await client1.close()
    await new Promise<void>((resolve) => relay.close(() => resolve()))
  }
})

/** Opens a connection from the raw socket and starts a 200 kB frame that never gets its second fragment. */
async function stalledReassembly(cid: number, rawAddress: string): Promise<void> {
  const reply = new Promise<Buffer>((resolve) => {
    const onMessage = (msg: Buffer) => {
      if (msg[4] !== 2 || msg.readUInt32BE(10) !== cid) return
      raw.off('message', onMessage)
      resolve(msg)
    }
    raw.on('message', onMessage)
  })
  await blast([hello(cid, rawAddress)])
  const r = await reply
  const frag = Buffer.alloc(11 + 1000)
  frag[0] = 3 // FRAG: total, offset, length, bytes
  frag.writeUInt32BE(200_000, 1)
  frag.writeUInt32BE(0, 5)
  frag.writeUInt16BE(1000, 9)
  const head = Buffer.alloc(18)
  head.writeUInt16BE(0x5044, 0)
  head.writeUInt16BE(PROTOCOL_VERSION, 2)
  head[4] = 3 // DATA
  head[5] = 2 // carries the confirm
  r.copy(head, 6, 14, 22) // to the node's connection id
  head.writeUInt32BE(0, 14) // seq 0
  await blast([Buffer.concat([head, r.subarray(38, 54), frag])]) // confirm: the node's nonce
}

fuzz('stalled reassemblies, 2000 handshakes never confirmed, oversized datagrams', async () => {
  const rawAddress = `127.0.0.1:${raw.address().port}`
  for (let i = 0; i < 5; i++) await stalledReassembly(900_000 + i, rawAddress)
  await eventually(
    'the stalled reassemblies to be held',
    10_000,
    async () => (await transportCounter('reassemblies')) === 5,
  )
  await blast(Array.from({ length: 2_000 }, (_, i) => hello(1 + i, rawAddress)))
  // Oversized datagrams and more HELLOs while the node serves.
  await blast(Array.from({ length: 200 }, () => randomBytes(1300 + rng.int(60_000))))
  await eventually('the pending handshakes to be bounded and counted', 20_000, async () => {
    const pending = await transportCounter('pendingHandshakes')
    return pending > 0 && pending <= 1024
  })
  await assertRoutingCorrect('with unconfirmed handshakes pending')
  // The node forgets them by its own timeout, without help from this side.
  await eventually(
    'the pending handshakes to expire',
    20_000,
    async () => (await transportCounter('pendingHandshakes')) === 0,
  )
  await assertRoutingCorrect('after they expired')
  // The node gives up the stalled reassemblies by its own timeout, and their memory with them.
  await eventually('the stalled reassemblies to time out', 20_000, async () => {
    return (
      (await transportCounter('reassemblyTimeouts')) >= 5 && (await transportCounter('reassemblyBytes')) === 0
    )
  })
  const status = await admin<{ state: string }>(target, '/status')
  assert.is(status.state, 'active')
})

fuzz('resident memory stays bounded', () => {
  const rss = rssMb(target.process.pid as number)
  assert.ok(rss < baselineRssMb + 150, `RSS grew from ${baselineRssMb.toFixed(0)} MB to ${rss.toFixed(0)} MB`)
  assert.ok(rss < 400, `RSS ${rss.toFixed(0)} MB`)
})

fuzz.run()
