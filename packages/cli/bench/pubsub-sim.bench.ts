// The pub/sub experiment at scale in the simulator: N nodes joined through the protocol, T topics
// with Zipf-like subscriber counts (rank r has about N·r^-1.25 subscribers), K publishes from random
// nodes over 60 s of virtual time. Records delay RDP (tree delay from the root over the direct delay
// from the root), node stress (children per node over all topics) and pub/sub messages per publish.
// Run: pnpm bench pubsub-sim                 (10,000 nodes, 1,000 topics, 2,000 publishes)
//      node --conditions=source --import tsx packages/cli/bench/pubsub-sim.bench.ts 1000 100 1000
import { runPubSubExperiment } from '../src/pubsub-sim.js'

const [nodesArg, topicsArg, publishesArg] = process.argv.slice(2)
const nodes = Number(nodesArg ?? 10_000)
const topics = Number(topicsArg ?? 1_000)
const publishes = Number(publishesArg ?? 2_000)
const seed = process.env.PASTRY_SEED ?? 'bench-pubsub'

const r = runPubSubExperiment({ seed, nodes, topics, publishes })
console.log(
  `seed ${seed}, ${nodes} nodes, ${topics} topics, ${r.subscriptions} subscriptions, ${publishes} publishes`,
)
console.table([
  {
    'wall s': (r.wallMs / 1000).toFixed(1),
    'peak RSS MB': r.peakRssMb,
    'delivered / expected': `${r.delivered}/${r.expectedDeliveries}`,
    missing: r.missing,
    duplicates: r.duplicates,
    gaps: r.gaps,
    'RDP mean': r.rdp.mean,
    'RDP p50': r.rdp.p50,
    'RDP p99': r.rdp.p99,
    'stress mean': r.stress.mean,
    'stress mean>0': r.stress.meanNonZero,
    'stress max': r.stress.max,
    'msgs/publish': r.messagesPerPublish,
  },
])
console.log('pub/sub messages by type:', JSON.stringify(r.messagesByType))
