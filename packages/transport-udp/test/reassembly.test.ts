// Reassembly and receive buffers under a peer played byte by byte from a raw socket (test/_wire.ts):
// a fragmented frame that stalls times out and gives its memory back; the reassembly budget is
// shared and bounded, and a connection waiting for room resumes when room frees; fragments that lie
// about their frame are refused; out-of-order datagrams are held only within the window and
// `maxBufferedBytes`, and delivered in order once the gap fills.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { freshId, pattern, sameBytes, withHarness } from './_node.js'
import { ACK, data, fragFrame, msgFrame, RESET, rawOpen, readCid, typeOf } from './_wire.js'

test(
  'a fragmented frame that stalls is abandoned after reassemblyTimeoutMs: TIMEOUT, RESET, memory back',
  withHarness(async (h) => {
    const b = await h.node({ reassemblyTimeoutMs: 200 })
    const raw = await h.raw()
    const open = await rawOpen(raw, b.address, { id: freshId(), srcCid: 1001 })
    await raw.send(
      b.address,
      data({
        dstCid: open.dstCid,
        seq: 0,
        confirm: open.confirm,
        frames: [fragFrame(100_000, 0, pattern(1000, 1))],
      }),
    )
    await raw.send(
      b.address,
      data({ dstCid: open.dstCid, seq: 1, frames: [fragFrame(100_000, 1000, pattern(1000, 2))] }),
    )
    const err = await b.errors.next('TIMEOUT for the stalled reassembly')
    assert.is(err.code, 'TIMEOUT')
    assert.is(err.peer, raw.address)
    assert.match(err.message, /stalled mid-frame/)
    const s = b.transport.stats
    assert.is(s.reassemblyTimeouts, 1)
    assert.is(s.reassemblies, 0, 'no reassembly left')
    assert.is(s.reassemblyBytes, 0, 'its reservation was given back')
    assert.is(s.inboundConnections, 0, 'the connection is gone')
    assert.is(b.frames.items.length, 0)
    const reset = await raw.received.next('a RESET naming the connection', (d) => typeOf(d) === RESET)
    assert.is(readCid(reset.msg, 6), open.dstCid)
    // Later datagrams of the dead connection are refused.
    await raw.send(b.address, data({ dstCid: open.dstCid, seq: 2, frames: [msgFrame(pattern(10, 3))] }))
    await raw.received.count('a second RESET', 2, (d) => typeOf(d) === RESET)
    assert.is(b.frames.items.length, 0)
  }),
)

test(
  'the reassembly budget is shared: a connection waits for room (acknowledged, not lost), then resumes in order',
  withHarness(async (h) => {
    const b = await h.node({ maxReassemblies: 1, reassemblyTimeoutMs: 300 })
    const a = await h.node()
    const raw = await h.raw()
    const open = await rawOpen(raw, b.address, { id: freshId(), srcCid: 2002 })
    // The raw peer takes the only reassembly slot and stalls.
    await raw.send(
      b.address,
      data({
        dstCid: open.dstCid,
        seq: 0,
        confirm: open.confirm,
        frames: [fragFrame(50_000, 0, pattern(500, 1))],
      }),
    )
    await raw.received.next('the ack of the first fragment', (d) => d.msg[4] === ACK)
    assert.is(b.transport.stats.reassemblies, 1)
    const big = pattern(20_000, 7)
    a.transport.send(b.address, big)
    a.transport.send(b.address, pattern(10, 8))
    // a's frame waits for room until the raw peer's reassembly times out, then arrives, in order.
    const timeout = await b.errors.next('TIMEOUT of the raw peer')
    assert.is(timeout.peer, raw.address)
    await b.frames.count('both frames from a', 2)
    assert.ok(sameBytes(b.frames.items[0]!.frame, big))
    assert.ok(sameBytes(b.frames.items[1]!.frame, pattern(10, 8)))
    const s = b.transport.stats
    assert.ok(s.reassemblyWaits >= 1, 'a waited for room')
    assert.is(s.reassembled, 1)
    assert.is(s.reassemblies, 0)
    assert.is(s.reassemblyBytes, 0)
    assert.is(a.errors.items.length, 0, 'nothing was lost on the way')
  }),
)

test(
  'fragments that lie about their frame are refused: BAD_FRAME, RESET, nothing delivered',
  withHarness(async (h) => {
    const b = await h.node({ maxFrameBytes: 10_000 })
    const raw = await h.raw()
    const cases = [
      fragFrame(20_000, 0, pattern(500, 1)), // above maxFrameBytes
      fragFrame(5_000, 100, pattern(500, 1)), // a middle fragment first
      Buffer.from([9, 9, 9]), // an unknown frame type
      Buffer.from([2, 0, 200, 1, 2]), // a MSG frame longer than its datagram
    ]
    for (const [i, frame] of cases.entries()) {
      const open = await rawOpen(raw, b.address, { id: freshId(), srcCid: 3000 + i })
      await raw.send(b.address, data({ dstCid: open.dstCid, seq: 0, confirm: open.confirm, frames: [frame] }))
      const err = await b.errors.count(`BAD_FRAME #${i + 1}`, i + 1, (e) => e.code === 'BAD_FRAME')
      assert.match(err[i]!.message, /malformed datagram/)
    }
    assert.is(b.frames.items.length, 0)
    assert.is(b.transport.stats.inboundConnections, 0)
    assert.is(b.transport.stats.reassemblyBytes, 0)
    await raw.received.count('a RESET for each', cases.length, (d) => typeOf(d) === RESET)
  }),
)

test(
  'out-of-order datagrams are held within the window and maxBufferedBytes, then delivered in order',
  withHarness(async (h) => {
    const b = await h.node({ windowPackets: 16, maxBufferedBytes: 2000 })
    const raw = await h.raw()
    const open = await rawOpen(raw, b.address, { id: freshId(), srcCid: 4004 })
    const frame = (seq: number) =>
      data({ dstCid: open.dstCid, seq, confirm: open.confirm, frames: [msgFrame(pattern(300, seq))] })
    // Datagrams 1..9 before 0: 2000 bytes of room holds the first few of them; 16 and beyond are
    // outside the window.
    for (let seq = 1; seq < 10; seq++) await raw.send(b.address, frame(seq))
    await raw.send(b.address, frame(16))
    await raw.send(b.address, frame(0))
    const held = Math.floor(2000 / frame(1).length)
    await b.frames.count('datagram 0 and those held', 1 + held)
    assert.equal(
      b.frames.items.map((r) => r.frame[0]),
      Array.from({ length: 1 + held }, (_, seq) => pattern(300, seq)[0]),
      'delivered in sequence order',
    )
    assert.ok(b.frames.items.every((r, seq) => sameBytes(r.frame, pattern(300, seq))))
    const s = b.transport.stats
    assert.is(s.outOfWindowDropped, 9 - held + 1, 'the ones without room, and the one beyond the window')
    assert.is(s.bufferedBytes, 0)
    // The peer retransmits what was dropped: it is delivered, in order, each once.
    await raw.send(b.address, frame(3)) // a duplicate
    for (let seq = held + 1; seq < 10; seq++) await raw.send(b.address, frame(seq))
    await b.frames.count('all ten', 10)
    assert.ok(b.frames.items.every((r, seq) => sameBytes(r.frame, pattern(300, seq))))
    assert.ok(b.transport.stats.duplicatesDropped >= 1)
    // Every one of them was acknowledged: an ACK (to the listen address in the HELLO) names 10.
    await raw.received.next('an ack of all ten', (d) => d.msg[4] === ACK && d.msg.readUInt32BE(18) === 10)
  }),
)

test.run()
