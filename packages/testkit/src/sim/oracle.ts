/*
 * Theory of operation
 *
 * The oracle is the simulation's global view of the truth, against which nodes are checked.
 *
 * Membership. A node is *live* when it is not crashed and reports itself `active`. The simulator
 * tells the oracle whenever that changes (`add`, `remove`). The live ids are kept sorted, with their
 * node indexes, in a chunked list (sorted-ids.ts): O(log N) to find, O(√N)-ish to insert or remove,
 * so adding 10^5 nodes one by one stays fast.
 *
 * Questions answered by binary search over the sorted ids:
 * - `closestLive(key)`: the first id ≥ key and the one before it (wrapping) are the only candidates;
 *   `compareDistance` (ring distance, then the smaller id) picks one, exactly as Pastry's own rule.
 * - `trueLeafSet(index, L)`: the L/2 live neighbours on each side of the node's position, nearest
 *   first. With fewer than L others, a node sits in both halves, as in core's `LeafSet`.
 *
 * Lookups. Every `route()` the simulator issues becomes a lookup record, found again by (origin node,
 * msgId) when a `deliver` event names them. Records are columns of typed arrays (key, origin, times,
 * first deliverer, hops, delivery count, verdict), about 40 bytes per lookup plus its key, and are
 * bounded by `maxLookups`. A delivery is *correct* when the delivering node is `closestLive(key)` at
 * that moment. Further deliveries of one lookup count as duplicates; a delivery by an active node that
 * is not the closest counts as incorrect; one by a node that is not active is a consistency breach of
 * its own kind. A lookup never delivered is lost.
 */
import { ConfigError, type Id, type Rng } from '@pastry/core'
import { SortedIds } from './sorted-ids.js'

/** One lookup issued through the simulator's `route()`, as the oracle saw it. */
export interface LookupRecord {
  readonly key: Id
  /** The node index the lookup was issued at. */
  readonly from: number
  /** The id the origin gave the message. */
  readonly msgId: number
  /** Virtual time of the `route()` call. */
  readonly issuedAt: number
  /** Every node index that delivered it, in order; empty when lost so far. */
  readonly deliveredAt: readonly number[]
  /** Virtual time of the first delivery. */
  readonly deliveryTime: number | undefined
  /** Hops of the first delivery. */
  readonly hops: number | undefined
  /** Whether the first delivery was at the closest live node at that moment. */
  readonly correct: boolean | undefined
  /** True when the origin reported a `routeFailed` for it. */
  readonly failed: boolean
}

/** Totals over every lookup, and over every `deliver` event seen. */
export interface LookupSummary {
  /** Lookups issued through the simulator's `route()`. */
  readonly issued: number
  /** Lookups delivered at least once. */
  readonly delivered: number
  /** Lookups whose first delivery was at the closest live node. */
  readonly correct: number
  /** Deliveries (first or not) by an active node that was not the closest live node. */
  readonly incorrect: number
  /** Deliveries of a lookup after its first. */
  readonly duplicates: number
  /** Deliveries by a node that was not active: a consistency breach. */
  readonly byInactive: number
  /** Lookups never delivered (so far). */
  readonly lost: number
  /** Lookups the origin reported as failed (`routeFailed`). */
  readonly failed: number
  /** `deliver` events that match no lookup issued through the simulator. */
  readonly untracked: number
  /** Lookups sent again by their origin (`retry`), each counted once. */
  readonly retried: number
  /** Lookups whose first delivery was of a copy sent again, not of the first one. */
  readonly deliveredByRetry: number
}

/** A node whose leaf set differs from the true one. */
export interface LeafSetMismatch {
  readonly index: number
  /** Ids in the true leaf set that the node lacks. */
  readonly missing: readonly Id[]
  /** Ids the node holds that are not in the true leaf set. */
  readonly extra: readonly Id[]
}

/** The true leaf set of a node: nearest first on each side. */
export interface TrueLeafSet {
  /** Clockwise (larger ids) neighbours. */
  readonly cw: readonly Id[]
  /** Counter-clockwise neighbours. */
  readonly ccw: readonly Id[]
}

/** {@link Oracle.recordDelivery}'s answer for a `deliver` event that matches no lookup. */
export const DELIVERY_UNTRACKED = -1
/** {@link Oracle.recordDelivery}'s answer for a later delivery of a lookup already delivered. */
export const DELIVERY_DUPLICATE = -2

/** The default bound on lookup records. */
export const DEFAULT_MAX_LOOKUPS = 1 << 24

/**
 * The simulation's global truth: live membership, the closest live node to a key, true leaf sets,
 * and the verdict on every lookup. The simulator owns one (`sim.oracle`) and keeps it current; read
 * it at any time between events. Answers are stale as soon as the simulation runs on.
 */
export class Oracle {
  readonly #idOf: (index: number) => Id
  readonly #sorted: SortedIds
  #live = new Uint8Array(64)
  // Lookup columns.
  readonly maxLookups: number
  #n = 0
  #keys: Id[] = []
  #from = new Int32Array(64)
  #msgId = new Float64Array(64)
  #issuedAt = new Float64Array(64)
  #firstAt = new Int32Array(64)
  #deliveryTime = new Float64Array(64)
  #hops = new Int32Array(64)
  #count = new Int32Array(64)
  /** 0 unknown, 1 correct, 2 incorrect. */
  #verdict = new Uint8Array(64)
  #failed = new Uint8Array(64)
  #extra = new Map<number, number[]>()
  #byOrigin: (Map<number, number> | undefined)[] = []
  // Totals.
  #delivered = 0
  #correct = 0
  #incorrect = 0
  #duplicates = 0
  #byInactive = 0
  #failedCount = 0
  #untracked = 0
  #deliveredByRetry = 0
  /** Lookups sent again at least once; their retry msgIds are in `#byOrigin` too. */
  readonly #wasRetried = new Set<number>()

  /**
   * Makes an empty oracle. `idOf` gives the id of any node index ever added; the simulator passes
   * its own table. `maxLookups` bounds the lookup records (default 2^24); `chunkSize` tunes the live
   * set's chunks (default 512; tests make it small to exercise splitting).
   */
  constructor(
    idOf: (index: number) => Id,
    options: { readonly maxLookups?: number; readonly chunkSize?: number } = {},
  ) {
    this.#idOf = idOf
    const maxLookups = options.maxLookups ?? DEFAULT_MAX_LOOKUPS
    this.#sorted = new SortedIds(options.chunkSize)
    if (!Number.isInteger(maxLookups) || maxLookups < 0)
      throw new ConfigError(`maxLookups must be an integer ≥ 0, got ${maxLookups}`)
    this.maxLookups = maxLookups
  }

  // -----------------------------------------------------------------------------------------
  // Membership

  /** Live (not crashed, active) nodes. */
  get liveCount(): number {
    return this.#sorted.size
  }

  /** True when node `index` is live. */
  isLive(index: number): boolean {
    return index >= 0 && index < this.#live.length && this.#live[index] === 1
  }

  /** Marks node `index` live. The simulator calls it when a node becomes active; a no-op if live. */
  add(index: number): void {
    if (this.isLive(index)) return
    if (index >= this.#live.length) {
      const live = new Uint8Array(Math.max(index + 1, this.#live.length * 2))
      live.set(this.#live)
      this.#live = live
    }
    const id = this.#idOf(index)
    const other = this.#sorted.insert(id, index)
    if (other >= 0) throw new ConfigError(`node ${index} has id ${id.toHex()}, already live as node ${other}`)
    this.#live[index] = 1
  }

  /** Marks node `index` not live. The simulator calls it on crash, close or leaving `active`. */
  remove(index: number): void {
    if (!this.isLive(index)) return
    this.#sorted.remove(this.#idOf(index))
    this.#live[index] = 0
  }

  /** The live node indexes, sorted by id. A fresh array; stale once membership changes. */
  liveIndexes(): number[] {
    return this.#sorted.indexes()
  }

  /** A uniformly random live node index drawn from `rng`, or undefined when none is live. */
  randomLive(rng: Rng): number | undefined {
    return this.#sorted.random(rng)
  }

  /**
   * The index of the live node numerically closest to `key` (Pastry's tie rule), or undefined when
   * none is live. O(log N). Stale once membership changes.
   */
  closestLive(key: Id): number | undefined {
    return this.#sorted.closest(key)
  }

  /**
   * The true leaf set of node `index` (live or not) for leaf-set size `leafSetSize`: the L/2 nearest
   * live nodes on each side, itself excluded. Call it to check one node; stale once membership
   * changes.
   */
  trueLeafSet(index: number, leafSetSize: number): TrueLeafSet {
    if (!Number.isInteger(leafSetSize) || leafSetSize < 2 || leafSetSize % 2 !== 0)
      throw new ConfigError(`the leaf-set size must be an even integer ≥ 2, got ${leafSetSize}`)
    return this.#sorted.neighbours(this.#idOf(index), leafSetSize / 2)
  }

  /**
   * Compares every live node's leaf set, as `getLeafSet` reports it (members of both halves, in any
   * order; undefined to skip the node), with the true one. Call it at a checkpoint, typically after
   * a healed phase; returns the mismatches, empty when every leaf set is right.
   */
  checkLeafSets(
    getLeafSet: (index: number) => readonly Id[] | undefined,
    leafSetSize: number,
  ): LeafSetMismatch[] {
    const out: LeafSetMismatch[] = []
    for (const index of this.#sorted.indexes()) {
      const reported = getLeafSet(index)
      if (reported === undefined) continue
      const t = this.trueLeafSet(index, leafSetSize)
      const want = dedupSorted([...t.cw, ...t.ccw])
      const have = dedupSorted([...reported])
      const missing: Id[] = []
      const extra: Id[] = []
      let i = 0
      let j = 0
      while (i < want.length || j < have.length) {
        const c = i === want.length ? 1 : j === have.length ? -1 : want[i]!.compare(have[j]!)
        if (c === 0) {
          i++
          j++
        } else if (c < 0) missing.push(want[i++]!)
        else extra.push(have[j++]!)
      }
      if (missing.length > 0 || extra.length > 0) out.push({ index, missing, extra })
    }
    return out
  }

  // -----------------------------------------------------------------------------------------
  // Lookups

  /** Lookups recorded. */
  get lookupCount(): number {
    return this.#n
  }

  /**
   * Records a lookup issued at node `from` with the origin's `msgId`. The simulator calls it from
   * `route()`; returns the lookup's number. Throws ConfigError past `maxLookups`.
   */
  issue(from: number, msgId: number, key: Id, now: number): number {
    const k = this.#n
    if (k >= this.maxLookups) throw new ConfigError(`more than maxLookups = ${this.maxLookups} lookups`)
    if (k === this.#from.length) this.#growLookups()
    this.#n++
    this.#keys.push(key)
    this.#from[k] = from
    this.#msgId[k] = msgId
    this.#issuedAt[k] = now
    this.#firstAt[k] = -1
    this.#deliveryTime[k] = Number.NaN
    this.#hops[k] = -1
    let m = this.#byOrigin[from]
    if (m === undefined) {
      m = new Map()
      this.#byOrigin[from] = m
    }
    m.set(msgId, k)
    return k
  }

  /**
   * Records a lookup issued at node `from` of another shard, whose msgId this oracle learns only
   * if the lookup reaches one of its nodes ({@link bind}). Returns the lookup's number.
   */
  issueElsewhere(from: number, key: Id, now: number): number {
    const k = this.issue(from, Number.NaN, key, now)
    this.#byOrigin[from]!.delete(Number.NaN)
    return k
  }

  /** Ties message `msgId` of node `from` to lookup `k` (issued here or elsewhere); a no-op if tied. */
  bind(k: number, from: number, msgId: number): void {
    if (!Number.isInteger(k) || k < 0 || k >= this.#n) throw new ConfigError(`no lookup ${k}`)
    let m = this.#byOrigin[from]
    if (m === undefined) {
      m = new Map()
      this.#byOrigin[from] = m
    }
    if (!m.has(msgId)) m.set(msgId, k)
    if (Number.isNaN(this.#msgId[k]!)) this.#msgId[k] = msgId
  }

  /**
   * Records that the origin of lookup `k` sent it again, as a new message `msgId` from node `from`:
   * a delivery of either copy is a delivery of lookup `k` (the second one a duplicate). The
   * simulator calls it from `route()` with `retryOf`.
   */
  retry(k: number, from: number, msgId: number): void {
    if (!Number.isInteger(k) || k < 0 || k >= this.#n) throw new ConfigError(`no lookup ${k}`)
    let m = this.#byOrigin[from]
    if (m === undefined) {
      m = new Map()
      this.#byOrigin[from] = m
    }
    m.set(msgId, k)
    this.#wasRetried.add(k)
  }

  /** The lookup issued at `from` with `msgId`, or undefined. */
  findLookup(from: number, msgId: number): number | undefined {
    return this.#byOrigin[from]?.get(msgId)
  }

  /**
   * Judges one `deliver` event for `key`: made at node `at` (active or not) for the message `msgId`
   * of origin node `origin` (-1 when unknown). The simulator calls it for every `deliver` event.
   * Returns the lookup number on its first delivery, or {@link DELIVERY_UNTRACKED} or
   * {@link DELIVERY_DUPLICATE}.
   */
  recordDelivery(
    at: number,
    atActive: boolean,
    origin: number,
    msgId: number,
    key: Id,
    now: number,
    hops: number,
  ): number {
    const k = origin >= 0 ? this.#byOrigin[origin]?.get(msgId) : undefined
    let verdict = 0
    if (!atActive) this.#byInactive++
    else {
      verdict = this.closestLive(key) === at ? 1 : 2
      if (verdict === 2) this.#incorrect++
    }
    if (k === undefined) {
      this.#untracked++
      return DELIVERY_UNTRACKED
    }
    const count = ++this.#count[k]!
    if (count > 1) {
      this.#duplicates++
      let list = this.#extra.get(k)
      if (list === undefined) {
        list = []
        this.#extra.set(k, list)
      }
      list.push(at)
      return DELIVERY_DUPLICATE
    }
    this.#delivered++
    if (msgId !== this.#msgId[k]) this.#deliveredByRetry++
    this.#firstAt[k] = at
    this.#deliveryTime[k] = now
    this.#hops[k] = hops
    this.#verdict[k] = verdict === 0 ? 2 : verdict
    if (verdict === 1) this.#correct++
    return k
  }

  /** Notes that origin node `origin` gave up on `msgId` (a `routeFailed` event). */
  recordFailure(origin: number, msgId: number): void {
    const k = this.#byOrigin[origin]?.get(msgId)
    if (k === undefined || this.#failed[k] === 1) return
    this.#failed[k] = 1
    this.#failedCount++
  }

  /** Lookup number `k` as a record. Built on each call; stale once the simulation runs on. */
  lookup(k: number): LookupRecord {
    if (!Number.isInteger(k) || k < 0 || k >= this.#n) throw new ConfigError(`no lookup ${k}`)
    const first = this.#firstAt[k]!
    const deliveredAt = first < 0 ? [] : [first, ...(this.#extra.get(k) ?? [])]
    const v = this.#verdict[k]!
    return {
      key: this.#keys[k]!,
      from: this.#from[k]!,
      msgId: this.#msgId[k]!,
      issuedAt: this.#issuedAt[k]!,
      deliveredAt,
      deliveryTime: first < 0 ? undefined : this.#deliveryTime[k]!,
      hops: first < 0 ? undefined : this.#hops[k]!,
      correct: v === 0 ? undefined : v === 1,
      failed: this.#failed[k] === 1,
    }
  }

  /** Totals over all lookups so far. `lost` counts every lookup not yet delivered. */
  summary(): LookupSummary {
    return {
      issued: this.#n,
      delivered: this.#delivered,
      correct: this.#correct,
      incorrect: this.#incorrect,
      duplicates: this.#duplicates,
      byInactive: this.#byInactive,
      lost: this.#n - this.#delivered,
      failed: this.#failedCount,
      untracked: this.#untracked,
      retried: this.#wasRetried.size,
      deliveredByRetry: this.#deliveredByRetry,
    }
  }

  #growLookups(): void {
    const cap = this.#from.length * 2
    const grow = <T extends Int32Array | Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap)
      b.set(a)
      return b
    }
    this.#from = grow(this.#from, (n) => new Int32Array(n))
    this.#msgId = grow(this.#msgId, (n) => new Float64Array(n))
    this.#issuedAt = grow(this.#issuedAt, (n) => new Float64Array(n))
    this.#firstAt = grow(this.#firstAt, (n) => new Int32Array(n))
    this.#deliveryTime = grow(this.#deliveryTime, (n) => new Float64Array(n))
    this.#hops = grow(this.#hops, (n) => new Int32Array(n))
    this.#count = grow(this.#count, (n) => new Int32Array(n))
    this.#verdict = grow(this.#verdict, (n) => new Uint8Array(n))
    this.#failed = grow(this.#failed, (n) => new Uint8Array(n))
  }
}

function dedupSorted(ids: Id[]): Id[] {
  ids.sort((a, b) => a.compare(b))
  const out: Id[] = []
  for (const id of ids) if (out.length === 0 || !out[out.length - 1]!.equals(id)) out.push(id)
  return out
}
