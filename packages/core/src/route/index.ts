export { nextHop, type RouteDecision, type RouteRule, type RouteTables } from './next-hop.js'
export { type KeyRange, range, replicaSet } from './replica.js'
