/**
 * `loopstate list`: the loops of the data dir, newest first, with how long ago they
 * were made, filtered by `--status` and cut to the `--limit` newest; a loop that has
 * not ended and that no process runs is marked, with the command that carries it on.
 * (Records the store quarantines are reported on stderr.) `--json` keeps its order,
 * oldest first, and gives each loop's `owner`.
 */
import { resolve } from 'node:path'
import type { LoopView } from '../../services/views.ts'
import { FINAL } from '../../services/engine/types.ts'
import { listTable, newestFirst, orphanNotes, plural, shortPath } from '../format.ts'
import { openClient } from './client.ts'
import { dataDirOf, type Cli, type DataFlag } from './shared.ts'

export interface ListOptions extends DataFlag {
  json?: boolean
  /** Only the loops of these statuses. */
  status?: string[]
  /** Only the newest N. */
  limit?: number
}

export async function listCommand(cli: Cli, opts: ListOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const client = openClient(cli, dataDir)
  const all = await client.list()
  // who runs each unfinished loop (an ended one is run by nobody)
  const views: LoopView[] = []
  for (const v of all) views.push({ ...v, owner: FINAL.has(v.status) ? null : ((await client.owner(v.name))?.pid ?? null) })
  const wanted = opts.status && opts.status.length > 0 ? new Set(opts.status) : null
  const matching = newestFirst(views.filter((v) => wanted === null || wanted.has(v.status)))
  const shown = opts.limit === undefined ? matching : matching.slice(0, opts.limit)
  if (opts.json) {
    const keep = new Set(shown.map((v) => v.name))
    cli.out(JSON.stringify(views.filter((v) => keep.has(v.name)), null, 2))
    return 0
  }
  if (shown.length === 0) {
    cli.out(
      views.length === 0
        ? `no loops in ${dataDir}`
        : `no ${[...(wanted ?? [])].join(' or ')} loops in ${dataDir} (${plural(views.length, 'loop')} in all)`,
    )
    return 0
  }
  const { style, columns } = cli.term
  cli.out(listTable(shown, { style, width: columns }))
  if (shown.length < matching.length) {
    cli.out(style.dim(`the ${shown.length} newest of ${plural(matching.length, wanted ? 'matching loop' : 'loop')}; without --limit, all of them`))
  }
  const notes = orphanNotes(shown, dataFlag(dataDir), style)
  if (notes.length > 0) {
    cli.out()
    for (const n of notes) cli.out(n)
  }
  return 0
}

/** ` --data DIR` for a command line to run from here, or nothing when DIR is where loopstate looks by default. */
export function dataFlag(dataDir: string): string {
  return dataDir === resolve(process.env.LOOPSTATE_DATA ?? 'data') ? '' : ` --data ${shortPath(dataDir)}`
}
