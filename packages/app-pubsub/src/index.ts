/**
 * @pastry/pubsub: Scribe multicast trees and the "Peter" realtime pub/sub API over Pastry.
 *
 * - `createPubSub(node)` (runtime): `subscribe(topic, handler)`, `publish(topic, data)`,
 *   `anycast(topic, data)` and tree events, over a live `OverlayNode` from `@pastry/core`.
 * - `PubSubMachine`: the same protocol as a sans-IO state machine (inputs with `now`, outputs through
 *   a `PubSubHost` and an event queue, one deadline), for the simulator and for other drivers.
 * - `encodePubSub` / `decodePubSub`: the wire messages, strictly validated.
 *
 * Handlers get every message of a topic exactly once and in order per publisher, across tree
 * repair, within the replay window; anything that cannot be recovered is reported as a `gap`. The
 * package README states the guarantee and its bounds precisely.
 */

export { type CompositeEvent, PastryPubSubNode, type PastryPubSubNodeOptions } from './composite.js'
export { DEFAULT_PUBSUB_CONFIG, type PubSubConfig, resolvePubSubConfig } from './config.js'
export { PubSubError } from './errors.js'
export {
  type ChildRemovedReason,
  type PubSubEvent,
  type PubSubHost,
  PubSubMachine,
  type PubSubMachineOptions,
  type PubSubStats,
} from './machine.js'
export {
  type AnycastResult,
  type CreatePubSubOptions,
  createPubSub,
  type Published,
  PubSub,
  type PubSubDelivery,
  type PubSubEventOf,
  type PubSubGap,
  type PubSubMessage,
  type SubscribeOptions,
  type Subscription,
} from './runtime.js'
export {
  type DataMessage,
  decodePubSub,
  encodePubSub,
  type Head,
  MAX_BEAT_TOPICS,
  MAX_HEADS,
  MAX_PATH_IDS,
  MAX_REPLAY_MESSAGES,
  MAX_SEQ,
  MAX_TOPIC_BYTES,
  MAX_VISITED,
  PUBSUB_VERSION,
  type PubSubDecodeResult,
  type PubSubWireError,
  type PubSubWireErrorCode,
  type PubSubWireMessage,
  type PubSubWireOf,
  type PubSubWireType,
} from './wire.js'
