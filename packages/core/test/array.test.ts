// Property test for the tables' in-place array helpers against `Array.prototype.splice` (STYLE.md,
// convention 9). PASTRY_SEED=<seed> replays a run (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { insertAt, removeAt } from '../src/table/array.js'
import { SEED } from './_seed.js'

type Op = { insert: [number, number] } | { remove: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.nat(40), fc.double()).map((insert) => ({ insert })) },
  { weight: 2, arbitrary: fc.nat(40).map((remove) => ({ remove })) },
)

test(`insertAt and removeAt change an array as splice would (seed ${SEED})`, () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
      const items: number[] = []
      const model: number[] = []
      for (const o of ops) {
        if ('insert' in o) {
          // Any index from the front to just past the end.
          const i = o.insert[0] % (items.length + 1)
          insertAt(items, i, o.insert[1])
          model.splice(i, 0, o.insert[1])
        } else if (items.length > 0) {
          const i = o.remove % items.length
          removeAt(items, i)
          model.splice(i, 1)
        }
        assert.equal(items, model)
      }
    }),
  )
})

test.run()
