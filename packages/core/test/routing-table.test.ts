// Property and unit tests for the routing table against a reference model: a map from cell to the
// entry and its proximity, with digits and shared prefixes computed on bigints (STYLE.md,
// convention 9). PASTRY_SEED=<seed> replays a run (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type DigitBits, Id, RoutingTable } from '../src/index.js'
import { big, id, MAX, refDigit, refSharedPrefix } from './_ref.js'
import { SEED } from './_seed.js'

const BS: readonly DigitBits[] = [1, 2, 4, 8]

interface Node {
  readonly id: Id
  readonly tag: number
}

interface Cell {
  readonly id: bigint
  readonly proximityMs: number
  readonly tag: number
}

/**
 * Per cell, the entry offered with the lowest proximity; a strictly lower proximity is needed to
 * replace it, so ties keep the first. Re-offering the entry updates its proximity and handle.
 * Remove clears the cell (it does not bring back an earlier candidate).
 */
class RefTable {
  readonly cells = new Map<string, Cell>()
  constructor(
    readonly self: bigint,
    readonly b: DigitBits,
  ) {}
  cellOf(x: bigint): string | undefined {
    const row = refSharedPrefix(this.self, x, this.b)
    return row === 128 / this.b ? undefined : `${row},${refDigit(x, row, this.b)}`
  }
  insert(x: bigint, proximityMs: number, tag: number): boolean {
    const key = this.cellOf(x)
    if (key === undefined) return false
    const present = this.cells.get(key)
    if (present === undefined || (present.id !== x && proximityMs < present.proximityMs)) {
      this.cells.set(key, { id: x, proximityMs, tag })
      return true
    }
    if (present.id === x) {
      this.cells.set(key, { id: x, proximityMs, tag })
      return present.proximityMs !== proximityMs
    }
    return false
  }
  remove(x: bigint): boolean {
    const key = this.cellOf(x)
    if (key === undefined || this.cells.get(key)?.id !== x) return false
    this.cells.delete(key)
    return true
  }
}

// ---------------------------------------------------------------------------------------------
// Generators: ids sharing a chosen number of leading bits with self, so that every row is reached,
// and a few proximities so that ties happen.

const anyBig = fc.bigInt({ min: 0n, max: MAX })
const selfArb = fc.oneof(anyBig, fc.constantFrom(0n, MAX, 1n << 127n, (1n << 127n) - 1n))
/** An id sharing exactly k leading bits with self (k = 128: self itself). */
const relArb: fc.Arbitrary<(self: bigint) => bigint> = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 128 }), anyBig).map(([k, r]) => (s: bigint) => {
    if (k === 128) return s
    const low = 127 - k
    return s ^ ((r & ((1n << BigInt(low)) - 1n)) | (1n << BigInt(low)))
  }),
  anyBig.map((x) => () => x),
)
const proxArb = fc.oneof(
  fc.integer({ min: 0, max: 4 }),
  fc.double({ min: 0, max: 500, noNaN: true }),
  fc.constant(Number.POSITIVE_INFINITY),
)
type Op =
  | { readonly kind: 'insert'; readonly at: number; readonly proximityMs: number }
  | { readonly kind: 'remove'; readonly at: number }
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), proximityMs: proxArb }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }), weight: 1 },
)
const scenario = fc.constantFrom(...BS).chain((b) =>
  selfArb.chain((self) =>
    fc.record({
      b: fc.constant(b),
      self: fc.constant(self),
      pool: fc.array(relArb, { minLength: 1, maxLength: 40 }).map((fs) => fs.map((f) => f(self))),
      ops: fc.array(opArb, { minLength: 1, maxLength: 80 }),
    }),
  ),
)
const PARAMS = { numRuns: 800, includeErrorInReport: true } as const

function checkState(rt: RoutingTable<Node>, ref: RefTable, pool: readonly bigint[]): void {
  const { self, b } = ref
  const columns = 1 << b
  assert.is(rt.columns, columns)
  assert.is(rt.maxRows, 128 / b)
  assert.ok(rt.rowCount <= rt.maxRows)
  let count = 0
  for (const e of rt.entries()) {
    count++
    const x = big(e.node.id)
    assert.is(refSharedPrefix(self, x, b), e.row, `entry ${x.toString(16)} shares exactly its row's digits`)
    assert.is(refDigit(x, e.row, b), e.col, 'the entry sits in the column of its digit r')
    assert.is.not(e.col, refDigit(self, e.row, b), "the owner's own column stays empty")
    const want = ref.cells.get(`${e.row},${e.col}`)
    assert.ok(want !== undefined, `unexpected entry at (${e.row}, ${e.col})`)
    assert.is(x, want.id, `cell (${e.row}, ${e.col})`)
    assert.is(e.proximityMs, want.proximityMs)
    assert.is(e.node.tag, want.tag, 'the latest handle')
    assert.is(rt.proximityAt(e.row, e.col), want.proximityMs)
    assert.ok(e.row < rt.rowCount)
  }
  assert.is(count, ref.cells.size, 'entries() lists every cell of the reference')
  assert.is(rt.size, ref.cells.size, 'size counts entries')
  assert.ok(rt.size <= (128 / b) * columns, 'bounded by (128/b)·2^b')
  assert.is([...rt].length, count)
  for (let r = 0; r < rt.rowCount + 1; r++) {
    const own = r < 128 / b ? refDigit(self, r, b) : -1
    const rowEntries: bigint[] = []
    for (let c = 0; c < columns; c++) {
      const want = ref.cells.get(`${r},${c}`)
      const got = rt.get(r, c)
      assert.is(got === undefined ? undefined : big(got.id), want?.id, `get(${r}, ${c})`)
      if (c === own) assert.is(got, undefined, 'own column')
      if (want === undefined) assert.is(rt.proximityAt(r, c), Number.POSITIVE_INFINITY)
      else rowEntries.push(want.id)
    }
    assert.equal(
      rt.row(r).map((n) => big(n.id)),
      rowEntries,
    )
  }
  for (const x of pool) {
    const key = ref.cellOf(x)
    assert.is(
      rt.contains(id(x)),
      key !== undefined && ref.cells.get(key)?.id === x,
      `contains ${x.toString(16)}`,
    )
    const cell = rt.cellOf(id(x))
    if (key === undefined) assert.is(cell, undefined, 'self has no cell')
    else assert.is(`${cell?.row},${cell?.col}`, key)
  }
}

test(`insert/remove sequences match the per-cell reference for b in {1, 2, 4, 8} (seed ${SEED})`, () => {
  fc.assert(
    fc.property(scenario, ({ b, self, pool, ops }) => {
      const rt = new RoutingTable<Node>(id(self), b)
      const ref = new RefTable(self, b)
      assert.is(rt.b, b)
      assert.is(rt.size, 0)
      assert.is(rt.rowCount, 0)
      ops.forEach((op, n) => {
        const x = pool[op.at % pool.length]!
        if (op.kind === 'insert') {
          const want = ref.insert(x, op.proximityMs, n)
          assert.is(rt.insert({ id: id(x), tag: n }, op.proximityMs), want, `insert ${x.toString(16)}`)
        } else {
          assert.is(rt.remove(id(x)), ref.remove(x), `remove ${x.toString(16)}`)
        }
        checkState(rt, ref, pool)
      })
    }),
    PARAMS,
  )
})

test('the default proximity is 0, so the first node offered for a cell stays', () => {
  const self = 0n
  const rt = new RoutingTable<Node>(id(self), 4)
  const a = 0x1000_0000_0000_0000_0000_0000_0000_0000n
  const c = 0x1fff_0000_0000_0000_0000_0000_0000_0000n
  assert.ok(rt.insert({ id: id(a), tag: 1 }))
  assert.not.ok(rt.insert({ id: id(c), tag: 2 }), 'an equal proximity does not replace')
  assert.is(big(rt.get(0, 1)!.id), a)
  assert.is(rt.proximityAt(0, 1), 0)
  assert.ok(rt.insert({ id: id(a), tag: 3 }, 5), 're-offering the entry updates its proximity')
  assert.not.ok(rt.insert({ id: id(a), tag: 4 }, 5), 'the same proximity again changes nothing')
  assert.is(rt.get(0, 1)!.tag, 4, 'but the handle is taken up')
  assert.not.ok(rt.insert({ id: id(c), tag: 5 }, 5), 'a tie keeps the first')
  assert.ok(rt.insert({ id: id(c), tag: 6 }, 3), 'a strictly lower proximity replaces')
  assert.is(big(rt.get(0, 1)!.id), c)
  assert.is(rt.proximityAt(0, 1), 3)
  assert.not.ok(rt.remove(id(a)), 'a node not in its cell is not removed')
  assert.ok(rt.remove(id(c)))
  assert.is(rt.get(0, 1), undefined)
  assert.not.ok(rt.remove(id(c)))
  assert.not.ok(rt.insert({ id: id(self), tag: 0 }), 'self has no cell')
  assert.is(rt.size, 0)
})

test('rows are allocated on first use, up to the row of the deepest entry', () => {
  const self = 0xabcd_0000_0000_0000_0000_0000_0000_0000n
  const rt = new RoutingTable<Node>(id(self), 4)
  assert.is(rt.rowCount, 0)
  assert.equal(rt.row(5), [])
  rt.insert({ id: id(0xabc0_0000_0000_0000_0000_0000_0000_0000n), tag: 0 }) // row 3, col 0
  assert.is(rt.rowCount, 4)
  assert.is(rt.size, 1)
  assert.is(big(rt.get(3, 0)!.id), 0xabc0_0000_0000_0000_0000_0000_0000_0000n)
  assert.is(rt.get(0, 0), undefined)
  assert.is(rt.get(9, 0), undefined, 'rows past rowCount read as empty')
})

for (const b of BS) {
  test(`a full table for b = ${b} holds (128/b)·(2^b - 1) entries and no more`, () => {
    const self = id(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210n)
    const rt = new RoutingTable<Node>(self, b)
    const rows = 128 / b
    const cols = 1 << b
    let n = 0
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const other = self.withDigit(r, b, c)
        const took = rt.insert({ id: other, tag: n++ }, 10)
        assert.is(took, c !== self.digit(r, b), `(${r}, ${c})`)
      }
    }
    assert.is(rt.size, rows * (cols - 1))
    assert.is(rt.rowCount, rows)
    // Nearer candidates replace entries but never add one.
    for (let r = 0; r < rows; r += Math.max(1, rows >> 3)) {
      const own = self.digit(r, b)
      const c = (own + 1) % cols
      const nearer = self.withDigit(r, b, c).add(Id.fromBigInt(1n))
      if (rt.cellOf(nearer)?.row !== r) continue
      assert.ok(rt.insert({ id: nearer, tag: -1 }, 1))
      assert.ok(rt.get(r, c)!.id.equals(nearer))
    }
    assert.is(rt.size, rows * (cols - 1))
    assert.ok(rt.size <= rows * cols)
  })
}

test.run()
