/*
 * Batched reports of frames a transport accepted and then dropped before they left: for
 * backpressure (too many bytes waiting toward the peer) or because the peer takes smaller frames
 * than the one sent. A burst of sends to a slow peer can drop thousands of frames in one turn of
 * the event loop, and one error event per frame would bury the application; so drops are counted
 * per peer address and reported once per turn, as at most one `BACKPRESSURE` and one
 * `FRAME_TOO_LARGE` event per peer, each saying how many frames it covers.
 *
 * Use: call `backpressure` or `tooLarge` at each drop; when either returns true, make sure `flush`
 * runs before the turn ends (the TCP and UDP transports flush on setImmediate). Memory is bounded by
 * the peers that saw a drop since the last flush.
 */
import { TransportError } from './transport.js'

interface Tally {
  backpressure: number
  tooLarge: number
  peerMaxFrameBytes: number
}

/** Drop counts per peer address since the last {@link DropReports.flush}. */
export class DropReports {
  readonly #maxQueuedBytesPerPeer: number
  readonly #pending = new Map<string, Tally>()

  /** `maxQueuedBytesPerPeer` is the transport's limit, quoted in `BACKPRESSURE` messages. */
  constructor(maxQueuedBytesPerPeer: number) {
    this.#maxQueuedBytesPerPeer = maxQueuedBytesPerPeer
  }

  /** Peers with drops not yet reported. */
  get size(): number {
    return this.#pending.size
  }

  /**
   * Counts a frame to `peer` dropped because more than `maxQueuedBytesPerPeer` bytes were waiting.
   * Returns true when it is the first drop toward any peer since the last flush: schedule one.
   */
  backpressure(peer: string): boolean {
    const first = this.#pending.size === 0
    this.#tally(peer).backpressure++
    return first
  }

  /**
   * Counts a frame to `peer` dropped because it is larger than the `peerMaxFrameBytes` the peer
   * stated. Returns true when it is the first drop toward any peer since the last flush.
   */
  tooLarge(peer: string, peerMaxFrameBytes: number): boolean {
    const first = this.#pending.size === 0
    const tally = this.#tally(peer)
    tally.tooLarge++
    tally.peerMaxFrameBytes = peerMaxFrameBytes
    return first
  }

  /**
   * Hands `report` one error per peer and reason, in the order the peers first saw a drop
   * (`BACKPRESSURE` before `FRAME_TOO_LARGE` for one peer), and forgets the counts. `report` may
   * cause further drops; they wait for the next flush.
   */
  flush(report: (error: TransportError) => void): void {
    if (this.#pending.size === 0) return
    const pending = [...this.#pending]
    this.#pending.clear()
    for (const [peer, t] of pending) {
      if (t.backpressure > 0) {
        report(
          new TransportError(
            'BACKPRESSURE',
            `dropped ${t.backpressure} frame(s) to ${peer}: more than ${this.#maxQueuedBytesPerPeer} bytes were waiting`,
            peer,
          ),
        )
      }
      if (t.tooLarge > 0) {
        report(
          new TransportError(
            'FRAME_TOO_LARGE',
            `dropped ${t.tooLarge} frame(s) to ${peer}: larger than the peer's maxFrameBytes (${t.peerMaxFrameBytes})`,
            peer,
          ),
        )
      }
    }
  }

  /** Forgets every count without reporting (the transport is closing). */
  clear(): void {
    this.#pending.clear()
  }

  #tally(peer: string): Tally {
    let tally = this.#pending.get(peer)
    if (tally === undefined) {
      tally = { backpressure: 0, tooLarge: 0, peerMaxFrameBytes: 0 }
      this.#pending.set(peer, tally)
    }
    return tally
  }
}
