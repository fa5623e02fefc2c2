// Static overlays of 10^5 and 10^6 nodes (b = 4, L = 16, no topology): build time, peak RSS, and
// the mean and maximum hops of 10^6 random routes, each checked against the oracle.
// Each size runs in its own child process, so that peak RSS is that size's alone.
// Run: pnpm bench static-overlay          (or: ... static-overlay.bench.ts 100000 for one size)
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createRng, randomId } from '@pastry/core'
import { buildStaticOverlay } from '../src/index.js'

const ROUTES = 1_000_000
const size = process.argv[2] === undefined ? undefined : Number(process.argv[2])

if (size === undefined) {
  const rows: Record<string, string | number>[] = []
  for (const n of [100_000, 1_000_000]) {
    const r = spawnSync(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        '--max-old-space-size=8192',
        fileURLToPath(import.meta.url),
        String(n),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    )
    if (r.status !== 0) throw new Error(`size ${n} failed with status ${r.status}`)
    rows.push(JSON.parse(r.stdout.trim().split('\n').pop()!))
  }
  console.table(rows)
} else {
  const seed = process.env.PASTRY_SEED ?? 'bench-static'
  const rng = createRng(seed)
  const t0 = performance.now()
  const ids = Array.from({ length: size }, () => randomId(rng))
  const overlay = buildStaticOverlay({ ids, rng: rng.derive('tables'), b: 4, leafSetSize: 16 })
  const buildMs = performance.now() - t0
  const t1 = performance.now()
  let hops = 0
  let max = 0
  let wrong = 0
  const histogram: number[] = []
  for (let k = 0; k < ROUTES; k++) {
    const key = randomId(rng)
    const r = overlay.route(rng.int(size), key)
    hops += r.hops
    if (r.hops > max) max = r.hops
    histogram[r.hops] = (histogram[r.hops] ?? 0) + 1
    if (r.deliveredAt !== overlay.closest(key)) wrong++
  }
  const routeMs = performance.now() - t1
  console.log(
    JSON.stringify({
      nodes: size,
      seed,
      'build s': +(buildMs / 1000).toFixed(1),
      'peak RSS MB': Math.round(process.resourceUsage().maxRSS / 1024),
      routes: ROUTES,
      'route s': +(routeMs / 1000).toFixed(1),
      'mean hops': +(hops / ROUTES).toFixed(3),
      'max hops': max,
      'log16 N': +(Math.log(size) / Math.log(16)).toFixed(3),
      incorrect: wrong,
      histogram: Array.from(histogram, (c) => c ?? 0).join(' '),
    }),
  )
}
