/*
 * Theory of operation
 *
 * Two simulator shards, each in its own thread, run one simulation between them: each owns the
 * nodes on its side of a split of the topology, and hands the other the messages its nodes send
 * across. A `ShardLink` is one shard's end of the shared memory between them: its clock, the
 * other's clock, and a ring in each direction (ring.ts).
 *
 * Conservative synchronisation. A shard may run an event at time T at node x only when nothing the
 * other shard does from now on can reach x before T. The other shard's future events are no
 * earlier than its clock, the earliest of its pending events, which it publishes after every event,
 * and no earlier than the arrival of any message this shard has sent it and it has not yet read;
 * the link keeps the least of those arrivals over a sliding window (`lowerBound`). Anything the
 * other shard sends reaches x no sooner than x's horizon, the least latency from x to any point
 * of the other side. So the event may run when T < lowerBound + horizon(x). Messages within a
 * shard need no check: they arrive later than they leave.
 *
 * The clock is a (time, records read) pair written under a sequence lock: the reader needs both
 * from the same moment, because a shard's earliest event can move earlier when it reads messages.
 *
 * Records. Every record starts with its kind and its time:
 * - MESSAGE: time of arrival, receiver, sender, type code, path delay (the simulator's `aux`),
 *   lookup number (-1 for none), then the message as words (words.ts);
 * - ACTIVE: time, node, 1 when it became active or 0 when it stopped being;
 * - DELIVERED: time, lookup number (a lookup's first delivery at a node of the sender).
 */
import type { Message } from '@pastry/core'
import { ringBytes, WordRing } from './ring.js'
import { type HandleIndex, readEnd, readMessage, WordWriter, writeMessage } from './words.js'

export const REC_MESSAGE = 1
export const REC_ACTIVE = 2
export const REC_DELIVERED = 3

const CLOCK_BYTES = 64
const SEQ = 0
const LO = 1
const HI = 2
const READ_RECORDS = 3
/** 1 while the shard sleeps waiting for the other's clock to move. */
const SLEEPING = 4
/** Waits in a row spent spinning before sleeping. */
const SPINS = 20_000
/** Longest sleep, ms (a safety net: the other shard wakes a sleeper when its clock moves). */
const SLEEP_MS = 5

/** Where a shard's link hands what it reads. */
export interface ShardSink {
  injectMessage(
    time: number,
    to: number,
    from: number,
    code: number,
    aux: number,
    lookup: number,
    message: Message,
  ): void
  remoteActive(time: number, node: number, active: boolean): void
  remoteDelivered(time: number, lookup: number): void
}

/** The shared memory two shards need: pass the same buffer to both. */
export function linkBytes(ringWords: number): number {
  return 2 * CLOCK_BYTES + 2 * ringBytes(ringWords)
}

const F64 = new Float64Array(1)
const I32 = new Int32Array(F64.buffer)

/** One shard's end of the shared memory between two shards. */
export class ShardLink {
  readonly self: number
  readonly #mine: Int32Array
  readonly #theirs: Int32Array
  readonly #out: WordRing
  readonly #in: WordRing
  readonly #names: HandleIndex
  readonly #writer = new WordWriter(1024)
  #sent = 0
  /**
   * The last lower bound read, lowered by every message sent since: still a bound on what the
   * other shard may do (see runSharded), so an event it allows needs no new reading.
   */
  bound = Number.NEGATIVE_INFINITY
  #published = Number.NaN
  #publishedRead = -1
  #waits = 0
  #read = 0
  // Sliding minimum of arrivals of sent, possibly unread message records: a deque by record number.
  #dqSeq = new Float64Array(1024)
  #dqAt = new Float64Array(1024)
  #dqHead = 0
  #dqLen = 0

  constructor(buffer: SharedArrayBuffer, self: 0 | 1, ringWords: number, names: HandleIndex) {
    this.self = self
    this.#names = names
    const clocks = [
      new Int32Array(buffer, 0, CLOCK_BYTES / 4),
      new Int32Array(buffer, CLOCK_BYTES, CLOCK_BYTES / 4),
    ]
    this.#mine = clocks[self]!
    this.#theirs = clocks[1 - self]!
    const ringSize = ringBytes(ringWords)
    const rings = [
      new WordRing(buffer, ringWords, 2 * CLOCK_BYTES),
      new WordRing(buffer, ringWords, 2 * CLOCK_BYTES + ringSize),
    ]
    // Ring k carries records from shard k to the other.
    this.#out = rings[self]!
    this.#in = rings[1 - self]!
  }

  /** Publishes this shard's clock: no event of its own will come before `head`. */
  publish(head: number): void {
    this.#drainedMin = Number.POSITIVE_INFINITY
    if (head === this.#published && this.#read === this.#publishedRead) return
    this.#published = head
    this.#publishedRead = this.#read
    const c = this.#mine
    const seq = c[SEQ]!
    Atomics.store(c, SEQ, seq + 1)
    F64[0] = head
    Atomics.store(c, LO, I32[0]!)
    Atomics.store(c, HI, I32[1]!)
    Atomics.store(c, READ_RECORDS, this.#read)
    Atomics.store(c, SEQ, seq + 2)
    if (Atomics.load(this.#theirs, SLEEPING) === 1) Atomics.notify(c, SEQ)
  }

  /** Called when the next event may not run yet: spins a while, then sleeps until the clock moves. */
  pause(): void {
    if (++this.#waits < SPINS) return
    const c = this.#theirs
    const seq = Atomics.load(c, SEQ)
    Atomics.store(this.#mine, SLEEPING, 1)
    Atomics.wait(c, SEQ, seq, SLEEP_MS)
    Atomics.store(this.#mine, SLEEPING, 0)
  }

  /** Called when an event runs: the next wait starts by spinning again. */
  resume(): void {
    this.#waits = 0
  }

  /**
   * No event that the other shard runs from now on, and no message of this shard it has yet to
   * read, is earlier than this.
   */
  lowerBound(): number {
    const c = this.#theirs
    let time: number
    let read: number
    for (;;) {
      const s1 = Atomics.load(c, SEQ)
      if ((s1 & 1) === 1) continue
      I32[0] = Atomics.load(c, LO)
      I32[1] = Atomics.load(c, HI)
      read = Atomics.load(c, READ_RECORDS)
      if (Atomics.load(c, SEQ) === s1) {
        time = F64[0]!
        break
      }
    }
    // Drop the sent records the other has read.
    while (this.#dqLen > 0 && ((this.#dqSeq[this.#dqHead]! - read) | 0) < 0) {
      this.#dqHead = (this.#dqHead + 1) & (this.#dqSeq.length - 1)
      this.#dqLen--
    }
    if (this.#dqLen > 0) {
      const at = this.#dqAt[this.#dqHead]!
      if (at < time) time = at
    }
    this.bound = time
    return time
  }

  /** Sends a message to a node of the other shard. */
  sendMessage(
    time: number,
    to: number,
    from: number,
    code: number,
    aux: number,
    lookup: number,
    message: Message,
    sink: ShardSink,
  ): void {
    const w = this.#writer
    w.reset()
    w.push(REC_MESSAGE)
    w.push(time)
    w.push(to)
    w.push(from)
    w.push(code)
    w.push(aux)
    w.push(lookup)
    writeMessage(w, message, this.#names)
    this.#track(time)
    if (time < this.bound) this.bound = time
    this.#put(sink)
  }

  sendActive(time: number, node: number, active: boolean, sink: ShardSink): void {
    const w = this.#writer
    w.reset()
    w.push(REC_ACTIVE)
    w.push(time)
    w.push(node)
    w.push(active ? 1 : 0)
    this.#put(sink)
  }

  sendDelivered(time: number, lookup: number, sink: ShardSink): void {
    const w = this.#writer
    w.reset()
    w.push(REC_DELIVERED)
    w.push(time)
    w.push(lookup)
    this.#put(sink)
  }

  /** Reads every record the other shard has sent so far into `sink`. Returns how many. */
  drain(sink: ShardSink): number {
    let count = 0
    const ring = this.#in
    for (;;) {
      const n = ring.read()
      if (n < 0) break
      this.#read = (this.#read + 1) | 0
      count++
      const r = ring.lastRecord
      const kind = r[0]!
      if (kind === REC_MESSAGE) {
        if (r[1]! < this.#drainedMin) this.#drainedMin = r[1]!
        const message = readMessage(r, 7, this.#names)
        if (readEnd() !== n) throw new Error(`a message record of ${n} words read as ${readEnd()}`)
        sink.injectMessage(r[1]!, r[2]!, r[3]!, r[4]!, r[5]!, r[6]!, message)
      } else if (kind === REC_ACTIVE) sink.remoteActive(r[1]!, r[2]!, r[3] === 1)
      else if (kind === REC_DELIVERED) sink.remoteDelivered(r[1]!, r[2]!)
      else throw new Error(`unknown shard record kind ${kind}`)
    }
    return count
  }

  #track(arrival: number): void {
    const seq = this.#sent
    // Arrivals later than this one, sent earlier, no longer matter for the minimum.
    let mask = this.#dqSeq.length - 1
    while (this.#dqLen > 0) {
      const last = (this.#dqHead + this.#dqLen - 1) & mask
      if (this.#dqAt[last]! < arrival) break
      this.#dqLen--
    }
    if (this.#dqLen === this.#dqSeq.length) {
      const cap = this.#dqSeq.length * 2
      const seqs = new Float64Array(cap)
      const ats = new Float64Array(cap)
      for (let k = 0; k < this.#dqLen; k++) {
        seqs[k] = this.#dqSeq[(this.#dqHead + k) & mask]!
        ats[k] = this.#dqAt[(this.#dqHead + k) & mask]!
      }
      this.#dqSeq = seqs
      this.#dqAt = ats
      this.#dqHead = 0
      mask = cap - 1
    }
    const at = (this.#dqHead + this.#dqLen) & mask
    this.#dqSeq[at] = seq
    this.#dqAt[at] = arrival
    this.#dqLen++
  }

  #put(sink: ShardSink): void {
    const w = this.#writer
    while (!this.#out.tryWrite(w.words, w.length)) {
      // Full: read our own inbox meanwhile, so that a shard writing to us is never stuck either.
      this.drain(sink)
      this.#publishRead()
    }
    this.#sent = (this.#sent + 1) | 0
  }

  /** Arrivals of the messages read since the clock was last published: the least of them. */
  #drainedMin = Number.POSITIVE_INFINITY

  /**
   * Publishes the records read while waiting for room to write: the clock cannot move later, and
   * moves earlier to the earliest message read meanwhile, which the shard has not yet looked at.
   */
  #publishRead(): void {
    const min = this.#drainedMin
    const head = Number.isNaN(this.#published) ? Number.NEGATIVE_INFINITY : this.#published
    this.publish(min < head ? min : head)
    this.#drainedMin = min
  }
}
