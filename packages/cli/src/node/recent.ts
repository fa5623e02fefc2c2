/**
 * A fixed-capacity ring of the most recent items, with live subscribers: the admin API's
 * `/delivered` list and its `/deliveries` stream read from one of these.
 */
export class RecentLog<T> {
  readonly capacity: number
  readonly #items: (T | undefined)[]
  #next = 0
  #size = 0
  /** Items ever added, including those the ring has since dropped. */
  total = 0
  readonly #subscribers = new Set<(item: T) => void>()

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer')
    this.capacity = capacity
    this.#items = new Array<T | undefined>(capacity)
  }

  /** Adds an item, dropping the oldest when full, and tells every subscriber. */
  push(item: T): void {
    this.#items[this.#next] = item
    this.#next = (this.#next + 1) % this.capacity
    if (this.#size < this.capacity) this.#size++
    this.total++
    for (const s of [...this.#subscribers]) s(item)
  }

  /** The items held, oldest first. A copy: later pushes do not change it. */
  list(): T[] {
    const out: T[] = []
    const start = (this.#next - this.#size + this.capacity) % this.capacity
    for (let i = 0; i < this.#size; i++) out.push(this.#items[(start + i) % this.capacity] as T)
    return out
  }

  get size(): number {
    return this.#size
  }

  /** Calls `fn` for every later push; returns the function that stops it. */
  subscribe(fn: (item: T) => void): () => void {
    this.#subscribers.add(fn)
    return () => this.#subscribers.delete(fn)
  }

  get subscriberCount(): number {
    return this.#subscribers.size
  }
}
