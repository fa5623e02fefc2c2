/*
 * Datagram authentication with the cluster key: a truncated HMAC-SHA256 tag over the whole datagram.
 *
 * The tag key is derived from the cluster key once (HMAC-SHA256(clusterKey, LABEL)), so that the
 * raw key is used for nothing else and a key shared with another protocol (the TCP handshake uses
 * the same secret) never produces the same MACs. The tag is the first 16 bytes of
 * HMAC-SHA256(tagKey, datagram without its tag), appended to the datagram; checks are constant-time.
 *
 * A tag proves that the datagram was made by a holder of the key and not altered. It does not prove
 * that it is fresh: replay protection lives in the handshake and the connections (see transport.ts).
 */
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto'
import { TAG_BYTES } from './wire.js'

const LABEL = Buffer.from('pastry-udp datagram tag v1', 'ascii')

/** Signs and checks datagrams with a key derived from the cluster key. */
export class Authenticator {
  readonly #key: KeyObject

  constructor(clusterKey: Uint8Array) {
    this.#key = createSecretKey(createHmac('sha256', clusterKey).update(LABEL).digest())
  }

  /** Writes the tag of `buf[0, end)` at `end`. The caller left TAG_BYTES of room there. */
  sign(buf: Buffer, end: number): void {
    const mac = createHmac('sha256', this.#key).update(buf.subarray(0, end)).digest()
    mac.copy(buf, end, 0, TAG_BYTES)
  }

  /** True when the last TAG_BYTES of `buf` are the tag of what precedes them. */
  verify(buf: Buffer): boolean {
    const end = buf.length - TAG_BYTES
    if (end < 0) return false
    const mac = createHmac('sha256', this.#key).update(buf.subarray(0, end)).digest()
    return timingSafeEqual(mac.subarray(0, TAG_BYTES), buf.subarray(end))
  }
}
