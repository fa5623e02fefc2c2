// The pub/sub experiment (`pastry sim --pubsub`) as the acceptance of the pub/sub product issue,
// CI-sized: 1000 nodes and 100 topics in the testkit simulator, through `runPubSubExperiment`
// directly. Each run is deterministic for its seed; the seeds derive from this process's seed,
// printed below, and PASTRY_SEED=<seed> replays them (STYLE.md, convention 7).
//
// Sizes are chosen for time: a publish window of 20 s of virtual time (not the CLI's 60 s), so that
// each run takes some seconds of wall time. The crash run shortens core's probe timeout to 1 s
// (`config.probeTimeoutMs`), so that crashed leaves are declared failed after 5 s (three probes,
// then the other members' probes) instead of 15 s and the repair bound it asserts
// (`repairBoundMs`, 23 s with these settings) stays small.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type PubSubExperimentReport, runPubSubExperiment } from '../src/pubsub-sim.js'

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

const SIZE = { nodes: 1000, topics: 100, publishes: 400, publishWindowMs: 20_000 } as const

function summary(r: PubSubExperimentReport): string {
  return JSON.stringify({
    seed: r.seed,
    deliveryRatio: r.deliveryRatio,
    missing: r.missing,
    gaps: r.gaps,
    duplicates: r.duplicates,
    outOfOrder: r.outOfOrder,
    maxDelayAfterCrashMs: r.maxDelayAfterCrashMs,
    repairBoundMs: r.repairBoundMs,
    crashedRoots: r.crashedRoots,
    crashedForwarders: r.crashedForwarders,
    detachedAtEnd: r.detachedAtEnd,
    messagesPerPublish: r.messagesPerPublish,
    missingSample: r.missingSample,
  })
}

test('steady state: every subscriber gets every publish exactly once, in order', () => {
  const r = runPubSubExperiment({ seed: `pubsub-steady-${SEED}`, ...SIZE })
  const why = summary(r)
  assert.is(r.refused, 0, why)
  assert.is(r.publishFailed, 0, why)
  assert.is(r.acknowledged, SIZE.publishes, why)
  assert.ok(r.expectedDeliveries > 0, why)
  assert.is(r.deliveryRatio, 1, why)
  assert.is(r.missing, 0, why)
  assert.is(r.duplicates, 0, why)
  assert.is(r.outOfOrder, 0, why)
  assert.is(r.gaps, 0, why)
  assert.is(r.detachedAtEnd, 0, why)
  // The traffic is explained by type, and the types add up to the total.
  const total = Object.values(r.messagesByType).reduce((a, b) => a + b, 0)
  assert.ok(Math.abs(total / SIZE.publishes - r.messagesPerPublish) < 0.01, why)
  assert.is(r.messagesByType.invalid, undefined, why)
})

test('10% of nodes crash mid-stream, roots and forwarders among them: delivery resumes within the bound, nothing is missed', () => {
  const r = runPubSubExperiment({
    seed: `pubsub-crash-${SEED}`,
    ...SIZE,
    failFraction: 0.1,
    config: { probeTimeoutMs: 1_000 },
  })
  const why = summary(r)
  assert.is(r.crashed, 100, why)
  assert.ok(r.crashedRoots > 0, why)
  assert.ok(r.crashedForwarders > 0, why)
  assert.ok(r.maxDelayAfterCrashMs !== null && r.maxDelayAfterCrashMs > 0, why)
  assert.ok(r.maxDelayAfterCrashMs <= r.repairBoundMs, why)
  // Every publisher's window (256 messages) covers the outage, so nothing is lost, even as a gap.
  assert.is(r.missing, 0, why)
  assert.is(r.deliveryRatio, 1, why)
  assert.is(r.duplicates, 0, why)
  assert.is(r.outOfOrder, 0, why)
  assert.is(r.gaps, 0, why)
  assert.is(r.detachedAtEnd, 0, why)
})

test.run()
