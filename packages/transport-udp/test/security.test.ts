// The cluster key and hostile input: keys (right, wrong, missing), protocol version mismatch,
// tampered datagrams, replays of recorded traffic (within a run, and into a new run of the node at
// the same address), and random datagrams. Recording, tampering and replaying go through a relay
// (a raw dgram socket in front of the node). A relay sends everything from one socket, and the
// node reads its socket in order, so a frame forwarded after a replay is a barrier: once it is
// delivered, the replay before it has been handled.
import { PROTOCOL_VERSION } from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { bytes, freshId, type Harness, numbered, numberOf, type TestNode, withHarness } from './_node.js'
import { rngFor } from './_seed.js'
import { DATA, HELLO, hello, REFUSE, refuse, typeOf } from './_wire.js'

async function refusedBothWays(a: TestNode, b: TestNode, pattern: RegExp): Promise<void> {
  a.transport.send(b.address, bytes('let me in'))
  const atA = await a.errors.next('HANDSHAKE_FAILED at the sender')
  const atB = await b.errors.next('HANDSHAKE_FAILED at the receiver')
  assert.is(atA.code, 'HANDSHAKE_FAILED')
  assert.is(atB.code, 'HANDSHAKE_FAILED')
  assert.match(atA.message, pattern)
  assert.match(atB.message, pattern)
  assert.is(atA.peer, b.address)
  assert.is(atB.peer, a.address)
  assert.match(atA.message, /1 queued frame/)
  assert.is(b.frames.items.length, 0, 'no frame got through')
  assert.ok(a.transport.stats.handshakeFailures >= 1 && b.transport.stats.handshakeFailures >= 1)
  assert.is(b.transport.stats.inboundConnections, 0)
}

test(
  'the same cluster key (string or bytes) opens connections both ways',
  withHarness(async (h) => {
    const a = await h.node({ clusterKey: 'correct horse battery staple' })
    const b = await h.node({ clusterKey: new TextEncoder().encode('correct horse battery staple') })
    a.transport.send(b.address, bytes('hi'))
    const got = await b.frames.next('hi')
    b.transport.send(got.from.address, bytes('hi back'))
    assert.is((await a.frames.next('hi back')).text, 'hi back')
    assert.is(a.errors.items.length + b.errors.items.length, 0)
    assert.is(a.transport.stats.unauthenticated + b.transport.stats.unauthenticated, 0)
  }),
)

test(
  'a wrong cluster key is refused, and both sides see HANDSHAKE_FAILED',
  withHarness(async (h) => {
    const a = await h.node({ clusterKey: 'key one' })
    const b = await h.node({ clusterKey: 'key two' })
    await refusedBothWays(a, b, /cluster-key/)
    const c = await h.node({ clusterKey: 'key two' })
    const d = await h.node({ clusterKey: 'key one' })
    await refusedBothWays(c, d, /cluster-key/)
  }),
)

test(
  'a keyed node and an unkeyed one refuse each other, clearly, whichever sends',
  withHarness(async (h) => {
    const keyed = await h.node({ clusterKey: 'secret' })
    const open = await h.node()
    await refusedBothWays(open, keyed, /(requires a cluster key, and this node has none|has no cluster key)/)
    assert.match(open.errors.items[0]!.message, /requires a cluster key, and this node has none/)
    assert.match(keyed.errors.items[0]!.message, /has no cluster key, and this node requires one/)
    const keyed2 = await h.node({ clusterKey: 'secret' })
    const open2 = await h.node()
    await refusedBothWays(
      keyed2,
      open2,
      /(requires a cluster key, and this node has none|has no cluster key)/,
    )
    assert.match(keyed2.errors.items[0]!.message, /has no cluster key, and this node requires one/)
  }),
)

test(
  'another protocol version is refused with HANDSHAKE_FAILED naming both versions, either way',
  withHarness(async (h) => {
    const b = await h.node()
    const raw = await h.raw()
    const other = PROTOCOL_VERSION + 1
    await raw.send(
      b.address,
      hello({ srcCid: 77, nonce: Buffer.alloc(16), id: freshId(), address: raw.address, version: other }),
    )
    const err = await b.errors.next('HANDSHAKE_FAILED at the node')
    assert.is(err.code, 'HANDSHAKE_FAILED')
    assert.match(err.message, new RegExp(`version ${other}, this node speaks ${PROTOCOL_VERSION}`))
    const refusal = await raw.received.next('a REFUSE', (d) => typeOf(d) === REFUSE)
    assert.is(refusal.msg[14], 1, 'reason: version')
    assert.is(b.transport.stats.versionMismatches, 1)
    // The other way: a peer answers our HELLO with a REFUSE in its own version.
    const a = await h.node()
    a.transport.send(raw.address, bytes('x'))
    const ourHello = await raw.received.next('our HELLO', (d) => typeOf(d) === HELLO)
    await raw.send(a.address, refuse(Number(ourHello.msg.readBigUInt64BE(6)), 1, 99))
    const atA = await a.errors.next('HANDSHAKE_FAILED at the sender')
    assert.match(atA.message, new RegExp(`version 99, this node speaks ${PROTOCOL_VERSION}`))
  }),
)

test(
  'tampered datagrams fail their tag and are dropped; the untouched retransmissions get through, in order',
  withHarness(async (h) => {
    const a = await h.node({ clusterKey: 'k' })
    const b = await h.node({ clusterKey: 'k' })
    const relay = await h.relay(b.address)
    let tampered = 0
    relay.mutate = (msg) => {
      if (msg[4] === DATA && tampered < 5) {
        tampered++
        msg[msg.length - 20]! ^= 0x40
      }
      return msg
    }
    for (let i = 0; i < 20; i++) a.transport.send(relay.address, numbered(i, 30))
    await b.frames.count('20 frames', 20)
    assert.equal(
      b.frames.items.map((r) => numberOf(r.frame)),
      Array.from({ length: 20 }, (_, i) => i),
    )
    assert.is(b.transport.stats.unauthenticated, tampered)
    assert.is(a.errors.items.length + b.errors.items.length, 0)
  }),
)

/** Sends `frame` from `a` through the relay and waits for it at `b`: every datagram the relay sent before it has been handled. */
async function barrier(a: TestNode, relayAddress: string, b: TestNode, n: number): Promise<void> {
  a.transport.send(relayAddress, numbered(n, 8))
  await b.frames.next(`barrier ${n}`, (r) => numberOf(r.frame) === n)
}

for (const key of ['cluster key', undefined] as const) {
  test(
    `replayed datagrams are rejected: within the run, and in a new run of the node at the same address${key === undefined ? ' (unkeyed)' : ''}`,
    withHarness(async (h: Harness) => {
      const options = key === undefined ? {} : { clusterKey: key }
      const a = await h.node(options)
      let b = await h.node(options)
      const address = b.address
      const relay = await h.relay(address)
      for (let i = 0; i < 30; i++) a.transport.send(relay.address, numbered(i, 50 + i * 40))
      a.transport.send(relay.address, numbered(1000, 3000)) // fragmented
      await b.frames.count('31 frames', 31)
      const recorded = [...relay.captured]
      const dataCount = recorded.filter((d) => d[4] === DATA).length
      assert.ok(dataCount >= 3 && recorded.some((d) => d[4] === HELLO))

      // 1. The same run: every datagram again, twice, in order and shuffled.
      const rng = rngFor(`replay-${key}`)
      const shuffled = [...recorded].sort(() => rng.float() - 0.5)
      await relay.sendAll(address, [...recorded, ...shuffled])
      await barrier(a, relay.address, b, 2000)
      assert.is(b.frames.items.length, 32, 'nothing delivered twice')
      assert.ok(
        b.transport.stats.duplicatesDropped >= 2 * dataCount,
        `${b.transport.stats.duplicatesDropped} duplicates`,
      )
      assert.is(b.transport.stats.inboundConnections, 1, 'the replayed HELLO opened nothing')
      assert.is(b.transport.stats.pendingHandshakes, 0)

      // 2. A new run of the node at the same address (same key): the recording means nothing to it.
      await b.transport.close()
      b = await h.node(options, address)
      await relay.sendAll(address, [...recorded, ...shuffled])
      const c = await h.node(options) // a fresh sender, through the relay
      await barrier(c, relay.address, b, 3000)
      assert.equal(
        b.frames.items.map((r) => numberOf(r.frame)),
        [3000],
        'only the fresh frame: no recorded frame was delivered',
      )
      const s = b.transport.stats
      assert.ok(
        s.unknownConnection >= 2 * dataCount,
        `${s.unknownConnection} datagrams for unknown connections`,
      )
      assert.is(s.inboundConnections, 1, 'only the fresh sender’s connection')
      assert.ok(s.pendingHandshakes <= 1, 'the replayed HELLO was answered, and will expire unconfirmed')
      assert.is(s.handlerErrors, 0)
    }),
  )
}

test(
  'a flood of HELLOs that are never confirmed: pending handshakes stay within maxPendingHandshakes; genuine peers are served',
  withHarness(async (h) => {
    const b = await h.node({ maxPendingHandshakes: 10, handshakeTimeoutMs: 100 })
    const raw = await h.raw()
    const hellos = Array.from({ length: 50 }, (_, i) =>
      hello({ srcCid: 10_000 + i, nonce: Buffer.alloc(16, i), id: freshId(), address: raw.address }),
    )
    await raw.sendAll(b.address, hellos)
    await raw.received.count('a REPLY to each HELLO', 50, (d) => typeOf(d) === 2)
    assert.ok(b.transport.stats.pendingHandshakes <= 10, `${b.transport.stats.pendingHandshakes} pending`)
    // Genuine peers are still served.
    const a = await h.node()
    a.transport.send(b.address, bytes('through the flood'))
    await b.frames.next('a frame through the flood')
    const c = await h.node()
    c.transport.send(b.address, bytes('later'))
    await b.frames.next('later', (r) => r.text === 'later')
    assert.is(b.transport.stats.inboundConnections, 2)
  }),
)

test(
  'maxConnections: a HELLO beyond it is refused, and the sender sees UNREACHABLE at once',
  withHarness(async (h) => {
    const b = await h.node({ maxConnections: 1 })
    const a = await h.node()
    const c = await h.node()
    a.transport.send(b.address, bytes('first'))
    await b.frames.next('first')
    c.transport.send(b.address, bytes('second'))
    const err = await c.errors.next('UNREACHABLE')
    assert.is(err.code, 'UNREACHABLE')
    assert.match(err.message, /holds all the connections it may/)
    assert.is(b.transport.stats.connectionsRefused, 1)
    assert.is(c.transport.stats.timeouts, 0, 'told at once, not after the retransmissions')
  }),
)

function fuzzDatagrams(seedLabel: string, samples: readonly Buffer[], count: number): Buffer[] {
  const rng = rngFor(seedLabel)
  const out: Buffer[] = []
  const randomBytes = (n: number) => {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = rng.int(256)
    return b
  }
  for (let i = 0; i < count; i++) {
    const kind = rng.int(5)
    if (kind === 0) {
      out.push(randomBytes(rng.int(1300)))
    } else if (kind === 1) {
      // Our magic and version, a random type and flags, random rest.
      const b = randomBytes(6 + rng.int(600))
      b.writeUInt16BE(0x5044, 0)
      b.writeUInt16BE(PROTOCOL_VERSION, 2)
      b[4] = 1 + rng.int(7)
      b[5] = rng.int(4)
      out.push(b)
    } else if (kind === 2 && samples.length > 0) {
      // A recorded datagram with a few bytes flipped.
      const b = Buffer.from(samples[rng.int(samples.length)]!)
      for (let f = 0, n = 1 + rng.int(3); f < n; f++) b[rng.int(b.length)] = rng.int(256)
      out.push(b)
    } else if (kind === 3 && samples.length > 0) {
      // A recorded datagram cut short or extended.
      const b = samples[rng.int(samples.length)]!
      out.push(
        rng.int(2) === 0
          ? b.subarray(0, rng.int(b.length))
          : Buffer.concat([b, randomBytes(1 + rng.int(64))]),
      )
    } else {
      out.push(randomBytes(1201 + rng.int(3000))) // above maxDatagramBytes
    }
  }
  return out
}

test(
  'random datagrams (with a cluster key): all dropped and counted; the stream through them is intact',
  withHarness(async (h) => {
    const a = await h.node({ clusterKey: 'fuzz' })
    const b = await h.node({ clusterKey: 'fuzz' })
    const relay = await h.relay(b.address)
    for (let i = 0; i < 50; i++) a.transport.send(relay.address, numbered(i, 20 + i * 30))
    await b.frames.count('50 frames', 50)
    const fuzz = fuzzDatagrams('fuzz-keyed', relay.captured, 3000)
    for (let i = 0; i < fuzz.length; i += 50) {
      a.transport.send(relay.address, numbered(50 + i / 50, 40))
      await relay.sendAll(b.address, fuzz.slice(i, i + 50))
    }
    await barrier(a, relay.address, b, 500)
    assert.equal(
      b.frames.items.map((r) => numberOf(r.frame)),
      [...Array.from({ length: 50 + 60 }, (_, i) => i), 500],
      'every genuine frame once, in order, and nothing else',
    )
    const s = b.transport.stats
    const dropped = s.badDatagrams + s.unauthenticated + s.oversizedDatagrams
    console.log(
      `  fuzzed with ${fuzz.length}: bad ${s.badDatagrams}, unauthenticated ${s.unauthenticated}, oversized ${s.oversizedDatagrams}, handshake failures ${s.handshakeFailures}, versions ${s.versionMismatches}`,
    )
    assert.ok(dropped >= fuzz.length * 0.9, `${dropped} of ${fuzz.length} counted as dropped`)
    assert.is(s.handlerErrors, 0)
    assert.is(s.inboundConnections, 1)
    assert.is(s.pendingHandshakes, 0)
    assert.is(s.bufferedBytes, 0)
    assert.is(s.reassemblyBytes, 0)
    assert.is(a.errors.items.length, 0)
  }),
)

test(
  'random datagrams (unkeyed): the node never throws, counts them, and keeps serving',
  withHarness(async (h) => {
    const b = await h.node({ reassemblyTimeoutMs: 500 })
    const raw = await h.raw()
    const a = await h.node()
    const relay = await h.relay(b.address)
    for (let i = 0; i < 20; i++) a.transport.send(relay.address, numbered(i, 20 + i * 30))
    await b.frames.count('20 frames', 20)
    const fuzz = fuzzDatagrams('fuzz-unkeyed', relay.captured, 3000)
    await raw.sendAll(b.address, fuzz)
    // Unkeyed, a mutated datagram may pass for a genuine one and break a's connection; either way a
    // fresh sender is served.
    const c = await h.node()
    c.transport.send(b.address, bytes('still here'))
    await b.frames.next('a frame from a fresh sender', (r) => r.text === 'still here')
    const s = b.transport.stats
    assert.ok(s.badDatagrams + s.oversizedDatagrams + s.unknownConnection > 1000, 'counted')
    assert.is(s.handlerErrors, 0)
    assert.ok(s.pendingHandshakes <= 1024)
    assert.ok(s.bufferedBytes <= 16 * 1024 * 1024)
  }),
)

test.run()
