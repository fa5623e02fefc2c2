/*
 * Theory of operation
 *
 * A `MemoryNetwork` is a switch in one process. Every transport it makes can reach every other by
 * address, with no sockets, so a runtime can be tested over a real `Transport` quickly and with
 * faults under the test's control.
 *
 * Addresses are `host:port` like everywhere else; any host will do (`mem:0`, `10.0.0.1:4000`). Port 0
 * takes the next port on that host that nobody holds, counting up from 1 and wrapping at 65535, so
 * a port that was just released is not handed out again at once. An address is held from `listen`
 * until `close`; a second `listen` on it rejects with `LISTEN_FAILED`.
 *
 * `send` checks its arguments, copies the frame, and queues the copy on the link from the sender to
 * the transport that holds the address now. Links deliver asynchronously, never inside `send`: on
 * the next `setImmediate` turn, or after `latencyMs` (plus a jitter below `jitterMs`) on a timer.
 * A link delivers in order: per-pair FIFO holds even under jitter, because a frame is never due
 * before the one ahead of it. Each link holds at most `maxQueuedFrames`; one more is dropped and
 * reported as `BACKPRESSURE`. A link holds a timer only while it has frames queued, so nothing
 * keeps the event loop alive once the traffic has drained or every transport is closed.
 *
 * What happens to a frame, in the order it is decided:
 *   1. blocked by a partition between sender and address: dropped silently, like a real partition
 *      (the protocol notices by its own timeouts). It is checked again on delivery, so a partition
 *      also drops frames already in flight;
 *   2. nobody listening at the address: dropped, `UNREACHABLE` error event;
 *   3. lost: dropped silently with probability `loss`;
 *   4. link full: dropped, `BACKPRESSURE` error event;
 *   5. otherwise queued, and delivered unless an end closes first. Frames in flight to a transport
 *      that closes are dropped, and each sender gets one `CONNECTION_LOST` error event for its link
 *      (as a TCP sender would learn that its connection broke). Frames queued by a sender that
 *      closes are dropped quietly.
 *
 * Randomness (loss, jitter) comes from the injected `rng`: each transport derives its own stream
 * from its listen address, and draws from it in the order of its own sends, so a seed replays the
 * same losses whatever the interleaving between senders.
 *
 * Error events are queued per transport and handed over on a later turn, never after `close`.
 */
import {
  ConfigError,
  DEFAULT_MAX_MESSAGE_BYTES,
  formatAddress,
  type Id,
  type ListenOptions,
  parseAddress,
  type Rng,
  type Transport,
  TransportError,
  type TransportHandlers,
} from '@pastry/core'

/** How many frames a link (one sender toward one address) holds before `BACKPRESSURE`, by default. */
export const DEFAULT_MAX_QUEUED_FRAMES = 1024

/** The most sender-to-address pairs that {@link MemoryNetwork.partition} can block at once. */
export const MAX_BLOCKED_PAIRS = 1 << 20

/** Error events a transport holds for its next turn; more in one turn are counted and dropped. */
export const MAX_PENDING_ERRORS = 4096

const MAX_PORT = 65535

/** Options for a {@link MemoryNetwork}; they apply to every transport it makes. */
export interface MemoryNetworkOptions {
  /** The largest frame `send` accepts, in bytes. Defaults to core's `DEFAULT_MAX_MESSAGE_BYTES`. */
  readonly maxFrameBytes?: number
  /** Frames queued from one sender toward one address before `BACKPRESSURE`. Default 1024. */
  readonly maxQueuedFrames?: number
  /** One-way delay of every frame, in ms. Default 0: delivered on the next `setImmediate` turn. */
  readonly latencyMs?: number
  /** An extra delay drawn uniformly from [0, jitterMs) per frame. Needs `rng`. Default 0. */
  readonly jitterMs?: number
  /** The probability, in [0, 1], that a frame is lost silently. Needs `rng`. Default 0. */
  readonly loss?: number
  /** Seeded randomness for loss and jitter, e.g. `createRng(seed).derive('net')`. */
  readonly rng?: Rng
}

/** Per-transport overrides for {@link MemoryNetwork.createTransport}. */
export interface MemoryTransportOptions {
  readonly maxFrameBytes?: number
  readonly maxQueuedFrames?: number
}

/** Options for {@link MemoryNetwork.partition}. */
export interface MemoryPartitionOptions {
  /** Block only traffic from the first side to the second (an asymmetric partition). */
  readonly oneWay?: boolean
}

/**
 * Counters over the network's life. Every frame `send` accepted ends in exactly one of the
 * outcomes, so `framesSent` = `framesDelivered + lost + partitioned + unreachable + backpressure +
 * droppedOnClose + inFlight`.
 */
export interface MemoryNetworkStats {
  /** Transports holding an address now. */
  readonly listening: number
  /** Frames that `send` accepted (it did not throw). */
  readonly framesSent: number
  readonly bytesSent: number
  /** Frames handed to a receiver's `message` handler. */
  readonly framesDelivered: number
  readonly bytesDelivered: number
  /** Dropped by the loss model. */
  readonly lost: number
  /** Dropped by a partition, at send or on delivery. */
  readonly partitioned: number
  /** Dropped because nobody listened at the address (`UNREACHABLE`). */
  readonly unreachable: number
  /** Dropped because the link was full (`BACKPRESSURE`). */
  readonly backpressure: number
  /** Dropped while in flight because the sender or the receiver closed. */
  readonly droppedOnClose: number
  /** Queued now, not yet delivered or dropped. */
  readonly inFlight: number
  /** Error events dropped because a transport already had {@link MAX_PENDING_ERRORS} pending. */
  readonly errorsSuppressed: number
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/**
 * A switch in one process that in-memory transports connect through: the transport for runtime
 * tests, with latency, seeded loss and partitions under the test's control. Make one per test, then
 * make a transport per node with {@link MemoryNetwork.createTransport}. See the theory of operation
 * at the top of this file for what happens to each frame.
 */
export class MemoryNetwork {
  readonly #fabric: Fabric

  /** Throws `ConfigError` for an option out of range, or for loss or jitter without an `rng`. */
  constructor(options: MemoryNetworkOptions = {}) {
    this.#fabric = new Fabric(options)
  }

  /**
   * A new transport on this network (kind `memory`), not yet listening. Call it once per node;
   * then `listen`, `send` and `close` it like any other transport.
   */
  createTransport(options: MemoryTransportOptions = {}): Transport {
    const maxFrameBytes = options.maxFrameBytes ?? this.#fabric.maxFrameBytes
    const maxQueuedFrames = options.maxQueuedFrames ?? this.#fabric.maxQueuedFrames
    positiveInteger('maxFrameBytes', maxFrameBytes)
    positiveInteger('maxQueuedFrames', maxQueuedFrames)
    return new MemoryTransport(this.#fabric, maxFrameBytes, maxQueuedFrames)
  }

  /**
   * Blocks traffic between every address in `a` and every address in `b`, both ways unless
   * `oneWay` (then only from `a` to `b`). Frames across the cut, including those already in
   * flight, are dropped silently. Call it at any time, before or after the addresses are bound;
   * it lasts until {@link MemoryNetwork.heal}. Throws `BAD_ADDRESS` for a malformed address and
   * `ConfigError` past {@link MAX_BLOCKED_PAIRS} blocked pairs.
   */
  partition(
    a: string | readonly string[],
    b: string | readonly string[],
    options: MemoryPartitionOptions = {},
  ): void {
    const left = addressList(a)
    const right = addressList(b)
    const fabric = this.#fabric
    for (const x of left) {
      for (const y of right) {
        if (x === y) continue
        fabric.block(x, y)
        if (options.oneWay !== true) fabric.block(y, x)
      }
    }
  }

  /**
   * Lifts partitions: with no arguments, all of them; otherwise those between `a` and `b`, in both
   * directions. Frames dropped while the partition stood are not replayed.
   */
  heal(a?: string | readonly string[], b?: string | readonly string[]): void {
    const fabric = this.#fabric
    if (a === undefined || b === undefined) {
      if (a !== undefined || b !== undefined) throw new ConfigError('heal takes both sides or neither')
      fabric.blocked.clear()
      return
    }
    for (const x of addressList(a)) {
      for (const y of addressList(b)) {
        fabric.blocked.delete(pairKey(x, y))
        fabric.blocked.delete(pairKey(y, x))
      }
    }
  }

  /** Whether a frame from `from` to `to` would be dropped by a partition now. */
  isBlocked(from: string, to: string): boolean {
    return this.#fabric.isBlocked(canonical(from), canonical(to))
  }

  /** A snapshot of the counters; stale as soon as anything sends, delivers or closes. */
  get stats(): MemoryNetworkStats {
    return {
      ...this.#fabric.stats,
      listening: this.#fabric.bound.size,
      inFlight: this.#fabric.framesInFlight,
    }
  }

  /**
   * Resolves once no frame is in flight and no error event is pending: every frame sent so far has
   * been delivered (its handler has returned) or dropped. Await it after a burst of sends, instead
   * of sleeping. Stale as soon as anything sends again; never resolves while handlers keep
   * answering each other.
   */
  idle(): Promise<void> {
    return this.#fabric.idle()
  }
}

// ---------------------------------------------------------------------------------------------
// The switch.

class Fabric {
  readonly maxFrameBytes: number
  readonly maxQueuedFrames: number
  readonly latencyMs: number
  readonly jitterMs: number
  readonly loss: number
  readonly rng: Rng | undefined
  /** Canonical address → the transport holding it (binding or listening). */
  readonly bound = new Map<string, MemoryTransport>()
  /** Host → the next port to try for port 0. */
  readonly nextPort = new Map<string, number>()
  /** `from to` pairs (space-separated; hosts cannot hold spaces) that a partition blocks. */
  readonly blocked = new Set<string>()
  readonly stats: Mutable<Omit<MemoryNetworkStats, 'listening' | 'inFlight'>> = {
    framesSent: 0,
    bytesSent: 0,
    framesDelivered: 0,
    bytesDelivered: 0,
    lost: 0,
    partitioned: 0,
    unreachable: 0,
    backpressure: 0,
    droppedOnClose: 0,
    errorsSuppressed: 0,
  }
  framesInFlight = 0
  errorsPending = 0
  readonly #idleWaiters: (() => void)[] = []

  constructor(options: MemoryNetworkOptions) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.maxQueuedFrames = options.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES
    this.latencyMs = options.latencyMs ?? 0
    this.jitterMs = options.jitterMs ?? 0
    this.loss = options.loss ?? 0
    this.rng = options.rng
    positiveInteger('maxFrameBytes', this.maxFrameBytes)
    positiveInteger('maxQueuedFrames', this.maxQueuedFrames)
    for (const [name, value] of [
      ['latencyMs', this.latencyMs],
      ['jitterMs', this.jitterMs],
    ] as const) {
      if (!Number.isFinite(value) || value < 0) throw new ConfigError(`${name} must be ≥ 0, got ${value}`)
    }
    if (!(this.loss >= 0 && this.loss <= 1)) throw new ConfigError(`loss must be in [0, 1], got ${this.loss}`)
    if ((this.loss > 0 || this.jitterMs > 0) && this.rng === undefined) {
      throw new ConfigError('loss and jitterMs draw from a seeded rng: pass `rng` (e.g. createRng(seed))')
    }
  }

  get timed(): boolean {
    return this.latencyMs > 0 || this.jitterMs > 0
  }

  /** Reserves an address for `t`, choosing the port when it is 0. Throws `LISTEN_FAILED`. */
  bind(t: MemoryTransport, host: string, port: number): string {
    if (port !== 0) {
      const address = formatAddress(host, port)
      const holder = this.bound.get(address)
      if (holder !== undefined) {
        throw new TransportError('LISTEN_FAILED', `${address} is already bound by another transport`, address)
      }
      this.bound.set(address, t)
      return address
    }
    let p = this.nextPort.get(host) ?? 1
    for (let tries = 0; tries < MAX_PORT; tries++) {
      const address = formatAddress(host, p)
      p = p === MAX_PORT ? 1 : p + 1
      if (!this.bound.has(address)) {
        this.nextPort.set(host, p)
        this.bound.set(address, t)
        return address
      }
    }
    throw new TransportError('LISTEN_FAILED', `no free port left on host ${host}`)
  }

  release(t: MemoryTransport, address: string): void {
    if (this.bound.get(address) === t) this.bound.delete(address)
  }

  block(from: string, to: string): void {
    const key = pairKey(from, to)
    if (this.blocked.has(key)) return
    if (this.blocked.size >= MAX_BLOCKED_PAIRS) {
      throw new ConfigError(`a partition may block at most ${MAX_BLOCKED_PAIRS} address pairs`)
    }
    this.blocked.add(key)
  }

  isBlocked(from: string, to: string): boolean {
    return this.blocked.size > 0 && this.blocked.has(pairKey(from, to))
  }

  /** Takes a frame that passed `send`'s checks from `from` (listening) toward `to` (canonical). */
  transmit(from: MemoryTransport, to: string, frame: Uint8Array): void {
    const stats = this.stats
    stats.framesSent++
    stats.bytesSent += frame.byteLength
    if (this.isBlocked(from.address, to)) {
      stats.partitioned++
      return
    }
    const receiver = this.bound.get(to)
    if (receiver === undefined || receiver.state !== 'listening') {
      stats.unreachable++
      from.raise(new TransportError('UNREACHABLE', `nobody is listening at ${to}`, to))
      return
    }
    const rng = from.rng
    if (this.loss > 0 && rng !== undefined && rng.float() < this.loss) {
      stats.lost++
      return
    }
    let link = from.outgoing.get(receiver)
    if (link === undefined) {
      link = new Link(from, receiver)
      from.outgoing.set(receiver, link)
      receiver.incoming.add(link)
    }
    if (link.size >= from.maxQueuedFrames) {
      stats.backpressure++
      from.raise(
        new TransportError('BACKPRESSURE', `${from.maxQueuedFrames} frames already queued toward ${to}`, to),
      )
      return
    }
    let dueMs = 0
    if (this.timed) {
      const jitter = this.jitterMs > 0 && rng !== undefined ? rng.float() * this.jitterMs : 0
      dueMs = Math.max(performance.now() + this.latencyMs + jitter, link.lastDueMs)
      link.lastDueMs = dueMs
    }
    // The copy is what makes the caller free to reuse its buffer once send returns.
    link.push(frame.slice(), dueMs)
    this.framesInFlight++
    this.schedule(link)
  }

  schedule(link: Link): void {
    if (link.timer !== undefined || link.size === 0) return
    if (this.timed) {
      const waitMs = Math.max(0, link.headDueMs - performance.now())
      link.timer = { kind: 'timeout', handle: setTimeout(() => this.drain(link), waitMs) }
    } else {
      link.timer = { kind: 'immediate', handle: setImmediate(() => this.drain(link)) }
    }
  }

  /** Delivers the frames due on `link`, but none that were queued during this call. */
  drain(link: Link): void {
    link.timer = undefined
    const { from, to } = link
    const count = link.size
    const nowMs = this.timed ? performance.now() : 0
    try {
      for (let i = 0; i < count && !link.dead; i++) {
        // The timer was set for the head, and may fire a little early: the head goes regardless.
        if (i > 0 && link.headDueMs > nowMs) break
        const frame = link.shift()
        this.framesInFlight--
        if (this.isBlocked(from.address, to.address)) {
          this.stats.partitioned++
          continue
        }
        this.stats.framesDelivered++
        this.stats.bytesDelivered += frame.byteLength
        to.deliver(frame, from)
      }
    } finally {
      if (!link.dead) {
        if (link.size > 0) this.schedule(link)
        else link.detach()
      }
      this.checkIdle()
    }
  }

  idle(): Promise<void> {
    if (this.framesInFlight === 0 && this.errorsPending === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  checkIdle(): void {
    if (this.framesInFlight !== 0 || this.errorsPending !== 0 || this.#idleWaiters.length === 0) return
    for (const resolve of this.#idleWaiters.splice(0)) resolve()
  }
}

/** The frames queued from one sender toward one receiving transport, in order. */
class Link {
  readonly from: MemoryTransport
  readonly to: MemoryTransport
  #frames: Uint8Array[] = []
  #dueMs: number[] = []
  #head = 0
  lastDueMs = 0
  timer:
    | { readonly kind: 'timeout'; readonly handle: ReturnType<typeof setTimeout> }
    | { readonly kind: 'immediate'; readonly handle: ReturnType<typeof setImmediate> }
    | undefined
  dead = false

  constructor(from: MemoryTransport, to: MemoryTransport) {
    this.from = from
    this.to = to
  }

  get size(): number {
    return this.#frames.length - this.#head
  }

  get headDueMs(): number {
    return this.#dueMs[this.#head] ?? 0
  }

  push(frame: Uint8Array, dueMs: number): void {
    this.#frames.push(frame)
    this.#dueMs.push(dueMs)
  }

  shift(): Uint8Array {
    const frame = this.#frames[this.#head]!
    this.#head++
    if (this.#head === this.#frames.length) {
      this.#frames = []
      this.#dueMs = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head)
      this.#dueMs = this.#dueMs.slice(this.#head)
      this.#head = 0
    }
    return frame
  }

  /** Unhooks an empty link from both ends; the next send makes a new one. */
  detach(): void {
    this.dead = true
    this.stopTimer()
    if (this.from.outgoing.get(this.to) === this) this.from.outgoing.delete(this.to)
    this.to.incoming.delete(this)
  }

  /** Drops every queued frame and unhooks the link; returns how many were dropped. */
  discard(): number {
    const dropped = this.size
    this.#frames = []
    this.#dueMs = []
    this.#head = 0
    this.detach()
    return dropped
  }

  stopTimer(): void {
    const timer = this.timer
    this.timer = undefined
    if (timer?.kind === 'timeout') clearTimeout(timer.handle)
    else if (timer?.kind === 'immediate') clearImmediate(timer.handle)
  }
}

// ---------------------------------------------------------------------------------------------
// The transport.

type State = 'new' | 'binding' | 'listening' | 'closed'

class MemoryTransport implements Transport {
  readonly kind = 'memory'
  readonly maxFrameBytes: number
  readonly maxQueuedFrames: number
  readonly #fabric: Fabric
  state: State = 'new'
  /** The bound address, once `listen` has bound it. */
  address = ''
  localId: Id | undefined
  rng: Rng | undefined
  #handlers: TransportHandlers | undefined
  /** Links from this transport, by receiving transport. */
  readonly outgoing = new Map<MemoryTransport, Link>()
  /** Links toward this transport. */
  readonly incoming = new Set<Link>()
  #errors: TransportError[] = []
  #errorTimer: ReturnType<typeof setImmediate> | undefined

  constructor(fabric: Fabric, maxFrameBytes: number, maxQueuedFrames: number) {
    this.#fabric = fabric
    this.maxFrameBytes = maxFrameBytes
    this.maxQueuedFrames = maxQueuedFrames
  }

  async listen(options: ListenOptions): Promise<string> {
    if (this.state === 'closed') throw new TransportError('CLOSED', 'listen after close')
    if (this.state !== 'new') throw new TransportError('LISTEN_FAILED', 'listen was already called')
    const { host, port } = parseAddress(options.address)
    const address = this.#fabric.bind(this, host, port)
    this.state = 'binding'
    this.address = address
    this.localId = options.localId
    this.#handlers = options.handlers
    // Resolve on a later microtask, so that a `send` made before the caller sees the address
    // throws NOT_LISTENING, as on a real transport.
    await Promise.resolve()
    if ((this.state as State) === 'closed') throw new TransportError('CLOSED', 'closed while listening')
    this.state = 'listening'
    this.rng = this.#fabric.rng?.derive(`send:${address}`)
    return address
  }

  send(to: string, frame: Uint8Array): void {
    if (this.state === 'closed') throw new TransportError('CLOSED', 'send after close', to)
    if (this.state !== 'listening')
      throw new TransportError('NOT_LISTENING', 'send before listen resolved', to)
    const address = canonical(to)
    if (!(frame instanceof Uint8Array)) throw new TypeError('a frame must be a Uint8Array')
    if (frame.byteLength > this.maxFrameBytes) {
      throw new TransportError(
        'FRAME_TOO_LARGE',
        `a frame of ${frame.byteLength} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`,
        address,
      )
    }
    this.#fabric.transmit(this, address, frame)
  }

  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve()
    const fabric = this.#fabric
    this.state = 'closed'
    if (this.address !== '') fabric.release(this, this.address)
    for (const link of [...this.outgoing.values()]) {
      const dropped = link.discard()
      fabric.framesInFlight -= dropped
      fabric.stats.droppedOnClose += dropped
    }
    for (const link of [...this.incoming]) {
      const dropped = link.discard()
      fabric.framesInFlight -= dropped
      fabric.stats.droppedOnClose += dropped
      if (dropped > 0) {
        link.from.raise(
          new TransportError(
            'CONNECTION_LOST',
            `${this.address} closed; ${dropped} frame(s) in flight to it were dropped`,
            this.address,
          ),
        )
      }
    }
    if (this.#errorTimer !== undefined) clearImmediate(this.#errorTimer)
    this.#errorTimer = undefined
    fabric.errorsPending -= this.#errors.length
    this.#errors = []
    this.#handlers = undefined
    fabric.checkIdle()
    return Promise.resolve()
  }

  /** Hands a frame to the message handler; the fabric calls it only while this transport listens. */
  deliver(frame: Uint8Array, from: MemoryTransport): void {
    const handlers = this.#handlers
    if (this.state !== 'listening' || handlers === undefined) return
    handlers.message(
      frame,
      from.localId === undefined ? { address: from.address } : { address: from.address, id: from.localId },
    )
  }

  /** Queues an error event for a later turn; dropped if this transport closes first. */
  raise(error: TransportError): void {
    if (this.state === 'closed') return
    if (this.#errors.length >= MAX_PENDING_ERRORS) {
      this.#fabric.stats.errorsSuppressed++
      return
    }
    this.#errors.push(error)
    this.#fabric.errorsPending++
    this.#errorTimer ??= setImmediate(() => this.#flushErrors())
  }

  #flushErrors(): void {
    this.#errorTimer = undefined
    const errors = this.#errors
    this.#errors = []
    const fabric = this.#fabric
    fabric.errorsPending -= errors.length
    try {
      for (const error of errors) {
        // A handler may close this transport; the errors after that are dropped.
        const handlers = this.#handlers
        if (this.state === 'closed' || handlers === undefined) break
        handlers.error(error)
      }
    } finally {
      fabric.checkIdle()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/** The one spelling of an address that the network keys by. Throws `BAD_ADDRESS`. */
function canonical(address: string): string {
  const { host, port } = parseAddress(address)
  return formatAddress(host, port)
}

function addressList(side: string | readonly string[]): string[] {
  return (typeof side === 'string' ? [side] : side).map(canonical)
}

function pairKey(from: string, to: string): string {
  return `${from} ${to}`
}

function positiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`${name} must be a positive integer, got ${value}`)
  }
}
