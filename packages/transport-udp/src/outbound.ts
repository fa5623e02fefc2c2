/*
 * Theory of operation: the sending end of one connection (this node → one peer address).
 *
 * No socket and no clock: every call that depends on time takes `now` (monotonic ms), and datagrams
 * leave through the owner's `transmit`. The transport drives it; tests drive it by hand.
 *
 *   state   enters when                      leaves to          deadline (one, `deadline`)
 *   hello   made, on the first `send`        open, closed       HELLO retransmission
 *   open    the peer's REPLY echoed our nonce closed            DATA retransmission (RTO)
 *   closed  given up, reset, idle, or close  -                  -
 *
 * Handshake. `start` sends a HELLO with a fresh connection id and nonce, and resends it on the RTO
 * (backing off) until a REPLY that echoes the nonce arrives, or gives up after maxRetransmissions.
 * The REPLY names the peer's connection id, which every DATA is addressed to, and the peer's nonce,
 * which DATA datagrams echo ("confirm") until the first ack shows the peer opened its end.
 *
 * Sending. Frames queue here (copied) and are cut into DATA datagrams by `flush`, once per
 * event-loop turn: small frames share a datagram (MSG frames), a frame too large for a datagram of
 * its own is split into FRAG frames, and an ack for the peer's traffic toward us may ride in the
 * first datagram. Each DATA datagram has the next sequence number, is kept until acknowledged, and
 * at most `window` of them are in flight (the smaller of ours and the peer's receive window).
 *
 * Acknowledgement and loss. An ack names a cumulative sequence number and up to 16 ranges above it
 * (selective acks); acknowledged datagrams are released at once. The largest newly acknowledged
 * datagram gives a round-trip sample if it was sent once (Karn's rule). A datagram is deemed lost,
 * and sent again at once, when a datagram three or more numbers above it, sent after its own last
 * transmission, has been acknowledged (fast retransmit). Otherwise the RTO timer (RFC 6298: armed
 * when a datagram leaves and none is timed, restarted by every ack of new data, stopped when
 * nothing is in flight) resends the oldest unacknowledged datagrams and doubles the RTO. After
 * maxRetransmissions timeouts in a row without an ack of new data the connection gives up.
 *
 * Retransmissions resend the same bytes: same sequence number, same tag.
 */
import type { Id } from '@pastry/core'
import type { Authenticator } from './auth.js'
import type { ResolvedOptions } from './options.js'
import { RttEstimator } from './rtt.js'
import type { Counters } from './stats.js'
import {
  type AckInfo,
  DATA_HEADER_BYTES,
  encodeHello,
  F_CONFIRM,
  F_KEYED,
  FR_FRAG,
  FR_MSG,
  FRAG_FRAME_BYTES,
  type Introduction,
  MSG_FRAME_BYTES,
  NONCE_BYTES,
  type Reply,
  T_DATA,
  TAG_BYTES,
  writeCid,
  writeCommon,
} from './wire.js'

/** A fragment is not started in the tail of a datagram with less room than this. */
const MIN_FRAGMENT_BYTES = 256
/** The most datagrams one timeout resends. */
const MAX_RESEND_PER_TIMEOUT = 8
/** How far above a datagram an acknowledged one must be for the first to count as lost. */
const LOSS_THRESHOLD_PACKETS = 3

/** What a connection needs from its owner. */
export interface OutboundHost {
  readonly options: ResolvedOptions
  readonly counters: Counters
  readonly version: number
  readonly auth: Authenticator | undefined
  /** Where the local node says it listens (its HELLO carries it). */
  readonly localAddress: string
  readonly localId: Id
  /** Sends a datagram to the connection's peer. The bytes are not changed afterwards. */
  transmit(conn: OutboundConn, datagram: Buffer): void
  /** A queued frame is larger than the peer accepts (`peerMaxFrameBytes`); it was dropped. */
  oversize(conn: OutboundConn, peerMaxFrameBytes: number): void
}

/** Something that can write an ACK frame into a datagram (the peer's traffic toward us). */
export interface AckSource {
  /** Bytes the ACK frame takes. */
  ackFrameBytes(): number
  /** Writes the ACK frame at `off` and returns the offset after it; the ack counts as sent. */
  writeAckFrame(buf: Buffer, off: number): number
}

export type OutboundState = 'hello' | 'open' | 'closed'

interface SentPacket {
  readonly seq: number
  readonly bytes: Buffer
  /** When it was last transmitted. */
  sentAt: number
  transmissions: number
  /** Frames whose last byte is in this datagram. */
  readonly completes: number
}

/** The sending end of a connection to one peer address. Internal to the transport. */
export class OutboundConn {
  /** The address `send` was given. */
  readonly address: string
  /** The same, parsed: where datagrams go. */
  readonly host: string
  readonly port: number
  readonly localCid: number
  readonly rtt: RttEstimator
  state: OutboundState = 'hello'
  /** The peer's connection id, once open: every DATA is addressed to it. */
  remoteCid = 0
  /** What the peer's REPLY said about it, once open. */
  peer: Introduction | undefined = undefined
  /** The earliest time `onTimer` has work; Infinity when none. */
  deadline = Number.POSITIVE_INFINITY
  /** Last time anything was sent or acknowledged. */
  lastActiveAt: number
  /** The highest counter of a standalone ACK accepted, to reject stale and replayed ones. */
  lastAckCounter = 0
  /** Set by the owner while the connection waits in its flush list. */
  dirty = false
  /** Bytes of frames queued and not yet wholly cut into datagrams. */
  queuedBytes = 0
  /** Bytes of datagrams in flight. */
  flightBytes = 0
  /** Datagrams in flight (sent, not acknowledged). */
  inFlight = 0
  readonly #owner: OutboundHost
  readonly #nonce: Buffer
  #hello: Buffer | undefined = undefined
  #started = false
  #helloSentAt = 0
  #helloTransmissions = 0
  /** The peer's nonce, echoed in DATA until the first ack. */
  #confirm: Buffer | undefined = undefined
  #queue: (Buffer | undefined)[] = []
  #qHead = 0
  #headOffset = 0
  #slots: (SentPacket | undefined)[]
  readonly #mask: number
  #base = 0
  #next = 0
  #window: number
  #maxDatagram: number
  #timeouts = 0
  #largestAcked = -1
  #largestAckedSentAt = 0
  #everAcked = false

  constructor(
    owner: OutboundHost,
    address: string,
    host: string,
    port: number,
    localCid: number,
    nonce: Buffer,
    now: number,
  ) {
    this.#owner = owner
    this.address = address
    this.host = host
    this.port = port
    this.localCid = localCid
    this.#nonce = nonce
    this.lastActiveAt = now
    const o = owner.options
    this.rtt = new RttEstimator({
      initialRtoMs: o.initialRtoMs,
      minRtoMs: o.minRtoMs,
      maxRtoMs: o.maxRtoMs,
      granularityMs: 1,
    })
    this.#window = o.windowPackets
    this.#maxDatagram = o.maxDatagramBytes
    let size = 1
    while (size < o.windowPackets) size *= 2
    this.#slots = new Array(size).fill(undefined)
    this.#mask = size - 1
  }

  /** True once the HELLO has been sent. */
  get started(): boolean {
    return this.#started
  }

  /** Frames waiting to be cut into datagrams (a partly sent one included). */
  get queuedFrames(): number {
    return this.#queue.length - this.#qHead
  }

  /** True when nothing is queued or in flight. */
  get idle(): boolean {
    return this.inFlight === 0 && this.#qHead === this.#queue.length
  }

  /** True when a sent datagram was ever acknowledged. */
  get everAcked(): boolean {
    return this.#everAcked
  }

  /** True when the sequence numbers of this connection are used up (`maxPacketsPerConnection`). */
  get exhausted(): boolean {
    return this.#next >= this.#owner.options.maxPacketsPerConnection
  }

  /** True when `flush` would send something now. */
  get canSend(): boolean {
    return (
      this.state === 'open' &&
      this.#qHead < this.#queue.length &&
      this.#next - this.#base < this.#window &&
      !this.exhausted
    )
  }

  /** HELLO transmissions so far. */
  get helloTransmissions(): number {
    return this.#helloTransmissions
  }

  /** Sends the HELLO. Call once, when the connection is first flushed. */
  start(now: number): void {
    const owner = this.#owner
    const auth = owner.auth
    const hello = encodeHello(owner.version, auth !== undefined, {
      srcCid: this.localCid,
      nonce: this.#nonce,
      id: owner.localId,
      maxFrameBytes: owner.options.maxFrameBytes,
      window: owner.options.windowPackets,
      maxDatagramBytes: owner.options.maxDatagramBytes,
      address: owner.localAddress,
    })
    auth?.sign(hello, hello.length - TAG_BYTES)
    this.#hello = hello
    this.#started = true
    this.#helloSentAt = now
    this.#helloTransmissions = 1
    this.lastActiveAt = now
    this.deadline = now + this.rtt.rto
    owner.counters.handshakesStarted++
    owner.transmit(this, hello)
  }

  /** Copies `frame` onto the queue. The owner checked the size and the backpressure limit. */
  enqueue(frame: Uint8Array): void {
    const copy = Buffer.allocUnsafe(frame.length)
    copy.set(frame)
    this.#queue.push(copy)
    this.queuedBytes += frame.length
  }

  /**
   * A REPLY for this connection. Returns false (and changes nothing) unless it echoes our nonce
   * while we wait for one. On success the connection is open and the caller flushes it.
   */
  onReply(now: number, reply: Reply): boolean {
    if (this.state !== 'hello' || this.#hello === undefined || !reply.echo.equals(this.#nonce)) return false
    // Karn's rule: a HELLO sent more than once gives no round-trip sample.
    if (this.#helloTransmissions === 1) this.rtt.sample(now - this.#helloSentAt)
    this.state = 'open'
    this.remoteCid = reply.srcCid
    this.peer = reply
    this.#confirm = reply.nonce
    this.#window = Math.min(this.#owner.options.windowPackets, reply.window)
    this.#maxDatagram = Math.min(this.#owner.options.maxDatagramBytes, reply.maxDatagramBytes)
    this.#hello = undefined
    this.#timeouts = 0
    this.deadline = Number.POSITIVE_INFINITY
    this.lastActiveAt = now
    return true
  }

  /**
   * Cuts queued frames into DATA datagrams and transmits them, while the window allows. `ack`, when
   * given, rides in the first datagram (unless it would split a frame that fits a datagram alone).
   * `scratch` is a buffer of at least maxDatagramBytes that the owner lends for the call.
   */
  flush(now: number, ack: AckSource | undefined, scratch: Buffer): void {
    if (this.state !== 'open') return
    const owner = this.#owner
    const auth = owner.auth
    const tagBytes = auth === undefined ? 0 : TAG_BYTES
    const peerMax = this.peer!.maxFrameBytes
    let ackSource = ack
    while (this.canSend) {
      const confirm = this.#confirm
      const fixed = DATA_HEADER_BYTES + (confirm === undefined ? 0 : NONCE_BYTES)
      const limit = this.#maxDatagram - tagBytes
      const space = limit - fixed
      let head = this.#queue[this.#qHead]!
      if (this.#headOffset === 0 && head.length > peerMax) {
        this.#dropHead()
        owner.oversize(this, peerMax)
        continue
      }
      writeCommon(
        scratch,
        owner.version,
        T_DATA,
        (auth === undefined ? 0 : F_KEYED) | (confirm === undefined ? 0 : F_CONFIRM),
      )
      writeCid(scratch, 6, this.remoteCid)
      const seq = this.#next
      scratch.writeUInt32BE(seq, 14)
      let o = DATA_HEADER_BYTES
      if (confirm !== undefined) {
        confirm.copy(scratch, o, 0, NONCE_BYTES)
        o += NONCE_BYTES
      }
      if (ackSource !== undefined) {
        const ackBytes = ackSource.ackFrameBytes()
        const alone = MSG_FRAME_BYTES + head.length
        const splits = this.#headOffset === 0 && alone <= space && alone > space - ackBytes
        if (!splits && ackBytes <= space - MSG_FRAME_BYTES) {
          o = ackSource.writeAckFrame(scratch, o)
          owner.counters.acksPiggybacked++
          ackSource = undefined
        }
      }
      let frames = 0
      let completes = 0
      for (;;) {
        if (this.#headOffset === 0 && head.length > peerMax) break // dropped at the top of the next datagram
        const off = this.#headOffset
        if (off === 0 && MSG_FRAME_BYTES + head.length <= limit - o) {
          scratch[o] = FR_MSG
          scratch.writeUInt16BE(head.length, o + 1)
          head.copy(scratch, o + MSG_FRAME_BYTES)
          o += MSG_FRAME_BYTES + head.length
          frames++
          completes++
          this.queuedBytes -= head.length
          this.#advance()
        } else {
          // Too large for what is left: on its own datagram if it fits one, else a fragment here.
          if (off === 0 && MSG_FRAME_BYTES + head.length <= space && frames > 0) break
          const room = limit - o - FRAG_FRAME_BYTES
          if (frames > 0 && room < MIN_FRAGMENT_BYTES) break
          const take = Math.min(head.length - off, room)
          scratch[o] = FR_FRAG
          scratch.writeUInt32BE(head.length, o + 1)
          scratch.writeUInt32BE(off, o + 5)
          scratch.writeUInt16BE(take, o + 9)
          head.copy(scratch, o + FRAG_FRAME_BYTES, off, off + take)
          o += FRAG_FRAME_BYTES + take
          frames++
          this.queuedBytes -= take
          if (off + take < head.length) {
            this.#headOffset = off + take
            break
          }
          completes++
          this.#advance()
        }
        if (this.#qHead === this.#queue.length) break
        head = this.#queue[this.#qHead]!
      }
      const bytes = Buffer.allocUnsafe(o + tagBytes)
      scratch.copy(bytes, 0, 0, o)
      auth?.sign(bytes, o)
      const packet: SentPacket = { seq, bytes, sentAt: now, transmissions: 1, completes }
      this.#slots[seq & this.#mask] = packet
      this.#next = seq + 1
      this.inFlight++
      this.flightBytes += bytes.length
      owner.counters.framesSent += completes
      if (this.deadline === Number.POSITIVE_INFINITY) this.deadline = now + this.rtt.rto
      this.lastActiveAt = now
      owner.transmit(this, bytes)
    }
  }

  /**
   * An ack from the peer (standalone, or riding in its DATA). Releases what it acknowledges, takes
   * a round-trip sample, restarts the timer, and resends datagrams it shows lost. Returns true when
   * it acknowledged something new.
   */
  onAck(now: number, ack: AckInfo): boolean {
    if (this.state !== 'open') return false
    const slots = this.#slots
    const mask = this.#mask
    const next = this.#next
    let newest: SentPacket | undefined
    const cumulative = Math.min(ack.cumulative, next)
    for (let s = this.#base; s < cumulative; s++) {
      const p = slots[s & mask]
      if (p === undefined) continue
      this.#release(p)
      if (newest === undefined || p.seq > newest.seq) newest = p
    }
    const ranges = ack.ranges
    for (let i = 0; i < ranges.length; i += 2) {
      const end = Math.min(ranges[i + 1]!, next)
      for (let s = Math.max(ranges[i]!, this.#base); s < end; s++) {
        const p = slots[s & mask]
        if (p === undefined) continue
        this.#release(p)
        if (newest === undefined || p.seq > newest.seq) newest = p
      }
    }
    let base = Math.max(this.#base, cumulative)
    while (base < next && slots[base & mask] === undefined) base++
    this.#base = base
    if (newest === undefined) return false
    this.#everAcked = true
    this.#confirm = undefined
    this.#timeouts = 0
    this.lastActiveAt = now
    // Karn's rule: only a datagram sent once times the round trip.
    if (newest.transmissions === 1) this.rtt.sample(now - newest.sentAt)
    if (newest.seq > this.#largestAcked) {
      this.#largestAcked = newest.seq
      this.#largestAckedSentAt = newest.sentAt
      const lastLost = Math.min(newest.seq - LOSS_THRESHOLD_PACKETS, next - 1)
      for (let s = base; s <= lastLost; s++) {
        const p = slots[s & mask]
        if (p !== undefined && p.sentAt < this.#largestAckedSentAt) this.#resend(p, now)
      }
    }
    this.deadline = this.inFlight > 0 ? now + this.rtt.rto : Number.POSITIVE_INFINITY
    return true
  }

  /**
   * The deadline passed: resend (HELLO or the oldest DATA) and back off, or give up. Returns
   * 'giveUp' when the owner must close the connection; it changes nothing itself then.
   */
  onTimer(now: number): 'giveUp' | undefined {
    if (now < this.deadline) return undefined
    const max = this.#owner.options.maxRetransmissions
    if (this.state === 'hello') {
      if (this.#hello === undefined) {
        this.deadline = Number.POSITIVE_INFINITY
        return undefined
      }
      if (this.#helloTransmissions > max) return 'giveUp'
      this.rtt.backOff()
      this.#helloTransmissions++
      this.#helloSentAt = now
      this.#owner.counters.retransmissions++
      this.#owner.counters.timeoutRetransmissions++
      this.deadline = now + this.rtt.rto
      this.#owner.transmit(this, this.#hello)
      return undefined
    }
    if (this.state !== 'open' || this.inFlight === 0) {
      this.deadline = Number.POSITIVE_INFINITY
      return undefined
    }
    if (this.#timeouts >= max) return 'giveUp'
    this.#timeouts++
    const rto = this.rtt.rto
    let resent = 0
    for (let s = this.#base; s < this.#next && resent < MAX_RESEND_PER_TIMEOUT; s++) {
      const p = this.#slots[s & this.#mask]
      if (p === undefined) continue
      // The oldest always; the others when their own last transmission is an RTO old.
      if (resent > 0 && now - p.sentAt < rto) continue
      this.#resend(p, now)
      this.#owner.counters.timeoutRetransmissions++
      resent++
    }
    this.rtt.backOff()
    this.deadline = now + this.rtt.rto
    return undefined
  }

  /**
   * Closes the connection: forgets the queue and what is in flight. Returns how many frames that
   * dropped (queued ones, and those whose last byte was in an unacknowledged datagram).
   */
  abandon(): number {
    let dropped = this.#queue.length - this.#qHead
    for (let s = this.#base; s < this.#next; s++) {
      const p = this.#slots[s & this.#mask]
      if (p !== undefined) dropped += p.completes
    }
    this.state = 'closed'
    this.deadline = Number.POSITIVE_INFINITY
    this.#queue = []
    this.#qHead = 0
    this.#headOffset = 0
    this.#slots.fill(undefined)
    this.#hello = undefined
    this.queuedBytes = 0
    this.flightBytes = 0
    this.inFlight = 0
    return dropped
  }

  /**
   * Takes the frames not yet sent (none partly sent: call it only when nothing is in flight and
   * the head is whole), for a connection that replaces this exhausted one.
   */
  takeQueue(): Buffer[] {
    const out = this.#queue.slice(this.#qHead) as Buffer[]
    this.#queue = []
    this.#qHead = 0
    this.queuedBytes = 0
    return out
  }

  /** Queues frames taken from another connection, in order, before anything queued here. */
  adoptQueue(frames: readonly Buffer[]): void {
    if (frames.length === 0) return
    const rest = this.#queue.slice(this.#qHead)
    this.#queue = [...frames, ...rest]
    this.#qHead = 0
    for (const f of frames) this.queuedBytes += f.length
  }

  #release(p: SentPacket): void {
    this.#slots[p.seq & this.#mask] = undefined
    this.inFlight--
    this.flightBytes -= p.bytes.length
  }

  #resend(p: SentPacket, now: number): void {
    p.sentAt = now
    p.transmissions++
    this.#owner.counters.retransmissions++
    this.lastActiveAt = now
    this.#owner.transmit(this, p.bytes)
  }

  #advance(): void {
    this.#queue[this.#qHead] = undefined
    this.#qHead++
    this.#headOffset = 0
    if (this.#qHead === this.#queue.length) {
      this.#queue = []
      this.#qHead = 0
    } else if (this.#qHead >= 1024 && this.#qHead * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#qHead)
      this.#qHead = 0
    }
  }

  #dropHead(): void {
    const head = this.#queue[this.#qHead]!
    this.queuedBytes -= head.length
    this.#advance()
  }
}
