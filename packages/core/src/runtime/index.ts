export { DeadlineTimer, EventListeners, type ListenerFailedEvent, monotonicClock } from './driver.js'
export { DropReports } from './drop-reports.js'
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
  checkSend,
  checkSendAddress,
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
export { checkAdvertiseAddress, checkClusterKey, checkIntOption } from './transport-options.js'
