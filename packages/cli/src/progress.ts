/**
 * A one-line progress display on stderr, drawn only when stderr is a terminal, so that pipes and
 * logs stay clean. Redraws at most every 100 ms.
 */
export function createProgress(stream: NodeJS.WriteStream = process.stderr): {
  update(label: string, fraction: number): void
  done(): void
} {
  const enabled = stream.isTTY === true
  let last = 0
  let drawn = false
  return {
    update(label, fraction) {
      if (!enabled) return
      const now = Date.now()
      if (now - last < 100 && fraction < 1) return
      last = now
      const width = 30
      const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width)
      stream.write(
        `\r${label.padEnd(8)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`,
      )
      drawn = true
    },
    done() {
      if (enabled && drawn) stream.write('\r\x1b[K')
      drawn = false
    },
  }
}
