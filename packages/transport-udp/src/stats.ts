/*
 * The transport's counters. The transport and its connections bump them in place; `stats` hands
 * out a frozen copy with the live gauges added.
 */

/** A snapshot of a UDP transport's counters (totals since creation) and gauges (now). */
export interface UdpTransportStats {
  /** Datagrams handed to the socket, of every type, retransmissions included. */
  readonly datagramsSent: number
  /** Datagrams read from the socket, of every type, bad ones included. */
  readonly datagramsReceived: number
  /** UDP payload bytes handed to the socket. */
  readonly bytesSent: number
  /** UDP payload bytes read from the socket. */
  readonly bytesReceived: number
  /** Frames `send` accepted that went out whole (their last byte was sent at least once). */
  readonly framesSent: number
  /** Frames delivered to the message handler. */
  readonly framesReceived: number
  /** Frames dropped after `send` accepted them: backpressure, a peer given up, a lost connection. */
  readonly framesDropped: number
  /** DATA datagrams sent again after a timeout or a loss detected from later acks. */
  readonly retransmissions: number
  /** Retransmissions caused by a timeout (each also counts in `retransmissions`). */
  readonly timeoutRetransmissions: number
  /** Standalone ACK datagrams sent (acks riding in DATA are not counted here). */
  readonly acksSent: number
  /** Acks that rode in a DATA datagram toward the same peer instead of a datagram of their own. */
  readonly acksPiggybacked: number
  /** DATA datagrams received again (a retransmission or a replay): acknowledged, not delivered twice. */
  readonly duplicatesDropped: number
  /** DATA datagrams beyond the receive window, or refused for want of buffer room: dropped unacknowledged. */
  readonly outOfWindowDropped: number
  /** Tagged datagrams rejected as stale or replayed: an ACK whose counter went backwards, a REPLY or confirmation answering no pending nonce. */
  readonly replaysRejected: number
  /** Datagrams addressed to a connection this node does not hold (an earlier run's, a forgotten one, a replay). */
  readonly unknownConnection: number
  /** Handshakes begun (HELLOs first sent). */
  readonly handshakesStarted: number
  /** Connections opened, both directions: our HELLO answered, or a peer's confirmed. */
  readonly connectionsOpened: number
  /** Connections given up or closed for an error (timeouts, resets, reassembly timeouts, protocol errors). */
  readonly connectionsLost: number
  /** HELLOs refused because `maxConnections` inbound connections were held. */
  readonly connectionsRefused: number
  /** Handshakes refused or failed, either side: another version, a key mismatch, a bad tag on a HELLO. */
  readonly handshakeFailures: number
  /** Datagrams that are not this protocol or do not parse: bad magic, truncated, bad fields or frames. */
  readonly badDatagrams: number
  /** Datagrams dropped for a missing or wrong tag (with a cluster key) or an unexpected one (without). */
  readonly unauthenticated: number
  /** Datagrams above `maxDatagramBytes`, dropped unread. */
  readonly oversizedDatagrams: number
  /** Datagrams from a peer speaking another protocol version. */
  readonly versionMismatches: number
  /** Messages reassembled from fragments and delivered. */
  readonly reassembled: number
  /** Reassemblies (or waits for reassembly room) abandoned after `reassemblyTimeoutMs` without progress. */
  readonly reassemblyTimeouts: number
  /** Times a connection had to wait for reassembly room (`maxReassemblies`, `maxReassemblyBytes`). */
  readonly reassemblyWaits: number
  /** RESETs sent (a datagram for a connection this node no longer holds) and received. */
  readonly resetsSent: number
  readonly resetsReceived: number
  /** Connect (HELLO) and retransmission give-ups: the peer answered nothing for `maxRetransmissions` timeouts. */
  readonly timeouts: number
  /** Times a handler threw; the transport swallows the exception. */
  readonly handlerErrors: number
  /** Datagrams the socket failed to send (reported by the OS). */
  readonly sendErrors: number
  /** FOR TESTS: datagrams the fault injector dropped, duplicated and delayed. */
  readonly faultsDropped: number
  readonly faultsDuplicated: number
  readonly faultsReordered: number
  /** Gauge: peer addresses with a connection or queued frames. */
  readonly peers: number
  /** Gauge: connections held now, outbound (including those in handshake) and inbound. */
  readonly connections: number
  /** Gauge: inbound connections held now (the ones `maxConnections` bounds). */
  readonly inboundConnections: number
  /** Gauge: handshakes answered and awaiting confirmation. */
  readonly pendingHandshakes: number
  /** Gauge: DATA datagrams sent and not yet acknowledged, all connections. */
  readonly packetsInFlight: number
  /** Gauge: bytes queued or in flight toward all peers. */
  readonly queuedBytes: number
  /** Gauge: messages being reassembled, and the bytes they reserve. */
  readonly reassemblies: number
  readonly reassemblyBytes: number
  /** Gauge: bytes of out-of-order datagrams held. */
  readonly bufferedBytes: number
}

/** The gauges of {@link UdpTransportStats}, computed on read. */
export type Gauge =
  | 'peers'
  | 'connections'
  | 'inboundConnections'
  | 'pendingHandshakes'
  | 'packetsInFlight'
  | 'queuedBytes'
  | 'reassemblies'
  | 'reassemblyBytes'
  | 'bufferedBytes'

/** The mutable counters behind {@link UdpTransportStats}. */
export type Counters = { -readonly [K in Exclude<keyof UdpTransportStats, Gauge>]: number }

/** Fresh zeroed counters. */
export function newCounters(): Counters {
  return {
    datagramsSent: 0,
    datagramsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    framesDropped: 0,
    retransmissions: 0,
    timeoutRetransmissions: 0,
    acksSent: 0,
    acksPiggybacked: 0,
    duplicatesDropped: 0,
    outOfWindowDropped: 0,
    replaysRejected: 0,
    unknownConnection: 0,
    handshakesStarted: 0,
    connectionsOpened: 0,
    connectionsLost: 0,
    connectionsRefused: 0,
    handshakeFailures: 0,
    badDatagrams: 0,
    unauthenticated: 0,
    oversizedDatagrams: 0,
    versionMismatches: 0,
    reassembled: 0,
    reassemblyTimeouts: 0,
    reassemblyWaits: 0,
    resetsSent: 0,
    resetsReceived: 0,
    timeouts: 0,
    handlerErrors: 0,
    sendErrors: 0,
    faultsDropped: 0,
    faultsDuplicated: 0,
    faultsReordered: 0,
  }
}
