/**
 * @pastry/transport-udp: the UDP transport for Pastry nodes.
 *
 * Use it to run nodes on real networks when you want datagrams rather than streams: no connection
 * per peer in the kernel, no head-of-line blocking across peers, and lower latency on a LAN. It
 * implements core's `Transport` like the TCP transport, so the two swap in one line:
 * `createUdpTransport(options)` instead of `createTcpTransport(options)`.
 *
 * - A frame that fits goes in one datagram (small ones share a datagram); a larger one, up to
 *   `maxFrameBytes` (1 MiB), is fragmented and reassembled within bounded memory and a timeout.
 * - Delivery is reliable and ordered per sender and receiver: sequence numbers, selective acks
 *   (riding in reverse traffic when there is some), retransmission on an RTO from the measured
 *   round trip (RFC 6298, with Karn's rule) or on a loss seen in later acks, duplicate suppression,
 *   and a window. A peer that stays silent through the retransmissions is reported and dropped.
 * - With a `clusterKey`, every datagram carries a truncated HMAC-SHA256 tag, and a connection opens
 *   only after a challenge over fresh nonces, so recorded datagrams, even from an earlier run, are
 *   rejected. Without one, the header still carries the protocol version, node id and address.
 * - Every queue, buffer and table is bounded; bad input is dropped and counted in `stats`.
 *
 * The README expands on each point, draws the wire format, lists the options with their defaults,
 * and states the threat model. `UdpTransportOptions.faults` injects loss, duplication and
 * reordering, for tests only.
 */
export {
  type FaultRates,
  MAX_DATAGRAM_BYTES_LIMIT,
  MAX_FRAME_BYTES_LIMIT,
  MIN_DATAGRAM_BYTES,
  UDP_TRANSPORT_DEFAULTS,
  type UdpFaults,
  type UdpTransportOptions,
} from './options.js'
export { type RtoParameters, RttEstimator } from './rtt.js'
export type { UdpTransportStats } from './stats.js'
export { createUdpTransport, type UdpTransport } from './transport.js'
