// Churn (the protocol issue's benchmark): 10,000 nodes join through the protocol in the simulator
// (sphere topology, default protocol periods), settle, then churn for 2 simulated hours: Poisson
// arrivals at N / 30 min and exponential sessions with a 30-minute mean, the nodes alive when churn
// starts included, so the overlay stays near N. 100,000 lookups from random live nodes are spread
// evenly over the churn. Prints the delivered fraction (target ≥ 99.99 %), incorrect deliveries
// (target 0), lost lookups, and maintenance traffic: settled (before churn) and during churn, per
// type, per alive node per second; with the seed, wall time and peak RSS.
// Lookups are made as a DHT application makes them: the root answers the origin, and an origin
// without an answer after 20 s routes the lookup again, up to 3 sends in all (`lookupRetry`). The
// figures for the first send alone come from the same run. PASTRY_CHURN_RETRY=off sends each once.
// Run: pnpm bench protocol-churn                         (10,000 nodes, 2 h; 10 to 30 minutes)
//      PASTRY_CHURN_NODES=1000 pnpm bench protocol-churn  (smaller; PASTRY_CHURN_LOOKUPS,
//      PASTRY_CHURN_SESSION_MIN and PASTRY_CHURN_DURATION_MIN change the rest)
//      PASTRY_SEED=<seed> replays a run.
import { runProtocolExperiment } from '../src/index.js'

const number = (name: string, fallback: number) => {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!(n > 0)) throw new Error(`${name} must be a positive number, got ${v}`)
  return n
}
const nodes = number('PASTRY_CHURN_NODES', 10_000)
const lookups = number('PASTRY_CHURN_LOOKUPS', 100_000)
const sessionMin = number('PASTRY_CHURN_SESSION_MIN', 30)
const durationMin = number('PASTRY_CHURN_DURATION_MIN', 120)
const seed = process.env.PASTRY_SEED ?? 'bench-churn'
const retry = process.env.PASTRY_CHURN_RETRY === 'off' ? undefined : { timeoutMs: 20_000, attempts: 3 }

console.log(
  `seed ${seed}, ${nodes} nodes, exponential sessions of ${sessionMin} min mean, ${durationMin} min of churn, ${lookups} lookups, sphere topology, ${retry === undefined ? 'one send per lookup' : `lookups sent again after ${retry.timeoutMs} ms, ${retry.attempts} sends at most`}`,
)
const t0 = performance.now()
let lastPhase = ''
let lastTenth = -1
const r = runProtocolExperiment({
  nodes,
  lookups,
  seed,
  churnSessionMin: sessionMin,
  churnDurationMin: durationMin,
  ...(retry !== undefined && { lookupRetry: retry }),
  // Coarse progress on stderr, for long runs in the background.
  onProgress: (phase, fraction) => {
    const tenth = Math.floor(fraction * 10)
    if (phase === lastPhase && tenth === lastTenth) return
    lastPhase = phase
    lastTenth = tenth
    const wall = ((performance.now() - t0) / 1000).toFixed(0)
    process.stderr.write(`[${wall} s] ${phase} ${(fraction * 100).toFixed(0)} %\n`)
  },
})
const wallS = (performance.now() - t0) / 1000
const phase = r.churnPhase!
const churn = r.churn!
const perType = Object.fromEntries(
  Object.entries(phase.perNodePerSecByType)
    .sort((a, b) => b[1] - a[1])
    .map(([type, rate]) => [type, +rate.toFixed(4)]),
)
const summary = {
  nodes,
  'wall s': +wallS.toFixed(1),
  'peak RSS MB': Math.round(process.resourceUsage().maxRSS / 1024),
  'simulated s': +(r.simulatedMs / 1000).toFixed(1),
  events: r.events,
  'events/s': Math.round(r.events / wallS),
  lookups: r.lookups,
  delivered: r.delivered,
  'delivered %': +((100 * r.delivered) / r.lookups).toFixed(4),
  'delivered by the first send': r.delivered - r.deliveredByRetry,
  'first send %': +((100 * (r.delivered - r.deliveredByRetry)) / r.lookups).toFixed(4),
  'sent again': r.retried,
  'answered at the origin': r.answered,
  correct: r.correct,
  incorrect: r.incorrect,
  lost: r.lost,
  'by inactive': r.byInactive,
  'route failed': r.routeFailed,
  duplicates: r.duplicates,
  'mean hops': +r.hops.mean.toFixed(3),
  'RDP mean': +r.rdp.mean.toFixed(3),
  arrivals: churn.arrivals,
  'initial sessions': churn.existing,
  crashes: churn.crashes,
  'live min': phase.live.min,
  'live mean': +phase.live.mean.toFixed(1),
  'live max': phase.live.max,
  'alive mean': +phase.meanAlive.toFixed(1),
  'maint msgs/node/s settled': +r.maintenancePerNodePerSec.toFixed(3),
  'maint msgs/node/s churn': +phase.maintenancePerNodePerSec.toFixed(3),
  'join msgs/node/s churn': +phase.joinPerNodePerSec.toFixed(3),
  'not active after join': r.notActiveAfterJoin,
  'leaf-set mismatches before churn': r.leafSetMismatches,
  'trace hash': r.traceHash,
}
console.table(Object.entries(summary).map(([figure, value]) => ({ figure, value })))
console.log('Messages per alive node per second during churn, by type:')
console.table(Object.entries(perType).map(([type, rate]) => ({ type, rate, sent: phase.sentByType[type] })))
console.log(JSON.stringify({ seed, ...summary, churnPerNodePerSecByType: perType }))
