/*
 * The retransmission timeout of RFC 6298, per connection: a pure calculator with no clock.
 *
 *   first sample R:   SRTT = R, RTTVAR = R / 2
 *   later samples R:  RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, then SRTT = 7/8 SRTT + 1/8 R
 *   RTO = SRTT + max(G, 4 RTTVAR), clamped to [minRtoMs, maxRtoMs]
 *   before any sample: RTO = initialRtoMs
 *   on a timeout: RTO doubles (exponential backoff), up to maxRtoMs
 *
 * Karn's rule is the caller's part: a packet that was sent more than once gives no sample, because
 * its ack cannot say which transmission it answers. The backed-off RTO then stays until a sample
 * from a packet sent once arrives, which recomputes it from SRTT and RTTVAR (RFC 6298 §5, note on
 * Karn's algorithm). The clamps depart from the RFC's 1 s minimum on purpose: this transport runs
 * nodes on LANs and in data centres, where round trips are well under a millisecond.
 */

/** The parameters of {@link RttEstimator}, all in milliseconds. */
export interface RtoParameters {
  readonly initialRtoMs: number
  readonly minRtoMs: number
  readonly maxRtoMs: number
  /** G, the clock granularity of the RFC. */
  readonly granularityMs: number
}

/** Smoothed round-trip time and retransmission timeout, after RFC 6298. */
export class RttEstimator {
  readonly #p: RtoParameters
  #srtt: number | undefined = undefined
  #rttvar = 0
  /** The RTO computed from the last sample (or the initial one), before backoff. */
  #base: number
  #backoff = 1

  constructor(parameters: RtoParameters) {
    this.#p = parameters
    this.#base = this.#clamp(parameters.initialRtoMs)
  }

  /** SRTT in ms, or undefined before the first sample. */
  get srtt(): number | undefined {
    return this.#srtt
  }

  /** RTTVAR in ms (0 before the first sample). */
  get rttvar(): number {
    return this.#rttvar
  }

  /** The current RTO in ms, backoff included. Read it whenever a timer is armed. */
  get rto(): number {
    return Math.min(this.#p.maxRtoMs, this.#base * this.#backoff)
  }

  /** How many times the RTO has doubled since the last sample. */
  get backoffs(): number {
    return Math.log2(this.#backoff)
  }

  /** Takes a round-trip sample in ms (from a packet sent exactly once) and ends any backoff. */
  sample(rttMs: number): void {
    const r = Math.max(0, rttMs)
    if (this.#srtt === undefined) {
      this.#srtt = r
      this.#rttvar = r / 2
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - r)
      this.#srtt = 0.875 * this.#srtt + 0.125 * r
    }
    this.#base = this.#clamp(this.#srtt + Math.max(this.#p.granularityMs, 4 * this.#rttvar))
    this.#backoff = 1
  }

  /** The retransmission timer expired: double the RTO (up to the maximum). */
  backOff(): void {
    if (this.#base * this.#backoff < this.#p.maxRtoMs) this.#backoff *= 2
  }

  #clamp(ms: number): number {
    return Math.min(this.#p.maxRtoMs, Math.max(this.#p.minRtoMs, ms))
  }
}
