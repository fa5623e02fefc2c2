// The seed of this test process (testkit's seedFromEnv): PASTRY_SEED=<seed> replays a run; otherwise
// a fresh seed is drawn and printed, so that any failure can be replayed (STYLE.md, convention 7).
// Import it first.
import { createRng, type Rng } from '@pastry/core'
import { seedFromEnv } from '@pastry/testkit'

/** The seed of this test process. */
export const SEED = seedFromEnv()

/** A generator for one test, derived from the seed and the test's label, so tests do not shift each other. */
export function rngFor(label: string): Rng {
  return createRng(`transport-udp/${SEED}`).derive(label)
}
