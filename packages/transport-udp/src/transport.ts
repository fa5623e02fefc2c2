/*
 * Theory of operation: the UDP transport.
 *
 * One socket (udp4 or udp6, chosen from the bound host) carries every datagram. Messages travel on
 * connections: a connection is one direction of traffic, from the node that opened it (outbound
 * end, outbound.ts) to the peer (inbound end, inbound.ts); each side names its end by a random
 * connection id (cid), and every datagram after the HELLO is addressed to the receiver's cid. A node
 * holds at most one outbound connection per peer address, so the frames it sends a peer travel in
 * one sequence-numbered stream, and arrive in order. Traffic the other way runs on the peer's own
 * outbound connection.
 *
 * Opening (1 round trip before data):
 *   A → B  HELLO  (A's cid a, A's fresh nonce nA, A's id, listen address and limits)
 *   B → A  REPLY  (to a: B's new cid b, echo of nA, B's fresh nonce nB, B's id, address, limits)
 *   A → B  DATA   (to b, seq 0, 1, ...; each carries the echo of nB until B's first ack)
 * B keeps an answered HELLO as a bounded, expiring "pending" entry, and opens its end only when a
 * DATA datagram echoes nB; A opens its end only when a REPLY echoes nA. Acks travel B → A, to a.
 *
 * Replay protection. With a cluster key every datagram is tagged (auth.ts), so only key holders can
 * make one; what remains is replay of recorded ones, which this design rejects:
 *   - DATA, ACK and RESET are addressed to a cid, a random 53-bit number drawn for each connection.
 *     A datagram recorded in an earlier run of the receiver, or on a connection it has since closed,
 *     names a cid it does not hold, and is dropped (`unknownConnection`).
 *   - on a live connection, a DATA datagram's sequence number was already delivered or is held: a
 *     duplicate, acknowledged and dropped (`duplicatesDropped`); a standalone ACK carries a counter
 *     that must grow (`replaysRejected`). An ack riding in DATA is covered by that DATA's number.
 *   - a connection end opens only against a fresh nonce of the receiver's own: a replayed HELLO
 *     earns a REPLY with a new nonce that the replayer cannot echo under the tag; a replayed REPLY
 *     or confirming DATA echoes a nonce the receiver no longer (or never) waits for. Nonces are
 *     single-use: a pending entry is consumed when its connection opens.
 * So an attacker who records everything, even from an earlier run of a peer, can make a node answer
 * a HELLO, but never deliver a frame twice, nor deliver one on a connection of its own making.
 *
 * Batching. Once per turn of the event loop (setImmediate), `#flush` cuts what each outbound
 * connection has queued into datagrams (every frame a turn produced for a peer shares datagrams),
 * an ack owed to that peer riding in the first; then it sends the acks that found no DATA: urgent
 * ones (for out-of-order or duplicate datagrams, or after 8 datagrams) and those that waited
 * `maxAckDelayMs` for DATA to ride in (the timer hands them to the turn's flush, so that DATA made
 * in the same turn can still carry them). A frame sent from outside any receive callback (a timer,
 * the application) to an open connection with nothing in flight does not wait for the turn: it
 * leaves inside `send` (Nagle's rule: with nothing unacknowledged there is nothing to wait for),
 * and on loopback or a LAN the peer may read it in the same turn; toward a connection still
 * opening, it leaves on a microtask, as soon as the caller's callback returns.
 *
 * One real timer serves every connection's deadline (retransmission, delayed ack, reassembly) and
 * a periodic sweep (idle connections, expired pending handshakes). It is armed for the earliest,
 * re-armed lazily when it fires early (deadlines mostly move later), and re-armed for an earlier
 * deadline at the turn's flush rather than at once, off the path of the frame being sent or
 * delivered; a deadline that moved on meanwhile (an owed ack that rode in DATA) is not armed for.
 *
 * Failures become error events: a HELLO unanswered after maxRetransmissions is UNREACHABLE, a
 * connection without acks for as many timeouts is CONNECTION_LOST, a RESET from the peer (it no
 * longer knows the connection) is CONNECTION_LOST, a refused HELLO is HANDSHAKE_FAILED (or
 * UNREACHABLE when the peer is full); each drops the connection's frames, and the next `send`
 * opens a new connection. Bad input is dropped and counted; nothing a datagram holds can throw out
 * of the socket callback. Handlers that throw are counted and swallowed. After `close` begins no
 * handler runs.
 */
import { randomBytes } from 'node:crypto'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { lookup as dnsLookup } from 'node:dns'
import { isIP } from 'node:net'
import {
  checkListen,
  checkSend,
  checkSendAddress,
  DropReports,
  formatAddress,
  Id,
  type ListenOptions,
  PROTOCOL_VERSION,
  parseAddress,
  type Transport,
  TransportError,
  type TransportHandlers,
} from '@pastry/core'
import { Authenticator } from './auth.js'
import { FaultInjector } from './faults.js'
import { InboundConn, type InboundHost, ReceiveBudget } from './inbound.js'
import { type ResolvedOptions, resolveOptions, type UdpTransportOptions } from './options.js'
import { OutboundConn, type OutboundHost } from './outbound.js'
import { type Counters, newCounters, type UdpTransportStats } from './stats.js'
import {
  type AckInfo,
  COMMON_BYTES,
  DATA_HEADER_BYTES,
  decodeHello,
  decodeReply,
  encodeRefuse,
  encodeReply,
  encodeReset,
  F_CONFIRM,
  F_KEYED,
  FR_ACK,
  type Hello,
  MAGIC,
  NONCE_BYTES,
  REFUSE_BAD_TAG,
  REFUSE_FULL,
  REFUSE_KEY_REQUIRED,
  REFUSE_KEY_UNEXPECTED,
  REFUSE_VERSION,
  readAckBody,
  readCid,
  T_ACK,
  T_DATA,
  T_HELLO,
  T_REFUSE,
  T_REPLY,
  T_RESET,
  TAG_BYTES,
} from './wire.js'

/** A {@link Transport} over UDP, with counters. Made by {@link createUdpTransport}. */
export interface UdpTransport extends Transport {
  readonly kind: 'udp'
  /** A snapshot of the counters and gauges; take a new one to see later changes. */
  readonly stats: UdpTransportStats
}

type State = 'idle' | 'starting' | 'listening' | 'closed'

const NO_HANDLERS: TransportHandlers = { message() {}, error() {} }

/** What the transport holds toward one peer address. */
class PeerLink {
  readonly address: string
  readonly host: string
  readonly port: number
  /** Our connection to this address, in handshake or open. */
  out: OutboundConn | undefined = undefined
  /** Connections from the node that states this listen address (usually one). */
  inbound: InboundConn[] = []

  constructor(address: string, host: string, port: number) {
    this.address = address
    this.host = host
    this.port = port
  }

  get idle(): boolean {
    return this.out === undefined && this.inbound.length === 0
  }
}

/** The first connection from `link`'s peer that owes an ack, to ride in DATA toward it. */
function ackOwedTo(link: PeerLink): InboundConn | undefined {
  const inbound = link.inbound
  for (let i = 0; i < inbound.length; i++) if (inbound[i]!.ackPending) return inbound[i]
  return undefined
}

/** An answered HELLO, waiting for the DATA that echoes our nonce. */
interface Pending {
  readonly localCid: number
  readonly hello: Hello
  readonly nonce: Buffer
  readonly reply: Buffer
  expiresAt: number
}

/** A token bucket: at most `burst` at once, refilled at `perSecond`. */
class Bucket {
  #tokens: number
  #at: number
  readonly #burst: number
  readonly #perMs: number

  constructor(burst: number, perSecond: number, now: number) {
    this.#tokens = burst
    this.#burst = burst
    this.#perMs = perSecond / 1000
    this.#at = now
  }

  take(now: number): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#perMs)
    this.#at = now
    if (this.#tokens < 1) return false
    this.#tokens--
    return true
  }
}

const TWO_32 = 4294967296
/**
 * How many UDP transports of this process are handling a received datagram right now (0 or 1; a
 * handler that makes another transport receive would nest). Frames sent meanwhile are answers and
 * forwards, which the turn's flush batches; frames sent outside (timers, the application) to an idle
 * connection leave at once. Shared by every transport of the process, so that nodes sharing a
 * process (tests, benchmarks) batch each other's forwards too.
 */
let receiving = 0

class UdpTransportImpl implements UdpTransport, OutboundHost, InboundHost {
  readonly kind = 'udp' as const
  readonly maxFrameBytes: number
  readonly options: ResolvedOptions
  readonly counters: Counters = newCounters()
  readonly version = PROTOCOL_VERSION
  readonly auth: Authenticator | undefined
  readonly budget: ReceiveBudget
  localId: Id = Id.ZERO
  localAddress = ''
  #state: State = 'idle'
  #handlers: TransportHandlers = NO_HANDLERS
  #socket: Socket | undefined
  #type: 'udp4' | 'udp6' = 'udp4'
  #dualStack = false
  #listening: Promise<unknown> | undefined
  #closing: Promise<void> | undefined
  readonly #faults: FaultInjector | undefined
  readonly #peers = new Map<string, PeerLink>()
  readonly #outByLocal = new Map<number, OutboundConn>()
  readonly #outByRemote = new Map<number, OutboundConn>()
  readonly #inByLocal = new Map<number, InboundConn>()
  readonly #inByRemote = new Map<number, InboundConn>()
  readonly #pending = new Map<number, Pending>()
  readonly #pendingByRemote = new Map<number, Pending>()
  #dirtyOut: OutboundConn[] = []
  #spareOut: OutboundConn[] = []
  #dirtyAck: InboundConn[] = []
  #spareAck: InboundConn[] = []
  readonly #drops: DropReports
  #waiters: InboundConn[] = []
  #waking = false
  #immediate: NodeJS.Immediate | undefined
  #microtask = false
  readonly #timed = new Set<OutboundConn | InboundConn>()
  #timer: NodeJS.Timeout | undefined
  #armedAt = Number.POSITIVE_INFINITY
  /** The earliest deadline set since the timer was last armed, if earlier than `#armedAt`. */
  #armWanted = Number.POSITIVE_INFINITY
  #sweepAt = Number.POSITIVE_INFINITY
  readonly #sweepIntervalMs: number
  readonly #scratch: Buffer
  readonly #ack: AckInfo = { cumulative: 0, ranges: [] }
  /** The IP family (4, 6, or 0 for a name) of hosts datagrams were sent to, at most 1024. */
  readonly #families = new Map<string, number>()
  readonly #controlBucket: Bucket
  readonly #eventBucket: Bucket

  constructor(options: ResolvedOptions) {
    this.options = options
    this.maxFrameBytes = options.maxFrameBytes
    this.auth = options.clusterKey === undefined ? undefined : new Authenticator(options.clusterKey)
    this.budget = new ReceiveBudget(options)
    this.#drops = new DropReports(options.maxQueuedBytesPerPeer)
    this.#faults = options.faults === undefined ? undefined : new FaultInjector(options.faults, this.counters)
    this.#scratch = Buffer.alloc(options.maxDatagramBytes)
    this.#sweepIntervalMs = Math.max(
      10,
      Math.floor(Math.min(options.idleTimeoutMs, options.handshakeTimeoutMs) / 2),
    )
    const now = this.now()
    this.#controlBucket = new Bucket(200, 200, now)
    this.#eventBucket = new Bucket(20, 10, now)
  }

  get stats(): UdpTransportStats {
    let outbound = 0
    let inFlight = 0
    let queued = 0
    for (const conn of this.#outByLocal.values()) {
      outbound++
      inFlight += conn.inFlight
      queued += conn.queuedBytes + conn.flightBytes
    }
    return Object.freeze({
      ...this.counters,
      peers: this.#peers.size,
      connections: outbound + this.#inByLocal.size,
      inboundConnections: this.#inByLocal.size,
      pendingHandshakes: this.#pending.size,
      packetsInFlight: inFlight,
      queuedBytes: queued,
      reassemblies: this.budget.reassemblies,
      reassemblyBytes: this.budget.reassemblyBytes,
      bufferedBytes: this.budget.bufferedBytes,
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
    const type = host.includes(':') ? 'udp6' : 'udp4'
    this.#type = type
    this.#dualStack = type === 'udp6' && isIP(host) === 6 && /^[0:]*$/.test(host.replace(/:/g, ''))
    const socket = createSocket({ type, lookup: this.#lookup })
    this.#socket = socket
    const started = new Promise<string>((resolve, reject) => {
      const onError = (err: Error): void => {
        this.#socket = undefined
        try {
          socket.close()
        } catch {
          // already closed
        }
        if (this.#state === 'starting') this.#state = 'idle'
        reject(
          new TransportError('LISTEN_FAILED', `could not listen on ${address}: ${err.message}`, address, {
            cause: err,
          }),
        )
      }
      socket.once('error', onError)
      socket.bind({ address: host, port }, () => {
        socket.off('error', onError)
        // Errors after this point (failed sends) must not crash the process.
        socket.on('error', () => {
          this.counters.sendErrors++
        })
        if (this.#state !== 'starting') {
          reject(new TransportError('CLOSED', 'the transport was closed while it started listening', address))
          return
        }
        const size = this.options.socketBufferBytes
        if (size > 0) {
          try {
            socket.setRecvBufferSize(size)
            socket.setSendBufferSize(size)
          } catch {
            // The OS keeps its own sizes; the transport works with those.
          }
        }
        const bound = socket.address()
        const boundAddress = formatAddress(bound.address, bound.port)
        // dgram may bind inside `listen` itself (the lookup of an IP literal is synchronous), but
        // the transport must not be listening before the caller sees the promise resolve.
        queueMicrotask(() => {
          if (this.#state !== 'starting') {
            reject(
              new TransportError('CLOSED', 'the transport was closed while it started listening', address),
            )
            return
          }
          this.localId = localId
          this.localAddress = this.options.advertiseAddress ?? boundAddress
          this.#handlers = handlers
          this.#state = 'listening'
          socket.on('message', this.#onMessage)
          resolve(boundAddress)
        })
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
      const { host, port } = checkSendAddress(to)
      link = new PeerLink(to, host, port)
      this.#peers.set(to, link)
    }
    const conn = link.out ?? this.#newOut(link)
    if (conn.queuedBytes + conn.flightBytes + n > this.options.maxQueuedBytesPerPeer) {
      this.counters.framesDropped++
      if (this.#drops.backpressure(to)) this.#schedule()
      return
    }
    conn.enqueue(frame)
    // An answer or a forward made while handling a datagram, or a frame behind datagrams in flight,
    // waits for the turn's flush and shares datagrams with the rest of the turn (Nagle's rule, with
    // the turn for a timer). A frame sent from a timer or the application to an open connection
    // with nothing in flight leaves at once, so that in this turn's poll the peer may already read
    // it; toward an idle connection still opening, it leaves on a microtask, as soon as the caller's
    // callback returns.
    if (receiving !== 0 || conn.inFlight !== 0) {
      this.#markDirty(conn)
    } else if (!conn.dirty && conn.canSend) {
      conn.flush(this.now(), ackOwedTo(link), this.#scratch)
      this.#track(conn)
    } else {
      if (!conn.dirty) {
        conn.dirty = true
        this.#dirtyOut.push(conn)
      }
      if (!this.#microtask) {
        this.#microtask = true
        queueMicrotask(this.#flushNow)
      }
    }
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing
    this.#state = 'closed'
    this.#handlers = NO_HANDLERS
    if (this.#immediate !== undefined) clearImmediate(this.#immediate)
    this.#immediate = undefined
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#faults?.clear()
    this.#peers.clear()
    this.#outByLocal.clear()
    this.#outByRemote.clear()
    this.#inByLocal.clear()
    this.#inByRemote.clear()
    this.#pending.clear()
    this.#pendingByRemote.clear()
    this.#timed.clear()
    this.#dirtyOut = []
    this.#dirtyAck = []
    this.#drops.clear()
    this.#waiters = []
    this.#closing = this.#release()
    return this.#closing
  }

  async #release(): Promise<void> {
    await this.#listening
    const socket = this.#socket
    this.#socket = undefined
    if (socket === undefined) return
    await new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve())
      } catch {
        resolve() // already closed
      }
    })
  }

  // ------------------------------------------------------------------------------------------------
  // Hosts' callbacks.

  transmit(conn: OutboundConn, datagram: Buffer): void {
    this.#sendTo(datagram, conn.port, conn.host)
  }

  oversize(conn: OutboundConn, peerMaxFrameBytes: number): void {
    this.counters.framesDropped++
    if (this.#drops.tooLarge(conn.address, peerMaxFrameBytes)) this.#schedule()
  }

  deliver(conn: InboundConn, frame: Uint8Array): void {
    if (this.#state !== 'listening') return
    this.counters.framesReceived++
    try {
      this.#handlers.message(frame, conn.peer)
    } catch {
      this.counters.handlerErrors++
    }
  }

  // ------------------------------------------------------------------------------------------------
  // The socket.

  /** Resolves names for dgram: IP literals at once (IPv4 mapped on a dual-stack socket), names by DNS. */
  readonly #lookup = (
    hostname: string,
    _options: unknown,
    callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
  ): void => {
    let family = this.#families.get(hostname)
    if (family === undefined) {
      // isIP runs a regular expression; every datagram is looked up, so remember the answer.
      if (this.#families.size >= 1024) this.#families.clear()
      family = isIP(hostname)
      this.#families.set(hostname, family)
    }
    if (family === 4 && this.#type === 'udp6') {
      callback(null, `::ffff:${hostname}`, 6)
    } else if (family !== 0) {
      callback(null, hostname, family)
    } else {
      dnsLookup(hostname, { family: this.#type === 'udp6' ? 6 : 4 }, (err, address, fam) =>
        callback(err, address, fam),
      )
    }
  }

  /** True when this socket can send to `host` at all (an IP of its family, or a name). */
  #canReach(host: string): boolean {
    const family = isIP(host)
    if (family === 0) return true
    if (this.#type === 'udp4') return family === 4
    return family === 6 || this.#dualStack
  }

  #sendTo(datagram: Buffer, port: number, host: string): void {
    this.counters.datagramsSent++
    this.counters.bytesSent += datagram.length
    if (this.#faults === undefined) this.#rawSend(datagram, port, host)
    else this.#faults.apply('outbound', () => this.#rawSend(datagram, port, host))
  }

  #rawSend(datagram: Buffer, port: number, host: string): void {
    const socket = this.#socket
    if (this.#state !== 'listening' || socket === undefined) return
    try {
      socket.send(datagram, port, host)
    } catch {
      this.counters.sendErrors++
    }
  }

  readonly #onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    this.counters.datagramsReceived++
    this.counters.bytesReceived += msg.length
    if (this.#state !== 'listening') return
    receiving++
    try {
      if (this.#faults === undefined) this.#handle(msg, rinfo)
      else this.#faults.apply('inbound', () => this.#handle(msg, rinfo))
    } finally {
      receiving--
    }
  }

  #handle(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.#state !== 'listening') return
    const c = this.counters
    const len = msg.length
    if (len > this.options.maxDatagramBytes) {
      c.oversizedDatagrams++
      return
    }
    if (len < COMMON_BYTES || msg.readUInt16BE(0) !== MAGIC) {
      c.badDatagrams++
      return
    }
    const type = msg[4]!
    const flags = msg[5]!
    const now = this.now()
    if (type === T_REFUSE) {
      this.#onRefuse(msg, rinfo)
      return
    }
    const version = msg.readUInt16BE(2)
    if (version !== PROTOCOL_VERSION) {
      c.versionMismatches++
      if (type === T_HELLO) {
        this.#refuseHello(
          msg,
          undefined,
          rinfo,
          REFUSE_VERSION,
          `the peer speaks protocol version ${version}, this node speaks ${PROTOCOL_VERSION}`,
          now,
        )
      }
      return
    }
    if ((flags & ~(F_KEYED | F_CONFIRM)) !== 0 || ((flags & F_CONFIRM) !== 0 && type !== T_DATA)) {
      c.badDatagrams++
      return
    }
    const keyed = (flags & F_KEYED) !== 0
    const auth = this.auth
    let end = len
    if (auth !== undefined) {
      if (!keyed) {
        if (type === T_HELLO) {
          this.#refuseHello(
            msg,
            len,
            rinfo,
            REFUSE_KEY_REQUIRED,
            'the peer has no cluster key, and this node requires one',
            now,
          )
        } else c.unauthenticated++
        return
      }
      end = len - TAG_BYTES
      if (end < COMMON_BYTES || !auth.verify(msg)) {
        if (type === T_HELLO) {
          this.#refuseHello(
            msg,
            end,
            rinfo,
            REFUSE_BAD_TAG,
            'the peer failed the cluster-key check (a wrong key)',
            now,
          )
        } else c.unauthenticated++
        return
      }
    } else if (keyed) {
      if (type === T_HELLO) {
        this.#refuseHello(
          msg,
          len - TAG_BYTES,
          rinfo,
          REFUSE_KEY_UNEXPECTED,
          'the peer requires a cluster key, and this node has none',
          now,
        )
      } else c.unauthenticated++
      return
    }
    switch (type) {
      case T_DATA:
        this.#onData(msg, flags, end, rinfo, now)
        return
      case T_ACK:
        this.#onAck(msg, end, now)
        return
      case T_HELLO:
        this.#onHello(msg, end, rinfo, now)
        return
      case T_REPLY:
        this.#onReply(msg, end, now)
        return
      case T_RESET:
        this.#onReset(msg, end)
        return
      default:
        c.badDatagrams++
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Handshake.

  #onHello(msg: Buffer, end: number, rinfo: RemoteInfo, now: number): void {
    const hello = decodeHello(msg, end)
    if (typeof hello === 'string') {
      this.counters.badDatagrams++
      return
    }
    const known = this.#pendingByRemote.get(hello.srcCid)
    if (known !== undefined) {
      // Our REPLY was lost, or is still on its way: answer the same way again.
      if (known.hello.nonce.equals(hello.nonce)) {
        known.expiresAt = now + this.options.handshakeTimeoutMs
        this.#sendTo(known.reply, rinfo.port, rinfo.address)
      }
      return
    }
    if (this.#inByRemote.has(hello.srcCid)) return // a late copy of the HELLO of an open connection
    if (this.#inByLocal.size >= this.options.maxConnections) {
      this.counters.connectionsRefused++
      if (this.#controlBucket.take(now)) {
        this.#sendTo(encodeRefuse(PROTOCOL_VERSION, hello.srcCid, REFUSE_FULL), rinfo.port, rinfo.address)
      }
      return
    }
    for (const [cid, p] of this.#pending) {
      if (this.#pending.size < this.options.maxPendingHandshakes && p.expiresAt > now) break
      this.#forgetPending(cid, p)
    }
    const localCid = this.#newCid()
    const nonce = randomBytes(NONCE_BYTES)
    const auth = this.auth
    const reply = encodeReply(PROTOCOL_VERSION, auth !== undefined, {
      dstCid: hello.srcCid,
      srcCid: localCid,
      echo: hello.nonce,
      nonce,
      id: this.localId,
      maxFrameBytes: this.options.maxFrameBytes,
      window: this.options.windowPackets,
      maxDatagramBytes: this.options.maxDatagramBytes,
      address: this.localAddress,
    })
    auth?.sign(reply, reply.length - TAG_BYTES)
    const pending: Pending = {
      localCid,
      hello,
      nonce,
      reply,
      expiresAt: now + this.options.handshakeTimeoutMs,
    }
    this.#pending.set(localCid, pending)
    this.#pendingByRemote.set(hello.srcCid, pending)
    this.#wantSweep(now)
    this.#sendTo(reply, rinfo.port, rinfo.address)
  }

  #forgetPending(localCid: number, p: Pending): void {
    this.#pending.delete(localCid)
    if (this.#pendingByRemote.get(p.hello.srcCid) === p) this.#pendingByRemote.delete(p.hello.srcCid)
  }

  /** A HELLO this node will not answer: count it, tell the sender why, and report it (rate-limited). */
  #refuseHello(
    msg: Buffer,
    end: number | undefined,
    rinfo: RemoteInfo,
    reason: number,
    why: string,
    now: number,
  ): void {
    // Only a well-formed HELLO is a handshake; anything else is just a bad datagram.
    let peer = formatAddress(rinfo.address, rinfo.port)
    if (end !== undefined) {
      const hello = end >= COMMON_BYTES ? decodeHello(msg, end) : 'short'
      if (typeof hello === 'string') {
        this.counters.unauthenticated++
        return
      }
      peer = hello.address
    }
    this.counters.handshakeFailures++
    // The HELLO's connection id sits at bytes 6..14 in every version.
    const cid = msg.length >= 14 ? readCid(msg, 6) : -1
    if (cid > 0 && this.#controlBucket.take(now)) {
      this.#sendTo(encodeRefuse(PROTOCOL_VERSION, cid, reason), rinfo.port, rinfo.address)
    }
    if (this.#eventBucket.take(now)) {
      this.#report(new TransportError('HANDSHAKE_FAILED', `refused a handshake from ${peer}: ${why}`, peer))
    }
  }

  #onRefuse(msg: Buffer, _rinfo: RemoteInfo): void {
    if (msg.length < 15) {
      this.counters.badDatagrams++
      return
    }
    const conn = this.#outByLocal.get(readCid(msg, 6))
    if (conn === undefined || conn.state !== 'hello') {
      this.counters.unknownConnection++
      return
    }
    const version = msg.readUInt16BE(2)
    const reason = msg[14]!
    if (reason === REFUSE_FULL) {
      this.#loseOut(
        conn,
        'UNREACHABLE',
        `${conn.address} refused the connection: it holds all the connections it may`,
      )
      return
    }
    this.counters.handshakeFailures++
    const why =
      reason === REFUSE_VERSION
        ? `the peer speaks protocol version ${version}, this node speaks ${PROTOCOL_VERSION}`
        : reason === REFUSE_KEY_REQUIRED
          ? 'the peer requires a cluster key, and this node has none'
          : reason === REFUSE_KEY_UNEXPECTED
            ? 'the peer has no cluster key, and this node requires one'
            : reason === REFUSE_BAD_TAG
              ? 'the peer refused our cluster-key tag (a wrong key)'
              : `the peer refused it (reason ${reason})`
    this.#loseOut(conn, 'HANDSHAKE_FAILED', `handshake with ${conn.address} failed: ${why}`)
  }

  #onReply(msg: Buffer, end: number, now: number): void {
    const reply = decodeReply(msg, end)
    if (typeof reply === 'string') {
      this.counters.badDatagrams++
      return
    }
    const conn = this.#outByLocal.get(reply.dstCid)
    if (conn === undefined) {
      this.counters.unknownConnection++
      return
    }
    if (conn.state !== 'hello') return // a copy of the REPLY that opened it
    if (!conn.onReply(now, reply)) {
      this.counters.replaysRejected++
      return
    }
    this.#outByRemote.set(reply.srcCid, conn)
    this.counters.connectionsOpened++
    this.#markDirty(conn)
    this.#track(conn)
  }

  #establish(p: Pending, now: number): InboundConn | undefined {
    this.#forgetPending(p.localCid, p)
    if (this.#inByLocal.size >= this.options.maxConnections) {
      this.counters.connectionsRefused++
      return undefined
    }
    const hello = p.hello
    const link = this.#link(hello.address)
    const peer = Object.freeze({ address: hello.address, id: hello.id })
    const conn = new InboundConn(this, p.localCid, hello.srcCid, peer, link.host, link.port, now)
    this.#inByLocal.set(conn.localCid, conn)
    this.#inByRemote.set(conn.remoteCid, conn)
    link.inbound.push(conn)
    this.counters.connectionsOpened++
    this.#wantSweep(now)
    return conn
  }

  // ------------------------------------------------------------------------------------------------
  // Data and acks.

  #onData(msg: Buffer, flags: number, end: number, rinfo: RemoteInfo, now: number): void {
    const payload = DATA_HEADER_BYTES + ((flags & F_CONFIRM) !== 0 ? NONCE_BYTES : 0)
    if (end < payload) {
      this.counters.badDatagrams++
      return
    }
    const cid = readCid(msg, 6)
    let conn = this.#inByLocal.get(cid)
    if (conn === undefined) {
      const p = this.#pending.get(cid)
      if (p === undefined) {
        this.counters.unknownConnection++
        this.#reset(cid, rinfo.port, rinfo.address, now)
        return
      }
      if ((flags & F_CONFIRM) === 0 || !p.nonce.equals(msg.subarray(DATA_HEADER_BYTES, payload))) {
        this.counters.replaysRejected++
        return
      }
      conn = this.#establish(p, now)
      if (conn === undefined) return
    }
    const seq = msg.readUInt32BE(14)
    const r = conn.receive(now, seq, msg)
    if (conn.ackUrgent) this.#oweAck(conn)
    if (r === 'new') {
      // Frames first, bookkeeping after: the riding ack (for our own traffic toward this peer) is
      // read once the handler has had the datagram's frames.
      this.#deliverIn(conn, now)
      if (payload < end && msg[payload] === FR_ACK && this.#state === 'listening') {
        this.#ridingAck(msg, payload, end, now)
      }
      return
    }
    if (r === 'duplicate') this.counters.duplicatesDropped++
    else this.counters.outOfWindowDropped++
    this.#track(conn)
  }

  /** Queues a standalone ack owed on `conn` for the turn's flush, unless DATA carries it first. */
  #oweAck(conn: InboundConn): void {
    if (conn.ackQueued) return
    conn.ackQueued = true
    this.#dirtyAck.push(conn)
    this.#schedule()
  }

  /** An ACK frame riding at `off` in a DATA datagram. A malformed one is left for delivery to reject. */
  #ridingAck(msg: Buffer, off: number, end: number, now: number): void {
    if (end - off < 14) return
    const conn = this.#outByLocal.get(readCid(msg, off + 1))
    if (conn === undefined || readAckBody(msg, off + 9, end, this.#ack) < 0) return
    if (conn.onAck(now, this.#ack)) this.#afterAck(conn)
  }

  #onAck(msg: Buffer, end: number, now: number): void {
    if (end < DATA_HEADER_BYTES) {
      this.counters.badDatagrams++
      return
    }
    const conn = this.#outByLocal.get(readCid(msg, 6))
    if (conn === undefined) {
      this.counters.unknownConnection++
      return
    }
    const counter = msg.readUInt32BE(14)
    if (counter <= conn.lastAckCounter) {
      this.counters.replaysRejected++
      return
    }
    if (readAckBody(msg, DATA_HEADER_BYTES, end, this.#ack) !== end) {
      this.counters.badDatagrams++
      return
    }
    conn.lastAckCounter = counter
    if (conn.onAck(now, this.#ack)) this.#afterAck(conn)
  }

  #afterAck(conn: OutboundConn): void {
    this.#track(conn)
    if (conn.canSend || (conn.exhausted && conn.inFlight === 0 && conn.queuedFrames > 0))
      this.#markDirty(conn)
  }

  #onReset(msg: Buffer, end: number): void {
    if (end !== 14) {
      this.counters.badDatagrams++
      return
    }
    const conn = this.#outByRemote.get(readCid(msg, 6))
    if (conn === undefined) {
      this.counters.unknownConnection++
      return
    }
    this.counters.resetsReceived++
    this.#loseOut(
      conn,
      'CONNECTION_LOST',
      `${conn.address} no longer knows this connection (it restarted, or dropped it)`,
    )
  }

  /** Tells the sender of a datagram for `cid` that this node does not hold that connection. */
  #reset(cid: number, port: number, host: string, now: number): void {
    if (cid <= 0 || !this.#controlBucket.take(now)) return
    const auth = this.auth
    const out = encodeReset(PROTOCOL_VERSION, auth !== undefined, cid)
    auth?.sign(out, 14)
    this.counters.resetsSent++
    this.#sendTo(out, port, host)
  }

  #deliverIn(conn: InboundConn, now: number): void {
    const r = conn.deliver(now)
    if (this.#state !== 'listening') return
    if (r === 'paused') {
      if (!conn.waiting) {
        conn.waiting = true
        this.#waiters.push(conn)
      }
    } else if (r === 'error') {
      this.counters.badDatagrams++
      this.#dropInbound(
        conn,
        'BAD_FRAME',
        `${conn.peer.address} sent a malformed datagram: ${conn.problem}`,
        now,
      )
      return
    }
    this.#track(conn)
    if (this.#waiters.length > 0 && r === 'ok') this.#wake(now)
  }

  /** Gives connections paused for reassembly room another try. */
  #wake(now: number): void {
    if (this.#waking) return
    this.#waking = true
    try {
      const list = this.#waiters
      this.#waiters = []
      for (const w of list) {
        w.waiting = false
        if (this.#inByLocal.get(w.localCid) === w) this.#deliverIn(w, now)
      }
    } finally {
      this.#waking = false
    }
  }

  /** Forgets an inbound connection; with an error, resets the peer's end and reports it. */
  #dropInbound(
    conn: InboundConn,
    code: 'BAD_FRAME' | 'TIMEOUT' | undefined,
    message: string,
    now: number,
  ): void {
    conn.dispose()
    this.#inByLocal.delete(conn.localCid)
    if (this.#inByRemote.get(conn.remoteCid) === conn) this.#inByRemote.delete(conn.remoteCid)
    this.#timed.delete(conn)
    if (conn.waiting) {
      conn.waiting = false
      const i = this.#waiters.indexOf(conn)
      if (i >= 0) this.#waiters.splice(i, 1)
    }
    const link = this.#peers.get(conn.peer.address)
    if (link !== undefined) {
      const i = link.inbound.indexOf(conn)
      if (i >= 0) link.inbound.splice(i, 1)
      this.#forgetIfIdle(link)
    }
    if (code !== undefined) {
      this.counters.connectionsLost++
      this.#reset(conn.localCid, conn.port, conn.host, now)
      this.#report(new TransportError(code, message, conn.peer.address))
    }
    if (this.#waiters.length > 0) this.#wake(now)
  }

  // ------------------------------------------------------------------------------------------------
  // Outbound connections.

  #newOut(link: PeerLink): OutboundConn {
    const now = this.now()
    const conn = new OutboundConn(
      this,
      link.address,
      link.host,
      link.port,
      this.#newCid(),
      randomBytes(NONCE_BYTES),
      now,
    )
    this.#outByLocal.set(conn.localCid, conn)
    link.out = conn
    this.#wantSweep(now)
    return conn
  }

  #markDirty(conn: OutboundConn): void {
    if (conn.dirty) return
    conn.dirty = true
    this.#dirtyOut.push(conn)
    this.#schedule()
  }

  /** Closes an outbound connection for an error: drops its frames and reports them. */
  #loseOut(
    conn: OutboundConn,
    code: 'UNREACHABLE' | 'CONNECTION_LOST' | 'HANDSHAKE_FAILED',
    message: string,
  ): void {
    const dropped = conn.abandon()
    this.counters.framesDropped += dropped
    this.counters.connectionsLost++
    this.#forgetOut(conn)
    const text = dropped === 0 ? message : `${message} (${dropped} queued frame(s) dropped)`
    this.#report(new TransportError(code, text, conn.address))
  }

  #forgetOut(conn: OutboundConn): void {
    conn.abandon()
    this.#outByLocal.delete(conn.localCid)
    if (conn.remoteCid !== 0 && this.#outByRemote.get(conn.remoteCid) === conn) {
      this.#outByRemote.delete(conn.remoteCid)
    }
    this.#timed.delete(conn)
    const link = this.#peers.get(conn.address)
    if (link !== undefined && link.out === conn) {
      link.out = undefined
      this.#forgetIfIdle(link)
    }
  }

  #giveUp(conn: OutboundConn): void {
    this.counters.timeouts++
    if (conn.state === 'hello') {
      this.#loseOut(
        conn,
        'UNREACHABLE',
        `no answer from ${conn.address} to ${conn.helloTransmissions} HELLO datagram(s)`,
      )
    } else {
      this.#loseOut(
        conn,
        'CONNECTION_LOST',
        `${conn.address} acknowledged nothing for ${this.options.maxRetransmissions} retransmission timeouts in a row`,
      )
    }
  }

  // ------------------------------------------------------------------------------------------------
  // The per-turn flush: datagrams, then acks, then coalesced drop reports.

  #schedule(): void {
    if (this.#immediate === undefined) this.#immediate = setImmediate(this.#onImmediate)
  }

  readonly #flushNow = (): void => {
    this.#microtask = false
    this.#flush(false)
  }

  readonly #onImmediate = (): void => {
    this.#immediate = undefined
    this.#flush(true)
    this.#armForWanted()
  }

  /** Sends what the dirty connections hold; with `acks`, also the acks that found no DATA to ride in. */
  #flush(acks: boolean): void {
    if (this.#state !== 'listening') return
    const now = this.now()
    const dirty = this.#dirtyOut
    this.#dirtyOut = this.#spareOut
    for (let i = 0; i < dirty.length; i++) {
      const conn = dirty[i]!
      conn.dirty = false
      if (conn.state === 'closed') continue
      if (!conn.started) {
        if (!this.#canReach(conn.host)) {
          this.#loseOut(conn, 'UNREACHABLE', `cannot reach ${conn.address} from a ${this.#type} socket`)
          continue
        }
        conn.start(now)
        this.#track(conn)
        continue
      }
      if (conn.state !== 'open') continue
      const link = this.#peers.get(conn.address)
      conn.flush(now, link === undefined ? undefined : ackOwedTo(link), this.#scratch)
      this.#track(conn)
      if (conn.exhausted && conn.inFlight === 0 && conn.queuedFrames > 0 && link?.out === conn) {
        this.#retire(conn, link)
      }
    }
    dirty.length = 0
    this.#spareOut = dirty
    if (!acks) return
    const owed = this.#dirtyAck
    this.#dirtyAck = this.#spareAck
    for (let i = 0; i < owed.length; i++) {
      const conn = owed[i]!
      conn.ackQueued = false
      if (!conn.ackPending || this.#inByLocal.get(conn.localCid) !== conn) continue
      this.counters.acksSent++
      this.#sendTo(conn.ackDatagram(), conn.port, conn.host)
    }
    owed.length = 0
    this.#spareAck = owed
    this.#drops.flush(this.#reportDrop)
  }

  /** Replaces a connection whose sequence numbers are used up, carrying its queue over in order. */
  #retire(conn: OutboundConn, link: PeerLink): void {
    const frames = conn.takeQueue()
    link.out = undefined // so that forgetting the connection keeps the link
    this.#forgetOut(conn)
    const next = this.#newOut(link)
    next.adoptQueue(frames)
    this.#markDirty(next)
  }

  readonly #reportDrop = (error: TransportError): void => this.#report(error)

  // ------------------------------------------------------------------------------------------------
  // Time: one timer for every connection's deadline and the sweep.

  #track(conn: OutboundConn | InboundConn): void {
    const at = conn.deadline
    if (at === Number.POSITIVE_INFINITY) return
    this.#timed.add(conn)
    this.#armBy(at)
  }

  #wantSweep(now: number): void {
    if (this.#sweepAt !== Number.POSITIVE_INFINITY) return
    this.#sweepAt = now + this.#sweepIntervalMs
    this.#armBy(this.#sweepAt)
  }

  /**
   * Makes sure the timer fires by `at`. Re-arming (clearTimeout, setTimeout) costs microseconds, so
   * it is left to the turn's flush, after the callback that set the deadline (and the frames it
   * delivers) has finished; the deadlines are milliseconds away.
   */
  #armBy(at: number): void {
    if (at >= this.#armedAt || at >= this.#armWanted) return
    this.#armWanted = at
    this.#schedule()
  }

  /**
   * Arms the timer, at the turn's flush, for a deadline asked for during the turn, if it still
   * stands. An owed ack asks
   * for its delay when its datagram arrives, and then often rides in DATA flushed the same turn;
   * so when the deadline asked for has moved on, the timer is armed for the earliest that remains
   * (or left as it is), rather than set to fire for nothing.
   */
  #armForWanted(): void {
    const wanted = this.#armWanted
    this.#armWanted = Number.POSITIVE_INFINITY
    if (wanted >= this.#armedAt || this.#state !== 'listening') return
    let earliest = this.#sweepAt
    for (const conn of this.#timed) {
      const at = conn.deadline
      if (at < earliest) {
        earliest = at
        if (at <= wanted) break // it still stands
      }
    }
    if (earliest < this.#armedAt) this.#arm(earliest)
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#armedAt = at
    this.#timer = setTimeout(this.#onTimer, Math.max(0, Math.ceil(at - this.now())))
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined
    this.#armedAt = Number.POSITIVE_INFINITY
    if (this.#state !== 'listening') return
    const now = this.now()
    for (const conn of this.#timed) {
      if (conn.deadline <= now) {
        if (conn instanceof OutboundConn) {
          if (conn.onTimer(now) === 'giveUp') this.#giveUp(conn)
          else if (conn.canSend) this.#markDirty(conn)
        } else {
          const r = conn.onTimer(now)
          if (r === 'ack') {
            // Sent by the turn's flush, in DATA toward the peer if this turn produces any.
            this.#oweAck(conn)
          } else if (r === 'timeout') {
            this.#inboundTimeout(conn, now)
          }
        }
        if (this.#state !== 'listening') return
      }
      if (conn.deadline === Number.POSITIVE_INFINITY) this.#timed.delete(conn)
    }
    if (now >= this.#sweepAt) this.#sweep(now)
    let earliest = this.#sweepAt
    for (const conn of this.#timed) if (conn.deadline < earliest) earliest = conn.deadline
    this.#armWanted = Number.POSITIVE_INFINITY
    if (earliest !== Number.POSITIVE_INFINITY) this.#arm(earliest)
  }

  #inboundTimeout(conn: InboundConn, now: number): void {
    this.counters.reassemblyTimeouts++
    const what = conn.reassembling ? 'stalled mid-frame' : 'waited for reassembly room'
    this.#dropInbound(
      conn,
      'TIMEOUT',
      `${conn.peer.address} ${what} for more than ${this.options.reassemblyTimeoutMs} ms`,
      now,
    )
  }

  /** Forgets idle connections and expired pending handshakes. */
  #sweep(now: number): void {
    this.#sweepAt = Number.POSITIVE_INFINITY
    for (const [cid, p] of this.#pending) if (p.expiresAt <= now) this.#forgetPending(cid, p)
    const idle = this.options.idleTimeoutMs
    for (const conn of [...this.#outByLocal.values()]) {
      if (conn.idle && now - conn.lastActiveAt >= idle) this.#forgetOut(conn)
    }
    for (const conn of [...this.#inByLocal.values()]) {
      if (now - conn.lastActiveAt >= 2 * idle) this.#dropInbound(conn, undefined, '', now)
    }
    if (this.#pending.size > 0 || this.#outByLocal.size > 0 || this.#inByLocal.size > 0) this.#wantSweep(now)
  }

  // ------------------------------------------------------------------------------------------------
  // Bookkeeping.

  #link(address: string): PeerLink {
    let link = this.#peers.get(address)
    if (link === undefined) {
      const { host, port } = parseAddress(address)
      link = new PeerLink(address, host, port)
      this.#peers.set(address, link)
    }
    return link
  }

  #forgetIfIdle(link: PeerLink): void {
    if (link.idle && this.#peers.get(link.address) === link) this.#peers.delete(link.address)
  }

  /** A fresh random connection id below 2^53, unused by any connection or pending handshake here. */
  #newCid(): number {
    for (;;) {
      const b = randomBytes(8)
      const cid = (b.readUInt32BE(0) & 0x1fffff) * TWO_32 + b.readUInt32BE(4)
      if (cid !== 0 && !this.#outByLocal.has(cid) && !this.#inByLocal.has(cid) && !this.#pending.has(cid)) {
        return cid
      }
    }
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

/**
 * Makes a UDP transport. Call it once per node, pass the result to the node runtime (or call
 * `listen` yourself), and `close` it when the node stops. Throws `ConfigError` for a bad option.
 * The returned object's `stats` is a snapshot: read it again to see later counts.
 */
export function createUdpTransport(options?: UdpTransportOptions): UdpTransport {
  return new UdpTransportImpl(resolveOptions(options))
}
