/*
 * Theory of operation
 *
 * What the simulator needs of a node: the part of core's `ProtocolNode` (protocol/types.ts) that a
 * driver calls, written out structurally so that the simulator depends on the contract and not on
 * any one implementation. Every `ProtocolNode` is a {@link SimNode}, and so is any small fake a
 * test writes. The driver loop is the one documented in protocol/types.ts: after every input,
 * drain `pollTransmit`, drain `pollEvent`, then arm one timer for `nextDeadline`.
 *
 * Messages travel by reference: unless the simulator encodes them, the receiver gets the very object
 * the sender handed to `pollTransmit`. So a node must not change a message, or any array in it, once
 * sent, nor one it received (core's message types are read-only throughout). The byte accounting
 * (size.ts) relies on this too.
 *
 * Events are seen through {@link SimEvent}, the one field they all share; the simulator reads only
 * `deliver` (msgId, key, hops, origin), `routeFailed` (msgId) and reads `state` directly. Observers get
 * the node's own event type back through {@link EventOf}.
 */
import type { Id, Message, NodeHandle } from '@pastry/core'

/** A node's lifecycle, as `ProtocolNode.state` reports it. */
export type SimNodeState = 'idle' | 'joining' | 'active' | 'leaving' | 'closed'

/** A message a node wants sent, as `ProtocolNode.pollTransmit` returns it. */
export interface SimTransmit {
  readonly to: string
  readonly message: Message
}

/** The least an event has: its `type`. Core's `NodeEvent` is one. */
export interface SimEvent {
  readonly type: string
}

/** The fields of a `deliver` event the oracle reads (core's `NodeEvent` of type `'deliver'`). */
export interface SimDeliverEvent extends SimEvent {
  readonly type: 'deliver'
  readonly msgId: number
  readonly key: Id
  readonly hops: number
  readonly origin: NodeHandle
}

/** The fields of a `routeFailed` event the oracle reads. */
export interface SimRouteFailedEvent extends SimEvent {
  readonly type: 'routeFailed'
  readonly msgId: number
}

/**
 * The node contract the simulator drives: a structural subset of core's `ProtocolNode`. Implement it
 * for a fake node in a test; a `PastryNode` already does.
 */
export interface SimNode {
  readonly id: Id
  readonly address: string
  readonly state: SimNodeState
  start(now: number): void
  join(now: number, bootstrap: readonly string[]): void
  handleMessage(now: number, message: Message): void
  handleTimeout(now: number): void
  route(now: number, key: Id, app: string, payload: Uint8Array): number
  leave(now: number): void
  pollTransmit(): SimTransmit | undefined
  /**
   * Optional: hands every queued message to `send`, as draining `pollTransmit` would, without an
   * object per message. The simulator uses it when present (a `PastryNode` has it).
   */
  drainTransmits?(send: (address: string, message: Message) => void): void
  pollEvent(): SimEvent | undefined
  nextDeadline(): number | undefined
}

/** The event type a node of type `N` emits: `NodeEvent` for a `PastryNode`. */
export type EventOf<N extends SimNode> = NonNullable<ReturnType<N['pollEvent']>>
