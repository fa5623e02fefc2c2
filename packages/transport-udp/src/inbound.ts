/*
 * Theory of operation: the receiving end of one connection (one peer → this node).
 *
 * No socket and no clock: calls that depend on time take `now`; frames leave through the owner's
 * `deliver`. It opens when the peer's first DATA datagram confirms the handshake (echoes our
 * nonce), and the owner forgets it when idle, on a reassembly timeout or on a protocol error.
 *
 * Receiving. DATA datagrams carry consecutive sequence numbers. One whose number is below the next
 * to deliver, or already held, is a duplicate (a retransmission, or a replay): it is acknowledged
 * again and dropped. One at or beyond `next + window` is dropped unacknowledged, and so is one that
 * would have to wait for a gap while `maxBufferedBytes` are held already. The rest are held in a
 * ring of `window` slots, and delivered in sequence order as soon as the gap before them fills, so
 * frames leave in the order the peer sent them, each once.
 *
 * Acknowledging. Every datagram received marks the connection for an ack. It rides in the next
 * DATA datagram toward the same peer; without one, it leaves alone after `maxAckDelayMs`, or at the
 * end of the turn when it is urgent: for a duplicate, a datagram out of order or filling a gap (so
 * the sender learns of a loss, or its repair, at once), or after 8 datagrams. An ack names the
 * first sequence number not yet received and up to 16 ranges received beyond it (the highest ones).
 * Standalone acks carry a counter that only grows, so a replayed one is recognised. Round-trip
 * samples include the delay, which keeps the RTO on the safe side.
 *
 * Reassembly. A frame too large for one datagram arrives as FRAG frames in consecutive datagrams,
 * which, being delivered in order, fill one buffer front to back: at most one reassembly per
 * connection. Its first fragment reserves the whole frame from a budget shared by all connections
 * (`maxReassemblies`, `maxReassemblyBytes`); when the budget is spent, delivery on that connection
 * pauses (the datagram stays held and acknowledged) until room frees up. A reassembly, or a pause,
 * with no progress for `reassemblyTimeoutMs` fails the connection with TIMEOUT.
 */
import type { TransportPeer } from '@pastry/core'
import type { Authenticator } from './auth.js'
import type { ResolvedOptions } from './options.js'
import type { Counters } from './stats.js'
import {
  ACK_FRAME_BASE_BYTES,
  type AckInfo,
  ackBodyBytes,
  DATA_HEADER_BYTES,
  F_CONFIRM,
  F_KEYED,
  FR_ACK,
  FR_FRAG,
  FR_MSG,
  FRAG_FRAME_BYTES,
  MAX_ACK_RANGES,
  MSG_FRAME_BYTES,
  NONCE_BYTES,
  T_ACK,
  TAG_BYTES,
  writeAckBody,
  writeCid,
  writeCommon,
} from './wire.js'

/** Room shared by every inbound connection of a transport: reassemblies and held datagrams. */
export class ReceiveBudget {
  reassemblies = 0
  reassemblyBytes = 0
  bufferedBytes = 0
  readonly #options: ResolvedOptions

  constructor(options: ResolvedOptions) {
    this.#options = options
  }

  /** Reserves room for one reassembly of `bytes`; false when there is none. */
  tryReserve(bytes: number): boolean {
    const o = this.#options
    if (this.reassemblies >= o.maxReassemblies || this.reassemblyBytes + bytes > o.maxReassemblyBytes) {
      return false
    }
    this.reassemblies++
    this.reassemblyBytes += bytes
    return true
  }

  release(bytes: number): void {
    this.reassemblies--
    this.reassemblyBytes -= bytes
  }
}

/** What a connection needs from its owner. */
export interface InboundHost {
  readonly options: ResolvedOptions
  readonly counters: Counters
  readonly version: number
  readonly auth: Authenticator | undefined
  readonly budget: ReceiveBudget
  /** A whole frame arrived, in order. `frame` is valid only during the call. */
  deliver(conn: InboundConn, frame: Uint8Array): void
}

/** An ack leaves at once after this many DATA datagrams received in order without one. */
const ACK_EVERY_DATAGRAMS = 8

/** What `receive` made of a DATA datagram. */
export type Receipt = 'new' | 'duplicate' | 'outside'

/** What `deliver` ended with: all caught up, paused for reassembly room, or a malformed datagram. */
export type Delivery = 'ok' | 'paused' | 'error'

/** The receiving end of a connection from one peer. Internal to the transport. */
export class InboundConn {
  readonly localCid: number
  readonly remoteCid: number
  /** The peer as its HELLO stated it: handed to the message handler with each frame. */
  readonly peer: TransportPeer
  /** Where acks go: the peer's listen address, parsed. */
  readonly host: string
  readonly port: number
  /** Last time a datagram arrived. */
  lastActiveAt: number
  /** True when an ack is owed; the owner clears it by sending one. */
  ackPending = false
  /** True when the ack owed should leave this turn rather than wait up to `maxAckDelayMs`. */
  ackUrgent = false
  /** Set by the owner while the connection waits in its ack list. */
  ackQueued = false
  /** Set by the owner while the connection waits for reassembly room. */
  waiting = false
  /** Why the last `deliver` returned 'error'. */
  problem = ''
  readonly #owner: InboundHost
  readonly #slots: (Buffer | undefined)[]
  readonly #mask: number
  readonly #window: number
  #next = 0
  #held = 0
  #heldBytes = 0
  /** Where delivery stopped inside the head datagram, when it paused there (0: at its start). */
  #resume = 0
  #asm: Buffer | undefined = undefined
  #asmFilled = 0
  #pausedAt = -1
  /** When a reassembly, or a pause for room, times out. */
  #stallAt = Number.POSITIVE_INFINITY
  /** When the ack owed must leave even without DATA to ride in. */
  #ackAt = Number.POSITIVE_INFINITY
  /** DATA datagrams received since the last ack. */
  #unacked = 0
  #ackCounter = 0
  readonly #ack: AckInfo = { cumulative: 0, ranges: [] }
  /** True while `#ack` matches what is held (a datagram received since makes it stale). */
  #ackBuilt = false

  constructor(
    owner: InboundHost,
    localCid: number,
    remoteCid: number,
    peer: TransportPeer,
    host: string,
    port: number,
    now: number,
  ) {
    this.#owner = owner
    this.localCid = localCid
    this.remoteCid = remoteCid
    this.peer = peer
    this.host = host
    this.port = port
    this.lastActiveAt = now
    this.#window = owner.options.windowPackets
    let size = 1
    while (size < this.#window) size *= 2
    this.#slots = new Array(size).fill(undefined)
    this.#mask = size - 1
  }

  /** Bytes of datagrams held here (out of order, or paused at the head). */
  get heldBytes(): number {
    return this.#heldBytes
  }

  /** The earliest time `onTimer` has work (an ack to send, a reassembly to time out); Infinity when none. */
  get deadline(): number {
    return Math.min(this.#stallAt, this.#ackAt)
  }

  /** True while a frame is half reassembled. */
  get reassembling(): boolean {
    return this.#asm !== undefined
  }

  /**
   * A tagged-and-checked DATA datagram for this connection. Holds it if new, and marks an ack
   * owed either way (unless it is beyond the window). Call `deliver` after a 'new'.
   */
  receive(now: number, seq: number, datagram: Buffer): Receipt {
    this.lastActiveAt = now
    this.ackPending = true
    this.#ackBuilt = false
    const next = this.#next
    if (seq < next || this.#slots[seq & this.#mask] !== undefined) {
      // A duplicate: our ack was lost or late, so send one at once.
      this.ackUrgent = true
      return seq - next < this.#window ? 'duplicate' : 'outside'
    }
    if (seq - next >= this.#window) {
      this.ackUrgent = true
      return 'outside'
    }
    const budget = this.#owner.budget
    if (seq !== next && budget.bufferedBytes + datagram.length > this.#owner.options.maxBufferedBytes) {
      this.ackUrgent = true
      return 'outside'
    }
    this.#slots[seq & this.#mask] = datagram
    this.#held++
    this.#heldBytes += datagram.length
    budget.bufferedBytes += datagram.length
    // In order and nothing missing: the ack may wait a little for DATA toward the peer to ride in.
    // Out of order, or filling a gap: at once, so that the sender sees the loss, or its repair.
    const delayMs = this.#owner.options.maxAckDelayMs
    if (seq !== next || this.#held > 1 || ++this.#unacked >= ACK_EVERY_DATAGRAMS || delayMs === 0) {
      this.ackUrgent = true
    } else if (this.#ackAt === Number.POSITIVE_INFINITY) {
      this.#ackAt = now + delayMs
    }
    return 'new'
  }

  /**
   * Delivers every frame now in order. Returns 'paused' when a reassembly must wait for room (call
   * again when room frees), 'error' when a datagram's frames are malformed (the owner drops the
   * connection; `problem` says why).
   */
  deliver(now: number): Delivery {
    const slots = this.#slots
    const mask = this.#mask
    for (;;) {
      const d = slots[this.#next & mask]
      if (d === undefined) return 'ok'
      const r = this.#process(now, d)
      if (r !== 'ok') return r
      slots[this.#next & mask] = undefined
      this.#next++
      this.#held--
      this.#heldBytes -= d.length
      this.#owner.budget.bufferedBytes -= d.length
      this.#resume = 0
    }
  }

  /**
   * The deadline passed: 'timeout' when a reassembly or a pause made no progress for too long,
   * 'ack' when the owed ack has waited `maxAckDelayMs` (the owner sends it alone).
   */
  onTimer(now: number): 'timeout' | 'ack' | undefined {
    if (now >= this.#stallAt) {
      if (this.#asm !== undefined || this.#pausedAt >= 0) return 'timeout'
      this.#stallAt = Number.POSITIVE_INFINITY
    }
    if (now >= this.#ackAt) {
      this.#ackAt = Number.POSITIVE_INFINITY
      if (this.ackPending) return 'ack'
    }
    return undefined
  }

  /** Frees everything held: the reassembly's reservation and the held datagrams. Call once, last. */
  dispose(): void {
    const budget = this.#owner.budget
    if (this.#asm !== undefined) budget.release(this.#asm.length)
    this.#asm = undefined
    budget.bufferedBytes -= this.#heldBytes
    this.#heldBytes = 0
    this.#held = 0
    this.#slots.fill(undefined)
    this.#stallAt = Number.POSITIVE_INFINITY
    this.#ackAt = Number.POSITIVE_INFINITY
  }

  // ----------------------------------------------------------------------------------------------
  // Acks.

  /** Bytes of the ACK frame `writeAckFrame` would write now. */
  ackFrameBytes(): number {
    this.#buildAck()
    return ACK_FRAME_BASE_BYTES + 8 * (this.#ack.ranges.length >> 1)
  }

  /** Writes an ACK frame (riding in DATA toward the peer) at `off`; the ack is no longer owed. */
  writeAckFrame(buf: Buffer, off: number): number {
    this.#buildAck()
    buf[off] = FR_ACK
    writeCid(buf, off + 1, this.remoteCid)
    this.#acked()
    return writeAckBody(buf, off + 9, this.#ack)
  }

  /** A standalone ACK datagram, tagged when keyed; the ack is no longer owed. */
  ackDatagram(): Buffer {
    this.#buildAck()
    const auth = this.#owner.auth
    const n = this.#ack.ranges.length >> 1
    const end = 18 + ackBodyBytes(n)
    const out = Buffer.allocUnsafe(end + (auth === undefined ? 0 : TAG_BYTES))
    writeCommon(out, this.#owner.version, T_ACK, auth === undefined ? 0 : F_KEYED)
    writeCid(out, 6, this.remoteCid)
    this.#ackCounter++
    out.writeUInt32BE(this.#ackCounter, 14)
    writeAckBody(out, 18, this.#ack)
    auth?.sign(out, end)
    this.#acked()
    return out
  }

  #acked(): void {
    this.ackPending = false
    this.ackUrgent = false
    this.#unacked = 0
    this.#ackAt = Number.POSITIVE_INFINITY
  }

  #buildAck(): void {
    if (this.#ackBuilt) return
    this.#ackBuilt = true
    const ack = this.#ack
    const slots = this.#slots
    const mask = this.#mask
    const limit = this.#next + this.#window
    let s = this.#next
    while (s < limit && slots[s & mask] !== undefined) s++
    ack.cumulative = s
    if (ack.ranges.length !== 0) ack.ranges.length = 0
    if (this.#held <= s - this.#next) return
    let start = -1
    for (let q = s + 1; q < limit; q++) {
      const present = slots[q & mask] !== undefined
      if (present && start < 0) start = q
      else if (!present && start >= 0) {
        ack.ranges.push(start, q)
        start = -1
      }
    }
    if (start >= 0) ack.ranges.push(start, limit)
    // Keep the highest ranges: they let the sender detect losses below them soonest.
    if (ack.ranges.length > 2 * MAX_ACK_RANGES) ack.ranges.splice(0, ack.ranges.length - 2 * MAX_ACK_RANGES)
  }

  // ----------------------------------------------------------------------------------------------
  // Frames.

  #process(now: number, d: Buffer): Delivery {
    const tag = (d[5]! & F_KEYED) !== 0 ? TAG_BYTES : 0
    const end = d.length - tag
    let o =
      this.#resume !== 0 ? this.#resume : DATA_HEADER_BYTES + ((d[5]! & F_CONFIRM) !== 0 ? NONCE_BYTES : 0)
    const maxFrame = this.#owner.options.maxFrameBytes
    while (o < end) {
      const type = d[o]!
      if (type === FR_MSG) {
        if (end - o < MSG_FRAME_BYTES) return this.#fail('a truncated MSG frame')
        const n = d.readUInt16BE(o + 1)
        if (end - o - MSG_FRAME_BYTES < n) return this.#fail('a MSG frame longer than its datagram')
        if (this.#asm !== undefined) return this.#fail('a whole frame in the middle of a fragmented one')
        if (n > maxFrame) return this.#fail(`a ${n}-byte frame; the limit is ${maxFrame}`)
        o += MSG_FRAME_BYTES
        this.#owner.deliver(this, new Uint8Array(d.buffer, d.byteOffset + o, n))
        o += n
      } else if (type === FR_FRAG) {
        if (end - o < FRAG_FRAME_BYTES) return this.#fail('a truncated FRAG frame')
        const total = d.readUInt32BE(o + 1)
        const offset = d.readUInt32BE(o + 5)
        const n = d.readUInt16BE(o + 9)
        if (end - o - FRAG_FRAME_BYTES < n) return this.#fail('a FRAG frame longer than its datagram')
        if (n === 0 || offset + n > total) return this.#fail('a FRAG frame outside its frame')
        let asm = this.#asm
        if (offset === 0) {
          if (asm !== undefined) return this.#fail('a new fragmented frame before the last one ended')
          if (total > maxFrame) return this.#fail(`a ${total}-byte frame; the limit is ${maxFrame}`)
          if (!this.#owner.budget.tryReserve(total)) {
            if (this.#pausedAt < 0) {
              this.#pausedAt = now
              this.#stallAt = now + this.#owner.options.reassemblyTimeoutMs
              this.#owner.counters.reassemblyWaits++
            }
            this.#resume = o
            return 'paused'
          }
          this.#pausedAt = -1
          asm = Buffer.allocUnsafe(total)
          this.#asm = asm
          this.#asmFilled = 0
        } else if (asm === undefined || asm.length !== total || offset !== this.#asmFilled) {
          return this.#fail('a fragment out of place')
        }
        d.copy(asm, offset, o + FRAG_FRAME_BYTES, o + FRAG_FRAME_BYTES + n)
        this.#asmFilled = offset + n
        o += FRAG_FRAME_BYTES + n
        if (this.#asmFilled === total) {
          this.#asm = undefined
          this.#stallAt = Number.POSITIVE_INFINITY
          this.#owner.budget.release(total)
          this.#owner.counters.reassembled++
          this.#owner.deliver(this, new Uint8Array(asm.buffer, asm.byteOffset, total))
        } else {
          this.#stallAt = now + this.#owner.options.reassemblyTimeoutMs
        }
      } else if (type === FR_ACK) {
        // Read when the datagram arrived; skipped here.
        if (end - o < ACK_FRAME_BASE_BYTES) return this.#fail('a truncated ACK frame')
        const n = d[o + 13]!
        if (n > MAX_ACK_RANGES || end - o < ACK_FRAME_BASE_BYTES + 8 * n) return this.#fail('a bad ACK frame')
        o += ACK_FRAME_BASE_BYTES + 8 * n
      } else {
        return this.#fail(`an unknown frame type ${type}`)
      }
    }
    return 'ok'
  }

  #fail(problem: string): Delivery {
    this.problem = problem
    return 'error'
  }
}
