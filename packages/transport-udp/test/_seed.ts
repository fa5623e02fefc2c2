// The seed of this test process. PASTRY_SEED=<seed> replays a run; otherwise a fresh seed is drawn
// and printed, so that any failure can be replayed (STYLE.md, convention 7). Import it first.
import { createRng, type Rng } from '@pastry/core'

function pickSeed(): number {
  const env = process.env.PASTRY_SEED
  if (env !== undefined && env !== '') {
    const n = Number(env)
    if (!Number.isSafeInteger(n)) throw new Error(`PASTRY_SEED must be an integer, got ${env}`)
    return n | 0
  }
  return (Date.now() ^ (process.pid << 16)) | 0
}

/** The seed of this test process. */
export const SEED = pickSeed()
console.log(`[seed] PASTRY_SEED=${SEED}`)

/** A generator for one test, derived from the seed and the test's label, so tests do not shift each other. */
export function rngFor(label: string): Rng {
  return createRng(`transport-udp/${SEED}`).derive(label)
}
