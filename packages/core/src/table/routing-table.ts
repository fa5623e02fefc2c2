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
  readonly #rows: (N | undefined)[][] = []
  readonly #proximity: Float64Array[] = []
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
    return this.#rows.length
  }

  /** The number of entries. */
  get size(): number {
    return this.#size
  }

  get(row: number, col: number): N | undefined {
    return this.#rows[row]?.[col]
  }

  /** The recorded proximity (ms) of the entry at (row, col), or Infinity when the cell is empty. */
  proximityAt(row: number, col: number): number {
    const r = this.#rows[row]
    return r?.[col] === undefined ? Number.POSITIVE_INFINITY : this.#proximity[row]![col]!
  }

  /** The cell a node belongs in, or undefined for this node itself. */
  cellOf(id: Id): { row: number; col: number } | undefined {
    const row = this.self.sharedPrefixLength(id, this.b)
    if (row >= this.maxRows) return undefined
    return { row, col: id.digit(row, this.b) }
  }

  /**
   * Offers a node with its proximity in milliseconds (lower is nearer; pass 0 when proximity is not
   * known or not used). The node takes its cell when the cell is empty or when it is strictly
   * nearer than the present entry. Offering the present entry again updates its handle and
   * proximity. Returns true when the cell's entry or proximity changed.
   */
  insert(node: N, proximityMs = 0): boolean {
    const cell = this.cellOf(node.id)
    if (cell === undefined) return false
    const { row, col } = cell
    while (this.#rows.length <= row) {
      this.#rows.push(new Array<N | undefined>(this.columns).fill(undefined))
      this.#proximity.push(new Float64Array(this.columns))
    }
    const cells = this.#rows[row]!
    const prox = this.#proximity[row]!
    const present = cells[col]
    if (present === undefined) {
      cells[col] = node
      prox[col] = proximityMs
      this.#size++
      return true
    }
    if (present.id.equals(node.id)) {
      const changed = prox[col] !== proximityMs
      cells[col] = node
      prox[col] = proximityMs
      return changed
    }
    if (proximityMs < prox[col]!) {
      cells[col] = node
      prox[col] = proximityMs
      return true
    }
    return false
  }

  /** Empties the cell holding this id. Returns true when it was present. */
  remove(id: Id): boolean {
    const cell = this.cellOf(id)
    if (cell === undefined) return false
    const cells = this.#rows[cell.row]
    if (cells?.[cell.col]?.id.equals(id) !== true) return false
    cells[cell.col] = undefined
    this.#size--
    return true
  }

  /** True when an entry has this id. */
  contains(id: Id): boolean {
    const cell = this.cellOf(id)
    return cell !== undefined && this.#rows[cell.row]?.[cell.col]?.id.equals(id) === true
  }

  /** The entries of one row, skipping empty cells. */
  row(row: number): N[] {
    const cells = this.#rows[row]
    if (cells === undefined) return []
    return cells.filter((n): n is N => n !== undefined)
  }

  /** Every entry, row by row. */
  *entries(): IterableIterator<{ row: number; col: number; node: N; proximityMs: number }> {
    for (let r = 0; r < this.#rows.length; r++) {
      const cells = this.#rows[r]!
      for (let c = 0; c < cells.length; c++) {
        const node = cells[c]
        if (node !== undefined) yield { row: r, col: c, node, proximityMs: this.#proximity[r]![c]! }
      }
    }
  }

  [Symbol.iterator](): Iterator<N> {
    const out: N[] = []
    for (const cells of this.#rows) for (const n of cells) if (n !== undefined) out.push(n)
    return out[Symbol.iterator]()
  }
}
