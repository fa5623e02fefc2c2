/*
 * The runtime: one PastryNode state machine bound to a Transport, a monotonic clock and one real
 * timer. It is the only part of core that reads a clock, sets timers or draws unseeded randomness.
 *
 * Theory of operation. Every input (a frame from the transport, the timer firing, an application
 * command) runs the machine's documented driver loop (`protocol/types.ts`):
 *   1. hand the input to the machine with `now = clock()`;
 *   2. drain `pollTransmit()`: encode each message and give it to `transport.send`;
 *   3. drain `pollEvent()`: hand each event to listeners (which may issue commands; those inputs
 *      join the same loop instead of recursing);
 *   4. arm the one timer for `nextDeadline()`.
 * Nothing here throws into the transport or the timer: a bad frame, an encoding failure, a
 * transport error or a listener that throws becomes an event. Promises (`join`, `leave`, `close`)
 * reject only with typed errors, and the runtime never leaves a rejected promise unobserved.
 */
import { ConfigError, PastryError } from '../errors.js'
import type { Id } from '../id/id.js'
import { createRng, type Rng, randomId } from '../id/rng.js'
import type { ProtocolConfig } from '../protocol/config.js'
import { PastryNode } from '../protocol/node.js'
import type { ApplicationHooks, NodeEvent, NodeState } from '../protocol/types.js'
import { decodeMessage, encodeMessage } from '../wire/codec.js'
import { MessageTooLargeError } from '../wire/errors.js'
import type { NodeHandle } from '../wire/messages.js'
import { DeadlineTimer, EventListeners, monotonicClock } from './driver.js'
import {
  formatAddress,
  parseAddress,
  type Transport,
  type TransportError,
  type TransportPeer,
} from './transport.js'

/**
 * Room left in a frame for a routed message's envelope (version, type, sender handle, key, app
 * name, ids and hop count), so that `route` and `send` can refuse an oversized payload up front.
 */
const ENVELOPE_BYTES = 512

/** The longest timer the runtime sets at once; a later deadline is reached in several steps. */
const MAX_TIMER_MS = 0x7fffffff

/** Options for {@link createNode}. */
export interface CreateNodeOptions {
  /** The transport to run over, made by a transport package's factory and not yet listening. */
  readonly transport: Transport
  /** The address to bind, `host:port` (port 0 picks one). Default `127.0.0.1:0`. */
  readonly listen?: string
  /**
   * The address peers reach this node at, when it differs from the bound one (behind NAT, or when
   * binding `0.0.0.0` or `[::]`, which peers cannot use). Default: the bound address.
   */
  readonly advertise?: string
  /** This node's id. Default: drawn from `rng`. */
  readonly id?: Id
  /** The source of the protocol's random choices. Default: seeded from `crypto.getRandomValues`. */
  readonly rng?: Rng
  /** Protocol settings; see `ProtocolConfig` for every default. */
  readonly config?: Partial<ProtocolConfig>
  /** Monotonic milliseconds. Default `performance.now`. Tests may pass a controllable clock. */
  readonly clock?: () => number
}

/** Options for {@link OverlayNode.join}. */
export interface JoinOptions {
  /**
   * How long to wait for the node to become active before giving up, closing the node and
   * rejecting with {@link JoinError} `JOIN_TIMEOUT`. Default: the protocol's whole join budget
   * (`joinTimeoutMs × joinAttempts`) plus one heartbeat period.
   */
  readonly timeoutMs?: number
}

/** Why a join did not complete: `JOIN_TIMEOUT`, `JOIN_FAILED` (the protocol gave up) or `CLOSED`. */
export class JoinError extends PastryError {
  constructor(code: 'JOIN_TIMEOUT' | 'JOIN_FAILED' | 'CLOSED', message: string) {
    super(code, message)
    this.name = 'JoinError'
  }
}

/** What the runtime adds to the machine's events. */
export type RuntimeEvent =
  /** The transport reported a problem (an unreachable peer, a refused handshake, ...). */
  | { readonly type: 'transportError'; readonly error: TransportError }
  /**
   * A frame that was dropped: `code` is the wire error's when it did not decode, or
   * `SENDER_MISMATCH` when it names another sender than the node the transport's handshake
   * introduced on that connection. The node carried on.
   */
  | { readonly type: 'badFrame'; readonly code: string; readonly message: string; readonly from: string }

/** Every event an {@link OverlayNode} emits. */
export type OverlayEvent = NodeEvent | RuntimeEvent

/** The event of one type. */
export type OverlayEventOf<T extends OverlayEvent['type']> = Extract<OverlayEvent, { type: T }>

type Listener<T extends OverlayEvent['type']> = (event: OverlayEventOf<T>) => void

/** Counters kept by the runtime, for metrics. */
export interface RuntimeStats {
  framesIn: number
  framesOut: number
  bytesIn: number
  bytesOut: number
  /** Frames that failed to decode. */
  badFrames: number
  /**
   * Frames that decoded but name another node as their sender than the one the transport's
   * handshake introduced on that connection: dropped, as mangled or forged.
   */
  senderMismatches: number
  /** Messages the machine produced that could not be encoded or handed to the transport. */
  sendFailures: number
  transportErrors: number
  /** Exceptions thrown by event listeners (each also reported as an `error` event). */
  listenerErrors: number
}

/**
 * Makes a node: binds the transport and returns an {@link OverlayNode} in state `idle`. Call
 * `start()` on the first node of a new overlay, or `join([...bootstrap addresses])` on any other.
 * Rejects with the transport's `TransportError` when the address cannot be bound, or with
 * `ConfigError` for a bad option.
 */
export async function createNode(options: CreateNodeOptions): Promise<OverlayNode> {
  const clock = options.clock ?? (() => performance.now())
  const rng = options.rng ?? createRng(freshSeed())
  const id = options.id ?? randomId(rng.derive('id'))
  const listen = options.listen ?? '127.0.0.1:0'
  parseAddress(listen)
  if (options.advertise !== undefined) parseAddress(options.advertise)
  const transport = options.transport
  let node: OverlayNode | undefined
  // Frames may only arrive once listen resolves, but be safe: hold none, count them as early.
  const bound = await transport.listen({
    address: listen,
    localId: id,
    handlers: {
      message: (frame, from) => node?.[RECEIVE](frame, from),
      error: (error) => node?.[TRANSPORT_ERROR](error),
    },
  })
  let address = options.advertise ?? bound
  if (options.advertise === undefined) {
    const { host, port } = parseAddress(bound)
    if (host === '0.0.0.0' || host === '::') {
      await transport.close()
      throw new ConfigError(
        `the node is bound to ${bound}, which peers cannot reach: give an advertise address (such as ${formatAddress(host === '::' ? '::1' : '127.0.0.1', port)})`,
      )
    }
    address = bound
  }
  try {
    node = new OverlayNode(
      new PastryNode({
        id,
        address,
        rng: rng.derive('protocol'),
        ...(options.config === undefined ? {} : { config: options.config }),
      }),
      transport,
      clock,
    )
  } catch (error) {
    await transport.close()
    throw error
  }
  return node
}

const RECEIVE = Symbol('receive')
const TRANSPORT_ERROR = Symbol('transportError')

/**
 * A live Pastry node: the state machine driven over a real transport and clock. Made by
 * {@link createNode}. Commands (`route`, `send`) throw typed errors synchronously for a caller's
 * mistake; everything that happens later arrives as events (`on`).
 */
export class OverlayNode {
  /** The state machine, for reading tables (`leafSet`, `routingTable`, `neighbourhood`) and counters. */
  readonly machine: PastryNode
  /** Runtime counters; read them at any time. */
  readonly stats: RuntimeStats = {
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    badFrames: 0,
    senderMismatches: 0,
    sendFailures: 0,
    transportErrors: 0,
    listenerErrors: 0,
  }
  readonly #transport: Transport
  /** The clock, never going backwards: the machine refuses time that does. */
  readonly #now: () => number
  readonly #maxFrameBytes: number
  readonly #listeners = new EventListeners<OverlayEvent>(() => this.stats.listenerErrors++)
  readonly #timer: DeadlineTimer
  #pumping = false
  #closing: Promise<void> | undefined

  /** Use {@link createNode}. */
  constructor(machine: PastryNode, transport: Transport, clock: () => number) {
    this.machine = machine
    this.#transport = transport
    this.#now = monotonicClock(clock)
    this.#maxFrameBytes = transport.maxFrameBytes
    this.#timer = new DeadlineTimer(clock, () => this.#guarded((now) => this.machine.handleTimeout(now)))
  }

  /** This node's id. */
  get id(): Id {
    return this.machine.id
  }

  /** The address peers reach this node at. */
  get address(): string {
    return this.machine.address
  }

  /** This node's id and address, as other nodes know it. */
  get handle(): NodeHandle {
    return this.machine.handle
  }

  /** The lifecycle state; see `NodeState`. Stale as soon as the next event arrives. */
  get state(): NodeState {
    return this.machine.state
  }

  /** The transport underneath, for its own stats. */
  get transport(): Transport {
    return this.#transport
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  /** Calls `listener` for every event of `type` until `off`. Listeners must not block. */
  on<T extends OverlayEvent['type']>(type: T, listener: Listener<T>): this {
    this.#listeners.on(type, listener)
    return this
  }

  /** Stops calling `listener` for `type`. */
  off<T extends OverlayEvent['type']>(type: T, listener: Listener<T>): this {
    this.#listeners.off(type, listener)
    return this
  }

  // ---------------------------------------------------------------------------------------------
  // Commands

  /**
   * Registers an application: its `forward` hook is consulted at every hop, and its deliveries
   * arrive as `deliver` events whose `app` is `name`. Call before routing for it.
   */
  register(name: string, hooks: ApplicationHooks = {}): void {
    this.machine.register(name, hooks)
  }

  /** Makes this node the first of a new overlay: it becomes active alone, at once. */
  start(): void {
    this.#input((now) => this.machine.start(now))
  }

  /**
   * Joins the overlay through any of `bootstrap` (addresses of existing members, tried in turn).
   * Resolves when the node is active. Rejects with {@link JoinError}: `JOIN_FAILED` when the
   * protocol gives up, `JOIN_TIMEOUT` after `timeoutMs` (the node is then closed), `CLOSED` if the
   * node is closed meanwhile. Throws `IllegalStateError` if the node is not idle.
   */
  join(bootstrap: readonly string[], options: JoinOptions = {}): Promise<void> {
    for (const a of bootstrap) parseAddress(a)
    const config = this.machine.config
    const timeoutMs =
      options.timeoutMs ?? config.joinTimeoutMs * config.joinAttempts + config.leafSetHeartbeatMs
    let resolve: () => void = () => {}
    let reject: (error: JoinError) => void = () => {}
    const joined = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    const settle = (error?: JoinError) => {
      clearTimeout(timer)
      this.off('stateChanged', onState)
      this.off('joinFailed', onFailed)
      if (error === undefined) resolve()
      else reject(error)
    }
    const onState = (e: OverlayEventOf<'stateChanged'>) => {
      if (e.to === 'active') settle()
      else if (e.to === 'closed') settle(new JoinError('CLOSED', 'the node closed before it became active'))
    }
    const onFailed = (e: OverlayEventOf<'joinFailed'>) =>
      settle(new JoinError('JOIN_FAILED', `join failed: ${e.reason}`))
    this.on('stateChanged', onState)
    this.on('joinFailed', onFailed)
    const timer = setTimeout(
      () => {
        settle(
          new JoinError(
            'JOIN_TIMEOUT',
            `not active ${timeoutMs} ms after join (via ${bootstrap.join(', ')})`,
          ),
        )
        void this.close()
      },
      Math.min(timeoutMs, MAX_TIMER_MS),
    )
    try {
      this.#input((now) => this.machine.join(now, bootstrap))
    } catch (error) {
      // A caller's mistake (not idle, no bootstrap): thrown, not a rejection.
      clearTimeout(timer)
      this.off('stateChanged', onState)
      this.off('joinFailed', onFailed)
      throw error
    }
    return joined
  }

  /**
   * Routes `payload` for application `app` toward the live node numerically closest to `key`, and
   * returns the message id its `deliver` (or `routeFailed`) event will carry. When this node is
   * itself the closest to `key`, the `deliver` event fires before `route` returns. Throws
   * `IllegalStateError` unless joining or active, and `MessageTooLargeError` when the payload
   * cannot fit in one frame.
   */
  route(key: Id, app: string, payload: Uint8Array): number {
    this.#checkPayload(payload)
    let msgId = 0
    this.#input((now) => {
      msgId = this.machine.route(now, key, app, payload)
    })
    return msgId
  }

  /** Sends `payload` straight to `to` for application `app` (a `direct` event there). */
  send(to: NodeHandle, app: string, payload: Uint8Array): void {
    this.#checkPayload(payload)
    this.#input((now) => this.machine.send(now, to, app, payload))
  }

  /**
   * Leaves gracefully: tells the leaf set and routing table, hands over messages in its care,
   * lets the transport send that, and closes it. Resolves when everything is released.
   */
  async leave(): Promise<void> {
    if (this.machine.state === 'active') this.#input((now) => this.machine.leave(now))
    // Let the transport put the goodbyes on the wire before it is closed.
    await new Promise<void>((resolve) => setTimeout(resolve, 0))
    await this.close()
  }

  /**
   * Stops at once without telling anyone, as a crash would (peers notice by their timeouts), and
   * closes the transport. Resolves when the transport is released; calling it again is harmless.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing
    if (this.machine.state !== 'closed') this.#input((now) => this.machine.close(now))
    this.#timer.clear()
    this.#closing = this.#transport.close().catch((error: unknown) => {
      this.#emit({
        type: 'error',
        code: 'TRANSPORT_CLOSE',
        message: `closing the transport failed: ${String(error)}`,
      })
    })
    return this.#closing
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs from the transport

  /** A frame from the transport. */
  [RECEIVE](frame: Uint8Array, from: TransportPeer): void {
    if (this.machine.state === 'closed') return
    this.stats.framesIn++
    this.stats.bytesIn += frame.byteLength
    const decoded = decodeMessage(frame, { maxMessageBytes: this.#maxFrameBytes })
    if (!decoded.ok) {
      this.stats.badFrames++
      this.#emit({
        type: 'badFrame',
        code: decoded.error.code,
        message: decoded.error.message,
        from: from.address,
      })
      return
    }
    const sender = decoded.message.from.id
    if (from.id !== undefined && !sender.equals(from.id)) {
      // Every message names its sender, and a node only ever sends its own: a frame naming another
      // node on this connection was mangled or forged, and its handles are not to be believed.
      this.stats.senderMismatches++
      this.#emit({
        type: 'badFrame',
        code: 'SENDER_MISMATCH',
        message: `the frame names ${sender.toHex()} as its sender, on the connection of ${from.id.toHex()}`,
        from: from.address,
      })
      return
    }
    this.#guarded((now) => this.machine.handleMessage(now, decoded.message))
  }

  /** An error from the transport. */
  [TRANSPORT_ERROR](error: TransportError): void {
    this.stats.transportErrors++
    this.#emit({ type: 'transportError', error })
  }

  // ---------------------------------------------------------------------------------------------
  // The driver loop

  /** Runs a command: its error (a caller's mistake) reaches the caller. */
  #input(command: (now: number) => void): void {
    command(this.#now())
    this.#pump()
  }

  /** Runs an input the node did not ask for: an error becomes an event, never a throw. */
  #guarded(input: (now: number) => void): void {
    try {
      input(this.#now())
    } catch (error) {
      this.#emit({ type: 'error', code: 'INTERNAL', message: `input failed: ${describe(error)}` })
    }
    this.#pump()
  }

  #pump(): void {
    if (this.#pumping) return
    this.#pumping = true
    try {
      let busy = true
      while (busy) {
        busy = false
        for (let t = this.machine.pollTransmit(); t !== undefined; t = this.machine.pollTransmit()) {
          busy = true
          this.#send(t.to, t.message)
        }
        for (let e = this.machine.pollEvent(); e !== undefined; e = this.machine.pollEvent()) {
          busy = true
          this.#emit(e)
        }
      }
    } finally {
      this.#pumping = false
    }
    this.#arm()
  }

  #send(to: string, message: Parameters<typeof encodeMessage>[0]): void {
    try {
      const frame = encodeMessage(message, { maxMessageBytes: this.#maxFrameBytes })
      this.#transport.send(to, frame)
      this.stats.framesOut++
      this.stats.bytesOut += frame.byteLength
    } catch (error) {
      // An unencodable message or an address the transport refuses: the protocol's acks and
      // probes treat it as a lost frame.
      this.stats.sendFailures++
      this.#emit({
        type: 'error',
        code: error instanceof PastryError ? error.code : 'SEND_FAILED',
        message: `could not send ${message.type} to ${to}: ${describe(error)}`,
      })
    }
  }

  #emit(event: OverlayEvent): void {
    this.#listeners.emit(event)
  }

  #arm(): void {
    this.#timer.set(this.machine.state === 'closed' ? undefined : this.machine.nextDeadline())
  }

  #checkPayload(payload: Uint8Array): void {
    if (!(payload instanceof Uint8Array)) throw new TypeError('a payload must be a Uint8Array')
    if (payload.byteLength > this.#maxFrameBytes - ENVELOPE_BYTES) {
      throw new MessageTooLargeError(payload.byteLength + ENVELOPE_BYTES, this.#maxFrameBytes)
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** A fresh random seed for a node that was given no rng. */
function freshSeed(): string {
  const words = new Uint32Array(4)
  globalThis.crypto.getRandomValues(words)
  return Array.from(words, (w) => w.toString(16).padStart(8, '0')).join('')
}
