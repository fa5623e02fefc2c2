/**
 * The deterministic discrete-event simulator: a whole overlay of sans-IO nodes in one thread, on a
 * virtual clock, driven by one seed.
 *
 * - {@link Simulator}: nodes from a factory, the driver loop of core's protocol/types.ts, latency
 *   from a `Topology`, faults (loss, duplication, jitter, partitions, crash and restart,
 *   churn), a trace hash for determinism, and a report.
 * - {@link Oracle}: the global truth the nodes are checked against (closest live node, true leaf
 *   sets, the verdict on every lookup).
 * - {@link drawFaults}: a fault plan drawn from a seed, for swarm testing.
 * - {@link EventQueue}: the (time, seq) min-heap underneath.
 *
 * A run: make a `Simulator` with a seed and a factory, `addNode` and `start` the first node, `join`
 * the rest, `runFor` a while, `route` lookups, `crash` or `partition`, then `heal`, run to
 * convergence, and check `oracle.checkLeafSets` and `report().lookups`.
 *
 * @module
 */

export type {
  EventOf,
  SimDeliverEvent,
  SimEvent,
  SimNode,
  SimNodeState,
  SimRouteFailedEvent,
  SimTransmit,
} from './contract.js'
export {
  drawFaults,
  type FaultPlan,
} from './faults.js'
export {
  type HopsReport,
  type MessageReport,
  SimMetrics,
  type TrafficClass,
  trafficClass,
} from './metrics.js'
export {
  DEFAULT_MAX_LOOKUPS,
  DELIVERY_DUPLICATE,
  DELIVERY_UNTRACKED,
  type LeafSetMismatch,
  type LookupRecord,
  type LookupSummary,
  Oracle,
  type TrueLeafSet,
} from './oracle.js'
export {
  DEFAULT_MAX_EVENTS,
  EventQueue,
  QueueFullError,
} from './queue.js'
export {
  type AddNodeOptions,
  type ChurnOptions,
  type ChurnStats,
  type ExistingNodesPolicy,
  type NetworkOptions,
  type NodeContext,
  type SessionDistribution,
  type SimHandle,
  type SimProgress,
  type SimReport,
  SimulationError,
  Simulator,
  type SimulatorOptions,
  type TableStats,
  type TopologySpec,
} from './simulator.js'
export { messageSize } from './size.js'
