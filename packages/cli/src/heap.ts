/*
 * A large simulation needs more JavaScript heap than Node gives by default (about 4 GB on a 64-bit
 * machine; a 100,000-node protocol overlay with PNS peaks near 8 GB). V8 fixes the heap limit when
 * the process starts, so `pastry sim` estimates what the run needs and, when the limit is lower,
 * runs the same command again in a child process with `--max-old-space-size` raised (and a larger
 * young generation, `--max-semi-space-size`, unless one was set), passing its output and exit code
 * through. The estimates are per-node figures measured in BENCHMARKS.md with room to spare; they
 * only decide whether to start the child and how large its heap may grow, so being generous costs
 * nothing until the memory is actually used.
 */
import { spawn } from 'node:child_process'
import { constants, totalmem } from 'node:os'
import { getHeapStatistics } from 'node:v8'

/** Set in the child's environment, so that a child never starts another. */
export const RESPAWNED_ENV = 'PASTRY_SIM_RESPAWNED'

/** The kinds of simulation `pastry sim` runs. */
export type SimKind = 'protocol' | 'static' | 'pubsub'

const MB = 1024 * 1024
/**
 * The child's semi-space size in MB (Node's default is 16). A run large enough to need the child keeps
 * many messages and probe records in flight; with a larger young generation they die there instead
 * of being promoted to the old generation, which then needs fewer and shorter full collections.
 */
const SEMI_SPACE_MB = 64

/**
 * The Node options of the child: this process's own, then the heap limit (the last of two settings
 * wins), then the semi-space size unless one was given on the command line or in `NODE_OPTIONS`
 * (which the child inherits).
 */
export function childExecArgv(execArgv: readonly string[], nodeOptions: string, heapMb: number): string[] {
  const out = [...execArgv, `--max-old-space-size=${heapMb}`]
  const given = (a: string) => a.startsWith('--max-semi-space-size')
  if (!execArgv.some(given) && !nodeOptions.split(/\s+/).some(given))
    out.push(`--max-semi-space-size=${SEMI_SPACE_MB}`)
  return out
}

/** Code, the simulator's fixed structures and the collector's working room. */
const BASE_MB = 256

/** Heap, in MB, that a simulation of this shape is expected to need at its peak. */
export function simHeapNeedMb(kind: SimKind, nodes: number, lookups: number, pns: boolean): number {
  // Per node, in KB: the peak over settled memory includes the join's transient records and the
  // garbage between collections (BENCHMARKS.md: about 80 KB per node at the peak at 100,000 nodes
  // with PNS, 60 without; pub/sub about 230 KB per node at 10,000 nodes; static under 1 KB).
  const perNodeKb = kind === 'pubsub' ? 320 : kind === 'static' ? 1 : pns ? 100 : 80
  // Per lookup: the oracle's record and its key.
  const perLookupBytes = 96
  return Math.ceil(BASE_MB + (nodes * perNodeKb) / 1024 + (lookups * perLookupBytes) / MB)
}

/** The current process's heap limit in MB. */
export function heapLimitMb(): number {
  return Math.floor(getHeapStatistics().heap_size_limit / MB)
}

/**
 * When this process's heap limit is below `needMb`, runs `entry` with the same arguments in a
 * child process whose heap limit is `needMb` (at most 90 % of the machine's memory), and resolves
 * to the child's exit code. Resolves to undefined when this process should run the simulation
 * itself: its limit suffices, it is already such a child, or the machine has no more to give.
 */
export async function runWithHeap(
  needMb: number,
  entry: string,
  args: readonly string[],
  log: (line: string) => void,
): Promise<number | undefined> {
  const limitMb = heapLimitMb()
  if (limitMb >= needMb || process.env[RESPAWNED_ENV] === '1') return undefined
  const machineMb = Math.floor(totalmem() / MB)
  const heapMb = Math.min(needMb, Math.floor(machineMb * 0.9))
  if (heapMb <= limitMb) return undefined
  log(
    `[pastry sim] this run needs about ${needMb} MB of heap and the limit is ${limitMb} MB: ` +
      `running it in a child process with --max-old-space-size=${heapMb}` +
      (heapMb < needMb ? ` (90 % of this machine's ${machineMb} MB; it may not be enough)` : ''),
  )
  const child = spawn(
    process.execPath,
    [...childExecArgv(process.execArgv, process.env.NODE_OPTIONS ?? '', heapMb), entry, ...args],
    {
      stdio: 'inherit',
      env: { ...process.env, [RESPAWNED_ENV]: '1' },
    },
  )
  const forward = (signal: NodeJS.Signals) => () => {
    child.kill(signal)
  }
  const onInt = forward('SIGINT')
  const onTerm = forward('SIGTERM')
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject)
      child.on('exit', (code, signal) => {
        if (code !== null) resolve(code)
        else resolve(128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)))
      })
    })
  } finally {
    process.off('SIGINT', onInt)
    process.off('SIGTERM', onTerm)
  }
}
