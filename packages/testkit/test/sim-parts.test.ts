// The simulator's parts checked on their own against simple reference models (STYLE.md, convention
// 9): the event queue and the node timers against a sort by (time, seq), the oracle against brute force on bigints, and
// messageSize against the real codec. Randomised inputs come from the printed seed; PASTRY_SEED
// replays them (convention 7).

import { readdirSync, readFileSync } from 'node:fs'
import {
  createRng,
  encodeMessage,
  Id,
  MESSAGES,
  type Message,
  type NodeHandle,
  type Rng,
  randomId,
} from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  DELIVERY_DUPLICATE,
  drawFaults,
  EventQueue,
  messageSize,
  Oracle,
  QueueFullError,
} from '../src/sim/index.js'
import { interpretedMessageSize, sizedHandle } from '../src/sim/size.js'
import { TimerHeap } from '../src/sim/timers.js'
import { SEED } from './_seed.js'

const seed = `parts-${SEED}`

// ---------------------------------------------------------------------------------------------
// Reference math on bigints.

const RING = 1n << 128n
const mod = (x: bigint): bigint => ((x % RING) + RING) % RING
const refDistance = (a: bigint, b: bigint): bigint => {
  const d = mod(a - b)
  return d <= RING - d ? d : RING - d
}
/** Negative when a is closer to key; on equal distance the smaller id wins. */
const refCompare = (key: bigint, a: bigint, b: bigint): number => {
  const da = refDistance(key, a)
  const db = refDistance(key, b)
  if (da !== db) return da < db ? -1 : 1
  return a < b ? -1 : a > b ? 1 : 0
}
const bruteClosest = (live: readonly bigint[], key: bigint): bigint | undefined =>
  live.length === 0 ? undefined : live.reduce((best, x) => (refCompare(key, x, best) < 0 ? x : best))
/** Brute-force true leaf set: the L/2 nearest clockwise and counter-clockwise, by full sort. */
function bruteLeafSet(live: readonly bigint[], self: bigint, L: number): { cw: bigint[]; ccw: bigint[] } {
  const others = live.filter((x) => x !== self)
  const cw = [...others].sort((a, b) => (mod(a - self) < mod(b - self) ? -1 : 1)).slice(0, L / 2)
  const ccw = [...others].sort((a, b) => (mod(self - a) < mod(self - b) ? -1 : 1)).slice(0, L / 2)
  return { cw, ccw }
}

// ---------------------------------------------------------------------------------------------
// Queue

test('queue: pops in (time, seq) order, ties in insertion order, through growth', () => {
  const rng = createRng(`${seed}/queue`)
  const q = new EventQueue(1 << 20, 4)
  const ref: { time: number; seq: number; node: number }[] = []
  let popped: { time: number; seq: number; node: number }[] = []
  let n = 0
  // Interleave pushes and pops; few distinct times, so ties are common.
  for (let round = 0; round < 20_000; round++) {
    if (rng.float() < 0.6 || q.size === 0) {
      const time = rng.int(50)
      const seq = q.push(time, 1, n, -1, time * 2, { n })
      ref.push({ time, seq, node: n })
      n++
    } else {
      assert.ok(q.pop())
      popped.push({ time: q.topTime, seq: q.topSeq, node: q.topNode })
      assert.is(q.topAux, q.topTime * 2)
      assert.is((q.topObj as { n: number }).n, q.topNode)
    }
  }
  while (q.pop()) popped.push({ time: q.topTime, seq: q.topSeq, node: q.topNode })
  assert.is(q.pop(), false)
  assert.is(popped.length, ref.length)
  // Check each pop was the minimum of what was pending at the time: replay against a sorted model.
  const model = new EventQueue(1 << 20)
  const pending: { time: number; seq: number; node: number }[] = []
  const rng2 = createRng(`${seed}/queue`)
  popped = []
  let m = 0
  for (let round = 0; round < 20_000; round++) {
    if (rng2.float() < 0.6 || pending.length === 0) {
      const time = rng2.int(50)
      const seq = model.push(time, 1, m, -1, 0, undefined)
      pending.push({ time, seq, node: m })
      m++
    } else {
      model.pop()
      pending.sort((a, b) => a.time - b.time || a.seq - b.seq)
      const want = pending.shift()!
      assert.equal({ time: model.topTime, seq: model.topSeq, node: model.topNode }, want)
    }
  }
})

test('queue: seqs count pushes; equal times come out in push order', () => {
  const q = new EventQueue()
  for (let i = 0; i < 100; i++) q.push(7, 2, i, 0, 0, undefined)
  q.push(3, 2, 1000, 0, 0, undefined)
  assert.is(q.nextSeq, 101)
  assert.ok(q.pop())
  assert.is(q.topNode, 1000)
  for (let i = 0; i < 100; i++) {
    q.pop()
    assert.is(q.topNode, i)
  }
  assert.is(q.peekTime(), Number.POSITIVE_INFINITY)
})

test('timers: one wake-up per node, moved, cancelled and taken in (time, seq) order, through growth', () => {
  const rng = createRng(`${seed}/timers`)
  const heap = new TimerHeap(2)
  const model = new Map<number, { time: number; seq: number }>()
  let seq = 0
  const earliest = (): [number, { time: number; seq: number }] | undefined => {
    let best: [number, { time: number; seq: number }] | undefined
    for (const e of model)
      if (
        best === undefined ||
        e[1].time < best[1].time ||
        (e[1].time === best[1].time && e[1].seq < best[1].seq)
      )
        best = e
    return best
  }
  for (let round = 0; round < 20_000; round++) {
    const r = rng.float()
    const node = rng.int(300)
    if (r < 0.55) {
      // Few distinct times, so that ties (broken by seq) are common; moves go both ways.
      const time = rng.int(40)
      heap.set(node, time, seq)
      model.set(node, { time, seq })
      seq++
    } else if (r < 0.7) {
      heap.delete(node)
      model.delete(node)
    } else {
      const want = earliest()
      assert.is(heap.peekNode(), want === undefined ? -1 : want[0])
      assert.is(heap.peekTime(), want === undefined ? Number.POSITIVE_INFINITY : want[1].time)
      heap.pop()
      if (want !== undefined) model.delete(want[0])
    }
    assert.is(heap.size, model.size)
    assert.ok(Object.is(heap.timeOf(node), model.get(node)?.time ?? Number.NaN))
    assert.is(heap.has(node), model.has(node))
  }
  // Draining gives every remaining wake-up once, in order.
  let last = { time: Number.NEGATIVE_INFINITY, seq: Number.NEGATIVE_INFINITY }
  while (heap.size > 0) {
    const node = heap.peekNode()
    const e = model.get(node)!
    assert.ok(e.time > last.time || (e.time === last.time && e.seq > last.seq))
    assert.is(heap.peekSeq(), e.seq)
    last = e
    model.delete(node)
    heap.pop()
  }
  assert.is(model.size, 0)
  assert.is(heap.peekTime(), Number.POSITIVE_INFINITY)
})

test('timers: a seq taken from the queue orders a wake-up against queued events', () => {
  const q = new EventQueue()
  q.push(5, 2, 0, 0, 0, undefined)
  const s = q.takeSeq()
  assert.is(s, 1)
  assert.is(q.push(5, 2, 1, 0, 0, undefined), 2)
  assert.is(q.peekSeq(), 0)
  q.pop()
  // The wake-up's seq falls between the two queued events at the same time.
  assert.ok(s < q.peekSeq())
})

test('queue: bounded by maxEvents', () => {
  const q = new EventQueue(8, 2)
  for (let i = 0; i < 8; i++) q.push(i, 1, 0, 0, 0, undefined)
  assert.throws(
    () => q.push(9, 1, 0, 0, 0, undefined),
    (e: unknown) => e instanceof QueueFullError,
  )
  q.pop()
  q.push(9, 1, 0, 0, 0, undefined) // room again
  assert.is(q.size, 8)
})

// ---------------------------------------------------------------------------------------------
// Oracle

/** Small chunks by default, so that splitting and dropping chunks is exercised. */
function oracleOver(ids: readonly Id[], chunkSize = 2): Oracle {
  return new Oracle((i) => ids[i]!, { chunkSize })
}

for (const chunkSize of [1, 3, 512])
  test(`oracle: closestLive equals brute force, through adds and removes (chunks of ${chunkSize})`, () => {
    const rng = createRng(`${seed}/closest`)
    const ids = Array.from({ length: 300 }, () => randomId(rng))
    const big = ids.map((id) => id.toBigInt())
    const oracle = oracleOver(ids, chunkSize)
    const live = new Set<number>()
    const check = () => {
      const liveBig = [...live].map((i) => big[i]!)
      for (let k = 0; k < 60; k++) {
        // Random keys, node ids themselves, and points right next to them.
        const key =
          k % 3 === 0 ? randomId(rng) : Id.fromBigInt(mod(big[rng.int(ids.length)]! + BigInt(k % 3) - 1n))
        const got = oracle.closestLive(key)
        const want = bruteClosest(liveBig, key.toBigInt())
        assert.is(got === undefined ? undefined : big[got], want)
      }
    }
    check() // empty
    for (let step = 0; step < 600; step++) {
      const i = rng.int(ids.length)
      if (rng.float() < 0.65) {
        oracle.add(i)
        live.add(i)
      } else {
        oracle.remove(i)
        live.delete(i)
      }
      assert.is(oracle.liveCount, live.size)
      if (step % 50 === 0) check()
    }
    check()
    assert.equal(
      oracle.liveIndexes().map((i) => big[i]!),
      [...live].map((i) => big[i]!).sort((a, b) => (a < b ? -1 : 1)),
    )
    // Leaf sets after the same churn, and random picks land on live nodes only.
    const liveBig = [...live].map((i) => big[i]!)
    for (let i = 0; i < ids.length; i += 7) {
      const t = oracle.trueLeafSet(i, 8)
      const want = bruteLeafSet(liveBig, big[i]!, 8)
      assert.equal(
        t.cw.map((x) => x.toBigInt()),
        want.cw,
      )
      assert.equal(
        t.ccw.map((x) => x.toBigInt()),
        want.ccw,
      )
    }
    const seen = new Set<number>()
    for (let k = 0; k < 2000; k++) {
      const r = oracle.randomLive(rng)!
      assert.ok(live.has(r))
      seen.add(r)
    }
    assert.ok(seen.size > live.size * 0.9)
    // Emptied and refilled.
    for (const i of [...live]) oracle.remove(i)
    assert.is(oracle.liveCount, 0)
    assert.is(oracle.closestLive(ids[0]!), undefined)
    assert.is(oracle.randomLive(rng), undefined)
    assert.equal(oracle.trueLeafSet(0, 8), { cw: [], ccw: [] })
    oracle.add(5)
    assert.is(oracle.closestLive(ids[0]!), 5)
  })

test('oracle: closestLive breaks a tie toward the smaller id', () => {
  const a = Id.fromBigInt(100n)
  const b = Id.fromBigInt(200n)
  const oracle = oracleOver([b, a])
  oracle.add(0)
  oracle.add(1)
  assert.is(oracle.closestLive(Id.fromBigInt(150n)), 1) // a, the smaller
  assert.is(oracle.closestLive(Id.fromBigInt(151n)), 0)
  // Across zero: 2^128 - 50 and 50 are both 50 from 0.
  const c = Id.fromBigInt(RING - 50n)
  const d = Id.fromBigInt(50n)
  const o2 = oracleOver([c, d])
  o2.add(0)
  o2.add(1)
  assert.is(o2.closestLive(Id.ZERO), 1)
})

test('oracle: a lookup sent again counts once, by whichever copy arrives first', () => {
  const ids = [Id.fromBigInt(100n), Id.fromBigInt(200n), Id.fromBigInt(300n)]
  const oracle = oracleOver(ids)
  for (let i = 0; i < 3; i++) oracle.add(i)
  const key = Id.fromBigInt(210n) // closest live: node 1
  const k = oracle.issue(0, 11, key, 0)
  const other = oracle.issue(0, 12, key, 0)
  oracle.retry(k, 0, 21)
  oracle.retry(k, 0, 22) // a third send: still one retried lookup
  assert.throws(() => oracle.retry(99, 0, 23), /no lookup 99/)
  // The second copy arrives first; then the first copy, late: a duplicate.
  assert.is(oracle.recordDelivery(1, true, 0, 21, key, 5, 2), k)
  assert.is(oracle.recordDelivery(1, true, 0, 11, key, 6, 2), DELIVERY_DUPLICATE)
  // The other lookup, never sent again, delivered by its own copy.
  assert.is(oracle.recordDelivery(1, true, 0, 12, key, 7, 1), other)
  const sum = oracle.summary()
  assert.is(sum.issued, 2)
  assert.is(sum.delivered, 2)
  assert.is(sum.correct, 2)
  assert.is(sum.duplicates, 1)
  assert.is(sum.retried, 1)
  assert.is(sum.deliveredByRetry, 1)
  assert.is(sum.lost, 0)
  assert.equal(oracle.lookup(k).deliveredAt, [1, 1])
  assert.is(oracle.lookup(k).msgId, 11)
})

test('oracle: trueLeafSet equals brute force, small rings included', () => {
  const rng = createRng(`${seed}/leafset`)
  for (const [n, L] of [
    [1, 16],
    [2, 16],
    [5, 16],
    [9, 8],
    [17, 16],
    [200, 16],
    [64, 32],
  ] as const) {
    const ids = Array.from({ length: n + 3 }, () => randomId(rng))
    const big = ids.map((id) => id.toBigInt())
    const oracle = oracleOver(ids, 1 + (n % 4))
    for (let i = 0; i < n; i++) oracle.add(i)
    const live = big.slice(0, n)
    // Live nodes and non-live ones (n..n+2) alike.
    for (let i = 0; i < n + 3; i++) {
      const got = oracle.trueLeafSet(i, L)
      const want = bruteLeafSet(live, big[i]!, L)
      assert.equal(
        got.cw.map((x) => x.toBigInt()),
        want.cw,
        `cw of ${i} in ${n}`,
      )
      assert.equal(
        got.ccw.map((x) => x.toBigInt()),
        want.ccw,
        `ccw of ${i} in ${n}`,
      )
    }
  }
})

test('oracle: checkLeafSets reports missing and extra members', () => {
  const rng = createRng(`${seed}/check`)
  const ids = Array.from({ length: 40 }, () => randomId(rng))
  const oracle = oracleOver(ids)
  for (let i = 0; i < 40; i++) oracle.add(i)
  const L = 8
  const truth = (i: number) => {
    const t = oracle.trueLeafSet(i, L)
    return [...t.ccw].reverse().concat(t.cw)
  }
  assert.equal(oracle.checkLeafSets(truth, L), [])
  const stranger = ids.find((x) => !x.equals(ids[7]!) && !truth(7).some((y) => y.equals(x)))!
  const wrong = (i: number) => (i === 7 ? [...truth(i).slice(1), stranger] : truth(i))
  const mismatches = oracle.checkLeafSets(wrong, L)
  assert.is(mismatches.length, 1)
  assert.is(mismatches[0]!.index, 7)
  assert.is(mismatches[0]!.missing.length, 1)
  assert.ok(mismatches[0]!.missing[0]!.equals(truth(7)[0]!))
  assert.equal(mismatches[0]!.extra, [stranger])
  // Skipped nodes are not checked.
  assert.equal(
    oracle.checkLeafSets(() => undefined, L),
    [],
  )
})

test('oracle: lookups judged correct, incorrect, duplicate, untracked, lost', () => {
  const ids = [10n, 20n, 30n, 40n].map((x) => Id.fromBigInt(x))
  const oracle = oracleOver(ids)
  for (let i = 0; i < 4; i++) oracle.add(i)
  const k0 = oracle.issue(0, 1, Id.fromBigInt(21n), 0) // root: node 1
  const k1 = oracle.issue(0, 2, Id.fromBigInt(39n), 0) // root: node 3
  oracle.issue(2, 1, Id.fromBigInt(1n), 0) // never delivered
  assert.is(oracle.recordDelivery(1, true, 0, 1, Id.fromBigInt(21n), 5, 2), k0)
  assert.is(oracle.recordDelivery(1, true, 0, 1, Id.fromBigInt(21n), 6, 2), -2) // duplicate
  assert.is(oracle.recordDelivery(2, true, 0, 2, Id.fromBigInt(39n), 7, 1), k1) // wrong node
  assert.is(oracle.recordDelivery(2, true, 3, 99, Id.fromBigInt(39n), 7, 1), -1) // untracked, wrong
  assert.is(oracle.recordDelivery(3, false, 3, 98, Id.fromBigInt(39n), 7, 1), -1) // by an inactive node
  oracle.recordFailure(2, 1)
  assert.equal(oracle.summary(), {
    issued: 3,
    delivered: 2,
    correct: 1,
    incorrect: 2,
    duplicates: 1,
    byInactive: 1,
    lost: 1,
    failed: 1,
    untracked: 2,
    retried: 0,
    deliveredByRetry: 0,
  })
  const r = oracle.lookup(k0)
  assert.equal(r.deliveredAt, [1, 1])
  assert.is(r.correct, true)
  assert.is(r.hops, 2)
  assert.is(r.deliveryTime, 5)
  assert.is(oracle.lookup(k1).correct, false)
  assert.is(oracle.lookup(2).deliveryTime, undefined)
})

// ---------------------------------------------------------------------------------------------
// messageSize against the codec

function handle(rng: Rng, address = `sim:${rng.int(100_000)}`): NodeHandle {
  return { id: randomId(rng), address }
}

test('messageSize equals the encoded frame length for every message type', () => {
  const rng = createRng(`${seed}/size`)
  const from = handle(rng)
  const leafSet = Array.from({ length: 16 }, () => handle(rng))
  const rows = [
    { row: 0, entries: Array.from({ length: 15 }, () => handle(rng)) },
    { row: 3, entries: [handle(rng, '[2001:db8::1]:4000')] },
  ]
  const big = 2 ** 40 + 7
  const messages: Message[] = [
    {
      type: 'route',
      from,
      msgId: 3,
      key: randomId(rng),
      origin: handle(rng, 'host.example:9000'),
      hops: 200,
      app: 'pubsub-é',
      payload: new Uint8Array(300),
    },
    {
      type: 'route',
      from,
      msgId: big,
      key: randomId(rng),
      origin: from,
      hops: 0,
      app: '',
      payload: new Uint8Array(70_000),
    },
    { type: 'ack', from, msgId: 70_000 },
    { type: 'join', from, msgId: 2 ** 32 - 1, joiner: from, hops: 4 },
    { type: 'joinRows', from, rows },
    { type: 'joinReply', from, leafSet, rows: [] },
    { type: 'announce', from, leafSet },
    { type: 'announceAck', from, accepted: true, leafSet: [] },
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
    { type: 'direct', from, app: 'x'.repeat(64), payload: new Uint8Array(23) },
    { type: 'direct', from, app: '😀'.repeat(10), payload: new Uint8Array(24) },
    { type: 'indirectProbe', from, nonce: 300, target: leafSet[4]! },
    { type: 'indirectProbeReply', from, nonce: 2 ** 31, target: randomId(rng), alive: false },
  ]
  // Every type of the catalogue is here, so that a new type cannot miss the check.
  assert.equal([...new Set(messages.map((m) => m.type))].sort(), Object.keys(MESSAGES).sort())
  for (const m of messages) {
    const length = encodeMessage(m).length
    assert.is(messageSize(m), length, m.type)
    // The compiled walk and the interpreted one agree.
    assert.is(interpretedMessageSize(m), length, m.type)
  }
  // A type outside the catalogue counts nothing rather than throwing.
  assert.is(messageSize({ type: 'nonsense', from } as unknown as Message), 0)
})

test("messageSize counts the simulator's sized handles exactly, and they look like plain ones", () => {
  const rng = createRng(`${seed}/size/sized`)
  const addresses = [
    'sim:0',
    `sim:${rng.int(1_000_000)}`,
    '[2001:db8::1]:4000',
    'host.example:9000',
    `${'a'.repeat(40)}.example:1`,
  ]
  const plain = addresses.map((address) => handle(rng, address))
  const sized = plain.map((h) => sizedHandle(h.id, h.address))
  for (let i = 0; i < plain.length; i++) {
    // Nothing that enumerates, compares or serialises a handle sees the size.
    assert.equal(sized[i], plain[i])
    assert.equal(Object.keys(sized[i]!), ['id', 'address'])
    assert.ok(Object.isFrozen(sized[i]))
  }
  const from = sized[3]!
  const leafSet = Array.from({ length: 16 }, (_, k) => sized[k % sized.length]!)
  const messages: Message[] = [
    { type: 'heartbeat', from },
    { type: 'heartbeat', from: sized[4]!, leafSet },
    { type: 'joinRows', from, rows: [{ row: 0, entries: sized }] },
    { type: 'probeReply', from: sized[1]!, nonce: 7, leafSet: sized.slice(0, 3) },
    { type: 'join', from: sized[2]!, msgId: 9, joiner: sized[0]!, hops: 1 },
  ]
  for (const m of messages) assert.is(messageSize(m), encodeMessage(m).length, m.type)
})

// ---------------------------------------------------------------------------------------------
// drawFaults

test('drawFaults: deterministic per seed, within its ranges, and varied', () => {
  const a = drawFaults(createRng(`${seed}/faults`))
  const b = drawFaults(createRng(`${seed}/faults`))
  assert.equal(a, b)
  let quiet = 0
  let lossy = 0
  for (let s = 0; s < 200; s++) {
    const f = drawFaults(createRng(`${seed}/faults/${s}`))
    assert.ok(f.network.loss >= 0 && f.network.loss <= 0.1)
    assert.ok(f.network.duplicate >= 0 && f.network.duplicate <= 0.05)
    assert.ok(f.network.jitterMs >= 0 && f.network.jitterMs < 50)
    assert.ok(f.crashFraction >= 0 && f.crashFraction <= 0.25)
    if (f.partition !== null) assert.ok(f.partition.fraction >= 0.1 && f.partition.fraction <= 0.5)
    if (f.churn !== null) {
      assert.ok(f.churn.session.meanMs >= 60_000 && f.churn.session.meanMs <= 30 * 60_000)
      if (f.churn.session.kind === 'pareto') assert.ok(f.churn.session.shape > 1)
    }
    if (f.network.loss === 0 && f.partition === null && f.crashFraction === 0) quiet++
    if (f.network.loss > 0) lossy++
  }
  assert.ok(quiet > 5 && quiet < 60, `quiet plans: ${quiet}`)
  // Binomial(200, 1/2): 100 ± 35 is 5 standard deviations.
  assert.ok(lossy > 64 && lossy < 136, `lossy plans: ${lossy}`)
})

// ---------------------------------------------------------------------------------------------
// Purity: the simulation draws time and randomness only from the seed (STYLE.md, convention 1).

test('purity: nothing under src/sim reads a clock or unseeded randomness', () => {
  const dir = new URL('../src/sim/', import.meta.url)
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'))
  assert.ok(files.includes('simulator.ts'))
  for (const f of files) {
    // Comments may name what is banned; code may not use it.
    const code = readFileSync(new URL(f, dir), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '')
    for (const banned of [
      'Math.random',
      'Date.now',
      'performance.now',
      'setTimeout',
      'setInterval',
      'crypto.',
      'process.hrtime',
    ])
      assert.not.ok(code.includes(banned), `${f} uses ${banned}`)
  }
})

test.run()
