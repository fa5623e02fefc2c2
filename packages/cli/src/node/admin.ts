/*
 * The admin HTTP API of `pastry node`: JSON in and out, one Server-Sent Events stream. Its routes
 * and shapes are a contract (see the CLI README); every bad request gets a 4xx with
 * `{"error": "..."}` and never disturbs the node.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { formatAddress, parseAddress } from '@pastry/core'
import type { RecentLog } from './recent.js'

/** The largest request body the API reads, in bytes. */
export const MAX_BODY_BYTES = 2 * 1024 * 1024
/** Open `/deliveries` streams at once; more get 503. */
export const MAX_STREAMS = 64
/** Bytes a stream may have unsent before it is cut off as too slow. */
export const MAX_STREAM_BACKLOG_BYTES = 4 * 1024 * 1024

/** A delivery as `/delivered` lists it. */
export interface DeliveredRecord {
  readonly id: string
  readonly key: string
  readonly data: string
  readonly hops: number
  readonly origin: string
  /** Milliseconds from the origin's `/route` to delivery here, by the two hosts' wall clocks. */
  readonly latencyMs: number | null
}

/** What the API needs from the daemon. */
export interface AdminBackend {
  status(): unknown
  /** Routes `data` to `key`; returns the message's id. Throws {@link HttpError} for a bad request. */
  route(key: unknown, data: unknown): string
  readonly delivered: RecentLog<DeliveredRecord>
  metrics(): Promise<{ contentType: string; body: string }>
  /** Starts a graceful leave; the process exits when it is done. */
  leave(): void
  /** More routes (pub/sub), tried for any path the API does not own itself. */
  readonly routes?: AdminRoutes
}

/**
 * A mounted set of routes: answers the request and resolves to true, or resolves to false for a path
 * it does not own. It throws {@link HttpError} for a bad request, and registers any Server-Sent
 * Events stream in `streams` (at most {@link MAX_STREAMS}, shared with `/deliveries`).
 */
export type AdminRoutes = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  streams: Set<ServerResponse>,
) => Promise<boolean>

/** An error with an HTTP status, for the API to answer with. */
export class HttpError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

/** Starts the API on `address` (`host:port`, port 0 picks one). Resolves to the server and its address. */
export async function startAdmin(
  address: string,
  backend: AdminBackend,
): Promise<{ address: string; close(): Promise<void> }> {
  const { host, port } = parseAddress(address)
  const streams = new Set<ServerResponse>()
  const server = createServer((req, res) => {
    handle(req, res, backend, streams).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500
      if (!res.headersSent)
        json(res, status, { error: error instanceof Error ? error.message : String(error) })
      else res.destroy()
    })
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.keepAliveTimeout = 5_000
  server.maxHeadersCount = 64
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = server.address() as AddressInfo
  return {
    address: formatAddress(bound.address, bound.port),
    close: () =>
      new Promise<void>((resolve) => {
        // Streams never end by themselves: cut them, and idle keep-alive connections, first.
        for (const s of streams) s.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  backend: AdminBackend,
  streams: Set<ServerResponse>,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin')
  const route = `${req.method} ${url.pathname}`
  switch (route) {
    case 'GET /status':
      return json(res, 200, backend.status())
    case 'POST /route': {
      const body = await readJson(req)
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new HttpError(400, 'the body must be a JSON object {"key","data"}')
      }
      const { key, data } = body as Record<string, unknown>
      return json(res, 202, { id: backend.route(key, data) })
    }
    case 'GET /delivered':
      return json(res, 200, backend.delivered.list())
    case 'GET /deliveries':
      return stream(req, res, backend.delivered, streams)
    case 'GET /metrics': {
      const m = await backend.metrics()
      res.writeHead(200, { 'content-type': m.contentType })
      res.end(m.body)
      return
    }
    case 'POST /leave':
      json(res, 202, { leaving: true })
      backend.leave()
      return
    default: {
      if (backend.routes !== undefined && (await backend.routes(req, res, url, streams))) return
      const known = ['/status', '/route', '/delivered', '/deliveries', '/metrics', '/leave']
      if (known.includes(url.pathname))
        throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}`)
      throw new HttpError(404, `no such endpoint: ${url.pathname}`)
    }
  }
}

/** Answers with `value` as JSON. */
export function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** Reads the request body as JSON (at most {@link MAX_BODY_BYTES}); throws {@link HttpError} 400 or 413. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `the body is over ${MAX_BODY_BYTES} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the body is over ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  try {
    return JSON.parse(text)
  } catch {
    throw new HttpError(400, 'the body is not valid JSON')
  }
}

function stream(
  req: IncomingMessage,
  res: ServerResponse,
  log: RecentLog<DeliveredRecord>,
  streams: Set<ServerResponse>,
): void {
  if (streams.size >= MAX_STREAMS) throw new HttpError(503, `too many open streams (at most ${MAX_STREAMS})`)
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  res.write(': deliveries at this node, as they happen\n\n')
  streams.add(res)
  const stop = log.subscribe((record) => {
    if (res.writableLength > MAX_STREAM_BACKLOG_BYTES) {
      res.destroy()
      return
    }
    res.write(`event: delivery\ndata: ${JSON.stringify(record)}\n\n`)
  })
  const done = () => {
    stop()
    streams.delete(res)
  }
  req.on('close', done)
  res.on('close', done)
}
