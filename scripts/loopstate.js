#!/usr/bin/env node
// The `loopstate` bin.
//
// Installed (`npm install loopstate`, `npm install -g loopstate`, npx): the package
// ships the bundled CLI (dist/cli.js) and no TypeScript sources, and this runs
// dist/cli.js, always. Nothing here needs tsx or the build tools.
//
// In a development checkout (scripts/cli.ts is there): runs dist/cli.js (built by
// `npm run build`, which `npm ci`/`npm install` run as `prepare`) while it is fresh:
// every source file it was built from is older than the build
// (scripts/fresh-build.mjs). Otherwise (no build yet, a source edited since, or
// LOOPSTATE_FROM_SOURCE=1) it registers tsx (a devDependency) and runs the TypeScript
// CLI (scripts/cli.ts) as is, with the project's tsconfig wherever it is started from.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = new URL('../', import.meta.url)
const source = new URL('scripts/cli.ts', root)

if (!existsSync(source)) {
  await import('../dist/cli.js')
} else {
  const { staleReason } = await import('./fresh-build.mjs')
  const stale = staleReason(root)
  if (stale === null) {
    await import('../dist/cli.js')
  } else {
    let register
    try {
      ;({ register } = await import('tsx/esm/api'))
    } catch (err) {
      if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err
      process.stderr.write(
        `loopstate: dist/ cannot run (${stale}) and tsx, which runs the sources, is not installed: ` +
          '`npm install` (with the devDependencies) installs it and builds dist/; `npm run build` rebuilds dist/\n',
      )
      process.exit(1)
    }
    register({ tsconfig: fileURLToPath(new URL('tsconfig.json', root)) })
    await import('./cli.ts')
  }
}
