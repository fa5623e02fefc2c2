/*
 * The protocol experiment as one call: nodes join through the real protocol in the simulator, the
 * overlay settles, a fraction may crash at once and be repaired, churn may run, and random lookups
 * are routed and checked against the oracle. `pastry sim` (without --static) is a thin shell over
 * this.
 *
 * Phases, in virtual time:
 *   1. join: node 0 starts a ring; node i joins at i × joinSpacingMs through a random active node
 *      (so joins overlap: each takes several round trips);
 *   2. settle: run until every node is active, then for settleMs; then measure maintenance traffic
 *      over a further measureMs;
 *   3. fail (optional): crash a fraction of the live nodes at once, then run repairMs;
 *   4. churn (optional): Poisson arrivals at N / mean session and exponential sessions for
 *      durationMs; every node alive when churn starts gets a session too (a fresh exponential draw,
 *      which memorylessness makes the residual of a session in progress), so the overlay stays near
 *      N. Lookups are spread over this phase, so they meet the churn, and its traffic is counted
 *      per type (`churnPhase`);
 *   5. lookups: K lookups from random live nodes at lookupSpacingMs, then drain (churn stopped).
 */
import {
  ConfigError,
  createRng,
  type Id,
  MESSAGE_TYPE_SLOTS,
  MESSAGE_TYPES,
  MESSAGES,
  PastryNode,
  type ProtocolConfig,
  randomId,
  resolveConfig,
} from '@pastry/core'
import type { EventOf } from './sim/contract.js'
import { trafficClass } from './sim/metrics.js'
import type { NodeContext, SimReport, TableStats } from './sim/simulator.js'
import { Simulator } from './sim/simulator.js'
import type { Distribution } from './static-experiment.js'
import type { TopologyKind } from './topology.js'

/** Options for {@link runProtocolExperiment}. */
export interface ProtocolExperimentOptions {
  readonly nodes: number
  readonly lookups: number
  readonly seed: string
  readonly b?: number
  readonly leafSetSize?: number
  readonly topology?: TopologyKind
  readonly pns?: boolean
  /** Fraction of live nodes to crash at once after settling, in [0, 1). */
  readonly failFraction?: number
  /** Message loss probability on every link, in [0, 1). */
  readonly loss?: number
  /** Mean churn session, in minutes; churn runs for `churnDurationMin`. */
  readonly churnSessionMin?: number
  readonly churnDurationMin?: number
  /** Virtual ms between successive joins (default 10). */
  readonly joinSpacingMs?: number
  /** Virtual ms to settle after the last node is active (default 2 × Tls). */
  readonly settleMs?: number
  /** Virtual ms over which maintenance traffic is measured, after settling (default 2 × Tls). */
  readonly measureMs?: number
  /** Virtual ms between lookups (default 1). */
  readonly lookupSpacingMs?: number
  /**
   * Lookups made as a DHT application makes them (default: off, one route per lookup). The root
   * answers each delivered lookup with a direct message to its origin; an origin with no answer
   * after `timeoutMs` routes the lookup again (a new message for the same key), up to `attempts`
   * sends in all. The oracle counts a delivery of any copy as the lookup's, further ones as
   * duplicates. This is the end-to-end recovery for a message lost with a node that crashed while
   * holding it, which per-hop acknowledgements cannot cover.
   */
  readonly lookupRetry?: { readonly timeoutMs: number; readonly attempts: number }
  /** Protocol settings for every node. */
  readonly config?: Partial<ProtocolConfig>
  /** Pass every message through the codec (default false). */
  readonly encode?: boolean
  readonly onProgress?: (phase: string, fraction: number) => void
  /** Called once, when lookups start, with the live node ids. */
  readonly onNodes?: (ids: readonly Id[]) => void
  /** Called once per lookup at the end. */
  readonly onLookup?: (lookup: {
    readonly key: Id
    readonly from: Id
    readonly deliveredAt: Id | null
    readonly hops: number | null
  }) => void
}

/** Traffic and population during the churn phase of {@link runProtocolExperiment}. */
export interface ChurnPhaseReport {
  /** From `startChurn` to `stopChurn`: the span of the lookups. */
  readonly durationMs: number
  /** Live (active) nodes, sampled at each lookup: fewest, mean, most, and at the phase's end. */
  readonly live: { readonly min: number; readonly mean: number; readonly max: number; readonly end: number }
  /** Alive nodes (joining, active or leaving) averaged over the phase: node-seconds / seconds. */
  readonly meanAlive: number
  /** Maintenance-class messages sent in the phase per alive node per second (joiners' probes count). */
  readonly maintenancePerNodePerSec: number
  /** Join-class messages sent in the phase per alive node per second. */
  readonly joinPerNodePerSec: number
  /** Messages of each type sent in the phase (types with none are left out). */
  readonly sentByType: Record<string, number>
  /** The same per alive node per second. */
  readonly perNodePerSecByType: Record<string, number>
}

/** The report of {@link runProtocolExperiment}; the CLI prints it as the `--json` object. */
export interface ProtocolExperimentReport {
  readonly mode: 'protocol'
  readonly seed: string
  readonly nodes: number
  readonly live: number
  readonly lookups: number
  readonly delivered: number
  readonly correct: number
  readonly incorrect: number
  readonly lost: number
  readonly duplicates: number
  /** Deliveries by a node that was not active (a consistency breach; 0 expected). */
  readonly byInactive: number
  /** Lookups whose origin reported `routeFailed` (they count as lost too). */
  readonly routeFailed: number
  /** With `lookupRetry`: lookups sent again, and lookups first delivered by a copy sent again. */
  readonly retried: number
  readonly deliveredByRetry: number
  /** With `lookupRetry`: lookups whose origin got the root's answer. */
  readonly answered: number
  readonly hops: Distribution & { readonly max: number; readonly histogram: number[] }
  readonly rdp: Distribution
  readonly messages: {
    readonly total: number
    readonly perNode: number
    readonly byType: Record<string, number>
  }
  readonly bytes: { readonly total: number; readonly byType: Record<string, number> }
  readonly joinMessagesPerNode: number | null
  /** Maintenance messages per node per second once settled, before any failure or churn. */
  readonly maintenancePerNodePerSec: number
  readonly simulatedMs: number
  readonly b: number
  readonly leafSetSize: number
  readonly topology: TopologyKind
  readonly pns: boolean
  readonly failed: number
  readonly churn: SimReport['churn'] | null
  /** Traffic and population during churn, or null without churn. */
  readonly churnPhase: ChurnPhaseReport | null
  readonly table: SimReport['table']
  /**
   * Node events by type over the whole run, as the nodes emitted them: `nodeFailed` counts failure
   * verdicts (each node's own), `nodeRecovered` verdicts taken back, and so on.
   */
  readonly nodeEvents: Record<string, number>
  readonly events: number
  readonly traceHash: string
  /** Nodes not active when the settle phase ended (they never finished joining). */
  readonly notActiveAfterJoin: number
  /** Leaf sets that differ from the oracle's just before lookups (0 when converged). */
  readonly leafSetMismatches: number
}

/**
 * Runs the protocol experiment. Deterministic for a given seed and options. Throws the simulator's
 * `SimulationError` (which names the seed) if a node throws.
 */
export function runProtocolExperiment(options: ProtocolExperimentOptions): ProtocolExperimentReport {
  const n = options.nodes
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`nodes must be an integer ≥ 1, got ${n}`)
  const lookups = options.lookups
  if (!Number.isInteger(lookups) || lookups < 0)
    throw new ConfigError(`lookups must be an integer ≥ 0, got ${lookups}`)
  const failFraction = options.failFraction ?? 0
  if (!(failFraction >= 0 && failFraction < 1))
    throw new ConfigError(`fail must be in [0, 1), got ${failFraction}`)
  const loss = options.loss ?? 0
  if (!(loss >= 0 && loss < 1)) throw new ConfigError(`loss must be in [0, 1), got ${loss}`)
  const churn =
    options.churnSessionMin === undefined
      ? undefined
      : { sessionMs: options.churnSessionMin * 60_000, durationMs: (options.churnDurationMin ?? 0) * 60_000 }
  if (churn !== undefined && !(churn.sessionMs > 0 && churn.durationMs > 0)) {
    throw new ConfigError('churn needs a positive session mean and a positive duration')
  }
  const { topologyKind, pns, config, tls, nodeConfig } = experimentConfig(options)
  const rng = createRng(options.seed).derive('experiment')
  // Room in the topology for churn arrivals: about n · duration / session of them.
  const arrivals = churn === undefined ? 0 : Math.ceil((2 * n * churn.durationMs) / churn.sessionMs) + 64
  const retry = options.lookupRetry
  if (
    retry !== undefined &&
    !(Number.isSafeInteger(retry.attempts) && retry.attempts >= 1 && retry.timeoutMs > 0)
  )
    throw new ConfigError(
      `lookupRetry needs attempts ≥ 1 and timeoutMs > 0, got ${retry.attempts} and ${retry.timeoutMs}`,
    )
  /**
   * With lookupRetry, the state of lookup k at its origin: 0 while it waits for the root's answer,
   * 1 once answered, 2 once the origin gave up (its sends used up, or it is no longer active).
   */
  const answered: number[] = []
  let answeredCount = 0
  /** Lookups in state 0: the run drains until none is left. */
  let open = 0
  const sim: Simulator<PastryNode> = new Simulator<PastryNode>({
    seed: options.seed,
    topology: { kind: topologyKind, size: n + arrivals },
    network: { loss },
    encode: options.encode ?? false,
    ...experimentNodes(nodeConfig),
    ...(retry !== undefined && {
      onEvent: (i: number, e: EventOf<PastryNode>, now: number) => {
        if (e.type === 'deliver' && e.app === LOOKUP_APP && e.payload.length === 4) {
          // The root answers the origin, echoing the lookup's number.
          const to = e.origin
          const payload = e.payload
          sim.at(now, (s) => {
            if (s.isAlive(i) && s.node(i)?.state === 'active')
              s.command(i, (node, t) => node.send(t, to, LOOKUP_APP, payload))
          })
        } else if (e.type === 'direct' && e.app === LOOKUP_APP && e.payload.length === 4) {
          const k = new DataView(e.payload.buffer, e.payload.byteOffset, 4).getUint32(0)
          if (answered[k] === 0 || answered[k] === 2) {
            if (answered[k] === 0) open--
            answered[k] = 1
            answeredCount++
          }
        }
      },
    }),
  })
  const progress = options.onProgress ?? (() => {})

  // 1. Join.
  const spacing = options.joinSpacingMs ?? 10
  sim.addNodes(n)
  sim.start(0)
  // Each join schedules the next, so that the queue holds one pending join rather than all of them.
  const joinFrom = (i: number) => (s: Simulator<PastryNode>) => {
    const boot = s.oracle.randomLive(rng) ?? 0
    s.join(i, [boot])
    if (i % 256 === 0) progress('join', i / n)
    if (i + 1 < n) s.at((i + 1) * spacing, joinFrom(i + 1))
  }
  if (n > 1) sim.at(spacing, joinFrom(1))
  const joinDeadline = n * spacing + 30 * 60_000
  sim.runUntil((s) => s.now >= (n - 1) * spacing && s.oracle.liveCount === n, joinDeadline)
  progress('join', 1)

  // 2. Settle, measuring maintenance over the window.
  let notActiveAfterJoin = 0
  for (let i = 0; i < n; i++) if (sim.node(i)?.state !== 'active') notActiveAfterJoin++
  sim.runFor(options.settleMs ?? 2 * tls)
  // Maintenance is measured once settled, over a window of its own.
  sim.beginWindow()
  sim.runFor(options.measureMs ?? 2 * tls)
  const settled = sim.report()
  progress('settle', 1)

  // 3. Fail.
  let failed = 0
  if (failFraction > 0) {
    const live = sim.oracle.liveIndexes()
    const count = Math.floor(live.length * failFraction)
    for (let k = 0; k < count; k++) {
      const j = k + rng.int(live.length - k)
      const victim = live[j]!
      live[j] = live[k]!
      live[k] = victim
      sim.crash(victim)
    }
    failed = count
    const leafSetTimeoutMs = config.leafSetTimeoutMs ?? tls * 2.5
    sim.runFor(2 * leafSetTimeoutMs + 60_000)
    progress('repair', 1)
  }

  // 4 and 5. Churn (with the lookups spread over it), or lookups alone.
  const lookupSpacing =
    churn === undefined
      ? (options.lookupSpacingMs ?? 1)
      : Math.max(1, churn.durationMs / Math.max(1, lookups))
  const leafSetMismatches = sim.oracle.checkLeafSets(
    (i) => leafIds(sim.node(i)),
    config.leafSetSize ?? 16,
  ).length
  options.onNodes?.(sim.oracle.liveIndexes().map((i) => sim.idOf(i)))
  const before = churn === undefined ? undefined : snapshot(sim)
  if (churn !== undefined) {
    sim.startChurn({
      arrivalsPerSec: sim.oracle.liveCount / (churn.sessionMs / 1000),
      session: { kind: 'exponential', meanMs: churn.sessionMs },
      existingNodes: 'residual',
    })
  }
  const lookupRng = createRng(options.seed).derive('lookups')
  const start = sim.now
  const live = { min: Number.POSITIVE_INFINITY, sum: 0, max: 0, samples: 0 }
  // Each lookup schedules the next, so that the queue holds one pending lookup rather than all.
  const lookupAt = (k: number) => (s: Simulator<PastryNode>) => {
    if (k + 1 < lookups) s.at(start + (k + 1) * lookupSpacing, lookupAt(k + 1))
    const n = s.oracle.liveCount
    if (n < live.min) live.min = n
    if (n > live.max) live.max = n
    live.sum += n
    live.samples++
    const from = s.oracle.randomLive(lookupRng)
    const key = randomId(lookupRng)
    if (from === undefined) return
    if (retry === undefined) s.route(from, key, LOOKUP_APP, EMPTY)
    else {
      const n = s.oracle.lookupCount
      const payload = new Uint8Array(4)
      new DataView(payload.buffer).setUint32(0, n)
      answered[n] = 0
      open++
      s.route(from, key, LOOKUP_APP, payload)
      const again = (sent: number) => (t: Simulator<PastryNode>) => {
        if (answered[n] !== 0) return
        // Only an origin still active can ask again; one that crashed has lost its lookup.
        if (sent >= retry.attempts || t.node(from)?.state !== 'active') {
          answered[n] = 2
          open--
          return
        }
        t.route(from, key, LOOKUP_APP, payload, n)
        t.at(t.now + retry.timeoutMs, again(sent + 1))
      }
      s.at(s.now + retry.timeoutMs, again(1))
    }
    if (k % 1024 === 0) progress('lookups', k / lookups)
  }
  if (lookups > 0) sim.at(start, lookupAt(0))
  sim.runUntil(start + lookups * lookupSpacing)
  let churnPhase: ChurnPhaseReport | null = null
  if (before !== undefined) {
    sim.stopChurn()
    churnPhase = churnPhaseReport(before, snapshot(sim), live)
  }
  // Drain: every lookup delivered, and with lookupRetry answered or given up on by its origin.
  sim.runUntil((s) => s.oracle.summary().lost === 0 && open === 0, sim.now + 5 * 60_000)
  progress('lookups', 1)

  const report = sim.report()
  const summary = report.lookups
  if (options.onLookup !== undefined) {
    for (let k = 0; k < sim.oracle.lookupCount; k++) {
      const r = sim.oracle.lookup(k)
      const first = r.deliveredAt[0]
      options.onLookup({
        key: r.key,
        from: sim.idOf(r.from),
        deliveredAt: first === undefined ? null : sim.idOf(first),
        hops: r.hops ?? null,
      })
    }
  }
  const messagesTotal = report.messages.total
  return {
    mode: 'protocol',
    seed: options.seed,
    nodes: report.nodes.added,
    live: report.nodes.live,
    lookups: summary.issued,
    delivered: summary.delivered,
    correct: summary.correct,
    incorrect: summary.incorrect,
    lost: summary.lost,
    duplicates: summary.duplicates,
    byInactive: summary.byInactive,
    routeFailed: summary.failed,
    retried: summary.retried,
    deliveredByRetry: summary.deliveredByRetry,
    answered: answeredCount,
    hops: report.hops,
    rdp: report.rdp,
    messages: {
      total: messagesTotal,
      perNode: report.messages.perNode,
      byType: report.messages.byType,
    },
    bytes: { total: report.messages.bytes, byType: report.messages.bytesByType },
    joinMessagesPerNode: report.joinMessagesPerNode,
    maintenancePerNodePerSec: settled.maintenancePerNodePerSec,
    simulatedMs: report.simulatedMs,
    b: options.b ?? 4,
    leafSetSize: options.leafSetSize ?? 16,
    topology: topologyKind,
    pns,
    failed,
    churn: churn === undefined ? null : report.churn,
    churnPhase,
    table: report.table,
    nodeEvents: report.nodeEvents,
    events: report.events,
    traceHash: report.traceHash,
    notActiveAfterJoin,
    leafSetMismatches,
  }
}

/**
 * The experiment's protocol settings from its options: the topology kind, PNS, the settings as
 * given, the heartbeat period Tls, and the configuration every node shares, resolved once (a resolved configuration
 * passes through `resolveConfig` unchanged).
 */
export function experimentConfig(options: ProtocolExperimentOptions): {
  readonly topologyKind: TopologyKind
  readonly pns: boolean
  /** The settings as the options give them, before defaults. */
  readonly config: Partial<ProtocolConfig>
  readonly tls: number
  readonly nodeConfig: ProtocolConfig
} {
  const pns = options.pns ?? true
  const config: Partial<ProtocolConfig> = {
    ...(options.b === undefined ? {} : { b: options.b as ProtocolConfig['b'] }),
    ...(options.leafSetSize === undefined ? {} : { leafSetSize: options.leafSetSize }),
    pns,
    ...options.config,
  }
  return {
    topologyKind: options.topology ?? 'sphere',
    pns,
    config,
    tls: config.leafSetHeartbeatMs ?? 30_000,
    nodeConfig: resolveConfig(config),
  }
}

/** How the experiment makes its nodes, all sharing `nodeConfig`, and reads their table sizes. */
export function experimentNodes(nodeConfig: ProtocolConfig): {
  readonly createNode: (ctx: NodeContext) => PastryNode
  readonly tableStats: (node: PastryNode) => TableStats
} {
  return {
    createNode: (ctx) =>
      new PastryNode({
        id: ctx.id,
        address: ctx.address,
        handle: ctx.handle,
        rng: ctx.rng,
        config: nodeConfig,
      }),
    tableStats: (node) => ({ leafSet: node.leafSet.size, routingTable: node.routingTable.size }),
  }
}

const EMPTY = new Uint8Array(0)
/** The application name of the experiment's lookups. */
const LOOKUP_APP = 'sim'

/** Counters at one moment, for the traffic between two moments. */
interface Snapshot {
  readonly now: number
  readonly nodeMs: number
  readonly sent: Float64Array
  readonly live: number
}

function snapshot(sim: Simulator<PastryNode>): Snapshot {
  return {
    now: sim.now,
    nodeMs: sim.metrics.nodeMs(sim.now),
    sent: sim.metrics.sent.slice(),
    live: sim.oracle.liveCount,
  }
}

function churnPhaseReport(
  a: Snapshot,
  b: Snapshot,
  live: { readonly min: number; readonly sum: number; readonly max: number; readonly samples: number },
): ChurnPhaseReport {
  const nodeSec = (b.nodeMs - a.nodeMs) / 1000
  const rate = (x: number) => (nodeSec > 0 ? x / nodeSec : 0)
  const sentByType: Record<string, number> = {}
  const perNodePerSecByType: Record<string, number> = {}
  let maintenance = 0
  let join = 0
  for (const type of MESSAGE_TYPES) {
    const code = MESSAGES[type].code
    if (code >= MESSAGE_TYPE_SLOTS) continue
    const sent = b.sent[code]! - a.sent[code]!
    if (sent === 0) continue
    sentByType[type] = sent
    perNodePerSecByType[type] = rate(sent)
    const cls = trafficClass(type)
    if (cls === 'maintenance') maintenance += sent
    else if (cls === 'join') join += sent
  }
  const durationMs = b.now - a.now
  return {
    durationMs,
    live: {
      min: live.samples === 0 ? b.live : Math.min(live.min, b.live),
      mean: live.samples === 0 ? b.live : live.sum / live.samples,
      max: Math.max(live.max, b.live),
      end: b.live,
    },
    meanAlive: durationMs > 0 ? (b.nodeMs - a.nodeMs) / durationMs : 0,
    maintenancePerNodePerSec: rate(maintenance),
    joinPerNodePerSec: rate(join),
    sentByType,
    perNodePerSecByType,
  }
}

function leafIds(node: PastryNode | undefined): Id[] {
  return node === undefined ? [] : node.leafSet.members().map((m) => m.id)
}
