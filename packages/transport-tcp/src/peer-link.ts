/*
 * One entry of the transport's peer table: everything it holds toward one listen address. The
 * transport keeps an entry only while it has a connection, a dial or queued frames for it, so the
 * table is bounded by the peers in use.
 */
import type { Connection } from './connection.js'

/** What the transport holds toward one peer address. */
export class PeerLink {
  /** The listen address, exactly as `send` was given it or the peer's handshake stated it. */
  readonly address: string
  /** The established connection frames are sent on. */
  conn: Connection | undefined = undefined
  /** Other established connections to the same node (simultaneous dials): they receive, and take over if `conn` goes. */
  spares: Connection[] = []
  /** Our outbound connection still connecting or in its handshake. */
  dial: Connection | undefined = undefined
  /** Framed buffers waiting for a connection, oldest first. */
  queue: Buffer[] = []
  /** Bytes in {@link PeerLink.queue}. */
  queueBytes = 0

  constructor(address: string) {
    this.address = address
  }

  /** True when the entry holds nothing and may be forgotten. */
  get idle(): boolean {
    return (
      this.conn === undefined &&
      this.dial === undefined &&
      this.spares.length === 0 &&
      this.queue.length === 0
    )
  }
}
