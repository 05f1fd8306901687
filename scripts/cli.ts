/**
 * The `loopstate` CLI (bin: scripts/loopstate.js). Commands: run, list, status,
 * cancel, pause, resume, say, demo. Usage errors print one line on stderr and
 * exit 2 without touching the data dir.
 */
import { readFileSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { JsonStore } from '../adapters/json-store.ts'
import type { LoopRecord } from '../adapters/snapshot-store.ts'
import type { ControlEvent, LoopOutput } from '../machines/loop.types.ts'
import type { LoopOptions } from '../services/config.ts'
import { lockOwner, sendCommand } from '../services/control.ts'
import type { Engine, EngineOptions, LoopHandle, LoopTaskSpec } from '../services/engine.ts'
import { detailOf, viewOf, type LoopDetail, type LoopView } from '../services/views.ts'
import { detailText, fit, listTable, oneLine, progressKey, progressLine, resultLine } from './format.ts'

/** A failure the CLI reports as one line, with its exit code (2: bad usage or input). */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message)
  }
}

/** Exit code of each final status. */
const EXIT_CODES = { completed: 0, errored: 1, stalled: 3, cancelled: 4, interrupted: 130 } as const

const FINAL = new Set(['completed', 'cancelled', 'errored', 'stalled'])
const POLL_MS = 100
const CONTROL_TIMEOUT_MS = 5_000

const out = (line: string) => process.stdout.write(`${line}\n`)
const err = (line: string) => process.stderr.write(`loopstate: ${oneLine(line)}\n`)

function dataDirOf(opts: { data?: string }): string {
  return resolve(opts.data ?? process.env.LOOPSTATE_DATA ?? 'data')
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')]
}

function count(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a non-negative integer.')
  return Number(value)
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

// ---------------------------------------------------------------- run

interface RunOptions {
  goal?: string
  model: string[]
  auditorModel: string[]
  workspace?: string
  maxIterations?: number
  name?: string
  config?: string
  data?: string
}

/** Reads a `--config` JSON file of loop options (every LoopOptions field, `models` optional). */
async function readConfigFile(file: string): Promise<Partial<LoopOptions>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new CliError(`config: ${file}: ${code === 'ENOENT' ? 'file not found' : message(e)}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw new CliError(`config: ${file}: not valid JSON (${message(e)})`)
  }
  const { loopOptionsSchema } = await import('../services/config.ts')
  const parsed = loopOptionsSchema.partial().safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new CliError(`config: ${file}: ${where}${issue.message}`)
  }
  return parsed.data
}

async function runCommand(plan: string | undefined, opts: RunOptions): Promise<number> {
  if (plan !== undefined && opts.goal !== undefined) throw new CliError('run: give a plan file or --goal, not both')
  if (plan === undefined && opts.goal === undefined) throw new CliError('run: a plan file or --goal TEXT is required')
  const fromFile = opts.config ? await readConfigFile(opts.config) : {}
  const models = opts.model.length > 0 ? opts.model : fromFile.models
  if (!models || models.length === 0) throw new CliError('run: --model is required (e.g. --model scripted:scenario.json)')
  const loopOptions: LoopOptions = { ...fromFile, models }
  if (opts.auditorModel.length > 0) loopOptions.auditorModels = opts.auditorModel
  if (opts.maxIterations !== undefined) loopOptions.maxIterations = opts.maxIterations
  const spec: LoopTaskSpec = plan !== undefined ? { planFile: plan } : { goal: opts.goal! }
  const dataDir = dataDirOf(opts)

  return drive(
    dataDir,
    (engine) => engine.start(spec, { ...loopOptions, name: opts.name, workspace: opts.workspace }),
    (detail) =>
      `loop ${detail.name} started: ${plan !== undefined ? `${detail.kind} plan ${plan}` : 'goal'}, ` +
      `workspace ${detail.workspace}, data ${dataDir}`,
  )
}

/**
 * Creates an engine on `dataDir`, lets `begin` start a loop on it, and follows
 * that loop to its end with a progress line. SIGINT/SIGTERM save it (exit 130).
 * Resolves to the exit code of the loop's final status.
 */
async function drive(
  dataDir: string,
  begin: (engine: Engine) => Promise<LoopHandle>,
  startedLine: (detail: LoopDetail) => string,
): Promise<number> {
  // The engine (with zod and xstate) loads on demand: `list` and `status` start faster without it.
  const { createEngine } = await import('../services/engine.ts')
  // This process drives one loop: other unfinished loops of the store are not restored here.
  const engineOptions: EngineOptions & { resume?: boolean } = { dataDir, onProblem: (m) => err(m), resume: false }
  const engine = await createEngine(engineOptions)
  let handle: LoopHandle | undefined
  let stopping = false
  const progress = createProgress()
  const onSignal = () => {
    if (stopping) process.exit(EXIT_CODES.interrupted)
    stopping = true
    progress.stop()
    // Saving is quick; never let a stuck write keep the user waiting.
    setTimeout(() => {
      err('could not save within 2 s; stopping anyway')
      process.exit(EXIT_CODES.interrupted)
    }, 1_800).unref()
    engine.close().then(
      () => {
        out(handle ? `saved; loop ${handle.name} stays resumable` : 'stopped before the loop started')
        process.exit(EXIT_CODES.interrupted)
      },
      (e: unknown) => {
        err(`could not save: ${message(e)}`)
        process.exit(EXIT_CODES.interrupted)
      },
    )
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    handle = await begin(engine)
  } catch (e) {
    await engine.close()
    throw new CliError(message(e))
  }
  if (stopping) return new Promise(() => {}) // the signal handler exits
  const detail = await engine.get(handle.name)
  if (detail) out(startedLine(detail))
  progress.start(handle)
  // The engine's timers do not hold the process open; a paused loop must still hear `resume`.
  const keepAlive = setInterval(() => {}, 60_000)
  let output: LoopOutput
  try {
    output = await handle.done
  } catch (e) {
    progress.stop()
    await engine.close()
    throw new CliError(`loop ${handle.name} crashed: ${message(e)}`, EXIT_CODES.errored)
  } finally {
    clearInterval(keepAlive)
  }
  progress.stop()
  const view = handle.view()
  await engine.close()
  out(resultLine(view, output.error))
  return EXIT_CODES[output.status]
}

/** The live progress line of `run`: redrawn on a TTY, a line per change otherwise. */
function createProgress() {
  const tty = process.stdout.isTTY === true
  let handle: LoopHandle | null = null
  let unsubscribe: (() => void) | null = null
  let ticker: NodeJS.Timeout | null = null
  let lastKey = ''
  let drawn = false
  const render = (view: LoopView) => {
    if (tty) {
      process.stdout.write(`\r${fit(progressLine(view), process.stdout.columns)}\x1b[K`)
      drawn = true
    } else {
      const key = progressKey(view)
      if (key === lastKey) return
      lastKey = key
      out(progressLine(view))
    }
  }
  return {
    start(h: LoopHandle) {
      handle = h
      unsubscribe = h.subscribe(render)
      render(h.view())
      if (tty) ticker = setInterval(() => handle && render(handle.view()), 500)
    },
    stop() {
      unsubscribe?.()
      unsubscribe = null
      if (ticker) clearInterval(ticker)
      ticker = null
      if (tty && drawn) {
        if (handle) render(handle.view())
        process.stdout.write('\n')
        drawn = false
      }
    },
  }
}

// ---------------------------------------------------------------- list, status

/** A view as of now for a loop some process runs; as of its last save for a loop no process runs. */
async function currentView(dataDir: string, record: LoopRecord): Promise<LoopView> {
  const live = record.status !== 'running' || (await lockOwner(dataDir, record.name)) !== null
  return viewOf(record, live ? Date.now() : Date.parse(record.updatedAt))
}

async function loadRecord(store: JsonStore, dataDir: string, name: string): Promise<LoopRecord> {
  let record: LoopRecord | null
  try {
    record = await store.get(name)
  } catch (e) {
    throw new CliError(message(e))
  }
  if (record === null) throw new CliError(`no loop named '${name}' in ${dataDir}`)
  return record
}

async function listCommand(opts: { json?: boolean; data?: string }): Promise<number> {
  const dataDir = dataDirOf(opts)
  const store = new JsonStore(dataDir, { onProblem: (m) => err(m) })
  const views = await Promise.all((await store.list()).map((r) => currentView(dataDir, r)))
  if (opts.json) out(JSON.stringify(views, null, 2))
  else if (views.length === 0) out(`no loops in ${dataDir}`)
  else out(listTable(views))
  return 0
}

async function statusCommand(name: string, opts: { json?: boolean; data?: string }): Promise<number> {
  const dataDir = dataDirOf(opts)
  const store = new JsonStore(dataDir, { onProblem: (m) => err(m) })
  const record = await loadRecord(store, dataDir, name)
  const detail = { ...detailOf(record), ...(await currentView(dataDir, record)) }
  out(opts.json ? JSON.stringify(detail, null, 2) : detailText(detail))
  return 0
}

// ---------------------------------------------------------------- cancel, pause, resume, say

type ControlKind = 'cancel' | 'pause' | 'resume' | 'say'

async function controlCommand(kind: ControlKind, name: string, opts: { data?: string }, text?: string): Promise<number> {
  const dataDir = dataDirOf(opts)
  const store = new JsonStore(dataDir, { onProblem: (m) => err(m) })
  const record = await loadRecord(store, dataDir, name)
  if (FINAL.has(record.status)) throw new CliError(`loop ${name} already ended (${record.status})`)
  if (kind === 'pause' && record.status === 'paused') {
    out(`loop ${name} is already paused`)
    return 0
  }
  const event: ControlEvent =
    kind === 'say' ? { type: 'loop.say', text: text! } : { type: `loop.${kind}` as 'loop.cancel' | 'loop.pause' | 'loop.resume' }

  const owner = await lockOwner(dataDir, name)
  if (kind === 'resume' && owner !== null && record.status !== 'paused') {
    throw new CliError(`loop ${name} is not paused (${record.status} in process ${owner})`)
  }
  if (kind === 'resume' && owner === null) return resumeHere(dataDir, name)
  if (owner === null) {
    const { applyOffline } = await import('../services/offline.ts')
    const after = await applyOffline(store, name, event)
    if (kind === 'say') out(`message queued for loop ${name} (no process runs it; ${after.status}): its next prompt includes it`)
    else out(`loop ${name} ${after.status}${after.reason ? ` (${after.reason})` : ''} (no process runs it: applied to the store)`)
    return 0
  }

  await sendCommand(dataDir, name, event)
  const deadline = Date.now() + CONTROL_TIMEOUT_MS
  for (;;) {
    const now = await store.get(name)
    if (kind === 'say') {
      if (!(await hasCommands(dataDir, name))) {
        out(`message delivered to loop ${name} (pid ${owner}): its next prompt includes it`)
        return 0
      }
    } else if (now && reflects(kind, now)) {
      out(`loop ${name} ${now.status}${now.reason ? ` (${now.reason})` : ''}`)
      return 0
    }
    if (Date.now() > deadline) {
      throw new CliError(`sent ${kind} to loop ${name} (pid ${owner}) but it did not take it within 5 s`, 1)
    }
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}

/** Restores a loop that no process runs (saved by Ctrl-C, paused, queued) and drives it here, like `run`. */
function resumeHere(dataDir: string, name: string): Promise<number> {
  return drive(
    dataDir,
    async (engine) => {
      const handle = await engine.resume(name)
      if (handle.view().status === 'paused') handle.resume()
      return handle
    },
    (d) => `loop ${d.name} resumed: ${d.phase}, iteration ${d.iteration}, workspace ${d.workspace}, data ${dataDir}`,
  )
}

function reflects(kind: Exclude<ControlKind, 'say'>, record: LoopRecord): boolean {
  if (FINAL.has(record.status)) return true
  if (kind === 'pause') return record.status === 'paused'
  if (kind === 'resume') return record.status === 'running'
  return false
}

async function hasCommands(dataDir: string, name: string): Promise<boolean> {
  try {
    return (await readdir(resolve(dataDir, 'inbox', name))).some((f) => f.endsWith('.json'))
  } catch {
    return false
  }
}

// ---------------------------------------------------------------- program

function buildProgram(setExit: (code: number) => void): Command {
  const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
    .version
  const program = new Command('loopstate')
  program
    .description('Durable AI work loops (coder + auditor) as XState v5 actors, saved to a JSON store')
    .version(version)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`loopstate: ${oneLine(str.replace(/^error: /, ''))}\n`) })
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      '\nExit codes: 0 completed, 1 errored, 2 bad usage or input, 3 stalled, 4 cancelled, 130 interrupted (loop stays resumable).',
    )

  const dataHelp = 'data directory (default: $LOOPSTATE_DATA or ./data)'
  const act =
    <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
    async (...args: A) =>
      setExit(await fn(...args))

  program
    .command('run')
    .description('run a loop on a plan (or a goal) until it ends; Ctrl-C saves it and leaves it resumable')
    .argument('[plan]', 'plan file (markdown; `<!-- section -->` lines split it into sections)')
    .option('--goal <text>', 'work on a goal text instead of a plan file')
    .option('--model <spec>', 'coder model, e.g. scripted:scenario.json; repeat or comma-separate for a fallback chain', collect, [])
    .option('--auditor-model <spec>', 'auditor model(s), same form (default: the coder models)', collect, [])
    .option('--workspace <dir>', 'directory the coder works in (default: the current directory)')
    .option('--max-iterations <n>', 'rework passes allowed after dirty audits (default 15)', count)
    .option('--name <name>', 'loop name (default: from the plan title)')
    .option('--config <file>', 'JSON file of loop options (maxRetries, stallTimeoutMs, budget, …); flags win')
    .option('--data <dir>', dataHelp)
    .action(act((plan: string | undefined, opts: RunOptions) => runCommand(plan, opts)))

  program
    .command('list')
    .description('list the loops of the data dir')
    .option('--json', 'JSON array of loop views')
    .option('--data <dir>', dataHelp)
    .action(act((opts: { json?: boolean; data?: string }) => listCommand(opts)))

  program
    .command('status')
    .description('show one loop: phase, findings, sections, usage, last audit')
    .argument('<name>', 'loop name')
    .option('--json', 'the loop detail as JSON')
    .option('--data <dir>', dataHelp)
    .action(act((name: string, opts: { json?: boolean; data?: string }) => statusCommand(name, opts)))

  for (const [kind, description] of [
    ['cancel', 'cancel a loop (it ends as cancelled)'],
    ['pause', 'pause a loop (the live model call is aborted; resume continues it)'],
    ['resume', 'resume a paused loop; a loop no process runs (after Ctrl-C) is restored and driven here, like run'],
  ] as const) {
    program
      .command(kind)
      .description(description)
      .argument('<name>', 'loop name')
      .option('--data <dir>', dataHelp)
      .action(act((name: string, opts: { data?: string }) => controlCommand(kind, name, opts)))
  }

  program
    .command('say')
    .description("send a message that the loop's next prompt includes")
    .argument('<name>', 'loop name')
    .argument('<text...>', 'the message')
    .option('--data <dir>', dataHelp)
    .action(
      act((name: string, words: string[], opts: { data?: string }) => {
        const text = words.join(' ').trim()
        if (text === '') throw new CliError('say: the message is empty')
        return controlCommand('say', name, opts, text)
      }),
    )

  program
    .command('demo')
    .description('run three scripted loops at once (a bug fixed, a sectioned plan, a model fallback)')
    .option('--data <dir>', dataHelp)
    .action(act(async (opts: { data?: string }) => (await import('./demo.ts')).runDemo({ dataDir: dataDirOf(opts) })))

  return program
}

async function main(argv: string[]): Promise<number> {
  let code = 0
  const program = buildProgram((c) => (code = c))
  try {
    await program.parseAsync(argv)
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; a bare `loopstate` shows the help and counts as bad usage.
      return e.exitCode === 0 ? 0 : 2
    }
    if (e instanceof CliError) {
      err(e.message)
      return e.exitCode
    }
    err(message(e))
    return 1
  }
  return code
}

main(process.argv).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  },
)
