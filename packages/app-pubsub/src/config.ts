import { ConfigError, DEFAULT_MAX_MESSAGE_BYTES } from '@pastry/core'

/**
 * The settings of a pubsub node. Every field has a default (below); pass only what you change.
 * Times are in milliseconds of the driver's monotonic clock.
 */
export interface PubSubConfig {
  /** How often a parent heartbeats each child (data sent to it counts), and a child its parent. Default 1000. */
  readonly heartbeatMs: number
  /** A child that has heard nothing from its parent for this long subscribes again. Default 3 × heartbeatMs. */
  readonly parentTimeoutMs: number
  /** A parent that has heard nothing from a child for this long removes it. Default 3 × heartbeatMs. */
  readonly childTimeoutMs: number
  /** How long a SUBSCRIBE waits for its acknowledgement before it is routed again. Default 2000. */
  readonly subscribeTimeoutMs: number
  /** Unacknowledged SUBSCRIBEs in a row before `subscribeFailed` (retries go on). Default 5. */
  readonly subscribeAttempts: number
  /** How long a publish waits for the root's acknowledgement before it is routed again. Default 1000. */
  readonly publishAckTimeoutMs: number
  /** Transmissions of a publish before it is given up (`publishFailed`). Default 10. */
  readonly publishAttempts: number
  /** How long a subscriber waits for each replay request's answer. Default 3000. */
  readonly replayTimeoutMs: number
  /**
   * Replay requests for one hole before what is still missing is reported as a gap. The first goes
   * to the parent (up the tree); each later one to the parent and straight to the publisher, whose
   * own window answers for good. Default 3.
   */
  readonly replayAttempts: number
  /** How long an anycast waits for its answer. Default 5000. */
  readonly anycastTimeoutMs: number
  /** Children per topic; a further child is handed down to an existing one. Default 16. */
  readonly maxChildren: number
  /** Times a SUBSCRIBE may be handed down before a full node takes it anyway. Default 4. */
  readonly maxRedirects: number
  /** Topics this node keeps state for (member, forwarder or root), and topics it publishes to. Default 1024. */
  readonly maxTopics: number
  /** The replay window: messages kept per publisher per topic at every tree node and at the publisher. Default 256. */
  readonly replayWindow: number
  /** The most bytes of message data a topic's replay buffer holds at one node. Default 4 MiB. */
  readonly maxTopicBufferBytes: number
  /** Publishers tracked per topic (buffers, order); the least recently heard one is forgotten. Default 64. */
  readonly maxPublishersPerTopic: number
  /** Out-of-order messages a subscriber holds per publisher while it waits for a replay. Default 256. */
  readonly maxHeldPerPublisher: number
  /** The largest `data` a publish or anycast may carry, in bytes. Default 64 KiB. */
  readonly maxDataBytes: number
  /** The largest pubsub payload accepted from a peer, in bytes. Default core's 1 MiB frame. */
  readonly maxPayloadBytes: number
  /** The most data bytes one replay message carries (a longer replay is split). Default 256 KiB. */
  readonly maxReplayBytes: number
  /** Publishes awaiting the root's acknowledgement. Default 1024. */
  readonly maxPendingPublishes: number
  /** Anycasts awaiting an answer. Default 256. */
  readonly maxPendingAnycasts: number
  /** Members an anycast may visit before it gives up. Default 64. */
  readonly maxAnycastVisits: number
  /** A root with no children and no local subscriber keeps its state (and buffer) this long. Default 30000. */
  readonly topicIdleMs: number
}

/** Every default of {@link PubSubConfig}; the two child and parent timeouts follow `heartbeatMs`. */
export const DEFAULT_PUBSUB_CONFIG: PubSubConfig = Object.freeze({
  heartbeatMs: 1000,
  parentTimeoutMs: 3000,
  childTimeoutMs: 3000,
  subscribeTimeoutMs: 2000,
  subscribeAttempts: 5,
  publishAckTimeoutMs: 1000,
  publishAttempts: 10,
  replayTimeoutMs: 3000,
  replayAttempts: 3,
  anycastTimeoutMs: 5000,
  maxChildren: 16,
  maxRedirects: 4,
  maxTopics: 1024,
  replayWindow: 256,
  maxTopicBufferBytes: 4 * 1024 * 1024,
  maxPublishersPerTopic: 64,
  maxHeldPerPublisher: 256,
  maxDataBytes: 64 * 1024,
  maxPayloadBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxReplayBytes: 256 * 1024,
  maxPendingPublishes: 1024,
  maxPendingAnycasts: 256,
  maxAnycastVisits: 64,
  topicIdleMs: 30_000,
})

const POSITIVE: readonly (keyof PubSubConfig)[] = Object.keys(DEFAULT_PUBSUB_CONFIG) as (keyof PubSubConfig)[]

/**
 * Fills in the defaults and checks every value: a positive safe integer each, `maxAnycastVisits`
 * at most 256, `maxRedirects` at most 255. Throws `ConfigError` for anything else.
 */
export function resolvePubSubConfig(partial: Partial<PubSubConfig> = {}): PubSubConfig {
  const heartbeatMs = partial.heartbeatMs ?? DEFAULT_PUBSUB_CONFIG.heartbeatMs
  const config: PubSubConfig = {
    ...DEFAULT_PUBSUB_CONFIG,
    parentTimeoutMs: 3 * heartbeatMs,
    childTimeoutMs: 3 * heartbeatMs,
    ...stripUndefined(partial),
  }
  for (const key of POSITIVE) {
    const v = config[key]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      throw new ConfigError(`pubsub ${key} must be a positive integer, got ${String(v)}`)
  }
  if (config.maxAnycastVisits > 256) throw new ConfigError('pubsub maxAnycastVisits must be at most 256')
  if (config.maxRedirects > 255) throw new ConfigError('pubsub maxRedirects must be at most 255')
  if (config.maxDataBytes + 1024 > config.maxPayloadBytes)
    throw new ConfigError('pubsub maxDataBytes must leave 1024 bytes of room below maxPayloadBytes')
  if (config.maxReplayBytes + 64 * 1024 > config.maxPayloadBytes)
    throw new ConfigError('pubsub maxReplayBytes must leave 64 KiB of room below maxPayloadBytes')
  return Object.freeze(config)
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
