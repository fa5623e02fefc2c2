// Test helpers: a transport with its own inbox of frames and errors (testkit's listenRecording),
// waits on events (never on sleeps), raw sockets, and a registry that closes everything a test
// opened.
import { once } from 'node:events'
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net'
import { createRng, type Id, randomId } from '@pastry/core'
import { Inbox, listenRecording, type RecordingTransport } from '@pastry/testkit'
import { createTcpTransport, type TcpTransport, type TcpTransportOptions } from '../src/index.js'

/** How long any single wait may take before the test fails naming what it waited for. */
export const WAIT_MS = 5_000

const rng = createRng(`transport-tcp-test-${process.pid}`)

/** A fresh random id (ids only need to differ between nodes here). */
export function freshId(): Id {
  return randomId(rng)
}

/** A listening transport and what it received. */
export type TestNode = RecordingTransport<TcpTransport>

/** Tracks everything a test opens, and closes it all. */
export class Harness {
  readonly #closers: (() => Promise<unknown> | unknown)[] = []

  /** A transport listening on `address`, recording frames and errors. */
  async node(options: TcpTransportOptions = {}, address = '127.0.0.1:0'): Promise<TestNode> {
    const transport = createTcpTransport(options)
    this.#closers.push(() => transport.close())
    return listenRecording(transport, { localId: freshId(), address, waitMs: WAIT_MS })
  }

  /** A raw TCP server; `sockets` receives each connection. Its sockets are destroyed at the end. */
  async rawServer(host = '127.0.0.1'): Promise<{ server: Server; address: string; sockets: Inbox<Socket> }> {
    const sockets = new Inbox<Socket>(WAIT_MS)
    const server = createServer((s) => {
      s.on('error', () => {})
      sockets.push(s)
    })
    this.#closers.push(async () => {
      for (const s of sockets.items) s.destroy()
      await new Promise((r) => server.close(r))
    })
    server.listen(0, host)
    await once(server, 'listening')
    const a = server.address()
    if (a === null || typeof a !== 'object') throw new Error('no address')
    return { server, address: `${host.includes(':') ? `[${host}]` : host}:${a.port}`, sockets }
  }

  /** A raw client socket to `address`, connected. Destroyed at the end. */
  async rawClient(address: string): Promise<Socket> {
    const colon = address.lastIndexOf(':')
    const host = address.slice(0, colon).replace(/^\[|\]$/g, '')
    const socket = tcpConnect({ host, port: Number(address.slice(colon + 1)) })
    socket.on('error', () => {})
    this.#closers.push(() => socket.destroy())
    await once(socket, 'connect')
    return socket
  }

  /** Closes everything, newest first. */
  async close(): Promise<void> {
    for (const c of this.#closers.reverse()) await c()
    this.#closers.length = 0
  }
}

/** Runs `body` with a fresh harness and closes it whatever happens. */
export function withHarness(body: (h: Harness) => Promise<void>): () => Promise<void> {
  return async () => {
    const h = new Harness()
    try {
      await body(h)
    } finally {
      await h.close()
    }
  }
}

/** UTF-8 bytes of `text`. */
export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

/** Resolves when `socket` closes (either side). */
export function closedOf(socket: Socket, ms = WAIT_MS): Promise<void> {
  if (socket.closed) return Promise.resolve()
  // A socket sees the peer's FIN only while it reads: drain one nobody reads.
  if (socket.listenerCount('data') === 0) socket.resume()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket did not close within ${ms} ms`)), ms)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** A 4-byte big-endian length prefix followed by `payload`. */
export function framed(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + payload.length)
  out.writeUInt32BE(payload.length, 0)
  out.set(payload, 4)
  return out
}
