/*
 * `pastry node`: one Pastry node as a long-running process, driven through its admin HTTP API.
 * Its options, its stdout lines and its API are a contract that tests and other tools rely on; see
 * the CLI README. stdout carries only the JSON lines of the contract; logs are JSON lines on stderr.
 */

import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import {
  checkDigitBits,
  checkLeafSetSize,
  createNode,
  Id,
  InvalidIdError,
  type OverlayNode,
  type ProtocolConfig,
  parseAddress,
  type Transport,
  TransportError,
} from '@pastry/core'
import { createPubSub, type PubSubConfig } from '@pastry/pubsub'
import { createTcpTransport } from '@pastry/transport-tcp'
import { createUdpTransport } from '@pastry/transport-udp'
import { pino } from 'pino'
import { UsageError } from '../errors.js'
import { type DeliveredRecord, HttpError, startAdmin } from './admin.js'
import { LogBudget } from './log-budget.js'
import { collectMetrics } from './metrics.js'
import { PubSubAdmin } from './pubsub-admin.js'
import { RecentLog } from './recent.js'

export const NODE_USAGE = `Usage: pastry node --listen HOST:PORT [options]

Runs one Pastry node until SIGTERM (a graceful leave, then exit 0) or POST /leave.

Options:
  --listen HOST:PORT          address to bind the transport to (port 0 picks one)
  --transport tcp|udp         transport (default tcp); every member of a cluster must use the same
  --bootstrap HOST:PORT       a member to join through; repeat for more. Without one, the node
                              starts a new overlay
  --admin HOST:PORT           admin HTTP API address (default 127.0.0.1:0)
  --advertise HOST:PORT       address peers reach this node at, if not the bound one
  --cluster-key-file PATH     file holding the cluster key; peers without it are refused
  --id HEX                    node id, 32 hex digits (default random)
  --b BITS                    bits per digit: 1, 2, 4 or 8 (default 4)
  --leaf-set L                leaf-set size, even, 2..64 (default 16)
  --heartbeat-ms MS           leaf-set heartbeat period Tls (default 30000); timeouts follow it
  --probe-timeout-ms MS       wait for a probe's reply (default 3000)
  --join-timeout-ms MS        give up joining after this long and exit 1 (default: the
                              protocol's join budget, about 80 s with default periods)
  --pubsub-max-children N     children a pub/sub tree node takes per topic before it hands a
                              new one down to an existing child, 1..1024 (default 16)
  --log-level LEVEL           fatal | error | warn | info | debug | trace | silent (default info)
  -h, --help                  show this help

stdout: {"event":"listening","id","address","admin"}, then {"event":"active"}.
Admin API: GET /status, POST /route, GET /delivered, GET /deliveries (SSE), GET /metrics,
POST /leave; pub/sub: POST /subscribe, POST /unsubscribe, POST /publish, GET /received?topic=T,
GET /topics, GET /topics/{topic}/events (SSE).`

/** The application name the admin API routes under. */
export const ADMIN_APP = 'pastry.admin'
/** The most deliveries `/delivered` keeps. */
export const DELIVERED_CAPACITY = 10_000
/** The largest `data` string `/route` accepts, in UTF-8 bytes. */
export const MAX_ROUTE_DATA_BYTES = 256 * 1024

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      listen: { type: 'string' },
      transport: { type: 'string' },
      bootstrap: { type: 'string', multiple: true },
      admin: { type: 'string' },
      advertise: { type: 'string' },
      'cluster-key-file': { type: 'string' },
      id: { type: 'string' },
      b: { type: 'string' },
      'leaf-set': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'probe-timeout-ms': { type: 'string' },
      'join-timeout-ms': { type: 'string' },
      'pubsub-max-children': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
}

function intOption(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  }
  return n
}

function addressOption(name: string, value: string): string {
  try {
    parseAddress(value)
  } catch (e) {
    throw new UsageError(`--${name}: ${e instanceof Error ? e.message : String(e)}`)
  }
  return value
}

/** The daemon's settings, checked. */
interface NodeSettings {
  readonly listen: string
  readonly transport: 'tcp' | 'udp'
  readonly bootstrap: readonly string[]
  readonly admin: string
  readonly advertise: string | undefined
  readonly clusterKey: Uint8Array | undefined
  readonly id: Id
  readonly config: Partial<ProtocolConfig>
  readonly joinTimeoutMs: number | undefined
  /** Pub/sub settings given on the command line; the rest keep their defaults. */
  readonly pubsub: Partial<PubSubConfig>
  readonly logLevel: (typeof LOG_LEVELS)[number]
}

function settings(argv: readonly string[]): NodeSettings | 'help' {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message.replace(/^TypeError.*?: /, '') : String(e))
  }
  const v = parsed.values
  if (v.help === true) return 'help'
  if (v.listen === undefined) throw new UsageError('--listen HOST:PORT is required')
  const transport = v.transport ?? 'tcp'
  if (transport !== 'tcp' && transport !== 'udp') {
    throw new UsageError(`--transport must be tcp or udp, got ${JSON.stringify(transport)}`)
  }
  let id: Id
  if (v.id === undefined) id = Id.fromBytes(randomBytes(16))
  else {
    try {
      id = Id.parse(v.id)
    } catch (e) {
      if (e instanceof InvalidIdError) throw new UsageError(`--id: ${e.message}`)
      throw e
    }
  }
  const config: { -readonly [K in keyof ProtocolConfig]?: ProtocolConfig[K] } = {}
  const b = intOption('b', v.b, 1, 8)
  if (b !== undefined) {
    try {
      config.b = checkDigitBits(b)
    } catch (e) {
      throw new UsageError(`--b: ${e instanceof Error ? e.message : String(e)}`)
    }
  }
  const leafSet = intOption('leaf-set', v['leaf-set'], 2, 64)
  if (leafSet !== undefined) {
    try {
      checkLeafSetSize(leafSet)
    } catch (e) {
      throw new UsageError(`--leaf-set: ${e instanceof Error ? e.message : String(e)}`)
    }
    config.leafSetSize = leafSet
  }
  const tls = intOption('heartbeat-ms', v['heartbeat-ms'], 10, 3_600_000)
  if (tls !== undefined) config.leafSetHeartbeatMs = tls
  const probe = intOption('probe-timeout-ms', v['probe-timeout-ms'], 10, 600_000)
  if (probe !== undefined) config.probeTimeoutMs = probe
  const maxChildren = intOption('pubsub-max-children', v['pubsub-max-children'], 1, 1024)
  const logLevel = v['log-level'] ?? 'info'
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(
      `--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`,
    )
  }
  let clusterKey: Uint8Array | undefined
  const keyFile = v['cluster-key-file']
  if (keyFile !== undefined) {
    let raw: Buffer
    try {
      raw = readFileSync(keyFile)
    } catch (e) {
      throw new UsageError(`--cluster-key-file: cannot read ${keyFile}: ${(e as Error).message}`)
    }
    // A trailing newline from an editor or `echo` is not part of the key.
    const text = raw.toString('utf8').replace(/[\r\n]+$/, '')
    if (text.length === 0) throw new UsageError(`--cluster-key-file: ${keyFile} is empty`)
    clusterKey = new TextEncoder().encode(text)
  }
  return {
    listen: addressOption('listen', v.listen),
    transport,
    bootstrap: (v.bootstrap ?? []).map((a) => addressOption('bootstrap', a)),
    admin: addressOption('admin', v.admin ?? '127.0.0.1:0'),
    advertise: v.advertise === undefined ? undefined : addressOption('advertise', v.advertise),
    clusterKey,
    id,
    config,
    joinTimeoutMs: intOption('join-timeout-ms', v['join-timeout-ms'], 100, 86_400_000),
    pubsub: maxChildren === undefined ? {} : { maxChildren },
    logLevel: logLevel as NodeSettings['logLevel'],
  }
}

function makeTransport(s: NodeSettings): Transport {
  const options = {
    ...(s.clusterKey === undefined ? {} : { clusterKey: s.clusterKey }),
    ...(s.advertise === undefined ? {} : { advertiseAddress: s.advertise }),
  }
  return s.transport === 'udp' ? createUdpTransport(options) : createTcpTransport(options)
}

/**
 * Runs `pastry node` with its arguments (after `node`). Resolves to the exit code once the node has
 * left (SIGTERM, SIGINT or POST /leave): 0 after a graceful leave, 1 when the join failed.
 */
export async function runNode(argv: readonly string[]): Promise<number> {
  const s = settings(argv)
  if (s === 'help') {
    process.stdout.write(`${NODE_USAGE}\n`)
    return 0
  }
  const log = pino(
    { level: s.logLevel, base: { node: s.id.toHex().slice(0, 8) } },
    pino.destination({ dest: 2, sync: true }),
  )
  const transport = makeTransport(s)
  let node: OverlayNode
  try {
    node = await createNode({
      transport,
      listen: s.listen,
      id: s.id,
      config: s.config,
      ...(s.advertise === undefined ? {} : { advertise: s.advertise }),
    })
  } catch (e) {
    if (e instanceof TransportError || (e instanceof Error && e.name === 'ConfigError')) {
      log.fatal({ code: (e as TransportError).code }, e.message)
      return 1
    }
    throw e
  }
  // Pub/sub rides on the node from the start; it closes by itself if the node closes.
  const pubsub = new PubSubAdmin(createPubSub(node, { config: s.pubsub }), log)
  const delivered = new RecentLog<DeliveredRecord>(DELIVERED_CAPACITY)
  let leaving = false
  let finish: (code: number) => void = () => {}
  const finished = new Promise<number>((resolve) => {
    finish = resolve
  })

  node.register(ADMIN_APP)
  node.on('deliver', (d) => {
    if (d.app !== ADMIN_APP) return
    delivered.push(toRecord(d.msgId, d.key.toHex(), d.payload, d.hops, d.origin.id.toHex()))
  })
  node.on('stateChanged', (e) => log.info({ from: e.from, to: e.to }, 'state changed'))
  node.on('nodeFailed', (e) => log.info({ peer: e.node.id.toHex(), address: e.node.address }, 'peer failed'))
  node.on('nodeRecovered', (e) => log.info({ peer: e.node.id.toHex() }, 'peer recovered'))
  node.on('routeFailed', (e) =>
    log.warn({ msgId: e.msgId, key: e.key.toHex(), reason: e.reason }, 'route failed'),
  )
  // Peers can cause these two by the thousand; the counters in /metrics keep the full numbers.
  const budget = new LogBudget()
  node.on('error', (e) => {
    const skipped = (n: number) => log.warn({ skipped: n }, `${n} more error lines were left out`)
    if (budget.take('error', skipped)) log.warn({ code: e.code }, e.message)
  })
  node.on('badFrame', (e) => {
    const skipped = (n: number) => log.warn({ skipped: n }, `${n} more bad-frame lines were left out`)
    if (budget.take('badFrame', skipped)) log.warn({ code: e.code, from: e.from }, `bad frame: ${e.message}`)
  })
  node.on('transportError', (e) => log.debug({ code: e.error.code, peer: e.error.peer }, e.error.message))

  const leave = async (why: string) => {
    if (leaving) return
    leaving = true
    log.info({ why }, 'leaving')
    pubsub.pubsub.close() // while the node is active, so parents and children hear of it at once
    await node.leave()
    await admin.close()
    log.info('left')
    finish(0)
  }

  const admin = await startAdmin(s.admin, {
    status: () => ({
      id: node.id.toHex(),
      address: node.address,
      state: leaving ? 'leaving' : node.state,
      leafSet: node.machine.leafSet.members().map((n) => ({ id: n.id.toHex(), address: n.address })),
      routingTableEntries: node.machine.routingTable.size,
      neighbourhood: [...node.machine.neighbourhood].map((n) => ({ id: n.id.toHex(), address: n.address })),
    }),
    route: (key, data) => routeFromApi(node, key, data),
    delivered,
    metrics: () => collectMetrics(node, delivered, pubsub),
    leave: () => void leave('POST /leave'),
    routes: pubsub.routes,
  })

  process.stdout.write(
    `${JSON.stringify({ event: 'listening', id: node.id.toHex(), address: node.address, admin: admin.address })}\n`,
  )
  log.info({ address: node.address, admin: admin.address, transport: transport.kind }, 'listening')

  const onSignal = (signal: NodeJS.Signals) => void leave(signal)
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)

  const announceActive = () => process.stdout.write(`${JSON.stringify({ event: 'active' })}\n`)
  if (s.bootstrap.length === 0) {
    node.start()
    announceActive()
  } else {
    node
      .join(s.bootstrap, s.joinTimeoutMs === undefined ? {} : { timeoutMs: s.joinTimeoutMs })
      .then(announceActive, async (e: unknown) => {
        log.fatal({ code: (e as { code?: string }).code }, e instanceof Error ? e.message : String(e))
        leaving = true
        await node.close()
        await admin.close()
        finish(1)
      })
  }
  const code = await finished
  process.off('SIGTERM', onSignal)
  process.off('SIGINT', onSignal)
  return code
}

/** What `/route` puts in a message: an id the API answers with, the data, and the send time. */
interface RoutedPayload {
  readonly id: string
  readonly data: string
  readonly sentAtMs: number
}

function routeFromApi(node: OverlayNode, key: unknown, data: unknown): string {
  if (typeof key !== 'string') throw new HttpError(400, '"key" must be a string of 32 hex digits')
  let id: Id
  try {
    id = Id.parse(key)
  } catch (e) {
    throw new HttpError(400, `bad key: ${(e as Error).message}`)
  }
  if (typeof data !== 'string') throw new HttpError(400, '"data" must be a string')
  if (Buffer.byteLength(data) > MAX_ROUTE_DATA_BYTES) {
    throw new HttpError(413, `"data" is over ${MAX_ROUTE_DATA_BYTES} bytes`)
  }
  if (node.state !== 'active' && node.state !== 'joining') {
    throw new HttpError(503, `the node is ${node.state}`)
  }
  const msg: RoutedPayload = { id: randomBytes(8).toString('hex'), data, sentAtMs: Date.now() }
  node.route(id, ADMIN_APP, new TextEncoder().encode(JSON.stringify(msg)))
  return msg.id
}

function toRecord(
  msgId: number,
  key: string,
  payload: Uint8Array,
  hops: number,
  origin: string,
): DeliveredRecord {
  try {
    const p = JSON.parse(new TextDecoder().decode(payload)) as Partial<RoutedPayload>
    if (typeof p.id === 'string' && typeof p.data === 'string') {
      const latencyMs = typeof p.sentAtMs === 'number' ? Math.max(0, Date.now() - p.sentAtMs) : null
      return { id: p.id, key, data: p.data, hops, origin, latencyMs }
    }
  } catch {
    // Not from an admin API: list it with the raw text.
  }
  return { id: String(msgId), key, data: new TextDecoder().decode(payload), hops, origin, latencyMs: null }
}
