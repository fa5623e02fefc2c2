// A real cluster: ten `pastry node` processes over TCP on 127.0.0.1, with a cluster key; the
// scenario (join, route, kill -9, repair, graceful leave, a wrong key) is in _scenarios.ts.
import { clusterScenario } from './_scenarios.js'

clusterScenario('TCP', [], 'cluster')
