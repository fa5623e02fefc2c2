// Shared by the multi-process tests: the seed, a cluster of `pastry node` processes run from the
// TypeScript sources, and a condition wait. PASTRY_SEED=<seed> replays a run's ids, keys and choices.
import { createRng, Id, type Rng } from '@pastry/core'
import { admin, type DeliveredEntry, LocalCluster, type Member, type MemberStatus } from '../src/cluster.js'

function pickSeed(): number {
  const env = process.env.PASTRY_SEED
  if (env !== undefined && env !== '') {
    const n = Number(env)
    if (!Number.isSafeInteger(n)) throw new Error(`PASTRY_SEED must be an integer, got ${env}`)
    return n | 0
  }
  return (Date.now() ^ (process.pid << 16)) | 0
}

export const SEED = pickSeed()
console.log(`[seed] PASTRY_SEED=${SEED}`)

const ENTRY = new URL('../src/bin.ts', import.meta.url).pathname

/** Short protocol periods, so that failure detection and repair take seconds, not minutes. */
export const FAST_PERIODS = ['--heartbeat-ms', '400', '--probe-timeout-ms', '300', '--log-level', 'info']

/** A cluster whose members run the CLI from its sources, with fast periods and `extra` arguments. */
export function sourceCluster(extra: readonly string[] = []): LocalCluster {
  return new LocalCluster({
    command: { execArgv: ['--conditions=source', '--import', 'tsx'], entry: ENTRY },
    nodeArgs: [...FAST_PERIODS, ...extra],
  })
}

/** A random node id from `rng`, as `--id` takes it. */
export function randomHex(rng: Rng): string {
  return Id.fromWords(rng.u32(), rng.u32(), rng.u32(), rng.u32()).toHex()
}

export { admin, createRng, type DeliveredEntry, Id, type Member, type MemberStatus }

/**
 * Re-checks `condition` until it holds, at most `timeoutMs`; a failure names what was awaited and
 * the last state seen. The checks poll a live system, so the interval sets only how soon a change
 * is seen, never whether the test passes.
 */
export async function eventually<T>(
  what: string,
  timeoutMs: number,
  condition: () => Promise<T | undefined | false>,
): Promise<T> {
  const deadline = performance.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      last = error
    }
    if (performance.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`,
      )
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The ids each live member should have in its leaf set: every other member, when there are ≤ L + 1. */
export function leafSetsComplete(statuses: readonly MemberStatus[]): boolean {
  const ids = new Set(statuses.map((s) => s.id))
  return statuses.every(
    (s) => s.state === 'active' && s.leafSet.length === ids.size - 1 && s.leafSet.every((l) => ids.has(l.id)),
  )
}

/** Every member's `/status`. */
export function statuses(members: readonly Member[]): Promise<MemberStatus[]> {
  return Promise.all(members.map((m) => admin<MemberStatus>(m, '/status')))
}

/**
 * Routes `count` messages through `/route` from random members to random keys, waits until each has
 * been delivered somewhere, and returns, per message, the members it was delivered at (by index
 * into `members`) and the one it should have reached.
 */
export async function routeAndCollect(
  members: readonly Member[],
  count: number,
  rng: Rng,
  timeoutMs = 30_000,
): Promise<{ deliveredAt: number[][]; expected: number[]; hops: number[] }> {
  const ids = (await statuses(members)).map((s) => Id.parse(s.id))
  const sent: { id: string; expected: number }[] = []
  const batch = 50
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i)
    const replies = await Promise.all(
      Array.from({ length: n }, async () => {
        const key = Id.fromWords(rng.u32(), rng.u32(), rng.u32(), rng.u32())
        const from = members[rng.int(members.length)] as Member
        const expected = closestIndex(key, ids)
        const { id } = await admin<{ id: string }>(from, '/route', { key: key.toHex(), data: `m${i}` })
        return { id, expected }
      }),
    )
    sent.push(...replies)
  }
  const want = new Set(sent.map((s) => s.id))
  const deliveredAt = new Map<string, number[]>()
  const hopsOf = new Map<string, number>()
  await eventually(`${count} deliveries`, timeoutMs, async () => {
    const lists = await Promise.all(members.map((m) => admin<DeliveredEntry[]>(m, '/delivered')))
    deliveredAt.clear()
    lists.forEach((list, at) => {
      for (const e of list) {
        if (!want.has(e.id)) continue
        deliveredAt.set(e.id, [...(deliveredAt.get(e.id) ?? []), at])
        hopsOf.set(e.id, e.hops)
      }
    })
    return deliveredAt.size === want.size
  })
  return {
    deliveredAt: sent.map((s) => deliveredAt.get(s.id) ?? []),
    expected: sent.map((s) => s.expected),
    hops: sent.map((s) => hopsOf.get(s.id) ?? -1),
  }
}

/** The index of the id numerically closest to `key`, by bigint arithmetic (ties: the smaller id). */
function closestIndex(key: Id, ids: readonly Id[]): number {
  const ring = 1n << 128n
  const k = key.toBigInt()
  const distance = (x: bigint) => {
    const d = (((x - k) % ring) + ring) % ring
    return d < ring - d ? d : ring - d
  }
  let best = 0
  for (let i = 1; i < ids.length; i++) {
    const a = (ids[i] as Id).toBigInt()
    const b = (ids[best] as Id).toBigInt()
    const da = distance(a)
    const db = distance(b)
    if (da < db || (da === db && a < b)) best = i
  }
  return best
}
