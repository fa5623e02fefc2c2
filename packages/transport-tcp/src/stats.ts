/*
 * The transport's counters. Connections and the transport bump them in place; `stats` hands out a
 * frozen copy with the live gauges added.
 */

/** A snapshot of a TCP transport's counters (totals since creation) and gauges (now). */
export interface TcpTransportStats {
  /** Outbound TCP connections attempted. */
  readonly connectionsDialed: number
  /** Inbound TCP connections accepted (under `maxConnections`). */
  readonly connectionsAccepted: number
  /** Inbound TCP connections refused because `maxConnections` were open. */
  readonly connectionsRefused: number
  /** Connections whose handshake succeeded, in either direction: the ones that carried frames. */
  readonly connectionsOpened: number
  /** Sockets closed, for any reason. */
  readonly connectionsClosed: number
  /** Handshakes refused or broken off: bad version, key mismatch, failed proof, malformed message. */
  readonly handshakeFailures: number
  /** Connections cut for an oversized length prefix. */
  readonly badFrames: number
  /** Connect, handshake and mid-frame timeouts. */
  readonly timeouts: number
  /** Frames written to sockets (handshake messages excluded). */
  readonly framesSent: number
  /** Frames received on established connections and handed to the message handler. */
  readonly framesReceived: number
  /** Bytes written to sockets, length prefixes and handshakes included. */
  readonly bytesSent: number
  /** Bytes read from sockets, all included. */
  readonly bytesReceived: number
  /** Frames dropped after `send` accepted them: backpressure, failed dials, broken connections. */
  readonly framesDropped: number
  /** Times a handler threw; the transport swallows the exception. */
  readonly handlerErrors: number
  /** Gauge: sockets open now, both directions, in any state. */
  readonly connections: number
  /** Gauge: inbound sockets open now (the ones `maxConnections` bounds). */
  readonly inboundConnections: number
  /** Gauge: peers with a connection, a dial or queued frames. */
  readonly peers: number
}

/** The mutable counters behind {@link TcpTransportStats} (the gauges are computed on read). */
export type Counters = {
  -readonly [K in Exclude<keyof TcpTransportStats, 'connections' | 'inboundConnections' | 'peers'>]: number
}

/** Fresh zeroed counters. */
export function newCounters(): Counters {
  return {
    connectionsDialed: 0,
    connectionsAccepted: 0,
    connectionsRefused: 0,
    connectionsOpened: 0,
    connectionsClosed: 0,
    handshakeFailures: 0,
    badFrames: 0,
    timeouts: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    framesDropped: 0,
    handlerErrors: 0,
  }
}
