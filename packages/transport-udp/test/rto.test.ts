// Retransmission timing without sockets or clocks: RFC 6298's estimator on its own, then the
// sending end of a connection driven by hand over virtual time, to show Karn's rule (no sample from
// a retransmitted datagram), the backoff, fast retransmit from selective acks, and the give-up.
import { Id } from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { RttEstimator } from '../src/index.js'
import { resolveOptions, type UdpTransportOptions } from '../src/options.js'
import { OutboundConn, type OutboundHost } from '../src/outbound.js'
import { newCounters } from '../src/stats.js'
import type { Reply } from '../src/wire.js'

const params = { initialRtoMs: 100, minRtoMs: 50, maxRtoMs: 1000, granularityMs: 1 }

test('RFC 6298: the initial RTO, then SRTT = R, RTTVAR = R/2 from the first sample', () => {
  const e = new RttEstimator(params)
  assert.is(e.srtt, undefined)
  assert.is(e.rto, 100)
  e.sample(80)
  assert.is(e.srtt, 80)
  assert.is(e.rttvar, 40)
  assert.is(e.rto, 80 + 4 * 40) // SRTT + max(G, 4·RTTVAR)
})

test('RFC 6298: later samples smooth with alpha 1/8 and beta 1/4 (RTTVAR first, from the old SRTT)', () => {
  const e = new RttEstimator({ ...params, maxRtoMs: 60_000 })
  e.sample(100)
  e.sample(200)
  // RTTVAR = 3/4·50 + 1/4·|100 − 200| = 62.5; SRTT = 7/8·100 + 1/8·200 = 112.5
  assert.is(e.rttvar, 62.5)
  assert.is(e.srtt, 112.5)
  assert.is(e.rto, 112.5 + 4 * 62.5)
  e.sample(112.5)
  assert.is(e.rttvar, 0.75 * 62.5)
  assert.is(e.srtt, 112.5)
})

test('RFC 6298: RTO = SRTT + max(G, 4·RTTVAR), clamped to [min, max]', () => {
  const e = new RttEstimator({ ...params, granularityMs: 10 })
  for (let i = 0; i < 50; i++) e.sample(0.2) // RTTVAR decays toward 0: G dominates, then the minimum
  assert.ok(e.rttvar < 0.01)
  assert.is(e.rto, 50, 'the minimum clamps SRTT + G = 10.2')
  const big = new RttEstimator(params)
  big.sample(5000)
  assert.is(big.rto, 1000, 'the maximum clamps')
})

test('RFC 6298: each timeout doubles the RTO up to the maximum; a sample ends the backoff', () => {
  const e = new RttEstimator(params)
  e.sample(40) // RTO = 40 + 80 = 120
  assert.is(e.rto, 120)
  const seen: number[] = []
  for (let i = 0; i < 6; i++) {
    e.backOff()
    seen.push(e.rto)
  }
  assert.equal(seen, [240, 480, 960, 1000, 1000, 1000])
  e.sample(40)
  assert.is(e.backoffs, 0)
  assert.ok(e.rto < 240, `after a sample the RTO comes from SRTT and RTTVAR again (${e.rto})`)
})

// ------------------------------------------------------------------------------------------------
// The sending end, by hand.

interface Bench {
  readonly conn: OutboundConn
  /** Every datagram it transmitted, in order. */
  readonly sent: Buffer[]
  readonly counters: ReturnType<typeof newCounters>
  readonly scratch: Buffer
}

function bench(options: UdpTransportOptions = {}, now = 0): Bench {
  const resolved = resolveOptions(options)
  const sent: Buffer[] = []
  const counters = newCounters()
  const host: OutboundHost = {
    options: resolved,
    counters,
    version: 1,
    auth: undefined,
    localAddress: '127.0.0.1:1',
    localId: Id.ZERO,
    transmit: (_conn, d) => sent.push(d),
    oversize: () => {},
  }
  const conn = new OutboundConn(host, '127.0.0.1:2', '127.0.0.1', 2, 42, Buffer.alloc(16, 1), now)
  return { conn, sent, counters, scratch: Buffer.alloc(resolved.maxDatagramBytes) }
}

function reply(echo: Buffer): Reply {
  return {
    dstCid: 42,
    srcCid: 99,
    echo,
    nonce: Buffer.alloc(16, 2),
    id: Id.ZERO,
    maxFrameBytes: 1 << 20,
    window: 128,
    maxDatagramBytes: 1200,
    address: '127.0.0.1:2',
  }
}

const seqOf = (d: Buffer): number => d.readUInt32BE(14)

/** Opens `b.conn` at time `t`, the REPLY arriving `rtt` ms after the HELLO. */
function open(b: Bench, t: number, rtt: number): void {
  b.conn.start(t)
  assert.ok(b.conn.onReply(t + rtt, reply(Buffer.alloc(16, 1))))
}

function sendOne(b: Bench, t: number, text = 'x'): Buffer {
  b.conn.enqueue(new TextEncoder().encode(text))
  const before = b.sent.length
  b.conn.flush(t, undefined, b.scratch)
  assert.is(b.sent.length, before + 1, 'one datagram')
  return b.sent[b.sent.length - 1]!
}

test('the REPLY times the HELLO; a REPLY that does not echo our nonce changes nothing', () => {
  const b = bench()
  b.conn.start(0)
  assert.not.ok(b.conn.onReply(5, reply(Buffer.alloc(16, 9))), 'wrong echo')
  assert.is(b.conn.state, 'hello')
  assert.ok(b.conn.onReply(8, reply(Buffer.alloc(16, 1))))
  assert.is(b.conn.rtt.srtt, 8)
})

test("Karn's rule: a HELLO sent twice gives no sample", () => {
  const b = bench()
  b.conn.start(0)
  assert.is(b.conn.deadline, 100)
  assert.is(b.conn.onTimer(100), undefined)
  assert.is(b.sent.length, 2, 'the HELLO went again')
  assert.is(b.conn.deadline, 100 + 200, 'after a doubled RTO')
  assert.ok(b.conn.onReply(130, reply(Buffer.alloc(16, 1))))
  assert.is(b.conn.rtt.srtt, undefined, 'no sample from an ambiguous round trip')
})

test("Karn's rule: an ack of a retransmitted datagram gives no sample, and the backoff stays until one sent once is acked", () => {
  const b = bench()
  open(b, 0, 10) // SRTT 10, RTTVAR 5, RTO 50 (the minimum)
  sendOne(b, 20)
  assert.ok(b.conn.onAck(24, { cumulative: 1, ranges: [] }))
  const srtt = b.conn.rtt.srtt!
  assert.ok(srtt < 10 && srtt > 4, 'a sample from the datagram sent once')
  const d = sendOne(b, 30)
  assert.is(seqOf(d), 1)
  const due = b.conn.deadline
  assert.is(b.conn.onTimer(due), undefined)
  assert.is(b.sent.length, 4, 'retransmitted')
  assert.ok(b.sent[3]!.equals(d), 'the same bytes: same sequence number, same tag')
  assert.is(b.conn.rtt.backoffs, 1)
  assert.ok(b.conn.onAck(due + 3, { cumulative: 2, ranges: [] }))
  assert.is(b.conn.rtt.srtt, srtt, 'no sample from the retransmitted datagram')
  assert.is(b.conn.rtt.backoffs, 1, 'the backed-off RTO is kept')
  sendOne(b, due + 10)
  assert.ok(b.conn.onAck(due + 16, { cumulative: 3, ranges: [] }))
  assert.is(b.conn.rtt.backoffs, 0, 'a fresh sample ends the backoff')
  assert.ok(b.conn.rtt.srtt !== srtt)
})

test('fast retransmit: a datagram three below one acknowledged after it was sent goes again at once', () => {
  const b = bench()
  open(b, 0, 10)
  for (let i = 0; i < 5; i++) sendOne(b, 20 + i, `m${i}`)
  // Datagram 0 is missing; 1..4 arrived.
  assert.ok(b.conn.onAck(30, { cumulative: 0, ranges: [1, 5] }))
  assert.is(b.sent.length, 1 + 5 + 1, 'datagram 0 went again without waiting for the RTO')
  assert.is(seqOf(b.sent[6]!), 0)
  assert.is(b.counters.retransmissions, 1)
  assert.is(b.counters.timeoutRetransmissions, 0)
  // The same ack again says nothing new: no second retransmission.
  assert.not.ok(b.conn.onAck(31, { cumulative: 0, ranges: [1, 5] }))
  assert.is(b.sent.length, 7)
  assert.ok(b.conn.onAck(32, { cumulative: 5, ranges: [] }))
  assert.is(b.conn.inFlight, 0)
  assert.is(b.conn.deadline, Number.POSITIVE_INFINITY, 'the timer stops when nothing is in flight')
})

test('the timer: armed when a datagram leaves, restarted by an ack of new data, gives up after maxRetransmissions', () => {
  const b = bench({ maxRetransmissions: 3 })
  open(b, 0, 10)
  sendOne(b, 100)
  assert.is(b.conn.deadline, 100 + b.conn.rtt.rto)
  const times: number[] = []
  for (let i = 0; i < 3; i++) {
    const t = b.conn.deadline
    assert.is(b.conn.onTimer(t), undefined)
    times.push(t)
  }
  assert.is(b.counters.timeoutRetransmissions, 3)
  const gaps = times.slice(1).map((t, i) => t - times[i]!)
  assert.ok(gaps[1]! === 2 * gaps[0]!, `each wait twice the last: ${gaps.join(', ')}`)
  assert.is(b.conn.onTimer(b.conn.deadline), 'giveUp')
  assert.is(b.conn.abandon(), 1, 'the frame in flight is dropped')
})

test('small frames share a datagram; a frame too large for one is fragmented, and the window bounds what is in flight', () => {
  const b = bench({ windowPackets: 4 })
  open(b, 0, 1)
  for (let i = 0; i < 20; i++) b.conn.enqueue(new Uint8Array(50))
  b.conn.flush(2, undefined, b.scratch)
  assert.is(b.sent.length, 2, 'HELLO and one DATA for 20 frames of 50 bytes')
  b.conn.enqueue(new Uint8Array(10_000))
  b.conn.flush(3, undefined, b.scratch)
  assert.is(b.conn.inFlight, 4, 'the window of 4 is full')
  assert.ok(b.conn.queuedBytes > 0, 'the rest waits')
  assert.ok(b.conn.onAck(4, { cumulative: 4, ranges: [] }))
  b.conn.flush(5, undefined, b.scratch)
  assert.is(b.conn.inFlight, 4)
  for (const d of b.sent.slice(1)) assert.ok(d.length <= 1200)
})

test.run()
