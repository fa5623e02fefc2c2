/**
 * A map with a maximum size that forgets its oldest insertion when full. Used for the memories
 * that must not grow with traffic: delivered message ids, recently failed nodes, peer records.
 *
 * Most of a node's such maps are empty most of the time, and a simulation asks each of them for
 * its size (or for a key) on many inputs of 10^5 nodes whose state is far out of cache. So the
 * count lives in this object, and the `Map` behind it exists only while it holds something:
 * asking an empty map reads one field here instead of following two more pointers, and an empty
 * map costs no `Map`. One difference from a `Map` follows: an iterator taken before the map was
 * emptied does not see keys set after that (they go to a new `Map`); copy the entries first to
 * empty and refill a map while walking it.
 */
export class BoundedMap<K, V> {
  readonly capacity: number
  #size = 0
  #map: Map<K, V> | undefined = undefined

  constructor(capacity: number) {
    this.capacity = capacity
  }

  get size(): number {
    return this.#size
  }

  get(key: K): V | undefined {
    return this.#size === 0 ? undefined : this.#map!.get(key)
  }

  has(key: K): boolean {
    return this.#size !== 0 && this.#map!.has(key)
  }

  /** Sets a value. A new key past capacity evicts the oldest entry, which is returned. */
  set(key: K, value: V): [K, V] | undefined {
    let map = this.#map
    if (map === undefined) {
      map = new Map<K, V>()
      this.#map = map
    }
    if (this.#size !== 0 && map.has(key)) {
      map.set(key, value)
      return undefined
    }
    map.set(key, value)
    if (map.size > this.capacity) {
      const oldest = map.entries().next().value as [K, V]
      map.delete(oldest[0])
      this.#size = map.size
      return oldest
    }
    this.#size = map.size
    return undefined
  }

  delete(key: K): boolean {
    if (this.#size === 0 || !this.#map!.delete(key)) return false
    if (--this.#size === 0) this.#map = undefined
    return true
  }

  keys(): IterableIterator<K> {
    return (this.#map ?? EMPTY).keys() as IterableIterator<K>
  }

  values(): IterableIterator<V> {
    return (this.#map ?? EMPTY).values() as IterableIterator<V>
  }

  entries(): IterableIterator<[K, V]> {
    return (this.#map ?? EMPTY).entries() as IterableIterator<[K, V]>
  }

  clear(): void {
    this.#size = 0
    this.#map = undefined
  }
}

const EMPTY: ReadonlyMap<unknown, unknown> = new Map<unknown, unknown>()
