#!/usr/bin/env node
/**
 * Builds dist/: the CLI (dist/cli.js) and the engine API (dist/engine.js) as ESM
 * bundles (esbuild; shared code and the CLI's lazily loaded commands in
 * dist/chunks/). Run by `npm run build` and by `prepare` (so `npm ci`/`npm install`
 * leave a fresh build).
 *
 * Why: under tsx, loading the engine's TypeScript takes ~0.5 s and ~45 MB of RSS
 * per process; the bundle loads in ~0.1 s. scripts/loopstate.js runs the bundle
 * only while it is fresh (dist/build-info.json lists every source file it was built
 * from; one of them changed since, or a new install: the bin runs the sources with
 * tsx instead), so an edit never runs stale code.
 *
 * Plain JavaScript, so that it runs before anything else is set up. Without esbuild
 * (e.g. `npm ci --omit=dev`) it prints why and exits 0: the bin then uses tsx.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** The bundles' entry points, relative to the package root: output name → source. */
export const ENTRIES = { cli: 'scripts/cli.ts', engine: 'services/engine.ts' }

/**
 * esbuild options shared by dist/ and the benchmark's bundled child. Dependencies
 * are bundled too (resolving them is a good part of the load time); `require` is
 * provided for the CommonJS ones (ws, commander) that require Node's built-ins.
 */
export function bundleOptions() {
  return {
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'bundle',
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
    // ws's optional native add-ons: it falls back to JavaScript without them
    external: ['bufferutil', 'utf-8-validate'],
    banner: { js: "import { createRequire as __loopstateRequire } from 'node:module'; const require = __loopstateRequire(import.meta.url);" },
  }
}

/**
 * Builds into `outDir` (default dist/) through a temporary directory that replaces it
 * with one rename, so a process starting meanwhile sees the old build or the new one.
 */
export async function build({ outDir = join(ROOT, 'dist'), quiet = false } = {}) {
  let esbuild
  try {
    esbuild = await import('esbuild')
  } catch {
    if (!quiet) console.error('loopstate build: esbuild is not installed; the loopstate bin will run the sources with tsx')
    return null
  }
  const started = Date.now()
  const tmp = `${outDir}.tmp-${process.pid}`
  await rm(tmp, { recursive: true, force: true })
  const result = await esbuild.build({
    ...bundleOptions(),
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, src]) => [name, join(ROOT, src)])),
    outdir: tmp,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    metafile: true,
  })
  // Every file of ours the bundle was built from (not node_modules: a new install
  // changes package-lock.json, which is checked instead).
  const sources = Object.keys(result.metafile.inputs)
    .filter((f) => !f.includes('node_modules/'))
    .map((f) => relative(ROOT, join(ROOT, f)))
    .sort()
  const info = {
    builtAtMs: started,
    node: process.version,
    entries: ENTRIES,
    sources: [...sources, 'package.json', 'package-lock.json'],
  }
  await writeFile(join(tmp, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`)
  await mkdir(dirname(outDir), { recursive: true })
  const old = `${outDir}.old-${process.pid}`
  await rm(old, { recursive: true, force: true })
  await rename(outDir, old).catch((err) => {
    if (err.code !== 'ENOENT') throw err
  })
  await rename(tmp, outDir)
  await rm(old, { recursive: true, force: true })
  if (!quiet) console.error(`loopstate build: dist/ (${sources.length} source files) in ${Date.now() - started} ms`)
  return info
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  await build().catch((err) => {
    console.error(`loopstate build failed: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  })
}
