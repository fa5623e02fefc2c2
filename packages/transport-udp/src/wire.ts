/*
 * The datagram formats: pure functions over bytes, no sockets. The README's "Wire format" section
 * draws the same layouts.
 *
 * Every datagram opens with the same six bytes, in every protocol version:
 *
 *   offset size
 *        0    2  magic "PD" (0x50 0x44)
 *        2    2  protocol version (core's PROTOCOL_VERSION), big-endian
 *        4    1  type: HELLO 1, REPLY 2, DATA 3, ACK 4, RESET 5, REFUSE 6
 *        5    1  flags: bit 0 = keyed (a 16-byte tag ends the datagram), bit 1 = DATA carries a confirm
 *
 * so a node can always tell a peer that speaks another version from garbage. With a cluster key the
 * last 16 bytes are a tag over everything before them (see auth.ts). A connection id ("cid") is a
 * random integer below 2^53, written as 8 bytes big-endian; each side names its end of a connection
 * by the cid it chose, and every datagram after the HELLO is addressed to the receiver's cid.
 *
 *   HELLO   6 srcCid 8 | 14 nonce 16 | 30 id 16 | 46 maxFrameBytes 4 | 50 window 2 |
 *           52 maxDatagramBytes 2 | 54 address length 2 | 56 address
 *   REPLY   6 dstCid 8 | 14 srcCid 8 | 22 echo 16 | 38 nonce 16 | 54 id 16 | 70 maxFrameBytes 4 |
 *           74 window 2 | 76 maxDatagramBytes 2 | 78 address length 2 | 80 address
 *   DATA    6 dstCid 8 | 14 seq 4 | [18 confirm echo 16, when flag bit 1] | frames
 *   ACK     6 dstCid 8 | 14 counter 4 | 18 ack body
 *   RESET   6 cid 8  (the receiver's connection whose peer end this sender no longer knows)
 *   REFUSE  6 dstCid 8 | 14 reason 1  (never tagged; the same layout in every version)
 *
 * DATA frames, one after another:
 *   ACK  1 | cid 8 | ack body          (acknowledges the receiver's outbound connection `cid`)
 *   MSG  2 | length 2 | bytes          (a whole message)
 *   FRAG 3 | total 4 | offset 4 | length 2 | bytes   (a piece of a message too large for one datagram)
 *
 * An ack body is: cumulative 4 (every seq below it was received) | n 1 | n × (start 4, end 4), the
 * ranges of seqs at or above the cumulative one also received, end exclusive, ascending.
 */
import { Id, MAX_ADDRESS_BYTES, parseAddress } from '@pastry/core'

export const MAGIC = 0x5044
export const TAG_BYTES = 16
export const NONCE_BYTES = 16
export const CID_BYTES = 8

export const T_HELLO = 1
export const T_REPLY = 2
export const T_DATA = 3
export const T_ACK = 4
export const T_RESET = 5
export const T_REFUSE = 6

export const F_KEYED = 1
export const F_CONFIRM = 2

export const FR_ACK = 1
export const FR_MSG = 2
export const FR_FRAG = 3

/** magic, version, type, flags. */
export const COMMON_BYTES = 6
/** A DATA datagram's fixed part: common header, dstCid, seq. */
export const DATA_HEADER_BYTES = 18
/** A MSG frame's header: type, length. */
export const MSG_FRAME_BYTES = 3
/** A FRAG frame's header: type, total, offset, length. */
export const FRAG_FRAME_BYTES = 11
/** The most ranges an ack carries. */
export const MAX_ACK_RANGES = 16
/** An ACK frame without ranges: type, cid, cumulative, count. */
export const ACK_FRAME_BASE_BYTES = 14
const HELLO_FIXED_BYTES = 56
const REPLY_FIXED_BYTES = 80
/** The largest HELLO or REPLY, tag included: they must fit the smallest datagram allowed. */
export const MAX_HANDSHAKE_DATAGRAM_BYTES = REPLY_FIXED_BYTES + MAX_ADDRESS_BYTES + TAG_BYTES

/** Why a peer refused a HELLO (the REFUSE reason byte). */
export const REFUSE_VERSION = 1
export const REFUSE_KEY_REQUIRED = 2
export const REFUSE_KEY_UNEXPECTED = 3
export const REFUSE_BAD_TAG = 4
export const REFUSE_FULL = 5

const TWO_32 = 4294967296
/** Cids are below 2^53, so that they are exact JavaScript numbers and cheap Map keys. */
const CID_HI_LIMIT = 1 << 21

/** Reads a cid; -1 for an out-of-range value (which no node ever issues). */
export function readCid(buf: Buffer, off: number): number {
  const hi = buf.readUInt32BE(off)
  if (hi >= CID_HI_LIMIT) return -1
  return hi * TWO_32 + buf.readUInt32BE(off + 4)
}

export function writeCid(buf: Buffer, off: number, cid: number): void {
  buf.writeUInt32BE(Math.floor(cid / TWO_32), off)
  buf.writeUInt32BE(cid >>> 0, off + 4)
}

/** Writes the common header. */
export function writeCommon(buf: Buffer, version: number, type: number, flags: number): void {
  buf.writeUInt16BE(MAGIC, 0)
  buf.writeUInt16BE(version, 2)
  buf[4] = type
  buf[5] = flags
}

/** What a HELLO or REPLY says about its sender. */
export interface Introduction {
  readonly id: Id
  readonly maxFrameBytes: number
  readonly window: number
  readonly maxDatagramBytes: number
  readonly address: string
}

export interface Hello extends Introduction {
  readonly srcCid: number
  readonly nonce: Buffer
}

export interface Reply extends Introduction {
  readonly dstCid: number
  readonly srcCid: number
  readonly echo: Buffer
  readonly nonce: Buffer
}

function introBytes(intro: Introduction): number {
  return Buffer.byteLength(intro.address, 'ascii')
}

function writeIntro(buf: Buffer, off: number, intro: Introduction): number {
  intro.id.writeTo(buf, off)
  buf.writeUInt32BE(intro.maxFrameBytes, off + 16)
  buf.writeUInt16BE(intro.window, off + 20)
  buf.writeUInt16BE(intro.maxDatagramBytes, off + 22)
  const n = buf.write(intro.address, off + 26, 'ascii')
  buf.writeUInt16BE(n, off + 24)
  return off + 26 + n
}

/** Builds a HELLO, leaving room for the tag when `keyed`. */
export function encodeHello(version: number, keyed: boolean, hello: Hello): Buffer {
  const out = Buffer.allocUnsafe(HELLO_FIXED_BYTES + introBytes(hello) + (keyed ? TAG_BYTES : 0))
  writeCommon(out, version, T_HELLO, keyed ? F_KEYED : 0)
  writeCid(out, 6, hello.srcCid)
  hello.nonce.copy(out, 14, 0, NONCE_BYTES)
  writeIntro(out, 30, hello)
  return out
}

/** Builds a REPLY, leaving room for the tag when `keyed`. */
export function encodeReply(version: number, keyed: boolean, reply: Reply): Buffer {
  const out = Buffer.allocUnsafe(REPLY_FIXED_BYTES + introBytes(reply) + (keyed ? TAG_BYTES : 0))
  writeCommon(out, version, T_REPLY, keyed ? F_KEYED : 0)
  writeCid(out, 6, reply.dstCid)
  writeCid(out, 14, reply.srcCid)
  reply.echo.copy(out, 22, 0, NONCE_BYTES)
  reply.nonce.copy(out, 38, 0, NONCE_BYTES)
  writeIntro(out, 54, reply)
  return out
}

function readIntro(buf: Buffer, off: number, end: number): Introduction | string {
  const maxFrameBytes = buf.readUInt32BE(off + 16)
  const window = buf.readUInt16BE(off + 20)
  const maxDatagramBytes = buf.readUInt16BE(off + 22)
  const n = buf.readUInt16BE(off + 24)
  if (n > MAX_ADDRESS_BYTES || off + 26 + n !== end) return 'its address length does not match its size'
  if (maxFrameBytes === 0 || window === 0 || maxDatagramBytes < 256) return 'a zero limit'
  for (let i = off + 26; i < end; i++) {
    const c = buf[i]!
    if (c < 0x21 || c > 0x7e) return 'a non-printable byte in its address'
  }
  const address = buf.toString('ascii', off + 26, end)
  try {
    parseAddress(address)
  } catch {
    return `a bad listen address ${JSON.stringify(address)}`
  }
  return { id: Id.readFrom(buf, off), maxFrameBytes, window, maxDatagramBytes, address }
}

/** Decodes a HELLO whose tag (if any) ends at `end`; a string says what is wrong. */
export function decodeHello(buf: Buffer, end: number): Hello | string {
  if (end < HELLO_FIXED_BYTES) return 'a truncated HELLO'
  const srcCid = readCid(buf, 6)
  if (srcCid <= 0) return 'a HELLO with a bad connection id'
  const intro = readIntro(buf, 30, end)
  if (typeof intro === 'string') return `a HELLO with ${intro}`
  return { ...intro, srcCid, nonce: Buffer.from(buf.subarray(14, 30)) }
}

/** Decodes a REPLY whose tag (if any) ends at `end`; a string says what is wrong. */
export function decodeReply(buf: Buffer, end: number): Reply | string {
  if (end < REPLY_FIXED_BYTES) return 'a truncated REPLY'
  const dstCid = readCid(buf, 6)
  const srcCid = readCid(buf, 14)
  if (dstCid <= 0 || srcCid <= 0) return 'a REPLY with a bad connection id'
  const intro = readIntro(buf, 54, end)
  if (typeof intro === 'string') return `a REPLY with ${intro}`
  return {
    ...intro,
    dstCid,
    srcCid,
    echo: Buffer.from(buf.subarray(22, 38)),
    nonce: Buffer.from(buf.subarray(38, 54)),
  }
}

/** A REFUSE toward the HELLO whose source cid was `dstCid`. Never tagged. */
export function encodeRefuse(version: number, dstCid: number, reason: number): Buffer {
  const out = Buffer.allocUnsafe(15)
  writeCommon(out, version, T_REFUSE, 0)
  writeCid(out, 6, dstCid)
  out[14] = reason
  return out
}

/** A RESET naming `cid`, leaving room for the tag when `keyed`. */
export function encodeReset(version: number, keyed: boolean, cid: number): Buffer {
  const out = Buffer.allocUnsafe(14 + (keyed ? TAG_BYTES : 0))
  writeCommon(out, version, T_RESET, keyed ? F_KEYED : 0)
  writeCid(out, 6, cid)
  return out
}

/** What an ack says: every seq below `cumulative`, and each [start, end) range, was received. */
export interface AckInfo {
  cumulative: number
  /** Flattened pairs: start0, end0, start1, end1, ... */
  readonly ranges: number[]
}

/** Bytes of an ack body with `rangeCount` ranges. */
export function ackBodyBytes(rangeCount: number): number {
  return 5 + 8 * rangeCount
}

/** Writes an ack body at `off`; returns the offset after it. */
export function writeAckBody(buf: Buffer, off: number, ack: AckInfo): number {
  const n = ack.ranges.length >> 1
  buf.writeUInt32BE(ack.cumulative, off)
  buf[off + 4] = n
  let o = off + 5
  for (let i = 0; i < ack.ranges.length; i++) {
    buf.writeUInt32BE(ack.ranges[i]!, o)
    o += 4
  }
  return o
}

/**
 * Reads an ack body at `off` (not past `end`) into `into` (reused, to spare an allocation per ack);
 * returns the offset after it, or -1 when it is malformed (ranges out of order, empty, or below the
 * cumulative seq).
 */
export function readAckBody(buf: Buffer, off: number, end: number, into: AckInfo): number {
  if (end - off < 5) return -1
  const cumulative = buf.readUInt32BE(off)
  const n = buf[off + 4]!
  if (n > MAX_ACK_RANGES || end - off < 5 + 8 * n) return -1
  into.cumulative = cumulative
  if (into.ranges.length !== 0) into.ranges.length = 0 // (setting length is a slow path in V8)
  let o = off + 5
  let floor = cumulative
  for (let i = 0; i < n; i++) {
    const start = buf.readUInt32BE(o)
    const stop = buf.readUInt32BE(o + 4)
    if (start < floor || stop <= start) return -1
    into.ranges.push(start, stop)
    floor = stop
    o += 8
  }
  return o
}
