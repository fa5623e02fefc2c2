/*
 * Theory of operation
 *
 * The simulator's node timers: at most one wake-up per node, in a 4-ary min-heap ordered by
 * (time, seq) like the event queue, plus each node's position in the heap. Moving a node's wake-up
 * (earlier or later) sifts its one entry in place, and cancelling removes it, so the heap never
 * holds a wake-up that is no longer wanted: a node that re-arms on every input costs one entry, not
 * one stale event per change. The simulator takes the next event from whichever of this heap and
 * the event queue holds the earlier (time, seq); seqs for both come from the queue's one counter,
 * so a run stays a pure function of the order in which things were scheduled.
 *
 * Layout. By heap position: time and seq (Float64Array) and node (Int32Array). By node: position
 * + 1 (Int32Array, 0 for none). Storage grows by doubling with the number of nodes and is bounded
 * by it: one entry per node at most.
 */

import { grown } from './grown.js'

/** At most one wake-up time per node, the earliest (time, seq) first. */
export class TimerHeap {
  #size = 0
  #time: Float64Array
  #seq: Float64Array
  #node: Int32Array
  /** Heap position + 1 by node; 0 when the node has no wake-up. */
  #pos: Int32Array

  /** Makes an empty heap with room for nodes `0 .. nodes - 1` (more are made room for on demand). */
  constructor(nodes = 64) {
    const cap = Math.max(1, nodes)
    this.#time = new Float64Array(cap)
    this.#seq = new Float64Array(cap)
    this.#node = new Int32Array(cap)
    this.#pos = new Int32Array(cap)
  }

  /** Nodes with a wake-up. */
  get size(): number {
    return this.#size
  }

  /** The earliest wake-up time; `Infinity` when none. */
  peekTime(): number {
    return this.#size === 0 ? Number.POSITIVE_INFINITY : this.#time[0]!
  }

  /** The seq of the earliest wake-up; `Infinity` when none. */
  peekSeq(): number {
    return this.#size === 0 ? Number.POSITIVE_INFINITY : this.#seq[0]!
  }

  /** The node of the earliest wake-up; -1 when none. */
  peekNode(): number {
    return this.#size === 0 ? -1 : this.#node[0]!
  }

  /** True when `node` has a wake-up. */
  has(node: number): boolean {
    return node < this.#pos.length && this.#pos[node] !== 0
  }

  /** The wake-up time of `node`; NaN when it has none. */
  timeOf(node: number): number {
    const p = node < this.#pos.length ? this.#pos[node]! : 0
    return p === 0 ? Number.NaN : this.#time[p - 1]!
  }

  /** Sets the wake-up of `node` (a non-negative integer) to (time, seq), adding or moving it. */
  set(node: number, time: number, seq: number): void {
    if (node >= this.#pos.length) this.#grow(node + 1)
    const p = this.#pos[node]!
    if (p === 0) {
      const i = this.#size++
      this.#up(i, time, seq, node)
      return
    }
    const i = p - 1
    if (time < this.#time[i]! || (time === this.#time[i]! && seq < this.#seq[i]!))
      this.#up(i, time, seq, node)
    else this.#down(i, time, seq, node)
  }

  /** Cancels the wake-up of `node`, if any. */
  delete(node: number): void {
    const p = node < this.#pos.length ? this.#pos[node]! : 0
    if (p === 0) return
    this.#pos[node] = 0
    this.#removeAt(p - 1)
  }

  /** Removes the earliest wake-up. Does nothing when empty. */
  pop(): void {
    if (this.#size === 0) return
    this.#pos[this.#node[0]!] = 0
    this.#removeAt(0)
  }

  /** Drops every wake-up. */
  clear(): void {
    for (let i = 0; i < this.#size; i++) this.#pos[this.#node[i]!] = 0
    this.#size = 0
  }

  /** Fills the hole at `i` with the last entry. */
  #removeAt(i: number): void {
    const last = --this.#size
    if (i === last) return
    const time = this.#time[last]!
    const seq = this.#seq[last]!
    const node = this.#node[last]!
    // The moved entry may belong above the hole or below it.
    const parent = (i - 1) >> 2
    if (i > 0 && (time < this.#time[parent]! || (time === this.#time[parent]! && seq < this.#seq[parent]!)))
      this.#up(i, time, seq, node)
    else this.#down(i, time, seq, node)
  }

  /** Places (time, seq, node) at the hole `i` or above it. */
  #up(i: number, time: number, seq: number, node: number): void {
    const hTime = this.#time
    const hSeq = this.#seq
    const hNode = this.#node
    const pos = this.#pos
    while (i > 0) {
      const p = (i - 1) >> 2
      const pt = hTime[p]!
      if (pt < time || (pt === time && hSeq[p]! < seq)) break
      hTime[i] = pt
      hSeq[i] = hSeq[p]!
      hNode[i] = hNode[p]!
      pos[hNode[i]!] = i + 1
      i = p
    }
    this.#put(i, time, seq, node)
  }

  /** Places (time, seq, node) at the hole `i` or below it. */
  #down(i: number, time: number, seq: number, node: number): void {
    const hTime = this.#time
    const hSeq = this.#seq
    const hNode = this.#node
    const pos = this.#pos
    const n = this.#size
    for (;;) {
      const first = 4 * i + 1
      if (first >= n) break
      let c = first
      let ct = hTime[c]!
      const last = first + 3 < n ? first + 3 : n - 1
      for (let k = first + 1; k <= last; k++) {
        const kt = hTime[k]!
        if (kt < ct || (kt === ct && hSeq[k]! < hSeq[c]!)) {
          c = k
          ct = kt
        }
      }
      if (time < ct || (time === ct && seq < hSeq[c]!)) break
      hTime[i] = ct
      hSeq[i] = hSeq[c]!
      hNode[i] = hNode[c]!
      pos[hNode[i]!] = i + 1
      i = c
    }
    this.#put(i, time, seq, node)
  }

  /** Writes (time, seq, node) at position `i`. */
  #put(i: number, time: number, seq: number, node: number): void {
    this.#time[i] = time
    this.#seq[i] = seq
    this.#node[i] = node
    this.#pos[node] = i + 1
  }

  #grow(nodes: number): void {
    let cap = this.#pos.length
    while (cap < nodes) cap *= 2
    this.#time = grown(this.#time, cap)
    this.#seq = grown(this.#seq, cap)
    this.#node = grown(this.#node, cap)
    this.#pos = grown(this.#pos, cap)
  }
}
