// The wire codec through its public API: every message type round-trips (property tests over
// fast-check arbitraries), encoding rejects invalid messages with typed errors, and decoding rejects
// hand-built bad frames with one named test per WireErrorCode. Fuzzing is in wire-fuzz.test.ts.
// PASTRY_SEED=<seed> replays a run.

import { Encoder, Tag } from 'cbor-x'
import fc from 'fast-check'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ConfigError } from '../src/errors.js'
import { Id } from '../src/id/id.js'
import { parseAddress, TransportError } from '../src/runtime/transport.js'
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeMessage,
  encodeMessage,
  InvalidMessageError,
  MAX_ADDRESS_BYTES,
  MAX_APP_NAME_BYTES,
  MAX_HOPS,
  MAX_LEAF_SET_HANDLES,
  MAX_MESSAGE_ID,
  MAX_NESTING_DEPTH,
  MAX_ROW_HANDLES,
  MAX_ROWS,
  MAX_RTT_MICROS,
  MESSAGE_TYPE_SLOTS,
  MESSAGE_TYPES,
  MESSAGES,
  type Message,
  type MessageOf,
  MessageTooLargeError,
  type MessageType,
  type NodeHandle,
  PROTOCOL_VERSION,
  typeCode,
  WIRE_ERROR_CODES,
  type WireErrorCode,
} from '../src/wire/index.js'
import { SEED } from './_seed.js'

void SEED // imported for its effect: it seeds fast-check, before any property runs, and prints the seed

// ---------------------------------------------------------------------------------------------------
// Helpers

const utf8 = new TextEncoder()
const byteLength = (s: string): number => utf8.encode(s).length
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')

/** A message as plain data: ids and bytes as tagged hex strings, so deep equality compares content. */
function plain(v: unknown): unknown {
  if (v instanceof Id) return `id:${v.toHex()}`
  if (v instanceof Uint8Array) return `bytes:${hex(v)}`
  if (Array.isArray(v)) return v.map(plain)
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
  }
  return v
}

function decodeOk(bytes: Uint8Array): Message {
  const r = decodeMessage(bytes)
  if (r.ok) return r.message
  throw new assert.Assertion({
    message: `expected a message, got ${r.error.code}: ${r.error.message}`,
    operator: 'decode',
    expects: undefined,
    actual: undefined,
  })
}

/** Error codes asserted by the named tests below; the last test checks that every code was. */
const seenCodes = new Set<WireErrorCode>()

function expectError(
  bytes: Uint8Array,
  code: WireErrorCode,
  mention?: string,
  options?: { maxMessageBytes?: number },
): void {
  const r = decodeMessage(bytes, options)
  if (r.ok)
    throw new assert.Assertion({
      message: `expected ${code}, got a ${r.message.type} message`,
      operator: 'decode',
      expects: undefined,
      actual: undefined,
    })
  assert.is(r.error.code, code, r.error.message)
  assert.type(r.error.message, 'string')
  if (mention !== undefined)
    assert.ok(r.error.message.includes(mention), `"${r.error.message}" lacks "${mention}"`)
  seenCodes.add(code)
}

/** A cbor-x encoder configured like the codec's, to hand-build frames the codec would never write. */
const raw = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false })
const enc = (v: unknown): Uint8Array => new Uint8Array(raw.encode(v))
const cat = (...parts: (Uint8Array | number[])[]): Uint8Array => {
  const out: number[] = []
  for (const p of parts) out.push(...p)
  return new Uint8Array(out)
}

const ID_A = Id.parse('0123456789abcdef0123456789abcdef')
const ID_B = Id.parse('fedcba9876543210fedcba9876543210')
const HANDLE: NodeHandle = { id: ID_A, address: '10.0.0.1:4000' }
const H = (): unknown[] => [ID_A.toBytes(), '10.0.0.1:4000']
const bytesOf = (n: number, fill = 7): Uint8Array => new Uint8Array(n).fill(fill)

function routeFrame(fields: { [k: string]: unknown } = {}): unknown[] {
  const f = {
    msgId: 5,
    key: ID_B.toBytes(),
    origin: H(),
    hops: 3,
    app: 'app',
    payload: bytesOf(10),
    ...fields,
  }
  return [PROTOCOL_VERSION, MESSAGES.route.code, H(), f.msgId, f.key, f.origin, f.hops, f.app, f.payload]
}

const ROUTE: MessageOf<'route'> = {
  type: 'route',
  from: HANDLE,
  msgId: 5,
  key: ID_B,
  origin: HANDLE,
  hops: 3,
  app: 'app',
  payload: bytesOf(100),
}

// ---------------------------------------------------------------------------------------------------
// Arbitraries: one per message type. The Record type makes the compiler demand every type.

const idArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Id.fromBytes(b))
const addressArb = fc.oneof(
  fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 65535 })).map(([host, port]) => `${host}:${port}`),
  fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 65535 })).map(([host, port]) => `[${host}]:${port}`),
  fc
    .tuple(fc.domain(), fc.integer({ min: 0, max: 65535 }))
    .map(([host, port]) => `${host}:${port}`)
    .filter((s) => byteLength(s) <= MAX_ADDRESS_BYTES),
  fc.constant(`${'a'.repeat(MAX_ADDRESS_BYTES - 6)}:65535`),
  fc.constant('sim:1000000'),
)
const handleArb: fc.Arbitrary<NodeHandle> = fc.record({ id: idArb, address: addressArb })
const leafSetArb = fc.oneof(
  { weight: 4, arbitrary: fc.array(handleArb, { maxLength: MAX_LEAF_SET_HANDLES }) },
  {
    weight: 1,
    arbitrary: fc.array(handleArb, { minLength: MAX_LEAF_SET_HANDLES, maxLength: MAX_LEAF_SET_HANDLES }),
  },
)
const rowArb = fc.record({
  row: fc.integer({ min: 0, max: MAX_ROWS - 1 }),
  entries: fc.array(handleArb, { maxLength: 20 }),
})
const rowsArb = fc.array(rowArb, { maxLength: 8 })
const msgIdArb = fc.oneof(
  fc.nat(),
  fc.maxSafeNat(),
  fc.constantFrom(0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, MAX_MESSAGE_ID),
)
const hopsArb = fc.integer({ min: 0, max: MAX_HOPS })
const appArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 16 }),
  fc.constant('a'.repeat(MAX_APP_NAME_BYTES)),
)
const payloadArb = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.uint8Array({ minLength: 1000, maxLength: 5000 }),
)
const nonceArb = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 0xffffffff))
const optionalLeafSet = fc.option(leafSetArb, { nil: undefined })

const withOptional = <T extends object>(base: T, leafSet: readonly NodeHandle[] | undefined) =>
  leafSet === undefined ? base : { ...base, leafSet }

const ARBITRARIES: { readonly [T in MessageType]: fc.Arbitrary<MessageOf<T>> } = {
  route: fc
    .tuple(handleArb, msgIdArb, idArb, handleArb, hopsArb, appArb, payloadArb)
    .map(([from, msgId, key, origin, hops, app, payload]) => ({
      type: 'route' as const,
      from,
      msgId,
      key,
      origin,
      hops,
      app,
      payload,
    })),
  ack: fc.tuple(handleArb, msgIdArb).map(([from, msgId]) => ({ type: 'ack' as const, from, msgId })),
  join: fc
    .tuple(handleArb, msgIdArb, handleArb, hopsArb)
    .map(([from, msgId, joiner, hops]) => ({ type: 'join' as const, from, msgId, joiner, hops })),
  joinRows: fc.tuple(handleArb, rowsArb).map(([from, rows]) => ({ type: 'joinRows' as const, from, rows })),
  joinReply: fc
    .tuple(handleArb, leafSetArb, rowsArb)
    .map(([from, leafSet, rows]) => ({ type: 'joinReply' as const, from, leafSet, rows })),
  announce: fc
    .tuple(handleArb, leafSetArb)
    .map(([from, leafSet]) => ({ type: 'announce' as const, from, leafSet })),
  announceAck: fc
    .tuple(handleArb, fc.boolean(), leafSetArb)
    .map(([from, accepted, leafSet]) => ({ type: 'announceAck' as const, from, accepted, leafSet })),
  heartbeat: fc
    .tuple(
      handleArb,
      optionalLeafSet,
      fc.option(fc.oneof(fc.integer({ min: 0, max: MAX_RTT_MICROS }), fc.constantFrom(0, MAX_RTT_MICROS)), {
        nil: undefined,
      }),
    )
    .map(([from, leafSet, rttMicros]) => ({
      ...withOptional({ type: 'heartbeat' as const, from }, leafSet),
      ...(rttMicros !== undefined && { rttMicros }),
    })),
  probe: fc
    .tuple(handleArb, nonceArb, optionalLeafSet)
    .map(([from, nonce, leafSet]) => withOptional({ type: 'probe' as const, from, nonce }, leafSet)),
  probeReply: fc
    .tuple(handleArb, nonceArb, optionalLeafSet)
    .map(([from, nonce, leafSet]) => withOptional({ type: 'probeReply' as const, from, nonce }, leafSet)),
  leafSetRequest: handleArb.map((from) => ({ type: 'leafSetRequest' as const, from })),
  leafSetReply: fc
    .tuple(handleArb, leafSetArb)
    .map(([from, leafSet]) => ({ type: 'leafSetReply' as const, from, leafSet })),
  rowRequest: fc
    .tuple(handleArb, fc.integer({ min: 0, max: MAX_ROWS - 1 }))
    .map(([from, row]) => ({ type: 'rowRequest' as const, from, row })),
  rowReply: fc
    .tuple(
      handleArb,
      fc.integer({ min: 0, max: MAX_ROWS - 1 }),
      fc.array(handleArb, { maxLength: MAX_ROW_HANDLES }),
    )
    .map(([from, row, entries]) => ({ type: 'rowReply' as const, from, row, entries })),
  leave: fc
    .tuple(handleArb, leafSetArb)
    .map(([from, leafSet]) => ({ type: 'leave' as const, from, leafSet })),
  direct: fc
    .tuple(handleArb, appArb, payloadArb)
    .map(([from, app, payload]) => ({ type: 'direct' as const, from, app, payload })),
  indirectProbe: fc
    .tuple(handleArb, nonceArb, handleArb)
    .map(([from, nonce, target]) => ({ type: 'indirectProbe' as const, from, nonce, target })),
  indirectProbeReply: fc
    .tuple(handleArb, nonceArb, idArb, fc.boolean())
    .map(([from, nonce, target, alive]) => ({
      type: 'indirectProbeReply' as const,
      from,
      nonce,
      target,
      alive,
    })),
}

// ---------------------------------------------------------------------------------------------------
// Round trips

const roundTrip = suite('wire: round trip')

roundTrip('the catalogue has 18 types with distinct small codes, and every type has an arbitrary', () => {
  assert.is(MESSAGE_TYPES.length, 18)
  const codes = MESSAGE_TYPES.map((t) => MESSAGES[t].code)
  assert.is(new Set(codes).size, codes.length)
  for (const c of codes) assert.ok(c > 0 && c < 24, `code ${c} fits in one CBOR byte`)
  assert.equal([...MESSAGE_TYPES].sort(), Object.keys(ARBITRARIES).sort())
})

roundTrip(
  'typeCode gives each type its catalogue code, and MESSAGE_TYPE_SLOTS is one past the largest',
  () => {
    for (const t of MESSAGE_TYPES) assert.is(typeCode(t), MESSAGES[t].code, t)
    assert.is(MESSAGE_TYPE_SLOTS, Math.max(...MESSAGE_TYPES.map(typeCode)) + 1)
  },
)

for (const type of MESSAGE_TYPES) {
  roundTrip(`${type} survives encode then decode`, () => {
    fc.assert(
      fc.property(ARBITRARIES[type] as fc.Arbitrary<Message>, (msg) => {
        const bytes = encodeMessage(msg)
        assert.is(bytes.constructor, Uint8Array)
        assert.is(bytes[0], 0x80 + 3 + Object.keys(MESSAGES[type].fields).length, 'an array of the fields')
        assert.is(bytes[1], PROTOCOL_VERSION)
        assert.is(bytes[2], MESSAGES[type].code)
        const back = decodeOk(bytes)
        assert.is(back.type, type)
        assert.equal(plain(back), plain(msg))
        assert.ok(back.from.id.equals(msg.from.id))
        // Encoding is a function of the message: the decoded message encodes to the same bytes.
        assert.equal(encodeMessage(back), bytes)
      }),
      { numRuns: type === 'route' || type === 'joinReply' ? 300 : 100 },
    )
  })
}

roundTrip('optional fields: absent stays absent, present stays present', () => {
  const absent = decodeOk(encodeMessage({ type: 'heartbeat', from: HANDLE }))
  assert.not.ok('leafSet' in absent)
  const present = decodeOk(encodeMessage({ type: 'heartbeat', from: HANDLE, leafSet: [] }))
  assert.equal(plain(present), { type: 'heartbeat', from: plain(HANDLE), leafSet: [] })
})

roundTrip('message ids above 2^32 travel as CBOR uint64, not as floats', () => {
  const bytes = encodeMessage({ type: 'ack', from: HANDLE, msgId: MAX_MESSAGE_ID })
  assert.ok(hex(bytes).endsWith('1b001fffffffffffff'), hex(bytes))
  const back = decodeOk(bytes)
  assert.is(back.type === 'ack' && back.msgId, MAX_MESSAGE_ID)
})

roundTrip('byte strings carry no tag 64, and the output is a plain Uint8Array even for Buffer input', () => {
  const payload = Buffer.from([1, 2, 3])
  const bytes = encodeMessage({ type: 'direct', from: HANDLE, app: 'a', payload })
  assert.is(bytes.constructor, Uint8Array)
  assert.ok(hex(bytes).endsWith('616143010203'), hex(bytes))
  assert.not.ok(bytes.includes(0xd8), 'no one-byte tag head anywhere')
})

roundTrip('a decoded payload is a plain copy: reusing the frame buffer does not change it', () => {
  const frame = Buffer.from(encodeMessage(ROUTE))
  const back = decodeOk(frame)
  assert.ok(back.type === 'route')
  if (back.type !== 'route') return
  assert.is(back.payload.constructor, Uint8Array)
  frame.fill(0)
  assert.equal(Array.from(back.payload), Array.from(bytesOf(100)))
  assert.is(
    (frame as unknown as { dataView?: unknown }).dataView,
    undefined,
    'the caller`s array is not touched',
  )
})

roundTrip('the largest valid joinReply round-trips when the limit allows it', () => {
  const h = (i: number): NodeHandle => ({
    id: Id.fromWords(i, i, i, i),
    address: `${'x'.repeat(MAX_ADDRESS_BYTES - 6)}:65535`,
  })
  const leafSet = Array.from({ length: MAX_LEAF_SET_HANDLES }, (_, i) => h(i))
  const rows = Array.from({ length: MAX_ROWS }, (_, r) => ({
    row: r,
    entries: Array.from({ length: MAX_ROW_HANDLES }, (_, i) => h(r * 1000 + i)),
  }))
  const msg: Message = { type: 'joinReply', from: HANDLE, leafSet, rows }
  assert.throws(
    () => encodeMessage(msg),
    (e: unknown) => e instanceof MessageTooLargeError,
  )
  const max = 16 * 1024 * 1024
  const bytes = encodeMessage(msg, { maxMessageBytes: max })
  assert.ok(bytes.length > DEFAULT_MAX_MESSAGE_BYTES)
  const r = decodeMessage(bytes, { maxMessageBytes: max })
  assert.ok(r.ok)
  if (r.ok) assert.equal(plain(r.message), plain(msg))
  expectError(bytes, 'TOO_LARGE')
})

// ---------------------------------------------------------------------------------------------------
// Encoding errors

const encoding = suite('wire: encode errors')

function expectInvalid(msg: unknown, path: string): void {
  try {
    encodeMessage(msg as Message)
  } catch (e) {
    assert.instance(e, InvalidMessageError)
    const err = e as InvalidMessageError
    assert.is(err.code, 'INVALID_MESSAGE')
    assert.is(err.path, path, err.message)
    return
  }
  assert.unreachable(`expected InvalidMessageError at ${path}`)
}

encoding('a handle whose address is not host:port', () => {
  for (const address of BAD_ADDRESSES) {
    assert.throws(
      () => encodeMessage({ ...ROUTE, origin: { id: ID_A, address } }),
      (e: unknown) => e instanceof InvalidMessageError && e.path === 'route.origin.address',
      JSON.stringify(address),
    )
  }
})

encoding('hops out of range, with the field path', () => {
  expectInvalid({ ...ROUTE, hops: MAX_HOPS + 1 }, 'route.hops')
  expectInvalid({ ...ROUTE, hops: -1 }, 'route.hops')
  expectInvalid({ ...ROUTE, hops: 1.5 }, 'route.hops')
  encodeMessage({ ...ROUTE, hops: MAX_HOPS })
})

encoding('message id beyond 2^53 - 1, nonce beyond 2^32 - 1, row beyond 127', () => {
  expectInvalid({ ...ROUTE, msgId: 2 ** 53 }, 'route.msgId')
  expectInvalid({ type: 'probe', from: HANDLE, nonce: 2 ** 32 }, 'probe.nonce')
  expectInvalid({ type: 'rowRequest', from: HANDLE, row: MAX_ROWS }, 'rowRequest.row')
})

encoding('lists, strings and handles over their bounds or of the wrong type', () => {
  const leafSet = Array.from({ length: MAX_LEAF_SET_HANDLES + 1 }, () => HANDLE)
  expectInvalid({ type: 'leave', from: HANDLE, leafSet }, 'leave.leafSet')
  expectInvalid({ ...ROUTE, app: 'a'.repeat(MAX_APP_NAME_BYTES + 1) }, 'route.app')
  expectInvalid({ ...ROUTE, app: 'é'.repeat(33) }, 'route.app') // 33 characters, 66 bytes
  expectInvalid({ ...ROUTE, app: '\ud800' }, 'route.app')
  expectInvalid(
    { ...ROUTE, origin: { id: ID_A, address: 'a'.repeat(MAX_ADDRESS_BYTES + 1) } },
    'route.origin.address',
  )
  expectInvalid({ ...ROUTE, key: ID_A.toHex() }, 'route.key')
  expectInvalid({ ...ROUTE, payload: [1, 2] }, 'route.payload')
  expectInvalid({ ...ROUTE, from: undefined }, 'route.from')
  expectInvalid(
    { type: 'joinReply', from: HANDLE, leafSet: [], rows: [{ row: 0, entries: [HANDLE, { id: ID_A }] }] },
    'joinReply.rows[0].entries[1].address',
  )
  expectInvalid({ type: 'announceAck', from: HANDLE, leafSet: [] }, 'announceAck.accepted')
})

encoding('an unknown type or a non-object', () => {
  expectInvalid({ type: 'nope', from: HANDLE }, 'type')
  expectInvalid({ type: 'toString', from: HANDLE }, 'type')
  expectInvalid(null, 'message')
})

encoding('a frame over maxMessageBytes throws MessageTooLargeError', () => {
  const bytes = encodeMessage(ROUTE)
  assert.is(encodeMessage(ROUTE, { maxMessageBytes: bytes.length }).length, bytes.length)
  try {
    encodeMessage(ROUTE, { maxMessageBytes: bytes.length - 1 })
    assert.unreachable('expected MessageTooLargeError')
  } catch (e) {
    assert.instance(e, MessageTooLargeError)
    assert.is((e as MessageTooLargeError).code, 'MESSAGE_TOO_LARGE')
    assert.is((e as MessageTooLargeError).sizeBytes, bytes.length)
  }
  // A payload longer than the limit is refused before cbor-x writes anything.
  assert.throws(
    () => encodeMessage({ ...ROUTE, payload: new Uint8Array(2 * DEFAULT_MAX_MESSAGE_BYTES) }),
    (e: unknown) => e instanceof MessageTooLargeError,
  )
})

encoding('invalid options throw ConfigError', () => {
  for (const maxMessageBytes of [0, -1, 1.5, Number.NaN]) {
    assert.throws(
      () => encodeMessage(ROUTE, { maxMessageBytes }),
      (e: unknown) => e instanceof ConfigError,
    )
  }
})

// ---------------------------------------------------------------------------------------------------
// Decoding errors: one named test per code, each with a hand-built bad frame

const decoding = suite('wire: decode errors')

decoding('a hand-built valid frame decodes (the base the bad frames below are cut from)', () => {
  const msg = decodeOk(enc(routeFrame()))
  assert.equal(plain(msg), plain({ ...ROUTE, payload: bytesOf(10) }))
})

decoding('TOO_LARGE: a frame over maxMessageBytes, checked before anything else', () => {
  const bytes = encodeMessage(ROUTE)
  assert.ok(decodeMessage(bytes, { maxMessageBytes: bytes.length }).ok)
  expectError(bytes, 'TOO_LARGE', `${bytes.length} bytes`, { maxMessageBytes: bytes.length - 1 })
  // Garbage over the limit is reported as too large, not parsed.
  expectError(new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES + 1).fill(0xff), 'TOO_LARGE')
})

decoding('TRUNCATED: every proper prefix of a valid frame', () => {
  const bytes = encodeMessage({ ...ROUTE, msgId: 2 ** 40, payload: bytesOf(3) })
  for (let n = 0; n < bytes.length; n++) expectError(bytes.subarray(0, n), 'TRUNCATED')
})

decoding('TRUNCATED: an array header claiming 2^32 - 1 or 2^64 - 1 items in a tiny frame', () => {
  const r = decodeMessage(new Uint8Array([0x9a, 0xff, 0xff, 0xff, 0xff, 0x01]))
  assert.equal(r, {
    ok: false,
    error: {
      code: 'TRUNCATED',
      message: 'an array at byte 0 declares 4294967295 items, only 1 bytes remain',
    },
  })
  expectError(new Uint8Array([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 'TRUNCATED')
  // Nested inside an otherwise plausible frame: the leaf set of a leafSetReply.
  const head = enc([PROTOCOL_VERSION, MESSAGES.leafSetReply.code, H()]).subarray(1)
  expectError(cat([0x84], head, [0x9a, 0xff, 0xff, 0xff, 0xff]), 'TRUNCATED', '4294967295 items')
  // A byte string that claims more bytes than remain.
  expectError(cat([0x81, 0x5a, 0x7f, 0xff, 0xff, 0xff, 0x00]), 'TRUNCATED')
})

decoding('TRAILING_BYTES: anything after the frame', () => {
  const bytes = encodeMessage(ROUTE)
  expectError(cat(bytes, [0x00]), 'TRAILING_BYTES', '1 bytes')
  expectError(cat(bytes, bytes), 'TRAILING_BYTES')
})

decoding('MALFORMED: reserved heads, stray breaks, bad UTF-8, not a frame', () => {
  expectError(new Uint8Array([0x83, 0x01, 0x1c, 0x00]), 'MALFORMED', 'reserved')
  expectError(new Uint8Array([0x82, 0x01, 0xff]), 'MALFORMED', 'break')
  const badText = enc(routeFrame({ app: 'abc' }))
  const at = hex(badText).indexOf('63616263') / 2
  badText[at + 2] = 0xc3 // a lead byte followed by 'c', not a continuation byte
  expectError(badText, 'MALFORMED', 'UTF-8')
  expectError(enc(5), 'MALFORMED', 'a frame is an array')
  expectError(enc([PROTOCOL_VERSION, 1]), 'MALFORMED')
  expectError('not bytes' as unknown as Uint8Array, 'MALFORMED')
})

decoding('TOO_DEEP: arrays nested deeper than the limit', () => {
  let nested: unknown = []
  for (let i = 1; i < MAX_NESTING_DEPTH - 1; i++) nested = [nested]
  // The frame is level 1, so `from` may nest MAX_NESTING_DEPTH - 1 levels: a shape error, not depth.
  expectError(enc([PROTOCOL_VERSION, MESSAGES.ack.code, nested, 1]), 'BAD_FIELD', 'ack.from')
  expectError(
    enc([PROTOCOL_VERSION, MESSAGES.ack.code, [nested], 1]),
    'TOO_DEEP',
    `${MAX_NESTING_DEPTH} levels`,
  )
  // 10,000 levels: the scan stops at level 9, the call stack is never at risk.
  expectError(cat(new Array(10_000).fill(0x81), [0x00]), 'TOO_DEEP')
})

decoding('TOO_LONG: lists and strings over their bounds', () => {
  const leafSet = Array.from({ length: MAX_LEAF_SET_HANDLES + 1 }, H)
  expectError(
    enc([PROTOCOL_VERSION, MESSAGES.leafSetReply.code, H(), leafSet]),
    'TOO_LONG',
    'leafSetReply.leafSet',
  )
  const row = Array.from({ length: MAX_ROW_HANDLES + 1 }, H)
  expectError(enc([PROTOCOL_VERSION, MESSAGES.rowReply.code, H(), 0, row]), 'TOO_LONG', '257 items')
  expectError(enc(routeFrame({ app: 'a'.repeat(MAX_APP_NAME_BYTES + 1) })), 'TOO_LONG', 'route.app')
  expectError(enc(routeFrame({ origin: [ID_A.toBytes(), 'a'.repeat(MAX_ADDRESS_BYTES + 1)] })), 'TOO_LONG')
})

const BAD_ADDRESSES = [
  'no-port-here',
  '127.0.0.1B50297', // a mangled colon
  '127.0.0\u00051:50297', // a control character
  '127.0.0.1 :4000',
  'host/path:4000',
  ':4000',
  'host:',
  'host:40a0',
  'host:12345678901',
  '[::1]4000',
  '[1.2.3.4]:4000',
  '[::g]:4000',
  '::1:4000',
  'é:4000',
  '',
]
const GOOD_ADDRESSES = [
  '10.0.0.1:4000',
  'node-1.example_x:0',
  '[::1]:4000',
  '[fe80::1%eth0]:9',
  'sim:1000000',
]

decoding('BAD_FIELD: a handle whose address is not host:port, with the field path', () => {
  for (const address of BAD_ADDRESSES) {
    expectError(enc(routeFrame({ origin: [ID_A.toBytes(), address] })), 'BAD_FIELD', 'route.origin.address')
    const leafSet = [H(), [ID_B.toBytes(), address]]
    expectError(
      enc([PROTOCOL_VERSION, MESSAGES.leafSetReply.code, H(), leafSet]),
      'BAD_FIELD',
      'leafSetReply.leafSet[1].address',
    )
    expectError(
      enc([PROTOCOL_VERSION, MESSAGES.heartbeat.code, [ID_A.toBytes(), address], null, null]),
      'BAD_FIELD',
    )
  }
  for (const address of GOOD_ADDRESSES) {
    const r = decodeMessage(enc(routeFrame({ origin: [ID_A.toBytes(), address] })))
    assert.ok(r.ok && r.message.type === 'route' && r.message.origin.address === address, address)
  }
})

decoding('parseAddress takes the same form, with a 16-bit port', () => {
  for (const address of [...BAD_ADDRESSES, 'host:65536', 'host:099999']) {
    assert.throws(
      () => parseAddress(address),
      (e: unknown) => e instanceof TransportError && e.code === 'BAD_ADDRESS',
      JSON.stringify(address),
    )
  }
  assert.equal(parseAddress('[fe80::1%eth0]:9'), { host: 'fe80::1%eth0', port: 9 })
  assert.equal(parseAddress('node-1.example_x:65535'), { host: 'node-1.example_x', port: 65535 })
})

decoding('UNSUPPORTED_CBOR: a tag, an indefinite length, a map, a float, undefined', () => {
  // What a default-configured cbor-x writes on Node: byte strings wrapped in tag 64.
  const tagged = new Uint8Array(new Encoder({ useRecords: false }).encode(routeFrame()))
  expectError(tagged, 'UNSUPPORTED_CBOR', 'tag 64')
  expectError(enc(new Tag(routeFrame(), 55799)), 'UNSUPPORTED_CBOR', 'tag 55799')
  expectError(cat([0x9f], enc(1), enc(1), enc(H()), enc(5), [0xff]), 'UNSUPPORTED_CBOR', 'indefinite')
  expectError(cat([0x84, 0x01, 0x02], enc(H()), [0x7f, 0x61, 0x61, 0xff]), 'UNSUPPORTED_CBOR', 'indefinite')
  expectError(enc(routeFrame({ origin: { id: ID_A.toBytes(), address: 'a' } })), 'UNSUPPORTED_CBOR', 'map')
  // What a default cbor-x writes for an integer above 2^32 - 1: a float64.
  expectError(enc(routeFrame({ msgId: 2 ** 40 })), 'UNSUPPORTED_CBOR', 'float')
  expectError(enc(routeFrame({ hops: 1.5 })), 'UNSUPPORTED_CBOR', 'float')
  expectError(enc(routeFrame({ hops: undefined })), 'UNSUPPORTED_CBOR', 'undefined')
})

decoding('BAD_VERSION: another protocol version', () => {
  const frame = routeFrame()
  frame[0] = 2
  expectError(enc(frame), 'BAD_VERSION', 'version 2')
  frame[0] = 0
  expectError(enc(frame), 'BAD_VERSION')
  frame[0] = 'one'
  expectError(enc(frame), 'BAD_VERSION')
  // A newer version is reported as such even if its frame uses CBOR this version refuses.
  expectError(cat([0x83, 0x02, 0xa0, 0xc0]), 'BAD_VERSION')
})

decoding('UNKNOWN_TYPE: a type code not in the catalogue', () => {
  for (const code of [0, 19, 23, 99, 2 ** 32 - 1, BigInt(2 ** 40)]) {
    const frame: unknown[] = routeFrame()
    frame[1] = code
    expectError(enc(frame), 'UNKNOWN_TYPE', 'type code')
  }
  const frame = routeFrame()
  frame[1] = 'route'
  expectError(enc(frame), 'UNKNOWN_TYPE')
})

decoding('BAD_FIELD: wrong types and shapes, with the field path', () => {
  expectError(enc(routeFrame({ hops: '3' })), 'BAD_FIELD', 'route.hops')
  expectError(enc(routeFrame({ hops: MAX_HOPS + 1 })), 'BAD_FIELD', 'route.hops')
  expectError(enc(routeFrame({ msgId: -1 })), 'BAD_FIELD', 'route.msgId')
  expectError(enc(routeFrame({ payload: 'text' })), 'BAD_FIELD', 'route.payload')
  expectError(enc(routeFrame({ key: null })), 'BAD_FIELD', 'route.key')
  expectError(enc(routeFrame({ origin: [ID_A.toBytes(), 'a', 'b'] })), 'BAD_FIELD', 'route.origin')
  expectError(enc(routeFrame({ origin: [ID_A.toBytes(), 7] })), 'BAD_FIELD', 'route.origin.address')
  expectError(enc([...routeFrame(), 0]), 'BAD_FIELD', 'expected 9 items')
  expectError(enc(routeFrame().slice(0, 8)), 'BAD_FIELD', 'expected 9 items')
  expectError(
    enc([PROTOCOL_VERSION, MESSAGES.announceAck.code, H(), 1, []]),
    'BAD_FIELD',
    'announceAck.accepted',
  )
  // `null` means "absent" only where a field is optional.
  expectError(enc([PROTOCOL_VERSION, MESSAGES.leave.code, H(), null]), 'BAD_FIELD', 'leave.leafSet')
  assert.ok(decodeMessage(enc([PROTOCOL_VERSION, MESSAGES.heartbeat.code, H(), null, null])).ok)
  // A reported RTT is a whole number of microseconds, at most a minute.
  const heartbeat = (rtt: unknown) => enc([PROTOCOL_VERSION, MESSAGES.heartbeat.code, H(), null, rtt])
  const ok = decodeMessage(heartbeat(MAX_RTT_MICROS))
  assert.ok(ok.ok && ok.message.type === 'heartbeat' && ok.message.rttMicros === MAX_RTT_MICROS)
  for (const bad of [MAX_RTT_MICROS + 1, -1, '250', []])
    expectError(heartbeat(bad), 'BAD_FIELD', 'heartbeat.rttMicros')
  // Frames carry no floats at all: a fractional or NaN RTT fails before any field is read.
  for (const bad of [1.5, Number.NaN]) expectError(heartbeat(bad), 'UNSUPPORTED_CBOR', 'float')
  const rows = [
    [0, [H()]],
    [1, [H(), [ID_A.toBytes(), false]]],
  ]
  expectError(
    enc([PROTOCOL_VERSION, MESSAGES.joinRows.code, H(), rows]),
    'BAD_FIELD',
    'joinRows.rows[1].entries[1].address',
  )
  expectError(
    enc([PROTOCOL_VERSION, MESSAGES.joinRows.code, H(), [[MAX_ROWS, []]]]),
    'BAD_FIELD',
    'joinRows.rows[0].row',
  )
})

decoding('BAD_ID: ids of 15 and 17 bytes, wherever they are', () => {
  expectError(enc(routeFrame({ key: bytesOf(15) })), 'BAD_ID', 'route.key')
  expectError(enc(routeFrame({ key: bytesOf(17) })), 'BAD_ID', 'got 17')
  expectError(enc(routeFrame({ key: new Uint8Array(0) })), 'BAD_ID')
  const frame = routeFrame()
  frame[2] = [bytesOf(15), 'a:1']
  expectError(enc(frame), 'BAD_ID', 'route.from.id')
  const leafSet = [H(), H(), [bytesOf(17), 'a:1']]
  expectError(enc([PROTOCOL_VERSION, MESSAGES.leave.code, H(), leafSet]), 'BAD_ID', 'leave.leafSet[2].id')
})

decoding('BAD_OPTIONS: an invalid maxMessageBytes is reported, not thrown', () => {
  for (const maxMessageBytes of [0, -5, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    expectError(encodeMessage(ROUTE), 'BAD_OPTIONS', 'maxMessageBytes', { maxMessageBytes })
  }
})

decoding('decoding never throws, even on hostile arguments', () => {
  const hostile: unknown[] = [
    undefined,
    null,
    42,
    {},
    [1, 2, 3],
    new Uint16Array(4),
    new Proxy(new Uint8Array(4), {
      get() {
        throw new Error('boom')
      },
    }),
  ]
  for (const h of hostile) {
    const r = decodeMessage(h as Uint8Array)
    assert.is(r.ok, false)
  }
  const badOptions = new Proxy(
    {},
    {
      get() {
        throw new Error('boom')
      },
    },
  )
  const r = decodeMessage(encodeMessage(ROUTE), badOptions)
  assert.is(r.ok, false)
})

/**
 * A leafSetReply frame whose first handle's address holds exactly `content`, valid UTF-8 or not. The
 * next byte in the frame is the head of the second handle, 0x82, which looks like a UTF-8
 * continuation byte: a validator that read past the string's end would be fooled by it.
 */
function frameWithText(content: Uint8Array): Uint8Array {
  // The text goes in a route's app name, the next item being its 10-byte payload (0x4a).
  const frame = enc(routeFrame({ app: 'Q'.repeat(content.length) }))
  if (content.length === 0) return frame
  const at = frame.indexOf(0x51) // 'Q': no other byte of this frame is 0x51
  frame.set(content, at)
  assert.is(frame[at + content.length], 0x4a)
  return frame
}

decoding('MALFORMED: text accepts exactly well-formed UTF-8, as a fatal TextDecoder does', () => {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
  const edges = [
    [0xc0, 0x80], // overlong NUL
    [0xc1, 0xbf], // overlong
    [0xe0, 0x80, 0x80], // overlong, 3 bytes
    [0xe0, 0x9f, 0xbf], // overlong, 3 bytes
    [0xe0, 0xa0, 0x80], // U+0800, valid
    [0xed, 0x9f, 0xbf], // U+D7FF, valid
    [0xed, 0xa0, 0x80], // a surrogate
    [0xf0, 0x8f, 0xbf, 0xbf], // overlong, 4 bytes
    [0xf0, 0x90, 0x80, 0x80], // U+10000, valid
    [0xf4, 0x8f, 0xbf, 0xbf], // U+10FFFF, valid
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [0xf5, 0x80, 0x80, 0x80],
    [0xef, 0xbb, 0xbf], // a byte-order mark is an ordinary character
    [0x61, 0xe2, 0x82], // a sequence cut short by the end of the string
    [0x80],
    [0xff],
  ]
  const pieceArb = fc.oneof(
    fc.constantFrom(...edges),
    fc.integer({ min: 0, max: 255 }).map((b) => [b]),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).map((s) => [...utf8.encode(s)]),
  )
  fc.assert(
    fc.property(
      fc
        .array(pieceArb, { maxLength: 12 })
        .map((ps) => new Uint8Array(ps.flat().slice(0, MAX_APP_NAME_BYTES))),
      (content) => {
        let expected: string | undefined
        try {
          expected = strict.decode(content)
        } catch {
          expected = undefined
        }
        const r = decodeMessage(frameWithText(content))
        if (expected === undefined) {
          assert.is(r.ok, false, `accepted ${hex(content)}`)
          if (!r.ok) assert.is(r.error.code, 'MALFORMED')
        } else {
          assert.ok(r.ok, `rejected ${hex(content)}`)
          if (r.ok && r.message.type === 'route') assert.is(r.message.app, expected)
        }
      },
    ),
    { numRuns: 3000 },
  )
})

decoding('every error code has a named test above', () => {
  assert.equal([...seenCodes].sort(), [...WIRE_ERROR_CODES].sort())
})

roundTrip.run()
encoding.run()
decoding.run()
