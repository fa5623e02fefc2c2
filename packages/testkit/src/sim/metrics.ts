/*
 * Theory of operation
 *
 * Counters the simulator bumps as it runs, and the summary it reports from them.
 *
 * Messages are counted per type in arrays indexed by wire type code, at four points: sent (every
 * transmission a node hands out, with its bytes), dropped by loss, dropped by a partition, and
 * arrived or vanished at the destination. Types fall in three classes:
 * - application: `route`, `ack`, `direct`;
 * - join: `join`, `joinRows`, `joinReply`, `announce`, `announceAck`;
 * - maintenance: every other type (heartbeats, probes, leaf-set and row exchange, leave).
 *
 * Maintenance rate. "Messages per node per second" divides the maintenance messages sent in a window
 * by the node-seconds lived in it: the simulator integrates the number of alive nodes over virtual
 * time (updated only when that number changes). `beginWindow` starts a window; by default it opens
 * at time 0.
 *
 * Hops and RDP. The simulator records the hops of each lookup's first delivery in a histogram, and
 * its relative delay penalty: the sum of link delays along the path the message took (see the flow
 * tracking in simulator.ts) over the direct latency from origin to the delivering node. RDP samples
 * are one float per delivered lookup, bounded with the lookups.
 */
import { MESSAGE_TYPE_SLOTS, MESSAGE_TYPES, MESSAGES, type MessageType } from '@pastry/core'
import type { Distribution } from '../static-experiment.js'

/** The class of a message type for traffic accounting. */
export type TrafficClass = 'application' | 'join' | 'maintenance'

const JOIN_TYPES: readonly MessageType[] = ['join', 'joinRows', 'joinReply', 'announce', 'announceAck']
const APP_TYPES: readonly MessageType[] = ['route', 'ack', 'direct']

/** The traffic class of a message type, as the report counts it. Call it to classify counts of your own. */
export function trafficClass(type: MessageType): TrafficClass {
  return APP_TYPES.includes(type) ? 'application' : JOIN_TYPES.includes(type) ? 'join' : 'maintenance'
}

const NAME_OF_CODE: (MessageType | undefined)[] = new Array(MESSAGE_TYPE_SLOTS).fill(undefined)
for (const t of MESSAGE_TYPES) NAME_OF_CODE[MESSAGES[t].code] = t
const CLASS_OF_CODE: (TrafficClass | undefined)[] = NAME_OF_CODE.map((t) =>
  t === undefined ? undefined : trafficClass(t),
)

/** Message counts, as {@link SimReport} prints them. */
export interface MessageReport {
  /** Messages sent (handed out by nodes), all types. */
  readonly total: number
  /** Sent per node ever added. */
  readonly perNode: number
  /** Bytes sent, all types: real frame bytes with `encode`, else {@link messageSize}'s count. */
  readonly bytes: number
  readonly byType: Record<string, number>
  readonly bytesByType: Record<string, number>
  /** Dropped by random loss. */
  readonly lost: number
  /** Dropped by a partition. */
  readonly partitioned: number
  /** Extra copies made by duplication. */
  readonly duplicated: number
  /** Arrived at a crashed, closed or unknown address, and vanished. */
  readonly vanished: number
}

/** A sample's summary with its maximum and a histogram by integer value. */
export interface HopsReport extends Distribution {
  readonly max: number
  readonly histogram: number[]
}

/** Counters kept by the simulator. Read them through the simulator's `report()`. */
export class SimMetrics {
  readonly sent = new Float64Array(MESSAGE_TYPE_SLOTS)
  readonly sentBytes = new Float64Array(MESSAGE_TYPE_SLOTS)
  readonly arrived = new Float64Array(MESSAGE_TYPE_SLOTS)
  readonly lost = new Float64Array(MESSAGE_TYPE_SLOTS)
  readonly partitioned = new Float64Array(MESSAGE_TYPE_SLOTS)
  readonly duplicated = new Float64Array(MESSAGE_TYPE_SLOTS)
  readonly vanished = new Float64Array(MESSAGE_TYPE_SLOTS)
  /** Nodes told to join. */
  joins = 0
  // Node-time integral.
  #alive = 0
  #aliveSince = 0
  #nodeMs = 0
  // Window.
  #windowStart = 0
  #windowNodeMs = 0
  #windowMaintenance = 0
  // Hops and RDP.
  readonly #hopHistogram: number[] = []
  #hopCount = 0
  #hopSum = 0
  #hopMax = 0
  #rdp = new Float64Array(256)
  #rdpCount = 0

  /** Call whenever the number of alive nodes changes, with the new number. */
  setAlive(now: number, alive: number): void {
    this.#nodeMs += this.#alive * (now - this.#aliveSince)
    this.#alive = alive
    this.#aliveSince = now
  }

  /** Node-milliseconds lived up to `now`. */
  nodeMs(now: number): number {
    return this.#nodeMs + this.#alive * (now - this.#aliveSince)
  }

  /** Starts the maintenance-rate window at `now`. */
  beginWindow(now: number): void {
    this.#windowStart = now
    this.#windowNodeMs = this.nodeMs(now)
    this.#windowMaintenance = this.#classTotal('maintenance')
  }

  /** Maintenance messages sent per alive node per second since the window began. */
  maintenancePerNodePerSec(now: number): number {
    const nodeSec = (this.nodeMs(now) - this.#windowNodeMs) / 1000
    return nodeSec > 0 ? (this.#classTotal('maintenance') - this.#windowMaintenance) / nodeSec : 0
  }

  /** The two terms of {@link maintenancePerNodePerSec}: messages, and node-ms, since the window began. */
  windowTotals(now: number): { readonly maintenance: number; readonly nodeMs: number } {
    return {
      maintenance: this.#classTotal('maintenance') - this.#windowMaintenance,
      nodeMs: this.nodeMs(now) - this.#windowNodeMs,
    }
  }

  /** When the window began. */
  get windowStart(): number {
    return this.#windowStart
  }

  /** Records the hops of a lookup's first delivery. */
  recordHops(hops: number): void {
    this.#hopHistogram[hops] = (this.#hopHistogram[hops] ?? 0) + 1
    this.#hopCount++
    this.#hopSum += hops
    if (hops > this.#hopMax) this.#hopMax = hops
  }

  /** Records one lookup's relative delay penalty. */
  recordRdp(rdp: number): void {
    if (this.#rdpCount === this.#rdp.length) {
      const b = new Float64Array(this.#rdp.length * 2)
      b.set(this.#rdp)
      this.#rdp = b
    }
    this.#rdp[this.#rdpCount++] = rdp
  }

  /** Hop statistics of first deliveries. */
  hops(): HopsReport {
    const histogram: number[] = []
    for (let h = 0; h < this.#hopHistogram.length; h++) histogram.push(this.#hopHistogram[h] ?? 0)
    const at = (q: number) => {
      if (this.#hopCount === 0) return 0
      const rank = Math.ceil(q * this.#hopCount)
      let seen = 0
      for (let h = 0; h < histogram.length; h++) {
        seen += histogram[h]!
        if (seen >= rank) return h
      }
      return histogram.length - 1
    }
    return {
      mean: this.#hopCount === 0 ? 0 : this.#hopSum / this.#hopCount,
      p50: at(0.5),
      p99: at(0.99),
      max: this.#hopMax,
      histogram,
    }
  }

  /** The RDP samples so far, in the order recorded (a copy). */
  rdpSamples(): Float64Array {
    return this.#rdp.slice(0, this.#rdpCount)
  }

  /** RDP statistics over delivered lookups not delivered at their origin. */
  rdp(): Distribution {
    const n = this.#rdpCount
    if (n === 0) return { mean: 0, p50: 0, p99: 0 }
    const sorted = this.#rdp.slice(0, n).sort()
    let sum = 0
    for (let i = 0; i < n; i++) sum += sorted[i]!
    const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!
    return { mean: sum / n, p50: at(0.5), p99: at(0.99) }
  }

  /** Messages sent of one traffic class. */
  classTotal(cls: TrafficClass): number {
    return this.#classTotal(cls)
  }

  /** The message counts as a report; `nodes` is the number of nodes ever added. */
  messages(nodes: number): MessageReport {
    const byType: Record<string, number> = {}
    const bytesByType: Record<string, number> = {}
    let total = 0
    let bytes = 0
    let lost = 0
    let partitioned = 0
    let duplicated = 0
    let vanished = 0
    for (let c = 0; c < MESSAGE_TYPE_SLOTS; c++) {
      const name = NAME_OF_CODE[c]
      if (name === undefined) continue
      total += this.sent[c]!
      bytes += this.sentBytes[c]!
      lost += this.lost[c]!
      partitioned += this.partitioned[c]!
      duplicated += this.duplicated[c]!
      vanished += this.vanished[c]!
      if (this.sent[c]! > 0) {
        byType[name] = this.sent[c]!
        bytesByType[name] = this.sentBytes[c]!
      }
    }
    return {
      total,
      perNode: nodes === 0 ? 0 : total / nodes,
      bytes,
      byType,
      bytesByType,
      lost,
      partitioned,
      duplicated,
      vanished,
    }
  }

  #classTotal(cls: TrafficClass): number {
    let n = 0
    for (let c = 0; c < MESSAGE_TYPE_SLOTS; c++) if (CLASS_OF_CODE[c] === cls) n += this.sent[c]!
    return n
  }
}
