/*
 * The runtime binding: one PubSubMachine driven over a live OverlayNode, a monotonic clock and one
 * real timer, the way core's runtime drives PastryNode.
 *
 * Theory of operation. Every input (a `deliver`, `direct`, `update` or `nodeFailed` event of the
 * node, the forward upcall, the timer, an application command) runs the machine's driver loop:
 *   1. hand the input to the machine with `now = clock()`;
 *   2. perform the `route` and `send` calls the machine made, which the host only queued;
 *   3. drain `pollEvent()`: settle promises, call subscription handlers and listeners (which may
 *      issue commands; those join the same loop instead of recursing);
 *   4. arm the one timer for `nextDeadline()`.
 * The forward upcall runs inside core's routing step, so what the machine asks for there is
 * performed on a microtask, after core has finished. Nothing throws into the node: a machine or
 * listener failure becomes an `error` event. `publish` returns a promise whose rejection is marked
 * handled, so an unobserved failure never becomes an unhandled rejection.
 */
import {
  DeadlineTimer,
  EventListeners,
  type ForwardDecision,
  type Id,
  monotonicClock,
  type NodeHandle,
  type OverlayEventOf,
  type OverlayNode,
} from '@pastry/core'
import type { PubSubConfig } from './config.js'
import { PubSubError } from './errors.js'
import { type PubSubEvent, PubSubMachine } from './machine.js'

/** Options for {@link createPubSub}. */
export interface CreatePubSubOptions {
  /** The application name the node multiplexes pubsub under (at most 64 UTF-8 bytes). Default `pubsub`. */
  readonly app?: string
  /** Protocol settings; see {@link PubSubConfig} for every default. */
  readonly config?: Partial<PubSubConfig>
  /**
   * This node's publisher incarnation. It must grow when a node restarts with the same id.
   * Default: the wall clock in whole seconds at creation.
   */
  readonly epoch?: number
  /** Monotonic milliseconds. Default `performance.now`. */
  readonly clock?: () => number
}

/** A message delivered to a subscription's handler. */
export interface PubSubMessage {
  readonly type: 'message'
  readonly topic: string
  /** The publishing node. */
  readonly publisher: NodeHandle
  readonly epoch: number
  /** Its per-(publisher, topic) sequence number, from 1 in each epoch. */
  readonly seq: number
  readonly data: Uint8Array
}

/** Messages `fromSeq..toSeq` of `publisher` that this subscription will never receive. */
export interface PubSubGap {
  readonly type: 'gap'
  readonly topic: string
  readonly publisher: NodeHandle
  readonly epoch: number
  readonly fromSeq: number
  readonly toSeq: number
}

/** What a handler receives: each message once and in order per publisher, or an explicit gap. */
export type PubSubDelivery = PubSubMessage | PubSubGap

/** Options for {@link PubSub.subscribe}. */
export interface SubscribeOptions {
  /**
   * Whether this member takes an anycast: called synchronously with its data and requester; return
   * true to take it. It must only decide (no pubsub calls). Without it, this subscription declines.
   */
  readonly onAnycast?: (data: Uint8Array, requester: NodeHandle) => boolean
}

/** A live subscription. */
export interface Subscription {
  readonly topic: string
  /** Stops this handler. The node leaves the topic's tree when its last subscription goes. Idempotent. */
  unsubscribe(): void
}

/** What a successful publish resolves with. */
export interface Published {
  readonly topic: string
  /** The publishing node's id. */
  readonly publisher: Id
  readonly epoch: number
  readonly seq: number
}

/** How an anycast ended: taken by a member (`by`), or by nobody (`accepted: false`). */
export type AnycastResult =
  | { readonly accepted: true; readonly by: NodeHandle }
  | { readonly accepted: false; readonly by: undefined }

/** Every event a {@link PubSub} emits: the machine's. */
export type PubSubEventOf<T extends PubSubEvent['type']> = Extract<PubSubEvent, { type: T }>

type Listener<T extends PubSubEvent['type']> = (event: PubSubEventOf<T>) => void

type Op =
  | { readonly kind: 'route'; readonly key: Id; readonly payload: Uint8Array }
  | { readonly kind: 'send'; readonly to: NodeHandle; readonly payload: Uint8Array }

/**
 * Starts pubsub on a node: registers the pubsub application with it (its forward upcall included)
 * and listens to its events. Call it once per node, before or after the node joins; subscriptions
 * made before the node is active take effect when it is (the SUBSCRIBE is retried). Throws
 * `ConfigError` for a bad setting.
 */
export function createPubSub(node: OverlayNode, options: CreatePubSubOptions = {}): PubSub {
  return new PubSub(node, options)
}

/** The "Peter" pub/sub API over one overlay node. Made by {@link createPubSub}. */
export class PubSub {
  /** The state machine, for getters (`topics`, `childrenOf`, `parentOf`, `isRoot`) and `stats`. */
  readonly machine: PubSubMachine
  readonly node: OverlayNode
  readonly app: string
  /** Runtime counters: host calls dropped while the node could not route or send, listener errors. */
  readonly runtimeStats = { droppedOps: 0, opFailures: 0, listenerErrors: 0 }
  /** The clock, never going backwards. */
  readonly #now: () => number
  readonly #ops: Op[] = []
  readonly #subs = new Map<string, Set<SubscriptionImpl>>()
  readonly #listeners = new EventListeners<PubSubEvent>(() => this.runtimeStats.listenerErrors++)
  readonly #publishes = new Map<
    string,
    { resolve: (p: Published) => void; reject: (e: PubSubError) => void }
  >()
  readonly #anycasts = new Map<number, (r: AnycastResult) => void>()
  #pumping = false
  #inMachine = false
  #microtask = false
  #closed = false
  readonly #timer: DeadlineTimer
  readonly #nodeListeners: { type: string; fn: (e: never) => void }[] = []

  /** Use {@link createPubSub}. */
  constructor(node: OverlayNode, options: CreatePubSubOptions = {}) {
    this.node = node
    this.app = options.app ?? 'pubsub'
    const clock = options.clock ?? (() => performance.now())
    this.#now = monotonicClock(clock)
    this.#timer = new DeadlineTimer(clock, () => this.#guarded((now) => this.machine.handleTimeout(now)))
    this.machine = new PubSubMachine({
      host: {
        handle: node.handle,
        route: (_now, key, payload) => void this.#ops.push({ kind: 'route', key, payload }),
        send: (_now, to, payload) => void this.#ops.push({ kind: 'send', to, payload }),
        proximity: (id) => node.machine.rttTo(id),
      },
      ...(options.config === undefined ? {} : { config: options.config }),
      epoch: options.epoch ?? Math.floor(Date.now() / 1000),
      accept: (topic, data, requester) => this.#accept(topic, data, requester),
    })
    node.register(this.app, { forward: (message, next) => this.#forward(message, next) })
    this.#listen('deliver', (e) => {
      if (e.app === this.app) this.#guarded((now) => this.machine.handleDeliver(now, e))
    })
    this.#listen('direct', (e) => {
      if (e.app === this.app) this.#guarded((now) => this.machine.handleDirect(now, e.payload, e.from))
    })
    this.#listen('update', (e) => this.#guarded((now) => this.machine.handleUpdate(now, e.node, e.joined)))
    this.#listen('nodeFailed', (e) => this.#guarded((now) => this.machine.handleNodeFailed(now, e.node)))
    this.#listen('stateChanged', (e) => {
      if (e.to === 'closed') this.close()
    })
    if (node.state === 'closed') this.close()
  }

  // ---------------------------------------------------------------------------------------------
  // The API

  /**
   * Calls `handler` with every message published on `topic` from now on (each exactly once, in
   * order per publisher), and with a `gap` for any run of messages it will never get. Joins the
   * topic's tree on the first subscription. Throws `PubSubError` (`BAD_TOPIC`, `TOO_MANY_TOPICS`,
   * `CLOSED`, `REENTRANT` from inside `onAnycast`).
   */
  subscribe(
    topic: string,
    handler: (delivery: PubSubDelivery) => void,
    options: SubscribeOptions = {},
  ): Subscription {
    if (typeof handler !== 'function') throw new TypeError('a handler must be a function')
    this.#command((now) => this.machine.subscribe(now, topic))
    const sub = new SubscriptionImpl(topic, handler, options.onAnycast, () => this.#unsubscribe(sub))
    let set = this.#subs.get(topic)
    if (set === undefined) this.#subs.set(topic, (set = new Set()))
    set.add(sub)
    return sub
  }

  /**
   * Publishes `data` on `topic`. Resolves with its `{ publisher, seq }` once the topic's root has
   * it (the message is then in the tree); rejects with `PubSubError` `PUBLISH_FAILED` when every
   * attempt went unanswered, or `CLOSED`. Throws for a caller's mistake (`BAD_TOPIC`, `BAD_DATA`,
   * `DATA_TOO_LARGE`, `OVERLOADED`, `CLOSED`).
   */
  publish(topic: string, data: Uint8Array): Promise<Published> {
    let seq = 0
    let epoch = 0
    let promise: Promise<Published> | undefined
    this.#command((now) => {
      const r = this.machine.publish(now, topic, data)
      seq = r.seq
      epoch = r.epoch
      promise = new Promise<Published>((resolve, reject) => {
        this.#publishes.set(pubKey(topic, epoch, seq), { resolve, reject })
      })
      // Marked handled: a caller that ignores the promise never sees an unhandled rejection.
      promise.catch(() => {})
    })
    return promise!
  }

  /**
   * Sends `data` to one member of `topic` that accepts it (see `SubscribeOptions.onAnycast`), found
   * depth first through the tree. Resolves with the member, or `accepted: false` when none took it
   * in time. Never rejects; throws for a caller's mistake.
   */
  anycast(topic: string, data: Uint8Array): Promise<AnycastResult> {
    let promise: Promise<AnycastResult> | undefined
    this.#command((now) => {
      const id = this.machine.anycast(now, topic, data)
      promise = new Promise<AnycastResult>((resolve) => this.#anycasts.set(id, resolve))
    })
    return promise!
  }

  /** Calls `listener` for every event of `type` until `off`. Listeners must not block. */
  on<T extends PubSubEvent['type']>(type: T, listener: Listener<T>): this {
    this.#listeners.on(type, listener)
    return this
  }

  /** Stops calling `listener` for `type`. */
  off<T extends PubSubEvent['type']>(type: T, listener: Listener<T>): this {
    this.#listeners.off(type, listener)
    return this
  }

  /**
   * Stops pubsub on this node: tells parents and children when the node can still send (so the
   * trees repair at once), fails pending publishes with `CLOSED`, settles pending anycasts
   * unaccepted, and releases the timer and the node's listeners. Called by itself when the node
   * closes. Idempotent.
   */
  close(): void {
    if (this.#closed) return
    const graceful = this.node.state === 'active'
    this.#guarded((now) => this.machine.close(now, graceful))
    this.#closed = true
    this.#timer.clear()
    for (const { type, fn } of this.#nodeListeners) this.node.off(type as 'deliver', fn as () => void)
    this.#nodeListeners.length = 0
    for (const p of this.#publishes.values()) p.reject(new PubSubError('CLOSED', 'pubsub closed'))
    this.#publishes.clear()
    for (const r of this.#anycasts.values()) r({ accepted: false, by: undefined })
    this.#anycasts.clear()
  }

  // ---------------------------------------------------------------------------------------------
  // The driver loop

  #listen<T extends 'deliver' | 'direct' | 'update' | 'nodeFailed' | 'stateChanged'>(
    type: T,
    fn: (e: OverlayEventOf<T>) => void,
  ): void {
    this.node.on(type, fn)
    this.#nodeListeners.push({ type, fn: fn as (e: never) => void })
  }

  /** An application command: a caller's mistake is thrown to the caller. */
  #command(run: (now: number) => void): void {
    if (this.#inMachine) throw new PubSubError('REENTRANT', 'pubsub commands cannot be called from onAnycast')
    if (this.#closed) throw new PubSubError('CLOSED', 'pubsub is closed')
    this.#inMachine = true
    try {
      run(this.#now())
    } finally {
      this.#inMachine = false
    }
    this.#pump()
  }

  /** An input nobody asked for: a failure becomes an error event. */
  #guarded(run: (now: number) => void): void {
    if (this.#closed) return
    this.#inMachine = true
    try {
      run(this.#now())
    } catch (error) {
      this.#emit({ type: 'error', code: 'INTERNAL', message: `pubsub input failed: ${describe(error)}` })
    } finally {
      this.#inMachine = false
    }
    this.#pump()
  }

  #forward(message: Parameters<PubSubMachine['handleForward']>[1], next: NodeHandle): ForwardDecision {
    if (this.#closed || this.#inMachine) return { action: 'continue' }
    let decision: ForwardDecision = { action: 'continue' }
    this.#inMachine = true
    try {
      decision = this.machine.handleForward(this.#now(), message, next)
    } catch (error) {
      this.#emit({ type: 'error', code: 'INTERNAL', message: `pubsub forward failed: ${describe(error)}` })
    } finally {
      this.#inMachine = false
    }
    // Core is in the middle of routing: perform what the machine asked for once it is done.
    if (!this.#microtask) {
      this.#microtask = true
      queueMicrotask(() => {
        this.#microtask = false
        this.#pump()
      })
    }
    return decision
  }

  #pump(): void {
    if (this.#pumping) return
    this.#pumping = true
    try {
      for (;;) {
        const op = this.#ops.shift()
        if (op !== undefined) {
          this.#perform(op)
          continue
        }
        const e = this.machine.pollEvent()
        if (e === undefined) break
        this.#dispatch(e)
      }
    } finally {
      this.#pumping = false
    }
    this.#arm()
  }

  #perform(op: Op): void {
    const state = this.node.state
    if (
      this.#closed ||
      state === 'closed' ||
      state === 'idle' ||
      (op.kind === 'route' && state === 'leaving')
    ) {
      this.runtimeStats.droppedOps++
      return
    }
    try {
      if (op.kind === 'route') this.node.route(op.key, this.app, op.payload)
      else this.node.send(op.to, this.app, op.payload)
    } catch (error) {
      this.runtimeStats.opFailures++
      this.#emit({
        type: 'error',
        code: 'SEND_FAILED',
        message: `pubsub could not ${op.kind}: ${describe(error)}`,
      })
    }
  }

  #dispatch(e: PubSubEvent): void {
    switch (e.type) {
      case 'message':
      case 'gap': {
        const subs = this.#subs.get(e.topic)
        if (subs !== undefined) {
          for (const sub of [...subs]) {
            if (!sub.active) continue
            try {
              sub.handler(e)
            } catch (error) {
              this.runtimeStats.listenerErrors++
              this.#emit({
                type: 'error',
                code: 'LISTENER_FAILED',
                message: `a ${e.type} handler threw: ${describe(error)}`,
              })
            }
          }
        }
        break
      }
      case 'published':
      case 'publishFailed': {
        const key = pubKey(e.topic, e.epoch, e.seq)
        const p = this.#publishes.get(key)
        if (p !== undefined) {
          this.#publishes.delete(key)
          if (e.type === 'published')
            p.resolve({ topic: e.topic, publisher: this.node.id, epoch: e.epoch, seq: e.seq })
          else
            p.reject(
              new PubSubError(
                e.reason === 'closed' ? 'CLOSED' : 'PUBLISH_FAILED',
                `publish ${e.seq} on ${e.topic}: ${e.reason}`,
              ),
            )
        }
        break
      }
      case 'anycastDone': {
        const r = this.#anycasts.get(e.anycastId)
        if (r !== undefined) {
          this.#anycasts.delete(e.anycastId)
          r(
            e.accepted && e.by !== undefined
              ? { accepted: true, by: e.by }
              : { accepted: false, by: undefined },
          )
        }
        break
      }
      default:
        break
    }
    this.#emit(e)
  }

  #emit(e: PubSubEvent): void {
    this.#listeners.emit(e)
  }

  #accept(topic: string, data: Uint8Array, requester: NodeHandle): boolean {
    const subs = this.#subs.get(topic)
    if (subs === undefined) return false
    for (const sub of subs) {
      if (!sub.active || sub.onAnycast === undefined) continue
      try {
        if (sub.onAnycast(data, requester)) return true
      } catch (error) {
        this.runtimeStats.listenerErrors++
        // Reported after the machine's step, as an event of its own.
        queueMicrotask(() =>
          this.#emit({
            type: 'error',
            code: 'LISTENER_FAILED',
            message: `an onAnycast threw: ${describe(error)}`,
          }),
        )
      }
    }
    return false
  }

  #unsubscribe(sub: SubscriptionImpl): void {
    const set = this.#subs.get(sub.topic)
    if (set === undefined || !set.delete(sub)) return
    if (set.size > 0) return
    this.#subs.delete(sub.topic)
    if (!this.#closed) this.#command((now) => this.machine.unsubscribe(now, sub.topic))
  }

  #arm(): void {
    if (this.#closed) return
    this.#timer.set(this.machine.nextDeadline())
  }
}

class SubscriptionImpl implements Subscription {
  readonly topic: string
  readonly handler: (delivery: PubSubDelivery) => void
  readonly onAnycast: ((data: Uint8Array, requester: NodeHandle) => boolean) | undefined
  active = true
  readonly #stop: () => void

  constructor(
    topic: string,
    handler: (delivery: PubSubDelivery) => void,
    onAnycast: ((data: Uint8Array, requester: NodeHandle) => boolean) | undefined,
    stop: () => void,
  ) {
    this.topic = topic
    this.handler = handler
    this.onAnycast = onAnycast
    this.#stop = stop
  }

  unsubscribe(): void {
    if (!this.active) return
    this.active = false
    this.#stop()
  }
}

function pubKey(topic: string, epoch: number, seq: number): string {
  return `${epoch}/${seq}\n${topic}`
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
