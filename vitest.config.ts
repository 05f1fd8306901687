import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Caps for a hung test, not speed limits: a loaded 2-core machine runs the CLI and browser tests slowly.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // .ci/run reads the JSON report for its summary line.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
})
