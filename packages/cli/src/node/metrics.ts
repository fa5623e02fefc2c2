/*
 * `/metrics` of `pastry node`, in the Prometheus text format. Every figure is read from the node at
 * scrape time, so nothing here needs updating as the node runs.
 */
import type { OverlayNode } from '@pastry/core'
import { Counter, Gauge, Registry } from 'prom-client'
import type { DeliveredRecord } from './admin.js'
import type { PubSubAdmin } from './pubsub-admin.js'
import type { RecentLog } from './recent.js'

const STATES = ['idle', 'joining', 'active', 'leaving', 'closed'] as const

/** Builds the registry for one node. Call once; scrape with `metrics()`. */
function buildRegistry(
  node: OverlayNode,
  delivered: RecentLog<DeliveredRecord>,
  pubsub: PubSubAdmin | undefined,
): Registry {
  const registry = new Registry()
  const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset()
        collect(this)
      },
    })
  // Counters are read from the node's own totals at scrape time.
  const counter = (name: string, help: string, label: string, read: () => Record<string, unknown>) =>
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset()
        for (const [k, n] of Object.entries(read())) if (typeof n === 'number') this.inc({ [label]: k }, n)
      },
    })
  gauge('pastry_node_state', 'The node lifecycle state (1 for the current one).', ['state'], (g) => {
    for (const s of STATES) g.set({ state: s }, node.state === s ? 1 : 0)
  })
  gauge('pastry_leaf_set_size', 'Members of the leaf set.', [], (g) => g.set(node.machine.leafSet.size))
  gauge('pastry_routing_table_entries', 'Filled routing-table cells.', [], (g) =>
    g.set(node.machine.routingTable.size),
  )
  gauge('pastry_neighbourhood_size', 'Members of the neighbourhood set.', [], (g) =>
    g.set(node.machine.neighbourhood.size),
  )
  gauge('pastry_pending_routes', 'Routed messages awaiting a hop acknowledgement.', [], (g) =>
    g.set(node.machine.pendingRoutes),
  )
  gauge('pastry_held_messages', 'Routed messages held for a suspected leaf or the join.', [], (g) =>
    g.set(node.machine.heldMessages),
  )
  counter(
    'pastry_messages_sent_total',
    'Protocol messages sent, by type.',
    'type',
    () => node.machine.counters.sent,
  )
  counter('pastry_messages_received_total', 'Protocol messages received, by type.', 'type', () => ({
    ...node.machine.counters.received,
  }))
  counter(
    'pastry_runtime_events_total',
    'Runtime counters: frames, bytes, bad frames, failures.',
    'counter',
    () => ({
      ...node.stats,
    }),
  )
  const transport = node.transport as { stats?: Record<string, unknown> }
  if (transport.stats !== undefined) {
    counter('pastry_transport_events_total', 'Transport counters.', 'counter', () => transport.stats ?? {})
  }
  counter(
    'pastry_admin_delivered_total',
    'Messages routed by the admin API and delivered here.',
    'app',
    () => ({
      admin: delivered.total,
    }),
  )
  if (pubsub !== undefined) {
    const m = pubsub.pubsub.machine
    gauge('pastry_pubsub_topics', 'Pub/sub topics with state here, by role.', ['role'], (g) => {
      const topics = m.topics
      g.set({ role: 'any' }, topics.length)
      g.set({ role: 'subscribed' }, topics.filter((t) => m.isSubscribed(t)).length)
      g.set({ role: 'root' }, topics.filter((t) => m.isRoot(t)).length)
    })
    gauge('pastry_pubsub_children', 'Children in every pub/sub tree this node is part of.', [], (g) =>
      g.set(m.topics.reduce((n, t) => n + m.childrenOf(t).length, 0)),
    )
    gauge('pastry_pubsub_pending_publishes', 'Publishes awaiting the root acknowledgement.', [], (g) =>
      g.set(m.pendingPublishes),
    )
    counter(
      'pastry_pubsub_messages_received_total',
      'Pub/sub messages delivered to subscriptions here.',
      'app',
      () => ({ pubsub: pubsub.counts.received }),
    )
    counter('pastry_pubsub_gaps_total', 'Pub/sub gap events: messages lost for good.', 'app', () => ({
      pubsub: pubsub.counts.gaps,
    }))
    counter(
      'pastry_pubsub_events_total',
      'Pub/sub counters: protocol, runtime and /publish outcomes.',
      'counter',
      () => {
        const { published, publishFailed, seqMismatches } = pubsub.counts
        return { ...m.stats, ...pubsub.pubsub.runtimeStats, published, publishFailed, seqMismatches }
      },
    )
  }
  return registry
}

/**
 * Returns the scrape function for `node`. The registry is made on first use and kept, so that
 * scrapes cost only the reads.
 */
export function collectMetrics(
  node: OverlayNode,
  delivered: RecentLog<DeliveredRecord>,
  pubsub?: PubSubAdmin,
): Promise<{ contentType: string; body: string }> {
  let registry = registries.get(node)
  if (registry === undefined) {
    registry = buildRegistry(node, delivered, pubsub)
    registries.set(node, registry)
  }
  const r = registry
  return r.metrics().then((body) => ({ contentType: r.contentType, body }))
}

const registries = new WeakMap<OverlayNode, Registry>()
