/*
 * Theory of operation
 *
 * The size of a message's frame, computed from the catalogue without encoding it. The simulator
 * counts bytes with it when `encode` is off. The walk mirrors the codec (wire/shape.ts and cbor-x):
 * a frame is the CBOR array `[version, code, from, ...fields]`; a record or handle is an array of its
 * fields; an id is a 16-byte byte string; an absent optional field is `null` (one byte); integers,
 * strings, byte strings and arrays take CBOR's shortest head (1, 2, 3, 5 or 9 bytes). For a valid
 * message the result equals `encodeMessage(message).length` (the tests compare them); it never
 * validates, so it is cheap and never throws on the hot path.
 *
 * A node sends the same leaf set, as one array, in many messages (heartbeats, probes and their
 * replies) until it changes, so the size of a list of handles is remembered per array in a WeakMap.
 * This relies on the simulator's contract (contract.ts): a message, and every array in it, does not
 * change once sent. Lists shorter than a leaf set's half are measured each time instead.
 *
 * Speed. The simulator sizes every message it carries, so the walk is compiled once per message
 * type, when this module loads, into a function that reads that type's fields by name: each read
 * then sees one object shape instead of all of them, and no spec is interpreted per message. A
 * walk by keys (`message[name]` for every name in the catalogue) took about a tenth of a
 * 10,000-node join's wall time. The compiled functions are built from the catalogue alone (field
 * names are checked to be plain identifiers); where code cannot be compiled (a Content Security
 * Policy that forbids it), the interpreted walk is used, with the same result.
 */
import { MESSAGES, type Message } from '@pastry/core'

interface Spec {
  readonly kind: string
  readonly of?: Spec
  readonly fields?: { readonly [name: string]: Spec }
}

/** Per message type, its fields in wire order as (name, spec) pairs: walked without `for...in`. */
const LAYOUT: { [type: string]: { readonly names: readonly string[]; readonly specs: readonly Spec[] } } = {}
for (const [type, spec] of Object.entries(MESSAGES)) {
  const fields = spec.fields as { readonly [name: string]: Spec }
  LAYOUT[type] = { names: Object.keys(fields), specs: Object.values(fields) }
}

/** Bytes of a CBOR head for argument `n`. */
function head(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n <= 0xffffffff ? 5 : 9
}

/** UTF-8 length of a string (lone surrogates count 3 bytes, as a replacement character would). */
function utf8Bytes(s: string): number {
  let n = s.length
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) n += 1
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2
        i++
      } else n += 2
    } else n += 2
  }
  return n
}

function textSize(s: string): number {
  const n = utf8Bytes(s)
  return head(n) + n
}

/** The encoded size of a handle `[id, address]`: array head, 16-byte byte string, text. */
function encodedHandleSize(address: string): number {
  return 1 + 17 + textSize(address)
}

/**
 * Where a handle made by {@link sizedHandle} keeps its encoded size. A symbol: no enumeration,
 * comparison or serialisation of the handle sees it.
 */
const WIRE_SIZE = Symbol('pastry.sim.wireSize')

/**
 * A frozen handle `{ id, address }` that carries its own encoded size, so that counting the bytes
 * of the many messages that name it does not read its address again. The simulator makes every
 * node's handle this way.
 */
export function sizedHandle<I>(id: I, address: string): { readonly id: I; readonly address: string } {
  return Object.freeze({ id, address, [WIRE_SIZE]: encodedHandleSize(address) })
}

function handleSize(h: { readonly address: string }): number {
  const known = (h as { readonly [WIRE_SIZE]?: number })[WIRE_SIZE]
  return known !== undefined ? known : encodedHandleSize(h.address)
}

/** Sizes of handle lists already measured, by array. */
const LIST_SIZES = new WeakMap<object, number>()
/** Lists at least this long are remembered. */
const REMEMBER_FROM = 8

function handleListSize(items: readonly { readonly address: string }[]): number {
  const remember = items.length >= REMEMBER_FROM
  if (remember) {
    const known = LIST_SIZES.get(items)
    if (known !== undefined) return known
  }
  let n = head(items.length)
  for (let i = 0; i < items.length; i++) n += handleSize(items[i]!)
  if (remember) LIST_SIZES.set(items, n)
  return n
}

function fieldSize(spec: Spec, v: unknown): number {
  switch (spec.kind) {
    case 'uint':
      return head(v as number)
    case 'bool':
      return 1
    case 'text':
      return textSize(v as string)
    case 'bytes': {
      const n = (v as Uint8Array).length
      return head(n) + n
    }
    case 'id':
      return 17
    case 'handle':
      return handleSize(v as { readonly address: string })
    case 'list': {
      const items = v as readonly unknown[]
      const of = spec.of!
      if (of.kind === 'handle') return handleListSize(items as readonly { readonly address: string }[])
      let n = head(items.length)
      for (let i = 0; i < items.length; i++) n += fieldSize(of, items[i])
      return n
    }
    case 'record': {
      const fields = spec.fields!
      const r = v as { readonly [name: string]: unknown }
      let n = 0
      let count = 0
      for (const name in fields) {
        n += fieldSize(fields[name]!, r[name])
        count++
      }
      return head(count) + n
    }
    case 'optional':
      return v === undefined || v === null ? 1 : fieldSize(spec.of!, v)
    default:
      return 0
  }
}

/** The interpreted walk: the size of any message whose type is in the catalogue. */
function walkSize(message: Message): number {
  const layout = LAYOUT[message.type]
  if (layout === undefined) return 0
  const m = message as unknown as { readonly [name: string]: unknown }
  const { names, specs } = layout
  // Array head, version, type code (both < 24), sender handle.
  let n = head(3 + names.length) + 1 + 1 + handleSize(message.from)
  for (let i = 0; i < names.length; i++) n += fieldSize(specs[i]!, m[names[i]!])
  return n
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/

/**
 * A JavaScript expression for the size of the value that expression `v` yields under `spec`.
 * Kinds without a direct form go through `fieldSize` with the spec passed in as `specs[k]`.
 */
function sizeExpression(spec: Spec, v: string, specs: Spec[]): string {
  switch (spec.kind) {
    case 'uint':
      return `head(${v})`
    case 'bool':
      return '1'
    case 'text':
      return `textSize(${v})`
    case 'bytes':
      return `(head(${v}.length) + ${v}.length)`
    case 'id':
      return '17'
    case 'handle':
      return `handleSize(${v})`
    case 'optional':
      return `(${v} === undefined || ${v} === null ? 1 : ${sizeExpression(spec.of!, v, specs)})`
    case 'list':
      if (spec.of!.kind === 'handle') return `handleListSize(${v})`
      break
  }
  specs.push(spec)
  return `fieldSize(specs[${specs.length - 1}], ${v})`
}

/** The walk for one message type, compiled; undefined when code cannot be compiled here. */
function compile(type: string): ((message: Message) => number) | undefined {
  const { names, specs } = LAYOUT[type]!
  if (!names.every((name) => IDENTIFIER.test(name))) return undefined
  const passed: Spec[] = []
  const terms = names.map((name, i) => sizeExpression(specs[i]!, `m.${name}`, passed))
  const fixed = head(3 + names.length) + 1 + 1
  const body = `return function (m) { return ${[String(fixed), 'handleSize(m.from)', ...terms].join(' + ')} }`
  try {
    const make = new Function('head', 'textSize', 'handleSize', 'handleListSize', 'fieldSize', 'specs', body)
    return make(head, textSize, handleSize, handleListSize, fieldSize, passed) as (message: Message) => number
  } catch {
    return undefined
  }
}

/** Per message type, its compiled walk (or the interpreted one). */
const SIZERS = new Map<string, (message: Message) => number>()
for (const type of Object.keys(LAYOUT)) SIZERS.set(type, compile(type) ?? walkSize)

/**
 * The encoded size in bytes of `message`, without encoding it. Call it to count bytes when messages
 * are passed as objects; equal to `encodeMessage(message).length` for any valid message, and 0 for
 * a type outside the catalogue.
 */
export function messageSize(message: Message): number {
  const size = SIZERS.get(message.type)
  return size === undefined ? 0 : size(message)
}

/** {@link messageSize} computed by interpreting the catalogue for every field: the reference the tests hold the compiled walks to. */
export function interpretedMessageSize(message: Message): number {
  return walkSize(message)
}
