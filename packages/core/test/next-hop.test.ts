// Unit tests for nextHop on hand-built tables, and properties against a reference decision written
// with bigints (STYLE.md, convention 9). PASTRY_SEED=<seed> replays a run (convention 7).

import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  type DigitBits,
  type Id,
  LeafSet,
  NeighbourhoodSet,
  nextHop,
  type RouteDecision,
  type RouteTables,
  RoutingTable,
} from '../src/index.js'
import { big, id, MAX, mod, refCompareDistance, refDigit, refSharedPrefix } from './_ref.js'
import { SEED } from './_seed.js'

// ---------------------------------------------------------------------------------------------
// Reference math on bigints.

interface Node {
  readonly id: Id
}
const node = (x: bigint): Node => ({ id: id(x) })

type RefDecision = { type: 'deliver' } | { type: 'forward'; id: bigint; rule: string }

/**
 * Pastry's decision, written plainly: (1) within the leaf set's range, the closest of self and the
 * usable leaves; (2) else the usable routing-table cell (l, key digit l), or, when members of row
 * l's cells are known, the closest of the usable cell entry and the usable members in the key's
 * cell or strictly closer than self; (3) else the closest usable known node that shares at least l
 * digits and is strictly closer than self; else deliver.
 */
function refNextHop(
  self: bigint,
  b: DigitBits,
  cw: readonly bigint[],
  ccw: readonly bigint[],
  cells: ReadonlyMap<string, bigint>,
  extra: readonly bigint[],
  key: bigint,
  excluded: ReadonlySet<bigint>,
  rowMembers: ReadonlyMap<number, readonly bigint[]> = new Map(),
): RefDecision {
  const usable = (x: bigint) => !excluded.has(x)
  const cwFar = cw[cw.length - 1]
  const ccwFar = ccw[ccw.length - 1]
  const inRange =
    (cwFar === undefined && ccwFar === undefined) ||
    (ccwFar !== undefined && mod(self - key) <= mod(self - ccwFar)) ||
    (cwFar !== undefined && mod(key - self) <= mod(cwFar - self))
  const closest = (candidates: readonly bigint[]) =>
    candidates.reduce((best, x) => (refCompareDistance(key, x, best) < 0 ? x : best), self)
  if (inRange) {
    const best = closest([...cw, ...ccw].filter(usable))
    return best === self ? { type: 'deliver' } : { type: 'forward', id: best, rule: 'leafSet' }
  }
  const l = refSharedPrefix(self, key, b)
  const col = refDigit(key, l, b)
  const cell = cells.get(`${l},${col}`)
  const row = rowMembers.get(l) ?? []
  if (row.length > 0) {
    const candidates = [
      ...(cell !== undefined && usable(cell) ? [cell] : []),
      ...row.filter((x) => usable(x) && (refDigit(x, l, b) === col || refCompareDistance(key, x, self) < 0)),
    ]
    if (candidates.length > 0) {
      const pick = candidates.reduce((best, x) => (refCompareDistance(key, x, best) < 0 ? x : best))
      return { type: 'forward', id: pick, rule: refDigit(pick, l, b) === col ? 'routingTable' : 'rare' }
    }
  } else if (cell !== undefined && usable(cell)) return { type: 'forward', id: cell, rule: 'routingTable' }
  const rows = [...cells].filter(([k]) => Number(k.split(',')[0]) >= l).map(([, x]) => x)
  const best = closest(
    [...cw, ...ccw, ...rows, ...extra].filter((x) => usable(x) && refSharedPrefix(x, key, b) >= l),
  )
  return best === self ? { type: 'deliver' } : { type: 'forward', id: best, rule: 'rare' }
}

const show = (d: RouteDecision<Node>): RefDecision =>
  d.type === 'deliver' ? { type: 'deliver' } : { type: 'forward', id: big(d.node.id), rule: d.rule }

// ---------------------------------------------------------------------------------------------
// Hand-built tables: b = 4, self = 0x8000…0, a full leaf set of L = 4 at ±0x10 and ±0x20.

const S = 0x8000_0000_0000_0000_0000_0000_0000_0000n
const hex = (h: string): bigint => BigInt(`0x${h.padEnd(32, '0')}`)
const LEAVES = [S + 0x10n, S + 0x20n, S - 0x10n, S - 0x20n]
const RT_ENTRIES = [hex('1234'), hex('c0'), hex('90'), hex('83'), hex('8a5')]

function handBuilt(extra?: readonly bigint[]): RouteTables<Node> {
  const leafSet = new LeafSet<Node>(id(S), 4)
  for (const x of LEAVES) leafSet.insert(node(x))
  const routingTable = new RoutingTable<Node>(id(S), 4)
  for (const x of RT_ENTRIES) routingTable.insert(node(x))
  assert.ok(leafSet.isFull)
  return {
    self: id(S),
    b: 4,
    leafSet,
    routingTable,
    ...(extra === undefined ? {} : { extra: extra.map(node) }),
  }
}

function decide(tables: RouteTables<Node>, key: bigint, exclude?: readonly bigint[]): RefDecision {
  const ex = exclude === undefined ? undefined : new Set(exclude)
  return show(nextHop(tables, id(key), ex === undefined ? undefined : (n) => ex.has(big(n.id))))
}
const fwd = (x: bigint, rule: string): RefDecision => ({ type: 'forward', id: x, rule })
const DELIVER: RefDecision = { type: 'deliver' }

test('deliver when self is the closest and the key is in leaf-set range', () => {
  const t = handBuilt()
  for (const key of [S, S + 1n, S + 7n, S + 8n, S - 1n, S - 7n]) assert.equal(decide(t, key), DELIVER)
  // Ties go to the smaller id: S + 8 is 8 from S and from S + 0x10, S - 8 is 8 from S - 0x10 and S.
  assert.equal(decide(t, S + 9n), fwd(S + 0x10n, 'leafSet'))
  assert.equal(decide(t, S - 8n), fwd(S - 0x10n, 'leafSet'))
})

test('forward to the numerically closest leaf', () => {
  const t = handBuilt()
  assert.equal(decide(t, S + 0x1en), fwd(S + 0x20n, 'leafSet'))
  assert.equal(decide(t, S + 0x20n), fwd(S + 0x20n, 'leafSet'))
  assert.equal(decide(t, S - 0x19n), fwd(S - 0x20n, 'leafSet'))
  assert.equal(decide(t, S - 0x18n), fwd(S - 0x20n, 'leafSet'), 'tie at 8: the smaller id')
  assert.equal(decide(t, S - 0x17n), fwd(S - 0x10n, 'leafSet'))
})

test('the routing-table rule when the key is out of leaf-set range', () => {
  const t = handBuilt()
  assert.equal(decide(t, hex('13')), fwd(hex('1234'), 'routingTable'))
  assert.equal(decide(t, hex('cfff')), fwd(hex('c0'), 'routingTable'))
  assert.equal(decide(t, hex('8a')), fwd(hex('8a5'), 'routingTable'), 'row 1, digit a')
  // Just outside the leaf set's ends the key shares long prefixes with self; row l's cell is empty,
  // so the rare case takes the farthest leaf on that side, which is closer.
  assert.equal(decide(t, S + 0x21n), fwd(S + 0x20n, 'rare'))
  assert.equal(decide(t, S - 0x21n), fwd(S - 0x20n, 'rare'))
})

test('the rare case: empty cell, forward to the closest node sharing at least l digits', () => {
  // 0x2000…: row 0 column 2 is empty. 0x1234… is the closest known node (shares 0 = l digits).
  assert.equal(decide(handBuilt(), hex('2')), fwd(hex('1234'), 'rare'))
  // 0x8f…: l = 1, row 1 column f is empty. 0x90… is numerically the closest but shares 0 digits
  // with the key, so it does not qualify; of those sharing "8", the row-1 entry 0x8a5… is closest.
  assert.equal(decide(handBuilt(), hex('8f')), fwd(hex('8a5'), 'rare'))
  assert.equal(decide(handBuilt(), hex('8f'), [hex('8a5')]), fwd(hex('83'), 'rare'), 'then 0x83…')
  assert.equal(decide(handBuilt(), hex('8f'), [hex('8a5'), hex('83')]), fwd(S + 0x20n, 'rare'), 'then a leaf')
  // 0x7f…: row 0 column 7 is empty; an extra candidate (the neighbourhood set) is the closest.
  const near = hex('7f') + 5n
  assert.equal(decide(handBuilt([near]), hex('7f')), fwd(near, 'rare'))
  // The neighbourhood set itself can serve as `extra`.
  const ns = new NeighbourhoodSet<Node>(id(S), 4)
  ns.insert(node(near), 3)
  assert.equal(show(nextHop({ ...handBuilt(), extra: ns }, id(hex('7f')))), fwd(near, 'rare'))
  // With no usable closer node, deliver.
  assert.equal(decide(handBuilt(), hex('7f'), [...LEAVES, ...RT_ENTRIES]), DELIVER)
})

test('exclude skips a suspected leaf', () => {
  const t = handBuilt()
  assert.equal(decide(t, S + 0x1en, [S + 0x20n]), fwd(S + 0x10n, 'leafSet'))
  assert.equal(decide(t, S + 0x1en, [S + 0x20n, S + 0x10n]), DELIVER, 'no usable leaf is closer')
  assert.equal(decide(t, S - 0x19n, [S - 0x20n]), fwd(S - 0x10n, 'leafSet'))
})

test('exclude skips a suspected routing-table entry and falls back to the rare case', () => {
  const t = handBuilt()
  // 0x13…: the cell holds 0x1234…; without it the closest qualifying node is 0xc0…
  // (0x53… away, against 0x6d… for self and 0x6c…ffe0 for the farthest ccw leaf S - 0x20).
  assert.equal(decide(t, hex('13'), [hex('1234')]), fwd(hex('c0'), 'rare'))
  assert.equal(decide(t, hex('13'), [hex('1234'), hex('c0')]), fwd(S - 0x20n, 'rare'))
  // A suspected extra is skipped too.
  const near = hex('7f') + 5n
  assert.equal(decide(handBuilt([near]), hex('7f'), [near]), fwd(S - 0x20n, 'rare'))
})

test('row members: the closest of the entry and the members in the key cell or closer than self', () => {
  const withRow0 = (xs: readonly bigint[]): RouteTables<Node> => ({
    ...handBuilt(),
    ...rowMembersOf(new Map([[0, [...xs]]])),
  })
  // 0x13…: the row-0 cell holds 0x1234…; a known member of the same cell closer to the key wins,
  // and, sharing the key's first digit, is a routing-table forward.
  const inCell = hex('13') + 7n
  assert.equal(decide(withRow0([inCell]), hex('13')), fwd(inCell, 'routingTable'))
  // A member of another cell, across the key cell's edge, that is closer still (and closer than
  // self) wins as a rare-case forward: it shares l digits, not l + 1.
  const across = hex('2')
  assert.equal(decide(withRow0([inCell, across]), hex('1fff')), fwd(across, 'rare'))
  // An excluded member is skipped: the entry again.
  assert.equal(decide(withRow0([inCell]), hex('13'), [inCell]), fwd(hex('1234'), 'routingTable'))
  // The key's cell is empty (0x2…): a member in it is taken.
  const inEmpty = hex('21')
  assert.equal(decide(withRow0([inEmpty]), hex('2')), fwd(inEmpty, 'routingTable'))
  // Members of rows other than the key's row l play no part: 0x8a… is routed by row 1.
  assert.equal(decide(withRow0([inCell, across]), hex('8a')), fwd(hex('8a5'), 'routingTable'))
})

test('alone (empty tables): deliver every key', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: MAX }),
      fc.bigInt({ min: 0n, max: MAX }),
      fc.constantFrom<DigitBits>(1, 2, 4, 8),
      (self, key, b) => {
        const t: RouteTables<Node> = {
          self: id(self),
          b,
          leafSet: new LeafSet<Node>(id(self), 16),
          routingTable: new RoutingTable<Node>(id(self), b),
        }
        assert.equal(show(nextHop(t, id(key))), DELIVER)
      },
    ),
    { numRuns: 200 },
  )
})

// ---------------------------------------------------------------------------------------------
// Properties on random small tables.

const anyBig = fc.bigInt({ min: 0n, max: MAX })
/** An id as a function of self: anywhere, near 0 or 2^128-1, close to self, or sharing k bits. */
const relArb: fc.Arbitrary<(self: bigint) => bigint> = fc.oneof(
  anyBig.map((x) => () => x),
  fc.bigInt({ min: 0n, max: 32n }).map((x) => () => x),
  fc.bigInt({ min: MAX - 32n, max: MAX }).map((x) => () => x),
  fc.bigInt({ min: -64n, max: 64n }).map((d) => (s: bigint) => mod(s + d)),
  fc.tuple(fc.integer({ min: 0, max: 127 }), anyBig).map(
    ([k, r]) =>
      (s: bigint) =>
        s ^ ((r & ((1n << BigInt(127 - k)) - 1n)) | (1n << BigInt(127 - k))),
  ),
)
const scenario = fc
  .record({ b: fc.constantFrom<DigitBits>(1, 2, 4), size: fc.constantFrom(2, 4, 8), self: anyBig })
  .chain(({ b, size, self }) => {
    const ids = (min: number, max: number) =>
      fc.array(relArb, { minLength: min, maxLength: max }).map((fs) => fs.map((f) => f(self)))
    return fc.record({
      b: fc.constant(b),
      size: fc.constant(size),
      self: fc.constant(self),
      leaves: ids(0, 16),
      removed: fc.array(fc.nat(), { maxLength: 3 }),
      entries: fc.array(
        fc.tuple(
          relArb.map((f) => f(self)),
          fc.integer({ min: 0, max: 9 }),
        ),
        { maxLength: 24 },
      ),
      extra: ids(0, 4),
      members: ids(0, 8),
      keys: ids(1, 8),
      excludeMask: fc.array(fc.boolean(), { maxLength: 60 }),
    })
  })

/** Known row members by row: each id other than self goes in the row of the prefix it shares with self. */
function byRow(self: bigint, b: DigitBits, members: readonly bigint[]): Map<number, bigint[]> {
  const rows = new Map<number, bigint[]>()
  for (const x of members) {
    if (x === self) continue
    const r = refSharedPrefix(self, x, b)
    rows.set(r, [...(rows.get(r) ?? []), x])
  }
  return rows
}

/** The `rowMembers` field for tables, or nothing when no row has members. */
function rowMembersOf(rows: ReadonlyMap<number, readonly bigint[]>): Pick<RouteTables<Node>, 'rowMembers'> {
  if (rows.size === 0) return {}
  const lists = new Map([...rows].map(([r, xs]) => [r, xs.map(node)]))
  return { rowMembers: (row) => lists.get(row) }
}

test(`nextHop equals the reference decision on random small tables (seed ${SEED})`, () => {
  fc.assert(
    fc.property(
      scenario,
      ({ b, size, self, leaves, removed, entries, extra, members, keys, excludeMask }) => {
        const leafSet = new LeafSet<Node>(id(self), size)
        for (const x of leaves) leafSet.insert(node(x))
        for (const r of removed) if (leaves.length > 0) leafSet.remove(id(leaves[r % leaves.length]!))
        const routingTable = new RoutingTable<Node>(id(self), b)
        for (const [x, p] of entries) routingTable.insert(node(x), p)
        const cells = new Map<string, bigint>()
        for (const e of routingTable.entries()) cells.set(`${e.row},${e.col}`, big(e.node.id))
        const rows = byRow(self, b, members)
        const tables: RouteTables<Node> = {
          self: id(self),
          b,
          leafSet,
          routingTable,
          extra: extra.map(node),
          ...rowMembersOf(rows),
        }
        const known = [...new Set([...leaves, ...entries.map(([x]) => x), ...extra, ...members])]
        const excluded = new Set(known.filter((_, i) => excludeMask[i] === true))
        const cw = leafSet.cwMembers().map((m) => big(m.id))
        const ccw = leafSet.ccwMembers().map((m) => big(m.id))
        for (const key of [...keys, ...known]) {
          for (const ex of [new Set<bigint>(), excluded]) {
            const got = show(nextHop(tables, id(key), ex.size === 0 ? undefined : (n) => ex.has(big(n.id))))
            const want = refNextHop(self, b, cw, ccw, cells, extra, key, ex, rows)
            assert.equal(got, want, `key ${key.toString(16)}`)
            if (got.type === 'forward') {
              assert.is.not(got.id, self, 'never forwards to itself')
              assert.not.ok(ex.has(got.id), 'never forwards to an excluded node')
            }
          }
        }
      },
    ),
    { numRuns: 800, includeErrorInReport: true },
  )
})

test(`a forward is strictly closer to the key than self, or shares a strictly longer prefix (seed ${SEED})`, () => {
  fc.assert(
    fc.property(scenario, ({ b, size, self, leaves, entries, extra, members, keys, excludeMask }) => {
      const leafSet = new LeafSet<Node>(id(self), size)
      for (const x of leaves) leafSet.insert(node(x))
      const routingTable = new RoutingTable<Node>(id(self), b)
      for (const [x, p] of entries) routingTable.insert(node(x), p)
      const tables: RouteTables<Node> = {
        self: id(self),
        b,
        leafSet,
        routingTable,
        extra: extra.map(node),
        ...rowMembersOf(byRow(self, b, members)),
      }
      const excluded = new Set(leaves.filter((_, i) => excludeMask[i] === true))
      for (const key of keys) {
        for (const ex of [undefined, (n: Node) => excluded.has(big(n.id))]) {
          const d = nextHop(tables, id(key), ex)
          if (d.type === 'deliver') continue
          const v = big(d.node.id)
          const closer = refCompareDistance(key, v, self) < 0
          const longer = refSharedPrefix(v, key, b) > refSharedPrefix(self, key, b)
          assert.ok(
            closer || longer,
            `forward ${self.toString(16)} → ${v.toString(16)} for ${key.toString(16)}`,
          )
          if (d.rule === 'routingTable') assert.ok(longer, 'a routing-table forward lengthens the prefix')
          else assert.ok(closer, `a ${d.rule} forward is strictly closer`)
          if (d.rule === 'rare') assert.ok(refSharedPrefix(v, key, b) >= refSharedPrefix(self, key, b))
        }
      }
    }),
    { numRuns: 800, includeErrorInReport: true },
  )
})

test.run()
