#!/usr/bin/env node
// The `loopstate` bin. Runs the bundled CLI (dist/cli.js, built by `npm run build`,
// which `npm ci`/`npm install` run as `prepare`) while it is fresh: every source file
// it was built from is older than the build (scripts/fresh-build.mjs). Otherwise (no
// build yet, a source edited since, or LOOPSTATE_FROM_SOURCE=1) it registers tsx and
// runs the TypeScript CLI (scripts/cli.ts) as is, with the project's tsconfig
// wherever it is started from.
import { fileURLToPath } from 'node:url'
import { staleReason } from './fresh-build.mjs'

const root = new URL('../', import.meta.url)

if (staleReason(root) === null) {
  await import('../dist/cli.js')
} else {
  const { register } = await import('tsx/esm/api')
  register({ tsconfig: fileURLToPath(new URL('tsconfig.json', root)) })
  await import('./cli.ts')
}
