// Pub/sub through ten `pastry node` processes over TCP: the scenario in _pubsub-scenario.ts (steady
// delivery, then kill -9 of an interior forwarder and of a root while publishing).
import { pubsubScenario } from './_pubsub-scenario.js'

pubsubScenario('TCP', [])
