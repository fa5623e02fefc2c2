/*
 * The transport conformance suite: what every `Transport` must do, as a list of cases that any test
 * framework runs (after js-libp2p's interface-compliance-tests). The in-memory transport, TCP and
 * UDP each run it from their own tests:
 *
 *   import { test } from 'uvu'
 *   const setup = () => ({ create: () => createTcpTransport(), listenAddress: '127.0.0.1:0' })
 *   for (const c of transportConformance(setup)) test(c.name, c.run)
 *   test.run()
 *
 * What the suite requires beyond the letter of core's `runtime/transport.ts`, each stated again in
 * the case that checks it:
 *   - per-pair FIFO: frames from one transport to one address arrive in the order they were sent,
 *     with none lost or duplicated while both ends stay up (on loopback, for a real network);
 *   - every frame `send` accepts is delivered or reported by an error event: the suite resends only
 *     after an error event, never on a timer;
 *   - frames are delivered asynchronously, never inside `send`;
 *   - frames may be empty in principle, but the suite sends only non-empty ones;
 *   - `close` resolves in any state, including before `listen` and after a failed `listen`;
 *   - a malformed address is `BAD_ADDRESS`, from `send` and from `listen` alike (core's
 *     `parseAddress`, which "transports call on every address they are given").
 *
 * How a case runs: it calls `setup`, makes transports from the subject, closes every one of them
 * (and calls `teardown`) even when it fails, and throws an `AssertionError` that says what went
 * wrong. It never sleeps to synchronise: every wait is for an event or a promise, bounded by the
 * case's timeout, and a timeout names what was awaited. (The one timer besides the timeout paces
 * the bounded retry of a `listen` in the reconnect case.) In every case, a handler called before
 * `listen` resolved or after `close` resolved, or an error event that is not a `TransportError`,
 * fails the case.
 */
import { AssertionError } from 'node:assert'
import {
  createRng,
  type Id,
  type ListenOptions,
  parseAddress,
  type Rng,
  randomId,
  type Transport,
  TransportError,
  type TransportErrorCode,
} from '@pastry/core'

/** What a transport package hands the suite. */
export interface ConformanceSubject {
  /** A fresh transport, not yet listening. Called several times per case. */
  create(): Transport
  /** The address to listen on, with port 0 so that each transport gets a free port: `127.0.0.1:0`. */
  readonly listenAddress: string
  /** Called once at the end of each case, after every transport is closed. */
  teardown?(): Promise<void> | void
}

/** One check of the suite: give `name` and `run` to a test framework. */
export interface ConformanceCase {
  readonly name: string
  /** Resolves when the case passes; rejects with an `AssertionError` (or the error met) otherwise. */
  run(): Promise<void>
}

/** Options for {@link transportConformance}. */
export interface ConformanceOptions {
  /** The time a case may take, setup to teardown, in ms. Default {@link DEFAULT_CONFORMANCE_TIMEOUT_MS}. */
  readonly timeoutMs?: number
}

/** A case's time limit unless {@link ConformanceOptions.timeoutMs} says otherwise. */
export const DEFAULT_CONFORMANCE_TIMEOUT_MS = 10_000

/**
 * The conformance cases for a transport. `setup` is called once per case, when the case runs, and
 * returns a fresh subject. Call it from a transport package's tests and register each case with the
 * test framework; the cases are independent and may run in any order, one at a time.
 */
export function transportConformance(
  setup: () => ConformanceSubject | Promise<ConformanceSubject>,
  options: ConformanceOptions = {},
): ConformanceCase[] {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONFORMANCE_TIMEOUT_MS
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`)
  }
  return CASES.map(([name, body]) => ({ name, run: () => runCase(name, setup, timeoutMs, body) }))
}

// ---------------------------------------------------------------------------------------------
// The cases.

type CaseBody = (h: Harness) => Promise<void>

/** Frames in flight between one pair in the FIFO case: enough to stress, few enough for UDP buffers. */
const FIFO_WINDOW = 64
const FIFO_FRAMES = 1000
const HUB_PEERS = 50
/** Error codes that mean "the peer is gone" after it closed. */
const GONE_CODES: readonly TransportErrorCode[] = ['UNREACHABLE', 'CONNECTION_LOST', 'CONNECT_TIMEOUT']
/** Error codes that mean "nobody there" for an address never reached. */
const UNREACHABLE_CODES: readonly TransportErrorCode[] = ['UNREACHABLE', 'CONNECT_TIMEOUT']
const MALFORMED_ADDRESSES = ['nohost', 'host:99999', '::1:80', '', 'host:', ':80', 'host:-1', '[::1]80']

const CASES: readonly (readonly [string, CaseBody])[] = [
  [
    'listen resolves to a concrete address, and two transports get different ones',
    /**
     * Requires: `kind` is a non-empty string and `maxFrameBytes` a positive integer; `listen` on port
     * 0 resolves to a parseable `host:port` whose port is not 0; a second transport listening on the
     * same `listenAddress` gets a different address.
     */
    async (h) => {
      const a = h.create()
      check(
        typeof a.transport.kind === 'string' && a.transport.kind.length > 0,
        'kind must be a non-empty string',
      )
      const max = a.transport.maxFrameBytes
      check(Number.isSafeInteger(max) && max > 0, `maxFrameBytes must be a positive integer, got ${max}`)
      await h.listen(a)
      const b = await h.open()
      for (const ep of [a, b]) {
        let port = -1
        try {
          port = parseAddress(ep.address).port
        } catch (e) {
          fail(`listen resolved to "${ep.address}", which is not host:port (${describe(e)})`)
        }
        check(port !== 0, `listen on ${h.subject.listenAddress} resolved to ${ep.address}, with port 0`)
      }
      check(a.address !== b.address, `two transports both listen at ${a.address}`)
    },
  ],
  [
    'send and receive, both directions, with the sender address and identical bytes',
    /**
     * Requires: a frame sent to a listen address arrives whole and unchanged; `from.address` is the
     * sender's listen address (so a reply to it arrives); `from.id`, when set, is the sender's
     * `localId`; the frame is not delivered inside `send`; the sender may overwrite its buffer as
     * soon as `send` returns; no error event on the way.
     */
    async (h) => {
      const a = await h.open()
      const b = await h.open()
      const request = pattern(300, 1)
      const buffer = request.slice()
      a.transport.send(b.address, buffer)
      check(b.messages.length === 0, 'a frame was delivered inside send; delivery must be asynchronous')
      buffer.fill(0xee)
      const got = await h.message(b, `the frame from ${a.address} at ${b.address}`)
      sameBytes(got.bytes, request, 'the frame from a to b (the sender overwrote its buffer after send)')
      check(
        got.from.address === a.address,
        `from.address is ${got.from.address}, not the sender's listen address ${a.address}`,
      )
      checkFromId(got.from.id, a)
      const reply = pattern(77, 2)
      const replyBuffer = reply.slice()
      b.transport.send(got.from.address, replyBuffer)
      replyBuffer.fill(0)
      const back = await h.message(a, `the reply from ${b.address} at ${a.address}`)
      sameBytes(back.bytes, reply, 'the reply from b to a')
      check(back.from.address === b.address, `from.address is ${back.from.address}, not ${b.address}`)
      checkFromId(back.from.id, b)
      noErrors(a, b)
    },
  ],
  [
    'frames up to maxFrameBytes arrive intact; a larger one throws FRAME_TOO_LARGE',
    /**
     * Requires: a 1-byte frame and a frame of exactly `maxFrameBytes` arrive unchanged, in order;
     * `send` of `maxFrameBytes + 1` bytes throws `TransportError` `FRAME_TOO_LARGE` synchronously and
     * sends nothing (the next frame to arrive is the one sent after it).
     */
    async (h) => {
      const a = await h.open()
      const b = await h.open()
      const max = a.transport.maxFrameBytes
      const tiny = pattern(1, 3)
      const full = pattern(max, 4)
      a.transport.send(b.address, tiny)
      a.transport.send(b.address, full)
      expectThrow(
        () => a.transport.send(b.address, new Uint8Array(max + 1)),
        'FRAME_TOO_LARGE',
        'send of maxFrameBytes + 1 bytes',
      )
      const after = pattern(5, 5)
      a.transport.send(b.address, after)
      await h.until(`3 frames at ${b.address} (1 byte, ${max} bytes, 5 bytes)`, () => b.messages.length >= 3)
      sameBytes(b.messages[0]!.bytes, tiny, 'the 1-byte frame')
      sameBytes(b.messages[1]!.bytes, full, `the ${max}-byte frame`)
      sameBytes(b.messages[2]!.bytes, after, 'the frame sent after the oversized one')
      noErrors(a, b)
    },
  ],
  [
    'many frames arrive in order between one pair, both directions at once',
    /**
     * Requires per-pair FIFO order, which every transport must keep: 1000 frames from a to b and
     * 1000 from b to a, up to 64 in flight each way, arrive complete, unduplicated and in the order
     * sent.
     */
    async (h) => {
      const a = await h.open()
      const b = await h.open()
      await Promise.all([pump(h, a, b), pump(h, b, a)])
      noErrors(a, b)
    },
  ],
  [
    '50 peers exchange frames with one hub at once',
    /**
     * Requires: 50 transports listening at once each send a frame to one hub, which answers each at
     * the `from.address` it reports (from inside its message handler); every peer gets its own
     * answer, and the hub saw 50 distinct sender addresses, each a peer's listen address.
     */
    async (h) => {
      const hub = await h.open()
      hub.onMessage = (m) => {
        const answer = new Uint8Array(m.bytes.length + 1)
        answer.set(m.bytes)
        answer[m.bytes.length] = 0xaa
        hub.transport.send(m.from.address, answer)
      }
      const peers = await Promise.all(Array.from({ length: HUB_PEERS }, () => h.open()))
      peers.forEach((p, i) => {
        p.transport.send(hub.address, u32Frame(i, 9))
      })
      await Promise.all(
        peers.map((p, i) =>
          h.message(
            p,
            `the hub's answer to peer ${i} (${p.address}); ${hub.messages.length} requests arrived`,
          ),
        ),
      )
      peers.forEach((p, i) => {
        const answer = p.messages[0]!
        check(answer.from.address === hub.address, `peer ${i} got its answer from ${answer.from.address}`)
        const expected = u32Frame(i, 9)
        check(
          answer.bytes.length === expected.length + 1,
          `peer ${i} got an answer of ${answer.bytes.length} bytes`,
        )
        sameBytes(answer.bytes.subarray(0, expected.length), expected, `peer ${i}'s answer`)
      })
      const senders = new Set(hub.messages.map((m) => m.from.address))
      const expected = new Set(peers.map((p) => p.address))
      check(
        senders.size === HUB_PEERS,
        `the hub saw ${senders.size} distinct sender addresses, not ${HUB_PEERS}`,
      )
      for (const s of senders)
        check(expected.has(s), `the hub saw sender ${s}, which is no peer's listen address`)
      noErrors(hub, ...peers)
    },
  ],
  [
    'a peer that goes away: sends to it fail as error events, and a new listener there gets the next frames',
    /**
     * Requires: after the receiver closes, `send` to its address does not throw, and an error event
     * follows whose `peer` is that address and whose code is `UNREACHABLE`, `CONNECTION_LOST` or
     * `CONNECT_TIMEOUT`. Once a new transport listens at the same address (its `listen` retried,
     * bounded, while it fails), the sender's next frame reaches it, with the sender's address; the
     * sender may resend only after an error event for that address.
     */
    async (h) => {
      const a = await h.open()
      const b = await h.open()
      const address = b.address
      a.transport.send(address, pattern(10, 6))
      await h.message(b, `the first frame at ${address}`)
      await h.close(b)
      const before = a.errors.length
      try {
        a.transport.send(address, pattern(10, 7))
      } catch (e) {
        fail(`send to a peer that closed threw ${describe(e)}; it must report an error event instead`)
      }
      const gone = await h.error(
        a,
        address,
        GONE_CODES,
        before,
        `an error event at ${a.address} for ${address}, closed`,
      )
      check(gone.peer === address, `the error's peer is ${gone.peer}, not ${address}`)

      const c = await h.listenRetrying(address)
      const frame = pattern(33, 8)
      let seenErrors = a.errors.length
      for (let attempt = 1; c.messages.length === 0; attempt++) {
        check(attempt <= 10, `10 frames to ${address} after it was bound again were each reported lost`)
        a.transport.send(address, frame)
        await h.until(
          `the sender's frame at the new listener ${address} (attempt ${attempt}), or an error event for it`,
          () => c.messages.length > 0 || a.errors.slice(seenErrors).some((e) => e.peer === address),
        )
        seenErrors = a.errors.length
      }
      const got = c.messages[0]!
      sameBytes(got.bytes, frame, 'the frame at the new listener')
      check(got.from.address === a.address, `from.address is ${got.from.address}, not ${a.address}`)
    },
  ],
  [
    'close resolves, is idempotent, silences the handlers, and frees the address',
    /**
     * Requires: `close` resolves, also when called twice at once and again later, and also on a
     * transport that never listened; afterwards `send` throws `CLOSED` and `listen` throws or
     * rejects `CLOSED`; no handler is called after `close` resolves, even for frames that were in
     * flight toward it or errors it had pending; and the address can be bound again at once.
     */
    async (h) => {
      const a = await h.open()
      const b = await h.open()
      const nobody = await h.freeAddress()
      for (let i = 0; i < 20; i++) a.transport.send(b.address, u32Frame(i, 10))
      b.transport.send(nobody, pattern(4, 11)) // an error event for b, pending or delivered
      b.transport.send(a.address, pattern(4, 12))
      const address = b.address
      const first = b.transport.close()
      const second = b.transport.close()
      await h.within(`close() of ${address}, called twice at once`, Promise.all([first, second]))
      b.closed = true
      await h.within(`a third close() of ${address}`, b.transport.close())
      expectThrow(() => b.transport.send(a.address, pattern(4, 13)), 'CLOSED', 'send after close')
      await expectReject(h, () => b.transport.listen(h.listenOptions(b)), 'CLOSED', 'listen after close')

      const never = h.create()
      await h.close(never)
      await expectReject(
        h,
        () => never.transport.listen(h.listenOptions(never)),
        'CLOSED',
        'listen after close (never listened)',
      )
      expectThrow(
        () => never.transport.send(a.address, pattern(4, 14)),
        'CLOSED',
        'send after close (never listened)',
      )

      // A barrier: once a's send to the closed address is reported, what was in flight is settled.
      const before = a.errors.length
      a.transport.send(address, pattern(4, 15))
      await h.error(a, address, GONE_CODES, before, `an error event at ${a.address} for ${address}, closed`)
      const again = h.create()
      const bound = await h.listen(again, address)
      check(bound === address, `listening again at ${address} resolved to ${bound}`)
    },
  ],
  [
    'an address that is held cannot be bound twice: LISTEN_FAILED',
    /**
     * Requires: `listen` at an address another open transport holds rejects (or throws)
     * `TransportError` `LISTEN_FAILED`, and the holder keeps working.
     */
    async (h) => {
      const a = await h.open()
      const b = await h.open()
      const twin = h.create()
      await expectReject(
        h,
        () => twin.transport.listen(h.listenOptions(twin, a.address)),
        'LISTEN_FAILED',
        `a second listen at ${a.address}`,
      )
      b.transport.send(a.address, pattern(8, 16))
      const got = await h.message(a, `a frame at ${a.address} after a failed second bind`)
      sameBytes(got.bytes, pattern(8, 16), 'the frame at the holder')
    },
  ],
  [
    'caller mistakes throw synchronously: NOT_LISTENING before listen, BAD_ADDRESS for a malformed address',
    /**
     * Requires: `send` before `listen` is called, and while its promise is pending, throws
     * `NOT_LISTENING`; once listening, `send` to a malformed address (`nohost`, `host:99999`, an
     * unbracketed `::1:80`, ...) throws `BAD_ADDRESS`; `listen` at a malformed address throws or
     * rejects `BAD_ADDRESS`.
     */
    async (h) => {
      const other = await h.open()
      const t = h.create()
      expectThrow(
        () => t.transport.send(other.address, pattern(4, 17)),
        'NOT_LISTENING',
        'send before listen',
      )
      const listening = h.listen(t)
      listening.catch(() => {}) // awaited below; this only keeps an early failure from going unhandled
      expectThrow(
        () => t.transport.send(other.address, pattern(4, 18)),
        'NOT_LISTENING',
        'send while listen is pending',
      )
      await listening
      for (const bad of MALFORMED_ADDRESSES) {
        expectThrow(() => t.transport.send(bad, pattern(4, 19)), 'BAD_ADDRESS', `send to "${bad}"`)
      }
      for (const bad of ['nohost', 'host:99999', '::1:80']) {
        const u = h.create()
        await expectReject(
          h,
          () => u.transport.listen(h.listenOptions(u, bad)),
          'BAD_ADDRESS',
          `listen at "${bad}"`,
        )
      }
      noErrors(other, t)
    },
  ],
  [
    'an unreachable address produces an error event naming it',
    /**
     * Requires: `send` to an address where nobody listens does not throw; an error event follows, a
     * `TransportError` with code `UNREACHABLE` or `CONNECT_TIMEOUT`, whose `peer` is that address.
     */
    async (h) => {
      const a = await h.open()
      const nobody = await h.freeAddress()
      try {
        a.transport.send(nobody, pattern(16, 20))
      } catch (e) {
        fail(`send to ${nobody}, where nobody listens, threw ${describe(e)}; it must report an error event`)
      }
      const error = await h.error(
        a,
        nobody,
        UNREACHABLE_CODES,
        0,
        `an error event at ${a.address} for ${nobody}`,
      )
      check(error.message.length > 0, 'the error has an empty message')
      check(a.messages.length === 0, 'a frame arrived from nowhere')
    },
  ],
]

/** Sends FIFO_FRAMES numbered frames from `from` to `to`, FIFO_WINDOW at most in flight; checks the order. */
async function pump(h: Harness, from: Endpoint, to: Endpoint): Promise<void> {
  let sent = 0
  while (to.messages.length < FIFO_FRAMES) {
    while (sent < FIFO_FRAMES && sent - to.messages.length < FIFO_WINDOW) {
      from.transport.send(to.address, u32Frame(sent, 21))
      sent++
    }
    const target = Math.min(FIFO_FRAMES, to.messages.length + FIFO_WINDOW / 2)
    await h.until(
      `frame ${target} of ${FIFO_FRAMES} from ${from.address} at ${to.address} (${to.messages.length} in)`,
      () => to.messages.length >= target,
    )
  }
  to.messages.forEach((m, i) => {
    const seq = m.bytes.length === 16 ? new DataView(m.bytes.buffer, m.bytes.byteOffset).getUint32(0) : -1
    check(
      seq === i,
      `frame ${i} at ${to.address} from ${m.from.address} was frame ${seq} of the sender: ` +
        'frames between one pair must arrive in order, each once',
    )
    sameBytes(m.bytes, u32Frame(i, 21), `frame ${i} at ${to.address}`)
  })
}

// ---------------------------------------------------------------------------------------------
// The harness: endpoints that record what their handlers get, and waits bounded by a deadline.

interface Received {
  /** A copy: the transport may reuse its buffer once the handler returns. */
  readonly bytes: Uint8Array
  readonly from: { readonly address: string; readonly id: Id | undefined }
}

class Endpoint {
  readonly transport: Transport
  readonly label: string
  readonly localId: Id
  address = ''
  /** Set once `listen` has resolved; handler calls before that are violations. */
  listening = false
  /** Set once `close` has resolved; handler calls after that are violations. */
  closed = false
  readonly messages: Received[] = []
  readonly errors: TransportError[] = []
  readonly violations: string[] = []
  onMessage: ((m: Received) => void) | undefined
  readonly #poke: () => void

  constructor(transport: Transport, label: string, localId: Id, poke: () => void) {
    this.transport = transport
    this.label = label
    this.localId = localId
    this.#poke = poke
  }

  get name(): string {
    return this.address === '' ? this.label : `${this.label} (${this.address})`
  }

  readonly handlers = {
    message: (frame: Uint8Array, from: { readonly address: string; readonly id?: Id }): void => {
      if (!this.listening) this.violations.push(`${this.name}: message handler called before listen resolved`)
      if (this.closed) this.violations.push(`${this.name}: message handler called after close resolved`)
      if (!(frame instanceof Uint8Array)) {
        this.violations.push(`${this.name}: message handler got a ${typeof frame}, not a Uint8Array`)
        return
      }
      const m: Received = { bytes: frame.slice(), from: { address: from.address, id: from.id } }
      this.messages.push(m)
      try {
        this.onMessage?.(m)
      } catch (e) {
        this.violations.push(`${this.name}: answering a frame threw ${describe(e)}`)
      }
      this.#poke()
    },
    error: (error: TransportError): void => {
      if (!this.listening) this.violations.push(`${this.name}: error handler called before listen resolved`)
      if (this.closed)
        this.violations.push(`${this.name}: error handler called after close resolved: ${describe(error)}`)
      if (!isTransportError(error)) {
        this.violations.push(`${this.name}: error handler got ${describe(error)}, not a TransportError`)
        return
      }
      this.errors.push(error)
      this.#poke()
    },
  }
}

interface Waiter {
  readonly what: string
  readonly check: (() => boolean) | undefined
  readonly resolve: () => void
  readonly reject: (e: unknown) => void
}

class Harness {
  readonly name: string
  readonly timeoutMs: number
  subject!: ConformanceSubject
  readonly endpoints: Endpoint[] = []
  readonly #rng: Rng
  readonly #waiters = new Set<Waiter>()
  #expired = false
  readonly #timer: ReturnType<typeof setTimeout>

  constructor(name: string, timeoutMs: number) {
    this.name = name
    this.timeoutMs = timeoutMs
    this.#rng = createRng(`conformance/${name}`)
    this.#timer = setTimeout(() => this.#expire(), timeoutMs)
  }

  #expire(): void {
    this.#expired = true
    for (const w of [...this.#waiters]) {
      this.#waiters.delete(w)
      w.reject(this.#timeoutError(w.what))
    }
  }

  #timeoutError(what: string): AssertionError {
    return new AssertionError({ message: `timed out after ${this.timeoutMs} ms waiting for ${what}` })
  }

  /** Re-checks every condition waited on; endpoints call it on each event. */
  poke(): void {
    for (const w of [...this.#waiters]) {
      if (w.check === undefined) continue
      let done: boolean
      try {
        done = w.check()
      } catch (e) {
        this.#waiters.delete(w)
        w.reject(e)
        continue
      }
      if (done) {
        this.#waiters.delete(w)
        w.resolve()
      }
    }
  }

  /** Resolves when `check()` holds, re-checked on every handler call; fails at the deadline. */
  until(what: string, check: () => boolean): Promise<void> {
    if (check()) return Promise.resolve()
    if (this.#expired) return Promise.reject(this.#timeoutError(what))
    return new Promise((resolve, reject) => this.#waiters.add({ what, check, resolve, reject }))
  }

  /** `promise`, or a failure naming `what` at the deadline. */
  within<T>(what: string, promise: Promise<T>): Promise<T> {
    if (this.#expired) return Promise.reject(this.#timeoutError(what))
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = { what, check: undefined, resolve: () => {}, reject }
      this.#waiters.add(w)
      promise.then(
        (v) => {
          this.#waiters.delete(w)
          resolve(v)
        },
        (e: unknown) => {
          this.#waiters.delete(w)
          reject(e)
        },
      )
    })
  }

  /** Resolves after `ms`: only to pace a bounded retry, never to wait for an event. */
  pause(ms: number): Promise<void> {
    return this.within(`a ${ms} ms pause`, new Promise((resolve) => setTimeout(resolve, ms)))
  }

  create(): Endpoint {
    let transport: Transport
    try {
      transport = this.subject.create()
    } catch (e) {
      fail(`create() threw ${describe(e)}`)
    }
    const ep = new Endpoint(transport, `transport #${this.endpoints.length}`, randomId(this.#rng), () =>
      this.poke(),
    )
    this.endpoints.push(ep)
    return ep
  }

  listenOptions(ep: Endpoint, address = this.subject.listenAddress): ListenOptions {
    return { address, localId: ep.localId, handlers: ep.handlers }
  }

  /** Listens at `address` (the subject's by default) and records the bound address. */
  async listen(ep: Endpoint, address = this.subject.listenAddress): Promise<string> {
    const bound = await this.within(
      `listen of ${ep.name} at ${address}`,
      ep.transport.listen(this.listenOptions(ep, address)),
    )
    check(typeof bound === 'string', `listen resolved to ${describe(bound)}, not an address`)
    ep.address = bound
    ep.listening = true
    return bound
  }

  /** A new transport, listening. */
  async open(): Promise<Endpoint> {
    const ep = this.create()
    await this.listen(ep)
    return ep
  }

  async close(ep: Endpoint): Promise<void> {
    await this.within(`close() of ${ep.name}`, ep.transport.close())
    ep.closed = true
  }

  /** An address that was just bound and released: most likely, nobody listens there now. */
  async freeAddress(): Promise<string> {
    const ep = await this.open()
    await this.close(ep)
    return ep.address
  }

  /**
   * A new transport listening at `address`, retrying `listen` on `LISTEN_FAILED` with fresh
   * transports, every 25 ms up to the deadline (a real stack may hold a closed port briefly).
   */
  async listenRetrying(address: string): Promise<Endpoint> {
    for (let attempt = 1; ; attempt++) {
      const ep = this.create()
      try {
        await this.listen(ep, address)
        return ep
      } catch (e) {
        if (!isTransportError(e) || e.code !== 'LISTEN_FAILED') throw e
        await this.close(ep)
        if (this.#expired) fail(`listen at ${address} failed ${attempt} times: ${describe(e)}`)
        await this.pause(25)
      }
    }
  }

  /** The `nth` frame (1-based) to arrive at `ep`, once it has arrived. */
  async message(ep: Endpoint, what: string, nth = 1): Promise<Received> {
    await this.until(what, () => ep.messages.length >= nth)
    return ep.messages[nth - 1]!
  }

  /**
   * The first error event at `ep` after its first `since` ones whose `peer` is `peer`; fails if its
   * code is not one of `codes`.
   */
  async error(
    ep: Endpoint,
    peer: string,
    codes: readonly TransportErrorCode[],
    since: number,
    what: string,
  ): Promise<TransportError> {
    const find = () => ep.errors.slice(since).find((e) => e.peer === peer)
    await this.until(what, () => find() !== undefined)
    const error = find()!
    check(codes.includes(error.code), `${what}: got ${describe(error)}; expected one of ${codes.join(', ')}`)
    return error
  }

  /** Fails with every handler call that broke the lifecycle rules. */
  checkViolations(): void {
    const all = this.endpoints.flatMap((ep) => ep.violations)
    if (all.length > 0) fail(`lifecycle violations:\n  ${all.slice(0, 20).join('\n  ')}`)
  }

  /**
   * Closes every endpoint and calls `teardown`, each bounded by a fresh `timeoutMs`. Returns what
   * went wrong, or undefined.
   */
  async dispose(): Promise<unknown> {
    clearTimeout(this.#timer)
    // Waits the case abandoned stay pending: rejecting them now would be unhandled rejections.
    this.#expired = true
    this.#waiters.clear()
    let problem: unknown
    const bounded = async (what: string, work: () => Promise<void> | void): Promise<void> => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(this.#timeoutError(what)), this.timeoutMs)
      })
      try {
        await Promise.race([Promise.resolve().then(work), timeout])
      } catch (e) {
        problem ??=
          e instanceof AssertionError ? e : new AssertionError({ message: `${what} failed: ${describe(e)}` })
      } finally {
        clearTimeout(timer)
      }
    }
    await bounded('closing every transport of the case', async () => {
      await Promise.all(
        this.endpoints.map(async (ep) => {
          try {
            await ep.transport.close()
          } catch (e) {
            throw new AssertionError({ message: `close() of ${ep.name} rejected: ${describe(e)}` })
          }
          ep.closed = true
        }),
      )
    })
    const subject = this.subject as ConformanceSubject | undefined
    if (subject?.teardown !== undefined) await bounded('teardown()', () => subject.teardown?.())
    return problem
  }
}

async function runCase(
  name: string,
  setup: () => ConformanceSubject | Promise<ConformanceSubject>,
  timeoutMs: number,
  body: CaseBody,
): Promise<void> {
  const h = new Harness(name, timeoutMs)
  let failure: unknown
  try {
    h.subject = await h.within('setup()', Promise.resolve().then(setup))
    await body(h)
    h.checkViolations()
  } catch (e) {
    failure = e
  }
  const problem = await h.dispose()
  if (failure !== undefined) {
    // A violation is often the root cause of a later timeout; name both.
    const violations = h.endpoints.flatMap((ep) => ep.violations)
    const also =
      violations.length > 0 ? `\nlifecycle violations:\n  ${violations.slice(0, 20).join('\n  ')}` : ''
    if (failure instanceof AssertionError) {
      if (also === '' || failure.message.startsWith('lifecycle violations')) throw failure
      throw new AssertionError({ message: `${failure.message}${also}` })
    }
    const wrapped = new AssertionError({ message: `unexpected ${describe(failure)}${also}` })
    ;(wrapped as { cause?: unknown }).cause = failure
    throw wrapped
  }
  if (problem !== undefined) throw problem
}

// ---------------------------------------------------------------------------------------------
// Checks.

function fail(message: string): never {
  throw new AssertionError({ message })
}

function check(ok: boolean, message: string): asserts ok {
  if (!ok) fail(message)
}

/**
 * A `TransportError`, also one from another copy of `@pastry/core` (a transport built against its
 * `dist` while the suite runs from source), recognised by name and a string code.
 */
function isTransportError(e: unknown): e is TransportError {
  return (
    e instanceof TransportError ||
    (e instanceof Error && e.name === 'TransportError' && typeof (e as { code?: unknown }).code === 'string')
  )
}

function describe(e: unknown): string {
  if (isTransportError(e)) return `TransportError ${e.code} (peer ${e.peer ?? 'unset'}): ${e.message}`
  if (e instanceof Error) return `${e.name}: ${e.message}`
  return typeof e === 'string' ? JSON.stringify(e) : String(e)
}

function expectThrow(fn: () => unknown, code: TransportErrorCode, what: string): void {
  try {
    fn()
  } catch (e) {
    if (!isTransportError(e)) fail(`${what} threw ${describe(e)}, not a TransportError`)
    check(e.code === code, `${what} threw ${describe(e)}; expected ${code}`)
    return
  }
  fail(`${what} did not throw; expected TransportError ${code}, thrown synchronously`)
}

/** `fn` must throw or reject with `code`. */
async function expectReject(
  h: Harness,
  fn: () => Promise<unknown>,
  code: TransportErrorCode,
  what: string,
): Promise<void> {
  try {
    await h.within(what, Promise.resolve().then(fn))
  } catch (e) {
    if (e instanceof AssertionError) throw e
    if (!isTransportError(e)) fail(`${what} failed with ${describe(e)}, not a TransportError`)
    check(e.code === code, `${what} failed with ${describe(e)}; expected ${code}`)
    return
  }
  fail(`${what} succeeded; expected TransportError ${code}`)
}

function sameBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  check(got.length === want.length, `${what}: ${got.length} bytes arrived, ${want.length} were sent`)
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) fail(`${what}: byte ${i} is ${got[i]}, ${want[i]} was sent`)
  }
}

function checkFromId(id: Id | undefined, sender: Endpoint): void {
  if (id === undefined) return
  check(
    id.equals(sender.localId),
    `from.id is ${id.toHex()}, not the sender's localId ${sender.localId.toHex()}`,
  )
}

function noErrors(...eps: Endpoint[]): void {
  for (const ep of eps) {
    check(ep.errors.length === 0, `unexpected error event at ${ep.name}: ${describe(ep.errors[0])}`)
  }
}

/** `length` bytes that differ with position and `salt`, so that a shifted or mixed frame shows. */
function pattern(length: number, salt: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (i * 31 + salt * 97 + (i >>> 8)) & 0xff
  return out
}

/** A 16-byte frame: `n` as a big-endian u32, then a pattern salted by `n` and `salt`. */
function u32Frame(n: number, salt: number): Uint8Array {
  const out = pattern(16, salt + n)
  new DataView(out.buffer).setUint32(0, n)
  return out
}
