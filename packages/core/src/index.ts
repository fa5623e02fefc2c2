/**
 * @pastry/core: the transport-agnostic heart of Pastry.
 *
 * - `id`: 128-bit identifiers, digits, ring distance, hashing names to ids, seeded randomness.
 * - `table`: the leaf set, the routing table and the neighbourhood set.
 * - `route`: the next-hop decision, replica sets and key ranges, as pure functions of the tables.
 * - `wire`: the protocol's messages and their strictly validated cbor-x codec.
 *
 * Nothing here reads a clock, sets a timer, draws unseeded randomness or does I/O: time and
 * randomness come in from the caller, so the same code runs in a simulator, a server or a browser.
 * The package README expands on each layer.
 */
export * from './errors.js'
export * from './id/index.js'
export * from './protocol/index.js'
export * from './route/index.js'
export * from './runtime/index.js'
export * from './table/index.js'
export * from './wire/index.js'
