export { BoundedMap } from './bounded.js'
export { DEFAULT_PROTOCOL_CONFIG, type ProtocolConfig, resolveConfig } from './config.js'
export { IllegalStateError, PastryNode, type PastryNodeOptions } from './node.js'
export type {
  ApplicationHooks,
  Delivery,
  ForwardDecision,
  NodeCounters,
  NodeEvent,
  NodeState,
  ProtocolNode,
  RouteFailureReason,
  Transmit,
} from './types.js'
