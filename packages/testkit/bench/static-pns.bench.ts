// Proximity neighbour selection in static overlays: delay stretch (RDP) against the number of
// candidates compared per crowded routing-table cell, with the no-PNS baseline measured in the
// same run. 20,000 nodes, sphere topology (200 ms diameter), 50,000 lookups.
// Run: pnpm bench static-pns
import { createRng, randomId } from '@pastry/core'
import { buildStaticOverlay, createTopology } from '../src/index.js'

const N = 20_000
const LOOKUPS = 50_000
const seed = process.env.PASTRY_SEED ?? 'bench-pns'
const rows: Record<string, string | number>[] = []
let baseline = Number.NaN
for (const samples of [0, 1, 8, 32, 128]) {
  const rng = createRng(seed)
  const ids = Array.from({ length: N }, () => randomId(rng))
  const topology = createTopology('sphere', N, rng.derive('topology'))
  const t0 = performance.now()
  const overlay = buildStaticOverlay({
    ids,
    rng: rng.derive('tables'),
    topology,
    pns: samples > 0,
    pnsSamples: Math.max(1, samples),
  })
  const buildMs = performance.now() - t0
  const lookups = rng.derive('lookups')
  let sum = 0
  let count = 0
  for (let k = 0; k < LOOKUPS; k++) {
    const from = lookups.int(N)
    const r = overlay.route(from, randomId(lookups))
    if (r.deliveredAt === from) continue
    sum += r.delayMs / overlay.latencyMs(from, r.deliveredAt)
    count++
  }
  const rdp = sum / count
  if (samples === 0) baseline = rdp
  rows.push({
    'PNS candidates per cell': samples === 0 ? 'off (random entries)' : samples,
    'build ms': Math.round(buildMs),
    'mean RDP': +rdp.toFixed(3),
    'RDP / no-PNS RDP': +(rdp / baseline).toFixed(3),
  })
}
console.log(`seed ${seed}, ${N} nodes, ${LOOKUPS} lookups`)
console.table(rows)
