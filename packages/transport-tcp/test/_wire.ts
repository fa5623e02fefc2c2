// The transport's wire format written out by hand, as the README documents it, so that tests can
// play a peer byte by byte: well-behaved, stalled, lying or malformed.
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { type Id, PROTOCOL_VERSION } from '@pastry/core'
import { framed, WAIT_MS } from './_node.js'

/** The fields of a HELLO; every one can be set wrong on purpose. */
export interface HelloFields {
  readonly id: Id
  readonly address: string
  readonly dialer: boolean
  readonly keyed?: boolean
  readonly version?: number
  readonly magic?: number
  readonly maxFrameBytes?: number
}

/** A HELLO message (without its length prefix). */
export function helloMessage(f: HelloFields): Buffer {
  const addr = Buffer.from(f.address, 'ascii')
  const m = Buffer.alloc(62 + addr.length)
  m.writeUInt32BE(f.magic ?? 0x50535450, 0)
  m.writeUInt16BE(f.version ?? PROTOCOL_VERSION, 4)
  m[6] = 1
  m[7] = (f.dialer ? 1 : 0) | (f.keyed === true ? 2 : 0)
  m.writeUInt32BE(f.maxFrameBytes ?? 1024 * 1024, 8)
  f.id.writeTo(m, 12)
  for (let i = 28; i < 60; i++) m[i] = (i * 37) & 0xff
  m.writeUInt16BE(addr.length, 60)
  addr.copy(m, 62)
  return m
}

/** A HELLO with its length prefix, ready to write. */
export const hello = (f: HelloFields): Buffer => framed(helloMessage(f))

/** Reads length-prefixed frames from a raw socket, one at a time. */
export class RawReader {
  #buf = Buffer.alloc(0)
  #wake: (() => void) | undefined
  #ended = false

  constructor(socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d])
      this.#wake?.()
    })
    socket.on('close', () => {
      this.#ended = true
      this.#wake?.()
    })
  }

  /** The next whole frame's payload; rejects if the socket closes first or after `ms`. */
  async frame(ms = WAIT_MS): Promise<Buffer> {
    const deadline = Date.now() + ms
    for (;;) {
      if (this.#buf.length >= 4) {
        const n = this.#buf.readUInt32BE(0)
        if (this.#buf.length >= 4 + n) {
          const out = this.#buf.subarray(4, 4 + n)
          this.#buf = this.#buf.subarray(4 + n)
          return out
        }
      }
      if (this.#ended) throw new Error('the socket closed before a whole frame arrived')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no frame within ${ms} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.#wake = () => {
          clearTimeout(t)
          this.#wake = undefined
          resolve()
        }
      })
    }
  }
}

/**
 * Plays the dialler's side of an unkeyed handshake on a raw socket connected to a transport: reads
 * its HELLO, answers with ours. Returns the reader for what follows.
 */
export async function rawHandshake(socket: Socket, id: Id, address: string): Promise<RawReader> {
  const reader = new RawReader(socket)
  socket.write(hello({ id, address, dialer: true }))
  await reader.frame()
  return reader
}

/** Plays the acceptor's side of an unkeyed handshake on a raw server socket. */
export async function rawAccept(socket: Socket, id: Id, address: string): Promise<RawReader> {
  const reader = new RawReader(socket)
  socket.write(hello({ id, address, dialer: false }))
  await reader.frame()
  return reader
}

/** Resolves when `socket` has written everything it was given. */
export async function drained(socket: Socket): Promise<void> {
  if (socket.writableLength > 0) await once(socket, 'drain')
}
