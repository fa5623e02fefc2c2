/**
 * The seed of a randomised run. `PASTRY_SEED` in the environment replays a run; otherwise a fresh
 * seed is drawn. Either way it is printed on stderr, so every failure can be replayed.
 * Call it once at the start of a run or test file.
 */
export function seedFromEnv(label = 'seed'): string {
  const env = typeof process === 'undefined' ? undefined : process.env.PASTRY_SEED
  const seed =
    env !== undefined && env !== '' ? env : String((Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0)
  if (typeof process !== 'undefined') process.stderr.write(`[${label}] PASTRY_SEED=${seed}\n`)
  return seed
}
