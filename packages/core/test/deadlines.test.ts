// Property test for the machine's deadline heap against a reference model: a list kept sorted by
// (time, insertion order) (STYLE.md, convention 9). PASTRY_SEED=<seed> replays a run (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DEADLINE_KINDS, DeadlineHeap, type DeadlineKind } from '../src/protocol/deadlines.js'
import { SEED } from './_seed.js'

type Op = { push: [number, DeadlineKind, number] } | { pop: true } | { clear: true }

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .tuple(
        // Few distinct times, so that ties (broken by insertion order) are common.
        fc.oneof(fc.integer({ min: 0, max: 8 }), fc.double({ min: 0, max: 1e9, noNaN: true })),
        fc.constantFrom(...DEADLINE_KINDS),
        fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constant(Number.MAX_SAFE_INTEGER)),
      )
      .map((push) => ({ push })),
  },
  { weight: 4, arbitrary: fc.constant({ pop: true as const }) },
  { weight: 1, arbitrary: fc.constant({ clear: true as const }) },
)

test(`deadlines come out by time, ties in insertion order, with their kind and key (seed ${SEED})`, () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 20, maxLength: 400, size: 'max' }), (ops) => {
      const heap = new DeadlineHeap()
      let model: { at: number; seq: number; kind: DeadlineKind; key: number }[] = []
      let seq = 0
      for (const o of ops) {
        if ('push' in o) {
          const [at, kind, key] = o.push
          heap.push(at, kind, key)
          model.push({ at, seq: seq++, kind, key })
          model.sort((a, b) => a.at - b.at || a.seq - b.seq)
        } else if ('pop' in o) {
          const first = model.shift()
          if (first === undefined) {
            assert.is(heap.pop(), false)
          } else {
            assert.is(heap.peekAt(), first.at)
            assert.is(heap.peekKind(), first.kind)
            assert.is(heap.peekKey(), first.key)
            assert.is(heap.pop(), true)
            assert.is(heap.topKind, first.kind)
            assert.is(heap.topKey, first.key)
          }
        } else {
          heap.clear()
          model = []
        }
        assert.is(heap.size, model.length)
        assert.is(heap.peekAt(), model[0]?.at)
      }
    }),
  )
})

test('a burst of deadlines drains in order, and the heap keeps working after it shrinks', () => {
  const heap = new DeadlineHeap()
  for (let i = 999; i >= 0; i--) heap.push(i, 'probe', i)
  for (let i = 0; i < 990; i++) {
    assert.ok(heap.pop())
    assert.is(heap.topKey, i)
  }
  heap.push(0.5, 'ack', 7)
  assert.is(heap.peekKey(), 7)
  assert.is(heap.peekKind(), 'ack')
  const keys: number[] = []
  while (heap.pop()) keys.push(heap.topKey)
  assert.equal(keys, [7, 990, 991, 992, 993, 994, 995, 996, 997, 998, 999])
})

test.run()
