// The transport conformance suite run against the in-memory transport: once as it comes (delivery
// on the next turn), and once with latency and seeded jitter, which exercises the timed path and
// the per-pair FIFO guarantee under jitter. The seed is printed; PASTRY_SEED replays it.

import { createRng } from '@pastry/core'
import { test } from 'uvu'
import { MemoryNetwork, transportConformance } from '../src/index.js'
import { SEED } from './_seed.js'

for (const c of transportConformance(() => {
  const network = new MemoryNetwork()
  return { create: () => network.createTransport(), listenAddress: 'mem:0' }
})) {
  test(`memory: ${c.name}`, c.run)
}

let n = 0
for (const c of transportConformance(() => {
  const network = new MemoryNetwork({
    latencyMs: 1,
    jitterMs: 3,
    rng: createRng(`conformance-${SEED}`).derive(String(n++)),
  })
  return { create: () => network.createTransport(), listenAddress: '10.0.0.1:0' }
})) {
  test(`memory with latency and jitter: ${c.name}`, c.run)
}

test.run()
