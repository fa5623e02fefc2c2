// The node state machine under faults, through its public API: crashes and repair, liveness
// (heartbeats, suspicion, probes), graceful leave, and bad input. Overlays run in virtual time on
// the driver in `_driver.ts`; the oracle (bigint brute force) knows which nodes are active.
// STYLE.md, convention 8: check safety while faults happen, then require convergence within a
// stated virtual time. PASTRY_SEED=<seed> replays a run (convention 7).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { compareDistance, createRng, Id, type Message, type ProtocolConfig, randomId } from '../src/index.js'
import { addressOf, Driver, defaultLatency, FAST, type Lookup, mod128 } from './_driver.js'
import { SEED } from './_seed.js'

const seedOf = (label: string): string => `${SEED}/protocol-faults/${label}`
const named = (title: string): string => `${title} (PASTRY_SEED=${SEED})`

const TLS = FAST.leafSetHeartbeatMs!
const PROBE = FAST.probeTimeoutMs!
/** leafSetTimeoutMs: 2.5 × Tls, as resolveConfig derives it. */
const TLT = 2.5 * TLS
/** The tick: min(Tls, leafSetTimeoutMs) / 2. */
const TICK = TLS / 2
/** The second opinion before a leaf's verdict: the helpers' probes time out, answers come back. */
const INDIRECT = 2 * PROBE
/**
 * How long a crash takes to be declared, at worst: silence, a tick, 1 + probeRetries probes, then
 * the helpers' probes.
 */
const DETECT = TLT + TICK + 3 * PROBE + INDIRECT

function assertPerfect(d: Driver, lookups: readonly Lookup[], what: string): void {
  const r = d.report(lookups)
  const summary = `${what}: ${JSON.stringify({ ...r, details: undefined })}\n${r.details.join('\n')}`
  assert.ok(r.total > 0, `${what}: no lookups`)
  assert.is(r.wrong, 0, summary)
  assert.is(r.lost, 0, summary)
  assert.is(r.duplicated, 0, summary)
  assert.is(r.failed, 0, summary)
  for (const l of lookups) assert.equal(l.deliveries[0]!.payload, l.payload, `${what}: payload`)
  assert.equal(d.violations, [], `${what}: driver saw contract breaches`)
}

function assertLeafSetsExact(d: Driver, what: string): void {
  const errors = d.leafSetErrors()
  assert.equal(errors.slice(0, 5), [], `${what}: ${errors.length} leaf sets differ from the oracle's`)
}

function overlay(label: string, n: number, extra: Partial<ProtocolConfig> = {}): Driver {
  const d = new Driver({ seed: seedOf(label), n, config: { ...FAST, ...extra } })
  d.ring(n)
  d.runFor(3 * TLS)
  assertLeafSetsExact(d, `${label}: before the faults`)
  return d
}

/** Active nodes sorted by id. */
function byId(d: Driver): number[] {
  return d.active().sort((a, b) => d.node(a).id.compare(d.node(b).id))
}

const nodeFailedFor = (d: Driver, i: number, victim: number) =>
  d.eventsOf(i, 'nodeFailed').filter((r) => r.event.node.id.equals(d.node(victim).id))

// -----------------------------------------------------------------------------------------------
// 4. Failure and repair

test(named('failure: 10% of 100 nodes crash at once; lookups during repair; leaf sets repaired'), () => {
  const d = overlay('crash10', 100)
  const victims = new Set<number>()
  while (victims.size < 10) victims.add(d.rng.int(100))
  const t0 = d.now
  for (const v of victims) d.crash(v)
  // Safety while the overlay repairs: 1000 lookups over 10 s, none lost, none at a wrong node.
  const during = d.randomLookups(1000, 10)
  d.runUntilQuiet()
  assertPerfect(d, during, 'during repair')
  // Convergence within a stated bound: every leaf set exact 10 s (about 2 × DETECT) after the crash.
  d.runUntil(t0 + 10 * TLS)
  assert.is(d.active().length, 90)
  assertLeafSetsExact(d, 'after repair')
  const after = d.randomLookups(500, 2)
  d.runUntilQuiet()
  assertPerfect(d, after, 'after repair')
})

/** Crashes `count` nodes adjacent in id space (not node 0, the bootstrap); returns them, in id order. */
function crashRun(d: Driver, count: number): number[] {
  const sorted = byId(d).filter((i) => i !== 0)
  const start = d.rng.int(sorted.length)
  const run = Array.from({ length: count }, (_, k) => sorted[(start + k) % sorted.length]!)
  for (const v of run) d.crash(v)
  return run
}

test(named('failure: L/2 − 1 adjacent nodes crash; nothing at a wrong node; leaf sets repaired'), () => {
  const d = overlay('crash-adjacent', 60)
  const half = d.node(0).config.leafSetSize / 2
  const t0 = d.now
  crashRun(d, half - 1)
  const during = d.randomLookups(1000, 10)
  d.runUntilQuiet()
  const r = d.report(during)
  assert.is(r.wrong, 0, r.details.join('\n'))
  assert.is(r.duplicated, 0, r.details.join('\n'))
  assert.equal(d.violations, [])
  d.runUntil(t0 + 15 * TLS)
  assertLeafSetsExact(d, 'after repair')
  // Lookups from the run's surviving neighbours, which route by the leaf set alone.
  const sorted = byId(d)
  const neighbours = sorted.filter((_, k) => k < 3 || k >= sorted.length - 3)
  const after = d.randomLookups(300, 2, neighbours)
  d.runUntilQuiet()
  assertPerfect(d, after, 'after repair')
})

test(named('regression: L/2 − 1 adjacent nodes crash; lookups into the dead run are lost'), () => {
  // The same fault as above, with the lookups that matter: right after the crash, every live node
  // routes a key just clockwise of each dead node. Pastry tolerates L/2 − 1 adjacent failures, and
  // DESIGN.md's reliable routing reroutes around a silent next hop, so none may be lost.
  const d = overlay('crash-adjacent-bug', 60)
  const half = d.node(0).config.leafSetSize / 2
  const run = crashRun(d, half - 1)
  const lookups: Lookup[] = []
  for (const i of d.active()) {
    for (const victim of run)
      lookups.push(d.route(i, Id.fromBigInt(mod128(d.node(victim).id.toBigInt() + 1n))))
  }
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'lookups into the dead run')
})

test('regression: a reroute walks a run of dead leaves and gives up after maxRouteAttempts (minimal repro)', () => {
  // 17 nodes spread evenly round the ring (n0..n16, gap G), and a tight run of 7 = L/2 − 1 nodes
  // (n17..n23, 2^100 apart) just counter-clockwise of n6. n5's clockwise leaves are n17..n23, n6.
  // The run crashes; n5 at once routes the key just clockwise of n23, whose root is now n6.
  const G = (1n << 128n) / 17n
  const ids: Id[] = []
  for (let k = 0n; k < 17n; k++) ids.push(Id.fromBigInt(k * G + 12345n))
  const runStart = 5n * G + (9n * G) / 10n
  for (let j = 0n; j < 7n; j++) ids.push(Id.fromBigInt(runStart + j * (1n << 100n)))
  const d = new Driver({ seed: 'minimal-repro', n: 24, ids })
  d.ring(24)
  d.runFor(3 * TLS)
  assert.equal(
    d
      .node(5)
      .leafSet.cwMembers()
      .map((m) => m.address),
    ['n:17', 'n:18', 'n:19', 'n:20', 'n:21', 'n:22', 'n:23', 'n:6'],
  )
  const tried: string[] = []
  d.watch((s) => {
    if (s.message.type === 'route' && s.from === 5) tried.push(`n${s.to}`)
  })
  for (let v = 17; v < 24; v++) d.crash(v)
  const key = Id.fromBigInt(ids[23]!.toBigInt() + 1n)
  const l = d.route(5, key)
  d.runUntilQuiet()
  assert.is(d.closest(key), 6)
  assert.is(
    l.failed,
    undefined,
    `expected delivery at n6; got routeFailed "${l.failed}" after n5 tried ${tried.join(', ')}`,
  )
  assert.is(l.deliveries[0]?.node, 6)
})

/** A key and origin whose route takes at least two hops; returns the path of node indices. */
function twoHopRoute(d: Driver): { origin: number; key: Id; path: number[] } {
  for (let tries = 0; tries < 500; tries++) {
    const origin = d.active()[d.rng.int(d.active().length)]!
    const key = randomId(d.rng)
    const path = [origin]
    const stop = d.watch((s) => {
      if (s.message.type === 'route' && s.message.app === 'pathfinder') path.push(s.to)
    })
    d.route(origin, key, 'pathfinder')
    d.runUntilQuiet()
    stop()
    if (path.length >= 3) return { origin, key, path }
  }
  throw new Error('no two-hop route found')
}

test(named('Go regression: a message whose next hop was dead was lost, not rerouted'), () => {
  // Without deep-cell members: with them, almost every route in 50 nodes is one hop.
  const d = overlay('dead-next-hop', 50, { deepCellMembers: 0 })
  const { origin, key, path } = twoHopRoute(d)
  const hop = path[1]!
  const tCrash = d.now
  d.crash(hop)
  const sentTo: number[] = []
  d.watch((s) => {
    if (s.message.type === 'route' && s.message.app === 'lookup' && s.from === origin) sentTo.push(s.to)
  })
  const l = d.route(origin, key)
  d.runUntilQuiet()
  assert.is(sentTo[0], hop, 'the first transmission went to the dead hop')
  assert.ok(sentTo.length >= 2, 'then the origin rerouted')
  assertPerfect(d, [l], 'rerouted around the dead hop')
  d.runUntil(tCrash + DETECT + 2 * TLS)
  const failed = nodeFailedFor(d, origin, hop)
  assert.is(failed.length, 1, 'the origin declared the dead hop failed, once')
  assert.ok(
    failed[0]!.at <= tCrash + DETECT + TLS,
    `declared at ${failed[0]!.at - tCrash} ms after the crash`,
  )
  assert.not.ok(d.node(origin).routingTable.contains(d.node(hop).id), 'and dropped it from its tables')
})

test(named('Go regression: a hole in the leaf set was never refilled'), () => {
  const d = overlay('hole', 40)
  const x = 3
  const half = d.node(x).config.leafSetSize / 2
  assert.ok(d.node(x).leafSet.isFull)
  // A leaf in the middle of the clockwise half, then the farthest of the counter-clockwise half.
  const middle = d.indexOf(d.node(x).leafSet.cw(3).id)
  const far = d.indexOf(d.node(x).leafSet.ccw(half - 1).id)
  // Repair asks the farthest live leaf on the hole's side for its leaf set.
  const farCw = d.indexOf(d.node(x).leafSet.cw(half - 1).id)
  const asked: { at: number; to: number }[] = []
  d.watch((s) => {
    if (s.from === x && s.message.type === 'leafSetRequest') asked.push({ at: s.at, to: s.to })
  })
  const t0 = d.now
  d.crash(middle)
  d.crash(far)
  d.runUntil(t0 + DETECT + 2 * TLS)
  const failedAt = nodeFailedFor(d, x, middle)[0]?.at
  assert.ok(
    asked.some((a) => a.at === failedAt && a.to === farCw),
    `x asked its farthest clockwise leaf for its leaf set when the hole appeared (asked ${JSON.stringify(asked)})`,
  )
  const ls = d.node(x).leafSet
  assert.ok(ls.isFull, `the leaf set is full again: cw ${ls.cwSize}, ccw ${ls.ccwSize}`)
  assert.not.ok(ls.contains(d.node(middle).id))
  assert.not.ok(ls.contains(d.node(far).id))
  assertLeafSetsExact(d, 'after the holes')
  const left = d
    .eventsOf(x, 'update')
    .filter((r) => !r.event.joined)
    .map((r) => r.event.node.address)
  assert.ok(
    left.includes(addressOf(middle)) && left.includes(addressOf(far)),
    'update(joined: false) for both',
  )
  assert.is(nodeFailedFor(d, x, middle).length, 1)
  const lookups = d.randomLookups(200, 2)
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'after refilling')
})

test(named('Go regression: the lower side of the leaf set range check was reversed'), () => {
  // Nodes n0 and n1 are 2^100 apart, with n0 < n1 as unsigned values: the key halfway between them
  // is a tie, which the smaller id (n0) wins.
  const rng = createRng(seedOf('lower-side'))
  const low = randomId(rng).toBigInt() >> 1n
  const ids = [Id.fromBigInt(low), Id.fromBigInt(low + (1n << 100n))]
  const d = new Driver({ seed: seedOf('lower-side'), n: 30, ids })
  d.ring(30)
  d.runFor(3 * TLS)
  const keys: [bigint, number][] = [
    [low + (1n << 100n) - 1n, 1], // just counter-clockwise of n1
    [low + (1n << 99n) + 1n, 1],
    [low + (1n << 99n), 0], // the tie
    [low + (1n << 99n) - 1n, 0],
    [low - 1n, 0], // just counter-clockwise of n0
  ]
  const lookups: Lookup[] = []
  for (const [k, want] of keys) {
    const key = Id.fromBigInt(k)
    assert.is(d.closest(key), want, 'the oracle agrees')
    for (const i of d.active()) lookups.push(d.route(i, key))
  }
  // And the key just counter-clockwise of every node, from a random node.
  for (const i of d.active()) {
    const key = Id.fromBigInt(mod128(d.node(i).id.toBigInt() - 1n))
    lookups.push(d.route(d.rng.int(30), key))
  }
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'keys just counter-clockwise of nodes')
})

test(named('failure: a join completes when a would-be leaf crashed unnoticed'), () => {
  // The joiner's id is next to n7's, and n7 crashes just before the join: the root's leaf set still
  // names n7, so the joiner announces itself to a dead node, which never confirms it.
  const rng = createRng(seedOf('join-past-dead'))
  const ids = Array.from({ length: 30 }, () => randomId(rng))
  ids.push(Id.fromBigInt(mod128(ids[7]!.toBigInt() + 1n)))
  const d = new Driver({ seed: seedOf('join-past-dead'), n: 31, ids })
  d.ring(30)
  d.runFor(3 * TLS)
  d.crash(7)
  d.join(30, [0])
  d.runUntilQuiet(20_000)
  assert.is(d.node(30).state, 'active')
  d.runFor(DETECT + 2 * TLS)
  assertLeafSetsExact(d, 'after the join past a dead node')
  const lookups = d.randomLookups(200, 2)
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'after the join past a dead node')
})

test(named('regression: a joiner whose announces all go unanswered becomes active alone'), () => {
  // The network loses the joiner's announces (the first round, 2 s). DESIGN.md: the joiner "becomes
  // active only once its leaf-set members have confirmed it". None has; yet it declares them all
  // failed, becomes active with an empty leaf set, and delivers every key it routes to itself.
  const d2 = new Driver({ seed: seedOf('unconfirmed-join'), n: 13 })
  d2.ring(12)
  d2.runFor(3 * TLS)
  const heal = d2.drop((s) => s.from === 12 && s.message.type === 'announce')
  d2.at(d2.now + 2000, heal)
  d2.join(12, [0])
  d2.runUntilTrue(() => d2.node(12).state !== 'joining', 20_000)
  const size = d2.node(12).leafSet.size
  const lookups = Array.from({ length: 20 }, () => d2.route(12, randomId(d2.rng)))
  d2.runUntilQuiet()
  assert.ok(size > 0, `it became active with an empty leaf set (confirmed by nobody), at ${d2.now}`)
  assertPerfect(d2, lookups, 'lookups from the new node')
})

// -----------------------------------------------------------------------------------------------
// 5. Liveness

/** Records, per (from, to) pair, the largest gap between messages of the given kind in a window. */
/** The leaf-set members node i heartbeats and watches: its nearest `heartbeatNeighbours` on each side. */
function watchedBy(d: Driver, i: number): number[] {
  const ls = d.node(i).leafSet
  const k = d.node(i).config.heartbeatNeighbours
  const out = new Set<number>()
  for (let j = 0; j < Math.min(k, ls.cwSize); j++) out.add(d.indexOf(ls.cw(j).id))
  for (let j = 0; j < Math.min(k, ls.ccwSize); j++) out.add(d.indexOf(ls.ccw(j).id))
  return [...out]
}

function gapMeter(d: Driver, from: number, types: ReadonlySet<string> | undefined) {
  const last = new Map<number, number>()
  const maxGap = new Map<number, number>()
  let since = Number.POSITIVE_INFINITY
  const stop = d.watch((s) => {
    if (s.from !== from || (types !== undefined && !types.has(s.message.type))) return
    const p = last.get(s.to)
    if (p !== undefined && p >= since) maxGap.set(s.to, Math.max(maxGap.get(s.to) ?? 0, s.at - p))
    last.set(s.to, s.at)
  })
  return {
    startAt(t: number) {
      since = t
    },
    gap(to: number, until: number): number {
      // Count the open gap at the end of the window too.
      const open = until - (last.get(to) ?? Number.NEGATIVE_INFINITY)
      return Math.max(maxGap.get(to) ?? 0, open)
    },
    stop,
  }
}

test(named('Go regression: heartbeats were starved on a busy node'), () => {
  const d = overlay('flood', 40)
  const f = 0
  const leaves = d
    .node(f)
    .leafSet.members()
    .map((m) => d.indexOf(m.id))
  const outsiders = d.active().filter((i) => i !== f && !leaves.includes(i))
  assert.ok(outsiders.length > 0)
  const meter = gapMeter(d, f, undefined)
  const t0 = d.now
  meter.startAt(t0)
  // 3000 routed messages a virtual second for 6 s, injected as if from nodes outside f's leaf set,
  // all for f's id.
  const rate = 3000
  const seconds = 6
  let msgId = 1_000_000
  for (let k = 0; k < rate * seconds; k++) {
    const from = d.node(outsiders[k % outsiders.length]!).handle
    const id = msgId++
    d.at(t0 + (k * 1000) / rate, () =>
      d.inject(f, {
        type: 'route',
        from,
        msgId: id,
        key: d.node(f).id,
        origin: from,
        hops: 1,
        app: 'flood',
        payload: new Uint8Array(8),
      }),
    )
  }
  const heartbeats = new Map<number, number>()
  const stopCount = d.watch((s) => {
    if (s.from === f && s.message.type === 'heartbeat') heartbeats.set(s.to, (heartbeats.get(s.to) ?? 0) + 1)
  })
  d.runUntil(t0 + seconds * 1000)
  const end = d.now
  stopCount()
  assert.is(d.eventsOf(f, 'deliver').filter((r) => r.event.app === 'flood').length, rate * seconds)
  for (const m of watchedBy(d, f)) {
    const gap = meter.gap(m, end)
    // A heartbeat goes out on the first tick at least Tls after the last message to the member, so
    // a member never waits more than Tls + a tick (see the BUG test below on the Tls promise).
    assert.ok(gap <= TLS + TICK, `n${m} heard nothing from the busy node for ${gap} ms`)
    assert.ok((heartbeats.get(m) ?? 0) >= seconds - 1, `n${m} got ${heartbeats.get(m) ?? 0} heartbeats`)
    assert.not.ok(d.node(m).isSuspected(d.node(f).id), `n${m} suspects the busy node`)
  }
  for (let i = 0; i < d.nodes.length; i++) {
    assert.equal(nodeFailedFor(d, i, f), [], `n${i} declared the busy node failed`)
  }
  // And it still routes correctly.
  const lookups = d.randomLookups(200, 1, [f])
  d.runUntilQuiet()
  assertPerfect(d, lookups, "the busy node's lookups")
  meter.stop()
})

test(named('regression: a leaf-set member can go 1.5 Tls without hearing from a node'), () => {
  // node.ts's header: a node makes sure each of its nearest `heartbeatNeighbours` leaf-set members
  // on each side hears from it at least every Tls.
  // With routed traffic at arbitrary instants, the gaps between messages to a leaf reach almost
  // Tls + Tls/2.
  const d = overlay('tls-bound', 30)
  const meters = d.active().map((i) => ({ i, meter: gapMeter(d, i, undefined) }))
  const t0 = d.now + 2 * TLS
  for (const { meter } of meters) meter.startAt(t0)
  d.randomLookups(1000, 7)
  d.runUntil(t0 + 8 * TLS)
  let worst = { gap: 0, from: -1, to: -1 }
  for (const { i, meter } of meters) {
    for (const to of watchedBy(d, i)) {
      const gap = meter.gap(to, d.now)
      if (gap > worst.gap) worst = { gap, from: i, to }
    }
  }
  for (const { meter } of meters) meter.stop()
  assert.ok(
    worst.gap <= TLS,
    `expected every leaf to hear from n${worst.from} within Tls = ${TLS} ms; n${worst.to} waited ${worst.gap.toFixed(1)} ms`,
  )
})

test(
  named('liveness: a silent leaf is suspected, probed 1 + probeRetries times, then declared failed'),
  () => {
    const retries = 3
    const d = overlay('silent', 30, { probeRetries: retries })
    const x = 4
    const m = d.indexOf(d.node(x).leafSet.cw(0).id)
    let lastHeard = Number.NEGATIVE_INFINITY
    let silent = false
    const probes: number[] = []
    const helpers: { at: number; to: number }[] = []
    d.watch((s) => {
      if (s.from === m && s.to === x && !silent) lastHeard = Math.max(lastHeard, s.at + defaultLatency(m, x))
      if (s.from === x && s.to === m && s.message.type === 'probe') probes.push(s.at)
      if (s.from === x && s.message.type === 'indirectProbe') helpers.push({ at: s.at, to: s.to })
    })
    d.runFor(2 * TLS)
    // m goes silent: it still hears everything, but nothing it sends arrives.
    const tSilent = d.now
    silent = true
    d.drop((s) => s.from === m)
    d.runUntilTrue(() => d.node(x).isSuspected(d.node(m).id), TLT + 2 * TLS)
    const tSuspect = d.now
    assert.ok(tSuspect >= lastHeard + TLT, `suspected ${tSuspect - lastHeard} ms after last hearing`)
    assert.ok(
      tSuspect < lastHeard + TLT + TICK + 1,
      `suspected ${tSuspect - lastHeard} ms after last hearing`,
    )
    assert.ok(d.node(x).leafSet.contains(d.node(m).id), 'a suspected leaf stays in the leaf set')
    d.runUntilTrue(() => nodeFailedFor(d, x, m).length > 0, (retries + 1) * PROBE + INDIRECT + 1)
    const tFailed = d.now
    // After the last probe's timeout, the members nearest m are asked to probe it; each answers
    // "not alive" once its own probe times out, and the last answer is the verdict. (Meanwhile
    // x may probe m for other members that suspect m too.)
    const tAsked = tSuspect + (retries + 1) * PROBE
    const sent = probes.filter((t) => t >= tSuspect && t < tAsked)
    assert.is(sent.length, retries + 1, `probes at ${sent.map((t) => t - tSuspect)}`)
    for (const [k, t] of sent.entries()) assert.is(t, tSuspect + k * PROBE)
    const asked = helpers.map((h) => h.to)
    assert.equal(
      helpers.map((h) => h.at),
      asked.map(() => tAsked),
    )
    const nearest = d
      .node(x)
      .leafSet.members()
      .map((n) => d.indexOf(n.id))
      .filter((i) => i !== m)
      .sort((a, b) => compareDistance(d.node(m).id, d.node(a).id, d.node(b).id))
    assert.equal(asked, nearest.slice(0, d.node(x).config.indirectProbes), 'the members nearest m are asked')
    const slowest = Math.max(...asked.map((h) => defaultLatency(x, h) + defaultLatency(h, x)))
    // A helper that already had a probe in flight to m (it suspects m too) answers when that one
    // times out, sooner than a probe of its own would.
    assert.ok(tFailed > tAsked && tFailed <= tAsked + PROBE + slowest, `declared at ${tFailed - tAsked} ms`)
    assert.not.ok(d.node(x).leafSet.contains(d.node(m).id))
    assert.not.ok(d.node(x).isSuspected(d.node(m).id))
    assert.ok(tSilent < tSuspect)
  },
)

test(
  named('liveness: a quiet node heartbeats only its nearest heartbeatNeighbours members on each side'),
  () => {
    const d = overlay('watched', 40)
    const f = 7
    const k = d.node(f).config.heartbeatNeighbours
    const watched = new Set(watchedBy(d, f))
    const far = d
      .node(f)
      .leafSet.members()
      .map((m) => d.indexOf(m.id))
      .filter((i) => !watched.has(i))
    assert.is(watched.size, 2 * k)
    assert.is(far.length, d.node(f).config.leafSetSize - 2 * k, 'members farther out exist')
    const sent = new Map<number, number>()
    const stop = d.watch((s) => {
      if (s.from === f && s.message.type === 'heartbeat') sent.set(s.to, (sent.get(s.to) ?? 0) + 1)
    })
    d.runFor(8 * TLS)
    stop()
    for (const i of far) assert.is(sent.get(i) ?? 0, 0, `n${i}, a far member, got heartbeats`)
    for (const i of watched)
      assert.ok((sent.get(i) ?? 0) >= 7, `n${i} got ${sent.get(i) ?? 0} heartbeats in 8 Tls`)
    assertLeafSetsExact(d, 'after 8 quiet Tls')
  },
)

test(
  named('liveness: a crash is learned by members that do not watch the node, through its neighbours'),
  () => {
    const d = overlay('far-crash', 40)
    const x = 11
    // Nodes that hold x in their leaf set but do not watch it.
    const distant = d
      .active()
      .filter((i) => d.node(i).leafSet.contains(d.node(x).id) && !watchedBy(d, i).includes(x))
    assert.ok(distant.length > 0)
    const t0 = d.now
    d.crash(x)
    // The watchers declare x failed within DETECT and push their leaf sets; the others then probe x
    // (1 + probeRetries probes) and declare it too.
    d.runUntil(t0 + DETECT + 3 * PROBE + 1000)
    for (const i of distant) {
      assert.not.ok(d.node(i).leafSet.contains(d.node(x).id), `n${i} still holds the crashed n${x}`)
      assert.is(nodeFailedFor(d, i, x).length, 1, `n${i} declared n${x} failed`)
    }
    d.runFor(2 * TLS)
    assertLeafSetsExact(d, 'after a crash, at members near and far')
    const lookups = d.randomLookups(200, 1)
    d.runUntilQuiet()
    assertPerfect(d, lookups, 'after a crash, at members near and far')
  },
)

/** Hands a the heartbeat of its nearest cw member, with a leaf set that lacks x: a probes x. */
function gapHeartbeat(d: Driver, a: number, x: number): void {
  d.inject(a, {
    type: 'heartbeat',
    from: d.node(d.indexOf(d.node(a).leafSet.cw(0).id)).handle,
    leafSet: d
      .node(a)
      .leafSet.members()
      .filter((m) => !m.id.equals(d.node(x).id)),
  })
}

test(named('liveness: a live node wrongly declared failed is taken back within a few Tls'), () => {
  // Without second opinions, so that one broken path makes the wrong verdict.
  const d = overlay('false-verdict', 30, { indirectProbes: 0 })
  const a = 3
  // A far member of a's, which therefore never heartbeats a.
  const x = d.indexOf(d.node(a).leafSet.cw(d.node(a).config.heartbeatNeighbours).id)
  assert.not.ok(watchedBy(d, x).includes(a))
  // Everything x sends a is lost while a suspects it and probes it out, so a declares it failed.
  const heal = d.drop((s) => s.from === x && s.to === a)
  gapHeartbeat(d, a, x)
  d.runFor(4 * PROBE)
  assert.is(nodeFailedFor(d, a, x).length, 1, 'a declared x failed')
  assert.not.ok(d.node(a).leafSet.contains(d.node(x).id))
  heal()
  const t0 = d.now
  d.runUntilTrue(() => d.node(a).leafSet.contains(d.node(x).id), 10 * TLS)
  assert.ok(d.now - t0 <= 2 * TLS, `a took x back after ${d.now - t0} ms`)
  const lookups = d.randomLookups(200, 1)
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'after a wrong verdict')
})

test(named('liveness: a leaf that one node cannot hear is vouched for by other members and kept'), () => {
  // The scenario of the test above, with second opinions on (the default): x's path to a is
  // broken, the rest of the overlay hears x. a must not declare x failed, which would hand x's keys
  // to a neighbour of x's, and routing must stay correct while the path stays broken.
  const d = overlay('vouched', 30)
  const a = 3
  const x = d.indexOf(d.node(a).leafSet.cw(d.node(a).config.heartbeatNeighbours).id)
  const replies: { from: number; alive: boolean }[] = []
  d.watch((s) => {
    if (s.to === a && s.message.type === 'indirectProbeReply')
      replies.push({ from: s.from, alive: s.message.alive })
  })
  d.drop((s) => s.from === x && s.to === a)
  gapHeartbeat(d, a, x)
  d.runFor(4 * PROBE + INDIRECT)
  assert.ok(replies.length > 0, 'a asked other members about x')
  assert.ok(
    replies.some((r) => r.alive),
    `a helper vouched for x: ${JSON.stringify(replies)}`,
  )
  assert.equal(nodeFailedFor(d, a, x), [], 'a declared x failed')
  assert.ok(d.node(a).leafSet.contains(d.node(x).id))
  assert.not.ok(d.node(a).isSuspected(d.node(x).id), 'the vouch cleared the suspicion')
  // The path stays broken for several Tls: a keeps x, and lookups from everywhere, a included, of
  // keys x owns among them, land at the right node.
  const lookups = [...d.randomLookups(200, 1), d.route(a, d.node(x).id)]
  d.runFor(6 * TLS)
  d.runUntilQuiet()
  assert.equal(nodeFailedFor(d, a, x), [], 'a declared x failed later on')
  assertPerfect(d, lookups, 'with the path from x to a broken')
})

test(
  named('indirect probe: a helper answers for a live target, against a crashed one, and within bounds'),
  () => {
    const d = overlay('helper', 20)
    const asker = 2
    const helper = 5
    const live = 9
    const dead = 13
    d.crash(dead)
    const answers: Message[] = []
    let probesByHelper = 0
    d.watch((s) => {
      if (s.from === helper && s.to === asker && s.message.type === 'indirectProbeReply')
        answers.push(s.message)
      // Probes to unknown addresses: those for the flood's targets (the helper's own go to real nodes).
      if (s.from === helper && s.to === -1 && s.message.type === 'probe') probesByHelper++
    })
    const ask = (nonce: number, target: number) =>
      d.inject(helper, {
        type: 'indirectProbe',
        from: d.node(asker).handle,
        nonce,
        target: d.node(target).handle,
      })
    ask(1, live)
    ask(2, dead)
    ask(3, helper)
    d.runFor(PROBE + 200)
    const byNonce = new Map(answers.map((m) => [(m as { nonce: number }).nonce, m]))
    assert.equal(byNonce.get(1), {
      type: 'indirectProbeReply',
      from: d.node(helper).handle,
      nonce: 1,
      target: d.node(live).id,
      alive: true,
    })
    assert.is((byNonce.get(2) as { alive: boolean }).alive, false, 'the crashed target did not answer')
    assert.is((byNonce.get(3) as { alive: boolean }).alive, true, 'a helper asked about itself is alive')
    assert.is(answers.length, 3, 'one answer per request')
    // A flood of requests for nodes that do not exist: the helper probes a bounded number of them at
    // once, answers each probed one, ignores the rest, and keeps working.
    answers.length = 0
    probesByHelper = 0
    const fakes = Array.from({ length: 500 }, (_, k) => ({
      id: randomId(d.rng),
      address: addressOf(d.nodes.length + k),
    }))
    for (const [k, target] of fakes.entries())
      d.inject(helper, { type: 'indirectProbe', from: d.node(asker).handle, nonce: 100 + k, target })
    assert.ok(probesByHelper > 0 && probesByHelper <= 64, `${probesByHelper} probes for the flood`)
    d.runFor(PROBE + 200)
    assert.is(answers.length, probesByHelper)
    assert.ok(answers.every((m) => !(m as { alive: boolean }).alive))
    const lookups = d.randomLookups(100, 1)
    d.runUntilQuiet()
    assertPerfect(d, lookups, 'after the flood')
  },
)

test(
  named('regression: a suspected node heard from while its probes went unanswered was declared failed'),
  () => {
    // Under 5% loss (PASTRY_SEED=1669803462, "with 5% message loss" in testkit's protocol-sim): an ack
    // timeout made x suspect m; every probe or answer was lost, but a heartbeat from m got through
    // and cleared the suspicion. The probes' last timeout still declared m failed, and x then
    // delivered one of m's keys itself.
    const d = overlay('heard-while-probed', 30)
    const x = 4
    const m = d.indexOf(d.node(x).leafSet.cw(0).id)
    const heal = d.drop((s) => s.from === m && s.to === x)
    d.runUntilTrue(() => d.node(x).isSuspected(d.node(m).id), TLT + 2 * TLS)
    // Between two unanswered probes, a heartbeat from m gets through.
    d.runFor(PROBE + 10)
    d.inject(x, { type: 'heartbeat', from: d.node(m).handle })
    assert.not.ok(d.node(x).isSuspected(d.node(m).id), 'hearing from m cleared the suspicion')
    d.runFor(4 * PROBE)
    assert.equal(nodeFailedFor(d, x, m), [], 'x declared m failed though it heard from it')
    assert.ok(d.node(x).leafSet.contains(d.node(m).id))
    heal()
    const l = d.route(x, d.node(m).id)
    d.runUntilQuiet()
    assert.equal(
      l.deliveries.map((r) => r.node),
      [m],
      "m's own key is delivered at m",
    )
  },
)

test(named('maintenance: a crashed routing-table entry of a node that routes nothing is removed'), () => {
  // Found by the churn benchmark: entries were checked only when used, so a quiet node kept
  // crashed ones (22 % of all entries after 2 h of churn at 2,000 nodes) and then gave up on
  // messages after trying them one after another.
  const d = overlay('rt-check', 60)
  const x = 9
  const leaves = new Set(
    d
      .node(x)
      .leafSet.members()
      .map((m) => d.indexOf(m.id)),
  )
  const entry = [...d.node(x).routingTable].map((e) => d.indexOf(e.id)).find((i) => !leaves.has(i))
  assert.ok(entry !== undefined, 'x has a routing-table entry outside its leaf set')
  d.crash(entry)
  const trt = FAST.routingTableMaintenanceMs!
  // Unheard for Trt, then checked at the next round (every 0.5 to 1.5 Trt), probed 1 + probeRetries times.
  d.runFor(3 * trt + 3 * PROBE + TICK)
  assert.not.ok(d.node(x).routingTable.contains(d.node(entry).id), 'the crashed entry is still there')
  assert.is(nodeFailedFor(d, x, entry).length, 1)
})

test(named('liveness: a probe answer clears suspicion'), () => {
  const d = overlay('probe-answer', 30)
  const x = 4
  const m = d.indexOf(d.node(x).leafSet.cw(0).id)
  let onlyProbeReplies = false
  d.drop((s) => s.from === m && (!onlyProbeReplies || s.message.type !== 'probeReply'))
  d.runUntilTrue(() => d.node(x).isSuspected(d.node(m).id), TLT + 2 * TLS)
  // From now on only m's probe answers get through.
  onlyProbeReplies = true
  d.runFor(3 * PROBE)
  assert.not.ok(d.node(x).isSuspected(d.node(m).id), 'the answer cleared the suspicion')
  assert.ok(d.node(x).leafSet.contains(d.node(m).id), 'and m stayed in the leaf set')
  assert.equal(nodeFailedFor(d, x, m), [])
  // Routing to m works again from x.
  const l = d.route(x, d.node(m).id)
  d.runUntilQuiet()
  assert.is(l.deliveries.length, 1)
})

// -----------------------------------------------------------------------------------------------
// 6. Graceful leave

test(named('leave: neighbours remove the leaver and refill; lookups stay 100% correct'), () => {
  const d = overlay('leave', 40)
  const leaver = 13
  const neighbours = d
    .node(leaver)
    .leafSet.members()
    .map((m) => d.indexOf(m.id))
  const t0 = d.now
  d.leave(leaver)
  assert.equal(
    d
      .eventsOf(leaver, 'stateChanged')
      .slice(-2)
      .map((r) => r.event.to),
    ['leaving', 'closed'],
  )
  // No failure detection is needed: the leave message and the refill take a few round trips.
  d.runUntil(t0 + 2000)
  assertLeafSetsExact(d, 'after the leave')
  for (const n of neighbours) {
    assert.not.ok(d.node(n).leafSet.contains(d.node(leaver).id))
    const gone = d
      .eventsOf(n, 'update')
      .filter((r) => !r.event.joined && r.event.node.address === addressOf(leaver))
    assert.is(gone.length, 1, `n${n}: update(joined: false) for the leaver`)
    assert.ok(d.node(n).leafSet.isFull, `n${n} refilled its leaf set`)
  }
  const after = d.randomLookups(300, 2)
  d.runUntilQuiet()
  assertPerfect(d, after, 'after the leave')
})

test(named('leave: lookups routed while a node leaves are all delivered, once, at the right node'), () => {
  const d = overlay('leave-during', 40)
  const t0 = d.now
  const during = d.randomLookups(500, 4)
  d.at(t0 + 300, () => d.leave(13))
  d.at(t0 + 1100, () => d.leave(27))
  d.runUntilQuiet()
  assertPerfect(d, during, 'during the leaves')
})

test(named('leave: messages in the leaver\u2019s care are handed over and delivered'), () => {
  const d = overlay('leave-handover', 20)
  const leaver = 5
  // The leaver's onward hops are not acknowledged, so what it routes stays in its care.
  const stop = d.drop((s) => s.to === leaver && s.message.type === 'ack')
  const keys: Id[] = []
  while (keys.length < 5) {
    const k = randomId(d.rng)
    if (d.closest(k) !== leaver) keys.push(k)
  }
  const lookups = keys.map((k) => d.route(leaver, k))
  d.runFor(30)
  assert.is(d.node(leaver).pendingRoutes, 5)
  d.leave(leaver)
  stop()
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'handed over')
})

test(named('regression: a leaver handed a message over to the hop that had not acknowledged it'), () => {
  // A node routed a message to a peer that had just crashed, then left before the ack timed out.
  // It handed the message over to the best next hop it knew: the same silent peer, so the message
  // was lost (found with PASTRY_SEED=1194833715 in the "lookups routed while a node leaves" test).
  const d = overlay('leave-unacked', 20)
  const leaver = 5
  const silent = d.indexOf(d.node(leaver).leafSet.cw(0).id)
  d.crash(silent)
  const lookup = d.route(leaver, d.node(silent).id)
  d.runFor(10)
  assert.is(d.node(leaver).pendingRoutes, 1, 'sent to the crashed peer, not yet acknowledged')
  d.leave(leaver)
  d.runUntilQuiet()
  assertPerfect(d, [lookup], 'the message handed over')
})

test(named('regression: a leaver that hands a message over is taken back into the leaf set it left'), () => {
  // leave() sends `leave` to its leaf set, then hands the messages in its care over as `route`
  // messages. The receiver handles `leave` (removes the leaver, marks it failed), then the `route`
  // from the same node: #heard() forgets the failure on any traffic ("nodeRecovered"), and, since a
  // route counts as proof of an active sender, puts the closed leaver back into its leaf set.
  const d = overlay('leave-resurrect', 20)
  const leaver = 5
  const member = d.indexOf(d.node(leaver).leafSet.cw(0).id)
  const stop = d.drop((s) => s.to === leaver && s.message.type === 'ack')
  d.route(leaver, d.node(member).id) // the next hop is the member itself
  d.runFor(30)
  assert.is(d.node(leaver).pendingRoutes, 1)
  const t0 = d.now
  d.leave(leaver)
  stop()
  d.runUntil(t0 + 500)
  const recovered = d
    .eventsOf(member, 'nodeRecovered')
    .filter((r) => r.event.node.address === addressOf(leaver))
  assert.not.ok(
    d.node(member).leafSet.contains(d.node(leaver).id),
    `n${member} has the departed n${leaver} in its leaf set again (nodeRecovered at ${recovered.map((r) => r.at - t0)} ms)`,
  )
  assert.equal(recovered, [])
})

test(named('regression: a node that left still counts the routes it handed over as pending'), () => {
  // leave() clears #pending, then hands each message over with #transmitRouted, which records it
  // in #pending again; the node is closed with deadlines cleared, so those records never go.
  const d = overlay('leave-pending', 20)
  const leaver = 5
  d.drop((s) => s.to === leaver && s.message.type === 'ack')
  let key = randomId(d.rng)
  while (d.closest(key) === leaver) key = randomId(d.rng)
  d.route(leaver, key)
  d.runFor(30)
  d.leave(leaver)
  d.runFor(10 * TLS)
  assert.is(d.node(leaver).state, 'closed')
  assert.is(d.node(leaver).pendingRoutes, 0, 'a closed node awaits no ack')
})

// -----------------------------------------------------------------------------------------------
// 7. Bad input

test(named("bad input: a message claiming the node's own id from another address is an error"), () => {
  const d = overlay('id-conflict', 12)
  const x = 3
  const impostor = { id: d.node(x).id, address: 'n999' }
  const before = d.node(x).leafSet.members().length
  const toImpostor: Message[] = []
  d.watch((s) => {
    if (s.to < 0) toImpostor.push(s.message)
  })
  d.inject(x, { type: 'heartbeat', from: impostor, leafSet: [] })
  d.inject(x, {
    type: 'route',
    from: impostor,
    msgId: 5,
    key: d.node(x).id,
    origin: impostor,
    hops: 1,
    app: 'evil',
    payload: new Uint8Array(1),
  })
  const errors = d.eventsOf(x, 'error')
  assert.is(errors.length, 2)
  assert.is(errors[0]!.event.code, 'ID_CONFLICT')
  assert.ok(errors[0]!.event.message.includes('n999'))
  assert.equal(d.eventsOf(x, 'deliver'), [], 'nothing the impostor sent was delivered')
  assert.equal(toImpostor, [], 'nothing was sent back to it')
  assert.is(d.node(x).state, 'active')
  assert.is(d.node(x).leafSet.members().length, before)
  const lookups = d.randomLookups(100, 2)
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'after the impostor')
})

test(named('bad input: acks and probeReplies that match nothing are ignored'), () => {
  const d = overlay('unmatched', 12)
  const x = 3
  const y = d.node(7).handle
  const count = d.events[x]!.length
  d.inject(x, { type: 'ack', from: y, msgId: 123456 })
  d.inject(x, { type: 'probeReply', from: y, nonce: 98765 })
  d.inject(x, { type: 'probeReply', from: y, nonce: 98766, leafSet: [] })
  assert.is(d.events[x]!.length, count, 'no events')
  assert.is(d.node(x).pendingRoutes, 0)
  // An ack for a message x really has in flight, from the wrong node, changes nothing either.
  let key = randomId(d.rng)
  while (d.closest(key) === x) key = randomId(d.rng)
  let next = -1
  const stop = d.watch((s) => {
    if (s.from === x && s.message.type === 'route' && next < 0) next = s.to
  })
  const unack = d.drop((s) => s.to === x && s.message.type === 'ack')
  const l = d.route(x, key)
  stop()
  assert.ok(next >= 0)
  const m = d.indexOf(d.node(x).leafSet.cw(0).id)
  const wrong = d.active().find((i) => i !== x && i !== next && i !== m)!
  d.inject(x, { type: 'ack', from: d.node(wrong).handle, msgId: l.msgId })
  assert.is(d.node(x).pendingRoutes, 1, 'an ack from the wrong node does not settle a hop')
  unack()
  d.runUntilQuiet()
  assertPerfect(d, [l], 'the message went through anyway')
  // A probe reply with the nonce of a live probe, but from the wrong node, does not answer it.
  d.drop((s) => s.from === m)
  let nonce = -1
  d.watch((s) => {
    if (s.from === x && s.to === m && s.message.type === 'probe') nonce = s.message.nonce
  })
  d.runUntilTrue(() => d.node(x).isSuspected(d.node(m).id), TLT + 2 * TLS)
  assert.ok(nonce >= 0)
  d.inject(x, { type: 'probeReply', from: d.node(wrong).handle, nonce })
  assert.ok(d.node(x).isSuspected(d.node(m).id), 'still suspected')
  d.runFor(3 * PROBE + INDIRECT + 10)
  assert.is(nodeFailedFor(d, x, m).length, 1)
})

test(named('bad input: maxPendingRoutes overflow fails routes as overloaded; memory stays bounded'), () => {
  const max = 8
  const d = overlay('pending-cap', 12, { maxPendingRoutes: max })
  const x = 2
  const unack = d.drop((s) => s.to === x && s.message.type === 'ack')
  const sent: Lookup[] = []
  let peak = 0
  for (let k = 0; k < 2000; k++) {
    let key = randomId(d.rng)
    while (d.closest(key) === x) key = randomId(d.rng)
    sent.push(d.route(x, key))
    peak = Math.max(peak, d.node(x).pendingRoutes)
    if (k % 100 === 0) d.runFor(1)
  }
  assert.is(peak, max, 'pendingRoutes reached the cap and never passed it')
  const overloaded = d.eventsOf(x, 'routeFailed').filter((r) => r.event.reason === 'overloaded')
  assert.ok(overloaded.length >= 2000 - max * 21, `${overloaded.length} refused as overloaded`)
  unack()
  d.runUntilQuiet()
  assert.is(d.node(x).pendingRoutes, 0)
  const accepted = sent.filter((l) => l.failed === undefined)
  assert.ok(accepted.length > 0)
  for (const l of accepted) assert.is(l.deliveries.length, 1, `accepted msg ${l.msgId} delivered once`)
  for (const l of sent.filter((s) => s.failed === 'overloaded')) assert.is(l.deliveries.length, 0)
})

test(
  named('bad input: messages held while a closer leaf is suspected are bounded by maxHeldMessages'),
  () => {
    const max = 10
    const d = overlay('held-cap', 20, { maxHeldMessages: max })
    // x, whose nearest clockwise leaf c is nearer to it than to c's own clockwise neighbour: then x
    // is the closest node to the key just counter-clockwise of c, once c is out of the way.
    const gap = (a: number, b: number) => mod128(d.node(b).id.toBigInt() - d.node(a).id.toBigInt())
    const x = d.active().find((i) => {
      const ls = d.node(i).leafSet
      const c = d.indexOf(ls.cw(0).id)
      return gap(i, c) < gap(c, d.indexOf(ls.cw(1).id))
    })!
    const c = d.indexOf(d.node(x).leafSet.cw(0).id)
    d.crash(c)
    d.runUntilTrue(() => d.node(x).isSuspected(d.node(c).id), TLT + 2 * TLS)
    // x may not deliver a key closer to c until c's fate is known: it holds such messages.
    const key = Id.fromBigInt(mod128(d.node(c).id.toBigInt() - 1n))
    const lookups: Lookup[] = []
    for (let k = 0; k < 40; k++) {
      lookups.push(d.route(x, key))
      assert.ok(d.node(x).heldMessages <= max)
    }
    assert.is(d.node(x).heldMessages, max)
    assert.is(lookups.filter((l) => l.failed === 'overloaded').length, 40 - max)
    d.runUntilQuiet()
    assert.is(d.node(x).heldMessages, 0)
    const kept = lookups.filter((l) => l.failed === undefined)
    assertPerfect(d, kept, 'the held messages, once c was declared failed')
    assert.is(kept[0]!.deliveries[0]!.node, x)
  },
)

test.run()

test(named('leaf-set gaps: a full leaf set in send order, or shuffled, raises the same suspicion'), () => {
  /** The nodes node 0 probes after node 1's leaf set arrives from its clockwise neighbour. */
  const probed = (shuffle: boolean): { probes: number[]; missing: number } => {
    const n = 40
    const d = new Driver({ seed: seedOf('gaps/order'), n })
    d.ring(n)
    d.runFor(3 * FAST.leafSetHeartbeatMs!)
    const x = 0
    const y = d.indexOf(d.node(x).leafSet.cw(0).id)
    const ly = d.node(y).leafSet
    // Node y's leaf set as it would send it, but with its 4th clockwise member (one of x's own
    // members, inside y's span) left out and the next node clockwise taken in at the end of that
    // half: still full, still in order, and silent about that member.
    const missing = d.indexOf(ly.cw(3).id)
    const yId = mod128(BigInt(`0x${d.node(y).id.toHex()}`))
    const byClockwise = d
      .active()
      .filter((i) => i !== y)
      .sort((a, b) => {
        const da = mod128(BigInt(`0x${d.node(a).id.toHex()}`) - yId)
        const db = mod128(BigInt(`0x${d.node(b).id.toHex()}`) - yId)
        return da < db ? -1 : da > db ? 1 : 0
      })
    const cw = [0, 1, 2, 4, 5, 6, 7].map((k) => ly.cw(k))
    cw.push(d.node(byClockwise[8]!).handle)
    const ccw = Array.from({ length: ly.ccwSize }, (_, k) => ly.ccw(k))
    const leafSet = [...cw, ...ccw]
    assert.is(leafSet.length, d.node(x).config.leafSetSize)
    if (shuffle) {
      const rng = createRng(seedOf('gaps/order/shuffle'))
      for (let k = leafSet.length - 1; k > 0; k--) {
        const r = Math.floor(rng.float() * (k + 1))
        ;[leafSet[k], leafSet[r]] = [leafSet[r]!, leafSet[k]!]
      }
    }
    const probes: number[] = []
    d.watch((s) => {
      if (s.from === x && s.message.type === 'probe') probes.push(s.to)
    })
    d.inject(x, { type: 'heartbeat', from: d.node(y).handle, leafSet })
    d.runFor(1)
    return { probes, missing }
  }
  const inOrder = probed(false)
  const shuffled = probed(true)
  assert.equal(inOrder.probes, [inOrder.missing], 'in send order: the member left out is probed, alone')
  assert.equal(shuffled.probes, inOrder.probes, 'shuffled: the same probes')
})
