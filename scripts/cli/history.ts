/** `loopstate history NAME`: a loop's transition log; `*` marks the snapshots that fork starts from. */
import { historyLine, historyTable } from '../format.ts'
import { loadHistory } from './client.ts'
import { dataDirOf, type Cli, type DataFlag } from './shared.ts'

export interface HistoryOptions extends DataFlag {
  json?: boolean
}

export async function historyCommand(cli: Cli, name: string, opts: HistoryOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const entries = await loadHistory(cli, dataDir, name)
  const lines = entries.map(historyLine)
  if (opts.json) {
    cli.out(JSON.stringify(lines, null, 2))
    return 0
  }
  if (lines.length === 0) {
    cli.out(`loop ${name} has no history yet`)
    return 0
  }
  if (lines[0]!.seq > 1) cli.out(`entries before #${lines[0]!.seq} were dropped (the engine keeps the last historyLimit entries, 500 by default)`)
  cli.out(historyTable(lines))
  if (lines.some((l) => l.hasSnapshot)) {
    cli.out(`* a snapshot is kept here: \`loopstate fork ${name} --at <seq>\` starts a new loop from it`)
  }
  return 0
}
