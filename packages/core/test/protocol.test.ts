// The node state machine through its public API: lifecycle and contract, join, the routing API and
// determinism. Overlays run in virtual time on the small driver in `_driver.ts`; an oracle (bigint
// brute force) says which node should deliver each key and what every leaf set should be.
// Every randomised test derives its rng from SEED: PASTRY_SEED=<seed> replays a run (STYLE.md, 7).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  ConfigError,
  createRng,
  DEFAULT_PROTOCOL_CONFIG,
  type ForwardDecision,
  Id,
  IllegalStateError,
  type Message,
  type NodeEvent,
  PastryError,
  PastryNode,
  type ProtocolConfig,
  randomId,
  resolveConfig,
} from '../src/index.js'
import { addressOf, Driver, FAST, type Lookup, mod128 } from './_driver.js'
import { SEED } from './_seed.js'

const seedOf = (label: string): string => `${SEED}/protocol/${label}`
const named = (title: string): string => `${title} (PASTRY_SEED=${SEED})`

/** Asserts that `fn` throws IllegalStateError with code ILLEGAL_STATE. */
function throwsIllegal(fn: () => unknown, what: string): void {
  try {
    fn()
  } catch (e) {
    assert.instance(e, IllegalStateError, `${what}: threw ${String(e)}`)
    assert.is((e as IllegalStateError).code, 'ILLEGAL_STATE', what)
    return
  }
  assert.unreachable(`${what}: did not throw`)
}

function bareNode(label: string, config: Partial<ProtocolConfig> = FAST): PastryNode {
  const rng = createRng(seedOf(label))
  return new PastryNode({ id: randomId(rng), address: 'n0', rng: rng.derive('node'), config })
}

function drainEvents(n: PastryNode): NodeEvent[] {
  const out: NodeEvent[] = []
  for (let e = n.pollEvent(); e !== undefined; e = n.pollEvent()) out.push(e)
  return out
}

function drainTransmits(n: PastryNode): Message[] {
  const out: Message[] = []
  for (let t = n.pollTransmit(); t !== undefined; t = n.pollTransmit()) out.push(t.message)
  return out
}

const states = (d: Driver, i: number): string[] =>
  d.eventsOf(i, 'stateChanged').map((r) => `${r.event.from}>${r.event.to}`)

/** Asserts a lookup report is perfect: all delivered once, at the oracle's node, bytes intact. */
function assertPerfect(d: Driver, lookups: readonly Lookup[], what: string): void {
  const r = d.report(lookups)
  const summary = `${what}: ${JSON.stringify({ ...r, details: undefined })}\n${r.details.join('\n')}`
  assert.ok(r.total > 0, `${what}: no lookups`)
  assert.is(r.lost, 0, summary)
  assert.is(r.duplicated, 0, summary)
  assert.is(r.wrong, 0, summary)
  assert.is(r.failed, 0, summary)
  for (const l of lookups) {
    const got = l.deliveries[0]!
    assert.is(got.app, l.app, `${what}: app`)
    assert.equal(got.payload, l.payload, `${what}: payload of msg ${l.msgId}`)
  }
  assert.equal(d.violations, [], `${what}: driver saw contract breaches`)
}

function assertLeafSetsExact(d: Driver, what: string): void {
  const errors = d.leafSetErrors()
  assert.equal(errors.slice(0, 5), [], `${what}: ${errors.length} leaf sets differ from the oracle's`)
}

// -----------------------------------------------------------------------------------------------
// 1. Lifecycle and contract

test(named('lifecycle: start makes a lone node active, the root of every key'), () => {
  const d = new Driver({ seed: seedOf('start'), n: 1 })
  d.start(0)
  assert.is(d.node(0).state, 'active')
  assert.equal(states(d, 0), ['idle>active'])
  assert.ok(d.node(0).nextDeadline() !== undefined, 'an active node keeps periodic deadlines')
  const lookups = [d.route(0, randomId(d.rng)), d.route(0, d.node(0).id)]
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'alone')
  for (const l of lookups) assert.is(l.deliveries[0]!.hops, 0)
})

test(named('lifecycle: illegal transitions throw IllegalStateError (ILLEGAL_STATE)'), () => {
  const key = Id.fromBigInt(12345n)
  const bytes = new Uint8Array([1])
  const idle = bareNode('illegal/idle')
  throwsIllegal(() => idle.route(0, key, 'a', bytes), 'route before start or join')
  throwsIllegal(() => idle.send(0, idle.handle, 'a', bytes), 'send before start or join')
  throwsIllegal(() => idle.leave(0), 'leave while idle')
  throwsIllegal(() => idle.join(0, []), 'join with no bootstrap')
  assert.is(idle.state, 'idle', 'a refused command changes nothing')
  assert.equal(drainEvents(idle), [])
  assert.equal(drainTransmits(idle), [])
  assert.is(idle.nextDeadline(), undefined)

  const active = bareNode('illegal/active')
  active.start(0)
  throwsIllegal(() => active.start(1), 'start twice')
  throwsIllegal(() => active.join(1, ['n9']), 'join while active')
  assert.is(active.state, 'active')

  const joining = bareNode('illegal/joining')
  joining.join(0, ['n9'])
  assert.is(joining.state, 'joining')
  throwsIllegal(() => joining.start(1), 'start while joining')
  throwsIllegal(() => joining.join(1, ['n9']), 'join twice')
  throwsIllegal(() => joining.leave(1), 'leave while joining')
  assert.is(joining.state, 'joining')

  const closed = bareNode('illegal/closed')
  closed.start(0)
  closed.close(1)
  throwsIllegal(() => closed.route(2, key, 'a', bytes), 'route when closed')
  throwsIllegal(() => closed.send(2, closed.handle, 'a', bytes), 'send when closed')
  throwsIllegal(() => closed.start(2), 'start when closed')
  throwsIllegal(() => closed.join(2, ['n9']), 'join when closed')
  throwsIllegal(() => closed.leave(2), 'leave when closed')
})

test(named('lifecycle: now going backwards throws, and changes nothing'), () => {
  const n = bareNode('time')
  n.start(100)
  drainEvents(n)
  try {
    n.handleTimeout(99)
    assert.unreachable('handleTimeout(99) after 100 did not throw')
  } catch (e) {
    assert.instance(e, PastryError)
    assert.is((e as PastryError).code, 'TIME_WENT_BACKWARDS')
  }
  try {
    n.route(50, n.id, 'a', new Uint8Array(0))
    assert.unreachable('route at 50 after 100 did not throw')
  } catch (e) {
    assert.is((e as PastryError).code, 'TIME_WENT_BACKWARDS')
  }
  assert.equal(drainEvents(n), [], 'the refused route delivered nothing')
  try {
    n.handleTimeout(Number.NaN)
    assert.unreachable('NaN did not throw')
  } catch (e) {
    assert.is((e as PastryError).code, 'BAD_TIME')
  }
  n.handleTimeout(100) // the same instant again is fine
  n.route(100, n.id, 'a', new Uint8Array(0))
  assert.is(drainEvents(n)[0]?.type, 'deliver')
})

test(named('lifecycle: close is idempotent, fails what it held, and silences the node'), () => {
  const d = new Driver({ seed: seedOf('close'), n: 2 })
  d.start(0)
  d.join(1, [0])
  d.runUntilQuiet()
  // Node 1 routes toward node 0, whose acks are lost: the message stays in node 1's care.
  d.drop((s) => s.from === 0 && s.message.type === 'ack')
  const key = d.node(0).id
  const l = d.route(1, key)
  d.runFor(30)
  assert.is(d.node(1).pendingRoutes, 1)
  d.crash(1)
  d.crash(1)
  d.node(1).close(d.now + 5)
  assert.equal(states(d, 1), ['idle>joining', 'joining>active', 'active>closed'])
  const failed = d.eventsOf(1, 'routeFailed')
  assert.is(failed.length, 1)
  assert.is(failed[0]!.event.msgId, l.msgId)
  assert.is(failed[0]!.event.reason, 'closed')
  assert.is(d.node(1).pendingRoutes, 0)
  assert.is(d.node(1).nextDeadline(), undefined)
  // A closed node ignores messages and emits nothing.
  const before = d.events[1]!.length
  d.node(1).handleMessage(d.now + 6, { type: 'heartbeat', from: d.node(0).handle })
  d.node(1).handleTimeout(d.now + 7)
  assert.is(d.node(1).pollTransmit(), undefined)
  assert.is(d.node(1).pollEvent(), undefined)
  assert.is(d.events[1]!.length, before)
  // An idle node can be closed too.
  const idle = bareNode('close/idle')
  idle.close(0)
  idle.close(0)
  assert.equal(drainEvents(idle), [{ type: 'stateChanged', from: 'idle', to: 'closed' }])
})

test(
  named('outputs: drainTransmits hands over what pollTransmit would; a throwing send loses only its message'),
  () => {
    // Two identical rings; in each, node 2 leaves and queues a message to every leaf-set member.
    const queued = (): PastryNode => {
      const d = new Driver({ seed: seedOf('drain/throw'), n: 6 })
      d.ring(6)
      d.runUntilQuiet()
      const n = d.node(2)
      n.leave(d.now + 1)
      return n
    }
    const expected: string[] = []
    const reference = queued()
    for (let t = reference.pollTransmit(); t !== undefined; t = reference.pollTransmit())
      expected.push(`${t.to} ${t.message.type}`)
    assert.ok(expected.length >= 3, `a leave queues a message per leaf-set member, got ${expected.length}`)
    const n = queued()
    const got: string[] = []
    assert.throws(
      () =>
        n.drainTransmits((to, message) => {
          if (got.length === 1) {
            got.push('thrown')
            throw new Error('send failed')
          }
          got.push(`${to} ${message.type}`)
        }),
      /send failed/,
    )
    // The rest stay queued, in order, for either way of taking them.
    n.drainTransmits((to, message) => got.push(`${to} ${message.type}`))
    assert.equal(got, [expected[0], 'thrown', ...expected.slice(2)])
    assert.is(n.pollTransmit(), undefined)
  },
)

test(named('lifecycle: stateChanged events come in order, for join, leave and a failed join'), () => {
  const d = new Driver({ seed: seedOf('states'), n: 5 })
  d.start(0)
  d.growOneByOne([1, 2, 3])
  d.runFor(2000)
  d.leave(2)
  // Node 4 joins through an address nobody answers at: it gives up after joinAttempts.
  d.crash(3)
  d.join(4, [3])
  d.runFor(FAST.joinTimeoutMs! * DEFAULT_PROTOCOL_CONFIG.joinAttempts + 1000)
  assert.equal(states(d, 0), ['idle>active'])
  assert.equal(states(d, 1), ['idle>joining', 'joining>active'])
  assert.equal(states(d, 2), ['idle>joining', 'joining>active', 'active>leaving', 'leaving>closed'])
  assert.equal(states(d, 3), ['idle>joining', 'joining>active', 'active>closed'])
  assert.equal(states(d, 4), ['idle>joining', 'joining>closed'])
  const ev4 = d.events[4]!.map((r) => r.event.type)
  assert.equal(ev4.slice(-2), ['joinFailed', 'stateChanged'], 'joinFailed comes just before closing')
  const joinsSent = d.node(4).counters.sent.join
  assert.is(joinsSent, DEFAULT_PROTOCOL_CONFIG.joinAttempts, 'one JOIN per attempt')
  assert.equal(d.violations, [])
})

test(named('lifecycle: a join retries through the next bootstrap when one is dead'), () => {
  const d = new Driver({ seed: seedOf('bootstrap'), n: 4 })
  d.start(0)
  d.growOneByOne([1, 2])
  d.crash(2)
  d.join(3, [2, 1])
  d.runUntilQuiet(FAST.joinTimeoutMs! * 3)
  assert.is(d.node(3).state, 'active')
  assert.is(d.node(3).counters.sent.join, 2, 'the first JOIN went unanswered, the second was not')
  d.runFor(FAST.leafSetHeartbeatMs!)
  assertLeafSetsExact(d, 'after the retried join')
})

test('config: resolveConfig rejects bad settings with ConfigError, naming the setting', () => {
  const bad: [Partial<ProtocolConfig>, string][] = [
    [{ b: 3 as never }, 'b'],
    [{ leafSetSize: 66 }, 'leafSetSize'],
    [{ neighbourhoodSize: 0 }, 'neighbourhoodSize'],
    [{ leafSetHeartbeatMs: 0 }, 'leafSetHeartbeatMs'],
    [{ leafSetHeartbeatMs: Number.NaN }, 'leafSetHeartbeatMs'],
    [{ leafSetHeartbeatMs: Number.POSITIVE_INFINITY }, 'leafSetHeartbeatMs'],
    [{ leafSetTimeoutMs: -1 }, 'leafSetTimeoutMs'],
    [{ probeTimeoutMs: 0 }, 'probeTimeoutMs'],
    [{ ackTimeoutMinMs: 0 }, 'ackTimeoutMinMs'],
    [{ ackTimeoutMaxMs: Number.NaN }, 'ackTimeoutMaxMs'],
    [{ ackTimeoutMinMs: 3000, ackTimeoutMaxMs: 2000 }, 'ackTimeoutMinMs'],
    [{ joinTimeoutMs: -5 }, 'joinTimeoutMs'],
    [{ routingTableMaintenanceMs: 0 }, 'routingTableMaintenanceMs'],
    [{ routingTableCheckMinMs: 0 }, 'routingTableCheckMinMs'],
    [{ deadEntryTarget: -0.1 }, 'deadEntryTarget'],
    [{ deadEntryTarget: 1 }, 'deadEntryTarget'],
    [{ deadEntryTarget: Number.NaN }, 'deadEntryTarget'],
    [{ failedMemoryMs: 0 }, 'failedMemoryMs'],
    [{ probeRetries: -1 }, 'probeRetries'],
    [{ probeRetries: 1.5 }, 'probeRetries'],
    [{ deepCellMembers: -1 }, 'deepCellMembers'],
    [{ deepCellMembers: 17 }, 'deepCellMembers'],
    [{ deepCellMembers: 2.5 }, 'deepCellMembers'],
    [{ probeRetries: 101 }, 'probeRetries'],
    [{ maxRouteAttempts: 0 }, 'maxRouteAttempts'],
    [{ maxRouteAttempts: 2.5 }, 'maxRouteAttempts'],
    [{ joinAttempts: 0 }, 'joinAttempts'],
    [{ maxPendingRoutes: 0 }, 'maxPendingRoutes'],
    [{ maxHeldMessages: -1 }, 'maxHeldMessages'],
    [{ maxProbesInFlight: 0 }, 'maxProbesInFlight'],
    [{ maxFailedMemory: 0 }, 'maxFailedMemory'],
    [{ maxDeliveredMemory: 1.5 }, 'maxDeliveredMemory'],
    [{ pns: 'yes' as never }, 'pns'],
    [{ findNearbySeed: 1 as never }, 'findNearbySeed'],
    [{ heartbeatNeighbours: 0 }, 'heartbeatNeighbours'],
    [{ heartbeatNeighbours: 9 }, 'heartbeatNeighbours'],
    [{ leafSetSize: 4, heartbeatNeighbours: 3 }, 'heartbeatNeighbours'],
  ]
  for (const [partial, name] of bad) {
    try {
      resolveConfig(partial)
      assert.unreachable(`${JSON.stringify(partial)} was accepted`)
    } catch (e) {
      assert.instance(e, ConfigError, `${name}: ${String(e)}`)
      assert.is((e as ConfigError).code, 'INVALID_CONFIG')
      assert.ok((e as Error).message.includes(name), `the message names ${name}: ${(e as Error).message}`)
    }
    assert.throws(
      () => new PastryNode({ id: Id.ZERO, address: 'n0', rng: createRng(1), config: partial }),
      (e: unknown) => e instanceof ConfigError,
      `the constructor rejects ${name} too`,
    )
  }
})

test('handle option: a fitting frozen handle becomes the node’s own; any other is a ConfigError', () => {
  const id = Id.parse('0123456789abcdef0123456789abcdef')
  const given = Object.freeze({ id, address: 'n0' })
  const node = new PastryNode({ id, address: 'n0', handle: given, rng: createRng(1) })
  assert.ok(node.handle === given, 'the node hands out the given object')
  const own = new PastryNode({ id, address: 'n0', rng: createRng(1) })
  assert.ok(Object.isFrozen(own.handle) && own.handle.id === id && own.handle.address === 'n0')
  const other = Id.parse('f123456789abcdef0123456789abcdef')
  for (const [handle, why] of [
    [Object.freeze({ id: other, address: 'n0' }), 'another id'],
    [Object.freeze({ id, address: 'n1' }), 'another address'],
    [{ id, address: 'n0' }, 'not frozen'],
    [null, 'null'],
  ] as const) {
    assert.throws(
      () => new PastryNode({ id, address: 'n0', handle: handle as never, rng: createRng(1) }),
      (e: unknown) => e instanceof ConfigError && /handle/.test((e as Error).message),
      why,
    )
  }
})

test('config: defaults, derived timeouts, and a frozen result', () => {
  assert.equal(resolveConfig(), DEFAULT_PROTOCOL_CONFIG)
  const c = resolveConfig({ leafSetHeartbeatMs: 1000 })
  assert.is(c.leafSetTimeoutMs, 2500, 'leafSetTimeoutMs follows Tls')
  assert.is(c.failedMemoryMs, 25_000, 'failedMemoryMs follows leafSetTimeoutMs')
  const e = resolveConfig({ leafSetHeartbeatMs: 1000, leafSetTimeoutMs: 4000 })
  assert.is(e.leafSetTimeoutMs, 4000)
  assert.is(e.failedMemoryMs, 40_000)
  assert.is(resolveConfig().heartbeatNeighbours, 2)
  assert.is(resolveConfig({ leafSetSize: 2 }).heartbeatNeighbours, 1, 'at most L/2 by default')
  assert.is(resolveConfig({ leafSetSize: 32, heartbeatNeighbours: 16 }).heartbeatNeighbours, 16)
  assert.ok(Object.isFrozen(c))
})

test('regression: resolveConfig names leafSetSize when it is odd or too small', () => {
  // resolveConfig's doc: "throwing ConfigError with the setting's name for a bad one". An odd or
  // tiny leafSetSize is rejected by checkLeafSetSize, whose message says "the leaf-set size L",
  // never "leafSetSize".
  for (const leafSetSize of [3, 0, 1, 258]) {
    try {
      resolveConfig({ leafSetSize })
      assert.unreachable(`leafSetSize ${leafSetSize} was accepted`)
    } catch (e) {
      assert.instance(e, ConfigError)
      assert.ok(
        (e as Error).message.includes('leafSetSize'),
        `leafSetSize ${leafSetSize}: the message does not name the setting: "${(e as Error).message}"`,
      )
    }
  }
})

// -----------------------------------------------------------------------------------------------
// 2. Join

test(named('join: two nodes'), () => {
  const d = new Driver({ seed: seedOf('join/two'), n: 2 })
  d.start(0)
  d.join(1, [0])
  d.runUntilQuiet(10_000)
  // The joiner's first heartbeat, which tells the bootstrap it is active, is on its way.
  d.runFor(FAST.leafSetHeartbeatMs!)
  assert.is(d.node(0).state, 'active')
  assert.is(d.node(1).state, 'active')
  for (const [a, b] of [
    [0, 1],
    [1, 0],
  ] as const) {
    const ls = d.node(a).leafSet
    assert.equal(
      [ls.cwMembers().map((m) => m.address), ls.ccwMembers().map((m) => m.address)],
      [[addressOf(b)], [addressOf(b)]],
      `n${a} has n${b} on both sides`,
    )
  }
  const updates = d.eventsOf(0, 'update').map((r) => [r.event.node.address, r.event.joined])
  assert.equal(updates, [['n:1', true]], 'the bootstrap saw the joiner arrive')
  const lookups = d.randomLookups(50)
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'two nodes')
})

test(named('join: 30 nodes one by one through one bootstrap'), () => {
  const d = new Driver({ seed: seedOf('join/30'), n: 30 })
  d.ring(30)
  // Convergence bound: the last joiner's neighbours learn of nodes they missed by heartbeats.
  d.runFor(3 * FAST.leafSetHeartbeatMs!)
  assert.equal(d.active().length, 30)
  assertLeafSetsExact(d, '30 nodes')
  const lookups = d.randomLookups(300, 2)
  d.runUntilQuiet()
  assertPerfect(d, lookups, '30 nodes')
  // Hop counts: each forward adds one, and nothing is retransmitted in a fault-free overlay.
  for (const l of lookups) assert.is(l.deliveries[0]!.hops, l.transmissions, `hops of msg ${l.msgId}`)
  assert.ok(
    lookups.some((l) => l.deliveries[0]!.hops > 0),
    'some lookups travelled',
  )
})

test(
  named('join: 60 nodes join concurrently, within 100 ms, through different bootstraps (codec on)'),
  () => {
    const d = new Driver({ seed: seedOf('join/concurrent'), n: 68, codec: true })
    const base = [0, 1, 2, 3, 4, 5, 6, 7]
    d.start(0)
    d.growOneByOne(base.slice(1))
    const t0 = d.now
    for (let k = 0; k < 60; k++) {
      const i = 8 + k
      d.at(t0 + d.rng.int(100), () => d.join(i, [base[k % base.length]!]))
    }
    // Lookups from the original nodes while the joins are under way: nothing lost, nothing twice,
    // and never delivered by a node that is not active.
    const during = d.randomLookups(200, 5, base)
    d.runUntilQuiet(30_000)
    assert.equal(d.active().length, 68, 'every joiner is active')
    const r = d.report(during)
    assert.is(r.lost, 0, r.details.join('\n'))
    assert.is(r.duplicated, 0, r.details.join('\n'))
    assert.equal(d.violations, [], 'no delivery at a node that was not active')
    // Then convergence, within a stated bound: every leaf set exact.
    d.runFor(10 * FAST.leafSetHeartbeatMs!)
    assertLeafSetsExact(d, '60 concurrent joins')
    const after = d.randomLookups(400, 2)
    d.runUntilQuiet()
    assertPerfect(d, after, '60 concurrent joins')
    assert.ok(d.stats.bytes > 0, 'messages crossed the codec')
  },
)

test(named('join: every node on the path sends the joiner its two deepest rows; the root all rows'), () => {
  // The joiner's id differs from n7's in the last digit only, so n7 is the root. n8 shares two
  // digits with n7, so n7's table has a row 2 and its two deepest rows shared with the joiner are
  // rows 1 and 2: its answer must still carry row 0.
  const rng = createRng(seedOf('join/path')).derive('ids')
  const ids = Array.from({ length: 41 }, () => randomId(rng))
  ids[40] = ids[7]!.withDigit(31, 4, (ids[7]!.digit(31, 4) + 1) % 16)
  ids[8] = ids[7]!.withDigit(2, 4, (ids[7]!.digit(2, 4) + 8) % 16)
  // The JOIN goes through the chosen bootstrap: no search for a nearby seed.
  const d = new Driver({ seed: seedOf('join/path'), n: 41, ids, config: { ...FAST, findNearbySeed: false } })
  d.ring(40)
  d.runFor(3000)
  const j = 40
  const joiner = d.node(j).id
  const path: number[] = []
  const rows = new Map<number, number[]>()
  const replies: number[] = []
  let replyRows: number[] = []
  d.watch((s) => {
    const m = s.message
    if (m.type === 'join' && m.joiner.id.equals(joiner)) path.push(s.to)
    if (m.type === 'joinRows' && s.to === j)
      rows.set(
        s.from,
        m.rows.map((r) => r.row),
      )
    if (m.type === 'joinReply' && s.to === j) {
      replies.push(s.from)
      replyRows = m.rows.map((r) => r.row)
    }
  })
  // Through the bootstrap that shares the fewest digits with the joiner: a long path.
  const boot = d
    .active()
    .reduce((a, b) =>
      d.node(a).id.sharedPrefixLength(joiner, 4) <= d.node(b).id.sharedPrefixLength(joiner, 4) ? a : b,
    )
  const root = d.closest(joiner)
  d.join(j, [boot])
  d.runUntilQuiet()
  assert.is(path[0], boot)
  assert.is(path.at(-1), root, 'the JOIN ended at the node closest to the joiner')
  assert.equal(replies, [root], 'the root, alone, answered with its leaf set')
  assert.equal([...rows.keys()].sort(), [...new Set(path)].sort(), 'every node on the path sent rows')
  for (const [from, offered] of rows) {
    // Rows past the last one a table has allocated are empty: the deepest shared row is at most that.
    const deepest = Math.min(
      d.node(from).id.sharedPrefixLength(joiner, 4),
      d.node(from).routingTable.rowCount - 1,
    )
    assert.ok(
      offered.every((r) => r >= deepest - 1 && r <= deepest),
      `n${from} offered rows ${offered}, its deepest row shared with the joiner being ${deepest}`,
    )
  }
  assert.is(root, 7)
  assert.ok(d.node(root).routingTable.rowCount >= 3, 'n8 is in row 2 of the root')
  assert.not.ok(rows.get(root)!.includes(0), "row 0 is not among the root's two deepest")
  assert.is(replyRows[0], 0, `the root's answer carries rows ${replyRows}`)
  assert.ok(d.node(j).routingTable.row(0).length > 0, 'the joiner has a routing table')
})

/** Node positions on a line, for a latency that is a metric: 1 ms plus the distance. */
function lineLatency(label: string, n: number): { latency: (i: number, j: number) => number; pos: number[] } {
  const rng = createRng(seedOf(label)).derive('positions')
  const pos = Array.from({ length: n }, () => rng.float() * 200)
  return { pos, latency: (i, j) => 1 + Math.abs(pos[i]! - pos[j]!) }
}

test(named('join: the joiner finds a nearby node and joins through it, tables still consistent'), () => {
  const n = 61
  const j = n - 1
  const { pos, latency } = lineLatency('join/seek', n)
  const d = new Driver({ seed: seedOf('join/seek'), n, latency })
  d.ring(n - 1)
  d.runFor(5 * FAST.leafSetHeartbeatMs!)
  const byDistance = d.active().sort((a, b) => Math.abs(pos[a]! - pos[j]!) - Math.abs(pos[b]! - pos[j]!))
  const farthest = byDistance.at(-1)!
  const joiner = d.node(j).id
  let joinTo: number | undefined
  const early: string[] = []
  d.watch((s) => {
    if (s.message.type === 'join' && s.from === j && joinTo === undefined) {
      joinTo = s.to
      // Nobody may hold the joiner in a table before it is active, searched-for or not.
      for (const i of d.active()) {
        const node = d.node(i)
        if (node.leafSet.contains(joiner) || node.routingTable.contains(joiner)) early.push(`n${i}`)
      }
    }
  })
  d.join(j, [farthest])
  d.runUntilQuiet()
  assert.is(d.node(j).state, 'active')
  assert.ok(joinTo !== undefined, 'a JOIN was sent')
  // Over 600 seeds the JOIN went to the nearest node 91 % of the time and never below the 4th
  // nearest; the 6 nearest of 59 still says "nearby" without failing one run in a hundred.
  const rank = byDistance.indexOf(joinTo!)
  assert.ok(
    rank >= 0 && rank < 6,
    `the JOIN went to n${joinTo}, the ${rank + 1}th nearest of ${n - 1} (bootstrap n${farthest} is the farthest)`,
  )
  assert.equal(early, [], 'nodes that held the joiner in a table before it was active')
  // The RTTs measured on the way seeded the joiner's tables: its row-0 entries are nearer than
  // the members of their columns are on average (what a table without PNS would get).
  const row0 = d.node(j).routingTable.row(0)
  assert.ok(row0.length > 0)
  let chosen = 0
  let average = 0
  for (const e of row0) {
    const col = e.id.digit(0, 4)
    const column = d.active().filter((i) => i !== j && d.node(i).id.digit(0, 4) === col)
    chosen += latency(j, d.indexOf(e.id))
    average += column.reduce((sum, i) => sum + latency(j, i), 0) / column.length
  }
  // Measured over 600 seeds: chosen / average has mean 0.46 and sd 0.08; below 0.88 is 5 sd.
  assert.ok(
    chosen < 0.88 * average,
    `row 0: ${chosen.toFixed(1)} ms in all, ${average.toFixed(1)} for random`,
  )
  d.runFor(3 * FAST.leafSetHeartbeatMs!)
  const lookups = d.randomLookups(200)
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'after a join through a searched-for seed')
})

test(named('join: a node the search measured is not probed again while joining'), () => {
  for (const label of ['join/seek-once/0', 'join/seek-once/1']) {
    const n = 161
    const j = n - 1
    const { latency } = lineLatency(label, n)
    const d = new Driver({ seed: seedOf(label), n, latency })
    d.ring(n - 1)
    d.runFor(3 * FAST.leafSetHeartbeatMs!)
    /** Probes the joiner sent while joining, by target. */
    const probes = new Map<number, number>()
    d.watch((s) => {
      if (s.message.type !== 'probe' || s.from !== j || d.node(j).state !== 'joining') return
      probes.set(s.to, (probes.get(s.to) ?? 0) + 1)
    })
    d.join(j, [0])
    d.runUntilQuiet()
    assert.is(d.node(j).state, 'active', `seed ${label}`)
    // No loss here, so every probe is answered and none is repeated: a node measured once (by the
    // search or for the tables) keeps its RTT for the rest of the join, even when its record was
    // pruned meanwhile for being in no table.
    const twice = [...probes].filter(([, count]) => count > 1).map(([to]) => `n${to}`)
    assert.ok(probes.size > 20, `seed ${label}: the join probed ${probes.size} nodes`)
    assert.equal(twice, [], `seed ${label}: nodes probed more than once while joining`)
  }
})

test(named('records: strangers that only probe or ask a node leave no record there'), () => {
  const d = new Driver({ seed: seedOf('records/strangers'), n: 20 })
  d.ring(20)
  d.runFor(3 * FAST.leafSetHeartbeatMs!)
  const x = 0
  const before = d.node(x).peerRecords
  const strangers = Array.from({ length: 40 }, (_, k) =>
    Object.freeze({ id: randomId(d.rng), address: `stranger:${k}` }),
  )
  let answers = 0
  d.watch((s) => {
    if (s.from === x && s.to === -1 && s.message.type === 'probeReply') answers++
  })
  for (const [k, from] of strangers.entries()) {
    d.inject(x, { type: 'probe', from, nonce: k })
    d.inject(x, { type: 'leafSetRequest', from })
  }
  d.runFor(1)
  assert.is(answers, strangers.length, 'every probe is answered')
  assert.is(d.node(x).peerRecords, before, 'records after 80 messages from 40 strangers')
  // A node that sends what only an active node sends is heard in full: it gets a record.
  d.inject(x, { type: 'heartbeat', from: strangers[0]! })
  assert.is(d.node(x).peerRecords, before + 1, 'records after a heartbeat from one of them')
  assert.ok(d.node(x).rttTo(strangers[0]!.id) === undefined)
})

test(named('join: the joiner announces itself only to its leaf set, as built from the root’s'), () => {
  // The root's answer carries its leaf set and its rows. The leaf set is taken first, so that the
  // row entries and the nodes measured by the search are weighed against it: taken while the leaf
  // set was still empty, they would enter it for a moment, and each would be announced to (and,
  // for the rows, probed as a leaf candidate) before the root's members pushed it out.
  for (const label of ['a', 'b', 'c', 'd']) {
    const n = 61
    const j = n - 1
    const { pos, latency } = lineLatency(`join/announce-${label}`, n)
    const d = new Driver({ seed: seedOf(`join/announce-${label}`), n, latency })
    d.ring(n - 1)
    d.runFor(5 * FAST.leafSetHeartbeatMs!)
    const farthest = d
      .active()
      .sort((a, b) => Math.abs(pos[a]! - pos[j]!) - Math.abs(pos[b]! - pos[j]!))
      .at(-1)!
    const announcedTo = new Set<number>()
    let leafProbes = 0
    d.watch((s) => {
      if (s.from !== j || d.node(j).state !== 'joining') return
      if (s.message.type === 'announce') announcedTo.add(s.to)
      if (s.message.type === 'probe' && s.message.leafSet !== undefined) leafProbes++
    })
    d.join(j, [farthest])
    d.runUntilQuiet()
    assert.is(d.node(j).state, 'active')
    const want = d.expectedLeafSet(j)
    const members = new Set([...want.cw, ...want.ccw])
    const strays = [...announcedTo].filter((i) => !members.has(i))
    assert.equal(strays, [], `seed ${label}: announces to nodes outside the joiner's leaf set`)
    assert.is(leafProbes, 0, `seed ${label}: leaf-candidate probes while joining`)
  }
})

test(
  named("join: a new node's greetings carry the RTTs it measured, and their receivers use them at once"),
  () => {
    const n = 61
    const j = n - 1
    const { latency } = lineLatency('join/greeting-rtt', n)
    const d = new Driver({ seed: seedOf('join/greeting-rtt'), n, latency, codec: true })
    d.ring(n - 1)
    d.runFor(5 * FAST.leafSetHeartbeatMs!)
    const joiner = d.node(j).id
    /** The RTT each greeting reported, by receiver. */
    const reported = new Map<number, number | undefined>()
    /** When the new node turned active and greeted its leaf set and routing table, all at once. */
    let greetAt: number | undefined
    /** The new node's routing-table entries as it greeted them (the table may grow afterwards). */
    let entriesAtGreeting: number[] = []
    /** Receivers for which the new node was nearer than their entry for its cell, as it arrived. */
    const shouldTake: number[] = []
    const took: number[] = []
    /** Receivers of the greetings that carry the leaf set: the new node's leaf-set members. */
    const leafGreeted: number[] = []
    d.watch((s) => {
      const m = s.message
      if (m.type !== 'heartbeat' || s.from !== j) return
      if (greetAt === undefined) {
        greetAt = s.at
        entriesAtGreeting = [...d.node(j).routingTable].map((e) => d.indexOf(e.id))
      }
      if (s.at !== greetAt) return
      reported.set(s.to, m.rttMicros)
      if (m.leafSet !== undefined) leafGreeted.push(s.to)
      const to = s.to
      const arrives = s.at + latency(j, to)
      // Just before the greeting arrives, and a hundredth of a millisecond after: far too soon for
      // the answer to any probe of the new node (links take at least 1 ms each way).
      d.at(arrives - 0.01, () => {
        const rt = d.node(to).routingTable
        const present = rt.atIndex(rt.cellIndexOf(joiner))
        if (present === undefined || latency(to, d.indexOf(present.id)) > latency(to, j)) shouldTake.push(to)
      })
      d.at(arrives + 0.01, () => {
        if (d.node(to).routingTable.contains(joiner)) took.push(to)
      })
    })
    d.join(j, [0])
    d.runUntilQuiet()
    assert.is(d.node(j).state, 'active')
    // Greetings are heartbeats, which do not keep the driver from being quiet: let them arrive.
    d.runFor(FAST.leafSetHeartbeatMs!)
    // The joiner probed its routing-table entries while joining, so the greeting of each has an RTT.
    assert.ok(entriesAtGreeting.length > 0, 'the new node had routing-table entries when it greeted')
    for (const e of entriesAtGreeting)
      assert.ok(reported.get(e) !== undefined, `the greeting of routing-table entry n${e} carries an RTT`)
    // Each leaf-set member answered the one announce it got (no loss here): that round trip is the
    // RTT its greeting carries, although the new node never probed it.
    assert.ok(leafGreeted.length > 0, 'the new node greeted its leaf set')
    for (const e of leafGreeted)
      assert.ok(reported.get(e) !== undefined, `the greeting of leaf-set member n${e} carries an RTT`)
    const withRtt = [...reported].filter(([, r]) => r !== undefined)
    for (const [to, r] of withRtt) {
      // The driver's links have fixed latencies, so every sample, and the smoothed RTT, is the round trip.
      const rtt = latency(j, to) + latency(to, j)
      assert.ok(Math.abs(r! / 1000 - rtt) <= 0.001, `n${to}: reported ${r} µs, round trip ${rtt} ms`)
    }
    const expected = shouldTake.filter((to) => reported.get(to) !== undefined).sort((a, b) => a - b)
    assert.ok(expected.length > 0, "no greeted node had a farther entry in the new node's cell")
    assert.equal(
      took.filter((to) => expected.includes(to)).sort((a, b) => a - b),
      expected,
      'greeted nodes that took the new node into their routing tables as the greeting arrived',
    )
  },
)

test(named('join: when the bootstrap does not answer the search, the JOIN goes to it anyway'), () => {
  const d = new Driver({ seed: seedOf('join/seek-silent'), n: 21 })
  d.ring(20)
  d.runFor(3000)
  d.drop((s) => s.message.type === 'leafSetReply' && s.to === 20)
  let joinAt = -1
  let joinTo = -1
  d.watch((s) => {
    if (s.message.type === 'join' && s.from === 20 && joinAt < 0) {
      joinAt = d.now
      joinTo = s.to
    }
  })
  const start = d.now
  d.join(20, [4])
  d.runUntilQuiet()
  assert.is(joinTo, 4)
  assert.ok(joinAt - start >= FAST.probeTimeoutMs!, 'after waiting one probe timeout for the leaf set')
  assert.is(d.node(20).state, 'active')
})

test(named('join: findNearbySeed false sends the JOIN straight to the bootstrap'), () => {
  const d = new Driver({ seed: seedOf('join/no-seek'), n: 21, config: { ...FAST, findNearbySeed: false } })
  d.ring(20)
  d.runFor(3000)
  const first: string[] = []
  d.watch((s) => {
    if (s.from === 20 && first.length === 0) first.push(`${s.message.type}->n${s.to}`)
  })
  d.join(20, [4])
  d.runUntilQuiet()
  assert.equal(first, ['join->n4'])
  assert.is(d.node(20).state, 'active')
})

test(named('join: a leaf set lost to dropped announces is whole again on the next attempt'), () => {
  // Every announce of the first attempt is lost, so the joiner gives its whole leaf set up for
  // failed and starts over. Those verdicts came from its own lost messages: the new attempt must
  // not keep the (live) nodes out, or the joiner would become active with a partial leaf set.
  const d = new Driver({ seed: seedOf('join/announce-lost'), n: 13 })
  d.ring(12)
  d.runFor(3000)
  let attempts = 0
  const heal = d.drop((s) => s.from === 12 && s.message.type === 'announce')
  d.watch((s) => {
    if (s.from === 12 && s.message.type === 'join') {
      attempts++
      if (attempts === 2) heal()
    }
  })
  d.join(12, [0])
  d.runUntilTrue(() => d.node(12).state !== 'joining', 60_000)
  assert.is(d.node(12).state, 'active')
  assert.ok(attempts >= 2, 'the first attempt failed')
  const want = d.expectedLeafSet(12)
  const have = d
    .node(12)
    .leafSet.members()
    .map((m) => d.indexOf(m.id))
  assert.equal(new Set(have), new Set([...want.cw, ...want.ccw]), 'the whole leaf set, at activation')
  const lookups = Array.from({ length: 30 }, () => d.route(12, randomId(d.rng)))
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'from the new node')
})

test(named('join: a member whose announces were lost is vouched for by another and confirms'), () => {
  // Every announce from the joiner to one member m is lost until the joiner gives up on m; the
  // rest of the overlay reaches m. With second opinions the joiner asks the members that confirmed
  // it, hears that m is alive, announces itself to m again and waits for m. Without them (the
  // control run), it takes m for failed and becomes active without it.
  const run = (indirectProbes: number) => {
    const d = new Driver({ seed: seedOf('join/vouched'), n: 13, config: { ...FAST, indirectProbes } })
    d.ring(12)
    d.runFor(3000)
    const want = d.expectedLeafSet(12)
    const m = want.cw[0]!
    let blocked = true
    d.drop((s) => blocked && s.from === 12 && s.to === m && s.message.type === 'announce')
    let asked = 0
    d.watch((s) => {
      if (s.from === 12 && s.message.type === 'indirectProbe') {
        asked++
        blocked = false
      }
    })
    d.join(12, [0])
    d.runUntilTrue(() => d.node(12).state !== 'joining', 60_000)
    assert.is(d.node(12).state, 'active')
    const failed = d.eventsOf(12, 'nodeFailed').filter((r) => r.event.node.id.equals(d.node(m).id))
    return { d, m, asked, failed: failed.length, hasM: d.node(12).leafSet.contains(d.node(m).id) }
  }
  const control = run(0)
  assert.is(control.failed, 1, 'without second opinions the joiner declares m failed')
  assert.not.ok(control.hasM)
  const { d, asked, failed, hasM } = run(3)
  assert.ok(asked > 0, 'the joiner asked other members about m')
  assert.is(failed, 0, 'the joiner declared m failed')
  assert.ok(hasM, 'm is in the leaf set at activation')
  const lookups = Array.from({ length: 30 }, () => d.route(12, randomId(d.rng)))
  d.runUntilQuiet()
  assertPerfect(d, lookups, 'from the new node')
})

/** Routes the joiner's own id from each of its leaf-set members, now: each must reach the joiner. */
function assertJoinerOwnsItsKey(d: Driver, j: number): void {
  const key = d.node(j).id
  const lookups = d
    .node(j)
    .leafSet.members()
    .map((m) => d.route(d.indexOf(m.id), key))
  d.runUntilQuiet()
  for (const l of lookups) {
    assert.equal(
      l.deliveries.map((r) => r.node),
      [j],
      `routed from n${l.origin} the moment the joiner became active`,
    )
  }
}

test(named("regression: just after a joiner became active, a neighbour delivered the joiner's keys"), () => {
  // The joiner becomes active once its leaf set has confirmed it, but the members take it into their
  // tables only when its first heartbeat arrives, a message delay later. In between, a member that
  // was the key's root delivered it itself (found by the churn benchmark: 3 wrong deliveries in
  // 100,000). A member that a joiner announced itself to now holds such keys until it hears from
  // the joiner as active.
  const d = new Driver({ seed: seedOf('join/window'), n: 21 })
  d.ring(20)
  d.runFor(3000)
  const j = 20
  d.join(j, [0])
  d.runUntilTrue(() => d.node(j).state === 'active', 20_000)
  assertJoinerOwnsItsKey(d, j)
})

test(
  named('regression: a join that outlasts joinTimeoutMs still has its keys held until it is active'),
  () => {
    // A member of the joiner's leaf set crashed unnoticed, so the joiner waits for it through its
    // announce retries and second opinions, longer than joinTimeoutMs. The members that confirmed it
    // held its keys for joinTimeoutMs only, and the one that was their root delivered one itself
    // just after the joiner turned active (found in a 1,000-node churn simulation: a wrong delivery
    // 38 ms after a 12 s join). The joiner now renews their wait every announce round.
    const config = { ...FAST, joinTimeoutMs: 1200 }
    const d = new Driver({ seed: seedOf('join/slow-window'), n: 21, config })
    d.ring(20)
    d.runFor(3000)
    const j = 20
    // Far from the joiner's id, so that no node nearer to its keys is suspected meanwhile.
    const silent = d.expectedLeafSet(j).cw[6]!
    d.crash(silent)
    const t0 = d.now
    d.join(j, [silent === 0 ? 1 : 0])
    d.runUntilTrue(() => d.node(j).state === 'active', 30_000)
    assert.ok(d.now - t0 > config.joinTimeoutMs, `the join took ${d.now - t0} ms, past joinTimeoutMs`)
    assertJoinerOwnsItsKey(d, j)
  },
)

test(
  named('join: keys held for a joiner that never becomes active are delivered after joinTimeoutMs'),
  () => {
    const d = new Driver({ seed: seedOf('join/window-crash'), n: 21 })
    d.ring(20)
    d.runFor(3000)
    const j = 20
    d.join(j, [0])
    // The joiner crashes once it has announced itself, before anyone confirmed it.
    d.runUntilTrue(() => (d.node(j).counters.sent.announce ?? 0) > 0, 20_000)
    d.crash(j)
    const key = d.node(j).id
    const m = d.closest(key)
    const t0 = d.now
    const l = d.route(m, key)
    d.runUntilTrue(() => l.deliveries.length > 0, 60_000)
    assert.equal(
      l.deliveries.map((r) => r.node),
      [m],
      'delivered at the closest active node',
    )
    const waited = d.now - t0
    assert.ok(
      waited <= FAST.joinTimeoutMs! + FAST.leafSetHeartbeatMs!,
      `held for ${waited} ms, at most joinTimeoutMs and a tick`,
    )
  },
)

test(named('join: a joining node holds what reaches it, and delivers only once active'), () => {
  const d = new Driver({ seed: seedOf('join/hold'), n: 12 })
  d.ring(11)
  d.runFor(2000)
  const j = 11
  // Stop the joiner just after the JOIN's answer: it is announcing itself, not yet active.
  d.join(j, [0])
  d.runUntilTrue(() => d.node(j).counters.received.joinReply === 1, 5000)
  assert.is(d.node(j).state, 'joining')
  // The joiner routes a message of its own, and a peer hands it one for its own id.
  const own = d.route(j, d.node(j).id, 'own')
  const peer = d.nodes[1]!.handle
  d.inject(j, {
    type: 'route',
    from: peer,
    msgId: 424242,
    key: d.node(j).id,
    origin: peer,
    hops: 1,
    app: 'injected',
    payload: new Uint8Array([7]),
  })
  assert.is(d.node(j).state, 'joining')
  assert.is(d.node(j).heldMessages, 2, 'both held')
  assert.equal(d.eventsOf(j, 'deliver'), [], 'nothing delivered while joining')
  d.runUntilQuiet()
  assert.is(d.node(j).state, 'active')
  const delivered = d.eventsOf(j, 'deliver').map((r) => r.event.msgId)
  assert.equal(delivered.sort(), [own.msgId, 424242].sort(), 'both delivered once the node is active')
  assert.equal(d.violations, [])
})

test(named('Go regression: the join race was ordered by wall clocks'), () => {
  // Two nodes adjacent in id space join at the same virtual instant, through different bootstraps.
  // Each must end up in the other's leaf set, whatever the nodes' clocks read: the outcome comes
  // from messages alone. The run is repeated with the nodes' clocks wildly apart, either way round;
  // the transcripts must be identical.
  const rng = createRng(seedOf('join/race'))
  const x = randomId(rng)
  const y = Id.fromBigInt(mod128(x.toBigInt() + 1n))
  const ids = [...Array.from({ length: 20 }, () => randomId(rng)), x, y]
  const X = 20
  const Y = 21
  const run = (offset: (i: number) => number) => {
    const d = new Driver({ seed: seedOf('join/race'), n: 22, ids, clockOffset: offset })
    d.ring(20)
    d.runFor(3000)
    const t = d.now
    d.at(t, () => d.join(X, [0]))
    d.at(t, () => d.join(Y, [7]))
    d.runUntilQuiet(20_000)
    d.runFor(5 * FAST.leafSetHeartbeatMs!)
    return d
  }
  const plain = run(() => 0)
  const xAhead = run((i) => (i === X ? 2 ** 40 : i === Y ? 0 : i * 1_000_003))
  const yAhead = run((i) => (i === Y ? 2 ** 40 : i === X ? 0 : (20 - i) * 999_983))
  for (const [d, what] of [
    [plain, 'same clocks'],
    [xAhead, "X's clock far ahead"],
    [yAhead, "Y's clock far ahead"],
  ] as const) {
    assert.is(d.node(X).state, 'active', what)
    assert.is(d.node(Y).state, 'active', what)
    assert.ok(d.node(X).leafSet.cw(0).id.equals(y), `${what}: Y is X's first clockwise leaf`)
    assert.ok(d.node(Y).leafSet.ccw(0).id.equals(x), `${what}: X is Y's first counter-clockwise leaf`)
    assertLeafSetsExact(d, what)
    const lookups = [d.route(3, x), d.route(4, y), d.route(5, Id.fromBigInt(mod128(x.toBigInt() - 1n)))]
    d.runUntilQuiet()
    assertPerfect(d, lookups, what)
    assert.equal(
      lookups.map((l) => l.deliveries[0]!.node),
      [X, Y, X],
    )
  }
  assert.is(xAhead.transcriptHash(), plain.transcriptHash(), 'clock offsets changed the run')
  assert.is(yAhead.transcriptHash(), plain.transcriptHash(), 'clock offsets changed the run')
})

// -----------------------------------------------------------------------------------------------
// 3. Routing API

/** A 24-node overlay, settled (`config` on top of the defaults). */
function overlay(label: string, n = 24, config: Partial<ProtocolConfig> = {}): Driver {
  const d = new Driver({ seed: seedOf(label), n, config })
  d.ring(n)
  d.runFor(3000)
  return d
}

/** A key and origin whose route takes at least `minHops` hops in `d` (found by routing). */
function multiHopRoute(d: Driver, minHops: number): { origin: number; key: Id; path: number[] } {
  for (let tries = 0; tries < 500; tries++) {
    const origin = d.rng.int(d.nodes.length)
    const key = randomId(d.rng)
    const path: number[] = [origin]
    const stop = d.watch((s) => {
      if (s.message.type === 'route' && s.message.app === 'pathfinder') path.push(s.to)
    })
    d.route(origin, key, 'pathfinder')
    d.runUntilQuiet()
    stop()
    if (path.length - 1 >= minHops) return { origin, key, path }
  }
  throw new Error(`no route of ${minHops} hops found`)
}

test(named('routing: a key whose root is the sender is delivered locally with 0 hops'), () => {
  const d = overlay('route/local')
  for (const i of [0, 5, 17]) {
    const own = d.route(i, d.node(i).id, 'local', new Uint8Array([i]))
    assert.is(own.deliveries.length, 1, 'delivered at once, within the call')
    assert.is(own.deliveries[0]!.node, i)
    assert.is(own.deliveries[0]!.hops, 0)
    assert.is(own.transmissions, 0, 'nothing went on the wire')
  }
  const ev = d.eventsOf(5, 'deliver').at(-1)!.event
  assert.is(ev.app, 'local')
  assert.equal(ev.payload, new Uint8Array([5]))
  assert.ok(ev.origin.id.equals(d.node(5).id))
  assert.ok(ev.key.equals(d.node(5).id))
})

test(named('routing: send gives a direct event at the target, and nowhere else'), () => {
  const d = overlay('route/send')
  const payload = new Uint8Array([1, 2, 3, 250])
  d.send(3, 19, 'chat', payload)
  d.runUntilQuiet()
  const got = d.eventsOf(19, 'direct')
  assert.is(got.length, 1)
  assert.is(got[0]!.event.app, 'chat')
  assert.equal(got[0]!.event.payload, payload)
  assert.is(got[0]!.event.from.address, 'n:3')
  assert.ok(got[0]!.event.from.id.equals(d.node(3).id))
  for (let i = 0; i < d.nodes.length; i++) if (i !== 19) assert.equal(d.eventsOf(i, 'direct'), [])
})

test(named('routing: forward hooks see each hop, and can replace the payload'), () => {
  const d = overlay('route/replace', 40, { deepCellMembers: 0 })
  const { origin, key, path } = multiHopRoute(d, 2)
  const seen: { at: number; hops: number; next: string; payload: number[] }[] = []
  for (const [i, n] of d.nodes.entries()) {
    n.register('fwd', {
      forward(m, next): ForwardDecision {
        seen.push({ at: i, hops: m.hops, next: next.address, payload: [...m.payload] })
        return { action: 'replace', payload: new Uint8Array([...m.payload, i]) }
      },
    })
  }
  const l = d.route(origin, key, 'fwd', new Uint8Array([200]))
  d.runUntilQuiet()
  const root = path.at(-1)!
  assert.is(l.deliveries.length, 1)
  assert.is(l.deliveries[0]!.node, root)
  const forwarders = path.slice(0, -1)
  assert.equal(
    seen.map((s) => s.at),
    forwarders,
    'the hook ran at the origin and every intermediate node',
  )
  assert.equal(
    seen.map((s) => s.hops),
    forwarders.map((_, k) => k),
  )
  assert.equal(
    seen.map((s) => s.next),
    path.slice(1).map((i) => addressOf(i)),
    'next is where it went',
  )
  assert.equal([...l.deliveries[0]!.payload], [200, ...forwarders], 'each hop replaced the payload')
  assert.is(l.deliveries[0]!.hops, forwarders.length)
})

test(named('routing: a forward hook can redirect'), () => {
  const d = overlay('route/redirect', 40)
  const { origin, key, path } = multiHopRoute(d, 1)
  const root = path.at(-1)!
  // Send it first to a node off the path, which routes it on to the root.
  let detour = 0
  while (path.includes(detour)) detour++
  d.node(origin).register('fwd', {
    forward: () => ({ action: 'redirect', to: d.node(detour).handle }),
  })
  const hops: number[] = []
  const stop = d.watch((s) => {
    if (s.message.type === 'route' && s.message.app === 'fwd') hops.push(s.to)
  })
  const l = d.route(origin, key, 'fwd')
  d.runUntilQuiet()
  stop()
  assert.is(hops[0], detour, 'the first hop went to the redirect target')
  assert.is(l.deliveries.length, 1)
  assert.is(l.deliveries[0]!.node, root, 'and it still reached the root')
  assert.is(l.deliveries[0]!.hops, hops.length)
})

test(
  named('routing: deep-cell members take routes to the closest node in fewer hops, and survive crashes'),
  () => {
    const meanHops = (lookups: readonly Lookup[]) =>
      lookups.reduce((s, l) => s + l.deliveries[0]!.hops, 0) / lookups.length
    const run = (config: Partial<ProtocolConfig>) => {
      const d = overlay('route/deep-cells', 600, config)
      const lookups = d.randomLookups(600)
      d.runUntilQuiet()
      const r = d.report(lookups)
      assert.equal([r.lost, r.wrong, r.duplicated], [0, 0, 0], r.details.join('\n'))
      return { d, hops: meanHops(lookups) }
    }
    const off = run({ deepCellMembers: 0 })
    const on = run({})
    // 600 nodes: row 1 is deep (cells of about 2.3 nodes), so a node that shares one digit with the
    // key knows the whole neighbourhood of the key's root and goes straight to it.
    assert.ok(on.hops < off.hops - 0.15, `mean hops ${on.hops} with members, ${off.hops} without`)
    // Crash a tenth at once; after the repair period every lookup again ends at the closest node,
    // though lists still name crashed nodes until their verdicts (the hops to them time out and
    // go around).
    const d = on.d
    for (let i = 5; i < 600; i += 10) d.crash(i)
    d.runFor(3 * DEFAULT_PROTOCOL_CONFIG.leafSetTimeoutMs)
    const after = d.randomLookups(600)
    d.runUntilQuiet()
    const r = d.report(after)
    assert.equal([r.lost, r.wrong, r.duplicated], [0, 0, 0], r.details.join('\n'))
  },
)

test(named('routing: a hop to a crashed deep-cell member that times out renews the whole cell list'), () => {
  // 600 nodes: row 1 is deep (cells of about 2.3 nodes), and each node keeps the members of its
  // row-1 cells. Two members of one of node x's row-1 cells crash, away from x's leaf set, and
  // their neighbours declare them failed; x hears of neither. A lookup for the first one's id
  // goes from x to it (the closest member) and times out. x then asks the cell again, so a lookup
  // for the second one's id no longer goes to it.
  // Maintenance rounds, which ask one deep cell each, are kept out of the test's few minutes.
  const d = overlay('route/deep-refresh', 600, { routingTableMaintenanceMs: 3_600_000 })
  const b = DEFAULT_PROTOCOL_CONFIG.b
  let found: { x: number; a: number; c: number } | undefined
  for (let x = 0; x < 600 && found === undefined; x++) {
    const xid = d.node(x).id
    const byCell = new Map<number, number[]>()
    for (let i = 0; i < 600; i++) {
      const id = d.node(i).id
      if (i === x || id.digit(0, b) !== xid.digit(0, b) || id.digit(1, b) === xid.digit(1, b)) continue
      if (d.node(x).leafSet.contains(id)) continue
      const cell = id.digit(1, b)
      byCell.set(cell, [...(byCell.get(cell) ?? []), i])
    }
    // The crashed members are neither x's routing-table entry for the cell nor in its
    // neighbourhood set: this test is about the member list.
    const { routingTable: rt, neighbourhood: nb } = d.node(x)
    const only = (i: number) => !rt.contains(d.node(i).id) && !nb.contains(d.node(i).id)
    // A live member between them, nearer the first than the second is, takes the first lookup
    // when the hop to the first times out, so that x does not meet the second on the way.
    for (const members of byCell.values()) {
      const sorted = [...members].sort((p, q) => d.node(p).id.compare(d.node(q).id))
      const a = sorted.findIndex(only)
      let c = sorted.length - 1
      while (c >= 0 && !only(sorted[c]!)) c--
      if (a >= 0 && c >= a + 2) {
        found = { x, a: sorted[a]!, c: sorted[c]! }
        break
      }
    }
  }
  assert.ok(found !== undefined, 'a node with a row-1 cell of three members or more')
  const { x, a, c } = found!
  const hopsFromX = (to: number) => {
    let n = 0
    const stop = d.watch((s) => {
      if (s.message.type === 'route' && s.from === x && s.to === to) n++
    })
    return () => {
      stop()
      return n
    }
  }
  // Both are on x's list: x's lookups for their ids go straight to them.
  for (const m of [a, c]) {
    const direct = hopsFromX(m)
    d.route(x, d.node(m).id)
    d.runUntilQuiet()
    assert.is(direct(), 1, `n${x} sends a lookup for n${m}'s id straight to n${m}`)
  }
  d.crash(a)
  d.crash(c)
  d.runFor(3 * DEFAULT_PROTOCOL_CONFIG.leafSetTimeoutMs)
  const first = hopsFromX(a)
  const la = d.route(x, d.node(a).id)
  d.runUntilQuiet()
  assert.is(first(), 1, `n${x} sent the lookup for n${a}'s id to n${a}, which timed out`)
  // The cell's answer is not a routed message, which is all that quiet waits for.
  d.runFor(DEFAULT_PROTOCOL_CONFIG.probeTimeoutMs)
  const second = hopsFromX(c)
  const lc = d.route(x, d.node(c).id)
  d.runUntilQuiet()
  assert.is(second(), 0, `n${x} sent the lookup for n${c}'s id to n${c}, crashed and no longer listed`)
  const r = d.report([la, lc])
  assert.equal([r.lost, r.wrong, r.duplicated], [0, 0, 0], r.details.join('\n'))
})

test(named('routing: failures seen by a node bring on fresh lists of its deep cells'), () => {
  // Node x declares its two nearest leaf-set members failed, which makes it check its tables more
  // often; with those checks it asks each of its deep cells for its members again. A member of one
  // of them crashed at the same time, away from x, and x never sent it anything: it is off the list
  // all the same, and a lookup for its id does not go to it. (A tiny dead-entry target brings the
  // checks on within a minute; maintenance rounds, which ask one deep cell each, are kept out.)
  const d = overlay('route/deep-renew', 600, { routingTableMaintenanceMs: 3_600_000, deadEntryTarget: 0.001 })
  const b = DEFAULT_PROTOCOL_CONFIG.b
  const x = 0
  const node = d.node(x)
  const { routingTable: rt, neighbourhood: nb, leafSet: ls } = node
  const near = new Set<number>()
  near.add(d.indexOf(ls.cw(0).id))
  near.add(d.indexOf(ls.ccw(0).id))
  // A row-1 member that x routes to straight, and knows of only from the cell's list.
  let c = -1
  for (let i = 0; i < 600 && c < 0; i++) {
    const id = d.node(i).id
    if (i === x || id.sharedPrefixLength(node.id, b) !== 1 || near.has(i)) continue
    if (ls.contains(id) || rt.contains(id) || nb.contains(id)) continue
    let direct = 0
    const stop = d.watch((s) => {
      if (s.message.type === 'route' && s.from === x && s.to === i) direct++
    })
    d.route(x, id)
    d.runUntilQuiet()
    stop()
    // Hearing from it may have made it x's entry for the cell (after a probe): then it is not one.
    d.runFor(DEFAULT_PROTOCOL_CONFIG.probeTimeoutMs)
    if (direct === 1 && !rt.contains(id) && !nb.contains(id)) c = i
  }
  assert.ok(c >= 0, `n${x} routes straight to some member of one of its row-1 cells`)
  for (const i of [...near, c]) d.crash(i)
  d.runFor(3 * DEFAULT_PROTOCOL_CONFIG.leafSetTimeoutMs + 60_000)
  let toC = 0
  const stop = d.watch((s) => {
    if (s.message.type === 'route' && s.from === x && s.to === c) toC++
  })
  const l = d.route(x, d.node(c).id)
  d.runUntilQuiet()
  stop()
  assert.is(toC, 0, `n${x} sent the lookup for n${c}'s id to n${c}, crashed and off the renewed list`)
  const r = d.report([l])
  assert.equal([r.lost, r.wrong, r.duplicated], [0, 0, 0], r.details.join('\n'))
})

test(named('routing: a forward hook can drop, at the origin or on the way'), () => {
  const d = overlay('route/drop', 40, { deepCellMembers: 0 })
  const { origin, key, path } = multiHopRoute(d, 2)
  const middle = path[1]!
  d.node(middle).register('fwd', { forward: () => ({ action: 'drop' }) })
  const l1 = d.route(origin, key, 'fwd')
  d.runUntilQuiet()
  assert.is(l1.deliveries.length, 0, 'dropped in the middle')
  assert.is(l1.transmissions, 1, 'it got as far as the middle node')
  assert.is(l1.failed, undefined, 'a drop is not a failure')
  d.node(origin).register('fwd', { forward: () => ({ action: 'drop' }) })
  const l2 = d.route(origin, key, 'fwd')
  d.runUntilQuiet()
  assert.is(l2.deliveries.length, 0)
  assert.is(l2.transmissions, 0, 'dropped before it left')
  for (const n of d.nodes) assert.is(n.pendingRoutes, 0)
  // Other applications are not affected.
  const l3 = d.route(origin, key, 'other')
  d.runUntilQuiet()
  assert.is(l3.deliveries[0]?.node, path.at(-1))
})

test(named('routing: a route message injected twice with one msgId is delivered once'), () => {
  const d = overlay('route/dup')
  const root = 5
  const from = d.node(9).handle
  const key = d.node(root).id
  const message: Message = {
    type: 'route',
    from,
    msgId: 777,
    key,
    origin: from,
    hops: 1,
    app: 'dup',
    payload: new Uint8Array([1]),
  }
  const acks: string[] = []
  d.watch((s) => {
    // Acks to the injected sender (an onward hop is acknowledged to whoever made it).
    if (s.message.type === 'ack' && s.to === 9) acks.push(`${s.from}:${s.message.msgId}`)
  })
  d.inject(root, message)
  d.runFor(100)
  d.inject(root, message)
  d.runUntilQuiet()
  assert.is(d.eventsOf(root, 'deliver').filter((r) => r.event.msgId === 777).length, 1)
  // The same twice at a node that forwards it: the root still delivers it once.
  const relay = d.nodes.findIndex((_, i) => i !== root && i !== 9)
  const second: Message = { ...message, msgId: 778 }
  d.inject(relay, second)
  d.inject(relay, second)
  d.runFor(200)
  d.inject(relay, second)
  d.runUntilQuiet()
  const deliveries = d.events.flatMap((list) => list.filter((r) => r.event.type === 'deliver'))
  assert.is(deliveries.filter((r) => (r.event as { msgId: number }).msgId === 778).length, 1)
  assert.is(acks.filter((a) => a === `${root}:777`).length, 2, 'the root acknowledged both copies')
  assert.is(acks.filter((a) => a === `${relay}:778`).length, 3, 'the relay acknowledged all three copies')
})

// -----------------------------------------------------------------------------------------------
// 8. Determinism

function transcriptOf(seed: string, codec: boolean, drainTransmits = false): string {
  const d = new Driver({ seed, n: 24, codec, drainTransmits })
  d.ring(20)
  d.at(d.now + 50, () => d.join(20, [3]))
  d.at(d.now + 50, () => d.join(21, [9]))
  d.randomLookups(100, 10)
  d.runUntilQuiet()
  d.crash(4)
  d.crash(11)
  d.randomLookups(100, 10)
  d.runFor(5000)
  d.leave(7)
  d.randomLookups(100, 10)
  d.runUntilQuiet()
  d.runFor(3000)
  return d.transcriptHash()
}

test(named('determinism: the same seed gives the same transcript; another seed another'), () => {
  const a = transcriptOf(seedOf('det/a'), true)
  const b = transcriptOf(seedOf('det/a'), false)
  const c = transcriptOf(seedOf('det/b'), false)
  // Nor does taking the messages with drainTransmits rather than pollTransmit.
  const d = transcriptOf(seedOf('det/a'), false, true)
  assert.is(a, b, 'the same seed gave two transcripts (the codec must not change a run either)')
  assert.is(d, a, 'drainTransmits handed over other messages, or in another order, than pollTransmit')
  assert.is.not(a, c, 'two seeds gave one transcript')
})

test.run()
