/*
 * Benchmark: the Id class (four int32 words) against a plain-bigint implementation of the same
 * operations, measured in one run so that the representation choice stands as a ratio
 * (STYLE.md, convention 10).
 *
 * Run: pnpm bench id
 *   or node --conditions=source --import tsx --expose-gc packages/core/bench/id.bench.ts
 *
 * Method. Every task performs BATCH operations per call, walking pre-generated inputs (4096 ids,
 * cycled with an index) and storing each result in a module-level sink, so nothing is constant-
 * folded and tinybench's per-call timer overhead is spread over BATCH operations. ops/s is
 * BATCH / median batch time. Pairs of ids share a uniformly random prefix of 0..127 bits, so
 * compare, sharedPrefixLength and the distance functions reach every word, not only the first.
 * toHex is measured twice for Id: on fresh ids (the first, uncached call; the ids are built
 * outside the timed region) and on ids whose hex is already cached.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { Bench } from 'tinybench'
import { compareDistance, createRng, hashId, Id, type Rng, randomId } from '../src/id/index.js'

// ---------------------------------------------------------------------------------------------
// The plain-bigint equivalent: an id is a bigint in [0, 2^128).

const MASK128 = (1n << 128n) - 1n
const HALF = 1n << 127n
const HEX_RE = /^[0-9a-fA-F]{32}$/
const SHIFT4 = Array.from({ length: 32 }, (_, i) => BigInt(128 - (i + 1) * 4))

function bigParse(hex: string): bigint {
  if (typeof hex !== 'string' || !HEX_RE.test(hex)) throw new Error(`bad id ${hex}`)
  return BigInt(`0x${hex}`)
}
function bigToHex(x: bigint): string {
  return x.toString(16).padStart(32, '0')
}
function bigCompare(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0
}
function bigDigit4(x: bigint, i: number): number {
  return Number((x >> SHIFT4[i]!) & 15n)
}
function bigSharedPrefixLength(a: bigint, b: bigint, bits: number): number {
  const x = a ^ b
  // Each step only runs when the higher bits are zero, so Number() is exact.
  let t = Number(x >> 96n)
  if (t !== 0) return (Math.clz32(t) / bits) | 0
  t = Number(x >> 64n)
  if (t !== 0) return ((32 + Math.clz32(t)) / bits) | 0
  t = Number(x >> 32n)
  if (t !== 0) return ((64 + Math.clz32(t)) / bits) | 0
  t = Number(x)
  if (t !== 0) return ((96 + Math.clz32(t)) / bits) | 0
  return (128 / bits) | 0
}
function bigDistance(a: bigint, b: bigint): bigint {
  const d = (a - b) & MASK128
  return d > HALF ? (b - a) & MASK128 : d
}
function bigCompareDistance(key: bigint, a: bigint, b: bigint): number {
  const da = bigDistance(key, a)
  const db = bigDistance(key, b)
  return da < db ? -1 : da > db ? 1 : bigCompare(a, b)
}
function bigHashId(bytes: Uint8Array): bigint {
  const h = sha256(bytes)
  const v = new DataView(h.buffer, h.byteOffset, 16)
  return (v.getBigUint64(0) << 64n) | v.getBigUint64(8)
}
function bigRandomId(rng: Rng): bigint {
  return (
    (BigInt(rng.u32()) << 96n) | (BigInt(rng.u32()) << 64n) | (BigInt(rng.u32()) << 32n) | BigInt(rng.u32())
  )
}

// ---------------------------------------------------------------------------------------------
// Inputs

const N = 4096
const MASK = N - 1
const BATCH = 1024
const gen = createRng('id-bench')

const words = new Uint32Array(4 * N)
for (let i = 0; i < words.length; i++) words[i] = gen.u32()
const ids: Id[] = []
const bigs: bigint[] = []
const hexes: string[] = []
const nearIds: Id[] = []
const nearBigs: bigint[] = []
const inputs16: Uint8Array[] = []
for (let i = 0; i < N; i++) {
  const x = Id.fromWords(words[4 * i]!, words[4 * i + 1]!, words[4 * i + 2]!, words[4 * i + 3]!)
  const xb = x.toBigInt()
  // A partner sharing exactly k leading bits, k uniform in 0..127.
  const low = BigInt(127 - gen.int(128))
  const yb = xb ^ ((bigRandomId(gen) & ((1n << low) - 1n)) | (1n << low))
  // Hex strings come from the bigint side so that the Id pool's hex cache stays cold.
  hexes.push(bigToHex(xb))
  ids.push(x)
  bigs.push(xb)
  nearIds.push(Id.fromBigInt(yb))
  nearBigs.push(yb)
  inputs16.push(randomId(gen).toBytes())
}
// A separate pool whose hex is cached, for the cached toHex row.
const cachedIds = ids.map((x) => Id.fromWords(x.w0, x.w1, x.w2, x.w3))
for (const x of cachedIds) x.toHex()
// Fresh ids for the uncached toHex row, rebuilt before every batch outside the timed region.
const freshIds: Id[] = new Array<Id>(BATCH)
let freshAt = 0
function refillFresh(): void {
  for (let k = 0; k < BATCH; k++) {
    const j = (freshAt + k) & MASK
    freshIds[k] = Id.fromWords(words[4 * j]!, words[4 * j + 1]!, words[4 * j + 2]!, words[4 * j + 3]!)
  }
  freshAt = (freshAt + BATCH) & MASK
}

let sink: unknown
let acc = 0
let at = 0
const rngId = createRng('id-bench/randomId')
const rngBig = createRng('id-bench/randomId')

// ---------------------------------------------------------------------------------------------
// Tasks: each operation once for Id and once for bigint, run one after the other.

type Op = { name: string; id: () => void; big: () => void; idOpts?: { beforeEach: () => void } }
const ops: Op[] = [
  {
    name: 'parse hex',
    id: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = Id.parse(hexes[at]!)
        at = (at + 1) & MASK
      }
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = bigParse(hexes[at]!)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'toHex (uncached, fresh id)',
    id: () => {
      for (let k = 0; k < BATCH; k++) sink = freshIds[k]!.toHex()
    },
    idOpts: { beforeEach: refillFresh },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = bigToHex(bigs[at]!)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'toHex (cached)',
    id: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = cachedIds[at]!.toHex()
        at = (at + 1) & MASK
      }
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = bigToHex(bigs[at]!)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'compare',
    id: () => {
      for (let k = 0; k < BATCH; k++) {
        acc += ids[at]!.compare(nearIds[at]!)
        at = (at + 1) & MASK
      }
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        acc += bigCompare(bigs[at]!, nearBigs[at]!)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'sharedPrefixLength b=4',
    id: () => {
      for (let k = 0; k < BATCH; k++) {
        acc += ids[at]!.sharedPrefixLength(nearIds[at]!, 4)
        at = (at + 1) & MASK
      }
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        acc += bigSharedPrefixLength(bigs[at]!, nearBigs[at]!, 4)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'digit b=4',
    id: () => {
      for (let k = 0; k < BATCH; k++) {
        acc += ids[at]!.digit(at & 31, 4)
        at = (at + 1) & MASK
      }
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        acc += bigDigit4(bigs[at]!, at & 31)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'distance (allocates result)',
    id: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = ids[at]!.distance(nearIds[at]!)
        at = (at + 1) & MASK
      }
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = bigDistance(bigs[at]!, nearBigs[at]!)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'compareDistance',
    id: () => {
      for (let k = 0; k < BATCH; k++) {
        acc += compareDistance(ids[at]!, nearIds[at]!, nearIds[(at + 7) & MASK]!)
        at = (at + 1) & MASK
      }
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        acc += bigCompareDistance(bigs[at]!, nearBigs[at]!, nearBigs[(at + 7) & MASK]!)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'hashId (16-byte input)',
    id: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = hashId(inputs16[at]!)
        at = (at + 1) & MASK
      }
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) {
        sink = bigHashId(inputs16[at]!)
        at = (at + 1) & MASK
      }
    },
  },
  {
    name: 'randomId',
    id: () => {
      for (let k = 0; k < BATCH; k++) sink = randomId(rngId)
    },
    big: () => {
      for (let k = 0; k < BATCH; k++) sink = bigRandomId(rngBig)
    },
  },
]

// Sanity: both implementations agree on the inputs, so the comparison is like for like.
for (let i = 0; i < N; i++) {
  const a = ids[i]!
  const b = nearIds[i]!
  const c = nearIds[(i + 7) & MASK]!
  const ab = bigs[i]!
  const bb = nearBigs[i]!
  const cb = nearBigs[(i + 7) & MASK]!
  if (
    Id.parse(hexes[i]!).toBigInt() !== bigParse(hexes[i]!) ||
    a.toHex() !== bigToHex(ab) ||
    Math.sign(a.compare(b)) !== bigCompare(ab, bb) ||
    a.sharedPrefixLength(b, 4) !== bigSharedPrefixLength(ab, bb, 4) ||
    a.digit(i & 31, 4) !== bigDigit4(ab, i & 31) ||
    a.distance(b).toBigInt() !== bigDistance(ab, bb) ||
    Math.sign(compareDistance(a, b, c)) !== bigCompareDistance(ab, bb, cb) ||
    hashId(inputs16[i]!).toBigInt() !== bigHashId(inputs16[i]!)
  ) {
    throw new Error(`the Id and bigint implementations disagree on input ${i}`)
  }
}
if (randomId(createRng('x')).toBigInt() !== bigRandomId(createRng('x'))) throw new Error('randomId disagrees')

const bench = new Bench({ time: 500 })
for (const op of ops) {
  bench.add(`Id     ${op.name} ×${BATCH}`, op.id, op.idOpts ?? {})
  bench.add(`bigint ${op.name} ×${BATCH}`, op.big)
}
await bench.run()
console.table(bench.table())

// ---------------------------------------------------------------------------------------------
// Summary

function opsPerSec(name: string): number {
  const r = bench.getTask(name)?.result
  if (r === undefined || r.error !== undefined) return Number.NaN
  const ms = r.latency.p50 ?? r.latency.mean
  return (BATCH * 1000) / ms
}
const fmt = (n: number): string => (Number.isFinite(n) ? `${(n / 1e6).toFixed(2)}M` : 'n/a')
const rows = ops.map((op) => {
  const a = opsPerSec(`Id     ${op.name} ×${BATCH}`)
  const b = opsPerSec(`bigint ${op.name} ×${BATCH}`)
  return [op.name, fmt(a), fmt(b), `${(a / b).toFixed(2)}×`]
})
const header = ['operation', 'Id ops/s', 'bigint ops/s', 'Id / bigint']
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)))
const line = (r: string[]) =>
  r.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join('  ')
console.log(`\nSummary (median of ${BATCH}-operation batches, node ${process.version}, ${process.arch})`)
console.log(line(header))
for (const r of rows) console.log(line(r))

// ---------------------------------------------------------------------------------------------
// Heap bytes per value: (heapUsed after allocating 1,000,000 values − before) / 1e6. The array
// that holds them is allocated before the first reading, so only the values are counted.

const COUNT = 1_000_000
const heapWords = new Uint32Array(4 * COUNT)
for (let i = 0; i < heapWords.length; i++) heapWords[i] = gen.u32()
// Keep the top bit of the first word set so every bigint needs its full 128 bits.
for (let i = 0; i < COUNT; i++) heapWords[4 * i] = heapWords[4 * i]! | 0x80000000

const gc = globalThis.gc
function heapPerValue(make: (i: number) => unknown): number {
  const keep: unknown[] = new Array<unknown>(COUNT).fill(null)
  gc?.()
  gc?.()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < COUNT; i++) keep[i] = make(i)
  gc?.()
  gc?.()
  const after = process.memoryUsage().heapUsed
  sink = keep[COUNT - 1]
  return (after - before) / COUNT
}
const w = heapWords
const idBytes = heapPerValue((i) => Id.fromWords(w[4 * i]!, w[4 * i + 1]!, w[4 * i + 2]!, w[4 * i + 3]!))
const idHexBytes = heapPerValue((i) => {
  const x = Id.fromWords(w[4 * i]!, w[4 * i + 1]!, w[4 * i + 2]!, w[4 * i + 3]!)
  x.toHex()
  return x
})
const bigBytes = heapPerValue(
  (i) =>
    (BigInt(w[4 * i]!) << 96n) |
    (BigInt(w[4 * i + 1]!) << 64n) |
    (BigInt(w[4 * i + 2]!) << 32n) |
    BigInt(w[4 * i + 3]!),
)
console.log(
  `\nHeap bytes per value (${COUNT.toLocaleString('en')} values${gc === undefined ? ', NO --expose-gc: figures are noisy' : ''})`,
)
console.log(`Id                       ${idBytes.toFixed(1)}`)
console.log(`Id after toHex (cached)  ${idHexBytes.toFixed(1)}`)
console.log(`bigint                   ${bigBytes.toFixed(1)}`)
console.log(`Id / bigint              ${(idBytes / bigBytes).toFixed(2)}×`)
if (acc === 0.5 || sink === 0.5) console.log('(unreachable; keeps the sinks alive)')
