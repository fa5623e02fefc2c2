/*
 * A Pastry node with pub/sub inside, as one sans-IO state machine: a `PastryNode` and a
 * `PubSubMachine` joined so that any driver of core's node contract (the testkit simulator, or a
 * custom one) drives both without knowing pub/sub is there.
 *
 * Theory of operation. The composite takes the node's inputs (`handleMessage`, `handleTimeout` and
 * the commands), hands them to the PastryNode, then pumps: every event the PastryNode emits is
 * read; those of the pub/sub application (`deliver` and `direct` with its app name) and the
 * upcalls it listens to (`update`, `nodeFailed`) go into the PubSubMachine, and everything else is
 * passed on to the driver through `pollEvent`. What the PubSubMachine asks of its host (`route`,
 * `send`) is queued while it runs and performed on the PastryNode once it returns, and the loop
 * repeats until both are quiet. Pub/sub events reach the driver as `{ type: 'pubsub', event }`.
 * `nextDeadline` is the earlier of the two machines'; `handleTimeout` gives each its due.
 */
import {
  type Id,
  type Message,
  type NodeEvent,
  type NodeHandle,
  PastryNode,
  type PastryNodeOptions,
  type Transmit,
} from '@pastry/core'
import type { PubSubConfig } from './config.js'
import { type PubSubEvent, PubSubMachine } from './machine.js'
import { decodePubSub } from './wire.js'

/** What {@link PastryPubSubNode.pollEvent} hands out: the node's own events, and pub/sub's. */
export type CompositeEvent = NodeEvent | { readonly type: 'pubsub'; readonly event: PubSubEvent }

/** Options for {@link PastryPubSubNode}. */
export interface PastryPubSubNodeOptions extends PastryNodeOptions {
  /** The application name pub/sub runs under (default `pubsub`). */
  readonly app?: string
  /** Pub/sub settings; see `PubSubConfig`. */
  readonly pubsub?: Partial<PubSubConfig>
  /** This publisher's incarnation; see `PubSubMachineOptions.epoch`. Default 0. */
  readonly epoch?: number
  /**
   * Told, for observers such as a simulator's metrics, when this node takes in a publish as a
   * topic's root: the moment the tree's delay starts.
   */
  readonly onRootReceive?: (now: number, topic: string, publisher: Id, seq: number) => void
}

type HostCall =
  | { readonly kind: 'route'; readonly key: Id; readonly payload: Uint8Array }
  | { readonly kind: 'send'; readonly to: NodeHandle; readonly payload: Uint8Array }

/**
 * A Pastry node with pub/sub, driven like a `PastryNode` (the contract in core's
 * `protocol/types.ts`). Use `pubsub` for the commands (`subscribe`, `publish`, ...) with the same
 * `now` the driver uses, then drain as after any input.
 */
export class PastryPubSubNode {
  readonly node: PastryNode
  readonly pubsub: PubSubMachine
  readonly app: string
  readonly #calls: HostCall[] = []
  readonly #events: CompositeEvent[] = []
  readonly #onRootReceive: PastryPubSubNodeOptions['onRootReceive']
  #now = Number.NEGATIVE_INFINITY

  constructor(options: PastryPubSubNodeOptions) {
    this.node = new PastryNode(options)
    this.app = options.app ?? 'pubsub'
    this.#onRootReceive = options.onRootReceive
    this.pubsub = new PubSubMachine({
      host: {
        handle: this.node.handle,
        route: (_now, key, payload) => this.#calls.push({ kind: 'route', key, payload }),
        send: (_now, to, payload) => this.#calls.push({ kind: 'send', to, payload }),
        proximity: (id) => this.node.rttTo(id),
      },
      ...(options.pubsub === undefined ? {} : { config: options.pubsub }),
      ...(options.epoch === undefined ? {} : { epoch: options.epoch }),
    })
    this.node.register(this.app, {
      forward: (message, next) => this.pubsub.handleForward(this.#now, message, next),
    })
  }

  get id(): Id {
    return this.node.id
  }

  get address(): string {
    return this.node.address
  }

  get handle(): NodeHandle {
    return this.node.handle
  }

  get state() {
    return this.node.state
  }

  // Inputs: each goes to the PastryNode, then the two machines are pumped until quiet.

  start(now: number): void {
    this.#input(now, () => this.node.start(now))
  }

  join(now: number, bootstrap: readonly string[]): void {
    this.#input(now, () => this.node.join(now, bootstrap))
  }

  handleMessage(now: number, message: Message): void {
    this.#input(now, () => this.node.handleMessage(now, message))
  }

  handleTimeout(now: number): void {
    this.#input(now, () => {
      const pastryDue = this.node.nextDeadline()
      if (pastryDue !== undefined && pastryDue <= now) this.node.handleTimeout(now)
      const pubsubDue = this.pubsub.nextDeadline()
      if (pubsubDue !== undefined && pubsubDue <= now) this.pubsub.handleTimeout(now)
    })
  }

  route(now: number, key: Id, app: string, payload: Uint8Array): number {
    let id = 0
    this.#input(now, () => {
      id = this.node.route(now, key, app, payload)
    })
    return id
  }

  send(now: number, to: NodeHandle, app: string, payload: Uint8Array): void {
    this.#input(now, () => this.node.send(now, to, app, payload))
  }

  leave(now: number): void {
    this.#input(now, () => {
      this.pubsub.close(now, true)
      this.#flushCalls(now)
      this.node.leave(now)
    })
  }

  close(now: number): void {
    this.#input(now, () => {
      this.pubsub.close(now, false)
      this.#calls.length = 0
      this.node.close(now)
    })
  }

  /**
   * Runs a pub/sub command at `now` (for example `(now) => n.pubsub.publish(now, topic, data)`) and
   * pumps, so that what it sends reaches the PastryNode. Returns the command's result.
   */
  command<T>(now: number, run: (now: number) => T): T {
    let out: T | undefined
    this.#input(now, () => {
      out = run(now)
    })
    return out as T
  }

  // Outputs.

  pollTransmit(): Transmit | undefined {
    return this.node.pollTransmit()
  }

  pollEvent(): CompositeEvent | undefined {
    return this.#events.shift()
  }

  nextDeadline(): number | undefined {
    const a = this.node.nextDeadline()
    const b = this.node.state === 'closed' ? undefined : this.pubsub.nextDeadline()
    if (a === undefined) return b
    if (b === undefined) return a
    return Math.min(a, b)
  }

  #input(now: number, run: () => void): void {
    if (now > this.#now) this.#now = now
    run()
    this.#pump(now)
  }

  #pump(now: number): void {
    for (;;) {
      this.#flushCalls(now)
      const e = this.node.pollEvent()
      if (e === undefined) {
        for (let p = this.pubsub.pollEvent(); p !== undefined; p = this.pubsub.pollEvent()) {
          this.#events.push({ type: 'pubsub', event: p })
        }
        if (this.#calls.length === 0) return
        continue
      }
      this.#route(now, e)
    }
  }

  #route(now: number, e: NodeEvent): void {
    const live = this.node.state !== 'closed'
    switch (e.type) {
      case 'deliver':
        if (e.app !== this.app) break
        if (live) {
          this.pubsub.handleDeliver(now, e)
          this.#observeRoot(now, e.payload)
        }
        return
      case 'direct':
        if (e.app !== this.app) break
        if (live) {
          this.pubsub.handleDirect(now, e.payload, e.from)
          this.#observeRoot(now, e.payload)
        }
        return
      case 'update':
        if (live) this.pubsub.handleUpdate(now, e.node, e.joined)
        break
      case 'nodeFailed':
        if (live) this.pubsub.handleNodeFailed(now, e.node)
        break
    }
    this.#events.push(e)
  }

  #flushCalls(now: number): void {
    while (this.#calls.length > 0) {
      const c = this.#calls.shift() as HostCall
      if (this.node.state !== 'active' && this.node.state !== 'joining') continue
      if (c.kind === 'route') this.node.route(now, c.key, this.app, c.payload)
      else this.node.send(now, c.to, this.app, c.payload)
    }
  }

  #observeRoot(now: number, payload: Uint8Array): void {
    if (this.#onRootReceive === undefined) return
    const decoded = decodePubSub(payload, Number.POSITIVE_INFINITY)
    if (!decoded.ok || decoded.message.type !== 'publish') return
    const m = decoded.message
    if (this.pubsub.isRoot(m.topic)) this.#onRootReceive(now, m.topic, m.message.publisher.id, m.message.seq)
  }
}
