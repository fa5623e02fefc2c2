/*
 * Theory of operation
 *
 * encodeMessage: check the message against the catalogue (shape.ts), turn it into the array
 * `[version, code, from, ...fields]`, let cbor-x write it, check the size, and hand back a fresh
 * Uint8Array that the caller owns.
 *
 * decodeMessage, in order, stopping at the first failure:
 *   1. the size (TOO_LARGE), before any byte is read;
 *   2. the version, peeked from the first two heads (BAD_VERSION);
 *   3. the structural pre-scan (prescan.ts), which allocates nothing and guarantees that every item
 *      the frame declares is present, so that step 4 allocates no more than the frame holds;
 *   4. cbor-x decodes the frame into plain arrays, numbers, strings, booleans, null and Uint8Arrays;
 *   5. the schema walk (shape.ts) checks every field and builds the message.
 * Every failure is a WireError value: nothing is thrown, whatever the input.
 *
 * cbor-x configuration and the behaviours worked around:
 * - `useRecords: false` and `mapsAsObjects: true`: plain CBOR, no record extension. Frames contain
 *   no maps (the pre-scan rejects them), so the second only matters to cbor-x's defaults.
 * - `tagUint8Array: false`: on Node, cbor-x would otherwise wrap every Uint8Array in tag 64.
 * - cbor-x writes integers above 2^32 - 1 as float64; shape.ts passes them as bigint, which cbor-x
 *   writes as a CBOR uint64, and `int64AsNumber: true` reads them back as numbers.
 * - cbor-x's encoder writes into a shared, reused slab (a Node Buffer) and returns a view of it, so
 *   encodeMessage copies the bytes out into a plain Uint8Array of exactly the frame's length.
 * - cbor-x caches a DataView as a property of the array it decodes, and returns byte strings as
 *   views of its input (Buffers, when the input is a Buffer). decodeMessage therefore decodes a
 *   fresh plain Uint8Array view of the caller's bytes (the caller's object is not touched), and
 *   shape.ts copies every payload out: a decoded message never aliases the frame, so the caller may
 *   reuse its receive buffer at once.
 * - cbor-x's size limits (`setSizeLimits`) are global to the process, so they are left alone; the
 *   pre-scan enforces this protocol's bounds instead.
 */
import { Decoder, Encoder, type Options } from 'cbor-x'
import { ConfigError } from '../errors.js'
import { MessageTooLargeError, type WireError, type WireErrorCode } from './errors.js'
import type { Message } from './messages.js'
import { peekVersion, prescan } from './prescan.js'
import { DecodeFailure, fromWire, PROTOCOL_VERSION, toWire } from './shape.js'

/** The default largest frame, in bytes: 1 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

/** Options for {@link encodeMessage} and {@link decodeMessage}. */
export interface CodecOptions {
  /**
   * The largest encoded message, in bytes; a positive integer. Both ends of a link should agree on
   * it. Defaults to {@link DEFAULT_MAX_MESSAGE_BYTES}.
   */
  readonly maxMessageBytes?: number
}

/** What {@link decodeMessage} hands back: the message, or why the frame was rejected. */
export type DecodeResult =
  | { readonly ok: true; readonly message: Message }
  | { readonly ok: false; readonly error: WireError }

const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  largeBigIntToFloat: false,
})

// `int64AsNumber` is read by cbor-x's decoder but missing from its type declarations.
const decoderOptions: Options & { readonly int64AsNumber: boolean } = {
  useRecords: false,
  mapsAsObjects: true,
  int64AsNumber: true,
  copyBuffers: false,
}
const decoder = new Decoder(decoderOptions)

function maxBytesOf(options: CodecOptions | undefined): number | undefined {
  const max = options?.maxMessageBytes
  if (max === undefined) return DEFAULT_MAX_MESSAGE_BYTES
  return Number.isSafeInteger(max) && max > 0 ? max : undefined
}

/**
 * Encodes a message into one frame. Call it for every message a node transmits; hand the result to
 * the transport as is. The result is a new Uint8Array owned by the caller, and stays valid forever.
 *
 * Throws {@link InvalidMessageError} (code `INVALID_MESSAGE`) when the message breaks its type's
 * schema (hops over 255, a 65-handle leaf set, an address over 262 bytes...): that is a bug in the
 * caller. Throws {@link MessageTooLargeError} (code `MESSAGE_TOO_LARGE`) when the frame would exceed
 * `maxMessageBytes`, typically because of an application payload. Throws ConfigError for invalid
 * options.
 */
export function encodeMessage(message: Message, options?: CodecOptions): Uint8Array {
  const max = maxBytesOf(options)
  if (max === undefined) {
    throw new ConfigError(
      `maxMessageBytes must be a positive integer, got ${String(options?.maxMessageBytes)}`,
    )
  }
  const value = toWire(message, max)
  const encoded: Uint8Array = encoder.encode(value)
  if (encoded.length > max) throw new MessageTooLargeError(encoded.length, max)
  return new Uint8Array(encoded)
}

function failure(code: WireErrorCode, message: string): DecodeResult {
  return { ok: false, error: { code, message } }
}

/**
 * Decodes and validates one frame received from a peer. Call it on every frame a transport
 * delivers, before looking at anything in it. It never throws: a frame that is not a valid message
 * of this protocol version yields `{ ok: false, error }` with a {@link WireErrorCode}; drop it.
 *
 * On success the message is fully checked against its type's schema (ids of exactly 16 bytes,
 * bounded lists and strings, integers in range, no missing or extra fields) and shares no memory
 * with `bytes`, which the caller may reuse at once: the result never goes stale.
 */
export function decodeMessage(bytes: Uint8Array, options?: CodecOptions): DecodeResult {
  try {
    const max = maxBytesOf(options)
    if (max === undefined) {
      return failure('BAD_OPTIONS', 'maxMessageBytes must be a positive integer')
    }
    if (!(bytes instanceof Uint8Array)) return failure('MALFORMED', 'a frame is a Uint8Array')
    if (bytes.length > max) {
      return failure('TOO_LARGE', `the frame has ${bytes.length} bytes, over the ${max}-byte limit`)
    }
    const version = peekVersion(bytes)
    if (version !== undefined && version !== PROTOCOL_VERSION) {
      return failure('BAD_VERSION', `protocol version ${version}, this node speaks ${PROTOCOL_VERSION}`)
    }
    const structural = prescan(bytes)
    if (structural !== undefined) return { ok: false, error: structural }
    let value: unknown
    try {
      value = decoder.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    } catch (e) {
      return failure('MALFORMED', `the CBOR decoder rejected the frame: ${errorText(e)}`)
    }
    return { ok: true, message: fromWire(value) }
  } catch (e) {
    if (e instanceof DecodeFailure) return { ok: false, error: e.error }
    return failure('MALFORMED', `the frame could not be decoded: ${errorText(e)}`)
  }
}

function errorText(e: unknown): string {
  try {
    return e instanceof Error ? e.message : typeof e
  } catch {
    return 'unknown error'
  }
}

export { PROTOCOL_VERSION }
