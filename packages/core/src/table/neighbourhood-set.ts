/*
 * The neighbourhood set holds the M nodes nearest to this node by proximity (round-trip time), not
 * by id. Routing does not use it directly; it seeds the routing table with near nodes and joins the
 * rare-case candidates. It is kept sorted by proximity, nearest first, and never exceeds M.
 *
 * Beside each member the set keeps the low word of its id, so that looking a node up scans one
 * small array of numbers and touches a member object only on a match: a simulation of many nodes
 * keeps the member objects scattered over a large heap, where each one read is a cache miss.
 */
import { ConfigError } from '../errors.js'
import type { Id } from '../id/id.js'
import { insertAt, removeAt } from './array.js'
import type { HasId } from './types.js'

/** The default neighbourhood-set size M. */
export const DEFAULT_NEIGHBOURHOOD_SIZE = 32

/** The largest neighbourhood-set size accepted. */
export const MAX_NEIGHBOURHOOD_SIZE = 1024

/** The neighbourhood set of the node `self`. Bounded by construction: at most M members. */
export class NeighbourhoodSet<N extends HasId> {
  /** This node's id. */
  readonly self: Id
  /** M: the most members. */
  readonly capacity: number
  readonly #nodes: N[] = []
  readonly #proximity: number[] = []
  /** The low word (`w3`) of each member's id, in member order. */
  readonly #key: number[] = []

  /** Makes an empty set for `self` with M = `size` (default 32). */
  constructor(self: Id, size: number = DEFAULT_NEIGHBOURHOOD_SIZE) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_NEIGHBOURHOOD_SIZE) {
      throw new ConfigError(
        `the neighbourhood-set size M must be an integer from 1 to ${MAX_NEIGHBOURHOOD_SIZE}, got ${size}`,
      )
    }
    this.self = self
    this.capacity = size
  }

  /** The number of members. */
  get size(): number {
    return this.#nodes.length
  }

  /**
   * Offers a node with its proximity in milliseconds. It enters when the set has room or when it is
   * strictly nearer than the farthest member, which then leaves. Offering a member again updates
   * its proximity and handle. Returns true when membership or order changed.
   */
  insert(node: N, proximityMs: number): boolean {
    if (node.id.equals(this.self)) return false
    const present = this.#indexOf(node.id)
    if (present >= 0) {
      const same = this.#proximity[present] === proximityMs
      // Unchanged proximity keeps the member where it is, unless equals follow it (a member offered
      // again goes after its equals).
      if (same && !(this.#proximity[present + 1]! <= proximityMs)) {
        this.#nodes[present] = node
        return false
      }
      removeAt(this.#nodes, present)
      removeAt(this.#proximity, present)
      removeAt(this.#key, present)
      this.#place(node, proximityMs)
      return !same
    }
    if (
      this.#nodes.length >= this.capacity &&
      !(proximityMs < this.#proximity[this.#proximity.length - 1]!)
    ) {
      return false
    }
    this.#place(node, proximityMs)
    if (this.#nodes.length > this.capacity) {
      this.#nodes.pop()
      this.#proximity.pop()
      this.#key.pop()
    }
    return true
  }

  /** Removes the member with this id. Returns true when it was present. */
  remove(id: Id): boolean {
    const i = this.#indexOf(id)
    if (i < 0) return false
    removeAt(this.#nodes, i)
    removeAt(this.#proximity, i)
    removeAt(this.#key, i)
    return true
  }

  /** True when a member has this id. */
  contains(id: Id): boolean {
    return this.#indexOf(id) >= 0
  }

  /** The recorded proximity (ms) of a member, or undefined when it is not one. */
  proximityOf(id: Id): number | undefined {
    const i = this.#indexOf(id)
    return i < 0 ? undefined : this.#proximity[i]
  }

  /** The farthest member by proximity (the next to leave when a nearer node comes), if any. */
  farthest(): N | undefined {
    return this.#nodes[this.#nodes.length - 1]
  }

  /** The members, nearest first. A copy. */
  members(): N[] {
    return this.#nodes.slice()
  }

  [Symbol.iterator](): Iterator<N> {
    return this.members()[Symbol.iterator]()
  }

  #indexOf(id: Id): number {
    const key = this.#key
    const w3 = id.w3
    for (let i = 0; i < key.length; i++) if (key[i] === w3 && this.#nodes[i]!.id.equals(id)) return i
    return -1
  }

  #place(node: N, proximityMs: number): void {
    let i = this.#nodes.length
    while (i > 0 && proximityMs < this.#proximity[i - 1]!) i--
    insertAt(this.#nodes, i, node)
    insertAt(this.#proximity, i, proximityMs)
    insertAt(this.#key, i, node.id.w3)
  }
}
