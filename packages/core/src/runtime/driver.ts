/*
 * Parts of a driver loop, shared by every runtime that binds a sans-IO state machine to real time:
 * core's `OverlayNode` (over `PastryNode`) and `@pastry/pubsub`'s `PubSub` (over its machine).
 *
 * - `monotonicClock` hands a machine a `now` that never goes backwards, whatever the clock does.
 * - `DeadlineTimer` is the one real timer of a driver, armed for the machine's `nextDeadline()`.
 * - `EventListeners` holds the listeners of each event type and calls them so that a listener that
 *   throws becomes an `error` event instead of an exception in the driver.
 *
 * An application that drives a machine of its own over an `OverlayNode` can use them too.
 */

/** The longest delay one `setTimeout` takes; a later deadline is reached in several steps. */
const MAX_TIMER_MS = 0x7fffffff

/**
 * Wraps `clock` (monotonic milliseconds) so that it never returns less than it returned before:
 * machines refuse time that goes backwards, and a misbehaving clock must not crash a node. Call it
 * once per driver and read the result at every input.
 */
export function monotonicClock(clock: () => number): () => number {
  let last = Number.NEGATIVE_INFINITY
  return () => {
    const t = clock()
    if (t > last) last = t
    return last
  }
}

/**
 * One real timer for a machine's earliest deadline. After every input, call `set` with the
 * machine's `nextDeadline()`; the timer calls `fire` once that time (by `clock`) is reached, and
 * `fire` hands the machine its timeout. Setting the same deadline again keeps the running timer.
 * Call `clear` when the driver stops. A deadline beyond about 24 days fires early; the machine
 * then finds nothing due and names the same deadline again.
 */
export class DeadlineTimer {
  readonly #clock: () => number
  readonly #fire: () => void
  #timer: ReturnType<typeof setTimeout> | undefined
  #at = Number.POSITIVE_INFINITY

  constructor(clock: () => number, fire: () => void) {
    this.#clock = clock
    this.#fire = fire
  }

  /** The deadline the timer is armed for; Infinity when it is not armed. */
  get armedFor(): number {
    return this.#at
  }

  /** Arms the timer for `at` (undefined: disarms it). */
  set(at: number | undefined): void {
    if (at === undefined) {
      this.clear()
      return
    }
    if (this.#timer !== undefined && at === this.#at) return
    this.clear()
    this.#at = at
    const delay = Math.min(Math.max(0, Math.ceil(at - this.#clock())), MAX_TIMER_MS)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#at = Number.POSITIVE_INFINITY
      this.#fire()
    }, delay)
  }

  /** Disarms the timer; `fire` will not be called until the next `set`. */
  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#at = Number.POSITIVE_INFINITY
  }
}

/** The `error` event an {@link EventListeners} emits when a listener throws. */
export interface ListenerFailedEvent {
  readonly type: 'error'
  readonly code: 'LISTENER_FAILED'
  readonly message: string
}

/**
 * Listeners by event type, for a driver's `on`/`off`/`emit`. `E` is the driver's event union; it
 * must include an `error` event with `code` and `message`. `emit` calls each listener of the
 * event's type, in the order added, over a copy of the set (so listeners may add or remove
 * listeners). When a listener throws, `onFailure` is called (to count it) and, unless the event was
 * itself an `error` (which would loop), a `LISTENER_FAILED` error event is emitted in its place.
 */
export class EventListeners<E extends { readonly type: string }> {
  readonly #sets = new Map<string, Set<(event: never) => void>>()
  readonly #onFailure: () => void

  constructor(onFailure: () => void = () => {}) {
    this.#onFailure = onFailure
  }

  /** Adds `listener` for events of `type`. Adding it twice keeps one. */
  on<T extends E['type']>(type: T, listener: (event: Extract<E, { type: T }>) => void): void {
    let set = this.#sets.get(type)
    if (set === undefined) {
      set = new Set()
      this.#sets.set(type, set)
    }
    set.add(listener as (event: never) => void)
  }

  /** Removes `listener` for events of `type`. */
  off<T extends E['type']>(type: T, listener: (event: Extract<E, { type: T }>) => void): void {
    this.#sets.get(type)?.delete(listener as (event: never) => void)
  }

  /** Calls every listener of `event.type` with `event`; see the class comment for failures. */
  emit(event: E | ListenerFailedEvent): void {
    const set = this.#sets.get(event.type)
    if (set === undefined || set.size === 0) return
    for (const listener of [...set]) {
      try {
        ;(listener as (e: E | ListenerFailedEvent) => void)(event)
      } catch (error) {
        this.#onFailure()
        if (event.type === 'error') continue // never loop on a failing error listener
        this.emit({
          type: 'error',
          code: 'LISTENER_FAILED',
          message: `a ${event.type} listener threw: ${error instanceof Error ? error.message : String(error)}`,
        })
      }
    }
  }
}
