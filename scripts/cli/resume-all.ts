/**
 * `loopstate resume --all`: restores every unfinished loop of the data dir that no
 * live process runs and follows them until each has ended or is paused. Paused
 * loops stay paused (a `resume` from another terminal carries one on here
 * meanwhile); queued ones start as slots free up.
 */
import type { LoopOutput } from '../../machines/loop.types.ts'
import type { LoopHandle } from '../../services/engine.ts'
import { FINAL } from '../../services/engine/types.ts'
import { showProgress, stopOnSignals, type Progress } from '../follow.ts'
import { oneLine, plural, resultTable, shortPath } from '../format.ts'
import { openEngine, type EngineFlags } from './drive.ts'
import { CliError, EXIT_CODES, message, type Cli } from './shared.ts'

/** Final statuses, worst first: the exit code of `resume --all` is that of its worst loop. */
const WORST_FIRST = ['errored', 'stalled', 'cancelled', 'completed'] as const

export async function resumeAllCommand(cli: Cli, dataDir: string, flags: EngineFlags): Promise<number> {
  const engine = await openEngine(cli, dataDir, flags)
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
    cli.out(
      `nothing to resume in ${where}/` +
        (elsewhere > 0 ? ` (${plural(elsewhere, 'unfinished loop')} run${elsewhere === 1 ? 's' : ''} in other processes)` : ''),
    )
    return 0
  }

  const width = Math.max(...handles.map((h) => h.name.length))
  const pausedNote = (name: string) => `stays paused; \`loopstate resume ${name} --data ${where}\` carries it on`
  cli.out(`resuming ${plural(handles.length, 'unfinished loop')} of ${where}/:`)
  for (const h of handles) {
    const v = h.view()
    const what =
      v.status === 'paused' ? `paused: ${pausedNote(h.name)}` : v.status === 'queued' ? 'queued' : `${v.phase}, iteration ${v.iteration}`
    cli.out(`  ${h.name.padEnd(width)}  ${what}`)
  }
  if (handles.every((h) => h.view().status === 'paused')) {
    await engine.close()
    cli.out(`nothing to run: ${handles.length === 1 ? 'the loop is' : `all ${handles.length} loops are`} paused`)
    return 0
  }
  cli.out()

  progress = showProgress(handles, { detail: (name) => engine.get(name) })
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
  await progress.stop()
  const rows = handles.map((h) => {
    const result = ended.get(h.name)
    return { name: h.name, view: result && 'crash' in result ? null : h.view(), result }
  })
  await engine.close()
  guard.dispose()

  cli.out()
  cli.out(resultTable(rows, cli.term.style, cli.term.columns))
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
    cli.out()
    for (const n of notes) cli.out(`  ${n}`)
  }
  return code
}

function worse(a: number, b: number): number {
  const rank = (code: number) => WORST_FIRST.findIndex((s) => EXIT_CODES[s] === code)
  return rank(b) < rank(a) ? b : a
}
