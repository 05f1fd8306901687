/**
 * The installable package, as a user gets it: `npm pack`, then `npm install <tarball>`
 * into an empty project, where the bin runs the demo, plain Node imports the engine,
 * and TypeScript type-checks a one-file consumer of the package's entry points
 * (`exports` in package.json) with the declarations it ships.
 *
 * The tarball is packed from a copy of the repository under test-artifacts/ (inside
 * the package, so its node_modules resolve for the build), not from the repository
 * itself: `npm pack` runs `prepare`, which rebuilds dist/, and the other test files
 * run the repository's bin (on dist/) meanwhile. Packing with `--ignore-scripts`
 * instead would pack whatever dist/ the repository has, stale after an edit. The
 * copy has test/ too: `files` in package.json is what keeps it out of the tarball.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }

/** Top-level entries of the repository the copy leaves out: not sources of the package. */
const NOT_COPIED = new Set(['.git', 'node_modules', 'dist', 'data', 'test-artifacts', 'test-results'])

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

/** The environment of the commands: none of the calling npm's or of loopstate's variables. */
function childEnv(tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, npm_config_update_notifier: 'false' }
  for (const key of Object.keys(env)) {
    if (/^(npm_package_|npm_lifecycle_|LOOPSTATE_)/.test(key) || key === 'npm_config_local_prefix' || key === 'INIT_CWD') delete env[key]
  }
  return env
}

describe('the npm package', () => {
  let stage = '' // the copy of the repository that is packed
  let work = '' // the tarball, the user's project, its data and temporary files
  let project = ''
  let env: NodeJS.ProcessEnv = {}
  let tarballFiles: string[] = []

  const run = (file: string, args: string[], cwd = project, timeoutMs = 180_000) =>
    new Promise<Result>((resolve) =>
      execFile(file, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      ),
    )
  const tsc = (args: string[]) => run(process.execPath, [TSC, ...args], project, 60_000)

  beforeAll(async () => {
    stage = join(ROOT, 'test-artifacts', `package-${process.pid}`)
    work = await mkdtemp(join(tmpdir(), 'loopstate-package-'))
    const teardown = () => Promise.all([rm(stage, { recursive: true, force: true }), rm(work, { recursive: true, force: true })])
    try {
      project = join(work, 'project')
      await mkdir(project)
      await mkdir(join(work, 'tmp'))
      env = childEnv(join(work, 'tmp'))

      await rm(stage, { recursive: true, force: true })
      for (const entry of await readdir(ROOT)) {
        if (NOT_COPIED.has(entry) || /^dist\.(tmp|old)-/.test(entry)) continue
        await cp(join(ROOT, entry), join(stage, entry), { recursive: true })
      }
      const packed = await run('npm', ['pack', '--json', '--pack-destination', work], stage)
      expect(packed.code, `${packed.stdout}\n${packed.stderr}`).toBe(0)
      const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[]
      tarballFiles = info!.files.map((f) => f.path)

      await writeFile(join(project, 'package.json'), `${JSON.stringify({ name: 'consumer', type: 'module', private: true }, null, 2)}\n`)
      const installed = await run('npm', ['install', join(work, info!.filename), '--prefer-offline', '--no-audit', '--no-fund'])
      expect(installed.code, `${installed.stdout}\n${installed.stderr}`).toBe(0)
    } catch (err) {
      await teardown()
      throw err
    }
    return teardown
  }, 240_000)

  it('holds dist/ with declarations and what the runtime reads, and no tests or TypeScript sources', () => {
    expect(tarballFiles).toContain('package.json')
    expect(tarballFiles).toContain('README.md')
    for (const file of ['dist/cli.js', 'dist/index.js', 'dist/stores.js', 'dist/providers.js', 'dist/inspector.js']) expect(tarballFiles).toContain(file)
    for (const file of ['services/index.d.ts', 'adapters/stores.d.ts', 'adapters/providers.d.ts', 'services/inspector.d.ts']) {
      expect(tarballFiles).toContain(`dist/types/${file}`)
    }
    // read at run time: the bin, the demo's plans and scenarios, run_command's supervisor, the viewer's page
    for (const file of ['scripts/loopstate.js', 'scripts/demo/fix-a-bug.json', 'services/run-supervisor.mjs', 'services/process-tree.mjs', 'services/inspect/viewer/index.html']) {
      expect(tarballFiles).toContain(file)
    }
    expect(tarballFiles.filter((f) => f.startsWith('test/'))).toEqual([])
    expect(tarballFiles.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([])
  })

  it('installs without tsx: it is no dependency of the package', async () => {
    const installed = JSON.parse(await readFile(join(project, 'node_modules', 'loopstate', 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    expect(Object.keys(installed.dependencies)).not.toContain('tsx')
    expect(existsSync(join(project, 'node_modules', 'tsx'))).toBe(false)
    expect(existsSync(join(project, 'node_modules', 'esbuild'))).toBe(false)
    expect(existsSync(join(project, 'node_modules', 'typescript'))).toBe(false)
  })

  it('runs `npx loopstate demo` to the end: three loops completed, their records in the data dir', async () => {
    const data = join(work, 'data')
    const r = await run('npx', ['--no', 'loopstate', 'demo', '--data', data])
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0)
    expect(r.stdout).toContain('loopstate demo: three loops at once on scripted models')
    const names = ['clamp-a-value-into-a-range', 'a-tiny-string-toolkit', 'greet-the-user']
    for (const name of names) expect(r.stdout).toMatch(new RegExp(`^${name} +completed +completed `, 'm'))
    expect(r.stdout).toContain('F1 bug at clamp.js:4 resolved')
    const records = await readdir(join(data, 'loops'))
    expect(records.sort()).toEqual(names.map((n) => `${n}.json`).sort())
    for (const file of records) {
      const record = JSON.parse(await readFile(join(data, 'loops', file), 'utf8')) as { status: string }
      expect(record.status, file).toBe('completed')
    }
  }, 120_000)

  it('prints the package version with the installed bin', async () => {
    const r = await run(join(project, 'node_modules', '.bin', 'loopstate'), ['--version'])
    expect(r, r.stderr).toMatchObject({ code: 0, stdout: `${pkg.version}\n` })
  }, 60_000)

  it('type-checks a consumer of every entry point, strict, without skipLibCheck, and rejects a wrong one', async () => {
    const consumer = `
import { createEngine, ClientError, EngineError, LoopClient, type EngineOptions, type LoopHandle, type LoopOutput, type LoopView } from 'loopstate'
import { JsonStore, MemoryStore, SCHEMA_VERSION, type LoopRecord, type SnapshotStore } from 'loopstate/stores'
import { parseModelSpec, ProviderError, scriptedFactory, openaiFactory, resolveOpenAI, ollamaFactory, loadProviderModule, type ChatRequest, type ChatResponse, type ModelProvider, type ProviderFactory } from 'loopstate/providers'
import { createStatelyInspect, startViewer, type Viewer } from 'loopstate/inspector'

const llama: ProviderFactory = openaiFactory(resolveOpenAI('llamacpp'))
const vllm: ProviderFactory = openaiFactory({ baseURL: 'http://127.0.0.1:8000/v1', contextLength: 32768, headers: { 'X-Team': 'a' } })
const mine: ProviderFactory = (await loadProviderModule('./echo.js', { builtIn: ['openai'] })).factory
const echo: ProviderFactory = (): ModelProvider => ({
  scheme: 'echo',
  async chat(request: ChatRequest): Promise<ChatResponse> {
    return { content: request.model, toolCalls: [], usage: { inputTokens: 1, outputTokens: 1, durationMs: 0 } }
  },
})
const options: EngineOptions = { dataDir: 'd', providers: { scripted: scriptedFactory(), echo, llama, vllm, mine, ollama: ollamaFactory({ host: '127.0.0.1:11434' }) } }
const engine = await createEngine(options)
const h: LoopHandle = await engine.start({ goal: 'x' }, { models: ['scripted:s.json'] })
const off: () => void = h.subscribe((view: LoopView) => console.log(view.status, view.iteration))
const out: LoopOutput = await h.done
const status: 'completed' | 'cancelled' | 'errored' | 'stalled' = out.status
off()
await engine.close()

const store: SnapshotStore = new MemoryStore()
const records: LoopRecord[] = await new JsonStore('d').list()
const client = new LoopClient({ store })
try {
  await client.send(h.name, { type: 'loop.pause' })
} catch (e) {
  if (e instanceof ClientError) console.log(e.code)
}
const inspector = createStatelyInspect('ws://127.0.0.1:4747')
const viewer: Viewer = await startViewer({ dataDir: 'd', port: 0 })
await createEngine({ store, inspect: inspector.inspect })
console.log(status, records.length, SCHEMA_VERSION, parseModelSpec('a:b').scheme, viewer.url)
console.log(new EngineError('x').message, new ProviderError('m', 'c', false).retryable)
`
    const wrong = `
import { createEngine } from 'loopstate'
import { MemoryStore } from 'loopstate/stores'
const engine = await createEngine({ dataDir: 42 })
await engine.start({ goal: 'x' }, { models: 'scripted:s.json' })
new MemoryStore().put({ name: 'x' })
`
    await writeFile(join(project, 'index.ts'), consumer)
    await writeFile(join(project, 'wrong.ts'), wrong)
    // No @types/node in the project: the declarations need none.
    const compilerOptions = { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: false, types: [] }
    await writeFile(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['index.ts'] }, null, 2))
    await writeFile(join(project, 'tsconfig.wrong.json'), JSON.stringify({ extends: './tsconfig.json', files: ['wrong.ts'] }, null, 2))

    const nodeNext = await tsc(['-p', 'tsconfig.json'])
    expect(nodeNext, nodeNext.stdout).toMatchObject({ code: 0, stdout: '' })
    const bundler = await tsc(['-p', 'tsconfig.json', '--module', 'preserve', '--moduleResolution', 'bundler'])
    expect(bundler, bundler.stdout).toMatchObject({ code: 0, stdout: '' })

    const rejected = await tsc(['-p', 'tsconfig.wrong.json'])
    expect(rejected.code).not.toBe(0)
    const errors = rejected.stdout.split('\n').filter((l) => /error TS\d+/.test(l))
    expect(errors.every((l) => l.startsWith('wrong.ts(')), rejected.stdout).toBe(true)
    expect(errors.map((l) => /^wrong\.ts\((\d+),/.exec(l)?.[1])).toEqual(['4', '5', '6'])
    expect(rejected.stdout).toContain("Type 'number' is not assignable to type 'string'")
  }, 120_000)

  it('runs a loop from a plain Node script that imports the package', async () => {
    await writeFile(join(project, 'scenario.json'), JSON.stringify({ coder: [{ type: 'text', text: 'done' }], auditor: [{ type: 'text', text: 'ok' }] }))
    const script = `
import { createEngine } from 'loopstate'
import { JsonStore } from 'loopstate/stores'
import { parseModelSpec } from 'loopstate/providers'
import { startViewer } from 'loopstate/inspector'

const engine = await createEngine({ dataDir: 'data' })
const loop = await engine.start({ goal: 'say done' }, { models: ['scripted:scenario.json'], workspace: '.' })
const result = await loop.done
await engine.close()
const records = await new JsonStore('data').list()
const viewer = await startViewer({ dataDir: 'data', port: 0, log: () => {} })
const page = await (await fetch(viewer.url)).text()
const elk = await fetch(new URL('/vendor/elk.bundled.js', viewer.url))
const elkText = await elk.text()
await viewer.close()
console.log(JSON.stringify({ result, records: records.map((r) => r.status), scheme: parseModelSpec('scripted:x').scheme, page: page.includes('<title>loopstate inspector</title>'), elk: elk.status === 200 && elkText.includes('ELK') }))
`
    await writeFile(join(project, 'script.mjs'), script)
    const r = await run(process.execPath, ['script.mjs'], project, 60_000)
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({
      result: { name: 'say-done', status: 'completed', reason: 'completed', iteration: 1 },
      records: ['completed'],
      scheme: 'scripted',
      page: true,
      elk: true, // the graph's layout engine, from the package's own dependencies
    })
  }, 60_000)
})
