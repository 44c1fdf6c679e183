import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['**/test/**/*.spec.ts', '**/*.test.ts'],
    exclude: ['node_modules/**'],
    setupFiles: ['agent/src/polyfill.ts'],
    // time limits guard against hangs only (no test asserts a duration); generous, because two
    // files run at once and a node start or a model load on a busy 2-core machine is slow
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // two test files at once: much of the suite waits on sockets, timers and child processes, and
    // vitest's default (cores − 1) runs the files one by one on a 2-core machine
    maxWorkers: 2
  }
})
