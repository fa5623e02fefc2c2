// Seeds for randomised tests. PASTRY_SEED=<seed> replays a run; otherwise a fresh seed is drawn and
// printed, so that any failure can be replayed (STYLE.md, convention 7). Modelled on
// packages/core/test/_seed.ts; import it first.
import fc from 'fast-check'

function pickSeed(): number {
  const env = process.env.PASTRY_SEED
  if (env !== undefined && env !== '') {
    const n = Number(env)
    if (!Number.isSafeInteger(n)) throw new Error(`PASTRY_SEED must be an integer, got ${env}`)
    return n | 0
  }
  return (Date.now() ^ (process.pid << 16)) | 0
}

/** The seed of this test process. fast-check uses it for every property; failures print `{ seed, path }`. */
export const SEED = pickSeed()
fc.configureGlobal({ seed: SEED })
console.log(`[seed] PASTRY_SEED=${SEED}`)
