#!/usr/bin/env node
/**
 * Builds dist/, what the package ships: the CLI (dist/cli.js) and the public entry
 * points of the package's `exports` (dist/index.js for `loopstate`, dist/stores.js,
 * dist/providers.js, dist/inspector.js; dist/engine.js is the engine module alone)
 * as ESM bundles (esbuild; shared code and the CLI's lazily loaded commands in
 * dist/chunks/), and their type declarations (tsc with tsconfig.build.json →
 * dist/types/, one .d.ts per source file). Run by `npm run build` and by `prepare`
 * (so `npm ci`/`npm install` leave a fresh build, and `npm pack` packs one).
 *
 * Why: under tsx, loading the engine's TypeScript takes ~0.5 s and ~45 MB of RSS
 * per process; the bundle loads in ~0.1 s. In a development checkout
 * scripts/loopstate.js runs the bundle only while it is fresh (dist/build-info.json
 * lists every source file it was built from; one of them changed since, or a new
 * install: the bin runs the sources with tsx instead), so an edit never runs stale
 * code. An installed package has no sources: its bin always runs dist/.
 *
 * Plain JavaScript, so that it runs before anything else is set up. Without esbuild
 * (e.g. `npm ci --omit=dev`) it prints why and exits 0; without TypeScript it builds
 * the bundles without declarations.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/**
 * The bundles' entry points, relative to the package root: output name → source.
 * index, stores, providers and inspector are the package's `exports` (package.json);
 * their declarations are dist/types/<source>.d.ts (tsconfig.build.json lists them).
 */
export const ENTRIES = {
  cli: 'scripts/cli.ts',
  engine: 'services/engine.ts',
  index: 'services/index.ts',
  stores: 'adapters/stores.ts',
  providers: 'adapters/providers.ts',
  inspector: 'services/inspector.ts',
}

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

/** The entries of package.json's `exports`, with declarations (tsconfig.build.json lists their sources). */
export const TYPED_ENTRIES = ['index', 'stores', 'providers', 'inspector']

/**
 * Emits the declarations of the package's entry points (and of every source file they
 * reach) into `outDir` with the project's TypeScript (tsconfig.build.json). Resolves to
 * false, saying why, when TypeScript is not installed. A type error is reported (it is
 * `npm test`'s typecheck that fails on it) but fails the build only when an entry
 * point's declarations are missing.
 */
export async function buildTypes(outDir, { quiet = false } = {}) {
  let tsc
  try {
    tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc')
  } catch {
    if (!quiet) console.error('loopstate build: typescript is not installed; dist/ gets no type declarations')
    return false
  }
  const problems = await new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', outDir], { cwd: ROOT }, (err, stdout, stderr) =>
      resolve(err ? `${stdout}${stderr}`.trim() || err.message : null),
    )
  })
  const missing = TYPED_ENTRIES.map((name) => ENTRIES[name].replace(/\.ts$/, '.d.ts')).filter((file) => !existsSync(join(outDir, file)))
  if (missing.length > 0) throw new Error(`tsc -p tsconfig.build.json emitted no ${missing.join(', ')}${problems ? `:\n${problems}` : ''}`)
  if (problems && !quiet) console.error(`loopstate build: the declarations were emitted with errors:\n${problems}`)
  return true
}

/**
 * Builds into `outDir` (default dist/) through a temporary directory that replaces it
 * with one rename, so a process starting meanwhile sees the old build or the new one.
 * `types: false` leaves out the declarations (dist/types/), e.g. for a build that only runs.
 */
export async function build({ outDir = join(ROOT, 'dist'), quiet = false, types = true } = {}) {
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
  // tsc runs in its own process while esbuild bundles.
  const declarations = types ? buildTypes(join(tmp, 'types'), { quiet }) : Promise.resolve(false)
  let result
  let withTypes
  try {
    ;[result, withTypes] = await Promise.all([
      esbuild.build({
        ...bundleOptions(),
        absWorkingDir: ROOT,
        entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, src]) => [name, join(ROOT, src)])),
        outdir: tmp,
        splitting: true,
        chunkNames: 'chunks/[name]-[hash]',
        metafile: true,
      }),
      declarations,
    ])
  } catch (err) {
    await Promise.allSettled([declarations])
    await rm(tmp, { recursive: true, force: true })
    throw err
  }
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
    types: withTypes ? 'types/' : null,
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
  if (!quiet) console.error(`loopstate build: dist/ (${sources.length} source files${withTypes ? ', with declarations' : ''}) in ${Date.now() - started} ms`)
  return info
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  await build().catch((err) => {
    console.error(`loopstate build failed: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  })
}
