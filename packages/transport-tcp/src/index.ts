/**
 * @pastry/transport-tcp: the TCP transport for Pastry nodes.
 *
 * Use it to run nodes on real networks, between processes or machines, when a reliable, ordered
 * byte stream per peer suits you (it does for most deployments; the UDP transport trades that for
 * fewer kernel resources). It implements core's `Transport`: `createTcpTransport(options)` makes
 * one, the runtime calls `listen`, `send` and `close`.
 *
 * - Frames travel behind a 4-byte big-endian length prefix, up to `maxFrameBytes` (1 MiB).
 * - Every connection opens with a handshake carrying the protocol version, the node id and the
 *   listen address; with a `clusterKey` it adds a mutual HMAC-SHA256 challenge and response, so
 *   only holders of the key can connect. The key never crosses the wire.
 * - One connection per peer carries frames both ways, in order; simultaneous dials lose nothing.
 * - Every queue, buffer and connection count is bounded, every wait has a timeout, and bad input
 *   closes the offending connection, counted in `stats` and reported as an error event.
 *
 * The README expands on each point, lists the options with their defaults, and states the threat
 * model of the cluster key.
 */
export { MAX_HANDSHAKE_BYTES } from './handshake.js'
export {
  MAX_FRAME_BYTES_LIMIT,
  TCP_TRANSPORT_DEFAULTS,
  type TcpTransportOptions,
} from './options.js'
export type { TcpTransportStats } from './stats.js'
export { createTcpTransport, type TcpTransport } from './transport.js'
