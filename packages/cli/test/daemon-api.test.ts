// The `pastry node` contract, from outside: the exact stdout lines, bad command lines (exit 2), and
// the admin API's shapes and errors, including the Server-Sent Events stream and the Prometheus
// text. One node alone is the root of every key, so each routed message is delivered at it.
import { spawnSync } from 'node:child_process'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  admin,
  createRng,
  type DeliveredEntry,
  type Member,
  randomHex,
  SEED,
  sourceCluster,
} from './_cluster.js'

const ROOT = new URL('../../../', import.meta.url).pathname
const rng = createRng(`api-${SEED}`)
const cluster = sourceCluster()
let node: Member

const api = suite('pastry node: stdout contract and admin API')

api.before(async () => {
  node = await cluster.add(['--id', randomHex(rng)])
  await node.active
})

api.after(async () => {
  await cluster.stop()
})

async function request(
  path: string,
  init?: RequestInit,
): Promise<{ status: number; body: unknown; type: string }> {
  const res = await fetch(`http://${node.admin}${path}`, init)
  const text = await res.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body, type: res.headers.get('content-type') ?? '' }
}

api('GET /status has every documented field', async () => {
  const s = await admin<Record<string, unknown>>(node, '/status')
  assert.equal(Object.keys(s).sort(), [
    'address',
    'id',
    'leafSet',
    'neighbourhood',
    'routingTableEntries',
    'state',
  ])
  assert.is(s.id, node.id)
  assert.is(s.address, node.address)
  assert.is(s.state, 'active')
  assert.equal(s.leafSet, [])
  assert.is(s.routingTableEntries, 0)
})

api('POST /route answers 202 {id}; /delivered lists it with hops, key, data and origin', async () => {
  const key = randomHex(rng)
  const res = await request('/route', {
    method: 'POST',
    body: JSON.stringify({ key: key.toUpperCase(), data: 'héllo' }),
  })
  assert.is(res.status, 202)
  const id = (res.body as { id: string }).id
  assert.type(id, 'string')
  const list = await admin<DeliveredEntry[]>(node, '/delivered')
  const entry = list.find((e) => e.id === id)
  assert.ok(entry !== undefined, 'the message is listed')
  assert.is(entry.key, key)
  assert.is(entry.data, 'héllo')
  assert.is(entry.hops, 0)
  assert.is(entry.origin, node.id)
})

api('GET /deliveries streams each delivery as a Server-Sent Event', async () => {
  const controller = new AbortController()
  const giveUp = setTimeout(() => controller.abort(), 10_000) // fails the read instead of hanging
  const res = await fetch(`http://${node.admin}/deliveries`, { signal: controller.signal })
  assert.is(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const routed = await admin<{ id: string }>(node, '/route', { key: randomHex(rng), data: 'streamed' })
  let text = ''
  while (!text.includes(routed.id)) {
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
  }
  clearTimeout(giveUp)
  controller.abort()
  const event = text.split('\n\n').find((e) => e.includes(routed.id)) ?? ''
  assert.match(event, /^event: delivery$/m)
  const data = JSON.parse(/^data: (.*)$/m.exec(event)?.[1] ?? '{}') as DeliveredEntry
  assert.is(data.data, 'streamed')
})

api('bad requests get 4xx with {"error"} and leave the node serving', async () => {
  const cases: [string, RequestInit | undefined, number][] = [
    ['/route', { method: 'POST', body: '{not json' }, 400],
    ['/route', { method: 'POST', body: '[1,2]' }, 400],
    ['/route', { method: 'POST', body: JSON.stringify({ key: 'xyz', data: 'a' }) }, 400],
    ['/route', { method: 'POST', body: JSON.stringify({ key: randomHex(rng).slice(1), data: 'a' }) }, 400],
    ['/route', { method: 'POST', body: JSON.stringify({ key: randomHex(rng), data: 42 }) }, 400],
    [
      '/route',
      { method: 'POST', body: JSON.stringify({ key: randomHex(rng), data: 'x'.repeat(300_000) }) },
      413,
    ],
    ['/route', undefined, 405],
    ['/nowhere', undefined, 404],
  ]
  for (const [path, init, status] of cases) {
    const res = await request(path, init)
    assert.is(res.status, status, `${init?.method ?? 'GET'} ${path} ${String(init?.body ?? '').slice(0, 40)}`)
    assert.type((res.body as { error?: unknown }).error, 'string', 'the body is {"error": "..."}')
  }
  assert.is((await admin<{ state: string }>(node, '/status')).state, 'active')
})

api('GET /metrics is Prometheus text with the node state and message counters', async () => {
  const res = await request('/metrics')
  assert.is(res.status, 200)
  assert.match(res.type, /text\/plain/)
  const text = res.body as string
  assert.match(text, /^# TYPE pastry_node_state gauge$/m)
  assert.match(text, /^pastry_node_state\{state="active"\} 1$/m)
  assert.match(text, /^# TYPE pastry_admin_delivered_total counter$/m)
  assert.match(text, /^pastry_admin_delivered_total\{app="admin"\} [1-9]\d*$/m)
})

api('bad command lines exit 2 with a message', () => {
  const run = (args: string[]) =>
    spawnSync(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'packages/cli/src/bin.ts', 'node', ...args],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 30_000,
      },
    )
  for (const args of [
    [],
    ['--listen', 'nohost'],
    ['--listen', '127.0.0.1:0', '--id', 'abc'],
    ['--listen', '127.0.0.1:0', '--b', '3'],
    ['--listen', '127.0.0.1:0', '--transport', 'carrier-pigeon'],
    ['--listen', '127.0.0.1:0', '--bogus'],
    ['--listen', '127.0.0.1:0', '--pubsub-max-children', '0'],
    ['--listen', '127.0.0.1:0', '--pubsub-max-children', 'many'],
  ]) {
    const r = run(args)
    assert.is(r.status, 2, `pastry node ${args.join(' ')}`)
    assert.is(r.stdout, '', 'nothing on stdout')
    assert.match(r.stderr, /^pastry: /)
  }
})

api('SIGTERM: a graceful leave and exit 0, with only the contract lines on stdout', async () => {
  const lone = await cluster.add(['--id', randomHex(rng), '--bootstrap', node.address])
  await lone.active
  assert.is(await cluster.kill(lone, 'SIGTERM'), 0)
  assert.equal(
    lone.stdout.map((l) => JSON.parse(l) as unknown),
    [{ event: 'listening', id: lone.id, address: lone.address, admin: lone.admin }, { event: 'active' }],
  )
  const logs = lone.stderr.map((l) => JSON.parse(l) as { msg: string; level: number })
  assert.ok(
    logs.some((l) => l.msg === 'left'),
    'the log says it left',
  )
})

api.run()
