/**
 * `loopstate prune --older-than 7d [--worktree] [--dry-run]`: removes the loops that
 * ended (completed, cancelled, errored, stalled) longer ago than the duration, by
 * their record's `updatedAt`, oldest first, each as `loopstate rm` removes one. Unfinished loops,
 * newer ones and everything of them are left alone.
 */
import type { LoopRecord } from '../../adapters/snapshot-store.ts'
import { FINAL } from '../../services/engine/types.ts'
import { plural, shortPath } from '../format.ts'
import { openClient } from './client.ts'
import { removeLoop } from './rm.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag } from './shared.ts'

export interface PruneOptions extends DataFlag {
  /** `--older-than`, in ms (main.ts parses `7d`). */
  olderThan: number
  worktree?: boolean
  dryRun?: boolean
}

/** Units of `--older-than` (main.ts parses it). */
const UNITS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const

/** A duration as given: `7d`, `12h`, `30m`, `45s` (the largest unit it is a whole number of). */
export function durationText(ms: number): string {
  for (const unit of ['d', 'h', 'm'] as const) if (ms % UNITS[unit] === 0) return `${ms / UNITS[unit]}${unit}`
  return `${Math.round(ms / 1000)}s`
}

/** An age, rounded down to its largest unit: `9d`, `3h`, `12m`, `40s`. */
function ageText(ms: number): string {
  for (const unit of ['d', 'h', 'm'] as const) if (ms >= UNITS[unit]) return `${Math.floor(ms / UNITS[unit])}${unit}`
  return `${Math.floor(Math.max(0, ms) / 1000)}s`
}

export async function pruneCommand(cli: Cli, opts: PruneOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const client = openClient(cli, dataDir)
  let records: LoopRecord[]
  try {
    records = await client.store.list()
  } catch (e) {
    throw new CliError(message(e))
  }
  const now = Date.now()
  const limit = durationText(opts.olderThan)
  const age = (r: LoopRecord) => now - Date.parse(r.updatedAt)
  const old = records.filter((r) => FINAL.has(r.status) && age(r) > opts.olderThan).sort((a, b) => age(b) - age(a))
  if (old.length === 0) {
    cli.out(`nothing to prune: no loop of ${shortPath(dataDir)}/ ended more than ${limit} ago`)
    return 0
  }
  let failed = 0
  for (const r of old) {
    const what = `${r.name} (${r.status}, ended ${ageText(age(r))} ago)`
    if (opts.dryRun) {
      const git = r.snapshot.context.git
      cli.out(`would remove ${what}${opts.worktree && git ? ` and its worktree ${git.worktree}` : ''}`)
      continue
    }
    try {
      const [first, ...rest] = await removeLoop(client, dataDir, r.name, { worktree: opts.worktree })
      cli.out(`${first!.replace(/^removed loop \S+ \(\w+\)/, `removed ${what}`)}`)
      for (const line of rest) cli.out(`  ${line}`)
    } catch (e) {
      failed++
      cli.err(`prune: ${r.name}: ${message(e)}`)
    }
  }
  const kept = records.length - old.length
  const done = old.length - failed
  cli.out(
    opts.dryRun
      ? `would prune ${plural(old.length, 'loop')} that ended more than ${limit} ago; ${kept} kept (dry run: nothing removed)`
      : `pruned ${plural(done, 'loop')} that ended more than ${limit} ago; ${kept} kept${failed > 0 ? `; ${failed} could not be removed` : ''}`,
  )
  return failed > 0 ? 1 : 0
}
