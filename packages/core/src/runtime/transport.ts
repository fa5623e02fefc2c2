/*
 * The contract between a node's runtime and the network underneath it.
 *
 * A transport moves opaque frames (encoded protocol messages) between listen addresses. It knows
 * nothing of Pastry beyond the local node's id, which it may carry in a handshake. Delivery is best
 * effort: the protocol acknowledges every routed hop and probes its peers, so a transport reports a
 * frame it could not deliver as an error event and goes on; it never retries forever or buffers
 * without bound.
 *
 * Lifecycle: made by a package's factory (`createTcpTransport`, `createUdpTransport`,
 * `MemoryNetwork.createTransport`), then `listen` once, then any number of `send`s, then `close`
 * once. Incoming frames and errors reach the handlers given to `listen`, never before `listen`
 * resolves and never after `close` resolves.
 *
 * What every transport guarantees (the conformance suite in `@pastry/testkit` checks each):
 * - frames between one sender and one receiver arrive in the order sent, each at most once, intact;
 * - a frame `send` accepted is either delivered or accounted for by an error event toward its
 *   address (a peer that went away is reported, not silently written into the void);
 * - `send` before `listen` has resolved throws `NOT_LISTENING`; a malformed address throws or
 *   rejects with `BAD_ADDRESS`, from `send` and `listen` alike;
 * - `close` resolves in any state, even before `listen`, and frees the address for a new `listen`.
 */

import { PastryError } from '../errors.js'
import type { Id } from '../id/id.js'
import { addressForm } from '../wire/address.js'

/** Who a frame came from, as the transport knows it. */
export interface TransportPeer {
  /**
   * The peer's listen address (`host:port`), the one to `send` replies to. A transport with a
   * handshake reports the address the peer proved; a datagram transport reports the source address.
   */
  readonly address: string
  /** The peer's node id, when the transport learned it in a handshake. */
  readonly id?: Id
}

/** What a transport calls back with. Both handlers must return quickly and must not throw. */
export interface TransportHandlers {
  /** A whole frame arrived. The transport does not read `frame` after the call returns. */
  message(frame: Uint8Array, from: TransportPeer): void
  /** Something went wrong that the caller may want to know: see {@link TransportErrorCode}. */
  error(error: TransportError): void
}

/** What {@link Transport.listen} needs. */
export interface ListenOptions {
  /** The address to bind, `host:port`; port 0 picks a free port. IPv6 hosts go in brackets. */
  readonly address: string
  /** The local node's id, for transports that introduce themselves in a handshake. */
  readonly localId: Id
  readonly handlers: TransportHandlers
}

/**
 * A way to move frames between nodes. Implementations: `@pastry/transport-tcp`,
 * `@pastry/transport-udp`, and the in-memory transport in `@pastry/testkit`. Each passes the
 * conformance suite in `@pastry/testkit`.
 */
export interface Transport {
  /** A short name for logs and metrics, such as `tcp`. */
  readonly kind: string
  /** The largest frame `send` accepts, in bytes. */
  readonly maxFrameBytes: number
  /**
   * Binds and starts receiving. Resolves to the bound address (the real port when 0 was asked
   * for), which is the address peers send to. Rejects with a {@link TransportError} (`LISTEN_FAILED`)
   * when the address cannot be bound. Call once.
   */
  listen(options: ListenOptions): Promise<string>
  /**
   * Queues `frame` for the peer listening at `to` and returns at once. Throws
   * {@link TransportError} synchronously for a caller's mistake: `FRAME_TOO_LARGE`, `BAD_ADDRESS`,
   * `NOT_LISTENING` or `CLOSED`. Failure to deliver (`UNREACHABLE`, `CONNECT_TIMEOUT`,
   * `BACKPRESSURE`, ...) arrives later as an error event, and the frame is dropped. The transport
   * does not keep a reference to `frame` once this returns, so the caller may reuse it.
   */
  send(to: string, frame: Uint8Array): void
  /**
   * Stops receiving, drops queued frames, releases the address, and resolves when everything is
   * released. Later `send`s throw `CLOSED`; calling `close` again resolves at once.
   */
  close(): Promise<void>
}

/** Stable codes for {@link TransportError}. */
export type TransportErrorCode =
  /** `send` was given a frame above `maxFrameBytes`. */
  | 'FRAME_TOO_LARGE'
  /** An address that is not `host:port`. */
  | 'BAD_ADDRESS'
  /** `send` before `listen` resolved. */
  | 'NOT_LISTENING'
  /** `send` or `listen` after `close`. */
  | 'CLOSED'
  /** `listen` could not bind. */
  | 'LISTEN_FAILED'
  /** Nobody accepted a connection or a frame at that address. */
  | 'UNREACHABLE'
  /** Connecting took longer than the transport's connect timeout. */
  | 'CONNECT_TIMEOUT'
  /** The queue toward a peer was full, and the frame was dropped. */
  | 'BACKPRESSURE'
  /** A peer failed the handshake or authentication (for example, a wrong cluster key). */
  | 'HANDSHAKE_FAILED'
  /** A peer sent bytes that are not a valid frame; the transport cut it off. */
  | 'BAD_FRAME'
  /** A peer stayed silent mid-handshake or mid-frame for too long; the transport cut it off. */
  | 'TIMEOUT'
  /** An established link to a peer broke; frames queued on it were dropped. */
  | 'CONNECTION_LOST'

/**
 * An error from a transport, thrown by `send`/`listen` or handed to the error handler. `peer`, when
 * set, is the address it concerns.
 */
export class TransportError extends PastryError {
  declare readonly code: TransportErrorCode
  readonly peer: string | undefined

  constructor(code: TransportErrorCode, message: string, peer?: string, options?: { cause?: unknown }) {
    super(code, message)
    this.name = 'TransportError'
    this.peer = peer
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause
  }
}

/** A `host:port` split into its parts; IPv6 hosts lose their brackets. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/**
 * Parses `host:port` (IPv6 as `[::1]:4000`), throwing {@link TransportError} `BAD_ADDRESS` for
 * anything else. Transports call it on every address they are given.
 */
export function parseAddress(address: string): HostPort {
  const form = addressForm(address)
  if (typeof form === 'string') {
    throw new TransportError(
      'BAD_ADDRESS',
      typeof address === 'string' ? `bad address "${address}": ${form}` : form,
    )
  }
  const port = Number(form.port)
  if (form.port.length > 5 || port > 65535) {
    throw new TransportError('BAD_ADDRESS', `bad address "${address}": the port must be 0..65535`)
  }
  return { host: form.host, port }
}

/** Joins a host and port into an address, bracketing IPv6 hosts. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/**
 * The checks every transport's `listen` makes before binding: the state (`CLOSED` after close,
 * `LISTEN_FAILED` on a second call), a `localId` and both handlers (TypeError), and the address
 * (`BAD_ADDRESS`). Returns the parsed address. Transports call it first and reject with what it
 * throws. The id is checked by shape, so that an `Id` from another copy of this package passes.
 */
export function checkListen(options: ListenOptions, state: 'idle' | 'closed' | 'busy'): HostPort {
  if (state === 'closed') throw new TransportError('CLOSED', 'the transport is closed')
  if (state !== 'idle')
    throw new TransportError('LISTEN_FAILED', 'listen was already called on this transport')
  const { address, localId, handlers } = options ?? ({} as ListenOptions)
  if (typeof localId?.writeTo !== 'function' || typeof localId.equals !== 'function') {
    throw new TypeError('listen needs localId, an Id')
  }
  if (typeof handlers?.message !== 'function' || typeof handlers.error !== 'function') {
    throw new TypeError('listen needs handlers { message, error }')
  }
  return parseAddress(address)
}

/**
 * The checks every transport's `send` makes before it queues a frame: the state (`CLOSED` after
 * close, `NOT_LISTENING` before `listen` resolved), a `Uint8Array` frame (TypeError), and its size
 * (`FRAME_TOO_LARGE` above `maxFrameBytes`). Transports call it first in `send`, on every frame, and
 * let what it throws reach the caller. The address is checked apart, by {@link checkSendAddress},
 * when the transport first meets it.
 */
export function checkSend(
  to: string,
  frame: Uint8Array,
  state: 'listening' | 'closed' | 'other',
  maxFrameBytes: number,
): void {
  if (state !== 'listening') {
    if (state === 'closed') throw new TransportError('CLOSED', 'send after close', to)
    throw new TransportError('NOT_LISTENING', 'send before listen resolved', to)
  }
  if (!(frame instanceof Uint8Array)) throw new TypeError('send needs a Uint8Array frame')
  if (frame.length > maxFrameBytes) {
    throw new TransportError(
      'FRAME_TOO_LARGE',
      `a frame of ${frame.length} bytes; the limit is ${maxFrameBytes}`,
      to,
    )
  }
}

/**
 * Parses an address a frame is sent to, throwing {@link TransportError} `BAD_ADDRESS` for a
 * malformed one or for port 0 (which names no listener). Transports call it when `send` meets an
 * address it holds nothing for, and keep the result.
 */
export function checkSendAddress(to: string): HostPort {
  const hostPort = parseAddress(to)
  if (hostPort.port === 0) throw new TransportError('BAD_ADDRESS', `cannot send to port 0 (${to})`, to)
  return hostPort
}
