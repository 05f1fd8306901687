/**
 * `loopstate history NAME`: a loop's transition log, in the user's words and times
 * ago (`--raw`: the statechart's event and state names, local times); `*` marks the
 * snapshots that fork starts from. `--json` is the log as stored (ISO times, raw names).
 */
import { historyLine, historyTable } from '../format.ts'
import { loadHistory } from './client.ts'
import { dataDirOf, type Cli, type DataFlag } from './shared.ts'

export interface HistoryOptions extends DataFlag {
  json?: boolean
  raw?: boolean
}

export async function historyCommand(cli: Cli, name: string, opts: HistoryOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const entries = await loadHistory(cli, dataDir, name)
  if (opts.json) {
    cli.out(JSON.stringify(entries.map(historyLine), null, 2))
    return 0
  }
  if (entries.length === 0) {
    cli.out(`loop ${name} has no history yet`)
    return 0
  }
  const { style, columns } = cli.term
  if (entries[0]!.seq > 1) {
    cli.out(style.dim(`entries before #${entries[0]!.seq} were dropped (the engine keeps the last historyLimit entries, 500 by default)`))
  }
  cli.out(historyTable(entries, { style, width: columns, raw: opts.raw === true }))
  if (entries.some((e) => e.snapshot !== undefined)) {
    cli.out(style.dim(`* a snapshot is kept here: \`loopstate fork ${name} --at <seq>\` starts a new loop from it`))
  }
  return 0
}
