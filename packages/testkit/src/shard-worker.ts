// A worker thread that runs one shard of a sharded protocol experiment (shard-experiment.ts) and
// posts its report to the thread that started it.
import { parentPort, workerData } from 'node:worker_threads'
import { runShard, type ShardExperimentOptions } from './shard-experiment.js'

const data = workerData as { options: ShardExperimentOptions; self: 0 | 1; buffer: SharedArrayBuffer }
parentPort?.postMessage(runShard(data.options, data.self, data.buffer))
