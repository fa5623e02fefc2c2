// The handshake and hostile input: cluster keys (right, wrong, missing, replayed), version
// mismatch, malformed handshakes, garbage, oversized length prefixes, stalls, connection floods and
// the connection cap. Each bad peer is played byte by byte over a raw socket (test/_wire.ts); each
// test checks that the connection is cut, counted and reported, and that no frame gets through.
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { PROTOCOL_VERSION } from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { bytes, closedOf, framed, freshId, type TestNode, withHarness } from './_node.js'
import { hello, RawReader, rawHandshake } from './_wire.js'

/** An AUTH message (type 2) with a zero MAC: out of order as a first message. */
function authFirst(): Buffer {
  const m = Buffer.alloc(40)
  m.writeUInt32BE(0x50535450, 0)
  m.writeUInt16BE(PROTOCOL_VERSION, 4)
  m[6] = 2
  return m
}

async function refusedBothWays(a: TestNode, b: TestNode, pattern: RegExp): Promise<void> {
  a.transport.send(b.address, bytes('let me in'))
  const atA = await a.errors.next('HANDSHAKE_FAILED at the dialler')
  const atB = await b.errors.next('HANDSHAKE_FAILED at the acceptor')
  assert.is(atA.code, 'HANDSHAKE_FAILED')
  assert.is(atB.code, 'HANDSHAKE_FAILED')
  assert.match(atA.message, pattern)
  assert.match(atB.message, pattern)
  assert.is(atA.peer, b.address)
  assert.match(atA.message, /1 queued frame/)
  assert.is(b.frames.items.length, 0, 'no frame got through')
  assert.is(a.transport.stats.connectionsOpened, 0)
  assert.is(b.transport.stats.connectionsOpened, 0)
  assert.ok(a.transport.stats.handshakeFailures >= 1 && b.transport.stats.handshakeFailures >= 1)
}

test(
  'the same cluster key (string or bytes) opens the connection',
  withHarness(async (h) => {
    const a = await h.node({ clusterKey: 'correct horse battery staple' })
    const b = await h.node({ clusterKey: new TextEncoder().encode('correct horse battery staple') })
    a.transport.send(b.address, bytes('hi'))
    const got = await b.frames.next('hi')
    assert.is(got.text, 'hi')
    b.transport.send(got.from.address, bytes('hi back'))
    assert.is((await a.frames.next('hi back')).text, 'hi back')
    assert.is(a.errors.items.length + b.errors.items.length, 0)
  }),
)

test(
  'a wrong cluster key is refused, and both sides see HANDSHAKE_FAILED (both directions)',
  withHarness(async (h) => {
    const a = await h.node({ clusterKey: 'key one' })
    const b = await h.node({ clusterKey: 'key two' })
    await refusedBothWays(a, b, /cluster-key challenge/)
    const c = await h.node({ clusterKey: 'key two' })
    const d = await h.node({ clusterKey: 'key one' })
    await refusedBothWays(c, d, /cluster-key challenge/)
  }),
)

test(
  'a keyed node and an unkeyed one refuse each other, clearly, whichever dials',
  withHarness(async (h) => {
    const keyed = await h.node({ clusterKey: 'secret' })
    const open = await h.node()
    open.transport.send(keyed.address, bytes('x'))
    const atOpen = await open.errors.next('HANDSHAKE_FAILED at the unkeyed dialler')
    const atKeyed = await keyed.errors.next('HANDSHAKE_FAILED at the keyed acceptor')
    assert.match(atOpen.message, /requires a cluster key, and this node has none/)
    assert.match(atKeyed.message, /has no cluster key, and this node requires one/)
    assert.is(keyed.frames.items.length, 0)

    const keyed2 = await h.node({ clusterKey: 'secret' })
    const open2 = await h.node()
    keyed2.transport.send(open2.address, bytes('y'))
    const atKeyed2 = await keyed2.errors.next('HANDSHAKE_FAILED at the keyed dialler')
    const atOpen2 = await open2.errors.next('HANDSHAKE_FAILED at the unkeyed acceptor')
    assert.match(atKeyed2.message, /has no cluster key/)
    assert.match(atOpen2.message, /requires a cluster key/)
    assert.is(open2.frames.items.length, 0)
  }),
)

test(
  'a recorded handshake replayed to the server does not get a frame through',
  withHarness(async (h) => {
    const key = 'replay me if you can'
    const server = await h.node({ clusterKey: key })
    const client = await h.node({ clusterKey: key })
    // A relay between client and server that records what the client sends.
    const recorded: Buffer[] = []
    const relay = await h.rawServer()
    client.transport.send(relay.address, bytes('secret order'))
    const fromClient = await relay.sockets.next('the client at the relay')
    const toServer = await h.rawClient(server.address)
    fromClient.on('data', (d: Buffer) => {
      recorded.push(Buffer.from(d))
      toServer.write(d)
    })
    toServer.on('data', (d: Buffer) => fromClient.write(d))
    const got = await server.frames.next('the relayed frame')
    assert.is(got.text, 'secret order', 'the relay is transparent')
    assert.is(server.transport.stats.connectionsOpened, 1)

    // Replay everything the client sent on a fresh connection.
    const replay = await h.rawClient(server.address)
    const reader = new RawReader(replay)
    replay.write(Buffer.concat(recorded))
    const err = await server.errors.next('HANDSHAKE_FAILED for the replay')
    assert.is(err.code, 'HANDSHAKE_FAILED')
    assert.match(err.message, /cluster-key challenge/)
    await reader.frame() // the server's HELLO, with a fresh nonce
    await reader.frame() // its AUTH, bound to that nonce
    await closedOf(replay)
    assert.is(server.frames.items.length, 1, 'the replayed frame was not delivered')
    assert.is(server.transport.stats.connectionsOpened, 1)
  }),
)

test(
  'a protocol version mismatch is HANDSHAKE_FAILED, naming both versions (acceptor and dialler)',
  withHarness(async (h) => {
    const b = await h.node()
    const raw = await h.rawClient(b.address)
    raw.write(hello({ id: freshId(), address: '127.0.0.1:1', dialer: true, version: PROTOCOL_VERSION + 98 }))
    const err = await b.errors.next('HANDSHAKE_FAILED for the version')
    assert.match(err.message, new RegExp(`version ${PROTOCOL_VERSION + 98}.*speaks ${PROTOCOL_VERSION}`))
    await closedOf(raw)

    const a = await h.node()
    const srv = await h.rawServer()
    a.transport.send(srv.address, bytes('x'))
    const s = await srv.sockets.next('the dial')
    s.write(hello({ id: freshId(), address: srv.address, dialer: false, version: PROTOCOL_VERSION + 1 }))
    const err2 = await a.errors.next('HANDSHAKE_FAILED at the dialler')
    assert.is(err2.code, 'HANDSHAKE_FAILED')
    assert.match(err2.message, /protocol version/)
    assert.is(err2.peer, srv.address)
  }),
)

test(
  'malformed handshakes are cut off and counted: bad magic, bad flags, bad address, wrong role, wrong order',
  withHarness(async (h) => {
    const b = await h.node()
    const id = freshId()
    const cases: [string, Buffer][] = [
      ['bad magic', hello({ id, address: '127.0.0.1:1', dialer: true, magic: 0x12345678 })],
      [
        'an unknown flag',
        (() => {
          const m = hello({ id, address: '127.0.0.1:1', dialer: true })
          m[4 + 7] = 0x80
          return m
        })(),
      ],
      ['a bad address', hello({ id, address: 'no-port-here', dialer: true })],
      ['the acceptor role from a dialler', hello({ id, address: '127.0.0.1:1', dialer: false })],
      ['a truncated HELLO', framed(Buffer.from('PSTP'))],
      ['an AUTH first', framed(authFirst())],
      ['an empty message', framed(new Uint8Array(0))],
    ]
    for (const [i, [what, bytesOut]] of cases.entries()) {
      const raw = await h.rawClient(b.address)
      raw.write(bytesOut)
      raw.write(framed(bytes('must not arrive')))
      const err = await b.errors.count(`HANDSHAKE_FAILED for ${what}`, i + 1)
      assert.is(err[i]!.code, 'HANDSHAKE_FAILED', what)
      await closedOf(raw)
    }
    assert.is(b.transport.stats.handshakeFailures, cases.length)
    assert.is(b.frames.items.length, 0)
    assert.is(b.transport.stats.connectionsOpened, 0)
  }),
)

test(
  'random garbage closes the connection, is counted and reported, and harms nothing else',
  withHarness(async (h) => {
    const b = await h.node()
    const a = await h.node()
    const junk = Buffer.alloc(4096)
    let x = 0x9e3779b9
    for (let i = 0; i < junk.length; i++) {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      junk[i] = x & 0xff
    }
    const raw = await h.rawClient(b.address)
    raw.write(junk)
    const err = await b.errors.next('an error for garbage')
    assert.ok(['BAD_FRAME', 'HANDSHAKE_FAILED'].includes(err.code), err.code)
    await closedOf(raw)
    const s = b.transport.stats
    assert.is(s.badFrames + s.handshakeFailures, 1)
    a.transport.send(b.address, bytes('still fine'))
    assert.is((await b.frames.next('a real frame')).text, 'still fine')
  }),
)

test(
  'an oversized length prefix closes the connection at once, before and after the handshake',
  withHarness(async (h) => {
    const b = await h.node({ maxFrameBytes: 64 * 1024 })
    const before = await h.rawClient(b.address)
    const prefix = Buffer.alloc(4)
    prefix.writeUInt32BE(0xfffffff0, 0)
    before.write(prefix) // four bytes, nothing else: the length alone condemns it
    const e1 = await b.errors.next('BAD_FRAME before the handshake')
    assert.is(e1.code, 'BAD_FRAME')
    await closedOf(before)

    const after = await h.rawClient(b.address)
    const peerAddress = '127.0.0.1:1'
    await rawHandshake(after, freshId(), peerAddress)
    after.write(framed(bytes('ok')))
    const over = Buffer.alloc(4)
    over.writeUInt32BE(64 * 1024 + 1, 0)
    after.write(over)
    const e2 = await b.errors.next('BAD_FRAME after the handshake', (e) => e !== e1)
    assert.is(e2.code, 'BAD_FRAME')
    assert.is(e2.peer, peerAddress)
    assert.match(e2.message, /65537 bytes/)
    await closedOf(after)
    assert.equal(
      b.frames.items.map((f) => f.text),
      ['ok'],
    )
    assert.is(b.transport.stats.badFrames, 2)
  }),
)

test(
  'a stalled handshake and a stalled frame time out with TIMEOUT',
  withHarness(async (h) => {
    const b = await h.node({ handshakeTimeoutMs: 100, frameStallTimeoutMs: 100 })
    const silent = await h.rawClient(b.address)
    const e1 = await b.errors.next('TIMEOUT for the silent client')
    assert.is(e1.code, 'TIMEOUT')
    assert.match(e1.message, /handshake/)
    await closedOf(silent)

    const half = await h.rawClient(b.address)
    half.write(hello({ id: freshId(), address: '127.0.0.1:1', dialer: true }).subarray(0, 20))
    const e2 = await b.errors.next('TIMEOUT mid-handshake', (e) => e !== e1)
    assert.is(e2.code, 'TIMEOUT')
    await closedOf(half)

    const stall = await h.rawClient(b.address)
    await rawHandshake(stall, freshId(), '127.0.0.1:2')
    const partial = framed(new Uint8Array(100)).subarray(0, 30)
    stall.write(partial)
    const e3 = await b.errors.next('TIMEOUT mid-frame', (e) => e !== e1 && e !== e2)
    assert.is(e3.code, 'TIMEOUT')
    assert.match(e3.message, /mid-frame/)
    await closedOf(stall)
    assert.is(b.transport.stats.timeouts, 3)
  }),
)

test(
  'a dial whose peer never answers the handshake times out, dropping its frames',
  withHarness(async (h) => {
    const a = await h.node({ handshakeTimeoutMs: 100 })
    const srv = await h.rawServer()
    a.transport.send(srv.address, bytes('x'))
    const err = await a.errors.next('TIMEOUT for the dial')
    assert.is(err.code, 'TIMEOUT')
    assert.is(err.peer, srv.address)
    assert.match(err.message, /1 queued frame/)
  }),
)

test(
  '200 connections that never speak are all timed out, and a real peer still gets through',
  withHarness(async (h) => {
    const b = await h.node({ handshakeTimeoutMs: 300 })
    const sockets: Socket[] = []
    for (let i = 0; i < 200; i++) sockets.push(await h.rawClient(b.address))
    await Promise.all(sockets.map((s) => closedOf(s)))
    await b.errors.count('TIMEOUT × 200', 200, (e) => e.code === 'TIMEOUT')
    assert.is(b.transport.stats.timeouts, 200)
    const a = await h.node()
    a.transport.send(b.address, bytes('real'))
    assert.is((await b.frames.next('the real frame')).text, 'real')
  }),
)

test(
  'maxConnections: inbound connections beyond the cap are refused; room frees as they close',
  withHarness(async (h) => {
    const b = await h.node({ maxConnections: 2 })
    const one = await h.rawClient(b.address)
    const two = await h.rawClient(b.address)
    await Promise.all([once(one, 'data'), once(two, 'data')]) // each got b's HELLO: both accepted
    const three = await h.rawClient(b.address)
    await closedOf(three)
    assert.is(b.transport.stats.connectionsRefused, 1)
    assert.is(b.transport.stats.inboundConnections, 2)
    const a = await h.node()
    a.transport.send(b.address, bytes('blocked'))
    const err = await a.errors.next('the refused dial')
    assert.is(err.code, 'UNREACHABLE')
    one.destroy()
    two.destroy()
    await Promise.all([closedOf(one), closedOf(two)])
    // Once b has seen both go, a real peer gets in: retry on each refusal (an event), a few times.
    for (let i = 0; i < 20 && b.frames.items.length === 0; i++) {
      a.transport.send(b.address, bytes('now'))
      await Promise.race([b.frames.next('a frame once room freed'), a.errors.count('another refusal', i + 2)])
    }
    assert.is((await b.frames.next('a frame once room freed')).text, 'now')
  }),
)

test.run()
