/*
 * Theory of operation
 *
 * The routing table of node A has 128/b rows and 2^b columns. The cell in row r, column c holds at
 * most one node whose id shares exactly r leading digits with A and whose digit r is c. The column
 * of A's own digit in each row stays empty (A itself would belong there).
 *
 * When several nodes qualify for a cell, the one with the lowest proximity (measured round-trip
 * time, in milliseconds) is kept: this is proximity neighbour selection (PNS). Rows are allocated
 * on first use, so a table in an overlay of N nodes costs about log_{2^b} N rows, not 128/b.
 */
import { type DigitBits, digitCount } from '../id/digits.js'
import type { Id } from '../id/id.js'
import type { HasId } from './types.js'

/** A read-only view of a routing table, which is all that routing needs. */
export interface RoutingTableView<N extends HasId> {
  /** Rows that may hold entries: rows at or past this index are empty. */
  readonly rowCount: number
  /** The entry at (row, col), if any. */
  get(row: number, col: number): N | undefined
}

/** The routing table of the node `self`. Bounded by construction: at most (128/b)·2^b entries. */
export class RoutingTable<N extends HasId> implements RoutingTableView<N> {
  /** This node's id. */
  readonly self: Id
  /** Bits per digit. */
  readonly b: DigitBits
  /** Columns per row: 2^b. */
  readonly columns: number
  /** Rows in a full table: 128/b. */
  readonly maxRows: number
  /** Cells row by row, `columns` per row; rows are appended on first use. */
  readonly #cells: (N | undefined)[] = []
  /** The proximity of each cell's entry, parallel to `#cells` (a plain array of doubles). */
  readonly #proximity: number[] = []
  #rowCount = 0
  #size = 0

  /** Makes an empty routing table for `self` with digits of `b` bits. */
  constructor(self: Id, b: DigitBits) {
    this.self = self
    this.b = b
    this.columns = 1 << b
    this.maxRows = digitCount(b)
  }

  /** The number of rows allocated so far; rows from here on are empty. */
  get rowCount(): number {
    return this.#rowCount
  }

  /** The number of entries. */
  get size(): number {
    return this.#size
  }

  get(row: number, col: number): N | undefined {
    return row < this.#rowCount ? this.#cells[row * this.columns + col] : undefined
  }

  /** The recorded proximity (ms) of the entry at (row, col), or Infinity when the cell is empty. */
  proximityAt(row: number, col: number): number {
    if (row >= this.#rowCount) return Number.POSITIVE_INFINITY
    const at = row * this.columns + col
    return this.#cells[at] === undefined ? Number.POSITIVE_INFINITY : this.#proximity[at]!
  }

  /** The cell a node belongs in, or undefined for this node itself. */
  cellOf(id: Id): { row: number; col: number } | undefined {
    const row = this.self.sharedPrefixLength(id, this.b)
    if (row >= this.maxRows) return undefined
    return { row, col: id.digit(row, this.b) }
  }

  /**
   * The index of the cell a node belongs in (row × columns + column), or -1 for this node itself.
   * Allocates nothing; {@link RoutingTable.cellOf} says the same as a row and a column.
   */
  cellIndexOf(id: Id): number {
    const row = this.self.sharedPrefixLength(id, this.b)
    if (row >= this.maxRows) return -1
    return row * this.columns + id.digit(row, this.b)
  }

  /** The recorded proximity (ms) of the cell with this index, or Infinity when it is empty. */
  proximityAtIndex(index: number): number {
    return index >= 0 && this.#cells[index] !== undefined ? this.#proximity[index]! : Number.POSITIVE_INFINITY
  }

  /** The entry in the cell with this index (see {@link RoutingTable.cellIndexOf}), if any. */
  atIndex(index: number): N | undefined {
    return index >= 0 ? this.#cells[index] : undefined
  }

  /**
   * Offers a node with its proximity in milliseconds (lower is nearer; pass 0 when proximity is not
   * known or not used). The node takes its cell when the cell is empty or when it is strictly
   * nearer than the present entry. Offering the present entry again updates its handle and
   * proximity. Returns true when the cell's entry or proximity changed.
   */
  insert(node: N, proximityMs = 0): boolean {
    const row = this.self.sharedPrefixLength(node.id, this.b)
    if (row >= this.maxRows) return false
    const cols = this.columns
    while (this.#rowCount <= row) {
      for (let c = 0; c < cols; c++) {
        this.#cells.push(undefined)
        this.#proximity.push(0.5)
      }
      this.#rowCount++
    }
    const at = row * cols + node.id.digit(row, this.b)
    const cells = this.#cells
    const prox = this.#proximity
    const present = cells[at]
    if (present === undefined) {
      cells[at] = node
      prox[at] = proximityMs
      this.#size++
      return true
    }
    if (present.id.equals(node.id)) {
      const changed = prox[at] !== proximityMs
      cells[at] = node
      prox[at] = proximityMs
      return changed
    }
    if (proximityMs < prox[at]!) {
      cells[at] = node
      prox[at] = proximityMs
      return true
    }
    return false
  }

  /** Empties the cell holding this id. Returns true when it was present. */
  remove(id: Id): boolean {
    const at = this.cellIndexOf(id)
    if (at < 0 || this.#cells[at]?.id.equals(id) !== true) return false
    this.#cells[at] = undefined
    this.#size--
    return true
  }

  /** True when an entry has this id. */
  contains(id: Id): boolean {
    const at = this.cellIndexOf(id)
    return at >= 0 && this.#cells[at]?.id.equals(id) === true
  }

  /** The entries of one row, skipping empty cells. */
  row(row: number): N[] {
    const out: N[] = []
    if (row >= this.#rowCount) return out
    const cells = this.#cells
    for (let at = row * this.columns, end = at + this.columns; at < end; at++) {
      const n = cells[at]
      if (n !== undefined) out.push(n)
    }
    return out
  }

  /** Every entry, row by row. */
  *entries(): IterableIterator<{ row: number; col: number; node: N; proximityMs: number }> {
    const cols = this.columns
    for (let at = 0; at < this.#cells.length; at++) {
      const node = this.#cells[at]
      if (node !== undefined)
        yield { row: Math.floor(at / cols), col: at % cols, node, proximityMs: this.#proximity[at]! }
    }
  }

  [Symbol.iterator](): Iterator<N> {
    const out: N[] = []
    for (const n of this.#cells) if (n !== undefined) out.push(n)
    return out[Symbol.iterator]()
  }
}
