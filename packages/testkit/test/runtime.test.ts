// The runtime (core's createNode and OverlayNode) over the in-memory transport, with real timers
// and short protocol periods. Every wait is on an event or a promise, bounded by a timeout.

import {
  closestId,
  createNode,
  createRng,
  encodeMessage,
  Id,
  IllegalStateError,
  JoinError,
  MessageTooLargeError,
  type OverlayEvent,
  type OverlayEventOf,
  type OverlayNode,
  type ProtocolConfig,
} from '@pastry/core'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { MemoryNetwork } from '../src/index.js'
import { SEED } from './_seed.js'

const FAST: Partial<ProtocolConfig> = {
  leafSetHeartbeatMs: 200,
  probeTimeoutMs: 100,
  joinTimeoutMs: 500,
  ackTimeoutMinMs: 20,
  ackTimeoutMaxMs: 200,
}
const APP = 'test'

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => unhandled.push(reason))

/** Resolves with the first event of `type` that satisfies `match`; rejects after `timeoutMs`. */
function next<T extends OverlayEvent['type']>(
  node: OverlayNode,
  type: T,
  match: (e: OverlayEventOf<T>) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<OverlayEventOf<T>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      node.off(type, listener)
      reject(new Error(`no ${type} event within ${timeoutMs} ms at ${node.address}`))
    }, timeoutMs)
    const listener = (e: OverlayEventOf<T>) => {
      if (!match(e)) return
      clearTimeout(timer)
      node.off(type, listener)
      resolve(e)
    }
    node.on(type, listener)
  })
}

/** Starts `count` nodes on `net`: the first alone, the rest joining through it one after another. */
async function overlay(net: MemoryNetwork, count: number, seed: string): Promise<OverlayNode[]> {
  const rng = createRng(seed)
  const first = await createNode({
    transport: net.createTransport(),
    listen: 'mem:0',
    rng: rng.derive('0'),
    config: FAST,
  })
  first.register(APP)
  first.start()
  const nodes = [first]
  for (let i = 1; i < count; i++) {
    const n = await createNode({
      transport: net.createTransport(),
      listen: 'mem:0',
      rng: rng.derive(`${i}`),
      config: FAST,
    })
    n.register(APP)
    await n.join([first.address])
    nodes.push(n)
  }
  return nodes
}

/** Waits until every node's leaf set holds every other node (the overlays here are smaller than L + 1). */
async function converged(nodes: readonly OverlayNode[]): Promise<void> {
  const done = () => nodes.every((n) => n.machine.leafSet.size === nodes.length - 1)
  while (!done()) await Promise.race(nodes.map((n) => next(n, 'leafSetChanged')))
}

const rt = suite('runtime over the in-memory transport')

rt('nodes join, and each routed message is delivered once at the numerically closest node', async () => {
  const net = new MemoryNetwork()
  const nodes = await overlay(net, 8, `runtime-route-${SEED}`)
  try {
    assert.ok(nodes.every((n) => n.state === 'active'))
    await converged(nodes)
    const rng = createRng(`keys-${SEED}`)
    const ids = nodes.map((n) => n.id)
    const delivered: { at: OverlayNode; e: OverlayEventOf<'deliver'> }[] = []
    for (const n of nodes) n.on('deliver', (e) => delivered.push({ at: n, e }))
    const expected = new Map<string, Id>()
    for (let i = 0; i < 200; i++) {
      const key = Id.fromWords(rng.u32(), rng.u32(), rng.u32(), rng.u32())
      const from = nodes[rng.int(nodes.length)] as OverlayNode
      const msgId = from.route(key, APP, new TextEncoder().encode(`m${i}`))
      expected.set(`${from.id.toHex()}/${msgId}`, closestId(key, ids) as Id)
    }
    while (delivered.length < expected.size) await Promise.race(nodes.map((n) => next(n, 'deliver')))
    const seen = new Set<string>()
    for (const { at, e } of delivered) {
      const k = `${e.origin.id.toHex()}/${e.msgId}`
      assert.ok(!seen.has(k), `delivered twice: ${k}`)
      seen.add(k)
      assert.ok(expected.get(k)?.equals(at.id), `message ${k} delivered at the closest node`)
      assert.is(e.app, APP)
      assert.ok(e.hops >= 0 && e.hops <= 3)
    }
    assert.is(seen.size, expected.size)
  } finally {
    await Promise.all(nodes.map((n) => n.close()))
  }
})

rt('join through an unreachable bootstrap rejects with JoinError and closes the node', async () => {
  const net = new MemoryNetwork()
  const node = await createNode({ transport: net.createTransport(), listen: 'mem:0', config: FAST })
  const error = await node.join(['mem:4242'], { timeoutMs: 300 }).then(
    () => undefined,
    (e: unknown) => e,
  )
  assert.instance(error, JoinError)
  assert.ok(['JOIN_TIMEOUT', 'JOIN_FAILED'].includes((error as JoinError).code))
  await node.close()
  assert.is(node.state, 'closed')
  assert.is(net.stats.listening, 0, 'the transport was released')
})

rt('commands check their input: state, payload size, bootstrap addresses', async () => {
  const net = new MemoryNetwork({ maxFrameBytes: 4096 })
  const node = await createNode({ transport: net.createTransport(), listen: 'mem:0', config: FAST })
  try {
    assert.throws(
      () => node.route(Id.ZERO, APP, new Uint8Array(1)),
      (e: unknown) => e instanceof IllegalStateError,
    )
    assert.throws(
      () => node.join([]),
      (e: unknown) => e instanceof IllegalStateError,
    )
    assert.throws(() => node.join(['not an address']), /bad address/)
    node.start()
    node.register(APP)
    assert.throws(
      () => node.route(Id.ZERO, APP, new Uint8Array(4096)),
      (e: unknown) => e instanceof MessageTooLargeError,
    )
    assert.throws(
      () => node.start(),
      (e: unknown) => e instanceof IllegalStateError,
    )
  } finally {
    await node.close()
  }
})

rt('a bad frame becomes a badFrame event and the node goes on routing', async () => {
  const net = new MemoryNetwork()
  const nodes = await overlay(net, 2, `runtime-bad-${SEED}`)
  const raw = net.createTransport()
  await raw.listen({ address: 'mem:0', localId: Id.ZERO, handlers: { message() {}, error() {} } })
  try {
    await converged(nodes)
    const target = nodes[1] as OverlayNode
    const bad = next(target, 'badFrame')
    raw.send(target.address, new Uint8Array([0xff, 0x00, 0x13, 0x37]))
    const e = await bad
    assert.ok(e.code.length > 0)
    assert.is(target.stats.badFrames, 1)
    const delivered = next(target, 'deliver')
    ;(nodes[0] as OverlayNode).route(target.id, APP, new Uint8Array([1]))
    assert.is((await delivered).payload[0], 1)
  } finally {
    await raw.close()
    await Promise.all(nodes.map((n) => n.close()))
  }
})

rt('a frame naming another sender than its connection is dropped; its sender is not learned', async () => {
  const net = new MemoryNetwork()
  const nodes = await overlay(net, 2, `runtime-sender-${SEED}`)
  const raw = net.createTransport()
  const rawId = Id.fromWords(0x10203040, 1, 2, 3)
  const address = await raw.listen({
    address: 'mem:0',
    localId: rawId,
    handlers: { message() {}, error() {} },
  })
  try {
    await converged(nodes)
    const target = nodes[1] as OverlayNode
    // The connection is rawId's, the frame claims another id: dropped before the protocol sees it.
    const forged = Id.fromWords(0x50607080, 4, 5, 6)
    const bad = next(target, 'badFrame')
    raw.send(target.address, encodeMessage({ type: 'heartbeat', from: { id: forged, address } }))
    const e = await bad
    assert.is(e.code, 'SENDER_MISMATCH')
    assert.ok(e.message.includes(forged.toHex()) && e.message.includes(rawId.toHex()), e.message)
    assert.is(target.stats.senderMismatches, 1)
    assert.is(target.stats.badFrames, 0)
    assert.not.ok(target.machine.leafSet.contains(forged), 'the forged sender is not in the leaf set')
    // The same frame under the connection's own id is taken: an active node heard from is learned.
    const learned = next(target, 'update', (u) => u.joined && u.node.id.equals(rawId))
    raw.send(target.address, encodeMessage({ type: 'heartbeat', from: { id: rawId, address } }))
    await learned
    assert.ok(target.machine.leafSet.contains(rawId))
    assert.is(target.stats.senderMismatches, 1)
  } finally {
    await raw.close()
    await Promise.all(nodes.map((n) => n.close()))
  }
})

rt('a listener that throws becomes an error event; other listeners and the node carry on', async () => {
  const net = new MemoryNetwork()
  const nodes = await overlay(net, 2, `runtime-listener-${SEED}`)
  try {
    await converged(nodes)
    const target = nodes[1] as OverlayNode
    target.on('deliver', () => {
      throw new Error('listener bug')
    })
    const reported = next(target, 'error', (e) => e.code === 'LISTENER_FAILED')
    const delivered = next(target, 'deliver')
    ;(nodes[0] as OverlayNode).route(target.id, APP, new Uint8Array([2]))
    await delivered
    assert.match((await reported).message, /listener bug/)
    assert.is(target.stats.listenerErrors, 1)
  } finally {
    await Promise.all(nodes.map((n) => n.close()))
  }
})

rt('a graceful leave: the others drop the leaver at once and keep routing correctly', async () => {
  const net = new MemoryNetwork()
  const nodes = await overlay(net, 5, `runtime-leave-${SEED}`)
  try {
    await converged(nodes)
    const [leaver, ...rest] = nodes as [OverlayNode, ...OverlayNode[]]
    const gone = Promise.all(
      rest.map((n) => next(n, 'update', (e) => !e.joined && e.node.id.equals(leaver.id))),
    )
    await leaver.leave()
    assert.is(leaver.state, 'closed')
    await gone
    assert.ok(rest.every((n) => n.machine.leafSet.size === rest.length - 1))
    const target = rest[1] as OverlayNode
    const delivered = next(target, 'deliver')
    ;(rest[0] as OverlayNode).route(target.id, APP, new Uint8Array([3]))
    assert.is((await delivered).hops <= 2, true)
  } finally {
    await Promise.all(nodes.map((n) => n.close()))
  }
})

rt('a crashed node (close) is detected and the leaf sets repair', async () => {
  const net = new MemoryNetwork()
  const nodes = await overlay(net, 5, `runtime-crash-${SEED}`)
  try {
    await converged(nodes)
    const [victim, ...rest] = nodes as [OverlayNode, ...OverlayNode[]]
    const failed = Promise.all(rest.map((n) => next(n, 'nodeFailed', (e) => e.node.id.equals(victim.id))))
    await victim.close()
    await failed
    assert.ok(rest.every((n) => n.machine.leafSet.size === rest.length - 1))
  } finally {
    await Promise.all(nodes.map((n) => n.close()))
  }
})

rt('close is idempotent, stops events and timers, and frees the address', async () => {
  const net = new MemoryNetwork()
  const node = await createNode({ transport: net.createTransport(), listen: 'mem:7', config: FAST })
  node.start()
  let events = 0
  node.on('stateChanged', () => events++)
  await node.close()
  await node.close()
  assert.is(events, 1, 'one stateChanged, to closed')
  assert.is(node.state, 'closed')
  const again = await createNode({ transport: net.createTransport(), listen: 'mem:7', config: FAST })
  assert.is(again.address, 'mem:7')
  await again.close()
})

rt('a clock that goes backwards does not crash the node', async () => {
  const net = new MemoryNetwork()
  let t = 1_000
  const node = await createNode({
    transport: net.createTransport(),
    listen: 'mem:0',
    config: FAST,
    clock: () => t,
  })
  node.start()
  t = 10
  node.register(APP)
  const delivered = next(node, 'deliver')
  node.route(Id.ZERO, APP, new Uint8Array([4]))
  assert.is((await delivered).payload[0], 4)
  await node.close()
})

rt('no promise was left rejected and unobserved', () => {
  assert.equal(unhandled, [])
})

rt.run()
