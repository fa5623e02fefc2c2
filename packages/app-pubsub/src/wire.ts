/*
 * Theory of operation
 *
 * The pubsub messages, version 1, as the payloads of core's `route` and `send` for the pubsub
 * application. Each is a CBOR array `[version, typeCode, ...fields]`; a node handle is
 * `[id (16 bytes), address]`; an id list is an array of 16-byte byte strings.
 *
 * Decoding is strict and never throws: `decodePubSub` returns a typed error value for anything that
 * is not a valid message. In order: the size; a structural pre-scan of the CBOR heads (every
 * declared item present, no maps, tags, floats or indefinite lengths, bounded nesting, no trailing
 * bytes, valid UTF-8), so that cbor-x allocates no more than the payload holds; cbor-x decoding;
 * then a walk of the fields against the type's shape (ids of exactly 16 bytes, bounded lists,
 * texts and integers). Byte strings are copied out, so a decoded message never aliases its input.
 *
 * Integers above 2^32 - 1 (sequence numbers) are written as CBOR uint64 (through bigint, as core's
 * codec does) and read back as numbers.
 */
import { addressForm, Id, MAX_ADDRESS_BYTES, type NodeHandle } from '@pastry/core'
import { Decoder, Encoder, type Options } from 'cbor-x'

/** The version every pubsub message carries. */
export const PUBSUB_VERSION = 1
/** The longest topic name, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 256
/** The most ids a tree path (root first) may hold on the wire. */
export const MAX_PATH_IDS = 64
/** The most publisher heads a subscribe acknowledgement may carry. */
export const MAX_HEADS = 256
/** The most topics one heartbeat may carry. */
export const MAX_BEAT_TOPICS = 256
/** The most messages one replay may carry. */
export const MAX_REPLAY_MESSAGES = 1024
/** The most nodes an anycast's visited list may hold. */
export const MAX_VISITED = 256
/** The largest sequence number, anycast id or epoch: unsigned safe integers. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER

/** One published message as it travels: who published it, in which incarnation, its number, its data. */
export interface DataMessage {
  readonly publisher: NodeHandle
  /** The publisher's incarnation: a later epoch starts a new sequence from 1. */
  readonly epoch: number
  /** The per-(publisher, topic) sequence number, from 1. */
  readonly seq: number
  readonly data: Uint8Array
}

/** The latest sequence number a tree node has seen from one publisher on a topic. */
export interface Head {
  readonly publisher: NodeHandle
  readonly epoch: number
  readonly seq: number
}

/** The messages of the pubsub protocol. See the package README for who sends each and when. */
export type PubSubWireMessage =
  /** Routed toward the topic id (or sent to a delegate after a redirect): make `subscriber` a child. */
  | {
      readonly type: 'subscribe'
      readonly topic: string
      readonly subscriber: NodeHandle
      readonly redirects: number
      /**
       * The nodes this SUBSCRIBE went on for, oldest first: a node that takes a subscriber in and
       * subscribes onward adds that subscriber (at most `MAX_PATH_IDS`, the latest kept). A tree
       * node lets the message pass when one of them, or the subscriber, is its ancestor.
       */
      readonly chain: readonly Id[]
    }
  /** Parent to child: you are attached. `path` is the parent's path from the root, root first. */
  | {
      readonly type: 'subscribeAck'
      readonly topic: string
      readonly path: readonly Id[]
      readonly heads: readonly Head[]
    }
  /** Parent (full) to would-be child: subscribe to `to`, one of my children, instead. */
  | {
      readonly type: 'subscribeRedirect'
      readonly topic: string
      readonly to: NodeHandle
      readonly redirects: number
    }
  /** A delegate that is not in the tree to a redirected subscriber: route your subscribe instead. */
  | { readonly type: 'subscribeNack'; readonly topic: string }
  /** Child to parent: remove me. Also any node to a sender that treats it as a child wrongly. */
  | { readonly type: 'leave'; readonly topic: string }
  /** Parent to child (a node that is not the parent): I am not your parent; subscribe again. */
  | { readonly type: 'reject'; readonly topic: string }
  /** Parent to child heartbeat, one entry per topic, with the parent's path from the root. */
  | {
      readonly type: 'beatDown'
      readonly items: readonly { readonly topic: string; readonly path: readonly Id[] }[]
    }
  /** Child to parent heartbeat, one entry per topic. */
  | { readonly type: 'beatUp'; readonly topics: readonly string[] }
  /** Publisher to root: routed to the topic id, or sent straight to the cached root. */
  | { readonly type: 'publish'; readonly topic: string; readonly message: DataMessage }
  /** Root to publisher: the message is in the tree. */
  | { readonly type: 'publishAck'; readonly topic: string; readonly epoch: number; readonly seq: number }
  /** A node that is not the topic's root to a publisher that sent it a publish directly. */
  | { readonly type: 'publishNack'; readonly topic: string; readonly epoch: number; readonly seq: number }
  /** Parent to child: a published message pushed down the tree (it doubles as a heartbeat). */
  | { readonly type: 'data'; readonly topic: string; readonly message: DataMessage }
  /** Ask for messages `from..to` of a publisher; passed up the tree, then to the publisher. */
  | {
      readonly type: 'replayRequest'
      readonly topic: string
      readonly publisher: NodeHandle
      readonly epoch: number
      readonly from: number
      readonly to: number
      readonly replyTo: NodeHandle
      readonly hops: number
    }
  /**
   * The answer to a replay request, straight to its `replyTo`. `lostTo` > 0 says that every
   * message up to it (from the request's `from`) is gone for good; 0 says nothing is lost.
   */
  | {
      readonly type: 'replay'
      readonly topic: string
      readonly publisher: NodeHandle
      readonly epoch: number
      readonly messages: readonly { readonly seq: number; readonly data: Uint8Array }[]
      readonly lostTo: number
    }
  /** Routed toward the topic id, then walked depth first through the tree by direct sends. */
  | {
      readonly type: 'anycast'
      readonly topic: string
      readonly anycastId: number
      readonly requester: NodeHandle
      readonly data: Uint8Array
      readonly visited: readonly Id[]
      readonly steps: number
    }
  /** The member that accepted an anycast (or the node that gave up) to its requester. */
  | {
      readonly type: 'anycastResult'
      readonly anycastId: number
      readonly accepted: boolean
      readonly by: NodeHandle
    }

export type PubSubWireType = PubSubWireMessage['type']
export type PubSubWireOf<T extends PubSubWireType> = Extract<PubSubWireMessage, { type: T }>

const CODES: Readonly<Record<PubSubWireType, number>> = {
  subscribe: 1,
  subscribeAck: 2,
  subscribeRedirect: 3,
  subscribeNack: 4,
  leave: 5,
  reject: 6,
  beatDown: 7,
  beatUp: 8,
  publish: 9,
  publishAck: 10,
  publishNack: 11,
  data: 12,
  replayRequest: 13,
  replay: 14,
  anycast: 15,
  anycastResult: 16,
}
const TYPES: readonly (PubSubWireType | undefined)[] = (() => {
  const t: (PubSubWireType | undefined)[] = []
  for (const [k, v] of Object.entries(CODES)) t[v] = k as PubSubWireType
  return t
})()

/** Why a payload was refused. */
export type PubSubWireErrorCode = 'TOO_LARGE' | 'MALFORMED' | 'BAD_VERSION' | 'BAD_TYPE' | 'BAD_FIELD'

export interface PubSubWireError {
  readonly code: PubSubWireErrorCode
  readonly message: string
}

export type PubSubDecodeResult =
  | { readonly ok: true; readonly message: PubSubWireMessage }
  | { readonly ok: false; readonly error: PubSubWireError }

const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  largeBigIntToFloat: false,
})
const decoderOptions: Options & { readonly int64AsNumber: boolean } = {
  useRecords: false,
  mapsAsObjects: true,
  int64AsNumber: true,
  copyBuffers: false,
}
const decoder = new Decoder(decoderOptions)

// ------------------------------------------------------------------------------------------------
// Encoding

function u(n: number): number | bigint {
  return n > 0xffffffff ? BigInt(n) : n
}

function h(n: NodeHandle): unknown[] {
  return [n.id.toBytes(), n.address]
}

function ids(list: readonly Id[]): Uint8Array[] {
  return list.map((i) => i.toBytes())
}

function dm(m: DataMessage): unknown[] {
  return [h(m.publisher), u(m.epoch), u(m.seq), m.data]
}

function fields(m: PubSubWireMessage): unknown[] {
  switch (m.type) {
    case 'subscribe':
      return [m.topic, h(m.subscriber), m.redirects, ids(m.chain)]
    case 'subscribeAck':
      return [m.topic, ids(m.path), m.heads.map((x) => [h(x.publisher), u(x.epoch), u(x.seq)])]
    case 'subscribeRedirect':
      return [m.topic, h(m.to), m.redirects]
    case 'subscribeNack':
    case 'leave':
    case 'reject':
      return [m.topic]
    case 'beatDown':
      return [m.items.map((x) => [x.topic, ids(x.path)])]
    case 'beatUp':
      return [[...m.topics]]
    case 'publish':
    case 'data':
      return [m.topic, dm(m.message)]
    case 'publishAck':
    case 'publishNack':
      return [m.topic, u(m.epoch), u(m.seq)]
    case 'replayRequest':
      return [m.topic, h(m.publisher), u(m.epoch), u(m.from), u(m.to), h(m.replyTo), m.hops]
    case 'replay':
      return [m.topic, h(m.publisher), u(m.epoch), m.messages.map((x) => [u(x.seq), x.data]), u(m.lostTo)]
    case 'anycast':
      return [m.topic, u(m.anycastId), h(m.requester), m.data, ids(m.visited), m.steps]
    case 'anycastResult':
      return [u(m.anycastId), m.accepted, h(m.by)]
  }
}

/**
 * Encodes a message as a payload for core's `route` or `send`. The result is a fresh Uint8Array
 * the caller owns. Throws only for a message that breaks its own type (a bug in the caller).
 */
export function encodePubSub(message: PubSubWireMessage): Uint8Array {
  const encoded: Uint8Array = encoder.encode([PUBSUB_VERSION, CODES[message.type], ...fields(message)])
  return new Uint8Array(encoded)
}

// ------------------------------------------------------------------------------------------------
// Pre-scan

class Fail extends Error {
  readonly error: PubSubWireError
  constructor(code: PubSubWireErrorCode, message: string) {
    super(message)
    this.error = { code, message }
  }
}

const MAX_DEPTH = 6
const MAX_ARRAY_ITEMS = Math.max(
  MAX_REPLAY_MESSAGES,
  MAX_HEADS,
  MAX_BEAT_TOPICS,
  MAX_VISITED,
  MAX_PATH_IDS,
  16,
)
const MAX_TEXT_BYTES = Math.max(MAX_TOPIC_BYTES, MAX_ADDRESS_BYTES)
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Walks every CBOR head once; throws Fail for anything this protocol never sends. */
function prescan(b: Uint8Array): void {
  let pos = 0
  // Items still expected at each open array level; the outermost expects one item.
  const left: number[] = [1]
  const readArg = (info: number): number => {
    if (info < 24) return info
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0
    if (size === 0) throw new Fail('MALFORMED', 'an indefinite length or a reserved head')
    if (pos + size > b.length) throw new Fail('MALFORMED', 'truncated')
    let v = 0
    for (let i = 0; i < size; i++) v = v * 256 + b[pos + i]!
    pos += size
    if (!Number.isSafeInteger(v)) throw new Fail('BAD_FIELD', 'an integer beyond 2^53 - 1')
    return v
  }
  while (left.length > 0) {
    if (left[left.length - 1] === 0) {
      left.pop()
      continue
    }
    left[left.length - 1]!--
    if (pos >= b.length) throw new Fail('MALFORMED', 'truncated')
    const head = b[pos++]!
    const major = head >> 5
    const info = head & 31
    switch (major) {
      case 0:
        readArg(info)
        break
      case 2:
      case 3: {
        const n = readArg(info)
        if (n > b.length - pos) throw new Fail('MALFORMED', 'a string longer than the payload')
        if (major === 3) {
          if (n > MAX_TEXT_BYTES) throw new Fail('BAD_FIELD', 'a text too long')
          try {
            strictUtf8.decode(b.subarray(pos, pos + n))
          } catch {
            throw new Fail('MALFORMED', 'text that is not UTF-8')
          }
        }
        pos += n
        break
      }
      case 4: {
        const n = readArg(info)
        if (n > MAX_ARRAY_ITEMS) throw new Fail('BAD_FIELD', 'an array too long')
        if (n > b.length - pos) throw new Fail('MALFORMED', 'an array longer than the payload')
        if (left.length > MAX_DEPTH) throw new Fail('MALFORMED', 'nested too deeply')
        left.push(n)
        break
      }
      case 7:
        if (info !== 20 && info !== 21) throw new Fail('MALFORMED', 'a float or a simple value')
        break
      default:
        throw new Fail('MALFORMED', `CBOR major type ${major} is not used`)
    }
  }
  if (pos !== b.length) throw new Fail('MALFORMED', 'trailing bytes')
}

// ------------------------------------------------------------------------------------------------
// Field checks

function arr(x: unknown, len: number | readonly [number, number], what: string): unknown[] {
  if (!Array.isArray(x)) throw new Fail('BAD_FIELD', `${what} is not an array`)
  const [lo, hi] = typeof len === 'number' ? [len, len] : len
  if (x.length < lo || x.length > hi) throw new Fail('BAD_FIELD', `${what} has ${x.length} items`)
  return x
}

function uint(x: unknown, max: number, what: string): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0 || x > max)
    throw new Fail('BAD_FIELD', `${what} is not an integer in [0, ${max}]`)
  return x
}

const utf8 = new TextEncoder()

function text(x: unknown, maxBytes: number, what: string, nonEmpty = false): string {
  if (typeof x !== 'string') throw new Fail('BAD_FIELD', `${what} is not a text`)
  if ((nonEmpty && x.length === 0) || utf8.encode(x).length > maxBytes)
    throw new Fail('BAD_FIELD', `${what} is empty or longer than ${maxBytes} bytes`)
  return x
}

function bytes(x: unknown, what: string): Uint8Array {
  if (!(x instanceof Uint8Array)) throw new Fail('BAD_FIELD', `${what} is not a byte string`)
  return x.slice()
}

function id(x: unknown, what: string): Id {
  if (!(x instanceof Uint8Array) || x.length !== 16)
    throw new Fail('BAD_FIELD', `${what} is not a 16-byte id`)
  return Id.fromBytes(x.slice())
}

function handle(x: unknown, what: string): NodeHandle {
  const [i, a] = arr(x, 2, what)
  const address = text(a, MAX_ADDRESS_BYTES, `${what}.address`, true)
  const form = addressForm(address)
  if (typeof form === 'string') {
    throw new Fail('BAD_FIELD', `${what}.address ${JSON.stringify(address)} is not an address: ${form}`)
  }
  return Object.freeze({ id: id(i, `${what}.id`), address })
}

function idList(x: unknown, max: number, what: string): Id[] {
  return arr(x, [0, max], what).map((v, i) => id(v, `${what}[${i}]`))
}

function topic(x: unknown): string {
  return text(x, MAX_TOPIC_BYTES, 'topic')
}

function bool(x: unknown, what: string): boolean {
  if (typeof x !== 'boolean') throw new Fail('BAD_FIELD', `${what} is not a boolean`)
  return x
}

function dataMessage(x: unknown): DataMessage {
  const [p, e, s, d] = arr(x, 4, 'message')
  const seq = uint(s, MAX_SEQ, 'seq')
  if (seq === 0) throw new Fail('BAD_FIELD', 'seq starts at 1')
  return { publisher: handle(p, 'publisher'), epoch: uint(e, MAX_SEQ, 'epoch'), seq, data: bytes(d, 'data') }
}

function shape(type: PubSubWireType, f: unknown[]): PubSubWireMessage {
  switch (type) {
    case 'subscribe':
      arr(f, 4, type)
      return {
        type,
        topic: topic(f[0]),
        subscriber: handle(f[1], 'subscriber'),
        redirects: uint(f[2], 255, 'redirects'),
        chain: idList(f[3], MAX_PATH_IDS, 'chain'),
      }
    case 'subscribeAck': {
      arr(f, 3, type)
      const heads = arr(f[2], [0, MAX_HEADS], 'heads').map((x) => {
        const [p, e, s] = arr(x, 3, 'head')
        return {
          publisher: handle(p, 'head.publisher'),
          epoch: uint(e, MAX_SEQ, 'epoch'),
          seq: uint(s, MAX_SEQ, 'seq'),
        }
      })
      return { type, topic: topic(f[0]), path: idList(f[1], MAX_PATH_IDS, 'path'), heads }
    }
    case 'subscribeRedirect':
      arr(f, 3, type)
      return { type, topic: topic(f[0]), to: handle(f[1], 'to'), redirects: uint(f[2], 255, 'redirects') }
    case 'subscribeNack':
    case 'leave':
    case 'reject':
      arr(f, 1, type)
      return { type, topic: topic(f[0]) }
    case 'beatDown': {
      arr(f, 1, type)
      const items = arr(f[0], [1, MAX_BEAT_TOPICS], 'items').map((x) => {
        const [t, p] = arr(x, 2, 'item')
        return { topic: topic(t), path: idList(p, MAX_PATH_IDS, 'path') }
      })
      return { type, items }
    }
    case 'beatUp':
      arr(f, 1, type)
      return { type, topics: arr(f[0], [1, MAX_BEAT_TOPICS], 'topics').map(topic) }
    case 'publish':
    case 'data':
      arr(f, 2, type)
      return { type, topic: topic(f[0]), message: dataMessage(f[1]) }
    case 'publishAck':
    case 'publishNack':
      arr(f, 3, type)
      return {
        type,
        topic: topic(f[0]),
        epoch: uint(f[1], MAX_SEQ, 'epoch'),
        seq: uint(f[2], MAX_SEQ, 'seq'),
      }
    case 'replayRequest': {
      arr(f, 7, type)
      const from = uint(f[3], MAX_SEQ, 'from')
      const to = uint(f[4], MAX_SEQ, 'to')
      if (from < 1 || to < from) throw new Fail('BAD_FIELD', 'a replay range must be 1 <= from <= to')
      return {
        type,
        topic: topic(f[0]),
        publisher: handle(f[1], 'publisher'),
        epoch: uint(f[2], MAX_SEQ, 'epoch'),
        from,
        to,
        replyTo: handle(f[5], 'replyTo'),
        hops: uint(f[6], 255, 'hops'),
      }
    }
    case 'replay': {
      arr(f, 5, type)
      const messages = arr(f[3], [0, MAX_REPLAY_MESSAGES], 'messages').map((x) => {
        const [s, d] = arr(x, 2, 'replayed message')
        const seq = uint(s, MAX_SEQ, 'seq')
        if (seq === 0) throw new Fail('BAD_FIELD', 'seq starts at 1')
        return { seq, data: bytes(d, 'data') }
      })
      return {
        type,
        topic: topic(f[0]),
        publisher: handle(f[1], 'publisher'),
        epoch: uint(f[2], MAX_SEQ, 'epoch'),
        messages,
        lostTo: uint(f[4], MAX_SEQ, 'lostTo'),
      }
    }
    case 'anycast':
      arr(f, 6, type)
      return {
        type,
        topic: topic(f[0]),
        anycastId: uint(f[1], MAX_SEQ, 'anycastId'),
        requester: handle(f[2], 'requester'),
        data: bytes(f[3], 'data'),
        visited: idList(f[4], MAX_VISITED, 'visited'),
        steps: uint(f[5], 4 * MAX_VISITED, 'steps'),
      }
    case 'anycastResult':
      arr(f, 3, type)
      return {
        type,
        anycastId: uint(f[0], MAX_SEQ, 'anycastId'),
        accepted: bool(f[1], 'accepted'),
        by: handle(f[2], 'by'),
      }
  }
}

/**
 * Decodes and validates one pubsub payload (from a `deliver`, `direct` or `forward` of the pubsub
 * application). Never throws: anything that is not a valid version-1 message of at most `maxBytes`
 * yields `{ ok: false, error }`. The result shares no memory with `payload`.
 */
export function decodePubSub(payload: Uint8Array, maxBytes: number): PubSubDecodeResult {
  try {
    if (!(payload instanceof Uint8Array)) throw new Fail('MALFORMED', 'a payload is a Uint8Array')
    if (payload.length > maxBytes)
      throw new Fail('TOO_LARGE', `${payload.length} bytes, over the ${maxBytes}-byte limit`)
    prescan(payload)
    let value: unknown
    try {
      value = decoder.decode(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength))
    } catch (e) {
      throw new Fail(
        'MALFORMED',
        `the CBOR decoder rejected it: ${e instanceof Error ? e.message : String(e)}`,
      )
    }
    const all = arr(value, [2, 9], 'message')
    if (all[0] !== PUBSUB_VERSION) throw new Fail('BAD_VERSION', `version ${String(all[0])}`)
    const code = all[1]
    const type = typeof code === 'number' ? TYPES[code] : undefined
    if (type === undefined) throw new Fail('BAD_TYPE', `unknown type code ${String(code)}`)
    return { ok: true, message: shape(type, all.slice(2)) }
  } catch (e) {
    if (e instanceof Fail) return { ok: false, error: e.error }
    return { ok: false, error: { code: 'MALFORMED', message: e instanceof Error ? e.message : String(e) } }
  }
}
