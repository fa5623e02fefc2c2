/*
 * Theory of operation: the TCP transport.
 *
 * The transport owns a listening server, the set of live connections (see connection.ts), and a
 * peer table keyed by listen address (see peer-link.ts). A peer entry holds at most one
 * established connection used for sends, at most one dial in progress, and the frames queued while
 * it dials.
 *
 * Connection reuse. A connection is keyed by the address we dialled (outbound) or by the listen
 * address the peer stated in its handshake (inbound), and either kind carries frames both ways.
 * When two nodes dial each other at once, each ends up with two established connections to the
 * same node. Both are kept: each side goes on sending on the one it established first, and holds
 * the other as a spare that receives, takes over when the current one goes, and otherwise closes
 * when idle. Moving a busy stream of frames from one live connection to another could reorder
 * them (the peer reads the two sockets in no fixed order), so frames toward a peer change
 * connection only when the one they used is gone. At most one dial is in flight per peer, so
 * spares arise only from such races and stay few. An inbound connection that claims an address
 * already held by a different node id only receives.
 *
 * Sending. `send` copies the frame behind a length prefix and queues it on the peer's connection,
 * or on the peer entry while it dials. Dirty connections are flushed once per event-loop turn
 * (setImmediate), so every frame a turn produced for a peer leaves in one write. Past
 * `maxQueuedBytesPerPeer` (queued here plus unwritten in the socket) a frame is dropped, and the
 * drops of one turn are reported as one BACKPRESSURE event per peer.
 *
 * Failures. A dial that fails drops the peer's queued frames with one event (UNREACHABLE,
 * CONNECT_TIMEOUT, TIMEOUT or HANDSHAKE_FAILED); a broken connection drops its unwritten frames
 * (CONNECTION_LOST). A graceful close by the peer (when idle) is not an error: unwritten frames
 * go back to the peer entry, and the next connection (a spare, or a new dial) carries them. The
 * next `send` after a failure dials again.
 *
 * Handlers run inside socket callbacks and the flush; an exception from one is counted and
 * swallowed, so nothing escapes into the event loop. After `close` begins no handler runs.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import {
  checkListen,
  checkSend,
  checkSendAddress,
  DropReports,
  formatAddress,
  Id,
  type ListenOptions,
  parseAddress,
  type Transport,
  TransportError,
  type TransportHandlers,
} from '@pastry/core'
import { Connection, type ConnectionOwner } from './connection.js'
import { type ResolvedOptions, resolveOptions, type TcpTransportOptions } from './options.js'
import { PeerLink } from './peer-link.js'
import { type Counters, newCounters, type TcpTransportStats } from './stats.js'

/** A {@link Transport} over TCP, with counters. Made by {@link createTcpTransport}. */
export interface TcpTransport extends Transport {
  readonly kind: 'tcp'
  /** A snapshot of the counters and gauges; take a new one to see later changes. */
  readonly stats: TcpTransportStats
}

type State = 'idle' | 'starting' | 'listening' | 'closed'

const NO_HANDLERS: TransportHandlers = { message() {}, error() {} }

class TcpTransportImpl implements TcpTransport, ConnectionOwner {
  readonly kind = 'tcp' as const
  readonly maxFrameBytes: number
  readonly options: ResolvedOptions
  readonly counters: Counters = newCounters()
  localId: Id = Id.ZERO
  localAddress = ''
  #state: State = 'idle'
  #handlers: TransportHandlers = NO_HANDLERS
  #server: Server | undefined
  #listening: Promise<unknown> | undefined
  #closing: Promise<void> | undefined
  readonly #conns = new Set<Connection>()
  #inbound = 0
  readonly #peers = new Map<string, PeerLink>()
  #dirty: Connection[] = []
  #spare: Connection[] = []
  readonly #drops: DropReports
  #immediate: NodeJS.Immediate | undefined
  #drained: (() => void) | undefined

  constructor(options: ResolvedOptions) {
    this.options = options
    this.maxFrameBytes = options.maxFrameBytes
    this.#drops = new DropReports(options.maxQueuedBytesPerPeer)
  }

  get stats(): TcpTransportStats {
    return Object.freeze({
      ...this.counters,
      connections: this.#conns.size,
      inboundConnections: this.#inbound,
      peers: this.#peers.size,
    })
  }

  now(): number {
    return performance.now()
  }

  // ------------------------------------------------------------------------------------------------
  // Transport.

  listen(options: ListenOptions): Promise<string> {
    let host: string
    let port: number
    try {
      ;({ host, port } = checkListen(
        options,
        this.#state === 'idle' || this.#state === 'closed' ? this.#state : 'busy',
      ))
    } catch (e) {
      return Promise.reject(e)
    }
    const { address, localId, handlers } = options
    this.#state = 'starting'
    const server = createServer({ noDelay: true }, (socket) => this.#accept(socket))
    this.#server = server
    const started = new Promise<string>((resolve, reject) => {
      const onError = (err: Error): void => {
        this.#server = undefined
        if (this.#state === 'starting') this.#state = 'idle'
        reject(
          new TransportError('LISTEN_FAILED', `could not listen on ${address}: ${err.message}`, address, {
            cause: err,
          }),
        )
      }
      server.once('error', onError)
      server.listen({ host, port }, () => {
        server.off('error', onError)
        // Errors after this point (accept failures) must not crash the process.
        server.on('error', () => {})
        if (this.#state !== 'starting') {
          reject(new TransportError('CLOSED', 'the transport was closed while it started listening', address))
          return
        }
        const bound = server.address()
        const boundAddress =
          bound !== null && typeof bound === 'object' ? formatAddress(bound.address, bound.port) : address
        this.localId = localId
        this.localAddress = this.options.advertiseAddress ?? boundAddress
        this.#handlers = handlers
        this.#state = 'listening'
        resolve(boundAddress)
      })
    })
    this.#listening = started.catch(() => {})
    return started
  }

  send(to: string, frame: Uint8Array): void {
    const state = this.#state
    checkSend(to, frame, state === 'listening' || state === 'closed' ? state : 'other', this.maxFrameBytes)
    const n = frame.length
    let link = this.#peers.get(to)
    if (link === undefined) {
      checkSendAddress(to)
      link = new PeerLink(to)
      this.#peers.set(to, link)
    }
    const wire = Buffer.allocUnsafe(4 + n)
    wire.writeUInt32BE(n, 0)
    wire.set(frame, 4)
    const max = this.options.maxQueuedBytesPerPeer
    const conn = link.conn
    if (conn !== undefined) {
      if (n > conn.peerMaxFrameBytes) {
        this.#drop(link, conn.peerMaxFrameBytes)
        return
      }
      if (conn.queuedBytes() + wire.length > max) {
        this.#drop(link)
        return
      }
      conn.enqueue(wire)
      return
    }
    if (link.queueBytes + wire.length > max) {
      this.#drop(link)
      return
    }
    link.queue.push(wire)
    link.queueBytes += wire.length
    if (link.dial === undefined) this.#dial(link)
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing
    this.#state = 'closed'
    this.#handlers = NO_HANDLERS
    if (this.#immediate !== undefined) clearImmediate(this.#immediate)
    this.#immediate = undefined
    this.#dirty = []
    this.#drops.clear()
    this.#peers.clear()
    for (const conn of this.#conns) conn.destroy()
    this.#closing = this.#release()
    return this.#closing
  }

  async #release(): Promise<void> {
    await this.#listening
    const server = this.#server
    this.#server = undefined
    const serverClosed =
      server?.listening === true ? new Promise<void>((resolve) => server.close(() => resolve())) : undefined
    const socketsClosed =
      this.#conns.size === 0 ? undefined : new Promise<void>((resolve) => (this.#drained = resolve))
    await serverClosed
    await socketsClosed
  }

  // ------------------------------------------------------------------------------------------------
  // Connections.

  #accept(socket: Socket): void {
    if (this.#state !== 'listening' || this.#inbound >= this.options.maxConnections) {
      if (this.#state === 'listening') this.counters.connectionsRefused++
      socket.on('error', () => {})
      socket.destroy()
      return
    }
    this.counters.connectionsAccepted++
    this.#inbound++
    socket.setNoDelay(true)
    this.#conns.add(new Connection(this, socket, false, undefined))
  }

  #dial(link: PeerLink): void {
    const { host, port } = parseAddress(link.address)
    this.counters.connectionsDialed++
    let socket: Socket
    try {
      socket = netConnect({ host, port, noDelay: true })
    } catch (e) {
      // Node refused the address outright: report like any failed dial, but never inside send.
      const error = new TransportError(
        'UNREACHABLE',
        `could not connect to ${link.address}: ${e instanceof Error ? e.message : String(e)}`,
        link.address,
        { cause: e },
      )
      const dropped = link.queue.length
      this.counters.framesDropped += dropped
      link.queue = []
      link.queueBytes = 0
      this.#forgetIfIdle(link)
      queueMicrotask(() => this.#report(withDropped(error, dropped)))
      return
    }
    const conn = new Connection(this, socket, true, link.address)
    conn.link = link
    link.dial = conn
    this.#conns.add(conn)
  }

  established(conn: Connection): void {
    if (this.#state !== 'listening') return
    const peer = conn.peer!
    if (!conn.dialer && (peer.address === this.localAddress || conn.peerId!.equals(this.localId))) {
      return // ourselves, dialled through an alias: the outbound side of this socket does the sending
    }
    const key = conn.dialer ? conn.target! : peer.address
    let link = this.#peers.get(key)
    if (link === undefined) {
      link = new PeerLink(key)
      this.#peers.set(key, link)
    }
    if (link.dial === conn) link.dial = undefined
    conn.link = link
    const current = link.conn
    if (current === undefined) {
      link.conn = conn
    } else if (current.peerId!.equals(conn.peerId!)) {
      // A second connection to the same node (the two dialled each other at once): keep it as a
      // spare. Sends stay on the current one, so frames to the peer never change connection while
      // it lives, which keeps them in order; the spare takes over if the current one goes, and
      // closes when idle otherwise.
      link.spares.push(conn)
    } else {
      conn.link = undefined // another node claims an address we already reach: receive only
    }
    const open = link.conn
    if (open !== undefined && link.queue.length > 0) {
      const queue = link.queue
      link.queue = []
      link.queueBytes = 0
      for (const wire of queue) this.#enqueueOn(link, open, wire)
    }
    this.#forgetIfIdle(link)
  }

  /** Moves an already-accepted frame onto an open connection, checking the peer's frame limit. */
  #enqueueOn(link: PeerLink, conn: Connection, wire: Buffer): void {
    if (wire.length - 4 > conn.peerMaxFrameBytes) {
      this.#drop(link, conn.peerMaxFrameBytes)
      return
    }
    conn.enqueue(wire)
  }

  frame(conn: Connection, frame: Uint8Array): void {
    if (this.#state !== 'listening') return
    try {
      this.#handlers.message(frame, conn.peer!)
    } catch {
      this.counters.handlerErrors++
    }
  }

  detached(conn: Connection, error: TransportError | undefined): void {
    if (this.#state !== 'listening') return
    const link = conn.link
    conn.link = undefined
    if (link !== undefined && link.dial === conn) {
      // A dial that never opened: what waited for it is lost.
      link.dial = undefined
      const dropped = link.queue.length
      link.queue = []
      link.queueBytes = 0
      this.counters.framesDropped += dropped
      if (error !== undefined) this.#report(withDropped(error, dropped))
      this.#forgetIfIdle(link)
      return
    }
    if (link !== undefined && link.conn === conn) {
      link.conn = undefined
      const unsent = conn.takeUnsent()
      if (error !== undefined) {
        this.counters.framesDropped += unsent.length
        this.#report(withDropped(error, unsent.length))
      } else if (unsent.length > 0) {
        // A graceful close by the peer: what we had not written yet goes out on the next connection.
        let bytes = 0
        for (const wire of unsent) bytes += wire.length
        link.queue = unsent.concat(link.queue)
        link.queueBytes += bytes
      }
      const spare = link.spares.shift()
      if (spare !== undefined) {
        link.conn = spare
        const queue = link.queue
        link.queue = []
        link.queueBytes = 0
        for (const wire of queue) this.#enqueueOn(link, spare, wire)
      } else if (link.queue.length > 0 && link.dial === undefined) {
        this.#dial(link)
      }
      this.#forgetIfIdle(link)
      return
    }
    if (link !== undefined) {
      const i = link.spares.indexOf(conn)
      if (i >= 0) link.spares.splice(i, 1)
      this.#forgetIfIdle(link)
    }
    if (error !== undefined) this.#report(error)
  }

  closed(conn: Connection): void {
    this.#conns.delete(conn)
    if (!conn.dialer) this.#inbound--
    this.counters.connectionsClosed++
    if (this.#conns.size === 0 && this.#drained !== undefined) {
      const drained = this.#drained
      this.#drained = undefined
      drained()
    }
  }

  markDirty(conn: Connection): void {
    this.#dirty.push(conn)
    this.#schedule()
  }

  // ------------------------------------------------------------------------------------------------
  // The per-turn flush: writes, then coalesced drop reports.

  #schedule(): void {
    if (this.#immediate === undefined) this.#immediate = setImmediate(this.#flush)
  }

  readonly #flush = (): void => {
    this.#immediate = undefined
    const dirty = this.#dirty
    this.#dirty = this.#spare
    for (let i = 0; i < dirty.length; i++) dirty[i]!.flush()
    dirty.length = 0
    this.#spare = dirty
    this.#drops.flush(this.#reportDrop)
  }

  readonly #reportDrop = (error: TransportError): void => this.#report(error)

  /**
   * Drops a frame `send` accepted toward `link`: for backpressure, or, with `peerMaxFrameBytes`,
   * for being larger than the peer takes. Reported at the turn's flush, with the turn's other drops.
   */
  #drop(link: PeerLink, peerMaxFrameBytes?: number): void {
    this.counters.framesDropped++
    const first =
      peerMaxFrameBytes === undefined
        ? this.#drops.backpressure(link.address)
        : this.#drops.tooLarge(link.address, peerMaxFrameBytes)
    if (first) this.#schedule()
    this.#forgetIfIdle(link)
  }

  #forgetIfIdle(link: PeerLink): void {
    if (link.idle && this.#peers.get(link.address) === link) this.#peers.delete(link.address)
  }

  #report(error: TransportError): void {
    if (this.#state !== 'listening') return
    try {
      this.#handlers.error(error)
    } catch {
      this.counters.handlerErrors++
    }
  }
}

function withDropped(error: TransportError, dropped: number): TransportError {
  if (dropped === 0) return error
  return new TransportError(
    error.code,
    `${error.message} (${dropped} queued frame(s) dropped)`,
    error.peer,
    (error as { cause?: unknown }).cause === undefined
      ? undefined
      : { cause: (error as { cause?: unknown }).cause },
  )
}

/**
 * Makes a TCP transport. Call it once per node, pass the result to the node runtime (or call
 * `listen` yourself), and `close` it when the node stops. Throws `ConfigError` for a bad option.
 * The returned object's `stats` is a snapshot: read it again to see later counts.
 */
export function createTcpTransport(options?: TcpTransportOptions): TcpTransport {
  return new TcpTransportImpl(resolveOptions(options))
}
