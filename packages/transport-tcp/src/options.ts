/*
 * The options of the TCP transport, their defaults, and their validation. Every limit and timeout
 * is here, with its unit last in its name (STYLE.md, convention 6).
 */
import {
  ConfigError,
  checkAdvertiseAddress,
  checkClusterKey,
  DEFAULT_MAX_MESSAGE_BYTES,
  checkIntOption as intIn,
} from '@pastry/core'

/** What {@link createTcpTransport} accepts. Every field is optional; the defaults suit a LAN or WAN. */
export interface TcpTransportOptions {
  /**
   * A shared secret. When set, every connection runs a mutual HMAC-SHA256 challenge and response
   * over both sides' fresh nonces, ids, listen addresses and roles; a peer without the same key
   * cannot complete a handshake. A string is taken as its UTF-8 bytes. Every node of a cluster
   * must be given the same key, or none. Default: none (the handshake still checks the version).
   */
  readonly clusterKey?: Uint8Array | string
  /**
   * The listen address this node states in its handshake, when peers reach it at another address
   * than the one bound (behind NAT, or bound to `0.0.0.0` or `[::]`). Give the same address as the
   * runtime's `advertise`. Default: the bound address that `listen` resolves to.
   */
  readonly advertiseAddress?: string
  /** The largest frame `send` accepts and a peer may send, in bytes. Default 1 MiB (core's `DEFAULT_MAX_MESSAGE_BYTES`). */
  readonly maxFrameBytes?: number
  /** Bytes that may wait toward one peer (queued while connecting, or unwritten); above it a frame is dropped with `BACKPRESSURE`. Default 8 MiB. */
  readonly maxQueuedBytesPerPeer?: number
  /** Inbound connections held at once (in handshake or established); more are refused. Default 1024. */
  readonly maxConnections?: number
  /** How long a dial may take before `CONNECT_TIMEOUT`. Default 5000 ms. */
  readonly connectTimeoutMs?: number
  /** How long a connection may take to complete its handshake before `TIMEOUT`. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number
  /** How long a frame may stay half received with no new byte before `TIMEOUT`. Default 5000 ms. */
  readonly frameStallTimeoutMs?: number
  /** An established connection with no frame either way for this long is closed, quietly. Default 60000 ms. */
  readonly idleTimeoutMs?: number
  /** How long a connection being closed gracefully waits for the peer's own close before it is destroyed. Default 2000 ms. */
  readonly drainTimeoutMs?: number
}

/** The defaults of {@link TcpTransportOptions}, for documentation and tools. */
export const TCP_TRANSPORT_DEFAULTS = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxQueuedBytesPerPeer: 8 * 1024 * 1024,
  maxConnections: 1024,
  connectTimeoutMs: 5_000,
  handshakeTimeoutMs: 5_000,
  frameStallTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  drainTimeoutMs: 2_000,
})

/** The largest `maxFrameBytes` accepted: 1 GiB, well inside a Buffer and a 32-bit length prefix. */
export const MAX_FRAME_BYTES_LIMIT = 1024 * 1024 * 1024

/** The options with every default filled in and the key as bytes. */
export interface ResolvedOptions {
  readonly clusterKey: Uint8Array | undefined
  readonly advertiseAddress: string | undefined
  readonly maxFrameBytes: number
  readonly maxQueuedBytesPerPeer: number
  readonly maxConnections: number
  readonly connectTimeoutMs: number
  readonly handshakeTimeoutMs: number
  readonly frameStallTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly drainTimeoutMs: number
}

/** Validates `options` and fills in the defaults. Throws {@link ConfigError} for a bad value. */
export function resolveOptions(options: TcpTransportOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new ConfigError('options must be an object')
  const d = TCP_TRANSPORT_DEFAULTS
  const timeout = (name: keyof typeof d, v: unknown): number => intIn(name, v, d[name], 1, 2_147_483_647)
  const clusterKey = checkClusterKey(options.clusterKey)
  const advertiseAddress = checkAdvertiseAddress(options.advertiseAddress)
  const maxFrameBytes = intIn(
    'maxFrameBytes',
    options.maxFrameBytes,
    d.maxFrameBytes,
    1,
    MAX_FRAME_BYTES_LIMIT,
  )
  return {
    clusterKey,
    advertiseAddress,
    maxFrameBytes,
    maxQueuedBytesPerPeer: intIn(
      'maxQueuedBytesPerPeer',
      options.maxQueuedBytesPerPeer,
      d.maxQueuedBytesPerPeer,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    maxConnections: intIn('maxConnections', options.maxConnections, d.maxConnections, 0, 1_000_000),
    connectTimeoutMs: timeout('connectTimeoutMs', options.connectTimeoutMs),
    handshakeTimeoutMs: timeout('handshakeTimeoutMs', options.handshakeTimeoutMs),
    frameStallTimeoutMs: timeout('frameStallTimeoutMs', options.frameStallTimeoutMs),
    idleTimeoutMs: timeout('idleTimeoutMs', options.idleTimeoutMs),
    drainTimeoutMs: timeout('drainTimeoutMs', options.drainTimeoutMs),
  }
}
