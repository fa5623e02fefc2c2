export {
  type CreateNodeOptions,
  createNode,
  JoinError,
  type JoinOptions,
  type OverlayEvent,
  type OverlayEventOf,
  OverlayNode,
  type RuntimeEvent,
  type RuntimeStats,
} from './node.js'
export {
  checkListen,
  formatAddress,
  type HostPort,
  type ListenOptions,
  parseAddress,
  type Transport,
  TransportError,
  type TransportErrorCode,
  type TransportHandlers,
  type TransportPeer,
} from './transport.js'
