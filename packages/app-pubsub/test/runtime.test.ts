// createPubSub over live nodes (core's runtime) on the in-memory transport, with real timers and
// short protocol periods. Every wait is on events or promises, bounded by a timeout.

import { createNode, createRng, hashId, type OverlayNode, type ProtocolConfig } from '@pastry/core'
import { MemoryNetwork } from '@pastry/testkit'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createPubSub, type PubSub, type PubSubConfig, type PubSubDelivery } from '../src/index.js'
import { SEED } from './_seed.js'

const CORE: Partial<ProtocolConfig> = {
  leafSetHeartbeatMs: 200,
  probeTimeoutMs: 100,
  joinTimeoutMs: 500,
  ackTimeoutMinMs: 20,
  ackTimeoutMaxMs: 200,
}
const PUBSUB: Partial<PubSubConfig> = {
  heartbeatMs: 100,
  subscribeTimeoutMs: 300,
  publishAckTimeoutMs: 200,
  replayTimeoutMs: 300,
  anycastTimeoutMs: 2000,
}

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => unhandled.push(reason))

interface Peer {
  readonly node: OverlayNode
  readonly ps: PubSub
  readonly got: Map<string, PubSubDelivery[]>
}

async function cluster(count: number, label: string, config: Partial<PubSubConfig> = {}): Promise<Peer[]> {
  const net = new MemoryNetwork()
  const rng = createRng(`${label}-${SEED}`)
  const peers: Peer[] = []
  for (let i = 0; i < count; i++) {
    const node = await createNode({
      transport: net.createTransport(),
      listen: 'mem:0',
      rng: rng.derive(`${i}`),
      config: CORE,
    })
    const ps = createPubSub(node, { config: { ...PUBSUB, ...config }, epoch: 1 })
    if (i === 0) node.start()
    else await node.join([peers[0]!.node.address])
    peers.push({ node, ps, got: new Map() })
  }
  await until(
    peers,
    () => peers.every((p) => p.node.machine.leafSet.size === Math.min(count - 1, 16)),
    10_000,
    'leaf sets',
  )
  return peers
}

/** Resolves once `cond` holds, re-checked on every pubsub or leaf-set event; rejects after `timeoutMs`. */
function until(peers: readonly Peer[], cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  if (cond()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const types = [
      'message',
      'gap',
      'childAdded',
      'childRemoved',
      'parentChanged',
      'published',
      'error',
    ] as const
    const check = () => {
      if (!cond()) return
      done()
      resolve()
    }
    const done = () => {
      clearTimeout(timer)
      for (const p of peers) {
        for (const t of types) p.ps.off(t, check)
        p.node.off('leafSetChanged', check)
      }
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
    }, timeoutMs)
    for (const p of peers) {
      for (const t of types) p.ps.on(t, check)
      p.node.on('leafSetChanged', check)
    }
  })
}

function subscribe(p: Peer, topic: string): void {
  p.got.set(topic, [])
  p.ps.subscribe(topic, (d) => p.got.get(topic)!.push(d))
}

const text = (s: string) => new TextEncoder().encode(s)

/** The seqs delivered from `publisher`, in delivery order. */
function seqs(p: Peer, topic: string, publisher: OverlayNode): number[] {
  return (p.got.get(topic) ?? [])
    .filter((d) => d.type === 'message' && d.publisher.id.equals(publisher.id))
    .map((d) => (d.type === 'message' ? d.seq : 0))
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

async function shutdown(peers: readonly Peer[]): Promise<void> {
  await Promise.all(peers.map((p) => p.node.close()))
}

const rt = suite('createPubSub over the in-memory transport')

rt('every subscriber gets every publish exactly once and in order (3 publishers, 2 topics)', async () => {
  const peers = await cluster(16, 'fanout')
  try {
    const topics = ['red', 'blue']
    const subs = peers.slice(0, 11)
    for (const t of topics) for (const s of subs) subscribe(s, t)
    await until(
      peers,
      () =>
        topics.every((t) =>
          subs.every((s) => s.ps.machine.isRoot(t) || s.ps.machine.parentOf(t) !== undefined),
        ),
      5000,
      'trees',
    )
    const pubs = [peers[2]!, peers[12]!, peers[15]!]
    const acks: Promise<unknown>[] = []
    for (let i = 0; i < 20; i++)
      for (const t of topics) for (const p of pubs) acks.push(p.ps.publish(t, text(`${t}${i}`)))
    const results = (await Promise.all(acks)) as { seq: number }[]
    assert.ok(results.every((r) => r.seq >= 1 && r.seq <= 20))
    const complete = () =>
      topics.every((t) => subs.every((s) => pubs.every((p) => seqs(s, t, p.node).length >= 20)))
    await until(peers, complete, 8000, 'every message everywhere')
    for (const t of topics)
      for (const s of subs) {
        for (const p of pubs) assert.equal(seqs(s, t, p.node), range(20), `${s.node.address} ${t}`)
        assert.ok(
          s.got.get(t)!.every((d) => d.type === 'message'),
          'no gaps',
        )
      }
    for (const p of peers.slice(11)) for (const t of topics) assert.is(p.got.get(t), undefined)
    assert.equal(unhandled, [])
  } finally {
    await shutdown(peers)
  }
})

rt('unsubscribe prunes the tree; anycast reaches one accepting member', async () => {
  const peers = await cluster(12, 'prune-anycast')
  try {
    const members = peers.slice(0, 6)
    const subsOf = new Map<Peer, { unsubscribe(): void }>()
    let taken = 0
    for (const m of members) {
      subsOf.set(
        m,
        m.ps.subscribe('jobs', () => {}, {
          onAnycast: () => {
            taken++
            return m === members[4]
          },
        }),
      )
    }
    await until(
      peers,
      () => members.every((s) => s.ps.machine.isRoot('jobs') || s.ps.machine.parentOf('jobs') !== undefined),
      5000,
      'tree',
    )
    const r = await peers[10]!.ps.anycast('jobs', text('work'))
    assert.ok(r.accepted, 'a member took it')
    assert.ok(r.by?.id.equals(members[4]!.node.id))
    assert.ok(taken >= 1)
    for (const m of members) subsOf.get(m)!.unsubscribe()
    const root = peers.find((p) => p.ps.machine.isRoot('jobs'))!
    await until(
      peers,
      () =>
        root.ps.machine.childrenOf('jobs').length === 0 &&
        peers.every((p) => p === root || !p.ps.machine.topics.includes('jobs')),
      5000,
      'pruning',
    )
    assert.equal(root.ps.machine.childrenOf('jobs'), [])
    const none = await peers[10]!.ps.anycast('jobs', text('work'))
    assert.not.ok(none.accepted)
  } finally {
    await shutdown(peers)
  }
})

rt('max-children hands extra children down', async () => {
  const peers = await cluster(14, 'maxchildren', { maxChildren: 2, maxRedirects: 32 })
  try {
    for (const p of peers) subscribe(p, 'wide')
    await until(
      peers,
      () => peers.every((s) => s.ps.machine.isRoot('wide') || s.ps.machine.parentOf('wide') !== undefined),
      8000,
      'tree',
    )
    assert.ok(peers.some((p) => p.ps.machine.stats.redirects > 0))
    for (const p of peers) assert.ok(p.ps.machine.childrenOf('wide').length <= 2)
    const pub = peers[5]!
    for (let i = 0; i < 5; i++) await pub.ps.publish('wide', text(`w${i}`))
    await until(peers, () => peers.every((s) => seqs(s, 'wide', pub.node).length >= 5), 5000, 'delivery')
    for (const p of peers) assert.equal(seqs(p, 'wide', pub.node), range(5))
  } finally {
    await shutdown(peers)
  }
})

rt('a forwarder and then the root crash mid-stream: delivery resumes, nothing is missed', async () => {
  const peers = await cluster(16, 'crash')
  try {
    const topic = 'ticker'
    const rootId = hashId(topic)
    for (const p of peers) subscribe(p, topic)
    await until(
      peers,
      () => peers.every((s) => s.ps.machine.isRoot(topic) || s.ps.machine.parentOf(topic) !== undefined),
      5000,
      'tree',
    )
    const root = peers.find((p) => p.ps.machine.isRoot(topic))!
    const forwarder = peers.find((p) => p !== root && p.ps.machine.childrenOf(topic).length > 0)
    const pub = peers.find((p) => p !== root && p !== forwarder)!
    const acks: Promise<unknown>[] = []
    const send = (n: number) => {
      for (let i = 0; i < n; i++) acks.push(pub.ps.publish(topic, text(`t${acks.length}`)))
    }
    send(10)
    await Promise.all(acks)
    const dead = new Set<Peer>()
    if (forwarder !== undefined) {
      dead.add(forwarder)
      await forwarder.node.close()
    }
    send(10)
    dead.add(root)
    await root.node.close()
    send(10)
    await Promise.all(acks)
    const alive = peers.filter((p) => !dead.has(p))
    await until(alive, () => alive.every((s) => seqs(s, topic, pub.node).length >= 30), 10_000, 'recovery')
    for (const s of alive) {
      assert.equal(seqs(s, topic, pub.node), range(30), s.node.address)
      assert.ok(
        s.got.get(topic)!.every((d) => d.type === 'message'),
        'no gap',
      )
    }
    const newRoot = alive.find((p) => p.ps.machine.isRoot(topic))
    assert.ok(newRoot !== undefined, 'a new root took over')
    assert.ok(rootId !== undefined)
    assert.equal(unhandled, [])
  } finally {
    await shutdown(peers)
  }
})

rt('a gap older than the replay window becomes a gap event; the rest arrives in order', async () => {
  const net = new MemoryNetwork()
  const rng = createRng(`gap-${SEED}`)
  const peers: Peer[] = []
  for (let i = 0; i < 8; i++) {
    const node = await createNode({
      transport: net.createTransport(),
      listen: 'mem:0',
      rng: rng.derive(`${i}`),
      config: CORE,
    })
    const ps = createPubSub(node, { config: { ...PUBSUB, replayWindow: 3 }, epoch: 1 })
    if (i === 0) node.start()
    else await node.join([peers[0]!.node.address])
    peers.push({ node, ps, got: new Map() })
  }
  try {
    await until(peers, () => peers.every((p) => p.node.machine.leafSet.size === 7), 10_000, 'leaf sets')
    for (const p of peers) subscribe(p, 'g')
    await until(
      peers,
      () => peers.every((s) => s.ps.machine.isRoot('g') || s.ps.machine.parentOf('g') !== undefined),
      5000,
      'tree',
    )
    const root = peers.find((p) => p.ps.machine.isRoot('g'))!
    const pub = peers.find((p) => p !== root)!
    const victim = peers.find((p) => p !== root && p !== pub && p.ps.machine.childrenOf('g').length === 0)!
    await pub.ps.publish('g', text('before'))
    await until(peers, () => seqs(victim, 'g', pub.node).length === 1, 3000, 'first message')
    // Everything toward the victim is lost for a while (its own messages still go out).
    const others = peers.filter((p) => p !== victim).map((p) => p.node.address)
    net.partition(others, [victim.node.address], { oneWay: true })
    for (let i = 0; i < 10; i++) await pub.ps.publish('g', text(`during${i}`))
    net.heal()
    await pub.ps.publish('g', text('after'))
    const gapSeen = () => victim.got.get('g')!.some((d) => d.type === 'gap')
    await until(peers, () => gapSeen() && seqs(victim, 'g', pub.node).includes(12), 8000, 'gap and recovery')
    // Every seq 1..12 is accounted for exactly once: delivered, or inside one reported gap.
    const lost = new Set<number>()
    for (const d of victim.got.get('g')!)
      if (d.type === 'gap') for (let s = d.fromSeq; s <= d.toSeq; s++) lost.add(s)
    const got = seqs(victim, 'g', pub.node)
    assert.equal(
      got,
      [...got].sort((a, b) => a - b),
      'in order',
    )
    for (let s = 1; s <= 12; s++)
      assert.ok(got.includes(s) !== lost.has(s), `seq ${s} delivered xor reported lost`)
    assert.ok(got.includes(10) && got.includes(11), 'what the window held came back')
  } finally {
    await shutdown(peers)
  }
})

rt('bad pubsub payloads are ignored and counted; the node carries on', async () => {
  const peers = await cluster(4, 'bad')
  try {
    const target = peers[1]!
    const errors: string[] = []
    target.ps.on('error', (e) => errors.push(e.code))
    const r = createRng(`junk-${SEED}`)
    for (let i = 0; i < 50; i++) {
      const junk = new Uint8Array(1 + r.int(40))
      for (let j = 0; j < junk.length; j++) junk[j] = r.int(256)
      peers[0]!.node.send(target.node.handle, 'pubsub', junk)
    }
    // A well-formed CBOR value that is not a pubsub message, and one with an oversized array claim.
    peers[0]!.node.send(target.node.handle, 'pubsub', new Uint8Array([0x83, 0x01, 0x63, 0x00]))
    peers[0]!.node.send(
      target.node.handle,
      'pubsub',
      new Uint8Array([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    )
    await until(peers, () => target.ps.machine.stats.badMessages >= 52, 3000, 'bad messages counted')
    assert.is(target.ps.machine.stats.badMessages, 52)
    assert.ok(errors.every((c) => c === 'BAD_MESSAGE'))
    subscribe(target, 'fine')
    await until(
      peers,
      () => target.ps.machine.isRoot('fine') || target.ps.machine.parentOf('fine') !== undefined,
      3000,
      'tree',
    )
    await peers[3]!.ps.publish('fine', text('ok'))
    await until(peers, () => seqs(target, 'fine', peers[3]!.node).length === 1, 3000, 'delivery')
  } finally {
    await shutdown(peers)
  }
})

rt(
  'a handler that throws becomes an error event; closing fails pending publishes without unhandled rejections',
  async () => {
    const peers = await cluster(3, 'close')
    try {
      const p = peers[1]!
      const errors: string[] = []
      p.ps.on('error', (e) => errors.push(e.code))
      p.ps.subscribe('t', () => {
        throw new Error('handler bug')
      })
      await until(
        peers,
        () => p.ps.machine.isRoot('t') || p.ps.machine.parentOf('t') !== undefined,
        3000,
        'tree',
      )
      await peers[2]!.ps.publish('t', text('x'))
      await until(peers, () => errors.includes('LISTENER_FAILED'), 3000, 'the error event')
      // A publish still pending when its node closes is rejected, and an ignored one is harmless.
      const q = peers[0]!
      void q.ps.publish('t', text('ignored'))
      const pending = q.ps.publish('t', text('awaited'))
      await q.node.close()
      const error = await pending.then(
        () => undefined,
        (e: unknown) => e,
      )
      // It may have been acknowledged before the close; if not, it failed with CLOSED.
      if (error !== undefined) assert.is((error as { code: string }).code, 'CLOSED')
      assert.throws(() => q.ps.publish('t', text('late')), /closed/)
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(unhandled, [])
    } finally {
      await shutdown(peers)
    }
  },
)

rt.run()
