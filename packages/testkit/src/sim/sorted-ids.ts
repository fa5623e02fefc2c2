/*
 * Theory of operation
 *
 * The oracle's live set: node ids in ring order, each with its node index, under frequent inserts
 * and removes. One flat sorted array costs an O(N) memmove per change, which makes adding 10^5
 * nodes quadratic (seconds). Instead the ids live in a list of sorted *chunks* of at most
 * 2 × CHUNK entries each (CHUNK is 512 unless the constructor is told otherwise), every id of a chunk below every id of the next:
 * - finding an id is a binary search over the chunks' first ids, then one inside a chunk;
 * - an insert or remove splices one chunk (≤ 2 × CHUNK entries); a chunk that grows past 2 × CHUNK
 *   is split in two, and an empty chunk is dropped, so there are about N / CHUNK chunks;
 * - walking to neighbours steps through a (chunk, offset) cursor, wrapping at the ends of the ring.
 * So a change costs O(CHUNK + N / CHUNK) moves and a query O(log N) comparisons.
 */
import { compareDistance, type Id, type Rng } from '@pastry/core'

/** The default chunk size. */
export const DEFAULT_CHUNK = 512

interface Chunk {
  readonly ids: Id[]
  readonly idx: number[]
}

/** Ids in ascending order, each with a node index. Bounded by the node count. */
export class SortedIds {
  readonly #chunk: number
  #chunks: Chunk[] = []
  #size = 0
  // Cursor, set by #seek and moved by #next / #prev.
  #c = 0
  #o = 0

  /** Makes an empty list whose chunks split past 2 × `chunk` entries. */
  constructor(chunk: number = DEFAULT_CHUNK) {
    if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`chunk must be ≥ 1, got ${chunk}`)
    this.#chunk = chunk
  }

  /** Entries held. */
  get size(): number {
    return this.#size
  }

  /** Inserts `id` for node `index`. Returns -1, or the index already holding `id` (nothing changes). */
  insert(id: Id, index: number): number {
    if (this.#size === 0) {
      this.#chunks = [{ ids: [id], idx: [index] }]
      this.#size = 1
      return -1
    }
    const c = this.#chunkFor(id)
    const chunk = this.#chunks[c]!
    const o = lowerBound(chunk.ids, id)
    if (o < chunk.ids.length && chunk.ids[o]!.equals(id)) return chunk.idx[o]!
    chunk.ids.splice(o, 0, id)
    chunk.idx.splice(o, 0, index)
    this.#size++
    if (chunk.ids.length > 2 * this.#chunk) {
      const half = chunk.ids.length >>> 1
      this.#chunks.splice(c + 1, 0, { ids: chunk.ids.splice(half), idx: chunk.idx.splice(half) })
    }
    return -1
  }

  /** Removes `id`. Returns whether it was there. */
  remove(id: Id): boolean {
    if (this.#size === 0) return false
    const c = this.#chunkFor(id)
    const chunk = this.#chunks[c]!
    const o = lowerBound(chunk.ids, id)
    if (o === chunk.ids.length || !chunk.ids[o]!.equals(id)) return false
    chunk.ids.splice(o, 1)
    chunk.idx.splice(o, 1)
    this.#size--
    if (chunk.ids.length === 0) this.#chunks.splice(c, 1)
    return true
  }

  /**
   * The node index of the id numerically closest to `key`: of the first id ≥ `key` and the one
   * before it (wrapping around the ring), the nearer by `compareDistance`. Undefined when empty.
   */
  closest(key: Id): number | undefined {
    if (this.#size === 0) return undefined
    this.#seek(key)
    if (this.#c === this.#chunks.length) {
      this.#c = 0
      this.#o = 0
    }
    const aboveChunk = this.#chunks[this.#c]!
    const aboveId = aboveChunk.ids[this.#o]!
    const aboveIdx = aboveChunk.idx[this.#o]!
    this.#prev()
    const belowChunk = this.#chunks[this.#c]!
    return compareDistance(key, aboveId, belowChunk.ids[this.#o]!) <= 0 ? aboveIdx : belowChunk.idx[this.#o]!
  }

  /**
   * The up to `k` nearest ids after and before `id` on the ring (nearest first), `id` itself
   * excluded whether or not it is held. `k` is cut to the number of other ids.
   */
  neighbours(id: Id, k: number): { cw: Id[]; ccw: Id[] } {
    const cw: Id[] = []
    const ccw: Id[] = []
    if (this.#size === 0) return { cw, ccw }
    this.#seek(id)
    let self = false
    if (this.#c < this.#chunks.length) self = this.#chunks[this.#c]!.ids[this.#o]!.equals(id)
    const n = Math.min(k, self ? this.#size - 1 : this.#size)
    const c0 = this.#c
    const o0 = this.#o
    if (this.#c === this.#chunks.length) {
      this.#c = 0
      this.#o = 0
    } else if (self) this.#next()
    for (let j = 0; j < n; j++) {
      cw.push(this.#chunks[this.#c]!.ids[this.#o]!)
      this.#next()
    }
    this.#c = c0
    this.#o = o0
    for (let j = 0; j < n; j++) {
      this.#prev()
      ccw.push(this.#chunks[this.#c]!.ids[this.#o]!)
    }
    return { cw, ccw }
  }

  /** A uniformly random node index. Undefined when empty. O(N / CHUNK). */
  random(rng: Rng): number | undefined {
    if (this.#size === 0) return undefined
    let r = rng.int(this.#size)
    for (const chunk of this.#chunks) {
      if (r < chunk.idx.length) return chunk.idx[r]
      r -= chunk.idx.length
    }
    return undefined
  }

  /** Every node index, in id order. */
  indexes(): number[] {
    const out: number[] = []
    for (const chunk of this.#chunks) for (const i of chunk.idx) out.push(i)
    return out
  }

  /** The last chunk whose first id is ≤ key, or 0. Needs a non-empty list. */
  #chunkFor(key: Id): number {
    const cs = this.#chunks
    let lo = 0
    let hi = cs.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (cs[mid]!.ids[0]!.compare(key) <= 0) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  /** Puts the cursor on the first id ≥ key: (chunks.length, 0) when there is none. */
  #seek(key: Id): void {
    const c = this.#chunkFor(key)
    const o = lowerBound(this.#chunks[c]!.ids, key)
    if (o === this.#chunks[c]!.ids.length) {
      this.#c = c + 1
      this.#o = 0
    } else {
      this.#c = c
      this.#o = o
    }
  }

  #next(): void {
    if (this.#o + 1 < this.#chunks[this.#c]!.ids.length) this.#o++
    else {
      this.#c = this.#c + 1 < this.#chunks.length ? this.#c + 1 : 0
      this.#o = 0
    }
  }

  /** Steps back one, wrapping; from the end position it goes to the last id. */
  #prev(): void {
    if (this.#o > 0) this.#o--
    else {
      this.#c = this.#c > 0 ? this.#c - 1 : this.#chunks.length - 1
      this.#o = this.#chunks[this.#c]!.ids.length - 1
    }
  }
}

function lowerBound(ids: readonly Id[], key: Id): number {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ids[mid]!.compare(key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}
