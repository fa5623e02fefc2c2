/*
 * Helpers for a transport package's own tests, beyond the conformance suite: an awaitable `Inbox`
 * and `listenRecording`, which makes a transport listen with handlers that record every frame and
 * error into inboxes. Tests then wait on events (never on sleeps), each wait bounded and named:
 *
 *   const a = await listenRecording(createTcpTransport(), { localId: randomId(rng) })
 *   const b = await listenRecording(createTcpTransport(), { localId: randomId(rng) })
 *   a.transport.send(b.address, new TextEncoder().encode('hi'))
 *   const got = await b.frames.next('hi at b', (f) => f.text === 'hi')
 *
 * The TCP and UDP transports' tests use them; the caller closes the transports.
 */
import type { Id, Transport, TransportError, TransportPeer } from '@pastry/core'

/** How long an {@link Inbox} wait takes before it fails, unless its inbox or the call says otherwise. */
export const DEFAULT_INBOX_WAIT_MS = 5_000

interface Waiter<T> {
  readonly pred: (item: T) => boolean
  readonly resolve: (item: T) => void
}

/**
 * A list of items that arrive over time and can be awaited: `next` resolves with the first item,
 * already received or to come, that matches a predicate, or rejects after a timeout with a message
 * that names what was awaited. Items are kept (a test's inbox lives as long as the test), so a wait
 * started after the item arrived still finds it.
 */
export class Inbox<T> {
  /** Every item pushed, oldest first. */
  readonly items: T[] = []
  /** The default timeout of `next` and `count`, in ms. */
  readonly waitMs: number
  #waiters: Waiter<T>[] = []

  constructor(waitMs = DEFAULT_INBOX_WAIT_MS) {
    this.waitMs = waitMs
  }

  /** Adds an item and resolves the waits it matches. Call it from the handler that receives items. */
  push(item: T): void {
    this.items.push(item)
    if (this.#waiters.length === 0) return
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(item)) return true
      w.resolve(item)
      return false
    })
  }

  /**
   * Resolves with the first item matching `pred`, already received or to come; rejects after `ms`
   * with "timed out after `ms` ms waiting for `what`".
   */
  next(what: string, pred: (item: T) => boolean = () => true, ms = this.waitMs): Promise<T> {
    const found = this.items.find(pred)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done)
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
      }, ms)
      const done = (item: T): void => {
        clearTimeout(timer)
        resolve(item)
      }
      this.#waiters.push({ pred, resolve: done })
    })
  }

  /** Resolves with the matching items once `count` items match `pred`; rejects after `ms` in all. */
  async count(
    what: string,
    count: number,
    pred: (item: T) => boolean = () => true,
    ms = this.waitMs,
  ): Promise<T[]> {
    const deadline = Date.now() + ms
    for (;;) {
      const got = this.items.filter(pred)
      if (got.length >= count) return got
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${count} × ${what} (got ${got.length})`)
      const seen = new Set(got)
      await this.next(what, (item) => pred(item) && !seen.has(item), left)
    }
  }
}

/** A frame as a recording transport received it. */
export interface RecordedFrame {
  /** A copy: the transport may reuse its buffer once the handler returns. */
  readonly frame: Uint8Array
  readonly from: TransportPeer
  /** The frame decoded as UTF-8, for tests that send text. */
  readonly text: string
}

/** A listening transport and what it received. Made by {@link listenRecording}. */
export interface RecordingTransport<T extends Transport = Transport> {
  readonly transport: T
  /** The id it listens with. */
  readonly id: Id
  /** The bound address `listen` resolved to. */
  readonly address: string
  readonly frames: Inbox<RecordedFrame>
  readonly errors: Inbox<TransportError>
}

/** What {@link listenRecording} needs besides the transport. */
export interface ListenRecordingOptions {
  readonly localId: Id
  /** Default `127.0.0.1:0`. */
  readonly address?: string
  /** The inboxes' default timeout in ms. Default {@link DEFAULT_INBOX_WAIT_MS}. */
  readonly waitMs?: number
}

/**
 * Makes `transport` (fresh, not yet listening) listen, recording every frame and error event in
 * inboxes. Resolves once `listen` has; rejects with what `listen` rejects with. Call it in a test,
 * and close the transport when the test ends.
 */
export async function listenRecording<T extends Transport>(
  transport: T,
  options: ListenRecordingOptions,
): Promise<RecordingTransport<T>> {
  const frames = new Inbox<RecordedFrame>(options.waitMs)
  const errors = new Inbox<TransportError>(options.waitMs)
  const decoder = new TextDecoder()
  const address = await transport.listen({
    address: options.address ?? '127.0.0.1:0',
    localId: options.localId,
    handlers: {
      message: (frame, from) =>
        frames.push({ frame: Uint8Array.from(frame), from, text: decoder.decode(frame) }),
      error: (error) => errors.push(error),
    },
  })
  return { transport, id: options.localId, address, frames, errors }
}
