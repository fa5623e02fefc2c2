// Pub/sub through ten `pastry node` processes over UDP (`--transport udp`): the same scenario as
// pubsub-cluster.test.ts, from _pubsub-scenario.ts.
import { pubsubScenario } from './_pubsub-scenario.js'

pubsubScenario('UDP', ['--transport', 'udp'])
