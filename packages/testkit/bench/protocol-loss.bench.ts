// Wrong deliveries under message loss, with and without the second opinion on a silent leaf
// (`indirectProbes`): many small overlays joined through the protocol in the simulator, each then
// routing lookups through a lossy network. A live leaf declared failed by one node whose probes
// were all lost makes that node deliver the leaf's keys itself; asking other members first is what
// the comparison measures. Both settings run on the same scenarios (same seeds), in one run.
// Each scenario: 150 nodes (sphere topology), joins 20 ms apart, 30 s to settle, then 1,500 lookups
// 2 ms apart, with short protocol periods (Tls 5 s, probe timeout 1 s) so that liveness works hard.
// Run: pnpm bench protocol-loss                     (10 % loss, 30 scenarios)
//      PASTRY_LOSS=0.15 PASTRY_LOSS_SCENARIOS=60 pnpm bench protocol-loss
//      PASTRY_SEED=<seed> replays a run.
import { runProtocolExperiment } from '../src/index.js'

const loss = Number(process.env.PASTRY_LOSS ?? 0.1)
const scenarios = Number(process.env.PASTRY_LOSS_SCENARIOS ?? 30)
if (!(loss >= 0 && loss < 1)) throw new Error(`PASTRY_LOSS must be in [0, 1), got ${loss}`)
if (!(Number.isInteger(scenarios) && scenarios > 0))
  throw new Error(`PASTRY_LOSS_SCENARIOS must be a positive integer, got ${scenarios}`)
const seed = process.env.PASTRY_SEED ?? 'bench-loss'

const rows: Record<string, string | number>[] = []
for (const indirectProbes of [0, 3]) {
  const t0 = performance.now()
  let wrong = 0
  let withWrong = 0
  let lost = 0
  let lookups = 0
  let failedVerdicts = 0
  for (let k = 0; k < scenarios; k++) {
    const r = runProtocolExperiment({
      nodes: 150,
      lookups: 1500,
      seed: `${seed}/${k}`,
      loss,
      joinSpacingMs: 20,
      settleMs: 30_000,
      measureMs: 1_000,
      lookupSpacingMs: 2,
      config: {
        leafSetHeartbeatMs: 5_000,
        probeTimeoutMs: 1_000,
        joinTimeoutMs: 5_000,
        routingTableMaintenanceMs: 60_000,
        indirectProbes,
      },
    })
    wrong += r.incorrect
    if (r.incorrect > 0) withWrong++
    lost += r.lost
    lookups += r.lookups
    failedVerdicts += r.nodeEvents.nodeFailed ?? 0
  }
  rows.push({
    indirectProbes,
    scenarios,
    lookups,
    'wrong deliveries': wrong,
    'scenarios with one': withWrong,
    lost,
    'nodeFailed events': failedVerdicts,
    'wall s': +((performance.now() - t0) / 1000).toFixed(1),
  })
}
console.log(`seed ${seed}, loss ${loss}, ${scenarios} scenarios of 150 nodes and 1,500 lookups each`)
console.table(rows)
