// The pubsub codec: every message type round-trips, and bad input is refused without throwing.

import { Id, type NodeHandle } from '@pastry/core'
import fc from 'fast-check'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { decodePubSub, encodePubSub, type PubSubWireMessage } from '../src/index.js'
import { SEED } from './_seed.js'

const a: NodeHandle = { id: Id.fromWords(1, 2, 3, 4), address: '10.0.0.1:4000' }
const b: NodeHandle = { id: Id.MAX, address: '[::1]:9' }
const big = 2 ** 40 + 7
const data = new Uint8Array([1, 2, 3])

const SAMPLES: PubSubWireMessage[] = [
  { type: 'subscribe', topic: 'news', subscriber: a, redirects: 2, chain: [] },
  { type: 'subscribe', topic: 'news', subscriber: a, redirects: 0, chain: [a.id, b.id] },
  { type: 'subscribeAck', topic: 'news', path: [a.id, b.id], heads: [{ publisher: b, epoch: 7, seq: big }] },
  { type: 'subscribeRedirect', topic: 'news', to: b, redirects: 1 },
  { type: 'subscribeNack', topic: 'news' },
  { type: 'leave', topic: '' },
  { type: 'reject', topic: 'ünïcødé' },
  { type: 'beatDown', items: [{ topic: 'x', path: [a.id] }] },
  { type: 'beatUp', topics: ['x', 'y'] },
  { type: 'publish', topic: 'news', message: { publisher: a, epoch: 1, seq: 1, data } },
  { type: 'publishAck', topic: 'news', epoch: 1, seq: big },
  { type: 'publishNack', topic: 'news', epoch: 0, seq: 3 },
  { type: 'data', topic: 'news', message: { publisher: b, epoch: big, seq: big, data: new Uint8Array(0) } },
  { type: 'replayRequest', topic: 'news', publisher: a, epoch: 1, from: 3, to: 9, replyTo: b, hops: 4 },
  { type: 'replay', topic: 'news', publisher: a, epoch: 1, messages: [{ seq: 4, data }], lostTo: 3 },
  { type: 'anycast', topic: 'q', anycastId: 9, requester: a, data, visited: [b.id], steps: 3 },
  { type: 'anycastResult', anycastId: 9, accepted: true, by: b },
]

const w = suite('pubsub wire')

w('every message type round-trips', () => {
  for (const m of SAMPLES) {
    const r = decodePubSub(encodePubSub(m), 1 << 20)
    assert.ok(r.ok, `${m.type}: ${r.ok ? '' : r.error.message}`)
    assert.equal(JSON.parse(JSON.stringify(r.message)), JSON.parse(JSON.stringify(m)), m.type)
  }
})

w('a handle whose address is not host:port is refused (BAD_FIELD)', () => {
  for (const address of ['10.0.0.1B4000', '10.0.0\u00051:4000', 'no-port', 'a b:1']) {
    // The encoder writes what it is given; the decoder is the gate.
    const m: PubSubWireMessage = {
      type: 'subscribeRedirect',
      topic: 'news',
      to: { id: b.id, address },
      redirects: 1,
    }
    const r = decodePubSub(encodePubSub(m), 1 << 20)
    assert.ok(!r.ok && r.error.code === 'BAD_FIELD' && r.error.message.includes('address'), address)
  }
})

w('bad input is refused with a typed error, never thrown', () => {
  const cases: [Uint8Array, string][] = [
    [new Uint8Array([]), 'MALFORMED'],
    [new Uint8Array([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 'BAD_FIELD'],
    [new Uint8Array([0x82, 0x02, 0x01]), 'BAD_VERSION'],
    [new Uint8Array([0x82, 0x01, 0x18, 0x63]), 'BAD_TYPE'],
    [new Uint8Array([0xa1, 0x01, 0x02]), 'MALFORMED'], // a map
    [new Uint8Array([0xc1, 0x00]), 'MALFORMED'], // a tag
    [new Uint8Array([0xfb, 0, 0, 0, 0, 0, 0, 0, 0]), 'MALFORMED'], // a float
    [new Uint8Array([0x82, 0x01, 0x05, 0x00]), 'MALFORMED'], // trailing bytes
  ]
  for (const [bytes, code] of cases) {
    const r = decodePubSub(bytes, 1 << 20)
    assert.not.ok(r.ok)
    if (!r.ok) assert.is(r.error.code, code, Buffer.from(bytes).toString('hex'))
  }
  const tooBig = decodePubSub(encodePubSub(SAMPLES.find((m) => m.type === 'subscribeAck')!), 10)
  assert.ok(!tooBig.ok && tooBig.error.code === 'TOO_LARGE')
  // A subscriber id of 15 bytes: [1, 1, "t", [h'00…' (15), "a"], 0, []].
  const shortId = new Uint8Array([
    0x86,
    0x01,
    0x01,
    0x61,
    0x74,
    0x82,
    0x4f,
    ...new Uint8Array(15),
    0x61,
    0x61,
    0x00,
    0x80,
  ])
  const r = decodePubSub(shortId, 100)
  assert.ok(!r.ok && r.error.code === 'BAD_FIELD')
})

w('random bytes and mutated messages never throw (fast-check)', () => {
  const encoded = SAMPLES.map(encodePubSub)
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      decodePubSub(bytes, 1 << 20)
    }),
  )
  fc.assert(
    fc.property(fc.nat(encoded.length - 1), fc.nat(), fc.nat(255), (i, at, v) => {
      const m = encoded[i]!.slice()
      m[at % m.length] = v
      const r = decodePubSub(m, 1 << 20)
      if (r.ok) assert.ok(typeof r.message.type === 'string')
    }),
  )
  assert.ok(Number.isInteger(SEED))
})

w.run()
