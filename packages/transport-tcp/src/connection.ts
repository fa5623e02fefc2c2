/*
 * Theory of operation: one TCP connection.
 *
 * A connection is a socket plus a small state machine, owned by the transport (connection owner):
 *
 *   state       enters when                          leaves to                 deadline
 *   connecting  we dial                              handshake, closed         connectTimeoutMs
 *   handshake   the socket is up (or was accepted)   open, closing, closed     handshakeTimeoutMs
 *   open        the peer's HELLO (and AUTH) checked  closing, closed           idle / frame stall
 *   closing     a graceful end (FIN sent)            closed                    drainTimeoutMs
 *   closed      the socket is destroyed              -                         -
 *
 * Both sides send their HELLO as soon as the socket is up; with a cluster key each then sends its
 * AUTH once it holds the other's HELLO (see handshake.ts). A side sends frames only once it has
 * checked the peer, so nothing reaches an unauthenticated peer.
 *
 * Reading: bytes accumulate in a list of chunks until the frame at their head is whole, and are
 * then joined once, so a frame split across many reads costs one copy and a chunk holding many
 * frames costs none (each frame is a view into it). A length prefix above the limit (a handshake
 * message's size before the handshake, maxFrameBytes after) closes the connection as soon as its
 * four bytes arrive; nothing is allocated for it.
 *
 * Writing: frames queue on the connection, already framed, and the owner flushes every dirty
 * connection once per event-loop turn, so all the frames of one turn leave in one socket write.
 *
 * Timing: each connection holds one timer, armed for its earliest deadline. Activity only moves
 * the idle deadline later, so the timer is re-armed lazily when it fires, not on every frame.
 *
 * The connection reports to its owner exactly once when it stops carrying frames for it
 * (`detached`, with the error if there is one) and once when its socket is gone (`closed`). It
 * never throws out of a socket callback.
 */
import type { Socket } from 'node:net'
import { type Id, TransportError, type TransportPeer } from '@pastry/core'
import {
  checkAuth,
  decodeHello,
  encodeAuth,
  encodeHello,
  type HandshakeProblem,
  type Hello,
  handshakeMac,
  MAX_HANDSHAKE_BYTES,
} from './handshake.js'
import type { ResolvedOptions } from './options.js'
import type { PeerLink } from './peer-link.js'
import type { Counters } from './stats.js'

/** Where a connection is in its life; see the table at the top of this file. */
export type ConnectionState = 'connecting' | 'handshake' | 'open' | 'closing' | 'closed'

/** What a connection needs from the transport that owns it. */
export interface ConnectionOwner {
  readonly options: ResolvedOptions
  readonly counters: Counters
  readonly localId: Id
  readonly localAddress: string
  /** Monotonic milliseconds. */
  now(): number
  /** The handshake succeeded: the connection may carry frames both ways. */
  established(conn: Connection): void
  /** A frame arrived on an established connection. It is a view into a read buffer. */
  frame(conn: Connection, frame: Uint8Array): void
  /** The connection carries no more frames from us; `error` says why when it failed. Called once. */
  detached(conn: Connection, error: TransportError | undefined): void
  /** The socket is gone. Called once, last. */
  closed(conn: Connection): void
  /** The connection has frames to write; the owner calls {@link Connection.flush} soon. */
  markDirty(conn: Connection): void
}

/** A TCP connection to a peer, in either direction. Internal to the transport. */
export class Connection {
  readonly socket: Socket
  /** True when this side dialled. */
  readonly dialer: boolean
  /** The address dialled, for outbound connections. */
  readonly target: string | undefined
  /** The peer-table entry this connection dials for or sends for, if any. Kept by the owner. */
  link: PeerLink | undefined = undefined
  #state: ConnectionState
  /** True once the handshake has succeeded. */
  #established = false
  #peer: TransportPeer | undefined
  #peerId: Id | undefined
  #peerMaxFrameBytes = 0
  readonly #owner: ConnectionOwner
  readonly #remoteLabel: string
  #localHello: Uint8Array | undefined
  #remoteHello: Hello | undefined
  #expectedMac: Uint8Array | undefined
  // Reading.
  #chunks: Buffer[] = []
  #buffered = 0
  #need = 4
  // Writing.
  #out: Buffer[] = []
  #outBytes = 0
  #dirty = false
  // Timing.
  #phaseDeadline: number
  #lastActiveAt: number
  #lastReadAt: number
  #timer: NodeJS.Timeout | undefined
  #armedAt = Number.POSITIVE_INFINITY
  #detached = false

  constructor(owner: ConnectionOwner, socket: Socket, dialer: boolean, target: string | undefined) {
    this.#owner = owner
    this.socket = socket
    this.dialer = dialer
    this.target = target
    const now = owner.now()
    this.#lastActiveAt = now
    this.#lastReadAt = now
    const host = socket.remoteAddress ?? 'unknown'
    this.#remoteLabel = target ?? `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? 0}`
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('end', () => this.#onEnd())
    socket.on('error', (err: Error) => this.#onError(err))
    socket.on('close', () => this.#onClose())
    if (dialer) {
      this.#state = 'connecting'
      this.#phaseDeadline = now + owner.options.connectTimeoutMs
      socket.once('connect', () => this.#onConnect())
    } else {
      this.#state = 'handshake'
      this.#phaseDeadline = now + owner.options.handshakeTimeoutMs
      this.#sendHello()
    }
    this.#arm()
  }

  /** Where this connection is; see {@link ConnectionState}. */
  get state(): ConnectionState {
    return this.#state
  }

  /** The peer as its handshake proved it: its listen address and id. Set once established. */
  get peer(): TransportPeer | undefined {
    return this.#peer
  }

  /** The peer's node id. Set once established. */
  get peerId(): Id | undefined {
    return this.#peerId
  }

  /** The largest frame the peer accepts, from its HELLO. Set once established. */
  get peerMaxFrameBytes(): number {
    return this.#peerMaxFrameBytes
  }

  /** Bytes waiting toward the peer: queued here and buffered in the socket. */
  queuedBytes(): number {
    return this.#outBytes + this.socket.writableLength
  }

  /** Queues a framed buffer (length prefix included) for the next flush. Only while open. */
  enqueue(wire: Buffer): void {
    this.#out.push(wire)
    this.#outBytes += wire.length
    if (!this.#dirty) {
      this.#dirty = true
      this.#owner.markDirty(this)
    }
  }

  /** Writes every queued frame in one socket write. Called by the owner once per event-loop turn. */
  flush(): void {
    this.#dirty = false
    const out = this.#out
    if (out.length === 0 || this.#state !== 'open') return
    const data = out.length === 1 ? out[0]! : Buffer.concat(out, this.#outBytes)
    const c = this.#owner.counters
    c.framesSent += out.length
    c.bytesSent += this.#outBytes
    this.#out = []
    this.#outBytes = 0
    this.#lastActiveAt = this.#owner.now()
    this.socket.write(data)
  }

  /** Removes and returns the frames queued but not yet written, for the owner to requeue or drop. */
  takeUnsent(): Buffer[] {
    const out = this.#out
    this.#out = []
    this.#outBytes = 0
    return out
  }

  /** Destroys the socket at once, without a `detached` call. For the transport's close. */
  destroy(): void {
    this.#detached = true
    this.#destroy()
  }

  // ------------------------------------------------------------------------------------------------
  // Socket events.

  #onConnect(): void {
    if (this.#state !== 'connecting') return
    this.#state = 'handshake'
    this.socket.setNoDelay(true)
    this.#phaseDeadline = this.#owner.now() + this.#owner.options.handshakeTimeoutMs
    this.#sendHello()
    this.#arm()
  }

  #onData(chunk: Buffer): void {
    const owner = this.#owner
    owner.counters.bytesReceived += chunk.length
    const state = this.#state
    if (state === 'closed' || (state === 'closing' && !this.#established)) return
    const now = owner.now()
    this.#lastReadAt = now
    let buf: Buffer
    if (this.#buffered === 0) {
      buf = chunk
    } else {
      this.#chunks.push(chunk)
      this.#buffered += chunk.length
      if (this.#buffered < this.#need) return
      buf = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered)
      this.#chunks = []
      this.#buffered = 0
    }
    const len = buf.length
    let off = 0
    while (len - off >= 4) {
      const n = buf.readUInt32BE(off)
      const limit = this.#established ? owner.options.maxFrameBytes : MAX_HANDSHAKE_BYTES
      if (n > limit) {
        this.#badFrame(n, limit)
        return
      }
      if (len - off - 4 < n) break
      // A plain Uint8Array view (not a Buffer), so receivers see the type the interface names.
      const frame = new Uint8Array(buf.buffer, buf.byteOffset + off + 4, n)
      off += 4 + n
      if (this.#established) {
        owner.counters.framesReceived++
        this.#lastActiveAt = now
        owner.frame(this, frame)
      } else {
        this.#onHandshakeMessage(frame)
      }
      const s = this.#state
      if (s === 'closed' || (s === 'closing' && !this.#established)) return
    }
    if (off < len) {
      const rest = off === 0 ? buf : buf.subarray(off)
      this.#chunks.push(rest)
      this.#buffered = rest.length
      this.#need = rest.length >= 4 ? 4 + rest.readUInt32BE(0) : 4
      if (this.#state === 'open') this.#arm()
    }
  }

  #onEnd(): void {
    switch (this.#state) {
      case 'handshake':
        this.#fail(this.#handshakeCloseError('closed the connection'), 'destroy')
        return
      case 'open':
        // The peer closed gracefully (it found the connection idle): not an error. Frames not yet
        // written go back to the owner, which sends them on another connection.
        this.#fail(undefined, 'end')
        return
      default:
        return
    }
  }

  #onError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? err.message
    switch (this.#state) {
      case 'connecting':
        this.#fail(
          new TransportError(
            'UNREACHABLE',
            `could not connect to ${this.#remoteLabel}: ${code}`,
            this.#remoteLabel,
            {
              cause: err,
            },
          ),
          'destroy',
        )
        return
      case 'handshake':
        this.#fail(this.#handshakeCloseError(`reset the connection (${code})`, err), 'destroy')
        return
      case 'open':
        this.#fail(this.#lost(`the connection broke: ${code}`, err), 'destroy')
        return
      default:
        this.#destroy()
    }
  }

  #onClose(): void {
    const state = this.#state
    if (state === 'connecting' || state === 'handshake') {
      this.#fail(this.#handshakeCloseError('closed the connection'), 'destroy')
    } else if (state === 'open') {
      this.#fail(this.#lost('the connection closed'), 'destroy')
    }
    this.#state = 'closed'
    this.#clearTimer()
    this.#chunks = []
    this.#buffered = 0
    this.#out = []
    this.#outBytes = 0
    this.#owner.closed(this)
  }

  // ------------------------------------------------------------------------------------------------
  // Handshake.

  #sendHello(): void {
    const owner = this.#owner
    const { framed, message } = encodeHello({
      dialer: this.dialer,
      keyed: owner.options.clusterKey !== undefined,
      maxFrameBytes: owner.options.maxFrameBytes,
      id: owner.localId,
      address: owner.localAddress,
    })
    this.#localHello = message
    this.#writeNow(framed)
  }

  #onHandshakeMessage(msg: Uint8Array): void {
    const key = this.#owner.options.clusterKey
    const remote = this.#remoteHello
    if (remote === undefined) {
      const hello = decodeHello(msg)
      if ('kind' in hello) {
        this.#refuse(hello)
        return
      }
      if (hello.dialer === this.dialer) {
        this.#refuse({
          kind: 'refused',
          message: this.dialer
            ? 'the peer we dialled claims to have dialled us'
            : 'the peer that dialled claims to be the one dialled',
        })
        return
      }
      if (hello.keyed !== (key !== undefined)) {
        this.#refuse({
          kind: 'refused',
          message:
            key !== undefined
              ? 'the peer has no cluster key, and this node requires one'
              : 'the peer requires a cluster key, and this node has none',
        })
        return
      }
      this.#remoteHello = hello
      if (key === undefined) {
        this.#open()
        return
      }
      const local = this.#localHello!
      const dialerHello = this.dialer ? local : hello.bytes
      const acceptorHello = this.dialer ? hello.bytes : local
      this.#expectedMac = handshakeMac(key, this.dialer ? 'acceptor' : 'dialer', dialerHello, acceptorHello)
      this.#writeNow(
        encodeAuth(handshakeMac(key, this.dialer ? 'dialer' : 'acceptor', dialerHello, acceptorHello)),
      )
      return
    }
    const problem = checkAuth(msg, this.#expectedMac!)
    if (problem !== undefined) {
      this.#refuse(problem)
      return
    }
    this.#open()
  }

  #open(): void {
    const hello = this.#remoteHello!
    this.#state = 'open'
    this.#established = true
    this.#peer = Object.freeze({ address: hello.address, id: hello.id })
    this.#peerId = hello.id
    this.#peerMaxFrameBytes = hello.maxFrameBytes
    this.#localHello = undefined
    this.#expectedMac = undefined
    this.#lastActiveAt = this.#owner.now()
    this.#owner.counters.connectionsOpened++
    this.#owner.established(this)
    this.#arm()
  }

  /** A handshake message was malformed (cut off at once) or refused (closed gracefully, so the peer sees ours). */
  #refuse(problem: HandshakeProblem): void {
    this.#owner.counters.handshakeFailures++
    const error = new TransportError(
      'HANDSHAKE_FAILED',
      `handshake with ${this.#label()} failed: ${problem.message}`,
      this.#label(),
    )
    this.#fail(error, problem.kind === 'malformed' ? 'destroy' : 'end')
  }

  /** The error for a connection that ended before its handshake completed. */
  #handshakeCloseError(what: string, cause?: unknown): TransportError | undefined {
    // An inbound connection that goes away mid-handshake is a scanner or a refused peer: not news.
    if (!this.dialer) return undefined
    const options = cause === undefined ? undefined : { cause }
    if (this.#remoteHello === undefined) {
      return new TransportError(
        'UNREACHABLE',
        `${this.#remoteLabel} ${what} before its handshake (it may be at its connection limit)`,
        this.#remoteLabel,
        options,
      )
    }
    this.#owner.counters.handshakeFailures++
    return new TransportError(
      'HANDSHAKE_FAILED',
      `${this.#remoteLabel} ${what} during the handshake (it refused this node)`,
      this.#remoteLabel,
      options,
    )
  }

  #lost(message: string, cause?: unknown): TransportError {
    return new TransportError(
      'CONNECTION_LOST',
      `${message} (${this.#label()})`,
      this.#label(),
      cause === undefined ? undefined : { cause },
    )
  }

  #badFrame(n: number, limit: number): void {
    this.#owner.counters.badFrames++
    const what = this.#established ? 'a frame' : 'a handshake message'
    this.#fail(
      new TransportError(
        'BAD_FRAME',
        `${this.#label()} announced ${what} of ${n} bytes; the limit is ${limit}. Connection cut.`,
        this.#label(),
      ),
      'destroy',
    )
  }

  /** The peer's listen address when known, else the dialled address or the socket's remote address. */
  #label(): string {
    return this.target ?? this.#remoteHello?.address ?? this.#remoteLabel
  }

  // ------------------------------------------------------------------------------------------------
  // Ending.

  /** Leaves the working states once: tells the owner, then ends gracefully or destroys. */
  #fail(error: TransportError | undefined, how: 'end' | 'destroy'): void {
    const state = this.#state
    if (state === 'closing' || state === 'closed') {
      if (how === 'destroy') this.#destroy()
      return
    }
    if (!this.#detached) {
      this.#detached = true
      if (how === 'end') this.#state = 'closing'
      else this.#state = 'closed'
      this.#owner.detached(this, error)
    }
    if (how === 'end') this.#beginClosing()
    else this.#destroy()
  }

  #beginClosing(): void {
    if (this.#state === 'closed') return
    this.#state = 'closing'
    this.#phaseDeadline = this.#owner.now() + this.#owner.options.drainTimeoutMs
    // Frames still queued here were taken by the owner (to requeue or drop) before this point.
    this.#out = []
    this.#outBytes = 0
    this.socket.end()
    this.#clearTimer()
    this.#arm()
  }

  #destroy(): void {
    if (this.#state !== 'closed') this.#state = 'closed'
    this.#clearTimer()
    this.socket.destroy()
  }

  #writeNow(buf: Buffer): void {
    this.#owner.counters.bytesSent += buf.length
    this.socket.write(buf)
  }

  // ------------------------------------------------------------------------------------------------
  // Deadlines.

  #deadline(): number {
    switch (this.#state) {
      case 'connecting':
      case 'handshake':
      case 'closing':
        return this.#phaseDeadline
      case 'open': {
        const idle = this.#lastActiveAt + this.#owner.options.idleTimeoutMs
        if (this.#buffered === 0) return idle
        return Math.min(idle, this.#lastReadAt + this.#owner.options.frameStallTimeoutMs)
      }
      default:
        return Number.POSITIVE_INFINITY
    }
  }

  #arm(): void {
    const at = this.#deadline()
    if (at === Number.POSITIVE_INFINITY) {
      this.#clearTimer()
      return
    }
    if (this.#timer !== undefined && this.#armedAt <= at) return
    this.#clearTimer()
    this.#armedAt = at
    const delay = Math.max(1, Math.ceil(at - this.#owner.now()))
    this.#timer = setTimeout(this.#onTimer, delay)
    this.#timer.unref()
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#armedAt = Number.POSITIVE_INFINITY
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined
    this.#armedAt = Number.POSITIVE_INFINITY
    const state = this.#state
    if (state === 'closed') return
    const now = this.#owner.now()
    if (now < this.#deadline()) {
      this.#arm()
      return
    }
    const options = this.#owner.options
    const c = this.#owner.counters
    switch (state) {
      case 'connecting':
        c.timeouts++
        this.#fail(
          new TransportError(
            'CONNECT_TIMEOUT',
            `connecting to ${this.#remoteLabel} took more than ${options.connectTimeoutMs} ms`,
            this.#remoteLabel,
          ),
          'destroy',
        )
        return
      case 'handshake':
        c.timeouts++
        this.#fail(
          new TransportError(
            'TIMEOUT',
            `${this.#label()} did not complete the handshake within ${options.handshakeTimeoutMs} ms`,
            this.#label(),
          ),
          'destroy',
        )
        return
      case 'open':
        if (this.#buffered > 0 && now >= this.#lastReadAt + options.frameStallTimeoutMs) {
          c.timeouts++
          this.#fail(
            new TransportError(
              'TIMEOUT',
              `${this.#label()} stalled mid-frame for more than ${options.frameStallTimeoutMs} ms`,
              this.#label(),
            ),
            'destroy',
          )
        } else {
          this.#fail(undefined, 'end') // idle: close quietly
        }
        return
      case 'closing':
        this.#destroy()
        return
    }
  }
}
