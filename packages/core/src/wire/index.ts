/**
 * The wire format of the Pastry protocol, version 1: the message catalogue, and a cbor-x codec that
 * validates every frame it decodes.
 *
 * A node calls {@link encodeMessage} on every message it transmits and {@link decodeMessage} on every
 * frame it receives. Decoding never throws and never allocates more than the frame holds: bad input
 * yields a {@link WireError} value. The catalogue ({@link MESSAGES}) is the one description of each
 * message type, from which the types, the encoder and the decoder are derived.
 *
 * @module
 */
export { type AddressParts, addressForm } from './address.js'
export {
  type CodecOptions,
  DEFAULT_MAX_MESSAGE_BYTES,
  type DecodeResult,
  decodeMessage,
  encodeMessage,
  PROTOCOL_VERSION,
} from './codec.js'
export {
  InvalidMessageError,
  MessageTooLargeError,
  WIRE_ERROR_CODES,
  type WireError,
  type WireErrorCode,
} from './errors.js'
export {
  MAX_ADDRESS_BYTES,
  MAX_APP_NAME_BYTES,
  MAX_HOPS,
  MAX_LEAF_SET_HANDLES,
  MAX_MESSAGE_ID,
  MAX_ROW_HANDLES,
  MAX_ROWS,
  MAX_RTT_MICROS,
  MESSAGE_TYPE_SLOTS,
  MESSAGE_TYPES,
  MESSAGES,
  type Message,
  type MessageOf,
  type MessageSpec,
  type MessageType,
  type NodeHandle,
  typeCode,
} from './messages.js'
export { MAX_NESTING_DEPTH } from './prescan.js'
