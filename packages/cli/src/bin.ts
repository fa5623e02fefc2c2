#!/usr/bin/env node
import { fileURLToPath } from 'node:url'
import { main } from './index.js'

// A reader that stops early (`pastry ... | head`) is not an error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0)
  throw e
})

main(process.argv.slice(2), { entry: fileURLToPath(import.meta.url) }).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    process.stderr.write(`pastry: ${String(e)}\n`)
    process.exitCode = 1
  },
)
