/**
 * A map with a maximum size that forgets its oldest insertion when full. Used for the memories
 * that must not grow with traffic: delivered message ids, recently failed nodes, peer records.
 */
export class BoundedMap<K, V> {
  readonly capacity: number
  readonly #map = new Map<K, V>()

  constructor(capacity: number) {
    this.capacity = capacity
  }

  get size(): number {
    return this.#map.size
  }

  get(key: K): V | undefined {
    return this.#map.get(key)
  }

  has(key: K): boolean {
    return this.#map.has(key)
  }

  /** Sets a value. A new key past capacity evicts the oldest entry, which is returned. */
  set(key: K, value: V): [K, V] | undefined {
    if (this.#map.has(key)) {
      this.#map.set(key, value)
      return undefined
    }
    this.#map.set(key, value)
    if (this.#map.size > this.capacity) {
      const oldest = this.#map.entries().next().value as [K, V]
      this.#map.delete(oldest[0])
      return oldest
    }
    return undefined
  }

  delete(key: K): boolean {
    return this.#map.delete(key)
  }

  keys(): IterableIterator<K> {
    return this.#map.keys()
  }

  values(): IterableIterator<V> {
    return this.#map.values()
  }

  entries(): IterableIterator<[K, V]> {
    return this.#map.entries()
  }

  clear(): void {
    this.#map.clear()
  }
}
