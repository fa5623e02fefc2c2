/*
 * The node state machine's contract with its drivers (the simulator and the runtime).
 *
 * Driver loop. Every input is a method call that takes `now`, the driver's monotonic clock in
 * milliseconds (never decreasing between calls). After any input, the driver:
 *   1. drains `pollTransmit()` and sends each message to its address;
 *   2. drains `pollEvent()` and hands each event to the application and observers;
 *   3. sets its single timer for `nextDeadline()` (none when undefined), and when the timer fires,
 *      calls `handleTimeout(now)` and goes back to step 1.
 * Inputs: `handleMessage` (a decoded message from a peer), `handleTimeout`, and the commands
 * `start`, `join`, `route`, `send`, `leave`, `close`. The machine never calls out, reads a clock or
 * draws unseeded randomness, so a run is a pure function of its inputs and its seed.
 *
 * Rules for drivers:
 * - `nextDeadline()` may return a time at or before `now`; fire it at once. `handleTimeout(now)`
 *   handles every deadline due by `now`, so one call per timer expiry suffices.
 * - A node in state `closed` emits nothing more and ignores every input: stop polling it.
 * - A crash needs no method: a driver simulates one by dropping the node (and its queued output).
 * - A routed message's `msgId` is end-to-end: the origin's, kept along the path, so a driver may
 *   follow a message by (origin, msgId).
 * - Tables are read through the implementation (`PastryNode.leafSet`, `.routingTable`): they are
 *   not part of this contract, which covers only driving.
 */
import type { Id } from '../id/id.js'
import type { Message, NodeHandle } from '../wire/messages.js'

/**
 * The node's lifecycle: `idle` (made, not yet started), `joining` (asking the overlay to take it
 * in), `active` (routing and delivering), `leaving` (handing over before going), `closed`.
 * Only an active node delivers routed messages.
 */
export type NodeState = 'idle' | 'joining' | 'active' | 'leaving' | 'closed'

/** A message the machine wants sent: to the transport address `to`. */
export interface Transmit {
  readonly to: string
  readonly message: Message
}

/** What a routed message looks like to the application that receives it. */
export interface Delivery {
  /** The end-to-end message id the origin chose. */
  readonly msgId: number
  readonly key: Id
  readonly app: string
  readonly payload: Uint8Array
  readonly origin: NodeHandle
  /** Overlay hops the message took to get here. */
  readonly hops: number
}

/** Why a routed message was given up on. */
export type RouteFailureReason =
  | 'attempts-exhausted' // every transmission went unacknowledged
  | 'hop-limit' // the message would exceed the wire's hop limit
  | 'overloaded' // too many messages in flight or held
  | 'closed' // the node stopped with the message still in its care

/** Events, as immutable values, in the order they happened. */
export type NodeEvent =
  | { readonly type: 'stateChanged'; readonly from: NodeState; readonly to: NodeState }
  | ({ readonly type: 'deliver' } & Delivery)
  | { readonly type: 'direct'; readonly app: string; readonly payload: Uint8Array; readonly from: NodeHandle }
  /** The KBR `update` upcall: a node entered (`joined`) or left this node's leaf set. */
  | { readonly type: 'update'; readonly node: NodeHandle; readonly joined: boolean }
  | { readonly type: 'leafSetChanged'; readonly size: number }
  | { readonly type: 'nodeFailed'; readonly node: NodeHandle }
  | { readonly type: 'nodeRecovered'; readonly node: NodeHandle }
  | {
      readonly type: 'routeFailed'
      readonly msgId: number
      readonly key: Id
      readonly app: string
      readonly reason: RouteFailureReason
    }
  | { readonly type: 'joinFailed'; readonly reason: string }
  /** A peer sent something the protocol cannot use; the node carried on. */
  | { readonly type: 'error'; readonly code: string; readonly message: string }

/**
 * The `forward` upcall's answer: let the message go on unchanged, go on with a new payload, go to
 * another node instead, or be dropped here.
 */
export type ForwardDecision =
  | { readonly action: 'continue' }
  | { readonly action: 'replace'; readonly payload: Uint8Array }
  | { readonly action: 'redirect'; readonly to: NodeHandle }
  | { readonly action: 'drop' }

/** What an application registers with a node. `deliver` and `update` arrive as events. */
export interface ApplicationHooks {
  /**
   * Called synchronously at every node a routed message for this application passes through,
   * before it is forwarded to `next`. It must not block; it may only decide.
   */
  forward?(message: Delivery, next: NodeHandle): ForwardDecision
}

/** Per-message-type counters, kept by the machine for observers. */
export interface NodeCounters {
  readonly sent: Readonly<Record<string, number>>
  readonly received: Readonly<Record<string, number>>
}

/** The machine's id and address, and how it is driven. Implemented by `PastryNode`. */
export interface ProtocolNode {
  readonly id: Id
  readonly address: string
  readonly handle: NodeHandle
  readonly state: NodeState
  start(now: number): void
  join(now: number, bootstrap: readonly string[]): void
  handleMessage(now: number, message: Message): void
  handleTimeout(now: number): void
  route(now: number, key: Id, app: string, payload: Uint8Array): number
  send(now: number, to: NodeHandle, app: string, payload: Uint8Array): void
  leave(now: number): void
  close(now: number): void
  pollTransmit(): Transmit | undefined
  pollEvent(): NodeEvent | undefined
  nextDeadline(): number | undefined
}
