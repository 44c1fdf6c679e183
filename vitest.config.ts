import { defineConfig } from 'vitest/config'

/**
 * Multi-node scenarios that wait for a mesh to converge (gossip rounds, arcs, rebalancing, nodes
 * frozen and killed): each runs alone, after the rest, so another file's CPU load does not stretch
 * their convergence past its limit on a 2-core machine.
 */
const ALONE = ['sharding', 'chaos', 'presence', 'memory', 'scenarios', 'inference', 'processes'].map(name => `tryorama/test/${name}.spec.ts`)

export default defineConfig({
  test: {
    setupFiles: ['agent/src/polyfill.ts'],
    // time limits guard against hangs only (no test asserts a duration); generous, because two
    // files run at once and a node start or a model load on a busy 2-core machine is slow
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['**/test/**/*.spec.ts', '**/*.test.ts'],
          exclude: ['node_modules/**', ...ALONE],
          // two files at once: much of the suite waits on sockets, timers and child processes,
          // and vitest's default (cores − 1) would run the files one by one on 2 cores
          maxWorkers: 2,
          sequence: { groupOrder: 0 }
        }
      },
      {
        extends: true,
        test: {
          name: 'mesh scenarios',
          include: ALONE,
          fileParallelism: false,
          sequence: { groupOrder: 1 }
        }
      }
    ]
  }
})
