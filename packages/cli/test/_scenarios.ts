// The multi-process cluster scenario, shared by cluster.test.ts (TCP) and cluster-udp.test.ts
// (UDP): ten `pastry node` processes on 127.0.0.1, with a cluster key, driven only through their
// stdout lines and admin APIs. The test computes the numerically closest node itself (bigint
// arithmetic over the ids from /status) and checks every delivery against it. The steps share one
// cluster and run in order: join, route, kill -9, repair, graceful leave, and a node with the wrong
// key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  admin,
  createRng,
  eventually,
  leafSetsComplete,
  type Member,
  randomHex,
  routeAndCollect,
  SEED,
  sourceCluster,
  statuses,
} from './_cluster.js'

/**
 * Registers and runs the cluster scenario as one uvu suite named for `label` (`TCP`, `UDP`).
 * `transportArgs` are extra `pastry node` arguments for every member, such as
 * `['--transport', 'udp']`; `rngLabel` names the scenario's random stream (so that each transport's
 * run replays on its own from PASTRY_SEED).
 */
export function clusterScenario(label: string, transportArgs: readonly string[], rngLabel: string): void {
  const NODES = 10
  const rng = createRng(`${rngLabel}-${SEED}`)
  const dir = mkdtempSync(join(tmpdir(), 'pastry-cluster-'))
  const keyFile = join(dir, 'cluster.key')
  const wrongKeyFile = join(dir, 'wrong.key')
  writeFileSync(keyFile, `right-key-${SEED}\n`)
  writeFileSync(wrongKeyFile, `wrong-key-${SEED}\n`)
  const cluster = sourceCluster(['--cluster-key-file', keyFile, ...transportArgs])
  let live: Member[] = []

  const steps = suite(`cluster of 10 pastry node processes over ${label}`)

  steps.after(async () => {
    await cluster.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  function assertAllCorrect(result: Awaited<ReturnType<typeof routeAndCollect>>, label: string): void {
    const wrong = result.deliveredAt.filter((at, i) => !(at.length === 1 && at[0] === result.expected[i]))
    const duplicated = result.deliveredAt.filter((at) => at.length > 1).length
    assert.is(duplicated, 0, `${label}: messages delivered more than once`)
    assert.is(
      wrong.length,
      0,
      `${label}: ${wrong.length} of ${result.expected.length} not delivered exactly once at the closest node`,
    )
  }

  steps('all nodes join and become active, and their leaf sets converge', async () => {
    const first = await cluster.add(['--id', randomHex(rng)])
    await first.active
    const others = await Promise.all(
      Array.from({ length: NODES - 1 }, () =>
        cluster.add(['--id', randomHex(rng), '--bootstrap', first.address]),
      ),
    )
    await Promise.all(others.map((m) => m.active))
    live = [first, ...others]
    const all = await statuses(live)
    assert.ok(
      all.every((s) => s.state === 'active'),
      'every node reports active',
    )
    await eventually('every leaf set to hold every other node', 20_000, async () =>
      leafSetsComplete(await statuses(live)),
    )
  })

  steps(
    '1000 messages through /route from random nodes: each delivered once, at the closest node',
    async () => {
      const result = await routeAndCollect(live, 1000, rng)
      assertAllCorrect(result, 'steady state')
      assert.ok(
        result.hops.every((h) => h >= 0 && h <= 4),
        'hops are small in a 10-node overlay',
      )
    },
  )

  steps('kill -9 of 3 nodes: after repair, 100% correct again', async () => {
    const victims = [...live].sort(() => rng.float() - 0.5).slice(0, 3)
    for (const v of victims) assert.is(await cluster.kill(v, 'SIGKILL'), 'SIGKILL')
    live = live.filter((m) => !victims.includes(m))
    // The repair bound with these periods: leaf-set timeout (2.5 × 400 ms) plus probe retries
    // (3 × 300 ms), plus a heartbeat period for the news to spread; 15 s leaves room for a loaded CI.
    await eventually('leaf sets without the killed nodes', 15_000, async () =>
      leafSetsComplete(await statuses(live)),
    )
    const result = await routeAndCollect(live, 1000, rng)
    assertAllCorrect(result, 'after kill -9')
  })

  steps('a graceful leave: the node exits 0 and the rest route around it at once', async () => {
    const leaver = live[rng.int(live.length)] as Member
    await admin(leaver, '/leave', {})
    assert.is(await leaver.exited, 0, 'the leaver exits 0')
    live = live.filter((m) => m !== leaver)
    await eventually('leaf sets without the leaver', 5_000, async () =>
      leafSetsComplete(await statuses(live)),
    )
    const result = await routeAndCollect(live, 300, rng)
    assertAllCorrect(result, 'after a graceful leave')
  })

  steps('a node with the wrong cluster key is refused and never enters a leaf set', async () => {
    const intruderId = randomHex(rng)
    const intruder = await cluster.add([
      '--id',
      intruderId,
      '--bootstrap',
      (live[0] as Member).address,
      '--cluster-key-file',
      wrongKeyFile,
      ...transportArgs,
      '--join-timeout-ms',
      '3000',
    ])
    assert.is(await intruder.exited, 1, 'the intruder gives up joining and exits 1')
    assert.ok(
      intruder.stderr.some((l) => l.includes('JOIN_')),
      `the intruder logs why it failed: ${intruder.stderr.slice(-3).join('\n')}`,
    )
    const all = await statuses(live)
    assert.ok(
      all.every((s) => s.leafSet.every((l) => l.id !== intruderId)),
      'no member took the intruder in',
    )
    const metrics = await fetch(`http://${(live[0] as Member).admin}/metrics`).then((r) => r.text())
    const refused = /pastry_transport_events_total\{counter="handshakeFailures"\} (\d+)/.exec(metrics)
    assert.ok(refused !== null && Number(refused[1]) > 0, 'the bootstrap counted the refused handshakes')
    const result = await routeAndCollect(live, 200, rng)
    assertAllCorrect(result, 'after the intruder')
  })

  steps('SIGTERM stops every member gracefully with exit code 0', async () => {
    const codes = await cluster.stop()
    assert.equal(
      codes,
      codes.map(() => 0),
    )
  })

  steps.run()
}
