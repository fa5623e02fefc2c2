/*
 * Theory of operation
 *
 * The protocol experiment (protocol-experiment.ts) run by two simulator shards in two worker
 * threads, one per half of the topology (sim/shard/link.ts). Each shard places every node (the
 * same ids, positions and handles, drawn from the same seed) but makes and runs only its own, and
 * both run the experiment's script: the same commands at the same times, drawing the same random
 * numbers. A command acts only on the shard's own nodes; a lookup from the other shard's node is
 * only numbered here, so that both shards number lookups alike.
 *
 * The phases are those of the single-threaded experiment:
 * 1. join: each join command picks a random active node as the bootstrap, so it waits until the
 *    other shard has run everything earlier and sees the same membership;
 * 2. until every node is active, in lockstep (the end is a fact about both shards); then settle
 *    and measure maintenance up to fixed times;
 * 3. lookups: membership no longer changes (checked), so lookup commands run without waiting;
 * 4. drain, in lockstep, until every lookup has been delivered at one shard or the other.
 *
 * Each shard reports its counters as plain data, and the main thread adds them up. Runs with
 * failures, loss, churn, lookup retries or the codec are not supported (ConfigError).
 */
import { Worker } from 'node:worker_threads'
import {
  ConfigError,
  createRng,
  type Id,
  MESSAGE_TYPE_SLOTS,
  MESSAGE_TYPES,
  MESSAGES,
  type PastryNode,
  randomId,
} from '@pastry/core'
import {
  experimentConfig,
  experimentNodes,
  type ProtocolExperimentOptions,
  type ProtocolExperimentReport,
} from './protocol-experiment.js'
import { linkBytes, ShardLink } from './sim/shard/link.js'
import { Simulator } from './sim/simulator.js'
import { createTopology } from './topology.js'

/** Options a shard needs: the experiment's, without callbacks. */
export type ShardExperimentOptions = Omit<ProtocolExperimentOptions, 'onProgress' | 'onNodes' | 'onLookup'>

/** What a shard reports: plain data, added up by the main thread. */
export interface ShardResult {
  readonly self: number
  readonly events: number
  readonly now: number
  readonly traceHash: string
  readonly sent: number[]
  readonly sentBytes: number[]
  readonly joins: number
  readonly joinMessages: number
  readonly hopHistogram: number[]
  readonly rdp: number[]
  readonly delivered: number
  readonly correct: number
  readonly incorrect: number
  readonly duplicates: number
  readonly byInactive: number
  readonly routeFailed: number
  /** Maintenance messages sent over the measuring window, and the node-ms lived in it. */
  readonly maintenance: number
  readonly windowNodeMs: number
  readonly notActiveAfterJoin: number
  readonly leafSetMismatches: number
  readonly membershipChangesDuringLookups: number
  readonly live: number
  readonly nodes: number
  readonly nodeEvents: Record<string, number>
  readonly leafSetSum: number
  readonly routingTableSum: number
  readonly owned: number
}

const RING_WORDS = 1 << 22
const EMPTY = new Uint8Array(0)
const LOOKUP_APP = 'sim'
/** Horizons are shortened by this much (ms), against rounding in the latency arithmetic. */
const HORIZON_SLACK = 1e-6

function checkOptions(options: ShardExperimentOptions): void {
  if ((options.failFraction ?? 0) > 0) throw new ConfigError('a sharded run supports no --fail')
  if ((options.loss ?? 0) > 0) throw new ConfigError('a sharded run supports no --loss')
  if (options.churnSessionMin !== undefined) throw new ConfigError('a sharded run supports no churn')
  if (options.lookupRetry !== undefined) throw new ConfigError('a sharded run supports no lookup retries')
  if (options.encode === true) throw new ConfigError('a sharded run does not pass messages through the codec')
}

/** Runs one shard of the experiment in this thread, linked to the other through `buffer`. */
export function runShard(
  options: ShardExperimentOptions,
  self: 0 | 1,
  buffer: SharedArrayBuffer,
): ShardResult {
  checkOptions(options)
  const n = options.nodes
  const lookups = options.lookups
  const { topologyKind, tls, nodeConfig } = experimentConfig(options)
  const rng = createRng(options.seed).derive('experiment')
  const topology = createTopology(topologyKind, n, createRng(options.seed).derive('topology'))
  const margin = (p: number) => topology.splitMargin!(p)
  let sim!: Simulator<PastryNode>
  const handles = {
    indexOf: (h: { readonly address: string }) => {
      const i = sim.indexOfAddress(h.address)
      if (i === undefined)
        throw new ConfigError(`a sharded run carries only simulator nodes, not ${h.address}`)
      return i
    },
    handleOf: (i: number) => sim.handleOf(i),
  }
  const link = new ShardLink(buffer, self, RING_WORDS, handles)
  sim = new Simulator<PastryNode>({
    seed: options.seed,
    topology,
    ...experimentNodes(nodeConfig),
    shard: {
      link,
      ownerOf: (p) => {
        const m = margin(p)
        return m > 0 || Object.is(m, 0) ? 0 : 1
      },
      horizonOf: (p) => Math.max(0, Math.abs(margin(p)) - HORIZON_SLACK),
    },
  })

  // 1. Join.
  const spacing = options.joinSpacingMs ?? 10
  sim.addNodes(n)
  if (!sim.isRemote(0)) sim.start(0)
  const joinFrom = (i: number) => (s: Simulator<PastryNode>) => {
    s.applyRemoteActivity(s.now)
    const boot = s.oracle.randomLive(rng) ?? 0
    if (!s.isRemote(i)) s.join(i, [boot])
    if (i + 1 < n) s.at((i + 1) * spacing, joinFrom(i + 1))
  }
  if (n > 1) sim.at(spacing, joinFrom(1))
  sim.runSharded((n - 1) * spacing)
  const joinDeadline = n * spacing + 30 * 60_000
  sim.runSharded(joinDeadline, {
    lockstep: true,
    until: (s) => {
      s.applyRemoteActivity()
      return s.oracle.liveCount === n
    },
  })
  const joined = Math.max(sim.lastActivity, (n - 1) * spacing)

  // 2. Settle, measuring maintenance over the window.
  let notActiveAfterJoin = 0
  for (let i = 0; i < n; i++) if (!sim.isRemote(i) && sim.node(i)?.state !== 'active') notActiveAfterJoin++
  const settleEnd = joined + (options.settleMs ?? 2 * tls)
  sim.runSharded(settleEnd)
  sim.beginWindow()
  const measureEnd = settleEnd + (options.measureMs ?? 2 * tls)
  sim.runSharded(measureEnd)
  const window = sim.metrics.windowTotals(measureEnd)
  sim.applyRemoteActivity()
  const leafSetMismatches = sim.oracle.checkLeafSets(
    (i) =>
      sim.isRemote(i)
        ? undefined
        : (sim
            .node(i)
            ?.leafSet.members()
            .map((m) => m.id) ?? []),
    options.leafSetSize ?? 16,
  ).length

  // 3. Lookups. Membership is fixed from here on: count any change, and report it.
  const lookupSpacing = options.lookupSpacingMs ?? 1
  const lookupRng = createRng(options.seed).derive('lookups')
  const start = measureEnd
  const activityBefore = sim.lastActivity
  // Each lookup's origin and key are drawn when it is scheduled (in the same order as the
  // single-threaded run draws them), so that its command names the node it acts on.
  const lookupAt =
    (k: number, from: number | undefined, key: Id) =>
    (s: Simulator<PastryNode>): void => {
      if (k + 1 < lookups) schedule(s, k + 1)
      if (from === undefined) return
      if (s.isRemote(from)) s.routeElsewhere(from, key)
      else s.route(from, key, LOOKUP_APP, EMPTY)
    }
  const schedule = (s: Simulator<PastryNode>, k: number) => {
    const from = s.oracle.randomLive(lookupRng)
    const key = randomId(lookupRng)
    s.at(start + k * lookupSpacing, lookupAt(k, from, key), from ?? -1)
  }
  if (lookups > 0) schedule(sim, 0)
  sim.runSharded(start + lookups * lookupSpacing, { freeCommands: true })
  sim.runSharded(sim.now + 5 * 60_000, { lockstep: true, until: (s) => s.deliveredLookups >= lookups })
  sim.applyRemoteActivity()
  const membershipChanges = sim.lastActivity > activityBefore ? 1 : 0

  const report = sim.report()
  let leafSetSum = 0
  let routingTableSum = 0
  let owned = 0
  for (let i = 0; i < n; i++) {
    const node = sim.node(i)
    if (sim.isRemote(i) || node === undefined) continue
    owned++
    if (node.state !== 'active') continue
    leafSetSum += node.leafSet.size
    routingTableSum += node.routingTable.size
  }
  return {
    self,
    events: report.events,
    now: sim.now,
    traceHash: report.traceHash,
    sent: [...sim.metrics.sent],
    sentBytes: [...sim.metrics.sentBytes],
    joins: sim.metrics.joins,
    joinMessages: sim.metrics.classTotal('join'),
    hopHistogram: report.hops.histogram,
    rdp: [...sim.metrics.rdpSamples()],
    delivered: report.lookups.delivered,
    correct: report.lookups.correct,
    incorrect: report.lookups.incorrect,
    duplicates: report.lookups.duplicates,
    byInactive: report.lookups.byInactive,
    routeFailed: report.lookups.failed,
    maintenance: window.maintenance,
    windowNodeMs: window.nodeMs,
    notActiveAfterJoin,
    leafSetMismatches,
    membershipChangesDuringLookups: membershipChanges,
    live: sim.oracle.liveCount,
    nodes: n,
    nodeEvents: report.nodeEvents,
    leafSetSum,
    routingTableSum,
    owned,
  }
}

/**
 * Runs the protocol experiment in two worker threads, one shard each, and adds up their reports.
 * Deterministic for a given seed and options, but not the same run as {@link runProtocolExperiment}
 * to the event: commands see membership as of the instant before them.
 */
export async function runProtocolExperimentSharded(
  options: ProtocolExperimentOptions,
): Promise<ProtocolExperimentReport> {
  const { onProgress: _p, onNodes, onLookup, ...plain } = options
  // The shards' nodes and lookups live in their threads; progress is not reported either.
  if (onNodes !== undefined || onLookup !== undefined)
    throw new ConfigError('a sharded run does not call onNodes or onLookup')
  checkOptions(plain)
  const buffer = new SharedArrayBuffer(linkBytes(RING_WORDS))
  const here = import.meta.url
  const workerUrl = new URL(here.endsWith('.ts') ? './shard-worker.ts' : './shard-worker.js', here)
  const workers: Worker[] = []
  const results = await Promise.all(
    [0, 1].map(
      (self) =>
        new Promise<ShardResult>((resolve, reject) => {
          const workerData = { options: plain, self, buffer }
          // Run from the TypeScript sources (tsx), a worker must register tsx before loading them.
          const w = here.endsWith('.ts')
            ? new Worker(
                `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}) })`,
                { eval: true, workerData },
              )
            : new Worker(workerUrl, { workerData })
          workers.push(w)
          w.once('message', (r: ShardResult) => resolve(r))
          // A shard that fails leaves the other waiting for it: stop both.
          w.once('error', (e) => {
            for (const other of workers) void other.terminate()
            reject(e)
          })
          // After its report this changes nothing; before it, the shard is gone without one.
          w.once('exit', (code) => reject(new Error(`shard ${self} exited (code ${code}) without a report`)))
        }),
    ),
  )
  return merge(options, results)
}

function merge(options: ProtocolExperimentOptions, rs: readonly ShardResult[]): ProtocolExperimentReport {
  if (rs.some((r) => r.membershipChangesDuringLookups > 0))
    throw new Error('membership changed during the lookups, which a sharded run cannot judge')
  const sum = (f: (r: ShardResult) => number) => rs.reduce((a, r) => a + f(r), 0)
  const byType: Record<string, number> = {}
  const bytesByType: Record<string, number> = {}
  let total = 0
  let bytes = 0
  for (const type of MESSAGE_TYPES) {
    const code = MESSAGES[type].code
    if (code >= MESSAGE_TYPE_SLOTS) continue
    const c = sum((r) => r.sent[code]!)
    const b = sum((r) => r.sentBytes[code]!)
    if (c > 0) {
      byType[type] = c
      bytesByType[type] = b
    }
    total += c
    bytes += b
  }
  const histogram: number[] = []
  for (const r of rs)
    for (let h = 0; h < r.hopHistogram.length; h++) histogram[h] = (histogram[h] ?? 0) + r.hopHistogram[h]!
  const hopCount = histogram.reduce((a, c) => a + c, 0)
  const hopSum = histogram.reduce((a, c, h) => a + c * h, 0)
  const hopAt = (q: number) => {
    if (hopCount === 0) return 0
    const rank = Math.ceil(q * hopCount)
    let seen = 0
    for (let h = 0; h < histogram.length; h++) {
      seen += histogram[h]!
      if (seen >= rank) return h
    }
    return histogram.length - 1
  }
  let max = 0
  histogram.forEach((c, h) => {
    if (c > 0) max = h
  })
  const samples = Float64Array.from(rs.flatMap((r) => r.rdp)).sort()
  let rdpSum = 0
  for (let i = 0; i < samples.length; i++) rdpSum += samples[i]!
  const rdpAt = (q: number) =>
    samples[Math.min(samples.length - 1, Math.max(0, Math.ceil(q * samples.length) - 1))]!
  const nodeEvents: Record<string, number> = {}
  for (const r of rs)
    for (const [k, v] of Object.entries(r.nodeEvents)) nodeEvents[k] = (nodeEvents[k] ?? 0) + v
  const n = options.nodes
  const delivered = sum((r) => r.delivered)
  const windowNodeSec = sum((r) => r.windowNodeMs) / 1000
  const active = rs.reduce((a, r) => a + r.owned, 0)
  const joins = sum((r) => r.joins)
  return {
    mode: 'protocol',
    seed: options.seed,
    nodes: n,
    live: rs[0]!.live,
    lookups: options.lookups,
    delivered,
    correct: sum((r) => r.correct),
    incorrect: sum((r) => r.incorrect),
    lost: options.lookups - delivered,
    duplicates: sum((r) => r.duplicates),
    byInactive: sum((r) => r.byInactive),
    routeFailed: sum((r) => r.routeFailed),
    retried: 0,
    deliveredByRetry: 0,
    answered: 0,
    hops: { mean: hopCount === 0 ? 0 : hopSum / hopCount, p50: hopAt(0.5), p99: hopAt(0.99), max, histogram },
    rdp:
      samples.length === 0
        ? { mean: 0, p50: 0, p99: 0 }
        : { mean: rdpSum / samples.length, p50: rdpAt(0.5), p99: rdpAt(0.99) },
    messages: { total, perNode: n === 0 ? 0 : total / n, byType },
    bytes: { total: bytes, byType: bytesByType },
    joinMessagesPerNode: joins === 0 ? null : sum((r) => r.joinMessages) / joins,
    maintenancePerNodePerSec: windowNodeSec > 0 ? sum((r) => r.maintenance) / windowNodeSec : 0,
    simulatedMs: Math.max(...rs.map((r) => r.now)),
    b: options.b ?? 4,
    leafSetSize: options.leafSetSize ?? 16,
    topology: options.topology ?? 'sphere',
    pns: options.pns ?? true,
    failed: 0,
    churn: null,
    churnPhase: null,
    table:
      active === 0
        ? null
        : {
            meanLeafSet: sum((r) => r.leafSetSum) / active,
            meanRoutingTable: sum((r) => r.routingTableSum) / active,
          },
    nodeEvents,
    events: sum((r) => r.events),
    traceHash: rs.map((r) => r.traceHash).join(''),
    notActiveAfterJoin: sum((r) => r.notActiveAfterJoin),
    leafSetMismatches: sum((r) => r.leafSetMismatches),
  }
}
