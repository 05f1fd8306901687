/**
 * `loopstate diff NAME`: what the loop changed (services/workspace-diff.ts): a git
 * loop's branch and worktree against its base, or, in a plain directory, the files
 * its tools wrote. `--json` prints the `WorkspaceDiff`.
 */
import type { TranscriptSession } from '../../adapters/snapshot-store.ts'
import { loadRecord, openClient } from './client.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag } from './shared.ts'

export interface DiffOptions extends DataFlag {
  json?: boolean
  /** Only the files and their status. */
  stat?: boolean
}

export async function diffCommand(cli: Cli, name: string, opts: DiffOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const client = openClient(cli, dataDir)
  const record = await loadRecord(client, dataDir, name)
  const { loopDiff } = await import('../../services/workspace-diff.ts')
  let diff
  try {
    // a git loop's diff needs no transcript
    const journal: TranscriptSession[] | undefined = record.snapshot.context.git ? undefined : await client.transcript(name)
    diff = await loopDiff(record, journal !== undefined ? { journal } : {})
  } catch (e) {
    throw new CliError(`diff: loop ${name}: ${message(e)}`, 1)
  }
  if (opts.json) {
    cli.out(JSON.stringify(diff, null, 2))
    return 0
  }
  const lines = diff.text.replace(/\n$/, '').split('\n')
  if (opts.stat) {
    for (const line of lines.filter((l) => l.startsWith('# '))) cli.out(line)
    for (const f of diff.files) cli.out(`${f.status.padEnd(8)} ${f.path}`)
    return 0
  }
  const s = cli.term.style
  for (const line of lines) {
    if (!s.enabled) cli.out(line)
    else if (line.startsWith('# ')) cli.out(s.dim(line))
    else if (/^(diff --git|--- |\+\+\+ )/.test(line)) cli.out(s.bold(line))
    else if (line.startsWith('@@')) cli.out(s.cyan(line))
    else if (line.startsWith('+')) cli.out(s.green(line))
    else if (line.startsWith('-')) cli.out(s.red(line))
    else cli.out(line)
  }
  return 0
}
