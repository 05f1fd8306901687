/**
 * The bundle (scripts/build.mjs → dist/) and the bin's choice between it and the
 * sources (scripts/fresh-build.mjs). The end-to-end part builds into a directory of
 * its own under test-artifacts/ (inside the package, as dist/ is) and runs that
 * build's CLI with plain node: no tsx anywhere in the process.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest'
// @ts-expect-error plain JavaScript module without type declarations
import { build } from '../scripts/build.mjs'
// @ts-expect-error plain JavaScript module without type declarations
import { staleReason } from '../scripts/fresh-build.mjs'
import { expectInspectServesViewer } from './helpers/viewer-cli.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const stale = staleReason as (root: URL, env?: Record<string, string | undefined>) => string | null

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

describe('staleReason (which CLI the bin runs)', () => {
  /** A package root with two sources and a build of them made at `builtAtMs`. */
  async function fakeRoot(builtAtMs: number) {
    const dir = await tempDir('loopstate-fresh-')
    await mkdir(join(dir, 'dist'))
    await mkdir(join(dir, 'services'))
    const old = new Date(builtAtMs - 60_000)
    for (const file of ['services/engine.ts', 'package.json', 'package-lock.json']) {
      await writeFile(join(dir, file), '{}')
      await utimes(join(dir, file), old, old)
    }
    const info = { builtAtMs, node: process.version, sources: ['services/engine.ts', 'package.json', 'package-lock.json'] }
    await writeFile(join(dir, 'dist', 'build-info.json'), JSON.stringify(info))
    return { dir, url: pathToFileURL(`${dir}/`) }
  }

  it('runs the build while every source is older than it', async () => {
    const { url } = await fakeRoot(Date.now())
    expect(stale(url, {})).toBeNull()
  })

  it('runs the sources when there is no build', async () => {
    const dir = await tempDir('loopstate-fresh-')
    expect(stale(pathToFileURL(`${dir}/`), {})).toBe('no build (dist/build-info.json)')
  })

  it('runs the sources once a source is edited, deleted, or the lock file changes', async () => {
    const { dir, url } = await fakeRoot(Date.now() - 10_000)
    await writeFile(join(dir, 'services/engine.ts'), '// edited')
    expect(stale(url, {})).toBe('services/engine.ts changed since the build')
    await rm(join(dir, 'services/engine.ts'))
    expect(stale(url, {})).toBe('services/engine.ts is gone')

    const other = await fakeRoot(Date.now() - 10_000)
    await writeFile(join(other.dir, 'package-lock.json'), '{"changed":true}')
    expect(stale(other.url, {})).toBe('package-lock.json changed since the build')
  })

  it('runs the sources for another node version, or when LOOPSTATE_FROM_SOURCE is set', async () => {
    const { dir, url } = await fakeRoot(Date.now())
    expect(stale(url, { LOOPSTATE_FROM_SOURCE: '1' })).toBe('LOOPSTATE_FROM_SOURCE is set')
    expect(stale(url, { LOOPSTATE_FROM_SOURCE: '0' })).toBeNull()
    const info = JSON.parse(await readFile(join(dir, 'dist', 'build-info.json'), 'utf8')) as { node: string }
    await writeFile(join(dir, 'dist', 'build-info.json'), JSON.stringify({ ...info, node: 'v1.0.0' }))
    expect(stale(url, {})).toBe('built by node v1.0.0')
  })
})

describe('the bundled CLI', () => {
  const out = join(ROOT, 'test-artifacts', `build-${process.pid}`)
  const cli = join(out, 'cli.js')
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

  beforeAll(async () => {
    const info = (await build({ outDir: out, quiet: true })) as { sources: string[]; types: string | null } | null
    expect(info, 'esbuild is a devDependency: the build must run').not.toBeNull()
    expect(info!.sources).toContain('services/engine.ts')
    expect(info!.sources).toContain('scripts/cli.ts')
    expect(info!.types, 'typescript is a devDependency: the declarations must be emitted').toBe('types/')
    return () => rm(out, { recursive: true, force: true })
  }, 60_000)

  /** `node ...argv` in `cwd`: its exit code and output. */
  const node = (argv: string[], cwd: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, argv, { cwd, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      ),
    )
  const run = (args: string[], cwd: string) => node([cli, ...args], cwd)

  it('loads without tsx and prints the package version', async () => {
    const r = await run(['--version'], await tempDir('loopstate-bundle-'))
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: `${version}\n` })
    const bundle = await readFile(cli, 'utf8')
    expect(bundle).not.toMatch(/from ["']tsx/)
  })

  it('runs the demo from the bundled demo scenarios to the end', async () => {
    const dir = await tempDir('loopstate-bundle-')
    const r = await run(['demo', '--data', join(dir, 'data')], dir)
    expect(r.code, r.stderr).toBe(0)
    const records = await readdir(join(dir, 'data', 'loops'))
    expect(records.sort()).toEqual(['a-tiny-string-toolkit.json', 'clamp-a-value-into-a-range.json', 'greet-the-user.json'])
    for (const file of records) {
      const record = JSON.parse(await readFile(join(dir, 'data', 'loops', file), 'utf8')) as { status: string }
      expect(record.status, file).toBe('completed')
    }
  })

  it("gives zod's English messages for bad input (zod/mini has none without its locale)", async () => {
    const dir = await tempDir('loopstate-bundle-')
    await writeFile(join(dir, 'plan.md'), '# Plan\n\nDo it.\n')
    await writeFile(join(dir, 'config.json'), JSON.stringify({ maxRetries: -1 }))
    const r = await run(['run', 'plan.md', '--model', 'scripted:s.json', '--config', 'config.json', '--data', join(dir, 'data')], dir)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('loopstate: config: config.json: maxRetries: Too small: expected number to be >=0\n')
  })

  it('gives plain Node scripts the engine API (dist/engine.js) that runs a loop to its end', async () => {
    const dir = await tempDir('loopstate-bundle-')
    await writeFile(join(dir, 's.json'), JSON.stringify({ coder: [{ type: 'text', text: 'done' }], auditor: [{ type: 'text', text: 'ok' }] }))
    const script = [
      `const { createEngine } = await import(${JSON.stringify(pathToFileURL(join(out, 'engine.js')).href)})`,
      `const engine = await createEngine({ dataDir: 'data' })`,
      `const loop = await engine.start({ goal: 'say done' }, { models: ['scripted:s.json'], workspace: '.' })`,
      `const result = await loop.done`,
      `await engine.close()`,
      `console.log(JSON.stringify(result))`,
    ].join('\n')
    await writeFile(join(dir, 'script.mjs'), script)
    const r = await node(['script.mjs'], dir)
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'say-done', status: 'completed', reason: 'completed', iteration: 1 })
  })

  it("builds every entry of package.json's exports: its module and its declarations", async () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | { types: string; import: string }> }
    const entries = Object.entries(manifest.exports).filter((e): e is [string, { types: string; import: string }] => typeof e[1] !== 'string')
    expect(entries.map(([name]) => name)).toEqual(['.', './stores', './providers', './inspector'])
    // ./dist/x in package.json is <out>/x here
    const built = (path: string) => {
      expect(path).toMatch(/^\.\/dist\//)
      return join(out, path.slice('./dist/'.length))
    }
    const oneExport: Record<string, string> = { '.': 'createEngine', './stores': 'MemoryStore', './providers': 'scriptedFactory', './inspector': 'startViewer' }
    const dir = await tempDir('loopstate-bundle-')
    for (const [name, { types, import: module }] of entries) {
      expect(await readFile(built(types), 'utf8'), name).toMatch(/^export /m)
      const r = await node(['--input-type=module', '-e', `console.log(Object.keys(await import(${JSON.stringify(pathToFileURL(built(module)).href)})).sort().join())`], dir)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout.trim().split(','), name).toContain(oneExport[name])
    }
  })

  it('serves the viewer page from the package', async () => {
    const dir = await tempDir('loopstate-bundle-')
    await expectInspectServesViewer(cli, join(dir, 'data'), dir)
  })
})
