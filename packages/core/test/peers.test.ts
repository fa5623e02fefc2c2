// Property test for the node's peer table against a reference model: a Map from hex id to the record
// (STYLE.md, convention 9). PASTRY_SEED=<seed> replays a run (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Id } from '../src/id/id.js'
import {
  CREATED,
  IN_LEAF_SET,
  LAST_HEARD,
  MAX_PROBE_INFO,
  PeerTable,
  PROBE_NONCE,
  PROBE_SENT_AT,
  SRTT,
  SUSPECTED,
  VERSION_SENT,
} from '../src/protocol/peers.js'
import type { NodeHandle } from '../src/wire/messages.js'
import { SEED } from './_seed.js'

interface ModelRecord {
  handle: NodeHandle
  heard: number
  srtt: number
  flags: number
  created: number
  nonce: number
  version: number
  /** The information and send time kept with the probe in flight (0 and NaN for none). */
  info: number
  sentAt: number
  /** The record's slot, followed through compaction by `compact`'s answer. */
  slot: number
}

type Op =
  | { add: number }
  | { remove: number }
  | { set: [number, number] }
  | { nonce: [number, number] }
  | { flag: [number, number] }
  | { probe: [number, number, number] }
  | { info: [number, number] }
  | { unprobe: number }
  | { readdress: number }
  | { compact: true }

// A small pool of ids, several sharing their low words, so that hash collisions and long probe runs
// in the index are common.
const pool: Id[] = []
for (let i = 0; i < 48; i++) pool.push(Id.fromWords(i % 5, (i * 7919) | 0, i % 3, i % 4 === 0 ? 1 : i))

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.nat(pool.length - 1).map((add) => ({ add })) },
  { weight: 3, arbitrary: fc.nat(pool.length - 1).map((remove) => ({ remove })) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.nat(pool.length - 1), fc.integer({ min: 0, max: 1e6 })).map((set) => ({ set })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.nat(pool.length - 1), fc.constantFrom(0, IN_LEAF_SET, SUSPECTED))
      .map((flag) => ({ flag })),
  },
  {
    weight: 2,
    // A probe nonce is any unsigned 32-bit number, or -1 for none; the leaf-set version follows it.
    arbitrary: fc
      .tuple(fc.nat(pool.length - 1), fc.oneof(fc.constant(-1), fc.constant(0xffffffff), fc.nat(0xffffffff)))
      .map((nonce) => ({ nonce })),
  },
  {
    weight: 2,
    // A probe's nonce, the information kept with it, and when it was sent.
    arbitrary: fc
      .tuple(fc.nat(pool.length - 1), fc.nat(0xffffffff), fc.nat(MAX_PROBE_INFO))
      .map((probe) => ({ probe })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.nat(pool.length - 1), fc.nat(MAX_PROBE_INFO)).map((info) => ({ info })),
  },
  { weight: 1, arbitrary: fc.nat(pool.length - 1).map((unprobe) => ({ unprobe })) },
  { weight: 1, arbitrary: fc.nat(pool.length - 1).map((readdress) => ({ readdress })) },
  { weight: 1, arbitrary: fc.constant({ compact: true as const }) },
)

function handleOf(i: number, generation: number): NodeHandle {
  return { id: pool[i]!, address: `10.0.${i}.${generation}:4000` }
}

test(`the peer table finds, updates and drops records as a map would, across growth and compaction (seed ${SEED})`, () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 50, maxLength: 600, size: 'max' }), (ops) => {
      const table = new PeerTable()
      const model = new Map<string, ModelRecord>()
      let created = 0
      let now = 0
      for (const o of ops) {
        now++
        if ('add' in o) {
          const id = pool[o.add]!
          const hex = id.toHex()
          if (table.find(id) < 0) {
            assert.not.ok(model.has(hex))
            const handle = handleOf(o.add, 0)
            const s = table.add(handle, now)
            model.set(hex, {
              handle,
              heard: Number.NEGATIVE_INFINITY,
              srtt: Number.NaN,
              flags: 0,
              created: created++,
              nonce: -1,
              version: -1,
              info: 0,
              sentAt: Number.NaN,
              slot: s,
            })
            assert.is(table.find(id), s)
          }
        } else if ('remove' in o) {
          const id = pool[o.remove]!
          const s = table.find(id)
          assert.is(s >= 0, model.has(id.toHex()))
          if (s >= 0) {
            table.remove(s)
            model.delete(id.toHex())
            assert.is(table.find(id), -1)
          }
        } else if ('set' in o) {
          const [i, value] = o.set
          const s = table.find(pool[i]!)
          const r = model.get(pool[i]!.toHex())
          if (s >= 0 && r !== undefined) {
            table.set(s, LAST_HEARD, value)
            table.set(s, SRTT, value / 2)
            r.heard = value
            r.srtt = value / 2
          }
        } else if ('nonce' in o) {
          const [i, nonce] = o.nonce
          const s = table.find(pool[i]!)
          const r = model.get(pool[i]!.toHex())
          if (s >= 0 && r !== undefined) {
            table.set(s, PROBE_NONCE, nonce)
            table.set(s, VERSION_SENT, nonce < 0 ? -1 : nonce % 1000)
            r.nonce = nonce
            r.version = nonce < 0 ? -1 : nonce % 1000
            // Clearing the nonce ends the probe; setting one keeps whatever information was kept.
            if (nonce < 0) r.info = 0
          }
        } else if ('probe' in o) {
          const [i, nonce, info] = o.probe
          const s = table.find(pool[i]!)
          const r = model.get(pool[i]!.toHex())
          if (s >= 0 && r !== undefined) {
            table.setProbe(s, nonce, now + 0.25, info)
            r.nonce = nonce
            r.info = info
            r.sentAt = now + 0.25
          }
        } else if ('info' in o) {
          const [i, info] = o.info
          const s = table.find(pool[i]!)
          const r = model.get(pool[i]!.toHex())
          if (s >= 0 && r !== undefined) {
            table.setProbeInfo(s, info)
            // Only a probe in flight keeps information.
            if (r.nonce >= 0) r.info = info
          }
        } else if ('unprobe' in o) {
          const s = table.find(pool[o.unprobe]!)
          const r = model.get(pool[o.unprobe]!.toHex())
          if (s >= 0 && r !== undefined) {
            table.clearProbe(s)
            r.nonce = -1
            r.info = 0
          }
        } else if ('flag' in o) {
          const [i, bit] = o.flag
          const s = table.find(pool[i]!)
          const r = model.get(pool[i]!.toHex())
          if (s >= 0 && r !== undefined) {
            table.setFlags(s, bit)
            r.flags = bit
          }
        } else if ('readdress' in o) {
          const s = table.find(pool[o.readdress]!)
          const r = model.get(pool[o.readdress]!.toHex())
          if (s >= 0 && r !== undefined) {
            r.handle = handleOf(o.readdress, now)
            table.setHandle(s, r.handle)
          }
        } else {
          const moved = table.compact()
          // When it renumbers, it says where every record went.
          if (moved !== undefined) for (const r of model.values()) r.slot = moved[r.slot]!
          // Compaction leaves the storage between the records and 7/4 of them (or a small floor).
          assert.ok(table.capacity >= table.size)
          assert.ok(table.capacity <= Math.max(64, (7 * table.size) / 4))
        }
        assert.is(table.size, model.size)
        assert.ok(table.capacity >= table.size)
      }
      // Every record is found, with its fields; every other id is not.
      let inUse = 0
      for (let s = 0; s < table.highWater; s++) if (table.inUse(s)) inUse++
      assert.is(inUse, model.size)
      for (const id of pool) {
        const s = table.find(id)
        const r = model.get(id.toHex())
        if (r === undefined) {
          assert.is(s, -1)
          continue
        }
        assert.ok(s >= 0)
        assert.is(s, r.slot)
        assert.is(table.handle(s), r.handle)
        assert.is(table.probeInfo(s), r.info)
        if (r.nonce >= 0) assert.ok(Object.is(table.get(s, PROBE_SENT_AT), r.sentAt))
        assert.is(table.get(s, LAST_HEARD), r.heard)
        assert.ok(Object.is(table.get(s, SRTT), r.srtt)) // NaN until measured
        assert.is(table.flags(s), r.flags)
        assert.is(table.get(s, PROBE_NONCE), r.nonce)
        assert.is(table.get(s, VERSION_SENT), r.version)
        // Creation numbers survive compaction: pruning removes the oldest records first by them.
        assert.is(table.get(s, CREATED), r.created)
      }
    }),
  )
})

test('a burst of records grows the table, and compaction gives the room back once they are gone', () => {
  const table = new PeerTable()
  const ids: Id[] = []
  for (let i = 0; i < 500; i++) ids.push(Id.fromWords(i, i * 31, -i, 7))
  // Storage starts at 64 records and grows by half (to a multiple of 16) each time it is full.
  const capacities = [table.capacity]
  for (const id of ids) {
    table.add({ id, address: 'a' }, 0)
    if (table.capacity !== capacities.at(-1)) capacities.push(table.capacity)
  }
  assert.is(table.size, 500)
  assert.equal(capacities, [64, 96, 144, 224, 336, 512])
  // Remove all but every 25th record; the survivors keep a probe in flight each.
  const before = new Map<number, number>()
  for (let i = 0; i < 500; i++) {
    const s = table.find(ids[i]!)
    if (i % 25 === 7) {
      table.setProbe(s, 0xfffffff0 + (i % 16), i + 0.5, MAX_PROBE_INFO - i)
      before.set(i, s)
    } else table.remove(s)
  }
  const moved = table.compact()
  assert.is(table.size, 20)
  assert.is(table.capacity, 64)
  // Compaction says where each record went, and the probe went with it.
  assert.ok(moved !== undefined)
  for (const [i, old] of before) {
    const s = table.find(ids[i]!)
    assert.is(moved[old], s)
    assert.is(table.handle(s).id, ids[i])
    assert.is(table.get(s, PROBE_NONCE), 0xfffffff0 + (i % 16))
    assert.is(table.get(s, PROBE_SENT_AT), i + 0.5)
    assert.is(table.probeInfo(s), MAX_PROBE_INFO - i)
  }
  assert.is(moved.filter((to) => to >= 0).length, 20)
  // A table with nothing to give back says so.
  assert.is(table.compact(), undefined)
  // The last 20 records instead, for what follows.
  for (const i of before.keys()) table.remove(table.find(ids[i]!))
  for (let i = 480; i < 500; i++) table.add({ id: ids[i]!, address: 'a' }, 0)
  assert.is(table.capacity, 64)
  // A settled table whose spare records come and go keeps its storage: no shrink-and-grow on
  // every tick. After the first swing has fitted the storage, it stays put.
  const swing = () => {
    for (let i = 0; i < 140; i++) if (table.find(ids[i]!) < 0) table.add({ id: ids[i]!, address: 'a' }, 0)
    assert.is(table.size, 160)
    for (let i = 0; i < 50; i++) table.remove(table.find(ids[i]!))
    table.compact()
    assert.is(table.size, 110)
  }
  swing()
  const capacity = table.capacity
  assert.ok(capacity >= 160 && capacity <= (7 * 110) / 4)
  for (let round = 0; round < 10; round++) {
    swing()
    assert.is(table.capacity, capacity)
  }
})

test('a small table whose records come and go keeps its storage', () => {
  // A joiner's first records number a few dozen and swing as probes settle and spares are pruned:
  // the storage stays at its first size rather than growing and shrinking with each swing.
  const table = new PeerTable()
  const ids: Id[] = []
  for (let i = 0; i < 60; i++) ids.push(Id.fromWords(i, 5, i * 7, -i))
  const capacity = table.capacity
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 60; i++) if (table.find(ids[i]!) < 0) table.add({ id: ids[i]!, address: 'a' }, 0)
    // Neither grown at the top of the swing nor shrunk at its bottom.
    assert.is(table.capacity, capacity)
    for (let i = 20; i < 60; i++) table.remove(table.find(ids[i]!))
    table.compact()
    assert.is(table.size, 20)
    assert.is(table.capacity, capacity)
  }
})

test.run()
