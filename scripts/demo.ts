/**
 * `loopstate demo` (`npm start`): three scripted loops at once on one engine,
 * each in a fresh temporary workspace, with live progress and a closing table.
 */
import { mkdtemp, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import type { ProviderFactory } from '../adapters/model-provider.ts'
import { createEngine, type LoopHandle } from '../services/engine.ts'
import { packagePath } from '../services/paths.ts'
import { closeWithEngine, inspectorFor } from './inspector-flag.ts'
import type { LoopView } from '../services/views.ts'
import { showProgress, stopOnSignals, type Progress } from './follow.ts'
import { oneLine, plural, resultTable, shortPath } from './format.ts'

const DEMO_DIR = packagePath('scripts', 'demo')
const scripted = (file: string) => `scripted:${join(DEMO_DIR, file)}`

interface DemoLoop {
  plan: string
  models: string[]
  auditorModels?: string[]
  story: string
}

const LOOPS: DemoLoop[] = [
  {
    plan: 'fix-a-bug.md',
    models: [scripted('fix-a-bug.json')],
    story: 'plain plan: audit 1 reports a bug, iteration 2 fixes it, audit 2 resolves it',
  },
  {
    plan: 'three-sections.md',
    models: [scripted('three-sections.json')],
    story: 'three sections, each audited clean with a summary, then a final audit',
  },
  {
    plan: 'fallback.md',
    models: [scripted('flaky.json'), scripted('steady.json')],
    auditorModels: [scripted('steady.json')],
    story: 'coder model flaky.json refuses twice (ECONNREFUSED); the loop falls back to steady.json',
  },
]

export interface DemoOptions {
  /** Data directory of the engine. */
  dataDir: string
  /** `--inspect [url]`: stream the loop actors to a WebSocket inspector. */
  inspect?: string | boolean
}

/** The demo's engine, streaming to an inspector when asked. */
async function demoEngine(dataDir: string, inspect: DemoOptions['inspect'], providers?: Record<string, ProviderFactory>) {
  const onProblem = (m: string) => process.stderr.write(`loopstate: ${oneLine(m)}\n`)
  const inspector = inspectorFor(inspect, onProblem)
  if (inspector) onProblem(`streaming inspection events to ${inspector.url} (\`loopstate inspect\` shows them)`)
  // The demo runs its own loops; unfinished loops of earlier runs are left in the store.
  const engine = await createEngine({ dataDir, onProblem, resume: false, providers, inspect: inspector?.inspect })
  return closeWithEngine(engine, inspector)
}

/** Runs the demo; resolves to the exit code (0 when all three loops completed). */
export async function runDemo({ dataDir, inspect }: DemoOptions): Promise<number> {
  const out = (line = '') => process.stdout.write(`${line}\n`)
  const engine = await demoEngine(dataDir, inspect)
  let progress: Progress | null = null
  const guard = stopOnSignals({
    close: () => engine.close(),
    before: () => progress?.stop(),
    saved: () => 'saved; the demo loops stay resumable',
  })

  const started: { handle: LoopHandle; workspace: string; loop: DemoLoop }[] = []
  try {
    for (const loop of LOOPS) {
      const workspace = await mkdtemp(join(tmpdir(), 'loopstate-demo-'))
      const handle = await engine.start(
        { planFile: join(DEMO_DIR, loop.plan) },
        { workspace, models: loop.models, auditorModels: loop.auditorModels, retryBackoff: { baseMs: 200 } },
      )
      started.push({ handle, workspace, loop })
    }
  } catch (e) {
    await engine.close()
    throw e
  }
  if (guard.stopping) return new Promise(() => {}) // the signal handler exits

  const width = Math.max(...started.map((s) => s.handle.name.length))
  out(`loopstate demo: three loops at once on scripted models; records in ${shortPath(dataDir)}/loops/`)
  for (const { handle, loop } of started) out(`  ${handle.name.padEnd(width)}  ${loop.story}`)
  out()

  // Failed model calls are not usage: note them as they happen to tell the fallback story at the end.
  const failures = new Map<string, string[]>()
  const noteFailure = async (view: LoopView) => {
    if (!view.state.endsWith('backingOff')) return
    const code = (await engine.get(view.name))?.error?.code
    if (code) failures.set(view.name, [...(failures.get(view.name) ?? []), code])
  }
  progress = showProgress(started.map((s) => s.handle), { detail: (name) => engine.get(name) })
  const unsubscribe = started.map(({ handle }) => handle.subscribe((view) => void noteFailure(view)))
  // The engine's timers do not hold the process open; a loop paused from another terminal must still hear `resume`.
  const keepAlive = setInterval(() => {}, 60_000)
  const results = await Promise.allSettled(started.map((s) => s.handle.done))
  clearInterval(keepAlive)
  unsubscribe.forEach((u) => u())
  progress.stop()
  out()

  const rows: { name: string; view: LoopView | null }[] = []
  const notes: string[] = []
  let allCompleted = true
  for (const [i, { handle, workspace }] of started.entries()) {
    const result = results[i]!
    const detail = await engine.get(handle.name)
    if (result.status === 'rejected' || !detail) {
      allCompleted = false
      rows.push({ name: handle.name, view: null })
      continue
    }
    if (detail.status !== 'completed') allCompleted = false
    rows.push({ name: handle.name, view: detail })
    const what: string[] = []
    if (detail.findings.length > 0) {
      what.push(detail.findings.map((f) => `${f.id} ${f.severity} at ${f.file}:${f.line ?? '-'} ${f.status}`).join(', '))
    }
    if (detail.sections.length > 0) {
      const withSummary = detail.sections.filter((s) => s.summary !== null).length
      what.push(`${detail.sections.filter((s) => s.status === 'done').length}/${detail.sections.length} sections done, ${withSummary} with summaries`)
    }
    const failed = failures.get(handle.name) ?? []
    if (failed.length > 0) what.push(`${plural(failed.length, 'failed call')} (${[...new Set(failed)].join(', ')})`)
    const calls = Object.entries(detail.usage.byModel).map(([m, u]) => `${basename(m)} ×${u.calls}`)
    what.push(`model calls: ${calls.join(', ')}`)
    if (detail.error && detail.status !== 'completed') what.push(`error: ${oneLine(detail.error.message)}`)
    const files = await readdir(workspace).catch(() => [] as string[])
    notes.push(`  ${handle.name.padEnd(width)}  ${what.join('; ')}`)
    notes.push(`  ${''.padEnd(width)}  workspace ${workspace}: ${files.sort().join(', ') || '(empty)'}`)
  }
  out(resultTable(rows))
  out()
  out('what happened:')
  for (const n of notes) out(n)
  out()
  out(`records: ${shortPath(dataDir)}/loops/<name>.json — try \`npx loopstate list${dataFlag(dataDir)}\` or \`npx loopstate status ${started[0]!.handle.name}${dataFlag(dataDir)}\``)
  await engine.close()
  guard.dispose()
  return allCompleted ? 0 : 1
}

function dataFlag(dataDir: string): string {
  return shortPath(dataDir) === 'data' ? '' : ` --data ${shortPath(dataDir)}`
}

export interface OllamaDemoOptions extends DemoOptions {
  /** Model name on the Ollama server (e.g. `qwen3:8b`). */
  model: string
  /** Normalized server address. */
  host: string
}

/**
 * `loopstate demo --ollama <model>`: the plain-plan demo (fix-a-bug.md) on a real
 * model. When the server or the model cannot be had, says why in one line (exit 1).
 */
export async function runOllamaDemo({ dataDir, model, host, inspect }: OllamaDemoOptions): Promise<number> {
  const out = (line = '') => process.stdout.write(`${line}\n`)
  const { OllamaProvider, classifyOllamaError, ollamaFactory } = await import('../adapters/ollama-provider.ts')
  try {
    const info = await new OllamaProvider({ host }).modelInfo(model, AbortSignal.timeout(10_000))
    out(`loopstate demo: ${model} on ${host} (context ${info.contextLength ?? 'unknown'}, num_ctx ${info.numCtx})`)
  } catch (e) {
    const why = classifyOllamaError(e, model, host).message
    process.stderr.write(`loopstate: demo: cannot run on ${model}: ${oneLine(why)}\n`)
    return 1
  }
  const engine = await demoEngine(dataDir, inspect, { ollama: ollamaFactory({ host }) })
  let progress: Progress | null = null
  const guard = stopOnSignals({
    close: () => engine.close(),
    before: () => progress?.stop(),
    saved: () => 'saved; the demo loop stays resumable',
  })
  const workspace = await mkdtemp(join(tmpdir(), 'loopstate-demo-'))
  // Real models on modest hardware can be slow to load and to read a prompt: a generous watchdog.
  const handle = await engine.start(
    { planFile: join(DEMO_DIR, 'fix-a-bug.md') },
    { workspace, models: [`ollama:${model}`], stallTimeoutMs: 300_000, maxIterations: 4 },
  )
  if (guard.stopping) return new Promise(() => {})
  out(`  ${handle.name}: workspace ${workspace}`)
  progress = showProgress([handle])
  const keepAlive = setInterval(() => {}, 60_000)
  const output = await handle.done.finally(() => clearInterval(keepAlive))
  progress.stop()
  out()
  out(resultTable([{ name: handle.name, view: handle.view() }]))
  if (output.status !== 'completed' && output.error) out(`  ${handle.name}: ${oneLine(output.error.message)}`)
  const files = await readdir(workspace).catch(() => [] as string[])
  out(`  workspace ${workspace}: ${files.sort().join(', ') || '(empty)'}`)
  await engine.close()
  guard.dispose()
  return output.status === 'completed' ? 0 : 1
}
