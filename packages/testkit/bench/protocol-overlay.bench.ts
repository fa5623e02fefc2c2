// An overlay joined through the protocol in the simulator (sphere topology), then K lookups: wall
// time, peak RSS, hops (mean and histogram), RDP with PNS on and off measured in the same
// invocation, join messages per node, and maintenance messages per node per second once settled.
// Each configuration runs in its own child process, so that peak RSS is its own; on a machine with
// two or more cores the two run at the same time (PASTRY_BENCH_JOBS=1 runs them one after the other).
// Lookups are 1 ms apart, or closer with more than 100,000 of them, so that the lookup phase lasts
// at most 100 simulated seconds: 1,000,000 lookups are 0.1 ms apart (10,000 a second, 0.1 per node
// per second at 100,000 nodes). Spacing does not change routes, only the background traffic that
// the simulation must run meanwhile.
// PASTRY_SHARDS=2 runs each configuration as two simulator shards in two threads (the same run to
// the event; see src/shard-experiment.ts), and then one configuration at a time.
// Run: pnpm bench protocol-overlay                      (10,000 nodes, 100,000 lookups)
//      node --conditions=source --import tsx packages/testkit/bench/protocol-overlay.bench.ts 100000 1000000
import { spawn } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { runProtocolExperiment, runProtocolExperimentSharded } from '../src/index.js'

const [nodesArg, lookupsArg, pnsArg] = process.argv.slice(2)
const nodes = Number(nodesArg ?? 10_000)
const lookups = Number(lookupsArg ?? nodes * 10)
const seed = process.env.PASTRY_SEED ?? 'bench-protocol'
const lookupSpacingMs = Math.min(1, 100_000 / Math.max(1, lookups))
const shards = Number(process.env.PASTRY_SHARDS ?? 1)
if (shards !== 1 && shards !== 2)
  throw new Error(`PASTRY_SHARDS must be 1 or 2, got ${process.env.PASTRY_SHARDS}`)

/** Runs one configuration in a child process; resolves to its JSON row. */
function child(pns: string): Promise<Record<string, string | number>> {
  return new Promise((resolve, reject) => {
    const c = spawn(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        // 6 GB of JavaScript heap per 100,000 nodes (the peak then stays under 8 GB of RSS at
        // 100,000 nodes; the peer tables live outside this heap, in typed arrays).
        `--max-old-space-size=${Math.max(6144, Math.ceil((nodes / 100_000) * 6144))}`,
        // A young generation of 3 × 64 MB instead of 3 × 16: the messages and probe records a
        // large overlay keeps in flight then die young instead of being promoted and left to the
        // old generation's collections (5 % less wall time at 30,000 nodes; see BENCHMARKS.md).
        '--max-semi-space-size=64',
        '--expose-gc',
        fileURLToPath(import.meta.url),
        String(nodes),
        String(lookups),
        pns,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    c.stdout.setEncoding('utf8')
    c.stdout.on('data', (d: string) => {
      out += d
    })
    c.on('error', reject)
    c.on('close', (status) => {
      if (status !== 0) reject(new Error(`PNS ${pns} failed with status ${status}`))
      else resolve(JSON.parse(out.trim().split('\n').pop()!))
    })
  })
}

if (pnsArg === undefined) {
  // Two shards take both cores: then one configuration at a time.
  const jobs = shards === 2 ? 1 : Number(process.env.PASTRY_BENCH_JOBS ?? Math.min(2, availableParallelism()))
  const rows =
    jobs >= 2 ? await Promise.all([child('on'), child('off')]) : [await child('on'), await child('off')]
  console.log(
    `seed ${seed}, ${nodes} nodes, ${lookups} lookups ${lookupSpacingMs} ms apart, sphere topology, ` +
      `${jobs >= 2 ? 'both configurations at once' : 'one configuration at a time'}` +
      `${shards === 2 ? ', each as two shards in two threads' : ''}`,
  )
  console.table(rows)
  const on = rows[0]!
  const off = rows[1]!
  console.log(
    `RDP with PNS / RDP without PNS = ${(Number(on['RDP mean']) / Number(off['RDP mean'])).toFixed(3)}`,
  )
} else {
  const t0 = performance.now()
  // Memory once the overlay has settled (when lookups start), after a full collection when the
  // process runs with --expose-gc: heap plus external (typed-array storage), per node.
  let settledBytes = Number.NaN
  const options = { nodes, lookups, seed, pns: pnsArg === 'on', lookupSpacingMs }
  // The shards' heaps are their threads' own: this thread cannot weigh them when they settle.
  const r =
    shards === 2
      ? await runProtocolExperimentSharded(options)
      : runProtocolExperiment({
          ...options,
          onNodes: () => {
            ;(globalThis as { gc?: () => void }).gc?.()
            const m = process.memoryUsage()
            settledBytes = m.heapUsed + m.external
          },
        })
  const wallS = (performance.now() - t0) / 1000
  console.log(
    JSON.stringify({
      PNS: pnsArg,
      shards,
      nodes: r.nodes,
      'wall s': +wallS.toFixed(1),
      'peak RSS MB': Math.round(process.resourceUsage().maxRSS / 1024),
      'settled KB/node': Number.isNaN(settledBytes) ? null : Math.round(settledBytes / 1024 / nodes),
      'simulated s': +(r.simulatedMs / 1000).toFixed(1),
      events: r.events,
      'events/s': Math.round(r.events / wallS),
      lookups: r.lookups,
      correct: r.correct,
      incorrect: r.incorrect,
      lost: r.lost,
      'mean hops': +r.hops.mean.toFixed(3),
      'log16 N': +(Math.log(r.nodes) / Math.log(16)).toFixed(3),
      histogram: r.hops.histogram.join(' '),
      'RDP mean': +r.rdp.mean.toFixed(3),
      'RDP p50': +r.rdp.p50.toFixed(3),
      'join msgs/node': +(r.joinMessagesPerNode ?? 0).toFixed(1),
      'maint msgs/node/s': +r.maintenancePerNodePerSec.toFixed(3),
    }),
  )
}
