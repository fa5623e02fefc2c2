// Wire codec throughput: encode and decode of a routed message and of a join reply.
// Run: node --conditions=source --import tsx packages/core/bench/wire.bench.ts   (or `pnpm bench wire`)
// The join reply is what the default configuration (L = 16, b = 4) sends: a full leaf set of 16
// handles and 3 routing-table rows of 15 entries each.

import { Bench } from 'tinybench'
import { Id } from '../src/id/id.js'
import { decodeMessage, encodeMessage, type Message, type NodeHandle } from '../src/wire/index.js'

const handle = (i: number): NodeHandle => ({
  id: Id.fromWords(i * 0x9e3779b9, i * 0x85ebca6b, i * 0xc2b2ae35, i),
  address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:${4000 + (i % 1000)}`,
})

const route: Message = {
  type: 'route',
  from: handle(1),
  msgId: 123_456,
  key: handle(99).id,
  origin: handle(2),
  hops: 3,
  app: 'pubsub',
  payload: new Uint8Array(100).map((_, i) => i),
}

const joinReply: Message = {
  type: 'joinReply',
  from: handle(1),
  leafSet: Array.from({ length: 16 }, (_, i) => handle(100 + i)),
  rows: [0, 1, 2].map((row) => ({
    row,
    entries: Array.from({ length: 15 }, (_, i) => handle(1000 * row + i)),
  })),
}

const cases = [
  { name: 'route (100-byte payload)', message: route },
  { name: 'joinReply (16 leaves, 3 rows x 15)', message: joinReply },
]

const bench = new Bench({ time: 1000, warmupTime: 250 })
const sizes = new Map<string, number>()
for (const { name, message } of cases) {
  const frame = encodeMessage(message)
  const check = decodeMessage(frame)
  if (!check.ok) throw new Error(`${name} does not decode: ${check.error.message}`)
  sizes.set(`encode ${name}`, frame.length)
  sizes.set(`decode ${name}`, frame.length)
  bench.add(`encode ${name}`, () => {
    encodeMessage(message)
  })
  bench.add(`decode ${name}`, () => {
    const r = decodeMessage(frame)
    if (!r.ok) throw new Error(r.error.message)
  })
}

await bench.run()

console.table(
  bench.tasks.map((task) => {
    const result = task.result
    const opsPerSec = result?.throughput.mean ?? Number.NaN
    return {
      task: task.name,
      'frame bytes': sizes.get(task.name),
      'ops/sec': Math.round(opsPerSec),
      'µs/op': Number((1e6 / opsPerSec).toFixed(2)),
      'rme %': Number((result?.latency.rme ?? Number.NaN).toFixed(2)),
      samples: result?.latency.samples.length,
    }
  }),
)
