// Fuzzing the wire decoder through fast-check: random bytes, mutated valid frames and random CBOR
// shaped like frames. Every input must yield either a message that re-encodes to a frame decoding to
// the same message, or a WireError with a known code: never an exception, never a hang.
// PASTRY_SEED=<seed> replays a run; a failure prints fast-check's { seed, path }.

import { Encoder } from 'cbor-x'
import fc from 'fast-check'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Id } from '../src/id/id.js'
import {
  decodeMessage,
  encodeMessage,
  MAX_LEAF_SET_HANDLES,
  MESSAGE_TYPES,
  type Message,
  type MessageType,
  type NodeHandle,
  PROTOCOL_VERSION,
  WIRE_ERROR_CODES,
} from '../src/wire/index.js'
import { SEED } from './_seed.js'

/** Cases per family; their sum is the total checked below. */
const RUNS = { randomBytes: 60_000, mutated: 100_000, randomCbor: 40_000 } as const
// No timing assertions: speed belongs to benchmarks. A decode that hung would stall this file, and
// the slowest decode is printed for information.

const KNOWN_CODES = new Set<string>(WIRE_ERROR_CODES)

// ---------------------------------------------------------------------------------------------------
// The corpus: valid messages of every type, at and away from their bounds.

const h = (i: number, address = `10.0.${i & 255}.${(i >> 8) & 255}:${4000 + i}`): NodeHandle => ({
  id: Id.fromWords(i * 0x9e3779b9, i, ~i, i * 7),
  address,
})
const handles = (n: number, base = 0): NodeHandle[] => Array.from({ length: n }, (_, i) => h(base + i))
const ME = h(1)

const CORPUS_BY_TYPE: { readonly [T in MessageType]: readonly Message[] } = {
  route: [
    {
      type: 'route',
      from: ME,
      msgId: 0,
      key: Id.ZERO,
      origin: ME,
      hops: 0,
      app: '',
      payload: new Uint8Array(0),
    },
    {
      type: 'route',
      from: ME,
      msgId: 2 ** 53 - 1,
      key: Id.MAX,
      origin: h(2, '[2001:db8::1]:443'),
      hops: 255,
      app: 'pubsub',
      payload: new Uint8Array(40).map((_, i) => i * 13),
    },
    {
      type: 'route',
      from: ME,
      msgId: 70_000,
      key: h(9).id,
      origin: h(3),
      hops: 24,
      app: 'é',
      payload: new Uint8Array(300),
    },
  ],
  ack: [
    { type: 'ack', from: ME, msgId: 1 },
    { type: 'ack', from: ME, msgId: 2 ** 32 },
  ],
  join: [{ type: 'join', from: ME, msgId: 9, joiner: h(5), hops: 2 }],
  joinRows: [
    { type: 'joinRows', from: ME, rows: [] },
    {
      type: 'joinRows',
      from: ME,
      rows: [
        { row: 0, entries: handles(3) },
        { row: 1, entries: handles(2, 10) },
      ],
    },
  ],
  joinReply: [
    {
      type: 'joinReply',
      from: ME,
      leafSet: handles(8),
      rows: [0, 1, 2].map((row) => ({ row, entries: handles(4, row * 16) })),
    },
  ],
  announce: [{ type: 'announce', from: ME, leafSet: handles(4) }],
  announceAck: [
    { type: 'announceAck', from: ME, accepted: true, leafSet: handles(2) },
    { type: 'announceAck', from: ME, accepted: false, leafSet: [] },
  ],
  heartbeat: [
    { type: 'heartbeat', from: ME },
    { type: 'heartbeat', from: ME, leafSet: handles(3) },
    { type: 'heartbeat', from: ME, rttMicros: 48_250 },
  ],
  probe: [
    { type: 'probe', from: ME, nonce: 0xffffffff },
    { type: 'probe', from: ME, nonce: 17, leafSet: handles(1) },
  ],
  probeReply: [{ type: 'probeReply', from: ME, nonce: 300 }],
  leafSetRequest: [{ type: 'leafSetRequest', from: ME }],
  leafSetReply: [{ type: 'leafSetReply', from: ME, leafSet: handles(MAX_LEAF_SET_HANDLES) }],
  rowRequest: [{ type: 'rowRequest', from: ME, row: 127 }],
  rowReply: [{ type: 'rowReply', from: ME, row: 3, entries: handles(5) }],
  leave: [{ type: 'leave', from: ME, leafSet: handles(6) }],
  direct: [{ type: 'direct', from: ME, app: 'kv', payload: new Uint8Array([1, 2, 3]) }],
  indirectProbe: [{ type: 'indirectProbe', from: ME, nonce: 41, target: h(2) }],
  indirectProbeReply: [
    { type: 'indirectProbeReply', from: ME, nonce: 41, target: h(2).id, alive: true },
    { type: 'indirectProbeReply', from: ME, nonce: 0, target: h(3).id, alive: false },
  ],
}
const CORPUS: readonly Uint8Array[] = MESSAGE_TYPES.flatMap((t) =>
  CORPUS_BY_TYPE[t].map((m) => encodeMessage(m)),
)

// ---------------------------------------------------------------------------------------------------
// The check every input goes through

type Stats = Map<string, number>

const plainOf = (v: unknown): unknown => {
  if (v instanceof Id) return `id:${v.toHex()}`
  if (v instanceof Uint8Array) return `bytes:${Array.from(v).join(',')}`
  if (Array.isArray(v)) return v.map(plainOf)
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainOf(x)]))
  }
  return v
}

let slowestMs = 0

function check(bytes: Uint8Array, stats: Stats): void {
  const started = performance.now()
  let r: ReturnType<typeof decodeMessage>
  try {
    r = decodeMessage(bytes)
  } catch (e) {
    throw new Error(`decodeMessage threw ${String(e)} on ${Buffer.from(bytes).toString('hex')}`)
  }
  const tookMs = performance.now() - started
  slowestMs = Math.max(slowestMs, tookMs)
  if (r.ok) {
    stats.set('ok', (stats.get('ok') ?? 0) + 1)
    const again = encodeMessage(r.message) // throws if the decoder let through an invalid message
    const r2 = decodeMessage(again)
    assert.ok(r2.ok, 'a re-encoded message decodes')
    if (r2.ok) assert.equal(plainOf(r2.message), plainOf(r.message))
  } else {
    stats.set(r.error.code, (stats.get(r.error.code) ?? 0) + 1)
    assert.ok(KNOWN_CODES.has(r.error.code), `unknown code ${r.error.code}`)
    assert.type(r.error.message, 'string')
    assert.ok(r.error.message.length > 0)
  }
}

function report(name: string, stats: Stats): void {
  const parts = [...stats.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`)
  console.log(`  [fuzz] ${name}: ${parts.join(', ')}`)
}

const total = (stats: Stats): number => [...stats.values()].reduce((a, b) => a + b, 0)

// ---------------------------------------------------------------------------------------------------
// Mutations of valid frames

type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'splice'; readonly at: number; readonly other: number; readonly otherAt: number }
  | { readonly kind: 'repeat'; readonly at: number; readonly length: number }

/** Bytes that are CBOR heads of interest: big lengths, tags, indefinite, break, floats, simple values. */
const INTERESTING = [
  0x00, 0x17, 0x18, 0x1b, 0x1c, 0x1f, 0x20, 0x3b, 0x40, 0x50, 0x51, 0x5a, 0x5f, 0x60, 0x7f, 0x80, 0x83, 0x89,
  0x98, 0x9a, 0x9b, 0x9f, 0xa0, 0xa1, 0xbf, 0xc0, 0xd8, 0xd9, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfb, 0xff,
]

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('flip'), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('set'),
      at: fc.nat(),
      value: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 255 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate'), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('insert'),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('delete'),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('splice'), at: fc.nat(), other: fc.nat(), otherAt: fc.nat() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('repeat'),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 40 }),
    }),
  },
)

function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const n = input.length
  const at = n === 0 ? 0 : m.at % (n + 1)
  switch (m.kind) {
    case 'flip': {
      if (n === 0) return input
      const out = input.slice()
      const i = m.at % n
      out[i] = out[i]! ^ (1 << m.bit)
      return out
    }
    case 'set': {
      if (n === 0) return input
      const out = input.slice()
      out[m.at % n] = m.value
      return out
    }
    case 'truncate':
      return input.slice(0, at)
    case 'insert': {
      const out = new Uint8Array(n + m.bytes.length)
      out.set(input.subarray(0, at))
      out.set(m.bytes, at)
      out.set(input.subarray(at), at + m.bytes.length)
      return out
    }
    case 'delete': {
      const out = new Uint8Array(n - Math.min(m.length, n - at))
      out.set(input.subarray(0, at))
      out.set(input.subarray(at + m.length), at)
      return out
    }
    case 'splice': {
      const other = CORPUS[m.other % CORPUS.length]!
      const from = m.otherAt % (other.length + 1)
      const out = new Uint8Array(at + other.length - from)
      out.set(input.subarray(0, at))
      out.set(other.subarray(from), at)
      return out
    }
    case 'repeat': {
      const chunk = input.subarray(at, at + m.length)
      const out = new Uint8Array(n + chunk.length)
      out.set(input.subarray(0, at + chunk.length))
      out.set(chunk, at + chunk.length)
      out.set(input.subarray(at + chunk.length), at + 2 * chunk.length)
      return out
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Random CBOR shaped like frames: [version, code, from, ...fields] with random items

const raw = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false })

const leafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.nat({ max: 300 }),
  fc.constantFrom(0, 1, 127, 128, 255, 256, 2 ** 32 - 1, -1, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.uint8Array({ maxLength: 20 }),
  fc.uint8Array({ minLength: 15, maxLength: 17 }),
)
const { item: itemArb } = fc.letrec<{ item: unknown; array: unknown[] }>((tie) => ({
  item: fc.oneof({ depthSize: 'small' }, leafArb, tie('array')),
  array: fc.array(tie('item'), { maxLength: 6 }),
}))
const idBytesArb = fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 18 }))
const handleishArb = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(idBytesArb, fc.oneof(fc.constant('h:1'), fc.string({ maxLength: 8 }))) },
  { weight: 1, arbitrary: itemArb },
)
const fieldArb = fc.oneof(
  { weight: 3, arbitrary: leafArb },
  { weight: 2, arbitrary: fc.array(handleishArb, { maxLength: 4 }) },
  {
    weight: 1,
    arbitrary: fc.array(fc.tuple(fc.nat({ max: 130 }), fc.array(handleishArb, { maxLength: 3 })), {
      maxLength: 3,
    }),
  },
  { weight: 1, arbitrary: handleishArb },
  { weight: 1, arbitrary: itemArb },
)
const frameArb = fc
  .tuple(
    fc.oneof({ weight: 9, arbitrary: fc.constant(PROTOCOL_VERSION) }, { weight: 1, arbitrary: leafArb }),
    fc.oneof(
      { weight: 9, arbitrary: fc.integer({ min: 1, max: MESSAGE_TYPES.length }) },
      { weight: 1, arbitrary: leafArb },
    ),
    handleishArb,
    fc.array(fieldArb, { maxLength: 7 }),
  )
  .map(([version, code, from, fields]) => new Uint8Array(raw.encode([version, code, from, ...fields])))

// ---------------------------------------------------------------------------------------------------

const fuzz = suite('wire: fuzz')
const all: Stats = new Map()

const merge = (stats: Stats): void => {
  for (const [k, n] of stats) all.set(k, (all.get(k) ?? 0) + n)
}

fuzz('the corpus decodes, and covers every message type', () => {
  assert.is(new Set(CORPUS.map((b) => b[2])).size, MESSAGE_TYPES.length)
  const stats: Stats = new Map()
  for (const b of CORPUS) check(b, stats)
  assert.is(stats.get('ok'), CORPUS.length)
})

fuzz(`random bytes (${RUNS.randomBytes} cases)`, () => {
  const stats: Stats = new Map()
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        // Starting like a frame gets random bytes past the first two heads more often.
        fc
          .tuple(fc.integer({ min: 0x80, max: 0x8f }), fc.uint8Array({ maxLength: 64 }))
          .map(([head, rest]) => Uint8Array.of(head, PROTOCOL_VERSION, ...rest)),
      ),
      (bytes) => check(bytes, stats),
    ),
    { numRuns: RUNS.randomBytes },
  )
  report('random bytes', stats)
  assert.is(total(stats), RUNS.randomBytes)
  merge(stats)
})

fuzz(`mutated valid frames (${RUNS.mutated} cases)`, () => {
  const stats: Stats = new Map()
  fc.assert(
    fc.property(fc.nat(), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (pick, mutations) => {
      let bytes = CORPUS[pick % CORPUS.length]!
      for (const m of mutations) bytes = mutate(bytes, m)
      check(bytes, stats)
    }),
    { numRuns: RUNS.mutated },
  )
  report('mutated frames', stats)
  assert.is(total(stats), RUNS.mutated)
  // The mutations reach both sides: some survive as valid messages, and many kinds of error occur.
  assert.ok((stats.get('ok') ?? 0) > 0, 'some mutated frames are still valid')
  assert.ok(stats.size >= 9, `only ${stats.size} outcomes: ${[...stats.keys()].join(', ')}`)
  merge(stats)
})

fuzz(`random CBOR shaped like frames (${RUNS.randomCbor} cases)`, () => {
  const stats: Stats = new Map()
  fc.assert(
    fc.property(frameArb, (bytes) => check(bytes, stats)),
    { numRuns: RUNS.randomCbor },
  )
  report('random CBOR frames', stats)
  assert.is(total(stats), RUNS.randomCbor)
  for (const code of ['BAD_FIELD', 'BAD_ID', 'UNKNOWN_TYPE', 'BAD_VERSION']) {
    assert.ok((stats.get(code) ?? 0) > 0, `no ${code} among random frames`)
  }
  merge(stats)
})

fuzz('at least 100,000 cases in all, none slow', () => {
  const n = total(all)
  console.log(`  [fuzz] ${n} cases, slowest decode ${slowestMs.toFixed(2)} ms, seed ${SEED}`)
  assert.ok(n >= 100_000, `${n} cases`)
})

fuzz.run()
