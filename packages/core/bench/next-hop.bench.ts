// nextHop calls per second, on the tables of one node that has been offered 10,000 other nodes
// (a full leaf set and a routing table of about log_16 N rows), for keys in and out of leaf range.
// Run: pnpm bench next-hop
import { Bench } from 'tinybench'
import { createRng, Id, LeafSet, nextHop, RoutingTable, randomId } from '../src/index.js'

const rng = createRng('bench-next-hop')
const self = { id: randomId(rng) }
const leafSet = new LeafSet<{ id: Id }>(self.id, 16)
const routingTable = new RoutingTable<{ id: Id }>(self.id, 4)
for (let n = 0; n < 10_000; n++) {
  const node = { id: randomId(rng) }
  leafSet.insert(node)
  routingTable.insert(node, rng.float() * 200)
}
const tables = { self: self.id, b: 4 as const, leafSet, routingTable }
const randomKeys: Id[] = Array.from({ length: 4096 }, () => randomId(rng))
// Keys inside the leaf set's range: midway between self and one of its clockwise leaves.
const M = 1n << 128n
const nearKeys: Id[] = Array.from({ length: 4096 }, (_, k) => {
  const s = self.id.toBigInt()
  const leaf = leafSet.cw(k % leafSet.cwSize).id.toBigInt()
  return Id.fromBigInt((s + ((leaf - s + M) % M) / 2n) % M)
})
let i = 0
let sink = 0
const bench = new Bench({ time: 1000 })
bench
  .add('nextHop, random key (routing-table rule)', () => {
    const d = nextHop(tables, randomKeys[i++ & 4095]!)
    sink += d.type === 'forward' ? 1 : 0
  })
  .add('nextHop, key in leaf-set range', () => {
    const d = nextHop(tables, nearKeys[i++ & 4095]!)
    sink += d.type === 'forward' ? 1 : 0
  })
  .add('nextHop, random key, one suspect excluded', () => {
    const d = nextHop(tables, randomKeys[i++ & 4095]!, (n) => n === routingTable.get(0, 0))
    sink += d.type === 'forward' ? 1 : 0
  })
await bench.run()
console.table(
  bench.tasks.map((t) => ({
    task: t.name,
    'ops/s': Math.round(t.result?.throughput.mean ?? 0).toLocaleString('en-US'),
    'ns/op': ((t.result?.latency.mean ?? 0) * 1e6).toFixed(0),
  })),
)
if (sink < 0) console.log(sink)
