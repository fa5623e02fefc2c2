/**
 * @pastry/cli: the `pastry` command.
 *
 * - `pastry sim`: a deterministic overlay simulation from a seed, through the real protocol or
 *   (`--static`) from perfect tables.
 * - `pastry node`: one node as a daemon, driven through its admin HTTP API.
 * - `pastry demo`: a local cluster of `pastry node` processes over TCP, routing messages.
 *
 * `pastry bench` is not in this version. The README documents each command's options and output.
 */

import { DEMO_USAGE, runDemo } from './demo.js'
import { UsageError } from './errors.js'
import { NODE_USAGE, runNode } from './node/daemon.js'
import { runSim, SIM_USAGE } from './sim.js'

export const USAGE = `Usage: pastry <command> [options]

Commands:
  sim       simulate an overlay and route lookups (pastry sim --help)
  node      run one node as a daemon with an admin HTTP API (pastry node --help)
  demo      start a local cluster over TCP and route messages through it
  help      show this help

Run \`pastry <command> --help\` for a command's options.`

export { UsageError }

/** How {@link main} was started. */
export interface MainOptions {
  /**
   * The script that runs the CLI (the `pastry` bin). When given, `pastry sim` may run itself again
   * through it in a child process with a larger heap; without it, a simulation always runs in
   * this process.
   */
  readonly entry?: string
}

/**
 * Runs the CLI with the arguments after the program name. Resolves to the exit code: 0 on
 * success, 1 on a failure while running, 2 on a bad command line.
 */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'sim':
        return await runSim(rest, options.entry)
      case 'node':
        return await runNode(rest)
      case 'demo':
        return await runDemo(rest)
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`)
        return command === undefined ? 2 : 0
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`)
    }
  } catch (e) {
    if (e instanceof UsageError) {
      const usages: Record<string, string> = { sim: SIM_USAGE, node: NODE_USAGE, demo: DEMO_USAGE }
      const usage = usages[command ?? ''] ?? USAGE
      process.stderr.write(`pastry: ${e.message}\n\n${usage}\n`)
      return 2
    }
    process.stderr.write(`pastry: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    return 1
  }
}
