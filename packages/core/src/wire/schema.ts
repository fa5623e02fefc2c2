/*
 * The vocabulary for describing a message's fields once. Each message type in `messages.ts` is a
 * list of named field specs; the TypeScript type of the message, its encoder and its validating
 * decoder are all derived from that list (see `shape.ts`), so they cannot drift apart.
 *
 * On the wire a record (a message's fields, a routing-table row, a node handle) is a CBOR array of
 * its fields in declaration order, so renaming a field is free but reordering one is a wire change.
 * An absent optional field is CBOR `null`; arrays always have exactly one item per field.
 */
import type { Id } from '../id/id.js'
import type { NodeHandle } from './messages.js'

/** An unsigned integer in [0, max]; `max` is at most 2^53 - 1. */
export interface UintSpec {
  readonly kind: 'uint'
  readonly max: number
}

/** `true` or `false`. */
export interface BoolSpec {
  readonly kind: 'bool'
}

/** A UTF-8 text string of at most `maxBytes` bytes (bytes, not UTF-16 code units). */
export interface TextSpec {
  readonly kind: 'text'
  readonly maxBytes: number
}

/** A byte string, bounded only by the frame's `maxMessageBytes`. */
export interface BytesSpec {
  readonly kind: 'bytes'
}

/** A 128-bit identifier: a byte string of exactly 16 bytes on the wire, an {@link Id} in memory. */
export interface IdSpec {
  readonly kind: 'id'
}

/** A node handle: `[id, address]` on the wire, a {@link NodeHandle} in memory. */
export interface HandleSpec {
  readonly kind: 'handle'
}

/** A list of at most `maxItems` values of one spec. */
export interface ListSpec<E> {
  readonly kind: 'list'
  readonly maxItems: number
  readonly of: E
}

/** A fixed sequence of named fields: an array on the wire, an object in memory. */
export interface RecordSpec<Fs> {
  readonly kind: 'record'
  readonly fields: Fs
}

/** A field that may be absent: `null` on the wire, a missing property in memory. */
export interface OptionalSpec<F> {
  readonly kind: 'optional'
  readonly of: F
}

/** Any field spec. */
export type FieldSpec =
  | UintSpec
  | BoolSpec
  | TextSpec
  | BytesSpec
  | IdSpec
  | HandleSpec
  | ListSpec<FieldSpec>
  | RecordSpec<FieldsSpec>
  | OptionalSpec<FieldSpec>

/** Named fields, in wire order. */
export type FieldsSpec = { readonly [name: string]: FieldSpec }

type Simplify<T> = { [K in keyof T]: T[K] } & {}

type OptionalKeys<Fs> = { [K in keyof Fs]: Fs[K] extends OptionalSpec<unknown> ? K : never }[keyof Fs]
type RequiredKeys<Fs> = Exclude<keyof Fs, OptionalKeys<Fs>>

/** The in-memory value of a record spec's fields: optional specs become optional properties. */
export type RecordValue<Fs> = Simplify<
  { readonly [K in RequiredKeys<Fs>]: ValueOf<Fs[K]> } & {
    readonly [K in OptionalKeys<Fs>]?: Fs[K] extends OptionalSpec<infer F> ? ValueOf<F> : never
  }
>

/** The in-memory value of a field spec. */
export type ValueOf<F> = F extends UintSpec
  ? number
  : F extends BoolSpec
    ? boolean
    : F extends TextSpec
      ? string
      : F extends BytesSpec
        ? Uint8Array
        : F extends IdSpec
          ? Id
          : F extends HandleSpec
            ? NodeHandle
            : F extends ListSpec<infer E>
              ? readonly ValueOf<E>[]
              : F extends RecordSpec<infer Fs>
                ? RecordValue<Fs>
                : never

/** Spec constructors, used by the message table. */
export const uint = (max: number): UintSpec => ({ kind: 'uint', max })
export const bool: BoolSpec = { kind: 'bool' }
export const text = (maxBytes: number): TextSpec => ({ kind: 'text', maxBytes })
export const bytes: BytesSpec = { kind: 'bytes' }
export const id: IdSpec = { kind: 'id' }
export const handle: HandleSpec = { kind: 'handle' }
export const list = <E extends FieldSpec>(maxItems: number, of: E): ListSpec<E> => ({
  kind: 'list',
  maxItems,
  of,
})
export const record = <Fs extends FieldsSpec>(fields: Fs): RecordSpec<Fs> => ({ kind: 'record', fields })
export const optional = <F extends FieldSpec>(of: F): OptionalSpec<F> => ({ kind: 'optional', of })
