/*
 * The pub/sub part of `pastry node`'s admin API, over the node's one `@pastry/pubsub` instance:
 *
 *   POST /subscribe {"topic"}            200 {"topic","subscribed":true}    (idempotent)
 *   POST /unsubscribe {"topic"}          200 {"topic","subscribed":false}   (idempotent)
 *   POST /publish {"topic","data"}       202 {"publisher","epoch","seq"}    (before the root's ack)
 *   GET  /received?topic=T               the records received for T here, oldest first
 *   GET  /topics                         this node's place in every tree it is part of
 *   GET  /topics/{topic}/events          the records of one topic as Server-Sent Events
 *
 * A record is a message `{"topic","data","publisher","epoch","seq","receivedAtMs"}` or a gap
 * `{"topic","publisher","epoch","gap":{"fromSeq","toSeq"},"receivedAtMs"}`, in the order the
 * subscription's handler got them: a gap comes before any later message of its publisher.
 *
 * Memory is bounded: {@link RECEIVED_PER_TOPIC} records per topic, and {@link RECEIVED_TOTAL}
 * records and {@link RECEIVED_TOTAL_BYTES} bytes of data across every topic, the oldest record
 * anywhere dropped first; at most {@link MAX_TRACKED_TOPICS} topics are tracked.
 *
 * Why `/publish` can answer at once: `PubSub.publish` numbers the message synchronously but only
 * hands the number over when the root acknowledges it. This API is the only publisher of the
 * node's pubsub instance, and the instance numbers each topic's accepted publishes 1, 2, 3... for
 * its whole life, so the seq is the count of publishes on the topic that did not throw. The count is
 * checked against the acknowledged seq, and a mismatch is logged and counted (`seqMismatches`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  MAX_TOPIC_BYTES,
  type PubSub,
  type PubSubDelivery,
  PubSubError,
  type Subscription,
} from '@pastry/pubsub'
import { HttpError, json, MAX_STREAM_BACKLOG_BYTES, MAX_STREAMS, readJson } from './admin.js'

/** Records `/received` keeps per topic. */
export const RECEIVED_PER_TOPIC = 10_000
/** Records `/received` keeps across every topic. */
export const RECEIVED_TOTAL = 100_000
/** UTF-8 bytes of `data` `/received` keeps across every topic. */
export const RECEIVED_TOTAL_BYTES = 32 * 1024 * 1024
/** Topics `/received` keeps records for; an unsubscribed topic's records go first to make room. */
export const MAX_TRACKED_TOPICS = 1024

/** A message received by this node's subscription, as `/received` lists it. */
export interface ReceivedMessage {
  readonly topic: string
  /** The published data, decoded as UTF-8 (bytes that are not UTF-8 become U+FFFD). */
  readonly data: string
  /** The publishing node's id (hex). */
  readonly publisher: string
  /** The publisher's incarnation; `seq` starts again at 1 in a new epoch. */
  readonly epoch: number
  readonly seq: number
  /** This host's wall clock when the message reached the subscription. */
  readonly receivedAtMs: number
}

/** Messages `fromSeq..toSeq` of one publisher that this subscription will never receive. */
export interface ReceivedGap {
  readonly topic: string
  readonly publisher: string
  readonly epoch: number
  readonly gap: { readonly fromSeq: number; readonly toSeq: number }
  readonly receivedAtMs: number
}

/** One `/received` record. */
export type ReceivedRecord = ReceivedMessage | ReceivedGap

/** One `/topics` entry: this node's place in a topic's tree. */
export interface TopicEntry {
  readonly topic: string
  /** A `/subscribe` of this node is in force. */
  readonly subscribed: boolean
  /** This node believes it is the topic's root. */
  readonly root: boolean
  /** Its parent in the tree; null at the root and while detached. */
  readonly parent: { readonly id: string; readonly address: string } | null
  readonly children: readonly { readonly id: string; readonly address: string }[]
  /** Messages and gaps received here since the first `/subscribe`. */
  readonly received: number
  readonly gaps: number
}

/** What the daemon's logger must offer (pino's does). */
export interface PubSubAdminLog {
  warn(fields: object, message: string): void
  debug(fields: object, message: string): void
}

/** A first-in first-out ring that grows on demand; callers bound its size. */
class Deque<T> {
  #items: (T | undefined)[] = new Array<T | undefined>(16)
  #head = 0
  #size = 0

  get size(): number {
    return this.#size
  }

  push(item: T): void {
    if (this.#size === this.#items.length) {
      const bigger = new Array<T | undefined>(this.#items.length * 2)
      for (let i = 0; i < this.#size; i++) bigger[i] = this.#items[(this.#head + i) % this.#items.length]
      this.#items = bigger
      this.#head = 0
    }
    this.#items[(this.#head + this.#size) % this.#items.length] = item
    this.#size++
  }

  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#items[this.#head]
  }

  shift(): T | undefined {
    if (this.#size === 0) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head] = undefined
    this.#head = (this.#head + 1) % this.#items.length
    this.#size--
    return item
  }

  toArray(): T[] {
    const out: T[] = []
    for (let i = 0; i < this.#size; i++) out.push(this.#items[(this.#head + i) % this.#items.length] as T)
    return out
  }

  clear(): void {
    this.#items = new Array<T | undefined>(16)
    this.#head = 0
    this.#size = 0
  }
}

interface Entry {
  /** Its number in the store's arrival order. */
  readonly n: number
  readonly bytes: number
  readonly record: ReceivedRecord
}

interface TopicLog {
  readonly entries: Deque<Entry>
  bytes: number
  messages: number
  gaps: number
}

/**
 * The records of every tracked topic, bounded per topic and in total. The arrival order holds one
 * `(log, n)` per record pushed; a record dropped by its topic's own cap leaves a stale slot there,
 * skipped when it reaches the front, so the order itself never holds more than the total cap.
 */
class ReceivedStore {
  readonly #logs = new Map<string, TopicLog>()
  readonly #order = new Deque<{ readonly log: TopicLog; readonly n: number }>()
  readonly #listeners = new Map<string, Set<(r: ReceivedRecord) => void>>()
  #n = 0
  #bytes = 0

  /** Starts keeping `topic`'s records; drops an untracked topic's if full. False when it cannot. */
  track(topic: string, keep: (topic: string) => boolean): boolean {
    if (this.#logs.has(topic)) return true
    if (this.#logs.size >= MAX_TRACKED_TOPICS) {
      const victim = [...this.#logs.keys()].find((t) => !keep(t))
      if (victim === undefined) return false
      this.#drop(victim)
    }
    this.#logs.set(topic, { entries: new Deque(), bytes: 0, messages: 0, gaps: 0 })
    return true
  }

  push(topic: string, record: ReceivedRecord, bytes: number): void {
    const log = this.#logs.get(topic)
    if (log === undefined) return
    const n = ++this.#n
    log.entries.push({ n, bytes, record })
    log.bytes += bytes
    this.#bytes += bytes
    if ('gap' in record) log.gaps++
    else log.messages++
    this.#order.push({ log, n })
    if (log.entries.size > RECEIVED_PER_TOPIC) this.#evict(log)
    while (this.#order.size > RECEIVED_TOTAL || this.#bytes > RECEIVED_TOTAL_BYTES) {
      const oldest = this.#order.shift()
      if (oldest === undefined) break
      if (oldest.log.entries.peek()?.n === oldest.n) this.#evict(oldest.log)
    }
    const listeners = this.#listeners.get(topic)
    if (listeners !== undefined) for (const fn of [...listeners]) fn(record)
  }

  list(topic: string): ReceivedRecord[] {
    return (
      this.#logs
        .get(topic)
        ?.entries.toArray()
        .map((e) => e.record) ?? []
    )
  }

  counts(topic: string): { messages: number; gaps: number } {
    const log = this.#logs.get(topic)
    return { messages: log?.messages ?? 0, gaps: log?.gaps ?? 0 }
  }

  /** Calls `fn` with every later record of `topic`; returns the function that stops it. */
  listen(topic: string, fn: (r: ReceivedRecord) => void): () => void {
    let set = this.#listeners.get(topic)
    if (set === undefined) this.#listeners.set(topic, (set = new Set()))
    set.add(fn)
    return () => {
      set.delete(fn)
      if (set.size === 0) this.#listeners.delete(topic)
    }
  }

  #evict(log: TopicLog): void {
    const e = log.entries.shift()
    if (e === undefined) return
    log.bytes -= e.bytes
    this.#bytes -= e.bytes
  }

  #drop(topic: string): void {
    const log = this.#logs.get(topic)
    if (log === undefined) return
    this.#bytes -= log.bytes
    log.bytes = 0
    log.entries.clear()
    this.#logs.delete(topic)
  }
}

const utf8 = new TextEncoder()
const lenientUtf8 = new TextDecoder()

/**
 * The pub/sub endpoints of one daemon. Make it right after `createPubSub(node)`; mount
 * {@link PubSubAdmin.routes} in the admin API and hand it to `/metrics`. It stays valid until the
 * pubsub instance closes; after that, every command answers 503.
 */
export class PubSubAdmin {
  readonly pubsub: PubSub
  /** Totals since start, for `/metrics`. */
  readonly counts = {
    /** Messages handed to this node's subscriptions. */
    received: 0,
    /** Gap events handed to them. */
    gaps: 0,
    /** Publishes through `/publish` that their root acknowledged. */
    published: 0,
    /** Publishes through `/publish` that gave up (`PUBLISH_FAILED`, `CLOSED`). */
    publishFailed: 0,
    /** Acknowledged seqs that differed from the one `/publish` answered with (expected 0). */
    seqMismatches: 0,
  }
  readonly #log: PubSubAdminLog
  readonly #subs = new Map<string, Subscription>()
  readonly #nextSeq = new Map<string, number>()
  readonly #store = new ReceivedStore()

  constructor(pubsub: PubSub, log: PubSubAdminLog) {
    this.pubsub = pubsub
    this.#log = log
    pubsub.on('error', (e) => log.warn({ code: e.code }, `pubsub: ${e.message}`))
    pubsub.on('parentChanged', (e) =>
      log.debug({ topic: e.topic, parent: e.parent?.address ?? null, root: e.root }, 'pubsub parent changed'),
    )
    pubsub.on('subscribeFailed', (e) =>
      log.warn({ topic: e.topic, attempts: e.attempts }, 'pubsub subscribe unanswered; retrying'),
    )
  }

  /** The admin API hook: see the module comment for the routes. */
  readonly routes = async (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    streams: Set<ServerResponse>,
  ): Promise<boolean> => {
    const path = url.pathname
    const only = (method: string) => {
      if (req.method !== method) throw new HttpError(405, `${req.method} is not allowed on ${path}`)
    }
    switch (path) {
      case '/subscribe': {
        only('POST')
        const { topic } = await body(req, '{"topic"}')
        this.#subscribe(checkTopic(topic))
        json(res, 200, { topic, subscribed: true })
        return true
      }
      case '/unsubscribe': {
        only('POST')
        const { topic } = await body(req, '{"topic"}')
        const t = checkTopic(topic)
        this.#subs.get(t)?.unsubscribe()
        this.#subs.delete(t)
        json(res, 200, { topic, subscribed: false })
        return true
      }
      case '/publish': {
        only('POST')
        const { topic, data } = await body(req, '{"topic","data"}')
        json(res, 202, this.#publish(checkTopic(topic), data))
        return true
      }
      case '/received': {
        only('GET')
        json(res, 200, this.#store.list(checkTopic(url.searchParams.get('topic') ?? undefined)))
        return true
      }
      case '/topics': {
        only('GET')
        json(res, 200, this.topics())
        return true
      }
      default: {
        const m = /^\/topics\/([^/]+)\/events$/.exec(path)
        if (m === null) return false
        only('GET')
        let topic: string
        try {
          topic = decodeURIComponent(m[1] as string)
        } catch {
          throw new HttpError(400, 'the topic in the path is not valid percent-encoding')
        }
        this.#stream(req, res, checkTopic(topic), streams)
        return true
      }
    }
  }

  /** Every topic this node has state for, as `/topics` lists them. Stale after the next input. */
  topics(): TopicEntry[] {
    const m = this.pubsub.machine
    return m.topics.map((topic) => {
      const parent = m.parentOf(topic)
      const { messages, gaps } = this.#store.counts(topic)
      return {
        topic,
        subscribed: this.#subs.has(topic),
        root: m.isRoot(topic),
        parent: parent === undefined ? null : { id: parent.id.toHex(), address: parent.address },
        children: m.childrenOf(topic).map((c) => ({ id: c.id.toHex(), address: c.address })),
        received: messages,
        gaps,
      }
    })
  }

  #subscribe(topic: string): void {
    if (this.#subs.has(topic)) return
    if (!this.#store.track(topic, (t) => this.#subs.has(t)))
      throw new HttpError(503, `this node tracks at most ${MAX_TRACKED_TOPICS} topics`)
    const sub = guard(() => this.pubsub.subscribe(topic, (d) => this.#receive(d)))
    this.#subs.set(topic, sub)
  }

  #receive(d: PubSubDelivery): void {
    const publisher = d.publisher.id.toHex()
    const receivedAtMs = Date.now()
    if (d.type === 'message') {
      this.counts.received++
      const record: ReceivedMessage = {
        topic: d.topic,
        data: lenientUtf8.decode(d.data),
        publisher,
        epoch: d.epoch,
        seq: d.seq,
        receivedAtMs,
      }
      this.#store.push(d.topic, record, d.data.length)
    } else {
      this.counts.gaps++
      this.#log.warn(
        { topic: d.topic, publisher, epoch: d.epoch, fromSeq: d.fromSeq, toSeq: d.toSeq },
        'pubsub gap: messages lost for good',
      )
      const gap = { fromSeq: d.fromSeq, toSeq: d.toSeq }
      this.#store.push(d.topic, { topic: d.topic, publisher, epoch: d.epoch, gap, receivedAtMs }, 0)
    }
  }

  #publish(topic: string, data: unknown): { publisher: string; epoch: number; seq: number } {
    if (typeof data !== 'string') throw new HttpError(400, '"data" must be a string')
    const bytes = utf8.encode(data)
    const max = this.pubsub.machine.config.maxDataBytes
    if (bytes.length > max) throw new HttpError(413, `"data" is over ${max} bytes`)
    const state = this.pubsub.node.state
    if (state !== 'active' && state !== 'joining') throw new HttpError(503, `the node is ${state}`)
    const promise = guard(() => this.pubsub.publish(topic, bytes))
    // It did not throw, so the machine numbered it: the next seq of this topic (see the module comment).
    const seq = (this.#nextSeq.get(topic) ?? 0) + 1
    this.#nextSeq.set(topic, seq)
    promise.then(
      (p) => {
        this.counts.published++
        if (p.seq !== seq) {
          this.counts.seqMismatches++
          this.#log.warn({ topic, answered: seq, acknowledged: p.seq }, 'pubsub publish seq mismatch')
        }
      },
      (e: unknown) => {
        this.counts.publishFailed++
        this.#log.warn({ topic, seq }, `pubsub publish failed: ${e instanceof Error ? e.message : String(e)}`)
      },
    )
    return { publisher: this.pubsub.node.id.toHex(), epoch: this.pubsub.machine.epoch, seq }
  }

  #stream(req: IncomingMessage, res: ServerResponse, topic: string, streams: Set<ServerResponse>): void {
    if (streams.size >= MAX_STREAMS)
      throw new HttpError(503, `too many open streams (at most ${MAX_STREAMS})`)
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    res.write(`: records of ${JSON.stringify(topic)} received at this node, as they arrive\n\n`)
    streams.add(res)
    const stop = this.#store.listen(topic, (record) => {
      if (res.writableLength > MAX_STREAM_BACKLOG_BYTES) {
        res.destroy()
        return
      }
      res.write(`event: ${'gap' in record ? 'gap' : 'message'}\ndata: ${JSON.stringify(record)}\n\n`)
    })
    const done = () => {
      stop()
      streams.delete(res)
    }
    req.on('close', done)
    res.on('close', done)
  }
}

async function body(req: IncomingMessage, shape: string): Promise<Record<string, unknown>> {
  const b = await readJson(req)
  if (typeof b !== 'object' || b === null || Array.isArray(b))
    throw new HttpError(400, `the body must be a JSON object ${shape}`)
  return b as Record<string, unknown>
}

function checkTopic(topic: unknown): string {
  if (typeof topic !== 'string' || topic.length === 0 || utf8.encode(topic).length > MAX_TOPIC_BYTES)
    throw new HttpError(400, `"topic" must be a non-empty string of at most ${MAX_TOPIC_BYTES} UTF-8 bytes`)
  return topic
}

/** Runs a pubsub command, turning its `PubSubError` into the HTTP answer. */
function guard<T>(run: () => T): T {
  try {
    return run()
  } catch (e) {
    if (!(e instanceof PubSubError)) throw e
    const status =
      e.code === 'BAD_TOPIC' || e.code === 'BAD_DATA'
        ? 400
        : e.code === 'DATA_TOO_LARGE'
          ? 413
          : 503 /* OVERLOADED, TOO_MANY_TOPICS, CLOSED */
    throw new HttpError(status, `${e.code}: ${e.message}`)
  }
}
