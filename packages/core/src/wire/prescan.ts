/*
 * The structural pre-scan: a safety gate run over a frame's bytes before cbor-x sees them.
 *
 * It walks every CBOR head once, keeping only a fixed-size stack of "items left" counters, and
 * allocates nothing when the frame passes. It rejects:
 * - a head that declares more items or bytes than remain in the frame (TRUNCATED), so a 5-byte frame
 *   claiming an array of 2^32 items is refused before anything is allocated;
 * - arrays longer than any array in the schema, and text longer than any text in the schema (TOO_LONG);
 * - arrays nested deeper than MAX_NESTING_DEPTH (TOO_DEEP);
 * - CBOR this protocol never sends (UNSUPPORTED_CBOR): tags, indefinite lengths, maps, floats,
 *   `undefined` and simple values other than false, true and null;
 * - reserved heads, stray breaks and text that is not valid UTF-8 (MALFORMED);
 * - anything after the single top-level item (TRAILING_BYTES).
 *
 * A frame that passes has every declared item actually present, so the arrays and strings cbor-x
 * then allocates add up to no more than the frame holds. The pre-scan is a gate, not a decoder: it
 * builds no values, and cbor-x does the decoding.
 */
import type { WireError, WireErrorCode } from './errors.js'
import { MAX_ADDRESS_BYTES, MESSAGES } from './messages.js'
import type { FieldSpec } from './schema.js'
import { isValidUtf8 } from './utf8.js'

/** The deepest nesting of arrays a frame may have. Version 1's deepest message nests 5 levels. */
export const MAX_NESTING_DEPTH = 8

const MAJOR_UINT = 0
const MAJOR_NEGINT = 1
const MAJOR_BYTES = 2
const MAJOR_TEXT = 3
const MAJOR_ARRAY = 4
const MAJOR_MAP = 5
const MAJOR_TAG = 6

/** The longest array and text string any message can hold, derived from the catalogue. */
const BOUNDS = schemaBounds()

function schemaBounds(): { readonly maxArrayItems: number; readonly maxTextBytes: number } {
  let items = 2 // a node handle is [id, address]
  let textBytes = 0
  const visit = (spec: FieldSpec): void => {
    switch (spec.kind) {
      case 'text':
        textBytes = Math.max(textBytes, spec.maxBytes)
        break
      case 'handle':
        textBytes = Math.max(textBytes, MAX_ADDRESS_BYTES)
        break
      case 'list':
        items = Math.max(items, spec.maxItems)
        visit(spec.of)
        break
      case 'record':
        items = Math.max(items, Object.keys(spec.fields).length)
        for (const f of Object.values(spec.fields)) visit(f)
        break
      case 'optional':
        visit(spec.of)
        break
      default:
        break
    }
  }
  for (const spec of Object.values(MESSAGES)) {
    const fields: { readonly [name: string]: FieldSpec } = spec.fields
    items = Math.max(items, 3 + Object.keys(fields).length)
    for (const f of Object.values(fields)) visit(f)
  }
  return { maxArrayItems: items, maxTextBytes: textBytes }
}

// The head last read by readHead. Module state, so that reading a head allocates nothing.
let headMajor = 0
let headInfo = 0
let headArg = 0
let headEnd = 0

/**
 * Reads the CBOR head at `pos` into the head variables. False when the frame ends inside the head.
 * For additional info 28..31 (reserved or indefinite) it reads only the initial byte; the caller
 * rejects those. An 8-byte argument above 2^53 is kept approximately, which is enough to compare it
 * against the bytes that remain.
 */
function readHead(b: Uint8Array, pos: number): boolean {
  if (pos >= b.length) return false
  const initial = b[pos]!
  headMajor = initial >> 5
  headInfo = initial & 0x1f
  if (headInfo < 24 || headInfo > 27) {
    headArg = headInfo
    headEnd = pos + 1
    return true
  }
  const n = 1 << (headInfo - 24) // 1, 2, 4 or 8 argument bytes
  if (pos + 1 + n > b.length) return false
  let v = 0
  for (let i = 1; i <= n; i++) v = v * 256 + b[pos + i]!
  headArg = v
  headEnd = pos + 1 + n
  return true
}

/**
 * The protocol version a frame announces, read from its first two heads without scanning the rest;
 * undefined when the frame does not start with an array whose first item is an unsigned integer.
 */
export function peekVersion(b: Uint8Array): number | undefined {
  if (!readHead(b, 0)) return undefined
  const outerMajor = headMajor
  if (outerMajor !== MAJOR_ARRAY || headInfo > 27 || headArg < 1 || !readHead(b, headEnd)) return undefined
  const innerMajor = headMajor
  return innerMajor === MAJOR_UINT && headInfo <= 27 ? headArg : undefined
}

/** Items still to read in each open array; index 0 is the top level. Fixed size: no allocation. */
const left = new Float64Array(MAX_NESTING_DEPTH + 1)

function error(code: WireErrorCode, message: string): WireError {
  return { code, message }
}

/** Checks the structure of a whole frame. Undefined when it may be handed to the CBOR decoder. */
export function prescan(b: Uint8Array): WireError | undefined {
  const end = b.length
  if (end === 0) return error('TRUNCATED', 'the frame is empty')
  let pos = 0
  let depth = 0
  left[0] = 1
  for (;;) {
    left[depth] = left[depth]! - 1
    const at = pos
    if (!readHead(b, pos)) return error('TRUNCATED', `the frame ends inside the item at byte ${at}`)
    pos = headEnd
    const major = headMajor
    const info = headInfo
    if (info >= 28) {
      if (info === 31) {
        if (major === MAJOR_BYTES || major === MAJOR_TEXT || major === MAJOR_ARRAY || major === MAJOR_MAP) {
          return error('UNSUPPORTED_CBOR', `indefinite-length item at byte ${at}`)
        }
        if (major === 7)
          return error('MALFORMED', `break code outside an indefinite-length item at byte ${at}`)
      }
      return error('MALFORMED', `reserved additional information ${info} at byte ${at}`)
    }
    const arg = headArg
    switch (major) {
      case MAJOR_UINT:
      case MAJOR_NEGINT:
        break
      case MAJOR_BYTES:
      case MAJOR_TEXT:
        if (arg > end - pos) {
          return error('TRUNCATED', `a string at byte ${at} declares ${arg} bytes, ${end - pos} remain`)
        }
        if (major === MAJOR_TEXT) {
          if (arg > BOUNDS.maxTextBytes) {
            return error(
              'TOO_LONG',
              `text of ${arg} bytes at byte ${at}, over the ${BOUNDS.maxTextBytes}-byte bound`,
            )
          }
          if (!isValidUtf8(b, pos, pos + arg))
            return error('MALFORMED', `text at byte ${at} is not valid UTF-8`)
        }
        pos += arg
        break
      case MAJOR_ARRAY:
        if (arg > end - pos) {
          return error(
            'TRUNCATED',
            `an array at byte ${at} declares ${arg} items, only ${end - pos} bytes remain`,
          )
        }
        if (arg > BOUNDS.maxArrayItems) {
          return error(
            'TOO_LONG',
            `an array of ${arg} items at byte ${at}, over the ${BOUNDS.maxArrayItems}-item bound`,
          )
        }
        if (depth === MAX_NESTING_DEPTH) {
          return error('TOO_DEEP', `arrays nest deeper than ${MAX_NESTING_DEPTH} levels at byte ${at}`)
        }
        if (arg > 0) {
          depth += 1
          left[depth] = arg
          continue
        }
        break
      case MAJOR_MAP:
        return error('UNSUPPORTED_CBOR', `a map at byte ${at}: frames carry no maps`)
      case MAJOR_TAG:
        return error('UNSUPPORTED_CBOR', `tag ${arg} at byte ${at}: frames carry no tags`)
      default:
        // major type 7: only false (20), true (21) and null (22)
        if (info < 20 || info > 22) {
          const what = info >= 25 ? 'a float' : info === 23 ? 'undefined' : `simple value ${arg}`
          return error('UNSUPPORTED_CBOR', `${what} at byte ${at}: frames carry only false, true and null`)
        }
        break
    }
    // An item is complete: close every array whose last item it was.
    while (depth > 0 && left[depth] === 0) depth -= 1
    if (depth === 0 && left[0] === 0) break
  }
  if (pos !== end) return error('TRAILING_BYTES', `${end - pos} bytes follow the frame's item`)
  return undefined
}
