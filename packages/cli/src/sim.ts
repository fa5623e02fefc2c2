/*
 * `pastry sim`: the simulation command. Its options and its --json output are a contract that other
 * tools parse; see the CLI's README.
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { checkDigitBits, checkLeafSetSize, type Id, type ProtocolConfig } from '@pastry/core'
import {
  type ProtocolExperimentReport,
  runProtocolExperiment,
  runStaticExperiment,
  type StaticExperimentReport,
  seedFromEnv,
  TOPOLOGY_KINDS,
  type TopologyKind,
} from '@pastry/testkit'
import { UsageError } from './errors.js'
import { runWithHeap, simHeapNeedMb } from './heap.js'
import { createProgress } from './progress.js'
import { type PubSubExperimentReport, runPubSubExperiment } from './pubsub-sim.js'

export const SIM_USAGE = `Usage: pastry sim [options]

Builds a Pastry overlay in one process, deterministically from a seed, and routes random lookups.

Options:
  --nodes N                 nodes in the overlay (default 1000)
  --lookups K               random lookups from random live nodes (default 10000)
  --seed S                  seed; PASTRY_SEED also sets it; printed on stderr either way
  --b BITS                  bits per digit: 1, 2, 4 or 8 (default 4)
  --leaf-set L              leaf-set size, even, 2..256 (default 16)
  --topology KIND           sphere | plane | uniform (default sphere)
  --no-pns                  choose routing-table entries at random, not by proximity
  --static                  build perfect tables from a global view (the routing-only experiment)
  --fail FRACTION           crash this fraction of nodes at once, then repair   (protocol mode)
  --loss P                  message loss probability                          (protocol mode)
  --churn-session-min M     mean session time of churn, in minutes           (protocol mode)
  --duration-min D          simulated churn duration, in minutes              (protocol mode)
  --lookup-retry-ms MS      lookups as requests: the root answers the origin, and an origin with
                            no answer after MS sends the lookup again, 3 sends at most (protocol mode)
  --pubsub                  the pub/sub experiment: Scribe trees and Peter delivery over the
                            protocol (with --topics, --publishes, --fail)
  --topics T                topics, subscribers per topic Zipf-like (default 100)   (--pubsub)
  --publishes K             publishes from random nodes over 60 s (default 1000)    (--pubsub)
  --json                    print exactly one JSON object on stdout
  --out DIR                 write nodes.json and lookups.ndjson to DIR
  -h, --help                show this help

Without --static, nodes join one by one (overlapping) through the real protocol in the
deterministic simulator; the overlay settles, --fail crashes a fraction at once and lets it be
repaired, churn runs if asked, and then the lookups are routed.`

const PROTOCOL_ONLY = ['fail', 'loss', 'churn-session-min', 'duration-min', 'lookup-retry-ms'] as const
/** Sends of a lookup at most with --lookup-retry-ms. */
const LOOKUP_ATTEMPTS = 3

function intOption(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  }
  return n
}

/**
 * Runs `pastry sim` with its arguments (after `sim`). Resolves to the process exit code. With
 * `entry` (the `pastry` script), a run that needs more heap than this process may use runs in a
 * child process started through it (see heap.ts).
 */
export async function runSim(argv: readonly string[], entry?: string): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message.replace(/^TypeError.*?: /, '') : String(e))
  }
  const v = parsed.values
  if (v.help === true) {
    process.stdout.write(`${SIM_USAGE}\n`)
    return 0
  }
  if (parsed.positionals.length > 0)
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`)
  const nodes = intOption('nodes', v.nodes, 1000, 1, 2_000_000)
  const lookups = intOption('lookups', v.lookups, 10_000, 0, 100_000_000)
  let b: number
  let leafSetSize: number
  try {
    b = checkDigitBits(intOption('b', v.b, 4, 1, 8))
    leafSetSize = checkLeafSetSize(intOption('leaf-set', v['leaf-set'], 16, 2, 256))
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message)
  }
  const topology = (v.topology ?? 'sphere') as TopologyKind
  if (!TOPOLOGY_KINDS.includes(topology)) {
    throw new UsageError(
      `--topology must be one of ${TOPOLOGY_KINDS.join(', ')}, got ${JSON.stringify(v.topology)}`,
    )
  }
  for (const name of PROTOCOL_ONLY) {
    if (v[name] !== undefined && v.static === true) {
      throw new UsageError(`--${name} needs the protocol simulation; it cannot be combined with --static`)
    }
  }
  const fail = fractionOption('fail', v.fail)
  const loss = fractionOption('loss', v.loss)
  const churnSessionMin = positiveOption('churn-session-min', v['churn-session-min'])
  const churnDurationMin = positiveOption('duration-min', v['duration-min'])
  const lookupRetryMs = positiveOption('lookup-retry-ms', v['lookup-retry-ms'])
  if ((churnSessionMin === undefined) !== (churnDurationMin === undefined)) {
    throw new UsageError('--churn-session-min and --duration-min go together')
  }
  if (v.pubsub === true) {
    for (const name of [
      'static',
      'out',
      'loss',
      'churn-session-min',
      'duration-min',
      'lookup-retry-ms',
      'lookups',
      'no-pns',
    ] as const) {
      if (v[name] !== undefined) throw new UsageError(`--${name} cannot be combined with --pubsub`)
    }
  } else {
    for (const name of ['topics', 'publishes'] as const) {
      if (v[name] !== undefined) throw new UsageError(`--${name} needs --pubsub`)
    }
  }
  const topics = intOption('topics', v.topics, 100, 1, 100_000)
  const publishes = intOption('publishes', v.publishes, 1000, 0, 10_000_000)
  const pns = v['no-pns'] !== true
  if (entry !== undefined) {
    const kind = v.pubsub === true ? 'pubsub' : v.static === true ? 'static' : 'protocol'
    const need = simHeapNeedMb(kind, nodes, kind === 'pubsub' ? 0 : lookups, pns)
    const code = await runWithHeap(need, entry, ['sim', ...argv], log)
    if (code !== undefined) return code
  }
  const seed = simSeed(v.seed)

  if (v.pubsub === true) {
    const progress = createProgress()
    let report: PubSubExperimentReport
    try {
      report = runPubSubExperiment({
        seed,
        nodes,
        topics,
        publishes,
        topology,
        config: { b: b as ProtocolConfig['b'], leafSetSize },
        ...(fail === undefined ? {} : { failFraction: fail }),
        onProgress: (phase, fraction) => progress.update(phase, fraction),
      })
    } finally {
      progress.done()
    }
    process.stdout.write(v.json === true ? `${JSON.stringify(report)}\n` : formatPubSubReport(report))
    return report.missing === 0 && report.duplicates === 0 && report.outOfOrder === 0 ? 0 : 1
  }

  const progress = createProgress()
  const out = v.out === undefined ? undefined : openOutput(v.out)
  const started = performance.now()
  const common = {
    nodes,
    lookups,
    seed,
    b,
    leafSetSize,
    topology,
    pns,
    onProgress: (phase: string, fraction: number) => progress.update(phase, fraction),
    ...(out === undefined ? {} : { onLookup: out.lookup, onNodes: out.nodes }),
  }
  let report: StaticExperimentReport | ProtocolExperimentReport
  try {
    report =
      v.static === true
        ? runStaticExperiment(common, () => performance.now())
        : runProtocolExperiment({
            ...common,
            ...(fail === undefined ? {} : { failFraction: fail }),
            ...(loss === undefined ? {} : { loss }),
            ...(churnSessionMin === undefined
              ? {}
              : { churnSessionMin, churnDurationMin: churnDurationMin! }),
            ...(lookupRetryMs === undefined
              ? {}
              : { lookupRetry: { timeoutMs: lookupRetryMs, attempts: LOOKUP_ATTEMPTS } }),
          })
  } finally {
    progress.done()
  }
  out?.finish()
  const result = {
    ...report,
    wallMs: Math.round(performance.now() - started),
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  }
  if (v.json === true) process.stdout.write(`${JSON.stringify(result)}\n`)
  else process.stdout.write(result.mode === 'static' ? formatReport(result) : formatProtocolReport(result))
  return 0
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`)
}

/** The run's seed: --seed, else PASTRY_SEED, else a fresh one (printed on stderr either way). */
function simSeed(option: string | undefined): string {
  const seed = option ?? seedFromEnv('pastry sim')
  if (option !== undefined) log(`[pastry sim] PASTRY_SEED=${seed}`)
  return seed
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      nodes: { type: 'string' },
      lookups: { type: 'string' },
      seed: { type: 'string' },
      b: { type: 'string' },
      'leaf-set': { type: 'string' },
      topology: { type: 'string' },
      'no-pns': { type: 'boolean' },
      fail: { type: 'string' },
      loss: { type: 'string' },
      'churn-session-min': { type: 'string' },
      'duration-min': { type: 'string' },
      'lookup-retry-ms': { type: 'string' },
      static: { type: 'boolean' },
      pubsub: { type: 'boolean' },
      topics: { type: 'string' },
      publishes: { type: 'string' },
      json: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
}

/** Writes nodes.json once the overlay exists, and streams lookups.ndjson as lookups happen. */
function openOutput(dir: string) {
  mkdirSync(dir, { recursive: true })
  const fd = openSync(join(dir, 'lookups.ndjson'), 'w')
  let buffer: string[] = []
  const flush = () => {
    if (buffer.length > 0) writeSync(fd, `${buffer.join('\n')}\n`)
    buffer = []
  }
  return {
    nodes: (ids: readonly Id[]) => {
      writeFileSync(join(dir, 'nodes.json'), `${JSON.stringify(ids.map((id) => id.toHex()))}\n`)
    },
    lookup: (l: { key: Id; from: Id; deliveredAt: Id | null; hops: number | null }) => {
      buffer.push(
        JSON.stringify({
          key: l.key.toHex(),
          from: l.from.toHex(),
          deliveredAt: l.deliveredAt?.toHex() ?? null,
          hops: l.hops,
        }),
      )
      if (buffer.length >= 10_000) flush()
    },
    finish: () => {
      flush()
      closeSync(fd)
    },
  }
}

function fractionOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const x = Number(value)
  if (value.trim() === '' || !Number.isFinite(x) || x < 0 || x >= 1) {
    throw new UsageError(`--${name} must be a number in [0, 1), got ${JSON.stringify(value)}`)
  }
  return x
}

function positiveOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const x = Number(value)
  if (value.trim() === '' || !Number.isFinite(x) || x <= 0) {
    throw new UsageError(`--${name} must be a positive number, got ${JSON.stringify(value)}`)
  }
  return x
}

function formatProtocolReport(r: ProtocolExperimentReport & { wallMs: number; peakRssMb: number }): string {
  const pct = (x: number) => `${((100 * x) / Math.max(1, r.lookups)).toFixed(2)}%`
  return [
    `Pastry overlay joined through the protocol: ${r.nodes} nodes (${r.live} live), b=${r.b}, L=${r.leafSetSize}, ${r.topology} topology, PNS ${r.pns ? 'on' : 'off'}`,
    `seed ${r.seed}`,
    '',
    `lookups     ${r.lookups}   delivered ${r.delivered}   correct ${r.correct} (${pct(r.correct)})   incorrect ${r.incorrect}   lost ${r.lost}`,
    ...(r.retried > 0 || r.answered > 0
      ? [
          `retries     sent again ${r.retried}   delivered first by a copy sent again ${r.deliveredByRetry}   answered at the origin ${r.answered}   duplicates ${r.duplicates}`,
        ]
      : []),
    `hops        mean ${r.hops.mean.toFixed(3)}   p50 ${r.hops.p50}   p99 ${r.hops.p99}   max ${r.hops.max}   (log_${1 << r.b} N = ${(Math.log(r.nodes) / Math.log(1 << r.b)).toFixed(3)})`,
    `histogram   ${r.hops.histogram.map((c, h) => `${h}:${c}`).join('  ')}`,
    `RDP         mean ${r.rdp.mean.toFixed(3)}   p50 ${r.rdp.p50.toFixed(3)}   p99 ${r.rdp.p99.toFixed(3)}`,
    `traffic     ${r.messages.total} messages (${r.messages.perNode.toFixed(1)} per node)   join ${r.joinMessagesPerNode?.toFixed(1) ?? '-'} per node   maintenance ${r.maintenancePerNodePerSec.toFixed(3)} per node per s`,
    `repair      crashed ${r.failed}   leaf sets differing from the oracle before lookups: ${r.leafSetMismatches}`,
    `time        simulated ${(r.simulatedMs / 1000).toFixed(1)} s   wall ${r.wallMs} ms   peak RSS ${r.peakRssMb} MB   events ${r.events}   trace ${r.traceHash}`,
    '',
  ].join('\n')
}

function formatPubSubReport(r: PubSubExperimentReport): string {
  return [
    `Pub/sub over a Pastry overlay joined through the protocol: ${r.nodes} nodes (${r.live} live), ${r.topics} topics, ${r.subscriptions} subscriptions`,
    `seed ${r.seed}`,
    '',
    `publishes   ${r.publishes}   acknowledged by a root ${r.acknowledged}   failed ${r.publishFailed}   refused ${r.refused}`,
    `delivery    ${r.delivered}/${r.expectedDeliveries} (${(100 * r.deliveryRatio).toFixed(3)}%)   missing ${r.missing}   duplicates ${r.duplicates}   out of order ${r.outOfOrder}   gaps ${r.gaps}`,
    `latency     p50 ${r.latencyMs.p50} ms   p99 ${r.latencyMs.p99} ms   max ${r.latencyMs.max} ms   (publish to delivery)`,
    `RDP         mean ${r.rdp.mean}   p50 ${r.rdp.p50}   p99 ${r.rdp.p99}   (tree delay from the root / direct delay from the root)`,
    `stress      children per node: mean ${r.stress.mean}   mean where > 0 ${r.stress.meanNonZero}   max ${r.stress.max}`,
    `traffic     ${r.messagesPerPublish} pub/sub messages per publish`,
    `crash       ${r.crashed} nodes (${r.crashedRoots} roots, ${r.crashedForwarders} forwarders)   longest delay of a later publish ${r.maxDelayAfterCrashMs ?? '-'} ms`,
    `time        simulated ${(r.simulatedMs / 1000).toFixed(1)} s   wall ${r.wallMs} ms   peak RSS ${r.peakRssMb} MB   trace ${r.traceHash}`,
    '',
  ].join('\n')
}

function formatReport(r: StaticExperimentReport & { wallMs: number; peakRssMb: number }): string {
  const pct = (x: number) => `${((100 * x) / Math.max(1, r.lookups)).toFixed(2)}%`
  const lines = [
    `Pastry static overlay: ${r.nodes} nodes, b=${r.b}, L=${r.leafSetSize}, ${r.topology} topology, PNS ${r.pns ? 'on' : 'off'}`,
    `seed ${r.seed}`,
    '',
    `lookups     ${r.lookups}   correct ${r.correct} (${pct(r.correct)})   incorrect ${r.incorrect}   lost ${r.lost}`,
    `hops        mean ${r.hops.mean.toFixed(3)}   p50 ${r.hops.p50}   p99 ${r.hops.p99}   max ${r.hops.max}   (log_${1 << r.b} N = ${(Math.log(r.nodes) / Math.log(1 << r.b)).toFixed(3)})`,
    `histogram   ${r.hops.histogram.map((c, h) => `${h}:${c}`).join('  ')}`,
    `RDP         mean ${r.rdp.mean.toFixed(3)}   p50 ${r.rdp.p50.toFixed(3)}   p99 ${r.rdp.p99.toFixed(3)}`,
    `tables      ${r.table.meanRoutingTableEntries.toFixed(1)} routing-table entries in ${r.table.meanRoutingTableRows.toFixed(2)} rows per node (mean)`,
    `time        build ${r.buildMs.toFixed(0)} ms   route ${r.routeMs.toFixed(0)} ms   wall ${r.wallMs} ms   peak RSS ${r.peakRssMb} MB`,
    '',
  ]
  return lines.join('\n')
}
