// End-to-end tests of `pastry sim --static`: the CLI runs from its TypeScript sources in a child
// process, and its --json report and --out files are checked against a bigint brute force that
// shares no code with the simulator. The runs use fixed seeds, and one more uses this process's
// seed: PASTRY_SEED=<seed> replays it (STYLE.md, convention 7). Self-contained on purpose, so that
// the cli project needs nothing from the testkit's test folder.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { childExecArgv } from '../src/heap.js'

function pickSeed(): number {
  const env = process.env.PASTRY_SEED
  if (env !== undefined && env !== '') {
    const n = Number(env)
    if (!Number.isSafeInteger(n)) throw new Error(`PASTRY_SEED must be an integer, got ${env}`)
    return n | 0
  }
  return (Date.now() ^ (process.pid << 16)) | 0
}
const SEED = pickSeed()
console.log(`[seed] PASTRY_SEED=${SEED}`)

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const NODE_ARGS = ['--conditions=source', '--import', 'tsx', 'packages/cli/src/bin.ts']
const scratch = mkdtempSync(join(tmpdir(), 'pastry-sim-test-'))
let dirs = 0
const freshDir = () => join(scratch, `out-${dirs++}`)

interface Run {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI synchronously, without PASTRY_SEED so that only the arguments choose the seed. */
function sim(args: readonly string[]): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' }
  delete env.PASTRY_SEED
  const r = spawnSync(process.execPath, [...NODE_ARGS, 'sim', ...args], { cwd: ROOT, env, encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Runs the CLI in the background, so that several runs share the machine's cores. */
function simAsync(args: readonly string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' }
  delete env.PASTRY_SEED
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, 'sim', ...args], { cwd: ROOT, env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

// ---------------------------------------------------------------------------------------------
// The reference: numerically closest by brute force on bigints, ties to the smaller id.

const RING = 1n << 128n
const refDistance = (a: bigint, b: bigint): bigint => {
  const d = (((a - b) % RING) + RING) % RING
  return d <= RING - d ? d : RING - d
}
const refCompareDistance = (key: bigint, a: bigint, b: bigint): number => {
  const da = refDistance(key, a)
  const db = refDistance(key, b)
  if (da !== db) return da < db ? -1 : 1
  return a < b ? -1 : a > b ? 1 : 0
}
const hexToBig = (h: string): bigint => {
  assert.ok(/^[0-9a-f]{32}$/.test(h), `an id is 32 lowercase hex characters, got ${JSON.stringify(h)}`)
  return BigInt(`0x${h}`)
}

type Json = Record<string, unknown>

/** Parses stdout, which must be exactly one JSON object on one line. */
function parseReport(run: Run): Json {
  assert.is(run.status, 0, `exit status; stderr: ${run.stderr}`)
  assert.ok(run.stdout.endsWith('\n'), 'stdout ends with a newline')
  const lines = run.stdout.trimEnd().split('\n')
  assert.is(lines.length, 1, 'exactly one line on stdout')
  const value: unknown = JSON.parse(lines[0]!)
  assert.type(value, 'object')
  assert.ok(value !== null && !Array.isArray(value), 'a JSON object')
  return value as Json
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)

function checkContract(r: Json, seed: string, nodes: number, lookups: number): void {
  assert.is(r.seed, seed)
  assert.is(r.nodes, nodes)
  assert.is(r.live, nodes)
  assert.is(r.lookups, lookups)
  for (const k of ['delivered', 'correct', 'incorrect', 'lost', 'wallMs', 'peakRssMb'])
    assert.ok(isNum(r[k]), k)
  assert.is((r.delivered as number) + (r.lost as number), lookups)
  assert.is((r.correct as number) + (r.incorrect as number), r.delivered)
  const hops = r.hops as Json
  for (const k of ['mean', 'p50', 'p99', 'max']) assert.ok(isNum(hops[k]), `hops.${k}`)
  assert.ok(
    Array.isArray(hops.histogram) && hops.histogram.every((c) => Number.isInteger(c)),
    'hops.histogram',
  )
  const rdp = r.rdp as Json
  for (const k of ['mean', 'p50', 'p99']) assert.ok(isNum(rdp[k]), `rdp.${k}`)
  const messages = r.messages as Json
  assert.ok(isNum(messages.total) && isNum(messages.perNode), 'messages')
  assert.type(messages.byType, 'object')
  for (const k of ['joinMessagesPerNode', 'maintenancePerNodePerSec', 'simulatedMs']) {
    assert.ok(k in r, `${k} is present`)
    assert.ok(r[k] === null || isNum(r[k]), k)
  }
  assert.ok((r.peakRssMb as number) > 0)
}

/** Recomputes correctness and the hop histogram from nodes.json and lookups.ndjson. */
function checkFiles(dir: string, r: Json): void {
  const nodes = (JSON.parse(readFileSync(join(dir, 'nodes.json'), 'utf8')) as string[]).map(hexToBig)
  assert.is(nodes.length, r.nodes)
  assert.is(new Set(nodes).size, nodes.length, 'distinct node ids')
  const members = new Set(nodes)
  const text = readFileSync(join(dir, 'lookups.ndjson'), 'utf8')
  const lines = text.split('\n')
  assert.is(lines.pop(), '', 'the file ends with a newline')
  assert.is(lines.length, r.lookups)
  let correct = 0
  let hopSum = 0
  const histogram: number[] = []
  for (const [i, line] of lines.entries()) {
    const l = JSON.parse(line) as { key: string; from: string; deliveredAt: string | null; hops: number }
    const key = hexToBig(l.key)
    assert.ok(members.has(hexToBig(l.from)), `line ${i + 1}: from is a node`)
    assert.ok(l.deliveredAt !== null, `line ${i + 1}: delivered`)
    const root = nodes.reduce((best, x) => (refCompareDistance(key, x, best) < 0 ? x : best))
    assert.is(hexToBig(l.deliveredAt), root, `line ${i + 1}: delivered at the numerically closest node`)
    correct++
    assert.ok(Number.isInteger(l.hops) && l.hops >= 0)
    histogram[l.hops] = (histogram[l.hops] ?? 0) + 1
    hopSum += l.hops
  }
  for (let h = 0; h < histogram.length; h++) histogram[h] ??= 0
  assert.is(r.correct, correct, 'correct equals the recount')
  assert.is(r.incorrect, 0)
  const hops = r.hops as Json
  assert.equal(hops.histogram, histogram, 'the hop histogram equals the recount')
  assert.is(hops.max, histogram.length - 1)
  assert.ok(Math.abs((hops.mean as number) - hopSum / lines.length) < 1e-9, 'hops.mean')
  assert.is((r.messages as Json).total, hopSum)
}

/** The report without the fields that measure the machine rather than the run. */
const stable = (r: Json): Json => {
  const { wallMs: _w, peakRssMb: _p, buildMs: _b, routeMs: _r, ...rest } = r
  return rest
}

test('sim --static --json: one JSON object with the contract fields; files recount to the same answer', () => {
  const dir = freshDir()
  const run = sim(['--static', '--nodes', '300', '--lookups', '2000', '--seed', '5', '--json', '--out', dir])
  const r = parseReport(run)
  checkContract(r, '5', 300, 2000)
  assert.ok(run.stderr.includes('PASTRY_SEED=5'), 'the seed is printed on stderr')
  checkFiles(dir, r)
})

test('sim --static: the same seed twice gives the same report and files', async () => {
  const [d1, d2] = [freshDir(), freshDir()]
  const args = (dir: string) => [
    '--static',
    '--nodes',
    '300',
    '--lookups',
    '2000',
    '--seed',
    '5',
    '--json',
    '--out',
    dir,
  ]
  const [a, b] = await Promise.all([simAsync(args(d1)), simAsync(args(d2))])
  const ra = parseReport(a)
  const rb = parseReport(b)
  assert.equal(stable(ra), stable(rb))
  for (const f of ['nodes.json', 'lookups.ndjson']) {
    assert.ok(readFileSync(join(d1, f)).equals(readFileSync(join(d2, f))), `${f} is identical`)
  }
})

test(`sim --static with other options and this process's seed (${SEED}): still all correct`, () => {
  const dir = freshDir()
  const seed = String(SEED)
  const run = sim([
    '--static',
    '--nodes',
    '500',
    '--lookups',
    '1500',
    '--seed',
    seed,
    '--b',
    '2',
    '--leaf-set',
    '8',
    '--topology',
    'plane',
    '--no-pns',
    '--json',
    '--out',
    dir,
  ])
  const r = parseReport(run)
  checkContract(r, seed, 500, 1500)
  assert.equal([r.b, r.leafSetSize, r.topology, r.pns], [2, 8, 'plane', false])
  checkFiles(dir, r)
  // Plane latencies are a metric: no route is faster than the direct link.
  assert.ok(((r.rdp as Json).mean as number) >= 1)
})

function ringDistance(a: bigint, b: bigint): bigint {
  const M = 1n << 128n
  const d = (((a - b) % M) + M) % M
  return d > M - d ? M - d : d
}

test('sim (protocol mode) --json --out: nodes join through the protocol; files recount to the same answer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pastry-sim-protocol-'))
  const run = sim([
    '--nodes',
    '120',
    '--lookups',
    '600',
    '--seed',
    '3',
    '--fail',
    '0.1',
    '--json',
    '--out',
    dir,
  ])
  assert.is(run.status, 0, run.stderr)
  const report = JSON.parse(run.stdout)
  assert.is(report.mode, 'protocol')
  for (const field of [
    'joinMessagesPerNode',
    'maintenancePerNodePerSec',
    'simulatedMs',
    'wallMs',
    'peakRssMb',
  ]) {
    assert.type(report[field], 'number', field)
  }
  assert.is(report.lookups, 600)
  assert.is(report.lost, 0)
  assert.is(report.incorrect, 0)
  assert.is(report.correct, 600)
  const nodes: string[] = JSON.parse(readFileSync(join(dir, 'nodes.json'), 'utf8'))
  assert.is(nodes.length, report.live)
  const lines = readFileSync(join(dir, 'lookups.ndjson'), 'utf8').trim().split('\n')
  assert.is(lines.length, 600)
  const ring = nodes.map((h) => BigInt(`0x${h}`))
  let recount = 0
  for (const line of lines) {
    const l = JSON.parse(line)
    const key = BigInt(`0x${l.key}`)
    let best = ring[0]!
    for (const x of ring) {
      const d = ringDistance(key, x)
      const e = ringDistance(key, best)
      if (d < e || (d === e && x < best)) best = x
    }
    if (l.deliveredAt !== null && BigInt(`0x${l.deliveredAt}`) === best) recount++
  }
  assert.is(recount, report.correct)
})

test('sim with a heap too small for the run: it runs again in a child with a larger heap, same report', () => {
  // 1,200 nodes with PNS hold about 45 MB once settled: with the old space limited to 24 MB, the
  // process aborts with "heap out of memory" (exit 134) if it runs the simulation itself
  // (PASTRY_SIM_RESPAWNED=1 shows it).
  const args = ['sim', '--nodes', '1200', '--lookups', '300', '--seed', '11', '--json']
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' }
  delete env.PASTRY_SEED
  delete env.PASTRY_SIM_RESPAWNED
  const [script, ...flags] = [...NODE_ARGS].reverse()
  const small = spawnSync(
    process.execPath,
    [...flags.reverse(), '--max-old-space-size=24', script!, ...args],
    {
      cwd: ROOT,
      env,
      encoding: 'utf8',
    },
  )
  assert.is(small.status, 0, small.stderr)
  assert.match(
    small.stderr,
    /heap and the limit is \d+ MB: running it in a child process with --max-old-space-size=\d+/,
  )
  const report = JSON.parse(small.stdout)
  assert.is(report.nodes, 1200)
  assert.is(report.lookups, 300)
  assert.is(report.correct, 300)
  // The child is the same deterministic run as one started with enough heap.
  const big = sim(args.slice(1))
  assert.is(big.status, 0, big.stderr)
  assert.not.match(big.stderr, /running it in a child process/)
  const { wallMs: _w1, peakRssMb: _p1, ...a } = report
  const { wallMs: _w2, peakRssMb: _p2, ...b } = JSON.parse(big.stdout)
  assert.equal(a, b)
})

test('the larger-heap child: heap limit raised, 64 MB semi-space unless one was given', () => {
  assert.equal(childExecArgv(['--conditions=source'], '', 9000), [
    '--conditions=source',
    '--max-old-space-size=9000',
    '--max-semi-space-size=64',
  ])
  // A semi-space chosen on the command line or in NODE_OPTIONS is the user's, and stays.
  assert.equal(childExecArgv(['--max-semi-space-size=32'], '', 9000), [
    '--max-semi-space-size=32',
    '--max-old-space-size=9000',
  ])
  assert.equal(childExecArgv([], '--max-old-space-size=100 --max-semi-space-size=8', 9000), [
    '--max-old-space-size=9000',
  ])
})

test('sim --lookup-retry-ms: roots answer, unanswered lookups are sent again, each counted once', () => {
  // Under 5 % loss some answers (direct messages, not acknowledged) are lost, so some lookups are
  // sent again although delivered: each such copy is a duplicate, not a second lookup.
  const args = [
    '--nodes',
    '80',
    '--lookups',
    '400',
    '--loss',
    '0.05',
    '--lookup-retry-ms',
    '3000',
    '--seed',
    '4',
  ]
  const run = sim([...args, '--json'])
  assert.is(run.status, 0, run.stderr)
  const r = JSON.parse(run.stdout)
  const what = JSON.stringify({
    retried: r.retried,
    answered: r.answered,
    duplicates: r.duplicates,
    lost: r.lost,
  })
  assert.is(r.lookups, 400)
  assert.is(r.lost, 0, what)
  assert.is(r.incorrect, 0, what)
  assert.ok(r.answered > 0.9 * r.lookups && r.answered <= r.lookups, what)
  // Every lookup the origin had no answer for was sent again (no origin crashes here).
  assert.ok(r.retried >= r.lookups - r.answered, what)
  assert.ok(r.deliveredByRetry <= r.retried, what)
  const text = sim(args)
  assert.is(text.status, 0, text.stderr)
  assert.ok(text.stdout.includes(`retries     sent again ${r.retried}`), text.stdout)
})

test('sim --static without --json prints a readable summary', () => {
  const run = sim(['--static', '--nodes', '50', '--lookups', '100', '--seed', '9'])
  assert.is(run.status, 0, run.stderr)
  assert.ok(run.stdout.includes('Pastry static overlay: 50 nodes'), run.stdout)
  assert.ok(run.stdout.includes('correct 100'), run.stdout)
  assert.throws(() => JSON.parse(run.stdout))
})

test('bad options exit 2 with a message on stderr and nothing on stdout', async () => {
  const cases: [string[], RegExp][] = [
    [['--static', '--nodes', '0'], /--nodes must be an integer/],
    [['--static', '--nodes', 'abc'], /--nodes must be an integer/],
    [['--static', '--b', '3'], /b must be 1, 2, 4 or 8/],
    [['--static', '--leaf-set', '5'], /leaf-set size L must be an even integer/],
    [['--static', '--topology', 'torus'], /--topology must be one of sphere, plane, uniform/],
    [['--static', '--bogus'], /bogus/],
    [['--nodes', '10', '--fail', '1.5'], /--fail must be a number in \[0, 1\)/],
    [['--nodes', '10', '--loss=-0.1'], /--loss must be a number in \[0, 1\)/],
    [['--nodes', '10', '--churn-session-min', '30'], /--churn-session-min and --duration-min go together/],
    [['--static', '--fail', '0.1'], /--fail needs the protocol simulation/],
    [['--nodes', '10', '--lookup-retry-ms', '0'], /--lookup-retry-ms must be a positive number/],
    [['--static', '--lookup-retry-ms', '500'], /--lookup-retry-ms needs the protocol simulation/],
  ]
  const runs = await Promise.all(cases.map(([args]) => simAsync([...args, '--seed', '1'])))
  cases.forEach(([args, message], i) => {
    const run = runs[i]!
    const what = `pastry sim ${args.join(' ')}`
    assert.is(run.status, 2, `${what}: exit status; stderr: ${run.stderr}`)
    assert.is(run.stdout, '', `${what}: nothing on stdout`)
    assert.ok(run.stderr.startsWith('pastry: '), `${what}: ${run.stderr}`)
    assert.ok(message.test(run.stderr), `${what}: stderr should match ${message}: ${run.stderr}`)
    assert.ok(run.stderr.includes('Usage: pastry sim'), `${what}: usage follows the message`)
  })
})

test.after(() => {
  rmSync(scratch, { recursive: true, force: true })
})

test.run()
