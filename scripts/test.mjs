#!/usr/bin/env node
// Runs every package's uvu suites (packages/*/test/*.test.ts) against the TypeScript sources, one
// process per package, and prints a last line "N passed, N failed" counted across all packages.
// Usage: node scripts/test.mjs [package-dir-name ...]   (PASTRY_SEED=<seed> replays randomised tests)
import { spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const only = process.argv.slice(2)
const packages = readdirSync(join(root, 'packages'))
  .filter((p) => existsSync(join(root, 'packages', p, 'test')))
  .filter((p) => only.length === 0 || only.includes(p))
  .sort()

const uvuBin = join(root, 'node_modules', 'uvu', 'bin.js')
let passed = 0
let failed = 0

function strip(s) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes from uvu output
  return s.replace(/\x1b\[[0-9;]*m/g, '')
}

for (const pkg of packages) {
  const dir = join('packages', pkg, 'test')
  const files = readdirSync(join(root, dir)).filter((f) => f.endsWith('.test.ts'))
  if (files.length === 0) continue
  process.stdout.write(`\n## ${pkg}\n`)
  const out = await new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', uvuBin, dir, '\\.test\\.ts$'],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FORCE_COLOR: '0' } },
    )
    let text = ''
    child.stdout.on('data', (d) => {
      text += d
      process.stdout.write(d)
    })
    child.on('close', (code) => resolve({ text: strip(text), code }))
  })
  const total = Number(/Total:\s+(\d+)/.exec(out.text)?.[1] ?? Number.NaN)
  const ok = Number(/Passed:\s+(\d+)/.exec(out.text)?.[1] ?? Number.NaN)
  const skipped = Number(/Skipped:\s+(\d+)/.exec(out.text)?.[1] ?? 0)
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    // The suite did not get as far as its summary (a crash while loading a file): one failure.
    process.stdout.write(`\n${pkg}: the test process exited with code ${out.code} before its summary\n`)
    failed += 1
    continue
  }
  passed += ok
  failed += total - ok - skipped
  if (out.code !== 0 && total - ok - skipped === 0) failed += 1
}

process.stdout.write(`\n${passed} passed, ${failed} failed\n`)
process.exitCode = failed === 0 ? 0 : 1
