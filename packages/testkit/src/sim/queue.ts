/*
 * Theory of operation
 *
 * The simulator's future: a binary min-heap of events ordered by (time, seq). `seq` is a counter
 * that every push increments, so two events at the same virtual time come out in the order they
 * were pushed, and a run is a pure function of the order of pushes.
 *
 * Layout. An event is a *slot* holding its payload in parallel typed arrays (kind, node, from, aux)
 * plus one plain array for an object (a message, a frame, a command). The heap is 4-ary (half the
 * depth of a binary heap, and a node's children are adjacent in memory) and is three parallel arrays
 * (time, seq, slot), so a sift moves three numbers per level and never touches the payload. A slot is in use exactly while its event is in the heap; freed slots go on a stack and are
 * reused, so the payload arrays never hold more slots than the heap's high-water mark. Nothing is
 * allocated per event: the popped event's fields are copied into the queue's "top" fields (`time`,
 * `seq`, `kind`, ...), which stay valid until the next `pop`.
 *
 * Bound. Storage starts small and doubles when full, up to `maxEvents` pending events (default
 * 2^24, about 0.8 GB at 48 bytes a slot); a push beyond it throws {@link QueueFullError}. The
 * simulator keeps the pending count near (messages in flight) + (one timer per live node) +
 * (stale timers, see simulator.ts) + (scheduled commands), so hitting the bound means a node is
 * flooding the network, not that the simulation is large.
 */

import { grown } from './grown.js'

/** Thrown when an {@link EventQueue} would hold more than its `maxEvents` pending events. */
export class QueueFullError extends Error {
  constructor(max: number) {
    super(`the event queue is full: ${max} pending events (raise maxEvents, or look for a message storm)`)
    this.name = 'QueueFullError'
  }
}

/** The default bound on pending events. */
export const DEFAULT_MAX_EVENTS = 1 << 24

/**
 * A 4-ary min-heap of events by (time, seq). Call `push` to schedule and `pop` to take the earliest; read
 * the taken event from the `top*` getters, which stay valid until the next `pop`.
 */
export class EventQueue {
  /** The most events this queue holds at once. */
  readonly maxEvents: number
  #capacity: number
  #size = 0
  #nextSeq = 0
  // Heap, by position.
  #hTime: Float64Array
  #hSeq: Float64Array
  #hSlot: Int32Array
  // Payload, by slot.
  #kind: Uint8Array
  #node: Int32Array
  #from: Int32Array
  #aux: Float64Array
  #obj: unknown[]
  #free: Int32Array
  #freeTop = 0
  #allocated = 0
  // The last popped event.
  #tTime = 0
  #tSeq = 0
  #tKind = 0
  #tNode = 0
  #tFrom = 0
  #tAux = 0
  #tObj: unknown

  /** Makes an empty queue. `initialCapacity` only sizes the first allocation. */
  constructor(maxEvents: number = DEFAULT_MAX_EVENTS, initialCapacity = 1024) {
    if (!Number.isInteger(maxEvents) || maxEvents < 1)
      throw new RangeError(`maxEvents must be ≥ 1, got ${maxEvents}`)
    this.maxEvents = maxEvents
    const cap = Math.max(1, Math.min(maxEvents, initialCapacity))
    this.#capacity = cap
    this.#hTime = new Float64Array(cap)
    this.#hSeq = new Float64Array(cap)
    this.#hSlot = new Int32Array(cap)
    this.#kind = new Uint8Array(cap)
    this.#node = new Int32Array(cap)
    this.#from = new Int32Array(cap)
    this.#aux = new Float64Array(cap)
    this.#obj = new Array(cap).fill(undefined)
    this.#free = new Int32Array(cap)
  }

  /** Pending events. */
  get size(): number {
    return this.#size
  }

  /** The seq the next push will get; also the number of pushes so far. */
  get nextSeq(): number {
    return this.#nextSeq
  }

  /** Time of the earliest pending event; `Infinity` when the queue is empty. */
  peekTime(): number {
    return this.#size === 0 ? Number.POSITIVE_INFINITY : this.#hTime[0]!
  }

  /** Seq of the earliest pending event; `Infinity` when the queue is empty. */
  peekSeq(): number {
    return this.#size === 0 ? Number.POSITIVE_INFINITY : this.#hSeq[0]!
  }

  /**
   * Takes the next seq without queuing anything, for an event kept elsewhere (the simulator's node
   * timers) that must order against this queue's events as if it had been pushed now.
   */
  takeSeq(): number {
    return this.#nextSeq++
  }

  /**
   * Schedules an event at `time` and returns its seq. `kind`, `node`, `from` must fit an int32
   * (kind a byte); `aux` is any number; `obj` any value. Throws {@link QueueFullError} at the bound.
   */
  push(time: number, kind: number, node: number, from: number, aux: number, obj: unknown): number {
    return this.#insert(time, kind, node, from, aux, obj, this.#nextSeq++)
  }

  /**
   * Schedules an event with a seq of the caller's (an event handed over from another shard, which
   * must order the same whenever it was handed over). `seq` must exceed every seq this queue gives
   * out. Returns `seq`.
   */
  pushWithSeq(
    time: number,
    kind: number,
    node: number,
    from: number,
    aux: number,
    obj: unknown,
    seq: number,
  ): number {
    return this.#insert(time, kind, node, from, aux, obj, seq)
  }

  #insert(
    time: number,
    kind: number,
    node: number,
    from: number,
    aux: number,
    obj: unknown,
    seq: number,
  ): number {
    if (this.#size === this.#capacity) this.#grow()
    const slot = this.#freeTop > 0 ? this.#free[--this.#freeTop]! : this.#allocated++
    this.#kind[slot] = kind
    this.#node[slot] = node
    this.#from[slot] = from
    this.#aux[slot] = aux
    this.#obj[slot] = obj
    // Sift up with a hole. A seq from `push` is the largest this queue has given out, so the event
    // rises above a parent only when strictly earlier, or as early as one handed over by
    // pushWithSeq; a handed-over seq is compared the same way.
    const hTime = this.#hTime
    const hSeq = this.#hSeq
    const hSlot = this.#hSlot
    let i = this.#size++
    while (i > 0) {
      const p = (i - 1) >> 2
      const pt = hTime[p]!
      if (pt < time || (pt === time && hSeq[p]! < seq)) break
      hTime[i] = pt
      hSeq[i] = hSeq[p]!
      hSlot[i] = hSlot[p]!
      i = p
    }
    hTime[i] = time
    hSeq[i] = seq
    hSlot[i] = slot
    return seq
  }

  /** Kind of the earliest pending event; -1 when the queue is empty. */
  peekKind(): number {
    return this.#size === 0 ? -1 : this.#kind[this.#hSlot[0]!]!
  }

  /** Node of the earliest pending event; -1 when the queue is empty. */
  peekNode(): number {
    return this.#size === 0 ? -1 : this.#node[this.#hSlot[0]!]!
  }

  /** Takes the earliest event into the `top*` fields. Returns false (and changes nothing) when empty. */
  pop(): boolean {
    if (this.#size === 0) return false
    const hTime = this.#hTime
    const hSeq = this.#hSeq
    const hSlot = this.#hSlot
    const slot = hSlot[0]!
    this.#tTime = hTime[0]!
    this.#tSeq = hSeq[0]!
    this.#tKind = this.#kind[slot]!
    this.#tNode = this.#node[slot]!
    this.#tFrom = this.#from[slot]!
    this.#tAux = this.#aux[slot]!
    this.#tObj = this.#obj[slot]
    this.#obj[slot] = undefined
    this.#free[this.#freeTop++] = slot
    const n = --this.#size
    if (n > 0) {
      // Sift the last element down from the root, with a hole.
      const time = hTime[n]!
      const seq = hSeq[n]!
      const s = hSlot[n]!
      let i = 0
      for (;;) {
        // The least of up to four children, at 4i + 1 .. 4i + 4.
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
        hSlot[i] = hSlot[c]!
        i = c
      }
      hTime[i] = time
      hSeq[i] = seq
      hSlot[i] = s
    }
    return true
  }

  /** Time of the last popped event. */
  get topTime(): number {
    return this.#tTime
  }
  /** Seq of the last popped event. */
  get topSeq(): number {
    return this.#tSeq
  }
  /** Kind of the last popped event. */
  get topKind(): number {
    return this.#tKind
  }
  /** Node of the last popped event. */
  get topNode(): number {
    return this.#tNode
  }
  /** `from` of the last popped event. */
  get topFrom(): number {
    return this.#tFrom
  }
  /** `aux` of the last popped event. */
  get topAux(): number {
    return this.#tAux
  }
  /** Object of the last popped event. */
  get topObj(): unknown {
    return this.#tObj
  }

  /** Drops every pending event. Seqs keep counting up. */
  clear(): void {
    this.#obj.fill(undefined)
    this.#size = 0
    this.#freeTop = 0
    this.#allocated = 0
    this.#tObj = undefined
  }

  #grow(): void {
    if (this.#capacity >= this.maxEvents) throw new QueueFullError(this.maxEvents)
    const cap = Math.min(this.maxEvents, this.#capacity * 2)
    this.#hTime = grown(this.#hTime, cap)
    this.#hSeq = grown(this.#hSeq, cap)
    this.#hSlot = grown(this.#hSlot, cap)
    this.#kind = grown(this.#kind, cap)
    this.#node = grown(this.#node, cap)
    this.#from = grown(this.#from, cap)
    this.#aux = grown(this.#aux, cap)
    this.#free = grown(this.#free, cap)
    const obj = this.#obj
    for (let i = this.#capacity; i < cap; i++) obj.push(undefined)
    this.#capacity = cap
  }
}
