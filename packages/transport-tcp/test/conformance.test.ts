// The transport conformance suite from @pastry/testkit, run against the TCP transport on IPv4 and
// on IPv6 loopback, unkeyed and with a cluster key.
import { transportConformance } from '@pastry/testkit'
import { test } from 'uvu'
import { createTcpTransport } from '../src/index.js'

for (const c of transportConformance(() => ({
  create: () => createTcpTransport(),
  listenAddress: '127.0.0.1:0',
}))) {
  test(`tcp: ${c.name}`, c.run)
}

for (const c of transportConformance(() => ({
  create: () => createTcpTransport(),
  listenAddress: '[::1]:0',
}))) {
  test(`tcp over IPv6: ${c.name}`, c.run)
}

for (const c of transportConformance(() => ({
  create: () => createTcpTransport({ clusterKey: 'conformance' }),
  listenAddress: '127.0.0.1:0',
}))) {
  test(`tcp with a cluster key: ${c.name}`, c.run)
}

test.run()
