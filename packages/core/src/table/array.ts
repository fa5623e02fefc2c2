/*
 * In-place insertion and removal for the tables' small sorted arrays. `Array.prototype.splice`
 * returns a new array of the removed items on every call, even when it removes none: in a
 * simulation of many nodes, where tables change on most inputs, that was a steady stream of
 * garbage. These move the items by hand and allocate nothing (the array may still grow its
 * storage, as `push` does).
 */

/** Inserts `value` at index `i` (0 ≤ i ≤ length), moving the items after it one place on. */
export function insertAt<T>(items: T[], i: number, value: T): void {
  let j = items.length
  items.push(value)
  for (; j > i; j--) items[j] = items[j - 1]!
  items[i] = value
}

/** Removes the item at index `i` (0 ≤ i < length), moving the items after it one place back. */
export function removeAt<T>(items: T[], i: number): void {
  const last = items.length - 1
  for (let j = i; j < last; j++) items[j] = items[j + 1]!
  items.pop()
}
