// CONNECT_TIMEOUT on loopback. A child process listens with a backlog of 1 and then blocks its
// event loop, so it never accepts. Once the kernel's accept queue is full (two raw connections
// fill it), Linux drops further SYNs, and a dial hangs: exactly what the connect timeout is for.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { bytes, withHarness } from './_node.js'

// Listens, prints the port, then blocks for at most 30 s (the test kills it sooner).
const NEVER_ACCEPTS = `
const net = require('node:net')
const server = net.createServer()
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(server.address().port + '\\n', () => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000)
  })
})
`

async function stuckListener(): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, ['-e', NEVER_ACCEPTS], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = (await once(child.stdout as NonNullable<typeof child.stdout>, 'data')) as [Buffer]
  return { child, address: `127.0.0.1:${chunk.toString().trim()}` }
}

test(
  'a dial that never completes is abandoned with CONNECT_TIMEOUT, and its frame is reported',
  withHarness(async (h) => {
    const { child, address } = await stuckListener()
    const fillers: Socket[] = []
    try {
      // Fill the accept queue: these complete in the kernel though nobody accepts them.
      for (let i = 0; i < 2; i++) {
        const s = connect(Number(address.split(':')[1]), '127.0.0.1')
        s.on('error', () => {})
        fillers.push(s)
        await once(s, 'connect')
      }
      const a = await h.node({ connectTimeoutMs: 300 })
      a.transport.send(address, bytes('into the void'))
      const error = await a.errors.next('CONNECT_TIMEOUT', (e) => e.code === 'CONNECT_TIMEOUT', 5_000)
      assert.is(error.peer, address)
      assert.ok(
        a.transport.stats.framesDropped >= 1,
        'the frame queued on the abandoned dial is counted as dropped',
      )
    } finally {
      for (const s of fillers) s.destroy()
      child.kill('SIGKILL')
    }
  }),
)

test.run()
