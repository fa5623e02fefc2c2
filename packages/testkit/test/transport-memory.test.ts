// What the in-memory transport does beyond the conformance suite: seeded loss that replays, latency
// and jitter, partitions, backpressure, port assignment and double binds, what happens to frames in
// flight when a receiver closes, the counters, and that nothing keeps the event loop alive once
// every transport is closed. The seed is printed; PASTRY_SEED replays it (STYLE.md, convention 7).

import {
  ConfigError,
  createRng,
  DEFAULT_MAX_MESSAGE_BYTES,
  type Id,
  randomId,
  type Transport,
  TransportError,
} from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { MemoryNetwork, type MemoryNetworkStats } from '../src/index.js'
import { SEED } from './_seed.js'

const seed = `memory-${SEED}`
const ids = createRng(`${seed}/ids`)

interface Node {
  readonly transport: Transport
  readonly address: string
  readonly id: Id
  readonly frames: Uint8Array[]
  readonly senders: string[]
  readonly fromIds: (Id | undefined)[]
  readonly errors: TransportError[]
  /** Called after each frame is recorded. */
  onFrame?: () => void
}

async function node(
  network: MemoryNetwork,
  address = 'mem:0',
  transport = network.createTransport(),
): Promise<Node> {
  const id = randomId(ids)
  const n: Omit<Node, 'address'> & { address: string } = {
    transport,
    address: '',
    id,
    frames: [],
    senders: [],
    fromIds: [],
    errors: [],
  }
  n.address = await transport.listen({
    address,
    localId: id,
    handlers: {
      message: (frame, from) => {
        n.frames.push(frame.slice())
        n.senders.push(from.address)
        n.fromIds.push(from.id)
        n.onFrame?.()
      },
      error: (error) => {
        n.errors.push(error)
      },
    },
  })
  return n
}

function frame(i: number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setUint32(0, i)
  out[7] = i & 0xff
  return out
}

function seqOf(f: Uint8Array): number {
  return new DataView(f.buffer, f.byteOffset).getUint32(0)
}

/** Every accepted frame ends in one outcome (the invariant of MemoryNetworkStats). */
function accounted(s: MemoryNetworkStats): boolean {
  return (
    s.framesSent ===
    s.framesDelivered +
      s.lost +
      s.partitioned +
      s.unreachable +
      s.backpressure +
      s.droppedOnClose +
      s.inFlight
  )
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise
  } catch (e) {
    assert.instance(e, TransportError)
    assert.is((e as TransportError).code, code)
    return
  }
  assert.unreachable(`expected a rejection with ${code}`)
}

// ---------------------------------------------------------------------------------------------
// Seeded faults.

async function lossyRun(runSeed: string): Promise<{ arrived: number[]; stats: MemoryNetworkStats }> {
  const network = new MemoryNetwork({ loss: 0.3, rng: createRng(runSeed) })
  const a = await node(network)
  const b = await node(network)
  for (let i = 0; i < 1000; i++) a.transport.send(b.address, frame(i))
  await network.idle()
  const stats = network.stats
  await Promise.all([a.transport.close(), b.transport.close()])
  assert.equal(a.errors, [], 'loss is silent')
  return { arrived: b.frames.map(seqOf), stats }
}

test('loss is drawn from the seed: the same seed drops the same frames', async () => {
  const first = await lossyRun(`${seed}/loss`)
  const again = await lossyRun(`${seed}/loss`)
  const other = await lossyRun(`${seed}/loss-other`)
  assert.equal(again.arrived, first.arrived, 'the same seed replays the same losses')
  assert.not.equal(other.arrived, first.arrived, 'another seed loses other frames')
  const lost = 1000 - first.arrived.length
  assert.ok(lost > 200 && lost < 400, `${lost} of 1000 lost at loss 0.3`)
  assert.is(first.stats.lost, lost)
  assert.is(first.stats.framesDelivered, first.arrived.length)
  assert.ok(accounted(first.stats))
  // Survivors keep their order.
  assert.equal(
    first.arrived,
    [...first.arrived].sort((x, y) => x - y),
  )
})

test('latency delays every frame; jitter never reorders one pair', async () => {
  const network = new MemoryNetwork({ latencyMs: 30 })
  const a = await node(network)
  const b = await node(network)
  const sentAt = performance.now()
  a.transport.send(b.address, frame(1))
  let arrivedAt = 0
  b.onFrame = () => {
    arrivedAt = performance.now()
  }
  await network.idle()
  assert.is(b.frames.length, 1)
  // Timers count from the event loop's cached, whole-millisecond time, so a frame may come a
  // little before 30 ms by the wall clock (28.2 ms seen in 800 runs): well above 0 is the point.
  assert.ok(arrivedAt - sentAt >= 25, `arrived after ${arrivedAt - sentAt} ms, latency 30 ms`)

  const jittery = new MemoryNetwork({ latencyMs: 1, jitterMs: 20, rng: createRng(`${seed}/jitter`) })
  const c = await node(jittery)
  const d = await node(jittery)
  for (let i = 0; i < 300; i++) {
    c.transport.send(d.address, frame(i))
    d.transport.send(c.address, frame(i))
  }
  await jittery.idle()
  assert.equal(d.frames.map(seqOf), [...Array(300).keys()])
  assert.equal(c.frames.map(seqOf), [...Array(300).keys()])
  await Promise.all([a, b, c, d].map((n) => n.transport.close()))
})

// ---------------------------------------------------------------------------------------------
// Partitions.

test('partition blocks both ways, silently, leaves others alone, and heal lifts it', async () => {
  const network = new MemoryNetwork()
  const [a, b, c] = await Promise.all([node(network), node(network), node(network)])
  network.partition(a.address, b.address)
  assert.ok(network.isBlocked(a.address, b.address))
  assert.ok(network.isBlocked(b.address, a.address))
  a.transport.send(b.address, frame(1))
  b.transport.send(a.address, frame(2))
  a.transport.send(c.address, frame(3))
  c.transport.send(b.address, frame(4))
  await network.idle()
  assert.equal(b.frames.map(seqOf), [4])
  assert.equal(a.frames, [])
  assert.equal(c.frames.map(seqOf), [3])
  assert.equal([...a.errors, ...b.errors], [], 'a partition drops silently')
  assert.is(network.stats.partitioned, 2)

  network.heal()
  assert.not.ok(network.isBlocked(a.address, b.address))
  a.transport.send(b.address, frame(5))
  await network.idle()
  assert.equal(b.frames.map(seqOf), [4, 5])
  await Promise.all([a, b, c].map((n) => n.transport.close()))
})

test('partition: one way, groups, heal of one pair, and frames already in flight', async () => {
  const network = new MemoryNetwork({ latencyMs: 20 })
  const [a, b, c, d] = await Promise.all([node(network), node(network), node(network), node(network)])
  network.partition(a.address, b.address, { oneWay: true })
  a.transport.send(b.address, frame(1))
  b.transport.send(a.address, frame(2))
  await network.idle()
  assert.equal(b.frames, [], 'a to b is blocked')
  assert.equal(a.frames.map(seqOf), [2], 'b to a is not')
  network.heal()

  network.partition([a.address, b.address], [c.address, d.address])
  for (const x of [a, b]) for (const y of [c, d]) x.transport.send(y.address, frame(3))
  a.transport.send(b.address, frame(4))
  await network.idle()
  assert.equal([c.frames.length, d.frames.length, b.frames.length], [0, 0, 1])
  network.heal(a.address, c.address)
  assert.not.ok(network.isBlocked(c.address, a.address))
  assert.ok(network.isBlocked(b.address, c.address), 'healing one pair leaves the others cut')

  // A partition that begins while a frame is in flight drops it on arrival.
  network.heal()
  a.transport.send(d.address, frame(5))
  network.partition(a.address, d.address)
  await network.idle()
  assert.equal(d.frames, [])
  assert.ok(accounted(network.stats))
  assert.throws(
    () => network.heal(a.address),
    (e: unknown) => e instanceof ConfigError,
  )
  assert.throws(
    () => network.partition('nohost', a.address),
    (e: unknown) => e instanceof TransportError,
  )
  await Promise.all([a, b, c, d].map((n) => n.transport.close()))
})

// ---------------------------------------------------------------------------------------------
// Queues, addresses and lifecycle.

test('backpressure: a full link drops the frame with a BACKPRESSURE event, then drains', async () => {
  const network = new MemoryNetwork({ maxQueuedFrames: 4 })
  const a = await node(network)
  const b = await node(network)
  const c = await node(network)
  for (let i = 0; i < 10; i++) a.transport.send(b.address, frame(i))
  a.transport.send(c.address, frame(100)) // another link has its own queue
  await network.idle()
  assert.equal(b.frames.map(seqOf), [0, 1, 2, 3])
  assert.equal(c.frames.map(seqOf), [100])
  assert.is(a.errors.length, 6)
  for (const e of a.errors) {
    assert.is(e.code, 'BACKPRESSURE')
    assert.is(e.peer, b.address)
  }
  a.transport.send(b.address, frame(10))
  await network.idle()
  assert.equal(b.frames.map(seqOf), [0, 1, 2, 3, 10], 'the link takes frames again once drained')
  assert.is(network.stats.backpressure, 6)

  const small = network.createTransport({ maxQueuedFrames: 1, maxFrameBytes: 10 })
  assert.is(small.maxFrameBytes, 10)
  assert.is(network.createTransport().maxFrameBytes, DEFAULT_MAX_MESSAGE_BYTES)
  const s = await node(network, 'mem:0', small)
  assert.throws(
    () => small.send(b.address, new Uint8Array(11)),
    (e: unknown) => e instanceof TransportError && e.code === 'FRAME_TOO_LARGE',
  )
  small.send(b.address, frame(20))
  small.send(b.address, frame(21))
  await network.idle()
  assert.equal(
    s.errors.map((e) => e.code),
    ['BACKPRESSURE'],
  )
  await Promise.all([a, b, c, s].map((n) => n.transport.close()))
})

test('addresses: port 0 counts up per host, a held address cannot be bound twice', async () => {
  const network = new MemoryNetwork()
  const m1 = await node(network, 'mem:0')
  const m2 = await node(network, 'mem:0')
  const o1 = await node(network, 'other:0')
  const v6 = await node(network, '[::1]:0')
  assert.equal([m1.address, m2.address, o1.address, v6.address], ['mem:1', 'mem:2', 'other:1', '[::1]:1'])

  const fixed = await node(network, 'mem:4000')
  assert.is(fixed.address, 'mem:4000')
  await rejectsWith(
    network.createTransport().listen({ address: 'mem:4000', localId: fixed.id, handlers: quiet }),
    'LISTEN_FAILED',
  )
  await rejectsWith(
    network.createTransport().listen({ address: 'mem:1', localId: fixed.id, handlers: quiet }),
    'LISTEN_FAILED',
  )
  assert.is(network.stats.listening, 5)

  // A released port is free to bind by number, but port 0 does not hand it out again at once.
  await m1.transport.close()
  const m3 = await node(network, 'mem:0')
  assert.is(m3.address, 'mem:3')
  const again = await node(network, 'mem:1')
  assert.is(again.address, 'mem:1')
  // Addresses are compared in their canonical spelling.
  m2.transport.send('mem:04000', frame(7))
  await network.idle()
  assert.equal(fixed.frames.map(seqOf), [7])

  const t = network.createTransport()
  const listening = t.listen({ address: 'mem:0', localId: fixed.id, handlers: quiet })
  await rejectsWith(t.listen({ address: 'mem:0', localId: fixed.id, handlers: quiet }), 'LISTEN_FAILED')
  await listening
  await Promise.all([m2, o1, v6, fixed, m3, again].map((n) => n.transport.close()))
  await t.close()
  assert.is(network.stats.listening, 0)
})

test('close while listen is pending: listen rejects CLOSED and the address is free', async () => {
  const network = new MemoryNetwork()
  const t = network.createTransport()
  const listening = t.listen({ address: 'mem:9', localId: randomId(ids), handlers: quiet })
  await t.close()
  await rejectsWith(listening, 'CLOSED')
  const n = await node(network, 'mem:9')
  assert.is(n.address, 'mem:9')
  await n.transport.close()
})

test('frames in flight to a closing transport are dropped, with one CONNECTION_LOST per sender', async () => {
  const network = new MemoryNetwork({ latencyMs: 50 })
  const [a, b, c] = await Promise.all([node(network), node(network), node(network)])
  for (let i = 0; i < 5; i++) a.transport.send(c.address, frame(i))
  b.transport.send(c.address, frame(9))
  await c.transport.close()
  await network.idle()
  assert.equal(c.frames, [])
  for (const [sender, count] of [
    [a, 5],
    [b, 1],
  ] as const) {
    assert.is(sender.errors.length, 1)
    assert.is(sender.errors[0]!.code, 'CONNECTION_LOST')
    assert.is(sender.errors[0]!.peer, c.address)
    assert.ok(sender.errors[0]!.message.includes(`${count} frame`), sender.errors[0]!.message)
  }
  assert.is(network.stats.droppedOnClose, 6)

  // A closing sender drops its own queue quietly.
  a.transport.send(b.address, frame(1))
  await a.transport.close()
  await network.idle()
  assert.equal(b.frames, [])
  assert.is(network.stats.droppedOnClose, 7)
  assert.ok(accounted(network.stats))
  await b.transport.close()
})

test('delivery: asynchronous, a copy, with the sender address and id', async () => {
  const network = new MemoryNetwork()
  const a = await node(network)
  const b = await node(network)
  const buffer = frame(1)
  a.transport.send(b.address, buffer)
  assert.is(b.frames.length, 0, 'not delivered inside send')
  buffer.fill(0)
  a.transport.send(a.address, frame(2)) // to itself
  await network.idle()
  assert.equal(b.frames, [frame(1)])
  assert.equal(b.senders, [a.address])
  assert.ok(b.fromIds[0]?.equals(a.id), 'from.id is the sender localId')
  assert.equal(a.frames, [frame(2)])
  await Promise.all([a.transport.close(), b.transport.close()])
})

test('stats add up across every outcome', async () => {
  const network = new MemoryNetwork({ maxQueuedFrames: 2, loss: 0.5, rng: createRng(`${seed}/stats`) })
  const [a, b, c] = await Promise.all([node(network), node(network), node(network)])
  network.partition(a.address, c.address)
  for (let i = 0; i < 50; i++) {
    a.transport.send(b.address, frame(i))
    a.transport.send(c.address, frame(i))
    a.transport.send('mem:60000', frame(i))
  }
  const mid = network.stats
  assert.ok(accounted(mid))
  assert.ok(mid.inFlight > 0)
  await network.idle()
  const s = network.stats
  assert.ok(accounted(s))
  assert.is(s.framesSent, 150)
  assert.is(s.bytesSent, 150 * 8)
  assert.is(s.partitioned, 50)
  assert.is(s.unreachable, 50)
  assert.is(s.inFlight, 0)
  assert.is(s.framesDelivered, b.frames.length)
  assert.is(s.bytesDelivered, 8 * b.frames.length)
  assert.is(a.errors.length, s.unreachable + s.backpressure)
  assert.ok(a.errors.filter((e) => e.code === 'UNREACHABLE').every((e) => e.peer === 'mem:60000'))
  await Promise.all([a, b, c].map((n) => n.transport.close()))
})

test('options out of range throw ConfigError', () => {
  const bad: (() => unknown)[] = [
    () => new MemoryNetwork({ loss: 0.1 }),
    () => new MemoryNetwork({ jitterMs: 5 }),
    () => new MemoryNetwork({ loss: 1.5, rng: createRng(1) }),
    () => new MemoryNetwork({ latencyMs: -1 }),
    () => new MemoryNetwork({ maxFrameBytes: 0 }),
    () => new MemoryNetwork({ maxQueuedFrames: 1.5 }),
    () => new MemoryNetwork().createTransport({ maxQueuedFrames: 0 }),
  ]
  bad.forEach((make, i) => {
    assert.throws(make, (e: unknown) => e instanceof ConfigError, `option set ${i}`)
  })
})

test('nothing keeps the event loop alive once every transport is closed', async () => {
  const count = (kind: string) => process.getActiveResourcesInfo().filter((r) => r === kind).length
  const timeouts = count('Timeout')
  const immediates = count('Immediate')
  const network = new MemoryNetwork({ latencyMs: 60_000 })
  const [a, b] = await Promise.all([node(network), node(network)])
  a.transport.send(b.address, frame(1))
  b.transport.send(a.address, frame(2))
  a.transport.send('mem:50000', frame(3)) // an UNREACHABLE event pending
  assert.ok(count('Timeout') > timeouts, 'frames in flight hold a timer')
  await b.transport.close()
  await a.transport.close()
  assert.ok(count('Timeout') <= timeouts, 'no timer left behind')
  assert.ok(count('Immediate') <= immediates, 'no immediate left behind')
  assert.is(network.stats.inFlight, 0)
  await network.idle()
})

const quiet = { message: () => {}, error: () => {} }

test.run()
