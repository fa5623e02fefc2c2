/**
 * @pastry/testkit: tools for studying and testing Pastry deterministically.
 *
 * - `buildStaticOverlay`: perfect tables from a global view, routed with core's `nextHop`; the
 *   routing-only experiment, at up to 10^6 nodes.
 * - `createTopology`: sphere, plane and uniform latency models, drawn from a seed.
 * - `seedFromEnv`: the seed of a run, replayable with `PASTRY_SEED`.
 *
 * - `Simulator`: the deterministic discrete-event simulator (faults, churn, oracle, metrics), and
 *   `runProtocolExperiment`, a whole join / settle / fail / churn / lookup run over it.
 * - `MemoryNetwork`: an in-memory `Transport`; `transportConformance`: what every transport must pass;
 *   `listenRecording` and `Inbox`: a listening transport whose frames and errors can be awaited.
 *
 * The README expands on each.
 */

export {
  type ChurnPhaseReport,
  type ProtocolExperimentOptions,
  type ProtocolExperimentReport,
  runProtocolExperiment,
} from './protocol-experiment.js'
export { seedFromEnv } from './seed.js'
export { runProtocolExperimentSharded } from './shard-experiment.js'
export * from './sim/index.js'
export {
  type Distribution,
  runStaticExperiment,
  type StaticExperimentOptions,
  type StaticExperimentReport,
  type StaticLookup,
} from './static-experiment.js'
export {
  buildStaticOverlay,
  type StaticNode,
  type StaticOverlay,
  type StaticOverlayOptions,
  type StaticRoute,
} from './static-overlay.js'
export {
  createTopology,
  TOPOLOGY_KINDS,
  type Topology,
  type TopologyKind,
  type TopologyOptions,
} from './topology.js'
export * from './transport/index.js'
