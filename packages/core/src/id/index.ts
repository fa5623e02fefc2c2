export { checkDigitBits, type DigitBits, digitCount, ID_BITS, ID_BYTES } from './digits.js'
export { hashId } from './hash.js'
export {
  closestId,
  closestOf,
  compareClockwise,
  compareDistance,
  Id,
  isCloser,
  onClockwiseArc,
} from './id.js'
export { createRng, type Rng, randomId } from './rng.js'
