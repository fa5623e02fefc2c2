/**
 * @pastry/cli: the `pastry` command.
 *
 * - `pastry sim`: a deterministic overlay simulation from a seed (today: the static routing
 *   experiment, `--static`).
 *
 * `pastry node`, `pastry demo` and `pastry bench` are not in this version. The README documents each
 * command's options and output.
 */
import { UsageError } from './errors.js'
import { runSim, SIM_USAGE } from './sim.js'

export const USAGE = `Usage: pastry <command> [options]

Commands:
  sim       simulate an overlay and route lookups (pastry sim --help)
  help      show this help

Run \`pastry <command> --help\` for a command's options.`

export { UsageError }

/**
 * Runs the CLI with the arguments after the program name. Resolves to the exit code: 0 on
 * success, 1 on a failure while running, 2 on a bad command line.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'sim':
        return await runSim(rest)
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
      process.stderr.write(`pastry: ${e.message}\n\n${command === 'sim' ? SIM_USAGE : USAGE}\n`)
      return 2
    }
    process.stderr.write(`pastry: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    return 1
  }
}
