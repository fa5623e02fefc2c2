import { sha256 } from '@noble/hashes/sha2.js'
import { Id } from './id.js'

const utf8 = new TextEncoder()

/**
 * The id of a name or of bytes: SHA-256, truncated to its first 128 bits. Strings are hashed as
 * UTF-8. Use it for keys (`route(hashId('photo.jpg'), ...)`) and for topic ids. The result depends
 * on nothing but the input, so every node computes the same id for the same name.
 */
export function hashId(input: string | Uint8Array): Id {
  const bytes = typeof input === 'string' ? utf8.encode(input) : input
  return Id.readFrom(sha256(bytes), 0)
}
