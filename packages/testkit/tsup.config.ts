import { defineConfig } from 'tsup'

export default defineConfig({
  // The worker that runs a shard of a sharded experiment is loaded by path, so it is an entry.
  entry: ['src/index.ts', 'src/shard-worker.ts'],
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  dts: { compilerOptions: { composite: false, customConditions: [] } },
  sourcemap: true,
  clean: true,
  splitting: false,
})
