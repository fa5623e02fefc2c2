// The TCP transport through its public API on loopback: frames both ways on one connection,
// connection reuse and simultaneous dials, the caller's mistakes, failures reported as events
// (unreachable, broken, idle), IPv6, backpressure, and a clean close. Every wait is on an event or
// a promise; short timeouts come from the transport's options.
import { setImmediate as nextTurn } from 'node:timers/promises'
import { DEFAULT_MAX_MESSAGE_BYTES, TransportError } from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createTcpTransport, TCP_TRANSPORT_DEFAULTS } from '../src/index.js'
import { bytes, closedOf, framed, freshId, withHarness } from './_node.js'
import { rawAccept, rawHandshake } from './_wire.js'

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
  'frames go both ways on one connection, with the peer named by its handshake',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node()
    a.transport.send(b.address, bytes('ping'))
    const ping = await b.frames.next('ping at b')
    assert.is(ping.text, 'ping')
    assert.is(ping.from.address, a.address, 'the listen address from the handshake, not the ephemeral port')
    assert.ok(ping.from.id?.equals(a.id), 'the id from the handshake')
    b.transport.send(ping.from.address, bytes('pong'))
    const pong = await a.frames.next('pong at a')
    assert.is(pong.text, 'pong')
    assert.is(pong.from.address, b.address)
    assert.ok(pong.from.id?.equals(b.id))
    for (const [node, dialed, accepted] of [
      [a, 1, 0],
      [b, 0, 1],
    ] as const) {
      const s = node.transport.stats
      assert.is(s.connectionsOpened, 1, 'one connection carried both directions')
      assert.is(s.connectionsDialed, dialed)
      assert.is(s.connectionsAccepted, accepted)
      assert.is(s.connections, 1)
      assert.is(s.framesSent, 1)
      assert.is(s.framesReceived, 1)
      assert.ok(s.bytesSent > 8 && s.bytesReceived > 8)
    }
    assert.is(a.errors.items.length + b.errors.items.length, 0)
  }),
)

test(
  'a connection is reused: many frames each way, in order, over one connection',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node()
    const n = 500
    for (let i = 0; i < n; i++) a.transport.send(b.address, bytes(`a${i}`))
    await b.frames.count('frames at b', n)
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < n; i++) b.transport.send(a.address, bytes(`b${round * n + i}`))
      await nextTurn()
    }
    await a.frames.count('frames at a', 5 * n)
    assert.equal(
      b.frames.items.map((r) => r.text),
      Array.from({ length: n }, (_, i) => `a${i}`),
    )
    assert.equal(
      a.frames.items.map((r) => r.text),
      Array.from({ length: 5 * n }, (_, i) => `b${i}`),
    )
    assert.is(a.transport.stats.connectionsOpened, 1)
    assert.is(b.transport.stats.connectionsOpened, 1)
    assert.is(a.transport.stats.connectionsDialed + b.transport.stats.connectionsDialed, 1)
  }),
)

for (const keyed of [false, true]) {
  test(
    `simultaneous dials lose no frame and keep order${keyed ? ' (with a cluster key)' : ''}`,
    withHarness(async (h) => {
      const options = keyed ? { clusterKey: 'k' } : {}
      const a = await h.node(options)
      const b = await h.node(options)
      const n = 200
      // Both sides dial in the same turn, then keep sending while both connections come up.
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < n; i++) {
          a.transport.send(b.address, bytes(`a${round * n + i}`))
          b.transport.send(a.address, bytes(`b${round * n + i}`))
        }
        await nextTurn()
      }
      await b.frames.count('frames at b', 4 * n)
      await a.frames.count('frames at a', 4 * n)
      assert.is(a.transport.stats.connectionsDialed, 1, 'a dialled')
      assert.is(b.transport.stats.connectionsDialed, 1, 'b dialled too')
      assert.equal(
        b.frames.items.map((r) => r.text),
        Array.from({ length: 4 * n }, (_, i) => `a${i}`),
        'in order, none lost',
      )
      assert.equal(
        a.frames.items.map((r) => r.text),
        Array.from({ length: 4 * n }, (_, i) => `b${i}`),
      )
      assert.ok(
        a.transport.stats.connections <= 2 && b.transport.stats.connections <= 2,
        'at most two sockets',
      )
      assert.is(a.errors.items.length + b.errors.items.length, 0, 'no error events')
    }),
  )
}

test(
  'when the connection in use goes, its spare from a simultaneous dial takes over without a new dial',
  withHarness(async (h) => {
    const a = await h.node()
    const peerId = freshId()
    const raw = await h.rawServer()
    // a dials the raw peer, and the raw peer dials a too, claiming its listen address.
    a.transport.send(raw.address, bytes('over the dial'))
    const dialled = await raw.sockets.next('a dial')
    const onDial = await rawAccept(dialled, peerId, raw.address)
    assert.is((await onDial.frame()).toString(), 'over the dial')
    const inbound = await h.rawClient(a.address)
    const fromA = await rawHandshake(inbound, peerId, raw.address)
    inbound.write(framed(bytes('over the spare')))
    const got = await a.frames.next('a frame on the spare')
    assert.is(got.from.address, raw.address)
    assert.is(a.transport.stats.connections, 2)
    a.transport.send(raw.address, bytes('still over the dial'))
    assert.is((await onDial.frame()).toString(), 'still over the dial', 'sends stay where they were')
    dialled.end() // the connection in use goes away gracefully
    await closedOf(dialled) // closed once a has answered the FIN, so a has seen it go
    a.transport.send(raw.address, bytes('over the spare now'))
    assert.is((await fromA.frame()).toString(), 'over the spare now')
    assert.is(a.transport.stats.connectionsDialed, 1, 'no new dial')
    assert.is(a.errors.items.length, 0)
  }),
)

test(
  'a frame of exactly maxFrameBytes is delivered; one byte more is refused by send',
  withHarness(async (h) => {
    const a = await h.node({ maxFrameBytes: 300_000 })
    const b = await h.node({ maxFrameBytes: 300_000 })
    const big = new Uint8Array(300_000)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff
    a.transport.send(b.address, big)
    big.fill(0) // the transport copied it: the caller may reuse the buffer
    const got = await b.frames.next('the big frame')
    assert.is(got.frame.length, 300_000)
    assert.ok(got.frame.every((v, i) => v === ((i * 7) & 0xff)))
    throwsCode(
      () => a.transport.send(b.address, new Uint8Array(300_001)),
      'FRAME_TOO_LARGE',
      'oversized send',
    )
    a.transport.send(b.address, new Uint8Array(0))
    const empty = await b.frames.next('the empty frame', (r) => r.frame.length === 0)
    assert.is(empty.frame.length, 0)
  }),
)

test(
  "a frame above the peer's smaller maxFrameBytes is dropped by the sender with FRAME_TOO_LARGE",
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node({ maxFrameBytes: 1000 })
    a.transport.send(b.address, bytes('hello'))
    await b.frames.next('hello')
    a.transport.send(b.address, new Uint8Array(1001))
    a.transport.send(b.address, bytes('after'))
    const err = await a.errors.next('FRAME_TOO_LARGE at a')
    assert.is(err.code, 'FRAME_TOO_LARGE')
    assert.is(err.peer, b.address)
    assert.is((await b.frames.next('after', (r) => r.text === 'after')).text, 'after')
    assert.is(b.errors.items.length, 0, 'b never saw the oversized frame')
    assert.is(a.transport.stats.framesDropped, 1)
  }),
)

test(
  "the caller's mistakes throw synchronously: NOT_LISTENING, BAD_ADDRESS, CLOSED",
  withHarness(async (h) => {
    const t = createTcpTransport()
    throwsCode(() => t.send('127.0.0.1:9', bytes('x')), 'NOT_LISTENING', 'send before listen')
    await t.close()
    throwsCode(() => t.send('127.0.0.1:9', bytes('x')), 'CLOSED', 'send after close')
    await t.close() // idempotent
    try {
      await t.listen({ address: '127.0.0.1:0', localId: freshId(), handlers: { message() {}, error() {} } })
      assert.unreachable('listen after close')
    } catch (e) {
      assert.is((e as TransportError).code, 'CLOSED')
    }
    const a = await h.node()
    for (const bad of ['nonsense', '::1:4000', '[::1]', '127.0.0.1:99999', 'host:']) {
      throwsCode(() => a.transport.send(bad, bytes('x')), 'BAD_ADDRESS', `send to ${bad}`)
    }
    throwsCode(() => a.transport.send('127.0.0.1:0', bytes('x')), 'BAD_ADDRESS', 'send to port 0')
    const second = a.transport.listen({
      address: '127.0.0.1:0',
      localId: freshId(),
      handlers: a.transport as never,
    })
    await second.then(
      () => assert.unreachable('a second listen'),
      (e: TransportError) => assert.is(e.code, 'LISTEN_FAILED'),
    )
    assert.is(a.transport.kind, 'tcp')
    assert.is(a.transport.maxFrameBytes, DEFAULT_MAX_MESSAGE_BYTES)
    assert.is(TCP_TRANSPORT_DEFAULTS.idleTimeoutMs, 60_000)
  }),
)

test(
  'bad options throw ConfigError; listen on a taken address is LISTEN_FAILED; close before listen resolves',
  withHarness(async (h) => {
    for (const bad of [
      { maxFrameBytes: 0 },
      { connectTimeoutMs: -1 },
      { clusterKey: '' },
      { idleTimeoutMs: 1.5 },
    ]) {
      try {
        createTcpTransport(bad)
        assert.unreachable(`accepted ${JSON.stringify(bad)}`)
      } catch (e) {
        assert.is((e as { code?: string }).code, 'INVALID_CONFIG', JSON.stringify(bad))
      }
    }
    const a = await h.node()
    const t = createTcpTransport()
    try {
      await t.listen({ address: a.address, localId: freshId(), handlers: { message() {}, error() {} } })
      assert.unreachable('listened on a taken port')
    } catch (e) {
      assert.instance(e, TransportError)
      assert.is((e as TransportError).code, 'LISTEN_FAILED')
    } finally {
      await t.close()
    }
    const early = createTcpTransport()
    const listening = early.listen({
      address: '127.0.0.1:0',
      localId: freshId(),
      handlers: { message() {}, error() {} },
    })
    const closing = early.close()
    await listening.then(
      () => {},
      () => {},
    )
    await closing
    throwsCode(() => early.send(a.address, bytes('x')), 'CLOSED', 'send after an early close')
  }),
)

test(
  'advertiseAddress is the listen address peers learn from the handshake',
  withHarness(async (h) => {
    const a = await h.node({ advertiseAddress: 'node-a.example:4000' })
    const b = await h.node()
    a.transport.send(b.address, bytes('hi'))
    const got = await b.frames.next('hi')
    assert.is(got.from.address, 'node-a.example:4000')
    for (const bad of ['0.0.0.0', 'host:0', 'h\u00e9:1', `${'x'.repeat(300)}:1`]) {
      try {
        createTcpTransport({ advertiseAddress: bad })
        assert.unreachable(`accepted advertiseAddress ${bad}`)
      } catch (e) {
        assert.is((e as { code?: string }).code, 'INVALID_CONFIG', bad)
      }
    }
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
    assert.ok(a.frames.items[0]!.from.id?.equals(a.id))
    assert.is(a.errors.items.length, 0)
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
    assert.is(b.transport.stats.connectionsOpened, 1)
  }),
)

test(
  'an address nobody listens on is UNREACHABLE, with the queued frames dropped; the next send dials again',
  withHarness(async (h) => {
    const gone = await h.node()
    const deadAddress = gone.address
    await gone.transport.close()
    const a = await h.node()
    a.transport.send(deadAddress, bytes('1'))
    a.transport.send(deadAddress, bytes('2'))
    const err = await a.errors.next('UNREACHABLE')
    assert.is(err.code, 'UNREACHABLE')
    assert.is(err.peer, deadAddress)
    assert.match(err.message, /2 queued frame/)
    assert.is(a.transport.stats.framesDropped, 2)
    a.transport.send(deadAddress, bytes('3'))
    await a.errors.count('a second UNREACHABLE', 2)
    assert.is(a.transport.stats.connectionsDialed, 2)
    assert.is(a.transport.stats.peers, 0, 'nothing kept for the dead address')
  }),
)

test(
  'a broken connection is CONNECTION_LOST and the next send reconnects',
  withHarness(async (h) => {
    const a = await h.node()
    const peerId = freshId()
    const raw = await h.rawServer()
    a.transport.send(raw.address, bytes('first'))
    const s1 = await raw.sockets.next('the first connection')
    const r1 = await rawAccept(s1, peerId, raw.address)
    assert.is((await r1.frame()).toString(), 'first')
    s1.resetAndDestroy()
    const lost = await a.errors.next('CONNECTION_LOST')
    assert.is(lost.code, 'CONNECTION_LOST')
    assert.is(lost.peer, raw.address)
    a.transport.send(raw.address, bytes('second'))
    const s2 = await raw.sockets.next('a second connection', (s) => s !== s1)
    const r2 = await rawAccept(s2, peerId, raw.address)
    assert.is((await r2.frame()).toString(), 'second')
    assert.is(a.transport.stats.connectionsDialed, 2)
  }),
)

test(
  'a peer that closes is reached again by a new dial, or reported UNREACHABLE once it is gone',
  withHarness(async (h) => {
    const a = await h.node()
    const b = await h.node()
    a.transport.send(b.address, bytes('one'))
    await b.frames.next('one')
    await b.transport.close()
    // The closed peer's FIN reaches a; frames sent afterwards need a new dial, which is refused.
    for (let i = 0; a.errors.items.length === 0 && i < 1000; i++) {
      a.transport.send(b.address, bytes(`late${i}`))
      await nextTurn()
    }
    const err = await a.errors.next('an error for the closed peer')
    assert.ok(['UNREACHABLE', 'CONNECTION_LOST'].includes(err.code), err.code)
  }),
)

test(
  'an idle connection is closed quietly after idleTimeoutMs, and the next send dials again',
  withHarness(async (h) => {
    const a = await h.node({ idleTimeoutMs: 150 })
    const peerId = freshId()
    const raw = await h.rawServer()
    a.transport.send(raw.address, bytes('x'))
    const s1 = await raw.sockets.next('the first connection')
    await (await rawAccept(s1, peerId, raw.address)).frame()
    await closedOf(s1) // a ended it for idleness
    assert.is(a.errors.items.length, 0, 'idleness is not an error')
    a.transport.send(raw.address, bytes('y'))
    const s2 = await raw.sockets.next('a second connection', (s) => s !== s1)
    assert.is((await (await rawAccept(s2, peerId, raw.address)).frame()).toString(), 'y')
  }),
)

test(
  'BACKPRESSURE: frames queued while dialling are bounded by maxQueuedBytesPerPeer',
  withHarness(async (h) => {
    const a = await h.node({ maxQueuedBytesPerPeer: 10_000 })
    // A server that accepts and never answers: the handshake never completes, frames wait.
    const raw = await h.rawServer()
    for (let i = 0; i < 20; i++) a.transport.send(raw.address, new Uint8Array(1000))
    const err = await a.errors.next('BACKPRESSURE', (e) => e.code === 'BACKPRESSURE')
    assert.is(err.peer, raw.address)
    assert.match(err.message, /dropped 11 frame/) // 9 × 1004 bytes fit in 10 000
    assert.is(a.errors.items.filter((e) => e.code === 'BACKPRESSURE').length, 1, 'one report per turn')
    assert.is(a.transport.stats.framesDropped, 11)
  }),
)

test(
  'BACKPRESSURE: a peer that stops reading fills the bounded queue, and frames are then dropped',
  withHarness(async (h) => {
    const a = await h.node({ maxQueuedBytesPerPeer: 256 * 1024 })
    const peerId = freshId()
    const raw = await h.rawServer()
    a.transport.send(raw.address, bytes('start'))
    const s1 = await raw.sockets.next('the connection')
    assert.is((await (await rawAccept(s1, peerId, raw.address)).frame()).toString(), 'start')
    s1.pause() // never read again: the kernel buffers fill, then ours
    const chunk = new Uint8Array(64 * 1024)
    for (let i = 0; i < 2000 && !a.errors.items.some((e) => e.code === 'BACKPRESSURE'); i++) {
      for (let j = 0; j < 8; j++) a.transport.send(raw.address, chunk)
      await nextTurn()
    }
    const err = await a.errors.next('BACKPRESSURE', (e) => e.code === 'BACKPRESSURE')
    assert.is(err.peer, raw.address)
    assert.ok(a.transport.stats.framesDropped > 0)
  }),
)

test(
  'a throwing handler is counted and swallowed; the transport goes on',
  withHarness(async (h) => {
    const b = await h.node()
    const t = createTcpTransport()
    let calls = 0
    const address = await t.listen({
      address: '127.0.0.1:0',
      localId: freshId(),
      handlers: {
        message() {
          calls++
          throw new Error('handler bug')
        },
        error() {},
      },
    })
    try {
      b.transport.send(address, bytes('1'))
      b.transport.send(address, bytes('2'))
      for (let i = 0; calls < 2 && i < 1000; i++) await nextTurn()
      assert.is(calls, 2)
      assert.is(t.stats.handlerErrors, 2)
    } finally {
      await t.close()
    }
  }),
)

test(
  'close destroys every socket and timer, resolves, and no handler runs afterwards',
  withHarness(async (h) => {
    const before = process
      .getActiveResourcesInfo()
      .filter((r) => r.startsWith('TCP') || r === 'Timeout').length
    const a = await h.node()
    const b = await h.node()
    const raw = await h.rawServer()
    a.transport.send(b.address, bytes('x'))
    a.transport.send(raw.address, bytes('never answered'))
    await b.frames.next('x')
    b.transport.send(a.address, bytes('in flight'))
    await Promise.all([a.transport.close(), b.transport.close()])
    const frames = a.frames.items.length
    const errors = a.errors.items.length + b.errors.items.length
    await h.close()
    for (let i = 0; i < 5; i++) await nextTurn()
    assert.is(a.frames.items.length, frames, 'no frame after close')
    assert.is(a.errors.items.length + b.errors.items.length, errors, 'no error after close')
    const after = process
      .getActiveResourcesInfo()
      .filter((r) => r.startsWith('TCP') || r === 'Timeout').length
    assert.ok(after <= before, `resources left: ${process.getActiveResourcesInfo().join(', ')}`)
    assert.is(a.transport.stats.connections, 0)
  }),
)

test.run()
