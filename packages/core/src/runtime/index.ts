export {
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
