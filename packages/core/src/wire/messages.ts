/*
 * The message catalogue of protocol version 1.
 *
 * `MESSAGES` is the single source of truth: one entry per message type, holding its wire type code
 * and its fields (see `schema.ts` for the vocabulary). The TypeScript types below, the encoder and
 * the validating decoder are all derived from it. Adding a message type is one entry here.
 *
 * Wire form of every message: a CBOR array `[version, typeCode, from, ...fields]`, with `from` as
 * `[id, address]` and the fields in the order written here. Type codes and field order are part of
 * the protocol: never reuse a code or reorder fields without bumping `PROTOCOL_VERSION`.
 */
import type { Id } from '../id/id.js'
import {
  bool,
  bytes,
  type FieldsSpec,
  handle,
  id,
  list,
  optional,
  type RecordValue,
  record,
  text,
  uint,
} from './schema.js'

/** A peer as messages carry it: its id and the transport address to reach it at. */
export interface NodeHandle {
  /** The node's 128-bit id. */
  readonly id: Id
  /** Where to send to it: `host:port`, IPv6 hosts in brackets. At most {@link MAX_ADDRESS_BYTES} UTF-8 bytes. */
  readonly address: string
}

/**
 * The longest address a node handle may carry, in UTF-8 bytes: room for any DNS name, brackets and a
 * port. Check configured addresses against it at startup; the codec rejects longer ones.
 */
export const MAX_ADDRESS_BYTES = 262

/** The largest round-trip time a message can report, in microseconds (one minute). */
export const MAX_RTT_MICROS = 60_000_000

/** The largest message id: ids are unsigned safe integers. Wrap a message-id counter before it. */
export const MAX_MESSAGE_ID = Number.MAX_SAFE_INTEGER
/** The largest hop count a routed message can carry. A forwarder drops a message that would exceed it. */
export const MAX_HOPS = 255
/** The longest application name, in UTF-8 bytes. Check names when an application registers. */
export const MAX_APP_NAME_BYTES = 64
/** The most handles a leaf set on the wire may hold, so the largest leaf-set size L a node may use. */
export const MAX_LEAF_SET_HANDLES = 64
/** The most handles one routing-table row on the wire may hold: 2^b cells with b = 8. */
export const MAX_ROW_HANDLES = 256
/** The most routing-table rows one message may carry: 128 / b rows with b = 1. Row indexes are below it. */
export const MAX_ROWS = 128

const msgId = uint(MAX_MESSAGE_ID)
const hops = uint(MAX_HOPS)
const app = text(MAX_APP_NAME_BYTES)
const leafSet = list(MAX_LEAF_SET_HANDLES, handle)
const rowIndex = uint(MAX_ROWS - 1)
const rowEntries = list(MAX_ROW_HANDLES, handle)
const rows = list(
  MAX_ROWS,
  record({
    /** The row's index: the length of the prefix its entries share with the sender. */
    row: rowIndex,
    /** The row's non-empty cells. */
    entries: rowEntries,
  }),
)
const nonce = uint(0xffffffff)

/** One message type's description: its wire code and its fields in wire order. */
export interface MessageSpec {
  readonly code: number
  readonly fields: FieldsSpec
}

/**
 * The catalogue: every message type of protocol version 1, by name. Read it to learn the wire
 * format; the codec walks it for every message it encodes or decodes.
 */
export const MESSAGES = {
  /** A message routed by key toward the live node numerically closest to `key`. Forwarded hop by hop. */
  route: {
    code: 1,
    fields: {
      /**
       * The message's end-to-end id: chosen at random by the origin and kept along the whole path.
       * Each hop's `ack` echoes it, and the root de-duplicates deliveries by it.
       */
      msgId,
      /** The key the message is routed toward. */
      key: id,
      /** The node that first sent the message. */
      origin: handle,
      /** Hops taken so far, incremented by each forwarder. */
      hops,
      /** The name of the application the message belongs to. */
      app,
      /** The application's bytes, opaque to the overlay. */
      payload: bytes,
    },
  },
  /** Acknowledges one hop of a `route` or `join`: the receiver took responsibility for it. */
  ack: {
    code: 2,
    fields: {
      /** The `msgId` of the acknowledged message. */
      msgId,
    },
  },
  /** A join request, routed toward the joiner's own id; each node on the path answers with `joinRows`. */
  join: {
    code: 3,
    fields: {
      /** The join attempt's id, chosen by the joiner and kept along the path; acknowledged per hop like a `route`'s. */
      msgId,
      /** The node that wants to join. */
      joiner: handle,
      /** Hops taken so far: on the path, the node at hop i supplies row i. */
      hops,
    },
  },
  /** Routing-table rows, sent to the joiner by a node on the join path. */
  joinRows: {
    code: 4,
    fields: {
      /** The rows the sender offers the joiner. */
      rows,
    },
  },
  /** The join's root answers the joiner with its leaf set and its rows. */
  joinReply: {
    code: 5,
    fields: {
      /** The root's leaf set, from which the joiner builds its own. */
      leafSet,
      /** The root's routing-table rows. */
      rows,
    },
  },
  /** The joiner announces itself to a node it learned of, and asks it to confirm. */
  announce: {
    code: 6,
    fields: {
      /** The joiner's leaf set as it stands. */
      leafSet,
    },
  },
  /** The answer to `announce`. */
  announceAck: {
    code: 7,
    fields: {
      /** True when the receiver accepted the joiner into its tables. */
      accepted: bool,
      /** The receiver's leaf set, so the joiner can correct its own. */
      leafSet,
    },
  },
  /** Leaf-set liveness, sent every Tls to the leaf-set members. */
  heartbeat: {
    code: 8,
    fields: {
      /** The sender's leaf set, piggybacked when it changed. */
      leafSet: optional(leafSet),
      /**
       * The sender's smoothed RTT to the receiver in microseconds, when the sender has measured it
       * and the receiver may not have: a new node greeting the nodes it learned of while joining,
       * most of which it probed. A round trip covers the same path whichever end starts it, so the
       * receiver takes it as a measurement of its own rather than probing the sender again.
       */
      rttMicros: optional(uint(MAX_RTT_MICROS)),
    },
  },
  /** A liveness and round-trip-time probe; the receiver answers with `probeReply`. */
  probe: {
    code: 9,
    fields: {
      /** Chosen by the prober and echoed in the reply, to match them. */
      nonce,
      /** The sender's leaf set, when the probe also repairs leaf sets. */
      leafSet: optional(leafSet),
    },
  },
  /** The answer to `probe`. */
  probeReply: {
    code: 10,
    fields: {
      /** The probe's nonce. */
      nonce,
      /** The replier's leaf set, when asked for it. */
      leafSet: optional(leafSet),
    },
  },
  /** Asks a node for its leaf set, to repair the sender's. */
  leafSetRequest: {
    code: 11,
    fields: {},
  },
  /** The answer to `leafSetRequest`. */
  leafSetReply: {
    code: 12,
    fields: {
      /** The replier's leaf set. */
      leafSet,
    },
  },
  /** Asks a node for one routing-table row, to repair or refresh the sender's. */
  rowRequest: {
    code: 13,
    fields: {
      /** The row wanted. */
      row: rowIndex,
    },
  },
  /** The answer to `rowRequest`. */
  rowReply: {
    code: 14,
    fields: {
      /** The row sent. */
      row: rowIndex,
      /** The row's non-empty cells. */
      entries: rowEntries,
    },
  },
  /** A graceful leave: the sender is going away, and hands over its leaf set. */
  leave: {
    code: 15,
    fields: {
      /** The leaving node's leaf set, so the receivers can fill the hole it leaves. */
      leafSet,
    },
  },
  /** An application message sent straight to one node (the KBR `send`), not routed by key. */
  direct: {
    code: 16,
    fields: {
      /** The name of the application the message belongs to. */
      app,
      /** The application's bytes, opaque to the overlay. */
      payload: bytes,
    },
  },
  /**
   * Asks a leaf-set member to probe `target` for the sender, which has had no answer from it and
   * wants a second opinion before declaring it failed. Answered with `indirectProbeReply`.
   */
  indirectProbe: {
    code: 17,
    fields: {
      /** Chosen by the asker and echoed in the reply, to match them. */
      nonce,
      /** The node to probe. */
      target: handle,
    },
  },
  /** The answer to `indirectProbe`: whether the target answered the helper's probe. */
  indirectProbeReply: {
    code: 18,
    fields: {
      /** The request's nonce. */
      nonce,
      /** The id of the node probed. */
      target: id,
      /** True when the target answered. */
      alive: bool,
    },
  },
} as const satisfies { readonly [type: string]: MessageSpec }

type Catalogue = typeof MESSAGES

/** The name of a message type: `'route'`, `'ack'`, `'join'` and so on. */
export type MessageType = keyof Catalogue

/**
 * The message of one type: `type`, the sender `from`, and that type's fields as documented in
 * {@link MESSAGES}. For example `MessageOf<'route'>`. Messages are immutable values.
 */
export type MessageOf<T extends MessageType> = Simplify<
  { readonly type: T; readonly from: NodeHandle } & RecordValue<Catalogue[T]['fields']>
>

type Simplify<T> = { [K in keyof T]: T[K] } & {}

/** Any message of protocol version 1, discriminated by `type`. */
export type Message = { [T in MessageType]: MessageOf<T> }[MessageType]

/** Every message type's name, in type-code order. Use it to iterate over the catalogue. */
export const MESSAGE_TYPES: readonly MessageType[] = (Object.keys(MESSAGES) as MessageType[]).sort(
  (a, b) => MESSAGES[a].code - MESSAGES[b].code,
)

/** One past the largest type code: the length of an array indexed by type code. */
export const MESSAGE_TYPE_SLOTS = Math.max(...MESSAGE_TYPES.map((t) => MESSAGES[t].code)) + 1

const CODE_OF_TYPE = new Map<string, number>(MESSAGE_TYPES.map((t) => [t, MESSAGES[t].code]))

/**
 * The wire type code of a message type. Cheaper than `MESSAGES[type].code` on a hot path: that
 * reads a different property per type, which V8 serves through its slowest generic lookup.
 */
export function typeCode(type: MessageType): number {
  return CODE_OF_TYPE.get(type)!
}
