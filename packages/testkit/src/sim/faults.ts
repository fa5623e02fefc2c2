/*
 * Theory of operation
 *
 * Swarm testing (after FoundationDB's simulation and TigerBeetle's VOPR): instead of one fixed fault
 * mix, each seed draws its own. Every kind of fault is switched on or off by a coin flip, and when
 * on, its strength is drawn from a range. Across many seeds that covers quiet runs, runs with one
 * fault in isolation, and runs with everything at once, which finds more bugs than always turning
 * every knob halfway. The plan is plain data: print it beside the seed, and apply it with the
 * simulator's commands (`setNetwork`, `crash`, `partition`, `startChurn`).
 */
import type { Rng } from '@pastry/core'
import type { SessionDistribution } from './simulator.js'

/** A fault configuration drawn by {@link drawFaults}. */
export interface FaultPlan {
  /** For `setNetwork`: loss in [0, 0.1], duplication in [0, 0.05], jitter in [0, 50) ms. */
  readonly network: { readonly loss: number; readonly duplicate: number; readonly jitterMs: number }
  /** Fraction of nodes to crash during the faulty phase, in [0, 0.25]. */
  readonly crashFraction: number
  /** Fraction of the crashed nodes to restart later, in [0, 1]. */
  readonly restartFraction: number
  /** A partition to impose (a `fraction` in [0.1, 0.5] of nodes on one side), or null. */
  readonly partition: { readonly fraction: number; readonly symmetric: boolean } | null
  /** Churn sessions (mean 1 to 30 minutes), or null for no churn. */
  readonly churn: { readonly session: SessionDistribution; readonly leaveFraction: number } | null
}

/**
 * Draws a fault plan from `rng`, each fault on with probability 1/2. Call it once per seed, with a
 * child of the run's seed (for example `createRng(seed).derive('faults')`), before the faulty phase.
 */
export function drawFaults(rng: Rng): FaultPlan {
  const on = () => rng.float() < 0.5
  const loss = on() ? 0.1 * rng.float() : 0
  const duplicate = on() ? 0.05 * rng.float() : 0
  const jitterMs = on() ? 50 * rng.float() : 0
  const crashFraction = on() ? 0.25 * rng.float() : 0
  const restartFraction = crashFraction > 0 && on() ? rng.float() : 0
  const partition = on() ? { fraction: 0.1 + 0.4 * rng.float(), symmetric: on() } : null
  let churn: FaultPlan['churn'] = null
  if (on()) {
    const meanMs = 60_000 * (1 + 29 * rng.float())
    const session: SessionDistribution = on()
      ? { kind: 'exponential', meanMs }
      : { kind: 'pareto', meanMs, shape: 1.5 + rng.float() }
    churn = { session, leaveFraction: on() ? rng.float() : 0 }
  }
  return { network: { loss, duplicate, jitterMs }, crashFraction, restartFraction, partition, churn }
}
