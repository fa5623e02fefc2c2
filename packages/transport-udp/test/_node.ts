// Test helpers: a transport with its own inbox of frames and errors (testkit's listenRecording),
// waits on events (never on sleeps), raw UDP sockets, a relay that records what passes through it, and a registry that
// closes everything a test opened.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { once } from 'node:events'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { type Id, parseAddress, randomId } from '@pastry/core'
import { Inbox, listenRecording, type RecordingTransport } from '@pastry/testkit'
import { createUdpTransport, type UdpTransport, type UdpTransportOptions } from '../src/index.js'
import { rngFor } from './_seed.js'

/** How long any single wait may take before the test fails naming what it waited for. */
export const WAIT_MS = 10_000

const ids = rngFor('ids')

/** A fresh random id (ids only need to differ between nodes here). */
export function freshId(): Id {
  return randomId(ids)
}

/** A listening transport and what it received. */
export type TestNode = RecordingTransport<UdpTransport>

/** A datagram a raw socket received. */
export interface Datagram {
  readonly msg: Buffer
  readonly rinfo: RemoteInfo
}

/** A raw UDP socket and what it received. */
export interface RawSocket {
  readonly socket: Socket
  readonly address: string
  readonly received: Inbox<Datagram>
  /** Sends `msg` to `address` (`host:port`). */
  send(address: string, msg: Uint8Array): Promise<void>
  /**
   * Sends each of `msgs` to `address`, yielding to the event loop every 16 so that a receiver in
   * this process reads as they come (dgram completes sends without a turn of the loop, so a loop of
   * awaited sends alone would overflow the receiver's socket buffer).
   */
  sendAll(address: string, msgs: readonly Uint8Array[]): Promise<void>
}

/**
 * A relay in front of `target`: datagrams sent to it are recorded and forwarded to the target from
 * the relay's socket; datagrams from the target go back to whoever last sent to the relay. The
 * target's acks go straight to the sender's listen address, so they bypass it.
 */
export interface Relay extends RawSocket {
  /** Datagrams from clients toward the target, copied, in order. */
  readonly captured: Buffer[]
  /** Forwarding on (default) or off. */
  forwarding: boolean
  /** When set, what is forwarded toward the target instead of each client datagram (undefined: nothing). */
  mutate: ((msg: Buffer) => Buffer | undefined) | undefined
}

/** Tracks everything a test opens, and closes it all. */
export class Harness {
  readonly #closers: (() => Promise<unknown> | unknown)[] = []

  /** A transport listening on `address`, recording frames and errors. */
  async node(options: UdpTransportOptions = {}, address = '127.0.0.1:0'): Promise<TestNode> {
    const transport = createUdpTransport(options)
    this.#closers.push(() => transport.close())
    return listenRecording(transport, { localId: freshId(), address, waitMs: WAIT_MS })
  }

  /** A raw UDP socket bound on loopback. */
  async raw(host = '127.0.0.1'): Promise<RawSocket> {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4')
    const received = new Inbox<Datagram>(WAIT_MS)
    socket.on('message', (msg, rinfo) => received.push({ msg, rinfo }))
    socket.on('error', () => {})
    this.#closers.push(() => new Promise<void>((r) => socket.close(() => r())))
    socket.bind(0, host)
    await once(socket, 'listening')
    const a = socket.address()
    return {
      socket,
      address: `${host.includes(':') ? `[${host}]` : host}:${a.port}`,
      received,
      send: (to, msg) => sendTo(socket, to, msg),
      sendAll: async (to, msgs) => {
        for (let i = 0; i < msgs.length; i++) {
          await sendTo(socket, to, msgs[i]!)
          if (i % 16 === 15) await nextTurn()
        }
      },
    }
  }

  /** A relay in front of the transport at `target`. */
  async relay(target: string): Promise<Relay> {
    const raw = await this.raw()
    const t = parseAddress(target)
    const captured: Buffer[] = []
    let client: RemoteInfo | undefined
    const relay: Relay = { ...raw, captured, forwarding: true, mutate: undefined }
    raw.socket.removeAllListeners('message')
    raw.socket.on('message', (msg, rinfo) => {
      raw.received.push({ msg, rinfo })
      if (!relay.forwarding) return
      if (rinfo.port === t.port && rinfo.address === t.host) {
        if (client !== undefined) raw.socket.send(msg, client.port, client.address)
      } else {
        client = rinfo
        captured.push(Buffer.from(msg))
        const out = relay.mutate === undefined ? msg : relay.mutate(Buffer.from(msg))
        if (out !== undefined) raw.socket.send(out, t.port, t.host)
      }
    })
    return relay
  }

  /** Registers a cleanup to run at the end (newest first). */
  defer(closer: () => Promise<unknown> | unknown): void {
    this.#closers.push(closer)
  }

  /** Closes everything, newest first. */
  async close(): Promise<void> {
    for (const c of this.#closers.reverse()) await c()
    this.#closers.length = 0
  }
}

/** Sends `msg` from `socket` to `to` and resolves once the socket has sent it. */
export function sendTo(socket: Socket, to: string, msg: Uint8Array): Promise<void> {
  const { host, port } = parseAddress(to)
  return new Promise((resolve, reject) => socket.send(msg, port, host, (e) => (e ? reject(e) : resolve())))
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

/** `length` bytes that differ with position and `salt`, so a shifted or mixed frame shows. */
export function pattern(length: number, salt: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (i * 31 + salt * 97 + (i >>> 8)) & 0xff
  return out
}

/** A frame whose first four bytes are `n`, then `size - 4` bytes of pattern salted by `n`. */
export function numbered(n: number, size: number): Uint8Array {
  const out = pattern(Math.max(4, size), n)
  new DataView(out.buffer).setUint32(0, n)
  return out
}

/** The number `numbered` put in a frame. */
export function numberOf(frame: Uint8Array): number {
  return new DataView(frame.buffer, frame.byteOffset).getUint32(0)
}

/** True when `a` and `b` hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
}
