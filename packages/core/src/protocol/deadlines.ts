/*
 * Named deadlines. The machine keeps one heap of (time, kind, key) entries; the driver only ever
 * asks for the earliest. Cancelling is lazy: an entry whose owner has moved on is skipped when it
 * reaches the top (the owner checks `key` against its own state). The heap holds at most one
 * entry per pending ack, probe and join attempt plus the periodic timers, all of which are bounded
 * by configuration, so it is bounded too.
 *
 * Layout: one Float64Array of four doubles per entry (time, insertion order, kind code, key), so
 * that pushing allocates nothing once the array has grown to the high-water mark. The earliest
 * entry is also copied into three fields of the heap object, so that reading it touches that object
 * alone, not the typed array and its backing store (the driver asks after every input, and in a
 * simulation of 10^5 nodes each node's heap is cold). A burst of probes can push
 * hundreds of deadlines, while a settled node keeps two; once the heap has shrunk to an eighth of
 * its storage, the array is copied to twice its present size so that the burst's room is given
 * back.
 */

/** The kinds of deadline a node keeps. */
export type DeadlineKind =
  | 'tick'
  | 'maintenance'
  | 'join'
  | 'ack'
  | 'probe'
  | 'announce'
  | 'seek'
  | 'indirect'

/** Every kind, by code: a kind's code is its index here. */
export const DEADLINE_KINDS: readonly DeadlineKind[] = [
  'tick',
  'maintenance',
  'join',
  'ack',
  'probe',
  'announce',
  'seek',
  'indirect',
]
const KIND_CODE = Object.fromEntries(DEADLINE_KINDS.map((k, i) => [k, i])) as Readonly<
  Record<DeadlineKind, number>
>

/** Doubles per entry: time, insertion order, kind code, key. */
const W = 4
const INITIAL_ENTRIES = 4
/** Storage is given back only above this many entries' room. */
const TRIM_ABOVE = 32

/**
 * A binary min-heap of deadlines ordered by time, then by insertion. Read the entry `pop` took
 * from `topKind` and `topKey`, which stay valid until the next `pop`.
 */
export class DeadlineHeap {
  #h = new Float64Array(INITIAL_ENTRIES * W)
  #size = 0
  #counter = 0
  #topKind: DeadlineKind = 'tick'
  #topKey = 0
  // The earliest entry's time, kind code and key, copied out of the array: the driver asks for
  // them after every input, and this object is one cache line where the array is two more.
  #headAt = 0
  #headCode = 0
  #headKey = 0

  get size(): number {
    return this.#size
  }

  /** Adds a deadline. `key` is an integer of at most 53 bits. */
  push(at: number, kind: DeadlineKind, key: number): void {
    if ((this.#size + 1) * W > this.#h.length) this.#resize(this.#h.length * 2)
    const h = this.#h
    const seq = this.#counter++
    const code = KIND_CODE[kind]
    let i = this.#size++
    // Sift up with a hole: the new entry has the largest seq, so it rises only when strictly earlier.
    while (i > 0) {
      const p = (i - 1) >> 1
      const po = p * W
      if (!(at < h[po]!)) break
      const o = i * W
      h[o] = h[po]!
      h[o + 1] = h[po + 1]!
      h[o + 2] = h[po + 2]!
      h[o + 3] = h[po + 3]!
      i = p
    }
    const o = i * W
    h[o] = at
    h[o + 1] = seq
    h[o + 2] = code
    h[o + 3] = key
    if (i === 0) {
      this.#headAt = at
      this.#headCode = code
      this.#headKey = key
    }
  }

  /** The time of the earliest deadline, or undefined when there is none. */
  peekAt(): number | undefined {
    return this.#size === 0 ? undefined : this.#headAt
  }

  /** The kind of the earliest deadline; only when `size` > 0. */
  peekKind(): DeadlineKind {
    return DEADLINE_KINDS[this.#headCode]!
  }

  /** The key of the earliest deadline; only when `size` > 0. */
  peekKey(): number {
    return this.#headKey
  }

  /** Removes the earliest deadline into `topKind` and `topKey`. False (and no change) when empty. */
  pop(): boolean {
    if (this.#size === 0) return false
    const h = this.#h
    this.#topKind = DEADLINE_KINDS[this.#headCode]!
    this.#topKey = this.#headKey
    const n = --this.#size
    if (n > 0) {
      // Sift the last entry down from the root, with a hole.
      const lo = n * W
      const at = h[lo]!
      const seq = h[lo + 1]!
      const code = h[lo + 2]!
      const key = h[lo + 3]!
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        let m = l
        let mo = l * W
        if (l + 1 < n) {
          const ro = mo + W
          if (h[ro]! < h[mo]! || (h[ro] === h[mo] && h[ro + 1]! < h[mo + 1]!)) {
            m = l + 1
            mo = ro
          }
        }
        if (at < h[mo]! || (at === h[mo] && seq < h[mo + 1]!)) break
        const o = i * W
        h[o] = h[mo]!
        h[o + 1] = h[mo + 1]!
        h[o + 2] = h[mo + 2]!
        h[o + 3] = h[mo + 3]!
        i = m
      }
      const o = i * W
      h[o] = at
      h[o + 1] = seq
      h[o + 2] = code
      h[o + 3] = key
      this.#headAt = h[0]!
      this.#headCode = h[2]!
      this.#headKey = h[3]!
    }
    if (h.length > TRIM_ABOVE * W && n * W * 8 <= h.length) this.#resize(Math.max(INITIAL_ENTRIES, n * 2) * W)
    return true
  }

  #resize(words: number): void {
    const h = new Float64Array(words)
    h.set(this.#h.subarray(0, this.#size * W))
    this.#h = h
  }

  /** The kind of the entry the last `pop` took. */
  get topKind(): DeadlineKind {
    return this.#topKind
  }

  /** The key of the entry the last `pop` took. */
  get topKey(): number {
    return this.#topKey
  }

  /**
   * Replaces the key of every deadline of `kind` with `map(key)` (an integer of at most 53 bits),
   * in place: keys do not order the heap. For an owner whose keys name things that have been
   * renumbered.
   */
  rekey(kind: DeadlineKind, map: (key: number) => number): void {
    const code = KIND_CODE[kind]
    const h = this.#h
    for (let o = 0; o < this.#size * W; o += W) if (h[o + 2] === code) h[o + 3] = map(h[o + 3]!)
    if (this.#size > 0) this.#headKey = h[3]!
  }

  /** Drops every deadline and gives back the storage. */
  clear(): void {
    this.#h = new Float64Array(INITIAL_ENTRIES * W)
    this.#size = 0
  }
}
