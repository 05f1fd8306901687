/**
 * The `loopstate` CLI (bin: scripts/loopstate.js). Commands: run, list, status,
 * history, fork, cancel, pause, resume, say, demo. Usage errors print one line
 * on stderr and exit 2 without touching the data dir.
 */
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { currentOwner, JsonClaims } from '../adapters/claims.ts'
import { JsonStore } from '../adapters/json-store.ts'
import type { HistoryEntry, LoopRecord } from '../adapters/snapshot-store.ts'
import type { ControlEvent, LoopOutput } from '../machines/loop.types.ts'
import type { LoopOptions } from '../services/config.ts'
import { packagePath } from '../services/paths.ts'
import { commandTaken, sendCommand, withdrawCommand } from '../services/control.ts'
import type { Engine, LoopHandle, LoopTaskSpec } from '../services/engine.ts'
import { detailOf, viewOf, type LoopDetail, type LoopView } from '../services/views.ts'
import { showProgress, stopOnSignals, type Progress } from './follow.ts'
import {
  detailText,
  historyLine,
  historyTable,
  listTable,
  oneLine,
  plural,
  resultLine,
  resultTable,
  shortPath,
} from './format.ts'

/** A failure the CLI reports as one line, with its exit code (2: bad usage or input). */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message)
  }
}

/** Exit code of each final status (a signal exits 130 or 143: follow.ts). */
const EXIT_CODES = { completed: 0, errored: 1, stalled: 3, cancelled: 4 } as const

const FINAL = new Set(['completed', 'cancelled', 'errored', 'stalled'])
const POLL_MS = 100
const CONTROL_TIMEOUT_MS = 5_000

const out = (line = '') => process.stdout.write(`${line}\n`)
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

function positive(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer.')
  return Number(value)
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

// ---------------------------------------------------------------- run

/** Flags shared by the commands that run loops: where the model providers are, where to stream inspection. */
interface ProviderFlags {
  ollamaHost?: string
  /** `--inspect [url]`: true streams to the local viewer's default address. */
  inspect?: string | boolean
}

interface RunOptions extends ProviderFlags {
  goal?: string
  model: string[]
  auditorModel: string[]
  workspace?: string
  inPlace?: boolean
  maxIterations?: number
  name?: string
  config?: string
  data?: string
}

/** The `ollama` section of a `--config` file. */
interface OllamaConfig {
  host?: string
  numCtxCap?: number
}

/**
 * Reads a `--config` JSON file: loop options (every LoopOptions field, `models`
 * optional) and an optional `ollama: { host, numCtxCap }` section.
 */
async function readConfigFile(file: string): Promise<{ loop: Partial<LoopOptions>; ollama: OllamaConfig }> {
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
  const z = await import('zod/mini')
  const schema = z.extend(z.partial(loopOptionsSchema), {
    ollama: z.optional(
      z.strictObject({
        host: z.optional(z.string().check(z.minLength(1))),
        numCtxCap: z.optional(z.int().check(z.positive())),
      }),
    ),
  })
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new CliError(`config: ${file}: ${where}${issue.message}`)
  }
  const { ollama, ...loop } = parsed.data
  return { loop, ollama: ollama ?? {} }
}

async function runCommand(plan: string | undefined, opts: RunOptions): Promise<number> {
  if (plan !== undefined && opts.goal !== undefined) throw new CliError('run: give a plan file or --goal, not both')
  if (plan === undefined && opts.goal === undefined) throw new CliError('run: a plan file or --goal TEXT is required')
  const { loop: fromFile, ollama } = opts.config ? await readConfigFile(opts.config) : { loop: {}, ollama: {} }
  const models = opts.model.length > 0 ? opts.model : fromFile.models
  if (!models || models.length === 0) throw new CliError('run: --model is required (e.g. --model scripted:scenario.json)')
  const loopOptions: LoopOptions = { ...fromFile, models }
  if (opts.auditorModel.length > 0) loopOptions.auditorModels = opts.auditorModel
  if (opts.maxIterations !== undefined) loopOptions.maxIterations = opts.maxIterations
  const spec: LoopTaskSpec = plan !== undefined ? { planFile: plan } : { goal: opts.goal! }
  const dataDir = dataDirOf(opts)

  return drive(dataDir, {
    providers: { ...opts, ollama },
    begin: (engine) =>
      engine.start(spec, { ...loopOptions, name: opts.name, workspace: opts.workspace, inPlace: opts.inPlace }),
    startedLine: (detail) =>
      `loop ${detail.name} started: ${plan !== undefined ? `${detail.kind} plan ${plan}` : 'goal'}, ` +
      `workspace ${detail.workspace}, data ${dataDir}`,
    hintUnfinished: true,
  })
}

/** Model providers beyond `scripted`: Ollama on the host of the flag, the config file or OLLAMA_HOST. */
async function providersFor(flags: ProviderFlags & { ollama?: OllamaConfig }) {
  const { ollamaFactory, resolveOllamaHost } = await import('../adapters/ollama-provider.ts')
  try {
    const host = resolveOllamaHost(flags.ollamaHost, flags.ollama?.host)
    return { ollama: ollamaFactory({ host, numCtxCap: flags.ollama?.numCtxCap }) }
  } catch (e) {
    throw new CliError(message(e))
  }
}

/** An engine on `dataDir` that restores nothing by itself: each command picks the loops it drives. */
async function openEngine(
  dataDir: string,
  flags: ProviderFlags & { ollama?: OllamaConfig; maxConcurrent?: number } = {},
): Promise<Engine> {
  const providers = await providersFor(flags)
  // The engine (with zod and xstate) loads on demand: `list` and `status` start faster without it.
  const { createEngine } = await import('../services/engine.ts')
  const { closeWithEngine, inspectorFor } = await import('./inspector-flag.ts')
  let inspector
  try {
    inspector = inspectorFor(flags.inspect, (m) => err(m))
  } catch (e) {
    throw new CliError(message(e))
  }
  if (inspector) err(`streaming inspection events to ${inspector.url} (\`loopstate inspect\` shows them; so does stately.ai/inspect)`)
  const engine = await createEngine({
    dataDir,
    onProblem: (m) => err(m),
    resume: false,
    providers,
    inspect: inspector?.inspect,
    ...(flags.maxConcurrent !== undefined ? { maxConcurrentLoops: flags.maxConcurrent } : {}),
  })
  return closeWithEngine(engine, inspector)
}

interface DriveOptions {
  /** Where the providers of the loop's models are. */
  providers?: ProviderFlags & { ollama?: OllamaConfig }
  /** Starts (restores, forks) the loop to follow. */
  begin: (engine: Engine) => Promise<LoopHandle>
  /** The line printed once it runs. */
  startedLine: (detail: LoopDetail) => string
  /** Mention the other unfinished loops of the data dir (for `run`). */
  hintUnfinished?: boolean
}

/**
 * Creates an engine on `dataDir`, lets `begin` start a loop on it, and follows
 * that loop to its end with a progress line. SIGINT/SIGTERM save it (exit 130/143).
 * Resolves to the exit code of the loop's final status.
 */
async function drive(dataDir: string, { providers, begin, startedLine, hintUnfinished = false }: DriveOptions): Promise<number> {
  const engine = await openEngine(dataDir, providers)
  let handle: LoopHandle | undefined
  let progress: Progress | null = null
  const guard = stopOnSignals({
    close: () => engine.close(),
    before: () => progress?.stop(),
    saved: () => (handle ? `saved; loop ${handle.name} stays resumable` : 'stopped before the loop started'),
  })

  try {
    handle = await begin(engine)
  } catch (e) {
    await engine.close()
    throw new CliError(message(e))
  }
  if (guard.stopping) return new Promise(() => {}) // the signal handler exits
  if (hintUnfinished) {
    const others = await engine.unfinished()
    if (others.length > 0) err(unfinishedHint(dataDir, others))
  }
  const detail = await engine.get(handle.name)
  if (detail) out(startedLine(detail))
  progress = showProgress([handle])
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

/** `data/ holds 2 unfinished loops (a, b) that no process runs; …` */
function unfinishedHint(dataDir: string, names: string[]): string {
  const shown = names.length > 5 ? [...names.slice(0, 5), '…'] : names
  return (
    `${shortPath(dataDir)}/ holds ${plural(names.length, 'unfinished loop')} (${shown.join(', ')}) that no process runs; ` +
    `\`loopstate resume --all --data ${shortPath(dataDir)}\` carries ${names.length === 1 ? 'it' : 'them'} on`
  )
}

// ---------------------------------------------------------------- list, status

/** A view as of now for a loop some process runs; as of its last save for a loop no process runs. */
async function currentView(dataDir: string, record: LoopRecord): Promise<LoopView> {
  const live = record.status !== 'running' || (await new JsonClaims(dataDir).holder(record.name)) !== null
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
  const views: LoopView[] = []
  for (const r of await store.list()) {
    // a record with no usable snapshot is reported; the others are listed
    try {
      views.push(await currentView(dataDir, r))
    } catch (e) {
      err(`loopstate: ${r.name}: its record has no usable snapshot (${message(e)})`)
    }
  }
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

async function controlCommand(
  kind: ControlKind,
  name: string,
  opts: { data?: string } & ProviderFlags,
  text?: string,
): Promise<number> {
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

  // The loop's claim decides: no live process holds it, so the command is applied to the
  // store under this command's own claim; or its owner takes it from the inbox.
  const claims = new JsonClaims(dataDir)
  const got = await claims.claim(name, currentOwner())
  if ('claim' in got) {
    if (kind === 'resume') {
      await claims.release(got.claim)
      return resumeHere(dataDir, name, opts)
    }
    const { applyOffline } = await import('../services/offline.ts')
    let after: LoopRecord
    try {
      after = await applyOffline(store, name, event)
    } finally {
      await claims.release(got.claim)
    }
    if (FINAL.has(after.status) && !(kind === 'cancel' && after.reason === 'user_cancelled')) {
      throw new CliError(`loop ${name} already ended (${after.status})`)
    }
    if (kind === 'say') out(`message queued for loop ${name} (no process runs it; ${after.status}): its next prompt includes it`)
    else out(`loop ${name} ${after.status}${after.reason ? ` (${after.reason})` : ''} (no process runs it: applied to the store)`)
    return 0
  }
  const owner = got.heldBy.pid > 0 ? `pid ${got.heldBy.pid}` : 'another process'
  if (kind === 'resume' && record.status !== 'paused') {
    throw new CliError(`loop ${name} is not paused (${record.status} in ${owner === 'another process' ? owner : `process ${got.heldBy.pid}`})`)
  }

  const file = await sendCommand(dataDir, name, event)
  let deadline = Date.now() + CONTROL_TIMEOUT_MS
  let taken = false
  for (;;) {
    taken ||= await commandTaken(file)
    if (taken && kind === 'say') {
      out(`message delivered to loop ${name} (${owner}): its next prompt includes it`)
      return 0
    }
    const now = taken ? await store.get(name) : null
    if (kind !== 'say' && now && reflects(kind, now)) {
      out(`loop ${name} ${now.status}${now.reason ? ` (${now.reason})` : ''}`)
      return 0
    }
    if (Date.now() > deadline) {
      if (!taken && (await withdrawCommand(file))) {
        throw new CliError(`sent ${kind} to loop ${name} (${owner}) but it did not take it within 5 s; withdrawn: nothing was applied`, 1)
      }
      if (!taken) {
        // taken at the last moment: its owner applies it; give the record the same time to show it
        taken = true
        deadline = Date.now() + CONTROL_TIMEOUT_MS
        continue
      }
      out(`loop ${name}: ${kind} taken by its owner (${owner}); its record does not show it yet`)
      return 0
    }
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}

/** Restores a loop that no process runs (saved by Ctrl-C, paused, queued) and drives it here, like `run`. */
function resumeHere(dataDir: string, name: string, flags: ProviderFlags): Promise<number> {
  return drive(dataDir, {
    providers: flags,
    begin: async (engine) => {
      const handle = await engine.resume(name)
      if (handle.view().status === 'paused') handle.resume()
      return handle
    },
    startedLine: (d) => `loop ${d.name} resumed: ${d.phase}, iteration ${d.iteration}, workspace ${d.workspace}, data ${dataDir}`,
  })
}

function reflects(kind: Exclude<ControlKind, 'say'>, record: LoopRecord): boolean {
  if (FINAL.has(record.status)) return true
  if (kind === 'pause') return record.status === 'paused'
  if (kind === 'resume') return record.status === 'running'
  return false
}

// ---------------------------------------------------------------- resume --all

/** Exit codes of final statuses, worst first: the exit code of `resume --all` is that of its worst loop. */
const WORST_FIRST = ['errored', 'stalled', 'cancelled', 'completed'] as const

/**
 * Restores every unfinished loop of the data dir that no live process runs and
 * follows them until each has ended or is paused. Paused loops stay paused (a
 * `resume` from another terminal carries one on here meanwhile); queued ones
 * start as slots free up.
 */
async function resumeAllCommand(dataDir: string, flags: ProviderFlags & { maxConcurrent?: number }): Promise<number> {
  const engine = await openEngine(dataDir, flags)
  let handles: LoopHandle[] = []
  let progress: Progress | null = null
  const guard = stopOnSignals({
    close: () => engine.close(),
    before: () => progress?.stop(),
    saved: () =>
      handles.length === 0 ? 'stopped before any loop was resumed' : `saved; ${plural(handles.length, 'loop')} stay resumable`,
  })
  try {
    handles = await engine.resumeAll()
  } catch (e) {
    await engine.close()
    throw new CliError(message(e))
  }
  if (guard.stopping) return new Promise(() => {}) // the signal handler exits
  const where = shortPath(dataDir)
  if (handles.length === 0) {
    const elsewhere = (await engine.list()).filter((v) => !FINAL.has(v.status)).length
    await engine.close()
    out(
      `nothing to resume in ${where}/` +
        (elsewhere > 0 ? ` (${plural(elsewhere, 'unfinished loop')} run${elsewhere === 1 ? 's' : ''} in other processes)` : ''),
    )
    return 0
  }

  const width = Math.max(...handles.map((h) => h.name.length))
  const pausedNote = (name: string) => `stays paused; \`loopstate resume ${name} --data ${where}\` carries it on`
  out(`resuming ${plural(handles.length, 'unfinished loop')} of ${where}/:`)
  for (const h of handles) {
    const v = h.view()
    const what =
      v.status === 'paused' ? `paused: ${pausedNote(h.name)}` : v.status === 'queued' ? 'queued' : `${v.phase}, iteration ${v.iteration}`
    out(`  ${h.name.padEnd(width)}  ${what}`)
  }
  if (handles.every((h) => h.view().status === 'paused')) {
    await engine.close()
    out(`nothing to run: ${handles.length === 1 ? 'the loop is' : `all ${handles.length} loops are`} paused`)
    return 0
  }
  out()

  progress = showProgress(handles)
  const keepAlive = setInterval(() => {}, 60_000)
  const ended = new Map<string, { output: LoopOutput } | { crash: unknown }>()
  const unsubscribe: (() => void)[] = []
  // Done when every loop has ended (its last snapshot saved) or waits paused.
  await new Promise<void>((resolveAll) => {
    const check = () => {
      if (handles.every((h) => ended.has(h.name) || h.view().status === 'paused')) resolveAll()
    }
    for (const h of handles) {
      unsubscribe.push(h.subscribe(check))
      h.done.then(
        (output) => (ended.set(h.name, { output }), check()),
        (crash: unknown) => (ended.set(h.name, { crash }), check()),
      )
    }
    check()
  })
  clearInterval(keepAlive)
  unsubscribe.forEach((u) => u())
  progress.stop()
  const rows = handles.map((h) => {
    const result = ended.get(h.name)
    return { name: h.name, view: result && 'crash' in result ? null : h.view(), result }
  })
  await engine.close()
  guard.dispose()

  out()
  out(resultTable(rows))
  const notes: string[] = []
  let code = 0
  for (const { name, view, result } of rows) {
    if (result && 'crash' in result) {
      notes.push(`${name}: crashed: ${oneLine(message(result.crash))}`)
      code = worse(code, EXIT_CODES.errored)
    } else if (result) {
      const { status, error } = result.output
      if (status !== 'completed' && error) notes.push(`${name}: ${oneLine(error.message)}`)
      code = worse(code, EXIT_CODES[status])
    } else if (view?.status === 'paused') {
      notes.push(`${name}: ${pausedNote(name)}`)
    }
  }
  if (notes.length > 0) {
    out()
    for (const n of notes) out(`  ${n}`)
  }
  return code
}

function worse(a: number, b: number): number {
  const rank = (code: number) => WORST_FIRST.findIndex((s) => EXIT_CODES[s] === code)
  return rank(b) < rank(a) ? b : a
}

// ---------------------------------------------------------------- history, fork

async function historyCommand(name: string, opts: { json?: boolean; data?: string }): Promise<number> {
  const dataDir = dataDirOf(opts)
  const store = new JsonStore(dataDir, { onProblem: (m) => err(m) })
  await loadRecord(store, dataDir, name)
  const lines = (await store.history(name)).map(historyLine)
  if (opts.json) {
    out(JSON.stringify(lines, null, 2))
    return 0
  }
  if (lines.length === 0) {
    out(`loop ${name} has no history yet`)
    return 0
  }
  if (lines[0]!.seq > 1) out(`entries before #${lines[0]!.seq} were dropped (the engine keeps the last historyLimit entries, 500 by default)`)
  out(historyTable(lines))
  if (lines.some((l) => l.hasSnapshot)) {
    out(`* a snapshot is kept here: \`loopstate fork ${name} --at <seq>\` starts a new loop from it`)
  }
  return 0
}

interface ForkCommandOptions extends ProviderFlags {
  at: number
  name?: string
  workspace?: string
  data?: string
}

/** A snapshot of a loop that had already ended (forking it would only copy the end). */
const endsLoop = (entry: HistoryEntry) => (entry.snapshot as { status?: string } | undefined)?.status === 'done'

async function forkCommand(name: string, opts: ForkCommandOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const store = new JsonStore(dataDir, { onProblem: (m) => err(m) })
  await loadRecord(store, dataDir, name)
  const entries = await store.history(name)
  const last = entries.at(-1)
  if (last === undefined) throw new CliError(`fork: loop ${name} has no history yet`)
  if (opts.at > last.seq) throw new CliError(`fork: the history of ${name} ends at #${last.seq} (got --at ${opts.at})`)
  const points = entries.filter((e) => e.snapshot !== undefined && !endsLoop(e)).map((e) => `#${e.seq}`)
  const from = entries.filter((e) => e.seq <= opts.at && e.snapshot !== undefined).pop()
  const choices = `snapshots to fork from: ${points.join(', ') || 'none'}`
  if (from === undefined) throw new CliError(`fork: no snapshot at or before #${opts.at} of ${name}; ${choices}`)
  if (endsLoop(from)) throw new CliError(`fork: #${from.seq} is where ${name} ended (${from.to}); ${choices}`)
  return drive(dataDir, {
    providers: opts,
    begin: (engine) => engine.fork(name, { at: from.seq, name: opts.name, workspace: opts.workspace }),
    startedLine: (d) =>
      `loop ${d.name} forked from ${name} #${from.seq} (${from.to}, iteration ${from.iteration}): ` +
      `workspace ${d.workspace}, data ${dataDir}`,
  })
}

// ---------------------------------------------------------------- inspect

async function inspectCommand(opts: { port?: number; host?: string; data?: string }): Promise<number> {
  const { DEFAULT_VIEWER_PORT, startViewer } = await import('../services/inspect/viewer-server.ts')
  const dataDir = dataDirOf(opts)
  let viewer
  try {
    viewer = await startViewer({ dataDir, port: opts.port ?? DEFAULT_VIEWER_PORT, host: opts.host, log: (m) => err(m) })
  } catch (e) {
    throw new CliError(message(e))
  }
  out(`viewer at ${viewer.url} (loops of ${dataDir}; live from the store, or streamed with --inspect ${viewer.inspectUrl})`)
  if (viewer.token !== null) {
    out(`token required on every request (?token=, Authorization: Bearer, or the cookie the page sets): ${viewer.token}`)
    if (opts.host === '0.0.0.0' || opts.host === '::') {
      const { networkInterfaces } = await import('node:os')
      const others = Object.values(networkInterfaces())
        .flat()
        .flatMap((a) => (a && !a.internal && a.family === 'IPv4' ? [a.address] : []))
      for (const ip of others) out(`also at http://${ip}:${viewer.port}/?token=${viewer.token}`)
    }
  }
  out('Ctrl-C stops it')
  return new Promise<number>((resolveExit) => {
    const stop = (code: number) => () => void viewer.close().then(() => resolveExit(code))
    process.once('SIGINT', stop(0))
    process.once('SIGTERM', stop(0))
  })
}

// ---------------------------------------------------------------- clean

async function cleanCommand(name: string, opts: { data?: string }): Promise<number> {
  const dataDir = dataDirOf(opts)
  const store = new JsonStore(dataDir, { onProblem: (m) => err(m) })
  const record = await loadRecord(store, dataDir, name)
  const { createEngine } = await import('../services/engine.ts')
  const engine = await createEngine({ dataDir, resume: false, acceptCommands: false, onProblem: (m) => err(m) })
  try {
    const git = record.snapshot.context.git
    const removed = await engine.clean(name)
    out(
      removed
        ? `removed worktree ${git!.worktree}; branch ${git!.branch} stays`
        : `worktree ${git!.worktree} was already gone; branch ${git!.branch} stays`,
    )
    return 0
  } catch (e) {
    throw new CliError(message(e))
  } finally {
    await engine.close()
  }
}

// ---------------------------------------------------------------- program

function buildProgram(setExit: (code: number) => void): Command {
  const version = (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string })
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
      '\nExit codes: 0 completed, 1 errored, 2 bad usage or input, 3 stalled, 4 cancelled,\n' +
        '130/143 stopped by SIGINT/SIGTERM (the loops are saved and stay resumable).',
    )

  const dataHelp = 'data directory (default: $LOOPSTATE_DATA or ./data)'
  const ollamaHelp = 'Ollama server for ollama:<model> (default: the config file, $OLLAMA_HOST, http://127.0.0.1:11434)'
  const inspectHelp =
    'stream the loop actors to a WebSocket inspector: `loopstate inspect` (default ws://127.0.0.1:4747) or stately.ai/inspect'
  const act =
    <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
    async (...args: A) =>
      setExit(await fn(...args))

  program
    .command('run')
    .description('run a loop on a plan (or a goal) until it ends; Ctrl-C saves it and leaves it resumable')
    .argument('[plan]', 'plan file (markdown; `<!-- section -->` lines split it into sections)')
    .option('--goal <text>', 'work on a goal text instead of a plan file')
    .option(
      '--model <spec>',
      'coder model, e.g. ollama:qwen3:8b or scripted:scenario.json; repeat or comma-separate for a fallback chain',
      collect,
      [],
    )
    .option('--auditor-model <spec>', 'auditor model(s), same form (default: the coder models)', collect, [])
    .option(
      '--workspace <dir>',
      'directory the coder works in (default: the current directory); in a git repository the loop works in a worktree on branch loop/<name>',
    )
    .option('--in-place', 'work in the workspace directory itself even when it is in a git repository')
    .option('--max-iterations <n>', 'rework passes allowed after dirty audits (default 15)', count)
    .option('--name <name>', 'loop name (default: from the plan title)')
    .option('--config <file>', 'JSON file of loop options (maxRetries, stallTimeoutMs, budget, …, ollama: { host, numCtxCap }); flags win')
    .option('--ollama-host <url>', ollamaHelp)
    .option('--inspect [url]', inspectHelp)
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

  program
    .command('history')
    .description("print a loop's transition log; `*` marks the snapshots that fork starts from")
    .argument('<name>', 'loop name')
    .option('--json', 'JSON array of history entries (without the snapshots: hasSnapshot says where one is kept)')
    .option('--data <dir>', dataHelp)
    .action(act((name: string, opts: { json?: boolean; data?: string }) => historyCommand(name, opts)))

  program
    .command('fork')
    .description('start a new loop from a past snapshot of a loop (with a copy of its workspace) and run it here, like run')
    .argument('<name>', 'loop to fork; it is left as it is')
    .requiredOption('--at <seq>', 'history entry (see `loopstate history`): its snapshot, or the nearest earlier one', positive)
    .option('--name <name>', 'name of the new loop (default: <name>-fork)')
    .option('--workspace <dir>', "where the copy of the workspace goes (default: beside the original, '<workspace>.<new name>'); must not exist")
    .option('--ollama-host <url>', ollamaHelp)
    .option('--inspect [url]', inspectHelp)
    .option('--data <dir>', dataHelp)
    .action(act((name: string, opts: ForkCommandOptions) => forkCommand(name, opts)))

  program
    .command('resume')
    .description(
      'resume a paused loop; a loop no process runs (after Ctrl-C, SIGTERM or a crash) is restored and driven here, like run',
    )
    .argument('[name]', 'loop name')
    .option('--all', 'restore every unfinished loop no process runs and drive them here (paused ones stay paused)')
    .option('--max-concurrent <n>', 'with --all: loops run at once (default 3); the others wait as queued', positive)
    .option('--ollama-host <url>', ollamaHelp)
    .option('--inspect [url]', inspectHelp)
    .option('--data <dir>', dataHelp)
    .action(
      act((name: string | undefined, opts: { all?: boolean; data?: string; maxConcurrent?: number } & ProviderFlags) => {
        if (name !== undefined && opts.all) throw new CliError('resume: give a loop name or --all, not both')
        if (opts.maxConcurrent !== undefined && !opts.all) throw new CliError('resume: --max-concurrent goes with --all')
        if (opts.all) return resumeAllCommand(dataDirOf(opts), opts)
        if (name === undefined) throw new CliError('resume: a loop name or --all is required')
        return controlCommand('resume', name, opts)
      }),
    )

  for (const [kind, description] of [
    ['cancel', 'cancel a loop (it ends as cancelled)'],
    ['pause', 'pause a loop (the live model call is aborted; resume continues it)'],
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
    .command('clean')
    .description("remove an ended loop's git worktree (its branch loop/<name> stays)")
    .argument('<name>', 'loop name')
    .option('--data <dir>', dataHelp)
    .action(act((name: string, opts: { data?: string }) => cleanCommand(name, opts)))

  program
    .command('demo')
    .description('run three scripted loops at once (a bug fixed, a sectioned plan, a model fallback)')
    .option('--ollama <model>', 'instead, run the plain-plan demo on a real model of an Ollama server')
    .option('--ollama-host <url>', ollamaHelp)
    .option('--inspect [url]', inspectHelp)
    .option('--data <dir>', dataHelp)
    .action(
      act(async (opts: { data?: string; ollama?: string } & ProviderFlags) => {
        const demo = await import('./demo.ts')
        if (typeof opts.inspect === 'string') {
          const { inspectorUrl } = await import('../services/inspect/stately.ts')
          try {
            inspectorUrl(opts.inspect)
          } catch (e) {
            throw new CliError(message(e))
          }
        }
        if (opts.ollama === undefined) return demo.runDemo({ dataDir: dataDirOf(opts), inspect: opts.inspect })
        const { resolveOllamaHost } = await import('../adapters/ollama-provider.ts')
        let host: string
        try {
          host = resolveOllamaHost(opts.ollamaHost)
        } catch (e) {
          throw new CliError(message(e))
        }
        return demo.runOllamaDemo({ dataDir: dataDirOf(opts), model: opts.ollama, host, inspect: opts.inspect })
      }),
    )

  program
    .command('inspect')
    .description('serve the loop viewer (statecharts, event logs, context, past snapshots) on 127.0.0.1')
    .option('--port <n>', 'port (default 4747; 0 picks a free one)', count)
    .option('--host <host>', 'address to listen on (default 127.0.0.1); a non-loopback one requires the random token printed at start')
    .option('--data <dir>', dataHelp)
    .action(act((opts: { port?: number; host?: string; data?: string }) => inspectCommand(opts)))

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
