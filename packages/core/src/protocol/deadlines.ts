/*
 * Named deadlines. The machine keeps one heap of (time, kind, key) entries; the driver only ever
 * asks for the earliest. Cancelling is lazy: an entry whose owner has moved on is skipped when it
 * reaches the top (the owner checks `key` against its own state). The heap holds at most one
 * entry per pending ack, probe and join attempt plus the periodic timers, all of which are bounded
 * by configuration, so it is bounded too.
 *
 * Layout: four parallel arrays (time, insertion order, kind, key) rather than an object per entry,
 * so that pushing a deadline allocates nothing once the arrays have grown to the high-water mark.
 * A burst of probes can push hundreds of deadlines, while a settled node keeps two; once the heap
 * has shrunk to an eighth of its high-water mark, the arrays are copied to their present size so
 * that the burst's room is given back.
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

/**
 * A binary min-heap of deadlines ordered by time, then by insertion. Read the entry `pop` took
 * from `topKind` and `topKey`, which stay valid until the next `pop`.
 */
export class DeadlineHeap {
  #at: number[] = []
  #seq: number[] = []
  #kind: DeadlineKind[] = []
  #key: number[] = []
  #counter = 0
  /** The most entries held since the arrays were last copied. */
  #peak = 0
  #topKind: DeadlineKind = 'tick'
  #topKey = 0

  get size(): number {
    return this.#at.length
  }

  /** Adds a deadline. */
  push(at: number, kind: DeadlineKind, key: number): void {
    const ats = this.#at
    const seqs = this.#seq
    const kinds = this.#kind
    const keys = this.#key
    const seq = this.#counter++
    let i = ats.length
    if (i >= this.#peak) this.#peak = i + 1
    ats.push(at)
    seqs.push(seq)
    kinds.push(kind)
    keys.push(key)
    // Sift up with a hole: the new entry has the largest seq, so it rises only when strictly earlier.
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!(at < ats[p]!)) break
      ats[i] = ats[p]!
      seqs[i] = seqs[p]!
      kinds[i] = kinds[p]!
      keys[i] = keys[p]!
      i = p
    }
    ats[i] = at
    seqs[i] = seq
    kinds[i] = kind
    keys[i] = key
  }

  /** The time of the earliest deadline, or undefined when there is none. */
  peekAt(): number | undefined {
    return this.#at.length === 0 ? undefined : this.#at[0]
  }

  /** The kind of the earliest deadline; only when `size` > 0. */
  peekKind(): DeadlineKind {
    return this.#kind[0]!
  }

  /** The key of the earliest deadline; only when `size` > 0. */
  peekKey(): number {
    return this.#key[0]!
  }

  /** Removes the earliest deadline into `topKind` and `topKey`. False (and no change) when empty. */
  pop(): boolean {
    const ats = this.#at
    const seqs = this.#seq
    const kinds = this.#kind
    const keys = this.#key
    if (ats.length === 0) return false
    this.#topKind = kinds[0]!
    this.#topKey = keys[0]!
    const at = ats.pop()!
    const seq = seqs.pop()!
    const kind = kinds.pop()!
    const key = keys.pop()!
    const n = ats.length
    if (n > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        let m = l
        if (r < n && (ats[r]! < ats[l]! || (ats[r] === ats[l] && seqs[r]! < seqs[l]!))) m = r
        if (at < ats[m]! || (at === ats[m] && seq < seqs[m]!)) break
        ats[i] = ats[m]!
        seqs[i] = seqs[m]!
        kinds[i] = kinds[m]!
        keys[i] = keys[m]!
        i = m
      }
      ats[i] = at
      seqs[i] = seq
      kinds[i] = kind
      keys[i] = key
    }
    if (this.#peak > 32 && n <= this.#peak >> 3) this.#trim()
    return true
  }

  #trim(): void {
    this.#at = this.#at.slice()
    this.#seq = this.#seq.slice()
    this.#kind = this.#kind.slice()
    this.#key = this.#key.slice()
    this.#peak = this.#at.length
  }

  /** The kind of the entry the last `pop` took. */
  get topKind(): DeadlineKind {
    return this.#topKind
  }

  /** The key of the entry the last `pop` took. */
  get topKey(): number {
    return this.#topKey
  }

  /** Drops every deadline. */
  clear(): void {
    this.#at = []
    this.#seq = []
    this.#kind = []
    this.#key = []
    this.#peak = 0
  }
}
