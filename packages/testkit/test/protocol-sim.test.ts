// The overlay in simulation: real PastryNodes in the deterministic simulator, judged by the
// oracle. Each scenario prints its seed (derived from PASTRY_SEED) so that a failure replays.
// Safety is checked while faults happen; convergence is required within a stated virtual time
// once the network is healed (STYLE.md, convention 8).
import { createRng, type Id, PastryNode, type ProtocolConfig, randomId } from '@pastry/core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Simulator } from '../src/index.js'
import { SEED } from './_seed.js'

/** Short periods so that scenarios run in little virtual time; the logic is the same. */
const CONFIG: Partial<ProtocolConfig> = {
  leafSetHeartbeatMs: 2_000,
  probeTimeoutMs: 1_000,
  joinTimeoutMs: 5_000,
  routingTableMaintenanceMs: 60_000,
}
const L = 16

function makeSim(seed: string, size: number, loss = 0) {
  return new Simulator<PastryNode>({
    seed,
    topology: { kind: 'sphere', size },
    network: { loss },
    createNode: (ctx) => new PastryNode({ id: ctx.id, address: ctx.address, rng: ctx.rng, config: CONFIG }),
  })
}

/** Adds n nodes; node 0 starts; node i joins at i × spacing through `boot(i)`. Runs until all are active. */
function joinAll(sim: Simulator<PastryNode>, n: number, spacing: number, boot: (i: number) => number): void {
  for (let i = 0; i < n; i++) sim.addNode()
  sim.start(0)
  for (let i = 1; i < n; i++) sim.at(i * spacing, (s) => s.join(i, [boot(i)]))
  const ok = sim.runUntil(
    (s) => s.now >= (n - 1) * spacing && s.oracle.liveCount === n,
    n * spacing + 600_000,
  )
  assert.ok(ok, `all ${n} nodes active (only ${sim.oracle.liveCount})`)
}

function leafMismatches(sim: Simulator<PastryNode>): number {
  return sim.oracle.checkLeafSets(
    (i) =>
      sim
        .node(i)
        ?.leafSet.members()
        .map((m) => m.id),
    L,
  ).length
}

/** Issues k lookups from random live nodes, one every `spacingMs`, and drains them. */
function lookups(sim: Simulator<PastryNode>, seed: string, k: number, spacingMs: number) {
  const rng = createRng(seed).derive('lookups')
  const before = sim.report().lookups
  const start = sim.now
  for (let j = 0; j < k; j++) {
    sim.at(start + j * spacingMs, (s) => {
      const from = s.oracle.randomLive(rng)
      if (from !== undefined) s.route(from, randomId(rng))
    })
  }
  sim.runUntil(start + k * spacingMs)
  sim.runUntil((s) => s.oracle.summary().lost === 0, sim.now + 120_000)
  const after = sim.report().lookups
  return {
    issued: after.issued - before.issued,
    delivered: after.delivered - before.delivered,
    correct: after.correct - before.correct,
    incorrect: after.incorrect - before.incorrect,
    lost: after.lost,
    byInactive: after.byInactive,
  }
}

const seeds = (name: string, count: number) => Array.from({ length: count }, (_, i) => `${SEED}/${name}/${i}`)

for (const seed of seeds('one-bootstrap', 2)) {
  test(`nodes join one by one from a single bootstrap: leaf sets equal the oracle's, lookups all correct (seed ${seed})`, () => {
    const sim = makeSim(seed, 150)
    joinAll(sim, 150, 200, () => 0)
    sim.runFor(10_000)
    assert.is(leafMismatches(sim), 0)
    const r = lookups(sim, seed, 1500, 2)
    assert.equal([r.delivered, r.correct, r.incorrect, r.lost, r.byInactive], [1500, 1500, 0, 0, 0])
  })
}

for (const seed of seeds('concurrent', 2)) {
  test(`200 nodes join concurrently through different bootstraps: leaf sets equal the oracle's, 100% correct (seed ${seed})`, () => {
    const sim = makeSim(seed, 200)
    const rng = createRng(seed).derive('boot')
    // Joins 2 ms apart through any of the first 20 nodes, active or still joining themselves.
    joinAll(sim, 200, 2, (i) => rng.int(Math.min(i, 20)))
    sim.runFor(10_000)
    assert.is(leafMismatches(sim), 0)
    const r = lookups(sim, seed, 2000, 1)
    assert.equal([r.delivered, r.correct, r.incorrect, r.lost, r.byInactive], [2000, 2000, 0, 0, 0])
  })
}

for (const seed of seeds('crash-10pct', 2)) {
  test(`10% of nodes crash at once: zero wrong deliveries during repair, 100% correct after (seed ${seed})`, () => {
    const sim = makeSim(seed, 300)
    const rng = createRng(seed).derive('victims')
    joinAll(sim, 300, 20, () => sim.oracle.randomLive(rng) ?? 0)
    sim.runFor(10_000)
    const live = sim.oracle.liveIndexes()
    for (let k = 0; k < 30; k++) {
      const j = k + rng.int(live.length - k)
      ;[live[k], live[j]] = [live[j]!, live[k]!]
      sim.crash(live[k]!)
    }
    // Lookups start the moment the nodes die, while nobody knows yet.
    const during = lookups(sim, seed, 1500, 10)
    assert.is(during.incorrect, 0, 'no active node delivered at the wrong place during repair')
    assert.is(during.lost, 0, 'no lookup was lost during repair')
    assert.is(during.byInactive, 0)
    sim.runFor(30_000)
    assert.is(leafMismatches(sim), 0, 'leaf sets repaired')
    const after = lookups(sim, `${seed}/after`, 1500, 1)
    assert.equal([after.correct, after.incorrect, after.lost], [1500, 0, 0])
  })
}

for (const seed of seeds('crash-adjacent', 2)) {
  test(`L/2 − 1 adjacent nodes crash at once: zero wrong deliveries during repair, 100% correct after (seed ${seed})`, () => {
    const sim = makeSim(seed, 200)
    const rng = createRng(seed).derive('boot')
    joinAll(sim, 200, 20, () => sim.oracle.randomLive(rng) ?? 0)
    sim.runFor(10_000)
    // The L/2 − 1 nodes that follow a random node clockwise.
    const sorted = sim.oracle.liveIndexes().sort((a, b) => sim.idOf(a).compare(sim.idOf(b)))
    const at = rng.int(sorted.length)
    for (let k = 1; k <= L / 2 - 1; k++) sim.crash(sorted[(at + k) % sorted.length]!)
    // Keys that land in the hole, and random ones.
    const hole: Id[] = []
    for (let k = 1; k <= L / 2 - 1; k++) hole.push(sim.idOf(sorted[(at + k) % sorted.length]!))
    const lrng = createRng(seed).derive('hole')
    const start = sim.now
    for (let j = 0; j < 400; j++) {
      sim.at(start + j * 25, (s) => {
        const from = s.oracle.randomLive(lrng)
        if (from !== undefined) s.route(from, j % 2 === 0 ? hole[j % hole.length]! : randomId(lrng))
      })
    }
    sim.runUntil(start + 400 * 25)
    sim.runUntil((s) => s.oracle.summary().lost === 0, sim.now + 120_000)
    const during = sim.report().lookups
    assert.is(during.incorrect, 0, 'no active node delivered at the wrong place during repair')
    assert.is(during.lost, 0)
    sim.runFor(30_000)
    assert.is(leafMismatches(sim), 0, 'leaf sets repaired')
    const after = lookups(sim, `${seed}/after`, 1000, 1)
    assert.equal([after.correct, after.incorrect, after.lost], [1000, 0, 0])
  })
}

for (const seed of seeds('partition', 2)) {
  test(`a partition heals and the leaf sets converge (seed ${seed})`, () => {
    const sim = makeSim(seed, 120)
    const rng = createRng(seed).derive('boot')
    joinAll(sim, 120, 20, () => sim.oracle.randomLive(rng) ?? 0)
    sim.runFor(10_000)
    const all = sim.oracle.liveIndexes()
    const a = all.filter((_, k) => k % 2 === 0)
    const b = all.filter((_, k) => k % 2 === 1)
    sim.partition(a, b, { symmetric: true })
    // Long enough for each side to declare the other failed.
    sim.runFor(60_000)
    sim.heal()
    // Convergence bound: failed leaves are probed again every leafSetTimeoutMs (5 s here).
    sim.runFor(120_000)
    assert.is(leafMismatches(sim), 0, 'leaf sets converged after the partition healed')
    const r = lookups(sim, seed, 1000, 1)
    assert.equal([r.correct, r.incorrect, r.lost], [1000, 0, 0])
  })
}

for (const seed of seeds('loss', 2)) {
  test(`with 5% message loss every lookup is delivered, through per-hop retransmission (seed ${seed})`, () => {
    const sim = makeSim(seed, 150, 0.05)
    const rng = createRng(seed).derive('boot')
    joinAll(sim, 150, 20, () => sim.oracle.randomLive(rng) ?? 0)
    sim.runFor(30_000)
    const r = lookups(sim, seed, 1500, 2)
    assert.is(r.delivered, 1500, 'every lookup delivered')
    assert.is(r.lost, 0)
    assert.is(r.incorrect, 0)
    assert.ok(sim.report().messages.lost > 0, 'the network did drop messages')
  })
}

for (const seed of seeds('leave', 2)) {
  test(`a graceful leave: neighbours repair at once and lookups stay correct (seed ${seed})`, () => {
    const sim = makeSim(seed, 100)
    const rng = createRng(seed).derive('boot')
    joinAll(sim, 100, 20, () => sim.oracle.randomLive(rng) ?? 0)
    sim.runFor(10_000)
    const leaver = sim.oracle.randomLive(rng)!
    sim.leave(leaver)
    // A leave is announced, so repair takes a few round trips, not a timeout.
    sim.runFor(3_000)
    assert.is(leafMismatches(sim), 0)
    const r = lookups(sim, seed, 1000, 1)
    assert.equal([r.correct, r.incorrect, r.lost], [1000, 0, 0])
  })
}

test(`determinism: the same seed gives the same trace hash, another seed another (seed ${SEED})`, () => {
  const run = (seed: string) => {
    const sim = makeSim(seed, 60, 0.02)
    const rng = createRng(seed).derive('boot')
    joinAll(sim, 60, 10, () => sim.oracle.randomLive(rng) ?? 0)
    sim.crash(sim.oracle.randomLive(rng)!)
    lookups(sim, seed, 300, 3)
    return sim.traceHash()
  }
  const a = run(`${SEED}/det`)
  assert.is(run(`${SEED}/det`), a)
  assert.is.not(run(`${SEED}/det2`), a)
})

test.run()
