// The transport conformance suite from @pastry/testkit, run against the UDP transport on IPv4 and
// on IPv6 loopback, unkeyed and with a cluster key.
import { transportConformance } from '@pastry/testkit'
import { test } from 'uvu'
import { createUdpTransport } from '../src/index.js'

for (const c of transportConformance(() => ({
  create: () => createUdpTransport(),
  listenAddress: '127.0.0.1:0',
}))) {
  test(`udp: ${c.name}`, c.run)
}

for (const c of transportConformance(() => ({
  create: () => createUdpTransport(),
  listenAddress: '[::1]:0',
}))) {
  test(`udp over IPv6: ${c.name}`, c.run)
}

for (const c of transportConformance(() => ({
  create: () => createUdpTransport({ clusterKey: 'conformance' }),
  listenAddress: '127.0.0.1:0',
}))) {
  test(`udp with a cluster key: ${c.name}`, c.run)
}

test.run()
