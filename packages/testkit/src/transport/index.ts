/**
 * Transports for tests: the in-memory {@link MemoryNetwork}, {@link transportConformance}, the
 * suite that every transport (in-memory, TCP, UDP) must pass, and, for a transport's own tests,
 * {@link listenRecording} and the awaitable {@link Inbox} it records into.
 *
 * @module
 */

export {
  type ConformanceCase,
  type ConformanceOptions,
  type ConformanceSubject,
  DEFAULT_CONFORMANCE_TIMEOUT_MS,
  transportConformance,
} from './conformance.js'
export {
  DEFAULT_MAX_QUEUED_FRAMES,
  MAX_BLOCKED_PAIRS,
  MAX_PENDING_ERRORS,
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryNetworkStats,
  type MemoryPartitionOptions,
  type MemoryTransportOptions,
} from './memory.js'
export {
  DEFAULT_INBOX_WAIT_MS,
  Inbox,
  type ListenRecordingOptions,
  listenRecording,
  type RecordedFrame,
  type RecordingTransport,
} from './recording.js'
