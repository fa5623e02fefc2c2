/*
 * Theory of operation
 *
 * A one-writer, one-reader queue of records of float64 words in a SharedArrayBuffer: how one
 * simulator shard hands messages to another running in another thread.
 *
 * Layout: a 64-byte control block of int32 counters, then `capacity` float64 words (a power of
 * two). The writer owns `WRITE` and the reader owns `READ`; both count words since the start and
 * wrap at 2^32 (`>>> 0`), and a word's place is its count modulo the capacity, so a record may
 * run past the end of the storage and continue at its start. A record is one word holding its
 * length n, then n words.
 *
 * Order: the writer stores a record's words, then publishes it with `Atomics.store` on `WRITE`;
 * the reader loads `WRITE` with `Atomics.load` before reading the words it covers, and frees them
 * with `Atomics.store` on `READ`. Atomics are sequentially consistent in JavaScript, so a reader
 * that sees a count sees every word written before it.
 *
 * A full ring refuses a record (`tryWrite` returns false); the writer must then let the reader
 * catch up. A shard that waits for space also reads its own inbox, so two shards that write to
 * each other cannot both wait forever.
 */

const WRITE = 0
const READ = 1
const CONTROL_BYTES = 64

/** The bytes a ring of `capacity` words needs. */
export function ringBytes(capacity: number): number {
  return CONTROL_BYTES + 8 * capacity
}

/** One end of a ring: `tryWrite` on the writer's side, `read` on the reader's. */
export class WordRing {
  readonly capacity: number
  readonly #control: Int32Array
  readonly #words: Float64Array
  readonly #mask: number

  /**
   * Views `ringBytes(capacity)` bytes of `buffer` from `byteOffset` (a multiple of 8) as a ring;
   * `capacity` must be a power of two ≥ 2.
   */
  constructor(buffer: SharedArrayBuffer, capacity: number, byteOffset = 0) {
    if (
      !Number.isInteger(capacity) ||
      capacity < 2 ||
      (capacity & (capacity - 1)) !== 0 ||
      capacity > 2 ** 28
    )
      throw new RangeError(`ring capacity must be a power of two in [2, 2^28], got ${capacity}`)
    if (buffer.byteLength - byteOffset < ringBytes(capacity) || byteOffset % 8 !== 0)
      throw new RangeError(
        `a ring of ${capacity} words needs ${ringBytes(capacity)} bytes from an offset that is a multiple of 8, got ${buffer.byteLength - byteOffset} from ${byteOffset}`,
      )
    this.capacity = capacity
    this.#mask = capacity - 1
    this.#control = new Int32Array(buffer, byteOffset, CONTROL_BYTES / 4)
    this.#words = new Float64Array(buffer, byteOffset + CONTROL_BYTES, capacity)
  }

  /** Words written and not yet read. */
  get used(): number {
    return (Atomics.load(this.#control, WRITE) - Atomics.load(this.#control, READ)) >>> 0
  }

  /**
   * Appends `words[0 .. n)` as one record. Returns false, writing nothing, when the ring lacks room
   * for it now; throws when it could never hold it.
   */
  tryWrite(words: Float64Array, n: number): boolean {
    if (n + 1 > this.capacity)
      throw new RangeError(`a record of ${n} words cannot fit a ring of ${this.capacity}`)
    const control = this.#control
    const w = Atomics.load(control, WRITE) >>> 0
    const r = Atomics.load(control, READ) >>> 0
    if (this.capacity - ((w - r) >>> 0) < n + 1) return false
    const mask = this.#mask
    const store = this.#words
    store[w & mask] = n
    const start = (w + 1) & mask
    if (start + n <= this.capacity) store.set(words.subarray(0, n), start)
    else {
      const first = this.capacity - start
      store.set(words.subarray(0, first), start)
      store.set(words.subarray(first, n), 0)
    }
    Atomics.store(control, WRITE, (w + n + 1) | 0)
    return true
  }

  /**
   * Takes the oldest record into `into` (grown when too small: the array used is returned through
   * {@link lastRecord}) and returns its length, or -1 when the ring is empty.
   */
  read(): number {
    const control = this.#control
    const r = Atomics.load(control, READ) >>> 0
    const w = Atomics.load(control, WRITE) >>> 0
    if (w === r) return -1
    const mask = this.#mask
    const store = this.#words
    const n = store[r & mask]!
    if (this.#record.length < n) this.#record = new Float64Array(Math.max(n, this.#record.length * 2))
    const into = this.#record
    const start = (r + 1) & mask
    if (start + n <= this.capacity) into.set(store.subarray(start, start + n))
    else {
      const first = this.capacity - start
      into.set(store.subarray(start, this.capacity))
      into.set(store.subarray(0, n - first), first)
    }
    Atomics.store(control, READ, (r + n + 1) | 0)
    return n
  }

  #record = new Float64Array(256)

  /** The words of the record {@link read} took last (valid until the next `read`). */
  get lastRecord(): Float64Array {
    return this.#record
  }
}
