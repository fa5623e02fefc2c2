// The parts that let simulator shards run in separate threads: messages as float64 words (against
// every message type of the catalogue) and the shared-memory ring (against a plain array queue).
// Randomised inputs come from the printed seed; PASTRY_SEED replays them.

import { createRng, Id, MESSAGES, type Message, type NodeHandle, type Rng, randomId } from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { runProtocolExperiment } from '../src/protocol-experiment.js'
import { runProtocolExperimentSharded } from '../src/shard-experiment.js'
import { EventQueue } from '../src/sim/queue.js'
import { ringBytes, WordRing } from '../src/sim/shard/ring.js'
import { type HandleIndex, readEnd, readMessage, WordWriter, writeMessage } from '../src/sim/shard/words.js'
import { SEED } from './_seed.js'

const seed = `shard-${SEED}`

function names(count: number, rng: Rng): HandleIndex & { readonly handles: NodeHandle[] } {
  const handles = Array.from({ length: count }, (_, i) => ({ id: randomId(rng), address: `sim:${i}` }))
  return {
    handles,
    indexOf: (h) => Number(h.address.slice(4)),
    handleOf: (i) => handles[i]!,
  }
}

function sampleMessages(rng: Rng, hs: readonly NodeHandle[]): Message[] {
  const pick = () => hs[rng.int(hs.length)]!
  const from = pick()
  const leafSet = Array.from({ length: 16 }, pick)
  const rows = [
    { row: 0, entries: Array.from({ length: 15 }, pick) },
    { row: 3, entries: [pick()] },
  ]
  return [
    {
      type: 'route',
      from,
      msgId: 2 ** 52 + 7,
      key: randomId(rng),
      origin: pick(),
      hops: 200,
      app: 'pubsub-é😀',
      payload: Uint8Array.from({ length: 301 }, () => rng.int(256)),
    },
    {
      type: 'route',
      from,
      msgId: 0,
      key: randomId(rng),
      origin: from,
      hops: 0,
      app: '',
      payload: new Uint8Array(0),
    },
    { type: 'ack', from, msgId: 70_000 },
    { type: 'join', from, msgId: 2 ** 32 - 1, joiner: from, hops: 4 },
    { type: 'joinRows', from, rows },
    { type: 'joinReply', from, leafSet, rows: [] },
    { type: 'announce', from, leafSet },
    { type: 'announceAck', from, accepted: true, leafSet: [] },
    { type: 'announceAck', from, accepted: false, leafSet },
    { type: 'heartbeat', from },
    { type: 'heartbeat', from, leafSet },
    { type: 'heartbeat', from, rttMicros: 1_500_000 },
    { type: 'heartbeat', from, leafSet: leafSet.slice(0, 9), rttMicros: 12 },
    { type: 'probe', from, nonce: 0xffffffff },
    { type: 'probe', from, nonce: 24, leafSet },
    { type: 'probeReply', from, nonce: 23, leafSet: leafSet.slice(0, 3) },
    { type: 'leafSetRequest', from },
    { type: 'leafSetReply', from, leafSet },
    { type: 'rowRequest', from, row: 31 },
    { type: 'rowReply', from, row: 127, entries: rows[0]!.entries },
    { type: 'leave', from, leafSet },
    {
      type: 'direct',
      from,
      app: 'x'.repeat(64),
      payload: Uint8Array.from({ length: 23 }, () => rng.int(256)),
    },
    { type: 'indirectProbe', from, nonce: 300, target: leafSet[4]! },
    { type: 'indirectProbeReply', from, nonce: 2 ** 31, target: randomId(rng), alive: false },
  ]
}

test('every message type comes back from words equal, with the reader’s own handles', () => {
  const rng = createRng(`${seed}/words`)
  const sender = names(50, rng)
  // The reader's handles are other objects with the same ids and addresses.
  const reader: HandleIndex = {
    indexOf: sender.indexOf,
    handleOf: (i) => ({ ...sender.handles[i]! }),
  }
  const readerHandles = sender.handles.map((h) => ({ ...h }))
  reader.handleOf = (i) => readerHandles[i]!
  const messages = sampleMessages(rng, sender.handles)
  assert.equal([...new Set(messages.map((m) => m.type))].sort(), Object.keys(MESSAGES).sort())
  const out = new WordWriter(4)
  for (const m of messages) writeMessage(out, m, sender)
  let at = 0
  for (const m of messages) {
    const back = readMessage(out.words, at, reader)
    assert.equal(back, m, m.type)
    assert.ok(back.from === readerHandles[sender.indexOf(m.from)], 'handles are the reader’s')
    at = readEnd()
  }
  assert.is(at, out.length)
  // Absent optional fields stay absent rather than becoming undefined properties.
  out.reset()
  writeMessage(out, { type: 'probe', from: sender.handles[0]!, nonce: 1 }, sender)
  assert.equal(Object.keys(readMessage(out.words, 0, reader)), ['type', 'from', 'nonce'])
  assert.throws(
    () => writeMessage(out, { type: 'nonsense', from: sender.handles[0]! } as never, sender),
    /nonsense/,
  )
  out.reset()
  out.push(99)
  assert.throws(() => readMessage(out.words, 0, reader), /code 99/)
  // Ids survive with every bit, the sign bits of each word included.
  out.reset()
  const key = Id.fromWords(-1, 0x7fffffff, -0x80000000, 1)
  writeMessage(
    out,
    {
      type: 'route',
      from: sender.handles[1]!,
      msgId: 1,
      key,
      origin: sender.handles[2]!,
      hops: 1,
      app: 'a',
      payload: new Uint8Array(0),
    },
    sender,
  )
  assert.ok((readMessage(out.words, 0, reader) as Message & { key: Id }).key.equals(key))
})

test('a ring hands over records in order across its wrap, and refuses what does not fit', () => {
  const rng = createRng(`${seed}/ring`)
  const capacity = 64
  const buffer = new SharedArrayBuffer(ringBytes(capacity))
  const writer = new WordRing(buffer, capacity)
  const reader = new WordRing(buffer, capacity)
  const model: number[][] = []
  let next = 0
  for (let step = 0; step < 5000; step++) {
    if (rng.int(2) === 0) {
      const n = rng.int(20)
      const rec = Float64Array.from({ length: n }, () => next++)
      const room = capacity - writer.used
      const ok = writer.tryWrite(rec, n)
      assert.is(ok, n + 1 <= room, `write of ${n} with ${room} free`)
      if (ok) model.push([...rec])
      else next -= n
    } else {
      const n = reader.read()
      const want = model.shift()
      if (want === undefined) assert.is(n, -1)
      else assert.equal([...reader.lastRecord.subarray(0, n)], want)
    }
  }
  assert.throws(() => writer.tryWrite(new Float64Array(64), 64), /cannot fit/)
  assert.throws(() => new WordRing(buffer, 48), /power of two/)
  assert.throws(() => new WordRing(new SharedArrayBuffer(64), 64), /needs/)
})

test('events handed over with their own seqs pop in (time, seq) order among the queue’s own', () => {
  const rng = createRng(`${seed}/queue`)
  const q = new EventQueue(1 << 16, 4)
  const model: { time: number; seq: number; node: number }[] = []
  let handed = 2 ** 52
  for (let step = 0; step < 4000; step++) {
    const r = rng.int(3)
    // Few distinct times, so that ties are common.
    const time = rng.int(40)
    if (r === 0) model.push({ time, seq: q.push(time, 40, step, 0, 0, undefined), node: step })
    else if (r === 1)
      model.push({ time, seq: q.pushWithSeq(time, 40, step, 0, 0, undefined, handed++), node: step })
    else if (model.length > 0) {
      model.sort((a, b) => a.time - b.time || a.seq - b.seq)
      const want = model.shift()!
      assert.is(q.peekNode(), want.node)
      assert.is(q.peekKind(), 40)
      assert.ok(q.pop())
      assert.is(q.topTime, want.time)
      assert.is(q.topSeq, want.seq)
    }
  }
})

// A sharded run must be the single-threaded run to the event. It could differ only where a node of
// one shard changes membership at the very instant of a join command (the command then sees the
// other shard's change as not yet made); without loss, nodes become active on messages, whose
// arrival times never fall on a command's round time.
for (const topology of ['sphere', 'plane', 'uniform'] as const) {
  test(`two shards run the ${topology} experiment exactly as one simulator does`, async () => {
    const options = {
      nodes: 160,
      lookups: 600,
      seed: `${seed}/sharded/${topology}`,
      topology,
      joinSpacingMs: 7,
      lookupSpacingMs: 0.5,
    }
    const one = runProtocolExperiment(options)
    const two = await runProtocolExperimentSharded(options)
    assert.is(one.correct, options.lookups, 'the single-threaded run delivers every lookup correctly')
    for (const key of [
      'events',
      'delivered',
      'correct',
      'incorrect',
      'lost',
      'simulatedMs',
      'joinMessagesPerNode',
      'notActiveAfterJoin',
      'leafSetMismatches',
      'live',
    ] as const)
      assert.is(two[key], one[key], key)
    // The same messages over node-seconds summed per shard: equal but for the last bit or so.
    assert.ok(
      Math.abs(two.maintenancePerNodePerSec - one.maintenancePerNodePerSec) <=
        1e-12 * one.maintenancePerNodePerSec,
      `maintenance ${two.maintenancePerNodePerSec} against ${one.maintenancePerNodePerSec}`,
    )
    assert.equal(two.messages, one.messages)
    assert.equal(two.bytes, one.bytes)
    assert.equal(two.hops, one.hops)
    assert.equal(two.rdp, one.rdp)
    assert.equal(two.nodeEvents, one.nodeEvents)
    assert.equal(two.table, one.table)
    // Deterministic: the same shards again, the same trace hashes.
    const again = await runProtocolExperimentSharded(options)
    assert.is(again.traceHash, two.traceHash)
  })
}

test('a sharded run refuses what it cannot split', async () => {
  const base = { nodes: 10, lookups: 1, seed }
  for (const extra of [
    { failFraction: 0.1 },
    { loss: 0.01 },
    { churnSessionMin: 30, churnDurationMin: 10 },
    { lookupRetry: { timeoutMs: 1000, attempts: 2 } },
    { encode: true },
    { onLookup: () => {} },
    { onNodes: () => {} },
  ]) {
    let error: unknown
    try {
      await runProtocolExperimentSharded({ ...base, ...extra })
    } catch (e) {
      error = e
    }
    assert.ok(error instanceof Error && error.name === 'ConfigError', JSON.stringify(extra))
  }
})

test.run()
