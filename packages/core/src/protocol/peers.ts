/*
 * Theory of operation
 *
 * `PeerTable` holds a node's per-peer records as a struct of arrays, because a simulation keeps
 * hundreds of them per node for 10^5 nodes and a record per object costs several times more (V8
 * boxes every double-valued field in a heap number of its own), and because a lookup that chases
 * pointers through objects scattered over a large heap is slow.
 *
 * A record lives in a *slot*: RECORD_WORDS doubles (80 bytes) at `slot × RECORD_WORDS` in one
 * Float64Array. The first six doubles are its times and RTTs, the last of them when the probe in
 * flight to the peer was sent; then come, as int32 words read through an Int32Array view of the
 * same buffer, the probe nonce, the leaf-set version sent, the creation order and the flags, and
 * last its id as four words. Its handle sits in a plain array. The nonce is an unsigned 32-bit
 * number kept in a signed word, with a flag saying whether one is set. The flags word holds the
 * owner's flags in its low byte and, above them, 22 bits the owner keeps with the probe in flight
 * (`probeInfo`): a probe's whole state lives in its peer's record, so sending one allocates
 * nothing. The creation order counts modulo 2^32: after four billion records made by one table, one
 * prune may take a newer spare record for an older one. Free slots go on a stack and are reused.
 * Records are found by id through an open-addressing hash index (linear probing, at most half
 * full, backward-shift deletion) that compares the ids stored in the records, so a lookup touches
 * the index and the record and no object, and builds no hex string. Storage starts at 64 records
 * and grows by half when full, and `compact` shrinks it to 7/5 of the records (never below 64)
 * when it holds more than 7/4 of them: a join pins a few hundred records for a while, and a
 * settled node needs far fewer. (Starting at 32, a simulated node made about eight buffers over
 * its life, two of every five swinging between 32 and 48 records; from 64 it makes about three.)
 * The index keeps a power-of-two size of at least twice the storage, and sits in the same buffer,
 * after the records: one allocation per table, which a simulation of many nodes reaches through
 * one cold object rather than two.
 *
 * A slot number is valid until its record is removed or the table is compacted; the owner does
 * either only between inputs, so a slot read during an input stays valid to its end.
 */
import type { Id } from '../id/id.js'
import type { NodeHandle } from '../wire/messages.js'

/** Flag: the peer is in the leaf set. */
export const IN_LEAF_SET = 1
/** Flag: the peer is in the routing table. */
export const IN_ROUTING_TABLE = 2
/** Flag: the peer is in the neighbourhood set. */
export const IN_NEIGHBOURHOOD = 4
/** Any of the table flags. */
export const IN_TABLES = IN_LEAF_SET | IN_ROUTING_TABLE | IN_NEIGHBOURHOOD
/** Flag: the peer is suspected (a probe to it is unanswered). */
export const SUSPECTED = 8
/** Internal flag: the record holds a probe nonce. */
const PROBING = 1 << 30
/** The owner's flags: the low byte of the flags word. */
const OWNER_FLAGS = 0xff
/** The lowest bit of the probe's information in the flags word. */
const INFO_SHIFT = 8
/** The largest value {@link PeerTable.setProbe} keeps with a probe: 22 bits. */
export const MAX_PROBE_INFO = (1 << 22) - 1
const INFO_BITS = MAX_PROBE_INFO << INFO_SHIFT

// The numeric fields of a record, as offsets among its doubles.
/** When this node first learned of the peer. */
export const KNOWN_SINCE = 0
/** When this node last heard from the peer (-Infinity: never). */
export const LAST_HEARD = 1
/** When this node last sent to the peer (-Infinity: never). */
export const LAST_SENT = 2
/** Smoothed RTT in ms (NaN: not measured). */
export const SRTT = 3
/** RTT variation in ms (NaN: not measured). */
export const RTTVAR = 4
/** When the probe in flight to the peer was sent (meaningful only while one is). */
export const PROBE_SENT_AT = 5
/** Nonce of the probe in flight to the peer (an unsigned 32-bit number), or -1. */
export const PROBE_NONCE = 6
/** The leaf-set version last sent to the peer (a 32-bit integer), or -1. */
export const VERSION_SENT = 7
/** Creation order (modulo 2^32), for pruning oldest first. */
export const CREATED = 8
/** The doubles of a record: the fields up to PROBE_SENT_AT. */
const DOUBLE_FIELDS = 6
/** The int32 words of PROBE_NONCE, VERSION_SENT and CREATED, then the flags, then the id. */
const INT_WORD = 2 * DOUBLE_FIELDS
const FLAGS_WORD = INT_WORD + 3
const ID_WORD = INT_WORD + 4
/** Doubles per record: 6 fields, then 4 int32 words, then the id's 4 words. */
const RECORD_WORDS = 10

const INITIAL_SLOTS = 64

/** Rounds a number of slots up to a multiple of 16. */
function roundUp(slots: number): number {
  return (slots + 15) & ~15
}

function hashOf(id: Id): number {
  return Math.imul(id.w3 ^ Math.imul(id.w2, 0x85ebca6b) ^ Math.imul(id.w0, 0xc2b2ae35), 0x9e3779b1)
}

/** Per-peer records of one node, found by id. Not bounded by itself: its owner prunes it. */
export class PeerTable {
  #size = 0
  #slots = 0
  #highWater = 0
  #created = 0
  /** The records' doubles, at the start of the one buffer. */
  #num: Float64Array
  /** The whole buffer as int32 words: the records' ids, then the index from `#indexBase`. */
  #words: Int32Array
  #handles: (NodeHandle | undefined)[] = []
  #free: number[] = []
  /** Where the index starts in `#words`: slot + 1 per index position, 0 marking an empty one. */
  #indexBase = 0
  #mask = 0
  /** The id object last looked up or added, and its slot: one input reads one peer many times. */
  #lastId: Id | undefined = undefined
  #lastSlot = -1

  constructor() {
    this.#num = this.#allocate(INITIAL_SLOTS)
    this.#words = new Int32Array(this.#num.buffer)
  }

  /** The number of records. */
  get size(): number {
    return this.#size
  }

  /** The number of records the storage holds before it grows. */
  get capacity(): number {
    return this.#slots
  }

  /** One past the highest slot ever used: iterate slots below it, skipping free ones. */
  get highWater(): number {
    return this.#highWater
  }

  /** The slot of the record for `id`, or -1. */
  find(id: Id): number {
    if (id === this.#lastId) return this.#lastSlot
    const words = this.#words
    const base = this.#indexBase
    const mask = this.#mask
    const w0 = id.w0
    const w1 = id.w1
    const w2 = id.w2
    const w3 = id.w3
    let i = hashOf(id) & mask
    for (;;) {
      const s = words[base + i]!
      if (s === 0) return -1
      const o = (s - 1) * RECORD_WORDS * 2 + ID_WORD
      if (words[o + 3] === w3 && words[o] === w0 && words[o + 1] === w1 && words[o + 2] === w2) {
        this.#lastId = id
        this.#lastSlot = s - 1
        return s - 1
      }
      i = (i + 1) & mask
    }
  }

  /** Adds a record for a peer that has none, and returns its slot. */
  add(handle: NodeHandle, now: number): number {
    if (this.#size === this.#slots) this.#grow()
    const slot = this.#free.length > 0 ? this.#free.pop()! : this.#highWater++
    this.#handles[slot] = handle
    const o = slot * RECORD_WORDS
    const num = this.#num
    num[o + KNOWN_SINCE] = now
    num[o + LAST_HEARD] = Number.NEGATIVE_INFINITY
    num[o + LAST_SENT] = Number.NEGATIVE_INFINITY
    num[o + SRTT] = Number.NaN
    num[o + RTTVAR] = Number.NaN
    num[o + PROBE_SENT_AT] = Number.NaN
    const id = handle.id
    const words = this.#words
    const i = o * 2 + INT_WORD
    words[i] = 0 // the nonce, unset (no PROBING flag)
    words[i + 1] = -1
    words[i + 2] = this.#created
    this.#created = (this.#created + 1) >>> 0
    words[i + 3] = 0
    const w = o * 2 + ID_WORD
    words[w] = id.w0
    words[w + 1] = id.w1
    words[w + 2] = id.w2
    words[w + 3] = id.w3
    this.#insertIndex(id, slot)
    this.#size++
    this.#lastId = id
    this.#lastSlot = slot
    return slot
  }

  /** Removes the record in `slot`. */
  remove(slot: number): void {
    if (slot === this.#lastSlot) this.#lastId = undefined
    const words = this.#words
    const base = this.#indexBase
    const mask = this.#mask
    let i = this.#home(slot)
    while (words[base + i] !== slot + 1) i = (i + 1) & mask
    // Backward-shift deletion: pull later entries of the probe run into the hole.
    let j = i
    for (;;) {
      j = (j + 1) & mask
      const s = words[base + j]!
      if (s === 0) break
      const home = this.#home(s - 1)
      // Move s into the hole at i unless its home lies cyclically in (i, j].
      if (i <= j ? home > i && home <= j : home > i || home <= j) continue
      words[base + i] = s
      i = j
    }
    words[base + i] = 0
    this.#handles[slot] = undefined
    this.#free.push(slot)
    this.#size--
  }

  /** True when `slot` holds a record. */
  inUse(slot: number): boolean {
    return this.#handles[slot] !== undefined
  }

  handle(slot: number): NodeHandle {
    return this.#handles[slot]!
  }

  /** Replaces the handle of a record (same id, new address). */
  setHandle(slot: number, handle: NodeHandle): void {
    this.#handles[slot] = handle
  }

  /** A numeric field of a record (see the field constants). */
  get(slot: number, field: number): number {
    if (field < DOUBLE_FIELDS) return this.#num[slot * RECORD_WORDS + field]!
    const o = slot * RECORD_WORDS * 2
    const words = this.#words
    if (field === PROBE_NONCE)
      return (words[o + FLAGS_WORD]! & PROBING) === 0 ? -1 : words[o + INT_WORD]! >>> 0
    if (field === CREATED) return words[o + INT_WORD + 2]! >>> 0
    return words[o + INT_WORD + 1]! // VERSION_SENT
  }

  /**
   * Sets a numeric field. PROBE_NONCE takes an unsigned 32-bit number or -1 (none), VERSION_SENT a
   * 32-bit integer or -1; CREATED is the table's own.
   */
  set(slot: number, field: number, value: number): void {
    if (field < DOUBLE_FIELDS) {
      this.#num[slot * RECORD_WORDS + field] = value
      return
    }
    const o = slot * RECORD_WORDS * 2
    const words = this.#words
    if (field === PROBE_NONCE) {
      if (value < 0) words[o + FLAGS_WORD] = words[o + FLAGS_WORD]! & OWNER_FLAGS
      else {
        words[o + INT_WORD] = value | 0
        words[o + FLAGS_WORD] = words[o + FLAGS_WORD]! | PROBING
      }
    } else if (field === VERSION_SENT) words[o + INT_WORD + 1] = value | 0
    else if (field === CREATED) words[o + INT_WORD + 2] = value | 0
  }

  /** The owner's flags of a record: eight bits, 0 for a new record. */
  flags(slot: number): number {
    return this.#words[slot * RECORD_WORDS * 2 + FLAGS_WORD]! & OWNER_FLAGS
  }

  /** Sets the owner's flags (eight bits; higher bits are ignored). */
  setFlags(slot: number, flags: number): void {
    const at = slot * RECORD_WORDS * 2 + FLAGS_WORD
    this.#words[at] = (flags & OWNER_FLAGS) | (this.#words[at]! & ~OWNER_FLAGS)
  }

  /**
   * Records a probe in flight to the peer: its nonce (an unsigned 32-bit number), when it was sent,
   * and `info`, up to {@link MAX_PROBE_INFO}, that the owner keeps with it.
   */
  setProbe(slot: number, nonce: number, sentAt: number, info: number): void {
    this.#num[slot * RECORD_WORDS + PROBE_SENT_AT] = sentAt
    const o = slot * RECORD_WORDS * 2
    const words = this.#words
    words[o + INT_WORD] = nonce | 0
    words[o + FLAGS_WORD] =
      (words[o + FLAGS_WORD]! & OWNER_FLAGS) | PROBING | ((info & MAX_PROBE_INFO) << INFO_SHIFT)
  }

  /** The information kept with the probe in flight (0 when none is). */
  probeInfo(slot: number): number {
    const w = this.#words[slot * RECORD_WORDS * 2 + FLAGS_WORD]!
    return (w & PROBING) === 0 ? 0 : (w & INFO_BITS) >>> INFO_SHIFT
  }

  /** Replaces the information kept with the probe in flight; nothing when none is. */
  setProbeInfo(slot: number, info: number): void {
    const at = slot * RECORD_WORDS * 2 + FLAGS_WORD
    const w = this.#words[at]!
    if ((w & PROBING) !== 0) this.#words[at] = (w & ~INFO_BITS) | ((info & MAX_PROBE_INFO) << INFO_SHIFT)
  }

  /** Ends the probe in flight, if any: no nonce, no information. */
  clearProbe(slot: number): void {
    const at = slot * RECORD_WORDS * 2 + FLAGS_WORD
    this.#words[at] = this.#words[at]! & OWNER_FLAGS
  }

  /**
   * Shrinks the storage to 7/5 of the records when it holds more than 7/4 of them, renumbering the
   * records' slots (keeping their order). Call only between inputs: every slot number read before
   * is stale. Returns, when it renumbered, each old slot's new number (-1 for a free one), so that
   * the owner can update slots it keeps elsewhere; otherwise undefined. The gap between the two
   * ratios is wider than the swing of a settled node's spare records, so such a node does not
   * shrink and grow its storage over and over.
   */
  compact(): Int32Array | undefined {
    if (this.#slots <= INITIAL_SLOTS || this.#slots * 4 <= this.#size * 7) return undefined
    const target = Math.max(INITIAL_SLOTS, roundUp(Math.floor((this.#size * 7) / 5)))
    return target < this.#slots ? this.#resize(target) : undefined
  }

  /** Grows the storage by half, keeping every record in its slot. */
  #grow(): void {
    const old = this.#num
    const num = this.#allocate(roundUp(this.#slots + (this.#slots >> 1)))
    num.set(old)
    this.#num = num
    this.#words = new Int32Array(num.buffer)
    this.#reindex()
  }

  /** Moves the records into storage for `slots` records, in slot order, without gaps; returns the moves. */
  #resize(slots: number): Int32Array {
    const old = this.#words
    const num = this.#allocate(slots)
    const words = new Int32Array(num.buffer)
    const handles: (NodeHandle | undefined)[] = []
    const moved = new Int32Array(this.#highWater).fill(-1)
    let to = 0
    const span = RECORD_WORDS * 2
    for (let s = 0; s < this.#highWater; s++) {
      const h = this.#handles[s]
      if (h === undefined) continue
      moved[s] = to
      // Int32 word by word: a subarray per record would be garbage, and the id and integer words
      // read as doubles could be NaNs, whose bits a copy as numbers need not keep.
      for (let w = 0, from = s * span, at = to * span; w < span; w++) words[at + w] = old[from + w]!
      handles.push(h)
      to++
    }
    this.#num = num
    this.#words = words
    this.#handles = handles
    this.#free = []
    this.#highWater = to
    this.#lastId = undefined
    this.#reindex()
    return moved
  }

  /**
   * Makes storage for `slots` records and their index in one buffer (records first, then an index
   * of a power-of-two size of at least twice the slots), so that a lookup touches one allocation.
   * Returns the records' view; the caller copies the records and calls `#reindex`.
   */
  #allocate(slots: number): Float64Array {
    let size = 64
    while (size < slots * 2) size *= 2
    this.#slots = slots
    this.#mask = size - 1
    this.#indexBase = slots * RECORD_WORDS * 2
    return new Float64Array(new ArrayBuffer(slots * RECORD_WORDS * 8 + size * 4), 0, slots * RECORD_WORDS)
  }

  #reindex(): void {
    for (let s = 0; s < this.#highWater; s++) {
      const h = this.#handles[s]
      if (h !== undefined) this.#insertIndex(h.id, s)
    }
  }

  /** The index position a record's id hashes to. */
  #home(slot: number): number {
    const w = this.#words
    const o = slot * RECORD_WORDS * 2 + ID_WORD
    return (
      Math.imul(w[o + 3]! ^ Math.imul(w[o + 2]!, 0x85ebca6b) ^ Math.imul(w[o]!, 0xc2b2ae35), 0x9e3779b1) &
      this.#mask
    )
  }

  #insertIndex(id: Id, slot: number): void {
    const words = this.#words
    const base = this.#indexBase
    const mask = this.#mask
    let i = hashOf(id) & mask
    while (words[base + i] !== 0) i = (i + 1) & mask
    words[base + i] = slot + 1
  }
}
