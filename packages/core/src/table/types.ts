import type { Id } from '../id/id.js'

/**
 * Anything with an id. Tables and routing are generic over the handle type, so the protocol can
 * store full node handles (id and address) while a static overlay stores compact ones.
 */
export interface HasId {
  readonly id: Id
}
