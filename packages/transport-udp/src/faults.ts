/*
 * FOR TESTS ONLY: the fault injector behind `UdpTransportOptions.faults`. It sits between the
 * transport and its socket, in both directions, and loses, duplicates or delays (reorders)
 * datagrams with the configured probabilities, each choice drawn from the injected seeded rng.
 * Delayed datagrams wait on timers that `close` clears.
 */
import type { FaultRates, UdpFaults } from './options.js'
import type { Counters } from './stats.js'

/** Losses, duplicates and delays for one direction, drawn from the faults' rng. */
export class FaultInjector {
  readonly #faults: UdpFaults
  readonly #counters: Counters
  readonly #timers = new Set<NodeJS.Timeout>()

  constructor(faults: UdpFaults, counters: Counters) {
    this.#faults = faults
    this.#counters = counters
  }

  /** Passes `run` on zero, one or two times, now or later, as `direction`'s rates say. */
  apply(direction: 'outbound' | 'inbound', run: () => void): void {
    const rates: FaultRates | undefined = this.#faults[direction]
    if (rates === undefined) {
      run()
      return
    }
    const rng = this.#faults.rng
    if (rng.float() < (rates.loss ?? 0)) {
      this.#counters.faultsDropped++
      return
    }
    const copies = rng.float() < (rates.duplicate ?? 0) ? 2 : 1
    if (copies === 2) this.#counters.faultsDuplicated++
    for (let i = 0; i < copies; i++) {
      if (rng.float() < (rates.reorder ?? 0)) {
        this.#counters.faultsReordered++
        const delayMs = 1 + rng.int(rates.reorderDelayMs ?? 5)
        const timer = setTimeout(() => {
          this.#timers.delete(timer)
          run()
        }, delayMs)
        this.#timers.add(timer)
      } else {
        run()
      }
    }
  }

  /** Drops every delayed datagram. */
  clear(): void {
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
  }
}
