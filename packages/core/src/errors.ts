/**
 * The base of every error this package throws or hands back. `code` is stable and meant for programs;
 * `message` is meant for people and may change between versions.
 */
export class PastryError extends Error {
  readonly code: string

  constructor(code: string, message: string) {
    super(message)
    this.name = 'PastryError'
    this.code = code
  }
}

/** A value that is not a valid identifier: wrong length, wrong characters or an out-of-range digit. */
export class InvalidIdError extends PastryError {
  constructor(message: string) {
    super('INVALID_ID', message)
    this.name = 'InvalidIdError'
  }
}

/** A configuration value outside its documented range. */
export class ConfigError extends PastryError {
  constructor(message: string) {
    super('INVALID_CONFIG', message)
    this.name = 'ConfigError'
  }
}
