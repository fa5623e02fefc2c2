// Property test for BoundedMap against a reference model: a Map that forgets its oldest insertion
// past the capacity (STYLE.md, convention 9). PASTRY_SEED=<seed> replays a run (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BoundedMap } from '../src/protocol/bounded.js'
import { SEED } from './_seed.js'

type Op = { set: [number, number] } | { delete: number } | { get: number } | { clear: true } | { drain: true }

// Few keys, so that sets of present keys, deletes of the last key and refills after emptying are
// all common.
const key = fc.integer({ min: 0, max: 6 })
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(key, fc.integer()).map((set) => ({ set })) },
  { weight: 3, arbitrary: key.map((k) => ({ delete: k })) },
  { weight: 2, arbitrary: key.map((k) => ({ get: k })) },
  { weight: 1, arbitrary: fc.constant({ clear: true as const }) },
  { weight: 1, arbitrary: fc.constant({ drain: true as const }) },
)

test(`BoundedMap behaves as a Map that forgets its oldest key past capacity (seed ${SEED})`, () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.array(op, { minLength: 10, maxLength: 200 }),
      (cap, ops) => {
        const map = new BoundedMap<number, number>(cap)
        const model = new Map<number, number>()
        for (const o of ops) {
          if ('set' in o) {
            const [k, v] = o.set
            let expected: [number, number] | undefined
            if (model.has(k)) model.set(k, v)
            else {
              model.set(k, v)
              if (model.size > cap) {
                const oldest = model.entries().next().value as [number, number]
                model.delete(oldest[0])
                expected = oldest
              }
            }
            assert.equal(map.set(k, v), expected)
          } else if ('delete' in o) {
            assert.is(map.delete(o.delete), model.delete(o.delete))
          } else if ('get' in o) {
            assert.is(map.get(o.get), model.get(o.get))
            assert.is(map.has(o.get), model.has(o.get))
          } else if ('clear' in o) {
            map.clear()
            model.clear()
          } else {
            // Empty it by deleting while walking a copy, as the node does.
            for (const [k] of [...map.entries()]) map.delete(k)
            model.clear()
          }
          assert.is(map.size, model.size)
          assert.equal([...map.entries()], [...model.entries()])
          assert.equal([...map.keys()], [...model.keys()])
          assert.equal([...map.values()], [...model.values()])
        }
      },
    ),
  )
})

test('an empty BoundedMap answers without a Map, and works again once refilled', () => {
  const map = new BoundedMap<string, number>(2)
  assert.is(map.size, 0)
  assert.is(map.get('a'), undefined)
  assert.not.ok(map.has('a'))
  assert.not.ok(map.delete('a'))
  assert.equal([...map.entries()], [])
  map.set('a', 1)
  assert.ok(map.delete('a'))
  assert.is(map.size, 0)
  map.set('b', 2)
  map.set('c', 3)
  assert.equal(map.set('d', 4), ['b', 2])
  assert.equal([...map.keys()], ['c', 'd'])
})

test.run()
