/**
 * A cap on log lines that peers can cause. A node logs each bad frame and each failed send, and a
 * hostile or broken peer can cause thousands a second; past `perWindow` lines of one kind in a
 * window, lines of that kind are counted instead of written, and the first line of the next window
 * says how many were left out. Memory: one record per kind, and the kinds are fixed by the caller.
 */
export class LogBudget {
  readonly #perWindow: number
  readonly #windowMs: number
  readonly #clock: () => number
  readonly #kinds = new Map<string, { start: number; used: number; skipped: number }>()

  constructor(perWindow = 20, windowMs = 10_000, clock: () => number = () => performance.now()) {
    this.#perWindow = perWindow
    this.#windowMs = windowMs
    this.#clock = clock
  }

  /**
   * Whether a line of `kind` may be written now. When a new window opens after lines were left
   * out, `onSkipped` is called first with their number, so that the caller can say so.
   */
  take(kind: string, onSkipped: (skipped: number) => void): boolean {
    const now = this.#clock()
    let k = this.#kinds.get(kind)
    if (k === undefined) {
      k = { start: now, used: 0, skipped: 0 }
      this.#kinds.set(kind, k)
    }
    if (now - k.start >= this.#windowMs) {
      if (k.skipped > 0) onSkipped(k.skipped)
      k.start = now
      k.used = 0
      k.skipped = 0
    }
    if (k.used < this.#perWindow) {
      k.used++
      return true
    }
    k.skipped++
    return false
  }
}
