/*
 * Converts between messages and the plain values cbor-x encodes, by walking the catalogue.
 *
 * `toWire` checks a message against its type's fields and builds the CBOR array
 * `[version, code, from, ...fields]`; it throws InvalidMessageError or MessageTooLargeError.
 * `fromWire` checks a value cbor-x decoded (after the pre-scan) and builds the message; it throws a
 * DecodeFailure, which the codec turns into a WireError value. Nothing else escapes either.
 *
 * The path of the field being checked lives on a small module-level stack and is rendered into a
 * string only when a check fails, so that valid messages cost no string building.
 */
import { ID_BYTES } from '../id/digits.js'
import { Id } from '../id/id.js'
import { addressForm } from './address.js'
import { InvalidMessageError, MessageTooLargeError, type WireError, type WireErrorCode } from './errors.js'
import {
  MAX_ADDRESS_BYTES,
  MESSAGES,
  type Message,
  type MessageSpec,
  type MessageType,
  type NodeHandle,
} from './messages.js'
import type { FieldSpec, FieldsSpec } from './schema.js'
import { utf8Length } from './utf8.js'

/**
 * The protocol version this codec speaks: the first item of every frame. {@link decodeMessage} rejects
 * frames of any other version with `BAD_VERSION`; bump it with any change to the catalogue's wire form.
 */
export const PROTOCOL_VERSION = 1

const SPECS: { readonly [type: string]: MessageSpec } = MESSAGES

/** Message specs by wire code. */
const BY_CODE: readonly (readonly [MessageType, MessageSpec] | undefined)[] = buildCodeTable()

function buildCodeTable(): (readonly [MessageType, MessageSpec] | undefined)[] {
  const table: (readonly [MessageType, MessageSpec] | undefined)[] = []
  for (const [type, spec] of Object.entries(SPECS)) {
    if (!Number.isInteger(spec.code) || spec.code < 0 || spec.code > 255 || table[spec.code] !== undefined) {
      throw new Error(`wire catalogue: type code ${spec.code} of '${type}' is invalid or taken`)
    }
    table[spec.code] = [type as MessageType, spec]
  }
  return table
}

const ADDRESS_SPEC: FieldSpec = { kind: 'text', maxBytes: MAX_ADDRESS_BYTES }
const ID_SPEC: FieldSpec = { kind: 'id' }
const HANDLE_SPEC: FieldSpec = { kind: 'handle' }

const path: (string | number)[] = []

function renderPath(): string {
  let s = ''
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? p : `.${p}`
  return s
}

// ---------------------------------------------------------------------------------------------------
// Encoding side

function invalid(message: string): never {
  throw new InvalidMessageError(renderPath(), message)
}

/** Builds the CBOR-ready value of `message`, checking it against the catalogue. */
export function toWire(message: Message, maxMessageBytes: number): unknown[] {
  path.length = 0
  if (typeof message !== 'object' || message === null) {
    path.push('message')
    invalid(`expected a message object, got ${describe(message)}`)
  }
  const type: unknown = message.type
  if (typeof type !== 'string' || !Object.hasOwn(SPECS, type)) {
    path.push('type')
    invalid(`unknown message type ${typeof type === 'string' ? JSON.stringify(type) : describe(type)}`)
  }
  const spec = SPECS[type]!
  path.push(type)
  const fields = spec.fields
  const out: unknown[] = [PROTOCOL_VERSION, spec.code]
  path.push('from')
  out.push(encodeField(HANDLE_SPEC, message.from, maxMessageBytes))
  path.pop()
  const msg = message as unknown as { readonly [name: string]: unknown }
  for (const name in fields) {
    path.push(name)
    out.push(encodeField(fields[name]!, msg[name], maxMessageBytes))
    path.pop()
  }
  return out
}

function encodeField(spec: FieldSpec, v: unknown, maxMessageBytes: number): unknown {
  switch (spec.kind) {
    case 'uint':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
        invalid(`expected an unsigned safe integer, got ${describe(v)}`)
      }
      if (v > spec.max) invalid(`${v} is over the maximum ${spec.max}`)
      // cbor-x writes numbers above 2^32 - 1 as float64; a bigint is written as a CBOR uint64.
      return v > 0xffffffff ? BigInt(v) : v
    case 'bool':
      if (typeof v !== 'boolean') invalid(`expected a boolean, got ${describe(v)}`)
      return v
    case 'text': {
      if (typeof v !== 'string') invalid(`expected a string, got ${describe(v)}`)
      const n = utf8Length(v)
      if (n < 0) invalid('the string holds a lone surrogate and has no UTF-8 form')
      if (n > spec.maxBytes) invalid(`${n} UTF-8 bytes, over the ${spec.maxBytes}-byte bound`)
      return v
    }
    case 'bytes':
      if (!(v instanceof Uint8Array)) invalid(`expected a Uint8Array, got ${describe(v)}`)
      if (v.length > maxMessageBytes) throw new MessageTooLargeError(v.length, maxMessageBytes)
      // A subclass (Node's Buffer, or another) is written through a plain view of the same bytes.
      return v.constructor === Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength)
    case 'id':
      if (!(v instanceof Id)) invalid(`expected an Id, got ${describe(v)}`)
      return v.toBytes()
    case 'handle': {
      if (typeof v !== 'object' || v === null) invalid(`expected a node handle, got ${describe(v)}`)
      const h = v as Partial<NodeHandle>
      path.push('id')
      const idBytes = encodeField(ID_SPEC, h.id, maxMessageBytes)
      path[path.length - 1] = 'address'
      const address = encodeField(ADDRESS_SPEC, h.address, maxMessageBytes) as string
      const form = addressForm(address)
      if (typeof form === 'string') invalid(`${JSON.stringify(address)} is not an address: ${form}`)
      path.pop()
      return [idBytes, address]
    }
    case 'list': {
      if (!Array.isArray(v)) invalid(`expected an array, got ${describe(v)}`)
      if (v.length > spec.maxItems) invalid(`${v.length} items, over the ${spec.maxItems}-item bound`)
      const out = new Array<unknown>(v.length)
      path.push(0)
      for (let i = 0; i < v.length; i++) {
        path[path.length - 1] = i
        out[i] = encodeField(spec.of, v[i], maxMessageBytes)
      }
      path.pop()
      return out
    }
    case 'record': {
      if (typeof v !== 'object' || v === null) invalid(`expected an object, got ${describe(v)}`)
      const r = v as { readonly [name: string]: unknown }
      const out: unknown[] = []
      for (const name in spec.fields) {
        path.push(name)
        out.push(encodeField(spec.fields[name]!, r[name], maxMessageBytes))
        path.pop()
      }
      return out
    }
    case 'optional':
      return v === undefined ? null : encodeField(spec.of, v, maxMessageBytes)
  }
}

// ---------------------------------------------------------------------------------------------------
// Decoding side

/** Thrown inside the decoder to carry a WireError out of the walk. Not an Error: no stack to capture. */
export class DecodeFailure {
  readonly error: WireError
  constructor(error: WireError) {
    this.error = error
  }
}

function reject(code: WireErrorCode, message: string): never {
  const where = renderPath()
  throw new DecodeFailure({ code, message: where === '' ? message : `${where}: ${message}` })
}

/** Checks a value decoded by cbor-x against the catalogue and builds the message it encodes. */
export function fromWire(v: unknown): Message {
  path.length = 0
  if (!Array.isArray(v) || v.length < 3) {
    reject('MALFORMED', `a frame is an array [version, type, from, ...fields], got ${describe(v)}`)
  }
  const version: unknown = v[0]
  if (version !== PROTOCOL_VERSION) {
    reject('BAD_VERSION', `protocol version ${describe(version)}, this node speaks ${PROTOCOL_VERSION}`)
  }
  const code: unknown = v[1]
  const entry = typeof code === 'number' ? BY_CODE[code] : undefined
  if (entry === undefined) reject('UNKNOWN_TYPE', `unknown message type code ${describe(code)}`)
  const [type, spec] = entry
  path.push(type)
  const fields: FieldsSpec = spec.fields
  let count = 0
  for (const _ in fields) count++
  if (v.length !== 3 + count) {
    reject(
      'BAD_FIELD',
      `expected ${3 + count} items ([version, type, from] and ${count} fields), got ${v.length}`,
    )
  }
  path.push('from')
  const out: { [name: string]: unknown } = { type, from: decodeField(HANDLE_SPEC, v[2]) }
  path.pop()
  let i = 3
  for (const name in fields) {
    path.push(name)
    const spec = fields[name]!
    const item: unknown = v[i++]
    if (spec.kind !== 'optional' || item !== null) out[name] = decodeField(spec, item)
    path.pop()
  }
  return out as unknown as Message
}

function decodeField(spec: FieldSpec, v: unknown): unknown {
  switch (spec.kind) {
    case 'uint':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
        reject('BAD_FIELD', `expected an unsigned integer, got ${describe(v)}`)
      }
      if (v > spec.max) reject('BAD_FIELD', `${v} is over the maximum ${spec.max}`)
      return v
    case 'bool':
      if (typeof v !== 'boolean') reject('BAD_FIELD', `expected a boolean, got ${describe(v)}`)
      return v
    case 'text':
      if (typeof v !== 'string') reject('BAD_FIELD', `expected a text string, got ${describe(v)}`)
      // UTF-16 length is a lower bound of UTF-8 length, so the first test rejects long strings cheaply.
      if (v.length > spec.maxBytes || utf8Length(v) > spec.maxBytes) {
        reject('TOO_LONG', `text over the ${spec.maxBytes}-byte bound`)
      }
      return v
    case 'bytes':
      if (!(v instanceof Uint8Array)) reject('BAD_FIELD', `expected a byte string, got ${describe(v)}`)
      // A copy: the decoded message never aliases the frame's buffer.
      return v.slice()
    case 'id':
      if (!(v instanceof Uint8Array))
        reject('BAD_FIELD', `expected an id (a byte string), got ${describe(v)}`)
      if (v.length !== ID_BYTES) reject('BAD_ID', `an id is exactly ${ID_BYTES} bytes, got ${v.length}`)
      return Id.readFrom(v, 0)
    case 'handle': {
      if (!Array.isArray(v) || v.length !== 2) {
        reject('BAD_FIELD', `expected a node handle [id, address], got ${describe(v)}`)
      }
      path.push('id')
      const nodeId = decodeField(ID_SPEC, v[0])
      path[path.length - 1] = 'address'
      const address = decodeField(ADDRESS_SPEC, v[1]) as string
      const form = addressForm(address)
      if (typeof form === 'string')
        reject('BAD_FIELD', `${JSON.stringify(address)} is not an address: ${form}`)
      path.pop()
      return { id: nodeId, address }
    }
    case 'list': {
      if (!Array.isArray(v)) reject('BAD_FIELD', `expected an array, got ${describe(v)}`)
      if (v.length > spec.maxItems)
        reject('TOO_LONG', `${v.length} items, over the ${spec.maxItems}-item bound`)
      const out = new Array<unknown>(v.length)
      path.push(0)
      for (let i = 0; i < v.length; i++) {
        path[path.length - 1] = i
        out[i] = decodeField(spec.of, v[i])
      }
      path.pop()
      return out
    }
    case 'record': {
      let count = 0
      for (const _ in spec.fields) count++
      if (!Array.isArray(v) || v.length !== count) {
        reject('BAD_FIELD', `expected an array of ${count} fields, got ${describe(v)}`)
      }
      const out: { [name: string]: unknown } = {}
      let i = 0
      for (const name in spec.fields) {
        path.push(name)
        const f = spec.fields[name]!
        const item: unknown = v[i++]
        if (f.kind !== 'optional' || item !== null) out[name] = decodeField(f, item)
        path.pop()
      }
      return out
    }
    case 'optional':
      return decodeField(spec.of, v)
  }
}

/** A short description of a value for error messages. Never throws, never prints its content at length. */
function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return `an array of ${v.length} items`
  if (v instanceof Uint8Array) return `a byte string of ${v.length} bytes`
  switch (typeof v) {
    case 'number':
      return Number.isInteger(v)
        ? v < 0
          ? `the negative integer ${v}`
          : `the integer ${v}`
        : `the number ${v}`
    case 'string':
      return `a string of ${v.length} characters`
    case 'boolean':
      return String(v)
    case 'undefined':
      return 'nothing'
    case 'bigint':
      return 'a bigint'
    default:
      return `a value of type ${typeof v}`
  }
}
