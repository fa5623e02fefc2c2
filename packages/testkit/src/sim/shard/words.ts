/*
 * Theory of operation
 *
 * A message as a run of float64 words, for handing it from one simulator shard to another through
 * shared memory (ring.ts). Both shards hold every node's handle, made from the same seed, so a
 * handle travels as its node's index and comes out as the receiving shard's own handle object: no
 * address is copied, and the tables of the receiving nodes keep sharing one handle per node, as
 * they do in a single simulator.
 *
 * The layout follows the message catalogue (`MESSAGES` in @pastry/core), field by field in wire
 * order, after two words for the type code and the sender:
 *
 * - uint, bool: one word (a bool is 0 or 1);
 * - id: four words, the id's int32 words from the most significant;
 * - handle: one word, the node's index;
 * - text: its length in UTF-16 code units, then one word per code unit;
 * - bytes: its length, then one word per four bytes (little-endian within the word);
 * - list: its length, then each item;
 * - record: its fields in order;
 * - optional: 0 when absent, else 1 and the value.
 *
 * Every number a word holds is an integer below 2^53, so a float64 holds it exactly. This is not
 * a wire format: both ends are the same build, in the same process, and nothing is validated.
 */
import { Id, MESSAGES, type Message, type NodeHandle } from '@pastry/core'

interface Spec {
  readonly kind: string
  readonly of?: Spec
  readonly fields?: { readonly [name: string]: Spec }
}

interface Layout {
  readonly type: string
  readonly names: readonly string[]
  readonly specs: readonly Spec[]
}

const BY_TYPE = new Map<string, { readonly code: number; readonly layout: Layout }>()
const BY_CODE: (Layout | undefined)[] = []
for (const [type, spec] of Object.entries(MESSAGES)) {
  const fields = spec.fields as { readonly [name: string]: Spec }
  const layout: Layout = { type, names: Object.keys(fields), specs: Object.values(fields) }
  BY_TYPE.set(type, { code: spec.code, layout })
  BY_CODE[spec.code] = layout
}

/** How a shard names nodes: a handle's index, and the handle of an index. */
export interface HandleIndex {
  /** The index of the node a handle names; throws for a handle that names no node. */
  indexOf(handle: NodeHandle): number
  /** The shard's handle of node `index`. */
  handleOf(index: number): NodeHandle
}

/** A growable run of words that messages are written into. */
export class WordWriter {
  words: Float64Array
  length = 0

  constructor(initialWords = 256) {
    this.words = new Float64Array(initialWords)
  }

  /** Empties the writer (the storage is kept). */
  reset(): void {
    this.length = 0
  }

  push(x: number): void {
    if (this.length === this.words.length) {
      const bigger = new Float64Array(this.words.length * 2)
      bigger.set(this.words)
      this.words = bigger
    }
    this.words[this.length++] = x
  }
}

/** Appends `message` to `out`. Throws for a type outside the catalogue. */
export function writeMessage(out: WordWriter, message: Message, names: HandleIndex): void {
  const entry = BY_TYPE.get(message.type)
  if (entry === undefined) throw new TypeError(`no message type ${JSON.stringify(message.type)}`)
  out.push(entry.code)
  out.push(names.indexOf(message.from))
  const { names: fields, specs } = entry.layout
  const m = message as unknown as { readonly [name: string]: unknown }
  for (let i = 0; i < fields.length; i++) writeValue(out, specs[i]!, m[fields[i]!], names)
}

function writeValue(out: WordWriter, spec: Spec, v: unknown, names: HandleIndex): void {
  switch (spec.kind) {
    case 'uint':
      out.push(v as number)
      return
    case 'bool':
      out.push(v === true ? 1 : 0)
      return
    case 'id': {
      const id = v as Id
      out.push(id.w0)
      out.push(id.w1)
      out.push(id.w2)
      out.push(id.w3)
      return
    }
    case 'handle':
      out.push(names.indexOf(v as NodeHandle))
      return
    case 'text': {
      const s = v as string
      out.push(s.length)
      for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i))
      return
    }
    case 'bytes': {
      const b = v as Uint8Array
      out.push(b.length)
      for (let i = 0; i < b.length; i += 4)
        out.push((b[i]! | ((b[i + 1] ?? 0) << 8) | ((b[i + 2] ?? 0) << 16) | ((b[i + 3] ?? 0) << 24)) >>> 0)
      return
    }
    case 'list': {
      const items = v as readonly unknown[]
      out.push(items.length)
      const of = spec.of!
      for (let i = 0; i < items.length; i++) writeValue(out, of, items[i], names)
      return
    }
    case 'record': {
      const r = v as { readonly [name: string]: unknown }
      for (const [name, s] of Object.entries(spec.fields!)) writeValue(out, s, r[name], names)
      return
    }
    case 'optional':
      if (v === undefined) out.push(0)
      else {
        out.push(1)
        writeValue(out, spec.of!, v, names)
      }
      return
    default:
      throw new TypeError(`no field kind ${spec.kind}`)
  }
}

/** Where the last {@link readMessage} stopped. */
let cursor = 0

/**
 * Reads the message that starts at `words[at]`; {@link readEnd} then tells where it ended. Handles
 * come from `names.handleOf`, so they are the reading shard's own.
 */
export function readMessage(words: Float64Array, at: number, names: HandleIndex): Message {
  const code = words[at]!
  const layout = BY_CODE[code]
  if (layout === undefined) throw new TypeError(`no message type has code ${code}`)
  cursor = at + 1
  const message: { [name: string]: unknown } = { type: layout.type, from: names.handleOf(words[cursor++]!) }
  const { names: fields, specs } = layout
  for (let i = 0; i < fields.length; i++) {
    const spec = specs[i]!
    if (spec.kind === 'optional') {
      if (words[cursor++] === 0) continue
      message[fields[i]!] = readValue(words, spec.of!, names)
    } else message[fields[i]!] = readValue(words, spec, names)
  }
  return message as unknown as Message
}

/** The index one past the last word of the message {@link readMessage} read last. */
export function readEnd(): number {
  return cursor
}

function readValue(words: Float64Array, spec: Spec, names: HandleIndex): unknown {
  switch (spec.kind) {
    case 'uint':
      return words[cursor++]!
    case 'bool':
      return words[cursor++] === 1
    case 'id': {
      const id = Id.fromWords(words[cursor]!, words[cursor + 1]!, words[cursor + 2]!, words[cursor + 3]!)
      cursor += 4
      return id
    }
    case 'handle':
      return names.handleOf(words[cursor++]!)
    case 'text': {
      const n = words[cursor++]!
      let s = ''
      for (let i = 0; i < n; i++) s += String.fromCharCode(words[cursor++]!)
      return s
    }
    case 'bytes': {
      const n = words[cursor++]!
      const b = new Uint8Array(n)
      for (let i = 0; i < n; i += 4) {
        const w = words[cursor++]!
        b[i] = w & 0xff
        if (i + 1 < n) b[i + 1] = (w >>> 8) & 0xff
        if (i + 2 < n) b[i + 2] = (w >>> 16) & 0xff
        if (i + 3 < n) b[i + 3] = (w >>> 24) & 0xff
      }
      return b
    }
    case 'list': {
      const n = words[cursor++]!
      const items: unknown[] = new Array(n)
      const of = spec.of!
      for (let i = 0; i < n; i++) items[i] = readValue(words, of, names)
      return items
    }
    case 'record': {
      const r: { [name: string]: unknown } = {}
      for (const [name, s] of Object.entries(spec.fields!)) {
        if (s.kind === 'optional') {
          if (words[cursor++] === 0) continue
          r[name] = readValue(words, s.of!, names)
        } else r[name] = readValue(words, s, names)
      }
      return r
    }
    case 'optional':
      return words[cursor++] === 0 ? undefined : readValue(words, spec.of!, names)
    default:
      throw new TypeError(`no field kind ${spec.kind}`)
  }
}
