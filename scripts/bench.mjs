#!/usr/bin/env node
// Runs benchmarks: packages/*/bench/*.bench.ts, one process each, in name order.
// Usage: pnpm bench [substring ...]   e.g. `pnpm bench id`, `pnpm bench static-overlay`
// Each benchmark prints its own figures; BENCHMARKS.md records them with the command that made them.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const filters = process.argv.slice(2)
const files = []
for (const pkg of readdirSync(join(root, 'packages')).sort()) {
  const dir = join('packages', pkg, 'bench')
  if (!existsSync(join(root, dir))) continue
  for (const f of readdirSync(join(root, dir)).sort()) {
    if (!f.endsWith('.bench.ts')) continue
    const path = join(dir, f)
    if (filters.length === 0 || filters.some((x) => path.includes(x))) files.push(path)
  }
}
if (files.length === 0) {
  console.error(`no benchmark matches ${filters.join(' ')}`)
  process.exit(2)
}
let failures = 0
for (const file of files) {
  console.log(`\n## ${file}`)
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--expose-gc', file], {
    cwd: root,
    stdio: 'inherit',
  })
  if (r.status !== 0) failures += 1
}
process.exitCode = failures === 0 ? 0 : 1
