import { PastryError } from '../errors.js'

/**
 * Why {@link decodeMessage} rejected a frame. Stable strings, meant for programs (metrics, logs,
 * dropping a peer); the matching {@link WireError.message} is for people.
 *
 * - `TOO_LARGE`: the frame is longer than `maxMessageBytes`. Checked first, before any byte is read.
 * - `BAD_VERSION`: the frame's protocol version is not {@link PROTOCOL_VERSION}. Checked right after
 *   the size, so a newer peer's frame is reported as such even if it uses CBOR this version rejects.
 * - `TRUNCATED`: the frame ends inside an item, or a header declares more items or bytes than remain.
 * - `TRAILING_BYTES`: bytes follow the one top-level item.
 * - `MALFORMED`: not well-formed CBOR (a reserved header, a stray break, invalid UTF-8), or not a
 *   frame (`[version, type, from, ...fields]`), or input that is not a `Uint8Array`.
 * - `TOO_DEEP`: arrays nested deeper than {@link MAX_NESTING_DEPTH}.
 * - `TOO_LONG`: an array, text or byte string over its bound.
 * - `UNSUPPORTED_CBOR`: valid CBOR this protocol never sends: tags, indefinite lengths, maps, floats,
 *   `undefined` and other simple values.
 * - `UNKNOWN_TYPE`: a type code this version does not know.
 * - `BAD_FIELD`: a field of the wrong type, shape or range; the message names the field's path.
 * - `BAD_ID`: an identifier that is a byte string but not exactly 16 bytes long.
 * - `BAD_OPTIONS`: the options passed to the decoder are invalid (a caller's bug, not the peer's).
 */
export type WireErrorCode =
  | 'TOO_LARGE'
  | 'BAD_VERSION'
  | 'TRUNCATED'
  | 'TRAILING_BYTES'
  | 'MALFORMED'
  | 'TOO_DEEP'
  | 'TOO_LONG'
  | 'UNSUPPORTED_CBOR'
  | 'UNKNOWN_TYPE'
  | 'BAD_FIELD'
  | 'BAD_ID'
  | 'BAD_OPTIONS'

/** Every {@link WireErrorCode}, for exhaustive checks in tests and metrics. */
export const WIRE_ERROR_CODES: readonly WireErrorCode[] = [
  'TOO_LARGE',
  'BAD_VERSION',
  'TRUNCATED',
  'TRAILING_BYTES',
  'MALFORMED',
  'TOO_DEEP',
  'TOO_LONG',
  'UNSUPPORTED_CBOR',
  'UNKNOWN_TYPE',
  'BAD_FIELD',
  'BAD_ID',
  'BAD_OPTIONS',
]

/**
 * A rejected frame, as a plain value: {@link decodeMessage} hands it back instead of throwing.
 * Log it or count it by `code`, then drop the frame; it describes that one frame and nothing else.
 */
export interface WireError {
  readonly code: WireErrorCode
  readonly message: string
}

/**
 * Thrown by {@link encodeMessage} when a message breaks the schema: a missing or mistyped field, a
 * number out of range (hops over 255), a string or list over its bound, an unknown `type`. It is a
 * bug in the caller, so it is thrown rather than returned. `path` names the field, such as
 * `route.hops` or `joinReply.rows[2].entries[0].address`.
 */
export class InvalidMessageError extends PastryError {
  readonly path: string

  constructor(path: string, message: string) {
    super('INVALID_MESSAGE', `${path}: ${message}`)
    this.name = 'InvalidMessageError'
    this.path = path
  }
}

/**
 * Thrown by {@link encodeMessage} when the encoded message would be longer than `maxMessageBytes`.
 * Callers that build messages from application data (a large payload) should catch it and report
 * the failure to the application; `sizeBytes` is a lower bound when the check fired before encoding.
 */
export class MessageTooLargeError extends PastryError {
  readonly sizeBytes: number
  readonly maxMessageBytes: number

  constructor(sizeBytes: number, maxMessageBytes: number) {
    super(
      'MESSAGE_TOO_LARGE',
      `the message needs at least ${sizeBytes} bytes, over the ${maxMessageBytes}-byte limit`,
    )
    this.name = 'MessageTooLargeError'
    this.sizeBytes = sizeBytes
    this.maxMessageBytes = maxMessageBytes
  }
}
