// The UDP transport through its public API on loopback: frames both ways with the peer named by its
// HELLO, datagram sizes (one datagram when a frame fits, fragmentation of a 1 MiB frame), packing
// and acks riding in reverse traffic, the caller's mistakes, failures reported as events, IPv6,
// backpressure, connection rollover, and a clean close. Every wait is on an event or a promise.
import { setImmediate as nextTurn } from 'node:timers/promises'
import { DEFAULT_MAX_MESSAGE_BYTES, TransportError } from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createUdpTransport, UDP_TRANSPORT_DEFAULTS } from '../src/index.js'
import { bytes, numbered, numberOf, pattern, sameBytes, withHarness } from './_node.js'

function throwsCode(fn: () => unknown, code: string, what: string): void {
  try {
    fn()
  } catch (e) {
    assert.instance(e, TransportError, `${what}: threw ${String(e)}`)
    assert.is((e as TransportError).code, code, what)
    return
  }
  assert.unreachable(`${what}: did not throw`)
}

test(
  'frames go both ways, with the peer named by its HELLO: listen address and id',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node()
    a.transport.send(b.address, bytes('ping'))
    const ping = await b.frames.next('ping at b')
    assert.is(ping.text, 'ping')
    assert.is(ping.from.address, a.address)
    assert.ok(ping.from.id?.equals(a.id))
    b.transport.send(ping.from.address, bytes('pong'))
    const pong = await a.frames.next('pong at a')
    assert.is(pong.text, 'pong')
    assert.is(pong.from.address, b.address)
    assert.ok(pong.from.id?.equals(b.id))
    for (const node of [a, b]) {
      const s = node.transport.stats
      assert.is(s.handshakesStarted, 1, 'one connection each way')
      assert.is(s.connectionsOpened, 2, 'its own outbound one and the peer’s inbound one')
      assert.is(s.framesSent, 1)
      assert.is(s.framesReceived, 1)
      assert.is(s.connections, 2)
      assert.is(s.inboundConnections, 1)
    }
    assert.is(a.errors.items.length + b.errors.items.length, 0)
  }),
)

test(
  'a frame that fits goes in one datagram; one byte more is fragmented and reassembled',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node()
    a.transport.send(b.address, bytes('open'))
    await b.frames.next('open')
    // b's answer carries the ack of a's first datagram: from then on a's DATA carries no confirm.
    b.transport.send(a.address, bytes('answer'))
    await a.frames.next('answer')
    const fits = UDP_TRANSPORT_DEFAULTS.maxDatagramBytes - 18 - 3 // header, MSG frame header
    const dataSent = () => {
      const s = a.transport.stats
      return s.datagramsSent - s.acksSent - s.retransmissions
    }
    const before = dataSent()
    a.transport.send(b.address, pattern(fits, 1))
    const one = await b.frames.next('the frame that fits', (r) => r.frame.length === fits)
    assert.ok(sameBytes(one.frame, pattern(fits, 1)))
    assert.is(dataSent() - before, 1, 'one DATA datagram')
    assert.is(b.transport.stats.reassembled, 0)
    a.transport.send(b.address, pattern(fits + 1, 2))
    const two = await b.frames.next('the frame one byte larger', (r) => r.frame.length === fits + 1)
    assert.ok(sameBytes(two.frame, pattern(fits + 1, 2)))
    assert.is(b.transport.stats.reassembled, 1)
  }),
)

test(
  'a 1 MiB frame is fragmented and reassembled intact, and the reassembly memory is given back',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node()
    const max = DEFAULT_MAX_MESSAGE_BYTES
    assert.is(a.transport.maxFrameBytes, max)
    const big = pattern(max, 3)
    a.transport.send(b.address, bytes('before'))
    a.transport.send(b.address, big)
    a.transport.send(b.address, bytes('after'))
    await b.frames.count('three frames', 3)
    assert.equal(
      b.frames.items.map((r) => r.frame.length),
      [6, max, 5],
    )
    assert.ok(sameBytes(b.frames.items[1]!.frame, big), 'the 1 MiB frame arrived intact')
    const s = b.transport.stats
    assert.is(s.reassembled, 1)
    assert.is(s.reassemblies, 0)
    assert.is(s.reassemblyBytes, 0)
    assert.is(s.bufferedBytes, 0)
    const datagrams = a.transport.stats.datagramsSent
    assert.ok(
      datagrams >= Math.ceil(max / 1200),
      `at least ${Math.ceil(max / 1200)} datagrams (${datagrams})`,
    )
    assert.ok(datagrams < Math.ceil(max / 1100) * 1.5, `not many more (${datagrams})`)
    assert.is(a.errors.items.length + b.errors.items.length, 0)
  }),
)

test(
  'a smaller maxDatagramBytes is honoured by both sides: no datagram above the smaller one',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node({ maxDatagramBytes: 600 })
    const frame = pattern(50_000, 4)
    a.transport.send(b.address, frame)
    const got = await b.frames.next('the 50 kB frame')
    assert.ok(sameBytes(got.frame, frame))
    assert.is(b.transport.stats.oversizedDatagrams, 0, 'a honoured the limit b stated in its REPLY')
    assert.ok(a.transport.stats.datagramsSent >= 50_000 / 600)
  }),
)

test(
  'many small frames each way share datagrams, and acks ride in the reverse traffic',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node()
    const n = 2000
    b.frames.items.length = 0
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < n / 20; i++) {
        a.transport.send(b.address, numbered(round * (n / 20) + i, 40))
        b.transport.send(a.address, numbered(round * (n / 20) + i, 40))
      }
      await nextTurn()
    }
    await b.frames.count('frames at b', n)
    await a.frames.count('frames at a', n)
    assert.equal(
      b.frames.items.map((r) => numberOf(r.frame)),
      Array.from({ length: n }, (_, i) => i),
    )
    assert.equal(
      a.frames.items.map((r) => numberOf(r.frame)),
      Array.from({ length: n }, (_, i) => i),
    )
    const sa = a.transport.stats
    const sb = b.transport.stats
    const datagrams = sa.datagramsSent + sb.datagramsSent
    console.log(
      `  ${2 * n} frames of 40 bytes in ${datagrams} datagrams; ${sa.acksPiggybacked + sb.acksPiggybacked} acks rode in DATA, ${sa.acksSent + sb.acksSent} went alone`,
    )
    assert.ok(datagrams < n, `fewer datagrams than frames (${datagrams})`)
    assert.ok(sa.acksPiggybacked + sb.acksPiggybacked > 0, 'some acks rode in DATA')
  }),
)

test(
  'send throws for the caller’s mistakes: FRAME_TOO_LARGE, BAD_ADDRESS, NOT_LISTENING, CLOSED',
  withHarness(async (h) => {
    const t = createUdpTransport({ maxFrameBytes: 100 })
    throwsCode(() => t.send('127.0.0.1:1', bytes('x')), 'NOT_LISTENING', 'before listen')
    const a = await h.node({ maxFrameBytes: 100 })
    throwsCode(() => a.transport.send('127.0.0.1:1', new Uint8Array(101)), 'FRAME_TOO_LARGE', 'oversized')
    throwsCode(() => a.transport.send('127.0.0.1:0', bytes('x')), 'BAD_ADDRESS', 'port 0')
    throwsCode(() => a.transport.send('nope', bytes('x')), 'BAD_ADDRESS', 'no port')
    await a.transport.close()
    throwsCode(() => a.transport.send('127.0.0.1:1', bytes('x')), 'CLOSED', 'after close')
    await t.close()
    for (const bad of [
      { maxDatagramBytes: 100 },
      { windowPackets: 1 },
      { minRtoMs: 10, maxRtoMs: 5 },
      { clusterKey: '' },
    ]) {
      try {
        createUdpTransport(bad)
        assert.unreachable(`accepted ${JSON.stringify(bad)}`)
      } catch (e) {
        assert.is((e as { code?: string }).code, 'INVALID_CONFIG', JSON.stringify(bad))
      }
    }
  }),
)

test(
  'a frame above the peer’s maxFrameBytes is dropped with a FRAME_TOO_LARGE event; the others go through',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node({ maxFrameBytes: 1000 })
    a.transport.send(b.address, bytes('small'))
    a.transport.send(b.address, new Uint8Array(2000))
    a.transport.send(b.address, bytes('small again'))
    const err = await a.errors.next('FRAME_TOO_LARGE')
    assert.is(err.code, 'FRAME_TOO_LARGE')
    assert.is(err.peer, b.address)
    await b.frames.count('the two small frames', 2)
    assert.equal(
      b.frames.items.map((r) => r.text),
      ['small', 'small again'],
    )
    assert.is(a.transport.stats.framesDropped, 1)
  }),
)

test(
  'an address nobody listens on is UNREACHABLE after the HELLO retransmissions; the queue is dropped',
  withHarness(async (h) => {
    const gone = await h.node()
    const dead = gone.address
    await gone.transport.close()
    const a = await h.node({ initialRtoMs: 20, maxRetransmissions: 3 })
    a.transport.send(dead, bytes('1'))
    a.transport.send(dead, bytes('2'))
    const err = await a.errors.next('UNREACHABLE')
    assert.is(err.code, 'UNREACHABLE')
    assert.is(err.peer, dead)
    assert.match(err.message, /2 queued frame/)
    assert.match(err.message, /4 HELLO/)
    const s = a.transport.stats
    assert.is(s.framesDropped, 2)
    assert.is(s.timeouts, 1)
    assert.is(s.peers, 0, 'nothing kept for the dead address')
    assert.is(s.connections, 0)
    a.transport.send(dead, bytes('3'))
    await a.errors.count('a second UNREACHABLE', 2)
    assert.is(a.transport.stats.handshakesStarted, 2, 'the next send opened a new connection')
  }),
)

test(
  'a peer that vanishes mid-stream: CONNECTION_LOST after the retransmissions; a restarted peer resets at once',
  withHarness(async (h) => {
    const a = await h.node({ maxRetransmissions: 3, minRtoMs: 20 })
    const b = await h.node()
    a.transport.send(b.address, bytes('hello'))
    await b.frames.next('hello')
    b.transport.send(a.address, bytes('hello back')) // carries the ack of 'hello'
    await a.frames.next('hello back')
    const address = b.address
    await b.transport.close()
    a.transport.send(address, bytes('into the void'))
    const lost = await a.errors.next('CONNECTION_LOST')
    assert.is(lost.code, 'CONNECTION_LOST')
    assert.is(lost.peer, address)
    assert.match(lost.message, /1 queued frame/, lost.message)
    // A new node at the same address knows nothing of the old connection.
    const c = await h.node({}, address)
    a.transport.send(address, bytes('to c'))
    assert.is((await c.frames.next('to c')).text, 'to c')
    const d = await h.node()
    d.transport.send(c.address, bytes('opening'))
    await c.frames.next('from d', (r) => r.text === 'opening')
    await c.transport.close()
    const c2 = await h.node({}, address)
    d.transport.send(address, bytes('after the restart'))
    const reset = await d.errors.next('CONNECTION_LOST from a RESET')
    assert.match(reset.message, /no longer knows this connection/)
    assert.ok(d.transport.stats.resetsReceived >= 1)
    assert.ok(c2.transport.stats.resetsSent >= 1)
    assert.is(c2.frames.items.length, 0, 'the restarted node delivered nothing of the old connection')
    d.transport.send(address, bytes('again'))
    assert.is((await c2.frames.next('again')).text, 'again')
  }),
)

test(
  'IPv6: frames both ways between [::1] listeners',
  withHarness(async (h) => {
    const a = await h.node({}, '[::1]:0')
    const b = await h.node({}, '[::1]:0')
    assert.match(a.address, /^\[::1\]:\d+$/)
    a.transport.send(b.address, bytes('six'))
    const got = await b.frames.next('frame over IPv6')
    assert.is(got.text, 'six')
    assert.is(got.from.address, a.address)
    b.transport.send(got.from.address, bytes('back'))
    assert.is((await a.frames.next('reply over IPv6')).text, 'back')
  }),
)

test(
  'an IPv4 address from an IPv6-only socket is UNREACHABLE at once; a dual-stack [::] socket reaches it',
  withHarness(async (h) => {
    const six = await h.node({}, '[::1]:0')
    const four = await h.node()
    six.transport.send(four.address, bytes('x'))
    const err = await six.errors.next('UNREACHABLE')
    assert.match(err.message, /udp6/)
    const dual = await h.node({ advertiseAddress: '127.0.0.1:1' }, '[::]:0')
    const port = Number(dual.address.slice(dual.address.lastIndexOf(':') + 1))
    dual.transport.send(four.address, bytes('mapped'))
    const got = await four.frames.next('from the dual-stack socket')
    assert.is(got.text, 'mapped')
    assert.is(got.from.address, '127.0.0.1:1', 'the advertised address')
    four.transport.send(`127.0.0.1:${port}`, bytes('back'))
    assert.is((await dual.frames.next('back to the dual-stack socket')).text, 'back')
  }),
)

test(
  'a node can send to its own listen address',
  withHarness(async (h) => {
    const a = await h.node()
    a.transport.send(a.address, bytes('to me'))
    a.transport.send(a.address, bytes('again'))
    await a.frames.count('both frames to self', 2)
    assert.equal(
      a.frames.items.map((r) => r.text),
      ['to me', 'again'],
    )
    assert.is(a.frames.items[0]!.from.address, a.address)
  }),
)

test(
  'backpressure: past maxQueuedBytesPerPeer frames are dropped, reported once per turn with the count',
  withHarness(async (h) => {
    const silent = await h.raw()
    const a = await h.node({ maxQueuedBytesPerPeer: 1000 })
    for (let i = 0; i < 15; i++) a.transport.send(silent.address, new Uint8Array(100))
    const err = await a.errors.next('BACKPRESSURE')
    assert.is(err.code, 'BACKPRESSURE')
    assert.is(err.peer, silent.address)
    assert.match(err.message, /dropped 5 frame/)
    assert.is(a.transport.stats.framesDropped, 5)
    assert.is(a.transport.stats.queuedBytes, 1000)
  }),
)

test(
  'a connection that used up its sequence numbers is replaced by a new one, and order holds across',
  withHarness(async (h) => {
    const a = await h.node({ maxPacketsPerConnection: 16, windowPackets: 8 })
    const b = await h.node()
    const n = 300
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < n / 10; i++) a.transport.send(b.address, numbered(round * (n / 10) + i, 700))
      await nextTurn()
    }
    await b.frames.count('frames at b', n)
    assert.equal(
      b.frames.items.map((r) => numberOf(r.frame)),
      Array.from({ length: n }, (_, i) => i),
    )
    assert.ok(
      a.transport.stats.handshakesStarted >= 300 / 16,
      `${a.transport.stats.handshakesStarted} connections`,
    )
    assert.is(a.errors.items.length, 0)
  }),
)

test(
  'a handler that throws is counted, and the transport goes on',
  withHarness(async (h) => {
    const b = await h.node()
    const t = createUdpTransport()
    h.defer(() => t.close())
    let calls = 0
    let thrice: () => void = () => {}
    const done = new Promise<void>((resolve) => (thrice = resolve))
    const address = await t.listen({
      address: '127.0.0.1:0',
      localId: b.id,
      handlers: {
        message() {
          if (++calls === 3) thrice()
          throw new Error('boom')
        },
        error() {},
      },
    })
    b.transport.send(address, bytes('1'))
    b.transport.send(address, bytes('2'))
    await nextTurn()
    b.transport.send(address, bytes('3'))
    await done
    assert.is(t.stats.handlerErrors, 3)
  }),
)

test(
  'close releases the socket and every timer, resolves, is idempotent, and no handler runs afterwards',
  withHarness(async (h) => {
    const count = () =>
      process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap' || r === 'Timeout').length
    const before = count()
    const a = await h.node()
    const b = await h.node()
    const silent = await h.raw()
    a.transport.send(b.address, bytes('x'))
    a.transport.send(silent.address, bytes('never answered'))
    await b.frames.next('x')
    b.transport.send(a.address, bytes('in flight'))
    const first = a.transport.close()
    await Promise.all([first, a.transport.close(), b.transport.close()])
    await a.transport.close()
    const frames = a.frames.items.length
    const errors = a.errors.items.length + b.errors.items.length
    await h.close()
    for (let i = 0; i < 5; i++) await nextTurn()
    assert.is(a.frames.items.length, frames, 'no frame after close')
    assert.is(a.errors.items.length + b.errors.items.length, errors, 'no error after close')
    const after = count()
    assert.ok(after <= before, `resources left: ${process.getActiveResourcesInfo().join(', ')}`)
    assert.is(a.transport.stats.connections, 0)
    const never = createUdpTransport()
    await never.close()
  }),
)

test.run()
