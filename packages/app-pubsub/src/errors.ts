import { PastryError } from '@pastry/core'

/**
 * An error of the pubsub layer. `code` is stable: `BAD_TOPIC`, `BAD_DATA`, `DATA_TOO_LARGE`,
 * `TOO_MANY_TOPICS`, `OVERLOADED`, `BAD_TIME`, `TIME_WENT_BACKWARDS`, `REENTRANT`, `CLOSED`,
 * `PUBLISH_FAILED`.
 */
export class PubSubError extends PastryError {
  constructor(code: string, message: string) {
    super(code, message)
    this.name = 'PubSubError'
  }
}
