import { sha256 } from '@noble/hashes/sha2.js'
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64'
import { uniformInt } from 'pure-rand/distribution/uniformInt'
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus'
import { ConfigError } from '../errors.js'
import { Id } from './id.js'

/**
 * A seeded pseudo-random source. Core draws no unseeded randomness: every random choice draws from an
 * `Rng` that the caller supplies, so that a seed replays a run exactly.
 */
export interface Rng {
  /** The seed this generator was made from, then the labels it was derived by, for display. */
  readonly seed: string
  /** A uniform unsigned 32-bit integer. */
  u32(): number
  /** A uniform integer in [0, n). `n` is a positive safe integer. */
  int(n: number): number
  /** A uniform float in [0, 1). */
  float(): number
  /**
   * An independent child generator named by `label`. The child depends only on this generator's
   * seed and the label, not on how many values were drawn before, so adding a new consumer never
   * shifts the numbers another one sees.
   */
  derive(label: string): Rng
}

const utf8 = new TextEncoder()

class SeededRng implements Rng {
  readonly seed: string
  /** 32 bytes that name this generator; children hash it with their label. */
  readonly #key: Uint8Array
  readonly #gen: ReturnType<typeof xoroshiro128plusFromState>

  constructor(seed: string, key: Uint8Array) {
    this.seed = seed
    this.#key = key
    const view = new DataView(key.buffer, key.byteOffset, key.byteLength)
    const state: number[] = [view.getInt32(0), view.getInt32(4), view.getInt32(8), view.getInt32(12)]
    // xoroshiro's all-zero state is a fixed point; a hash output of 128 zero bits will not occur,
    // but the guard costs nothing.
    if (!state.some((x) => x !== 0)) state[3] = 1
    this.#gen = xoroshiro128plusFromState(state)
  }

  u32(): number {
    return this.#gen.next() >>> 0
  }

  int(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new ConfigError(`Rng.int needs a positive integer, got ${n}`)
    return uniformInt(this.#gen, 0, n - 1)
  }

  float(): number {
    return uniformFloat64(this.#gen)
  }

  derive(label: string): Rng {
    // The child's key hashes the parent's whole key with the label, so distinct derivation paths
    // never share a key, whatever characters the labels contain.
    const labelBytes = utf8.encode(label)
    const input = new Uint8Array(1 + this.#key.length + labelBytes.length)
    input[0] = 1
    input.set(this.#key, 1)
    input.set(labelBytes, 1 + this.#key.length)
    return new SeededRng(`${this.seed}/${label}`, sha256(input))
  }
}

/**
 * Makes a seeded generator. The same seed always gives the same sequence, on every platform.
 * Seeds are strings so that a printed seed can be pasted back as it is; a number is turned into
 * its decimal string.
 */
export function createRng(seed: string | number): Rng {
  const text = String(seed)
  return new SeededRng(text, sha256(utf8.encode(text)))
}

/** A uniformly random id drawn from `rng`. */
export function randomId(rng: Rng): Id {
  return Id.fromWords(rng.u32(), rng.u32(), rng.u32(), rng.u32())
}
