import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['**/test/**/*.spec.ts', '**/*.test.ts'],
    exclude: ['node_modules/**'],
    setupFiles: ['agent/src/polyfill.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks'
  }
})
