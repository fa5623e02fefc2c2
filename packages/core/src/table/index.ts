export {
  checkLeafSetSize,
  DEFAULT_LEAF_SET_SIZE,
  LeafSet,
  type LeafSetView,
  leafSetCovers,
  MAX_LEAF_SET_SIZE,
  type Side,
  spansRing,
} from './leaf-set.js'
export { DEFAULT_NEIGHBOURHOOD_SIZE, MAX_NEIGHBOURHOOD_SIZE, NeighbourhoodSet } from './neighbourhood-set.js'
export { RoutingTable, type RoutingTableView } from './routing-table.js'
export type { HasId } from './types.js'
