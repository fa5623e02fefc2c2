/*
 * The handshake messages and their authentication: pure functions over bytes, no sockets.
 *
 * Each side opens a connection with a HELLO, sent at once without waiting for the other's:
 *
 *   offset size
 *        0    4  magic "PSTP"
 *        4    2  protocol version (core's PROTOCOL_VERSION), big-endian
 *        6    1  message type: 1 = HELLO
 *        7    1  flags: bit 0 = sent by the dialer, bit 1 = the sender holds a cluster key
 *        8    4  the sender's maxFrameBytes, big-endian
 *       12   16  the sender's node id
 *       28   32  a fresh random nonce
 *       60    2  length of the listen address, big-endian (at most MAX_ADDRESS_BYTES)
 *       62    n  the sender's listen address, printable ASCII, `host:port`
 *
 * Without a cluster key the handshake ends there. With one, each side then sends an AUTH:
 *
 *        0    4  magic, 4 2 version, 6 1 type: 2 = AUTH, 7 32 HMAC-SHA256
 *
 * The MAC is HMAC-SHA256(key, LABEL || role || dialer's HELLO || acceptor's HELLO), where role is
 * 1 for the dialer's proof and 2 for the acceptor's. The two HELLOs, byte for byte, carry both
 * nonces, both ids, both listen addresses, both roles and the version, so a proof is bound to this
 * one connection: the key never crosses the wire, a recorded handshake replayed to a node meets a
 * fresh nonce and fails, and a proof cannot be reflected back under the other role. Every message
 * travels inside the transport's usual 4-byte length prefix.
 *
 * The version sits at the same offset in every message of every version, so a node can always tell
 * a peer that speaks another version from one that sends garbage.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { Id, MAX_ADDRESS_BYTES, PROTOCOL_VERSION, parseAddress } from '@pastry/core'

/** "PSTP", the first four bytes of every handshake message. */
export const HANDSHAKE_MAGIC = 0x50535450
/** Bytes of each side's nonce. */
export const NONCE_BYTES = 32
/** Bytes of an HMAC-SHA256 proof. */
export const MAC_BYTES = 32
const HELLO = 1
const AUTH = 2
const FLAG_DIALER = 1
const FLAG_KEYED = 2
const HELLO_FIXED_BYTES = 62
const AUTH_BYTES = 8 + MAC_BYTES
/**
 * The largest handshake message, in bytes: a longer length prefix before the handshake ends is bad
 * input. For tools that inspect the traffic; a node never needs it.
 */
export const MAX_HANDSHAKE_BYTES = HELLO_FIXED_BYTES + MAX_ADDRESS_BYTES
const LABEL = Buffer.from('pastry-tcp handshake v1', 'ascii')
const ROLE_DIALER = Buffer.from([1])
const ROLE_ACCEPTOR = Buffer.from([2])

/** A decoded HELLO, with the exact bytes it came in (they enter the MAC transcript). */
export interface Hello {
  readonly dialer: boolean
  readonly keyed: boolean
  readonly maxFrameBytes: number
  readonly id: Id
  readonly address: string
  readonly bytes: Uint8Array
}

/** Why a handshake message was refused: `malformed` is bad input, `refused` a well-formed mismatch. */
export interface HandshakeProblem {
  readonly kind: 'malformed' | 'refused'
  readonly message: string
}

function header(out: Buffer, type: number): void {
  out.writeUInt32BE(HANDSHAKE_MAGIC, 0)
  out.writeUInt16BE(PROTOCOL_VERSION, 4)
  out[6] = type
}

/**
 * Builds this side's HELLO, with a fresh nonce, already framed (length prefix first). Returns the
 * framed bytes to write and the bare message for the transcript.
 */
export function encodeHello(opts: {
  readonly dialer: boolean
  readonly keyed: boolean
  readonly maxFrameBytes: number
  readonly id: Id
  readonly address: string
}): { readonly framed: Buffer; readonly message: Buffer } {
  const addr = Buffer.from(opts.address, 'ascii')
  const framed = Buffer.allocUnsafe(4 + HELLO_FIXED_BYTES + addr.length)
  framed.writeUInt32BE(HELLO_FIXED_BYTES + addr.length, 0)
  const m = framed.subarray(4)
  header(m, HELLO)
  m[7] = (opts.dialer ? FLAG_DIALER : 0) | (opts.keyed ? FLAG_KEYED : 0)
  m.writeUInt32BE(opts.maxFrameBytes, 8)
  opts.id.writeTo(m, 12)
  randomBytes(NONCE_BYTES).copy(m, 28)
  m.writeUInt16BE(addr.length, 60)
  addr.copy(m, HELLO_FIXED_BYTES)
  return { framed, message: m }
}

/** Checks the magic and version shared by every message; returns the type, or a problem. */
function readHeader(bytes: Uint8Array): number | HandshakeProblem {
  if (bytes.length < 7) return { kind: 'malformed', message: `a ${bytes.length}-byte handshake message` }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  if (view.readUInt32BE(0) !== HANDSHAKE_MAGIC) {
    return { kind: 'malformed', message: 'not a Pastry TCP handshake (bad magic)' }
  }
  const version = view.readUInt16BE(4)
  if (version !== PROTOCOL_VERSION) {
    return {
      kind: 'refused',
      message: `the peer speaks protocol version ${version}, this node speaks ${PROTOCOL_VERSION}`,
    }
  }
  return bytes[6]!
}

/** Decodes a peer's HELLO, checking every field. Returns a {@link HandshakeProblem} for anything wrong. */
export function decodeHello(bytes: Uint8Array): Hello | HandshakeProblem {
  const type = readHeader(bytes)
  if (typeof type !== 'number') return type
  if (type !== HELLO) return { kind: 'malformed', message: `expected a HELLO, got message type ${type}` }
  if (bytes.length < HELLO_FIXED_BYTES) return { kind: 'malformed', message: 'a truncated HELLO' }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  const flags = bytes[7]!
  if ((flags & ~(FLAG_DIALER | FLAG_KEYED)) !== 0) {
    return { kind: 'malformed', message: `unknown HELLO flags 0x${flags.toString(16)}` }
  }
  const maxFrameBytes = view.readUInt32BE(8)
  if (maxFrameBytes === 0) return { kind: 'malformed', message: 'a HELLO with maxFrameBytes 0' }
  const addrLen = view.readUInt16BE(60)
  if (addrLen > MAX_ADDRESS_BYTES || bytes.length !== HELLO_FIXED_BYTES + addrLen) {
    return { kind: 'malformed', message: 'a HELLO whose address length does not match its size' }
  }
  for (let i = HELLO_FIXED_BYTES; i < bytes.length; i++) {
    const c = bytes[i]!
    if (c < 0x21 || c > 0x7e)
      return { kind: 'malformed', message: 'a HELLO address with a non-printable byte' }
  }
  const address = view.toString('ascii', HELLO_FIXED_BYTES, bytes.length)
  try {
    parseAddress(address)
  } catch {
    return { kind: 'malformed', message: `a HELLO with a bad listen address ${JSON.stringify(address)}` }
  }
  return {
    dialer: (flags & FLAG_DIALER) !== 0,
    keyed: (flags & FLAG_KEYED) !== 0,
    maxFrameBytes,
    id: Id.readFrom(bytes, 12),
    address,
    // A copy: the transcript must outlive the read buffer it arrived in.
    bytes: Uint8Array.from(bytes),
  }
}

/** The proof that the holder of `key` took part, in `role`, in the exchange of these two HELLOs. */
export function handshakeMac(
  key: Uint8Array,
  role: 'dialer' | 'acceptor',
  dialerHello: Uint8Array,
  acceptorHello: Uint8Array,
): Buffer {
  return createHmac('sha256', key)
    .update(LABEL)
    .update(role === 'dialer' ? ROLE_DIALER : ROLE_ACCEPTOR)
    .update(dialerHello)
    .update(acceptorHello)
    .digest()
}

/** Builds an AUTH carrying `mac`, already framed. */
export function encodeAuth(mac: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(4 + AUTH_BYTES)
  framed.writeUInt32BE(AUTH_BYTES, 0)
  const m = framed.subarray(4)
  header(m, AUTH)
  m[7] = 0
  m.set(mac, 8)
  return framed
}

/**
 * Checks a peer's AUTH against the proof it should carry, in constant time. Returns undefined when
 * it matches, or the {@link HandshakeProblem}.
 */
export function checkAuth(bytes: Uint8Array, expected: Uint8Array): HandshakeProblem | undefined {
  const type = readHeader(bytes)
  if (typeof type !== 'number') return type
  if (type !== AUTH) return { kind: 'malformed', message: `expected an AUTH, got message type ${type}` }
  if (bytes.length !== AUTH_BYTES || bytes[7] !== 0) return { kind: 'malformed', message: 'a malformed AUTH' }
  const got = bytes.subarray(8, AUTH_BYTES)
  if (!timingSafeEqual(got, expected)) {
    return {
      kind: 'refused',
      message: 'the peer failed the cluster-key challenge (wrong key or replayed handshake)',
    }
  }
  return undefined
}
