// Core outside runtime/ must not reach for the outside world (STYLE.md, convention 1): no clocks,
// timers, unseeded randomness, crypto globals or node:* imports. This scans the sources.
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const SRC = new URL('../src', import.meta.url).pathname

const FORBIDDEN: readonly [RegExp, string][] = [
  [/\bDate\.now\b/, 'Date.now'],
  [/\bnew Date\(/, 'new Date('],
  [/\bperformance\.now\b/, 'performance.now'],
  [/\bMath\.random\b/, 'Math.random'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, 'timers'],
  [/\bprocess\./, 'process'],
  [/\bcrypto\.(getRandomValues|randomUUID|subtle)\b/, 'crypto globals'],
  [/from\s+['"]node:/, 'node:* import'],
  [/require\(\s*['"]node:/, 'node:* require'],
  [/from\s+['"](fs|net|dgram|os|path|crypto|child_process|http|https|timers)['"]/, 'Node built-in import'],
]

function sources(dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sources(path))
    else if (entry.name.endsWith('.ts')) out.push(path)
  }
  return out
}

/** Returns "file:line: what" for each forbidden use in a file's code (comments are skipped). */
export function violations(path: string, text: string): string[] {
  const found: string[] = []
  const lines = text.split('\n')
  let inBlock = false
  lines.forEach((raw, i) => {
    let line = raw
    if (inBlock) {
      const end = line.indexOf('*/')
      if (end < 0) return
      line = line.slice(end + 2)
      inBlock = false
    }
    line = line.replace(/\/\*.*?\*\//g, '')
    const open = line.indexOf('/*')
    if (open >= 0) {
      line = line.slice(0, open)
      inBlock = true
    }
    line = line.replace(/\/\/.*$/, '')
    for (const [re, what] of FORBIDDEN) if (re.test(line)) found.push(`${path}:${i + 1}: ${what}`)
  })
  return found
}

test('core outside runtime/ uses no clock, timer, unseeded randomness or I/O', () => {
  const files = sources(SRC).filter((f) => !relative(SRC, f).startsWith('runtime'))
  assert.ok(files.length > 5, 'the scan found the sources')
  const all = files.flatMap((f) => violations(relative(SRC, f), readFileSync(f, 'utf8')))
  assert.equal(all, [], all.join('\n'))
})

test('the scan catches each forbidden use, and ignores comments', () => {
  const bad = [
    'const t = Date.now()',
    'const t = performance.now()',
    'const r = Math.random()',
    'setTimeout(f, 1)',
    "import { readFileSync } from 'node:fs'",
    'crypto.getRandomValues(buf)',
    'const e = process.env.X',
  ]
  for (const line of bad) assert.is(violations('x.ts', line).length, 1, line)
  assert.equal(violations('x.ts', '// Date.now() in a comment\n/* Math.random() */\nconst x = 1'), [])
  assert.equal(violations('x.ts', '/*\n setTimeout(f)\n*/\nconst ok = 2'), [])
})

test.run()
