// The datagram formats written out by hand, as the README documents them, so that tests can play a
// peer byte by byte: well-behaved, stalled, lying, replaying or malformed.
import { createHmac } from 'node:crypto'
import { type Id, PROTOCOL_VERSION } from '@pastry/core'
import { type Datagram, type RawSocket, WAIT_MS } from './_node.js'

export const MAGIC = 0x5044
export const HELLO = 1
export const REPLY = 2
export const DATA = 3
export const ACK = 4
export const RESET = 5
export const REFUSE = 6

/** The tag a keyed datagram ends with: HMAC-SHA256 under a key derived from the cluster key, 16 bytes. */
export function tag(clusterKey: string, body: Buffer): Buffer {
  const tagKey = createHmac('sha256', clusterKey).update('pastry-udp datagram tag v1').digest()
  return createHmac('sha256', tagKey).update(body).digest().subarray(0, 16)
}

function finish(body: Buffer, clusterKey: string | undefined): Buffer {
  if (clusterKey === undefined) return body
  body[5]! |= 1
  return Buffer.concat([body, tag(clusterKey, body)])
}

function cid(n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeUInt32BE(Math.floor(n / 2 ** 32), 0)
  b.writeUInt32BE(n >>> 0, 4)
  return b
}

export function readCid(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * 2 ** 32 + b.readUInt32BE(off + 4)
}

function common(type: number, version = PROTOCOL_VERSION, flags = 0): Buffer {
  const b = Buffer.alloc(6)
  b.writeUInt16BE(MAGIC, 0)
  b.writeUInt16BE(version, 2)
  b[4] = type
  b[5] = flags
  return b
}

export interface HelloFields {
  readonly srcCid: number
  readonly nonce: Buffer
  readonly id: Id
  readonly address: string
  readonly version?: number
  readonly maxFrameBytes?: number
  readonly window?: number
  readonly maxDatagramBytes?: number
  readonly clusterKey?: string
}

export function hello(f: HelloFields): Buffer {
  const fixed = Buffer.alloc(50)
  cid(f.srcCid).copy(fixed, 0)
  f.nonce.copy(fixed, 8)
  f.id.writeTo(fixed, 24)
  fixed.writeUInt32BE(f.maxFrameBytes ?? 1024 * 1024, 40)
  fixed.writeUInt16BE(f.window ?? 128, 44)
  fixed.writeUInt16BE(f.maxDatagramBytes ?? 1200, 46)
  const addr = Buffer.from(f.address, 'ascii')
  fixed.writeUInt16BE(addr.length, 48)
  return finish(Buffer.concat([common(HELLO, f.version), fixed, addr]), f.clusterKey)
}

/** A decoded REPLY. */
export interface ReplyFields {
  readonly dstCid: number
  readonly srcCid: number
  readonly echo: Buffer
  readonly nonce: Buffer
  readonly address: string
}

export function parseReply(b: Buffer): ReplyFields {
  const n = b.readUInt16BE(78)
  return {
    dstCid: readCid(b, 6),
    srcCid: readCid(b, 14),
    echo: b.subarray(22, 38),
    nonce: b.subarray(38, 54),
    address: b.toString('ascii', 80, 80 + n),
  }
}

/** A DATA datagram: `frames` already encoded with the helpers below. */
export function data(f: {
  readonly dstCid: number
  readonly seq: number
  readonly confirm?: Buffer
  readonly frames: readonly Buffer[]
  readonly clusterKey?: string
}): Buffer {
  const head = Buffer.alloc(12)
  cid(f.dstCid).copy(head, 0)
  head.writeUInt32BE(f.seq, 8)
  const parts = [common(DATA, PROTOCOL_VERSION, f.confirm === undefined ? 0 : 2), head]
  if (f.confirm !== undefined) parts.push(f.confirm)
  return finish(Buffer.concat([...parts, ...f.frames]), f.clusterKey)
}

export function msgFrame(payload: Uint8Array): Buffer {
  const h = Buffer.alloc(3)
  h[0] = 2
  h.writeUInt16BE(payload.length, 1)
  return Buffer.concat([h, payload])
}

export function fragFrame(total: number, offset: number, payload: Uint8Array): Buffer {
  const h = Buffer.alloc(11)
  h[0] = 3
  h.writeUInt32BE(total, 1)
  h.writeUInt32BE(offset, 5)
  h.writeUInt16BE(payload.length, 9)
  return Buffer.concat([h, payload])
}

export function refuse(dstCid: number, reason: number, version = PROTOCOL_VERSION): Buffer {
  return Buffer.concat([common(REFUSE, version), cid(dstCid), Buffer.from([reason])])
}

/** The type byte of a datagram. */
export const typeOf = (d: Datagram): number => d.msg[4]!

/**
 * Plays the opening of a connection from a raw socket to the transport at `target`: HELLO, then
 * the REPLY. Returns what DATA needs: the transport's cid and the nonce to echo.
 */
export async function rawOpen(
  raw: RawSocket,
  target: string,
  f: { readonly id: Id; readonly srcCid: number; readonly clusterKey?: string },
): Promise<{ readonly dstCid: number; readonly confirm: Buffer }> {
  const nonce = Buffer.alloc(16, 7)
  const before = raw.received.items.length
  await raw.send(target, hello({ ...f, nonce, address: raw.address }))
  const got = await raw.received.next(
    'the REPLY to a raw HELLO',
    (d) => raw.received.items.indexOf(d) >= before && typeOf(d) === REPLY,
    WAIT_MS,
  )
  const reply = parseReply(got.msg)
  if (!reply.echo.equals(nonce) || reply.dstCid !== f.srcCid)
    throw new Error('the REPLY does not answer our HELLO')
  return { dstCid: reply.srcCid, confirm: Buffer.from(reply.nonce) }
}
