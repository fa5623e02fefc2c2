/*
 * UTF-8 helpers for the codec: bounds on text are in UTF-8 bytes, and the pre-scan rejects text
 * strings that are not valid UTF-8 before the CBOR decoder turns them into JavaScript strings
 * (cbor-x would substitute or mis-decode them, and the message would not re-encode to the same text).
 */

/**
 * The length of `s` in UTF-8 bytes, or -1 when `s` holds a lone surrogate and so has no UTF-8 form.
 * Call it to check a string against a byte bound before encoding it.
 */
export function utf8Length(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1)
      if (!(d >= 0xdc00 && d <= 0xdfff)) return -1
      n += 4
      i++
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1
    else n += 3
  }
  return n
}

/**
 * True when `b[start, end)` is well-formed UTF-8 (RFC 3629: shortest forms only, no surrogates,
 * nothing above U+10FFFF). Allocates nothing.
 */
export function isValidUtf8(b: Uint8Array, start: number, end: number): boolean {
  let i = start
  while (i < end) {
    const c = b[i]!
    if (c < 0x80) {
      i += 1
      continue
    }
    let need: number
    let lo = 0x80
    let hi = 0xbf
    if (c >= 0xc2 && c <= 0xdf) need = 1
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2
      if (c === 0xe0) lo = 0xa0
      else if (c === 0xed) hi = 0x9f
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3
      if (c === 0xf0) lo = 0x90
      else if (c === 0xf4) hi = 0x8f
    } else return false
    // fewer continuation bytes remain than the lead byte announces
    if (i + need >= end) return false
    const c1 = b[i + 1]!
    if (c1 < lo || c1 > hi) return false
    for (let k = 2; k <= need; k++) {
      const ck = b[i + k]!
      if (ck < 0x80 || ck > 0xbf) return false
    }
    i += need + 1
  }
  return true
}
