/*
 * Named deadlines. The machine keeps one heap of (time, kind, key) entries; the driver only ever
 * asks for the earliest. Cancelling is lazy: an entry whose owner has moved on is skipped when it
 * reaches the top (the owner checks `key` against its own state). The heap holds at most one
 * entry per pending ack, probe and join attempt plus the periodic timers, all of which are bounded
 * by configuration, so it is bounded too.
 */

/** The kinds of deadline a node keeps. */
export type DeadlineKind = 'tick' | 'maintenance' | 'join' | 'ack' | 'probe' | 'announce'

/** One deadline: when, what kind, and which instance (a message id, a nonce, an attempt). */
export interface Deadline {
  readonly at: number
  readonly kind: DeadlineKind
  readonly key: number
}

/** A binary min-heap of deadlines ordered by time, then by insertion. */
export class DeadlineHeap {
  readonly #items: Deadline[] = []
  readonly #seq: number[] = []
  #counter = 0

  get size(): number {
    return this.#items.length
  }

  /** Adds a deadline. */
  push(at: number, kind: DeadlineKind, key: number): void {
    const items = this.#items
    const seq = this.#seq
    items.push({ at, kind, key })
    seq.push(this.#counter++)
    let i = items.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.#less(i, p)) break
      this.#swap(i, p)
      i = p
    }
  }

  /** The earliest deadline, without removing it. */
  peek(): Deadline | undefined {
    return this.#items[0]
  }

  /** Removes and returns the earliest deadline. */
  pop(): Deadline | undefined {
    const items = this.#items
    const seq = this.#seq
    if (items.length === 0) return undefined
    const top = items[0]!
    const last = items.pop()!
    const lastSeq = seq.pop()!
    if (items.length > 0) {
      items[0] = last
      seq[0] = lastSeq
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < items.length && this.#less(l, m)) m = l
        if (r < items.length && this.#less(r, m)) m = r
        if (m === i) break
        this.#swap(i, m)
        i = m
      }
    }
    return top
  }

  /** Drops every deadline. */
  clear(): void {
    this.#items.length = 0
    this.#seq.length = 0
  }

  #less(a: number, b: number): boolean {
    const x = this.#items[a]!
    const y = this.#items[b]!
    return x.at < y.at || (x.at === y.at && this.#seq[a]! < this.#seq[b]!)
  }

  #swap(a: number, b: number): void {
    const items = this.#items
    const seq = this.#seq
    const t = items[a]!
    items[a] = items[b]!
    items[b] = t
    const s = seq[a]!
    seq[a] = seq[b]!
    seq[b] = s
  }
}
