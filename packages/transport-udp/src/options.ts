/*
 * The options of the UDP transport, their defaults, and their validation. Every limit and timeout
 * is here, with its unit last in its name (STYLE.md, convention 6).
 */
import {
  ConfigError,
  checkAdvertiseAddress,
  checkClusterKey,
  DEFAULT_MAX_MESSAGE_BYTES,
  checkIntOption as intIn,
  type Rng,
} from '@pastry/core'

/** How often each fault strikes one direction of traffic; each rate is a probability in [0, 1]. */
export interface FaultRates {
  /** A datagram vanishes. */
  readonly loss?: number
  /** A datagram is handled twice. */
  readonly duplicate?: number
  /** A datagram is held back for 1..`reorderDelayMs` ms, so that later ones overtake it. */
  readonly reorder?: number
  /** The longest hold of a reordered datagram, in ms. Default 5. */
  readonly reorderDelayMs?: number
}

/**
 * FOR TESTS ONLY: faults injected between the transport and its socket, drawn from `rng` (use
 * `createRng` from `@pastry/core` with a printed seed, so that a failing run's choices replay).
 * `outbound` strikes the datagrams this transport sends, `inbound` those it receives, so one
 * transport with both set degrades both directions of every exchange it takes part in. Never set
 * this in production: it throws away datagrams on purpose.
 */
export interface UdpFaults {
  readonly rng: Rng
  readonly outbound?: FaultRates
  readonly inbound?: FaultRates
}

/** What {@link createUdpTransport} accepts. Every field is optional; the defaults suit a LAN. */
export interface UdpTransportOptions {
  /**
   * A shared secret. When set, every datagram carries a tag (truncated HMAC-SHA256) made with it,
   * and a connection opens only after a challenge and response over fresh nonces; datagrams without
   * a valid tag are dropped. A string is taken as its UTF-8 bytes. Every node of a cluster must be
   * given the same key, or none. Default: none (the header still carries version, id and address).
   */
  readonly clusterKey?: Uint8Array | string
  /**
   * The listen address this node states in its HELLO and REPLY, when peers reach it at another
   * address than the one bound (behind NAT, or bound to `0.0.0.0` or `[::]`). Give the same address
   * as the runtime's `advertise`. Default: the bound address that `listen` resolves to.
   */
  readonly advertiseAddress?: string
  /** The largest frame `send` accepts and a peer may send, in bytes. Default 1 MiB (core's `DEFAULT_MAX_MESSAGE_BYTES`). */
  readonly maxFrameBytes?: number
  /** The largest UDP payload this transport sends or accepts, in bytes. Default 1200 (fits any IPv6 path). */
  readonly maxDatagramBytes?: number
  /** Bytes that may wait toward one peer, queued or sent and not yet acknowledged; above it a frame is dropped with `BACKPRESSURE`. Default 8 MiB. */
  readonly maxQueuedBytesPerPeer?: number
  /** Datagrams in flight (sent, not acknowledged) per connection, and the receive window offered to peers. Default 128. */
  readonly windowPackets?: number
  /** The retransmission timeout before any round trip was measured (also for HELLOs). Default 100 ms. */
  readonly initialRtoMs?: number
  /** The smallest retransmission timeout. Default 50 ms. */
  readonly minRtoMs?: number
  /** The largest retransmission timeout, backoff included. Default 1000 ms. */
  readonly maxRtoMs?: number
  /**
   * How long an ack may wait for DATA toward the same peer to ride in before it leaves alone. Acks
   * for out-of-order or duplicate datagrams, and after 8 datagrams, leave at once. 0: acks leave
   * every turn. Must be below `minRtoMs`. Default 5 ms.
   */
  readonly maxAckDelayMs?: number
  /** Timeouts in a row without progress after which a peer is given up (`UNREACHABLE`, `CONNECTION_LOST`). Default 6. */
  readonly maxRetransmissions?: number
  /** Messages being reassembled at once, all peers together (one per peer at most). Default 64. */
  readonly maxReassemblies?: number
  /** Bytes reserved by messages being reassembled, all peers together. Default 32 MiB. */
  readonly maxReassemblyBytes?: number
  /** A reassembly (or a wait for room to start one) that makes no progress for this long is abandoned with `TIMEOUT`. Default 5000 ms. */
  readonly reassemblyTimeoutMs?: number
  /** Bytes of datagrams received out of order and held until the gap before them fills, all peers together. Default 16 MiB. */
  readonly maxBufferedBytes?: number
  /** Inbound connections held at once; HELLOs beyond it are refused. Default 1024. */
  readonly maxConnections?: number
  /** Handshakes answered and not yet confirmed, held at once; the oldest is forgotten beyond it. Default 1024. */
  readonly maxPendingHandshakes?: number
  /** How long an answered handshake waits for its confirmation. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number
  /** An outbound connection with nothing to send or acknowledge for this long is forgotten, quietly; inbound ones after twice as long. Default 60000 ms. */
  readonly idleTimeoutMs?: number
  /** The socket receive and send buffer sizes to ask the OS for, in bytes (it may grant less); 0 keeps its defaults. Default 1 MiB. */
  readonly socketBufferBytes?: number
  /** Packets a connection sends before it is retired and a new one handshaken (sequence numbers are 32-bit). Default 2^31; lower it only to test. */
  readonly maxPacketsPerConnection?: number
  /** FOR TESTS ONLY: injected loss, duplication and reordering. See {@link UdpFaults}. */
  readonly faults?: UdpFaults
}

/** The defaults of {@link UdpTransportOptions}, for documentation and tools. */
export const UDP_TRANSPORT_DEFAULTS = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxDatagramBytes: 1200,
  maxQueuedBytesPerPeer: 8 * 1024 * 1024,
  windowPackets: 128,
  initialRtoMs: 100,
  minRtoMs: 50,
  maxRtoMs: 1_000,
  maxAckDelayMs: 5,
  maxRetransmissions: 6,
  maxReassemblies: 64,
  maxReassemblyBytes: 32 * 1024 * 1024,
  reassemblyTimeoutMs: 5_000,
  maxBufferedBytes: 16 * 1024 * 1024,
  maxConnections: 1024,
  maxPendingHandshakes: 1024,
  handshakeTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  socketBufferBytes: 1024 * 1024,
  maxPacketsPerConnection: 2 ** 31,
})

/** The largest `maxFrameBytes` accepted: 1 GiB. */
export const MAX_FRAME_BYTES_LIMIT = 1024 * 1024 * 1024
/** The largest UDP payload over IPv4. */
export const MAX_DATAGRAM_BYTES_LIMIT = 65_507
/** The smallest `maxDatagramBytes`: a HELLO or REPLY with the longest address (358 bytes) must fit. */
export const MIN_DATAGRAM_BYTES = 512

/** The options with every default filled in and the key as bytes. */
export interface ResolvedOptions {
  readonly clusterKey: Uint8Array | undefined
  readonly advertiseAddress: string | undefined
  readonly maxFrameBytes: number
  readonly maxDatagramBytes: number
  readonly maxQueuedBytesPerPeer: number
  readonly windowPackets: number
  readonly initialRtoMs: number
  readonly minRtoMs: number
  readonly maxRtoMs: number
  readonly maxAckDelayMs: number
  readonly maxRetransmissions: number
  readonly maxReassemblies: number
  readonly maxReassemblyBytes: number
  readonly reassemblyTimeoutMs: number
  readonly maxBufferedBytes: number
  readonly maxConnections: number
  readonly maxPendingHandshakes: number
  readonly handshakeTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly socketBufferBytes: number
  readonly maxPacketsPerConnection: number
  readonly faults: UdpFaults | undefined
}

function rate(name: string, value: unknown, max = 1): number {
  if (value === undefined) return 0
  if (typeof value !== 'number' || !(value >= 0 && value <= max)) {
    throw new ConfigError(`${name} must be a number in [0, ${max}], got ${String(value)}`)
  }
  return value
}

function checkFaults(faults: UdpFaults | undefined): UdpFaults | undefined {
  if (faults === undefined) return undefined
  if (faults === null || typeof faults !== 'object' || typeof faults.rng?.float !== 'function') {
    throw new ConfigError('faults needs an rng (createRng from @pastry/core)')
  }
  for (const side of ['outbound', 'inbound'] as const) {
    const r = faults[side]
    if (r === undefined) continue
    rate(`faults.${side}.loss`, r.loss)
    rate(`faults.${side}.duplicate`, r.duplicate)
    rate(`faults.${side}.reorder`, r.reorder)
    if (r.reorderDelayMs !== undefined) intIn(`faults.${side}.reorderDelayMs`, r.reorderDelayMs, 5, 1, 10_000)
  }
  return faults
}

/** Validates `options` and fills in the defaults. Throws {@link ConfigError} for a bad value. */
export function resolveOptions(options: UdpTransportOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new ConfigError('options must be an object')
  const d = UDP_TRANSPORT_DEFAULTS
  const ms = (name: keyof typeof d, v: unknown, min = 1): number =>
    intIn(name, v, d[name], min, 2_147_483_647)
  const clusterKey = checkClusterKey(options.clusterKey)
  const advertiseAddress = checkAdvertiseAddress(options.advertiseAddress)
  const minRtoMs = ms('minRtoMs', options.minRtoMs)
  const maxRtoMs = ms('maxRtoMs', options.maxRtoMs)
  if (maxRtoMs < minRtoMs)
    throw new ConfigError(`maxRtoMs (${maxRtoMs}) must be at least minRtoMs (${minRtoMs})`)
  const resolved: ResolvedOptions = {
    clusterKey,
    advertiseAddress,
    maxFrameBytes: intIn('maxFrameBytes', options.maxFrameBytes, d.maxFrameBytes, 1, MAX_FRAME_BYTES_LIMIT),
    maxDatagramBytes: intIn(
      'maxDatagramBytes',
      options.maxDatagramBytes,
      d.maxDatagramBytes,
      MIN_DATAGRAM_BYTES,
      MAX_DATAGRAM_BYTES_LIMIT,
    ),
    maxQueuedBytesPerPeer: intIn(
      'maxQueuedBytesPerPeer',
      options.maxQueuedBytesPerPeer,
      d.maxQueuedBytesPerPeer,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    windowPackets: intIn('windowPackets', options.windowPackets, d.windowPackets, 4, 4096),
    initialRtoMs: ms('initialRtoMs', options.initialRtoMs),
    minRtoMs,
    maxRtoMs,
    maxAckDelayMs: intIn('maxAckDelayMs', options.maxAckDelayMs, d.maxAckDelayMs, 0, 1_000),
    maxRetransmissions: intIn('maxRetransmissions', options.maxRetransmissions, d.maxRetransmissions, 0, 100),
    maxReassemblies: intIn('maxReassemblies', options.maxReassemblies, d.maxReassemblies, 1, 1_000_000),
    maxReassemblyBytes: intIn(
      'maxReassemblyBytes',
      options.maxReassemblyBytes,
      d.maxReassemblyBytes,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    reassemblyTimeoutMs: ms('reassemblyTimeoutMs', options.reassemblyTimeoutMs),
    maxBufferedBytes: intIn(
      'maxBufferedBytes',
      options.maxBufferedBytes,
      d.maxBufferedBytes,
      0,
      Number.MAX_SAFE_INTEGER,
    ),
    maxConnections: intIn('maxConnections', options.maxConnections, d.maxConnections, 1, 1_000_000),
    maxPendingHandshakes: intIn(
      'maxPendingHandshakes',
      options.maxPendingHandshakes,
      d.maxPendingHandshakes,
      1,
      1_000_000,
    ),
    handshakeTimeoutMs: ms('handshakeTimeoutMs', options.handshakeTimeoutMs),
    idleTimeoutMs: ms('idleTimeoutMs', options.idleTimeoutMs),
    socketBufferBytes: intIn('socketBufferBytes', options.socketBufferBytes, d.socketBufferBytes, 0, 1 << 30),
    maxPacketsPerConnection: intIn(
      'maxPacketsPerConnection',
      options.maxPacketsPerConnection,
      d.maxPacketsPerConnection,
      16,
      2 ** 31,
    ),
    faults: checkFaults(options.faults),
  }
  if (resolved.maxAckDelayMs >= resolved.minRtoMs) {
    throw new ConfigError(
      `maxAckDelayMs (${resolved.maxAckDelayMs}) must be below minRtoMs (${resolved.minRtoMs}), or delayed acks would look like losses`,
    )
  }
  if (resolved.maxReassemblyBytes < resolved.maxFrameBytes) {
    throw new ConfigError(
      `maxReassemblyBytes (${resolved.maxReassemblyBytes}) must be at least maxFrameBytes (${resolved.maxFrameBytes})`,
    )
  }
  return resolved
}
