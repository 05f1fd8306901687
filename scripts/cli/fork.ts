/** `loopstate fork NAME --at SEQ`: a new loop from a past snapshot of a loop, driven here like `run`. */
import type { HistoryEntry } from '../../adapters/snapshot-store.ts'
import { loadHistory } from './client.ts'
import { drive } from './drive.ts'
import { checksOf } from './run.ts'
import { CliError, dataDirOf, type Cli, type DataFlag, type ProviderFlags } from './shared.ts'

export interface ForkOptions extends ProviderFlags, DataFlag {
  at: number
  name?: string
  workspace?: string
  say?: string
  model: string[]
  check: string[]
}

/** A snapshot of a loop that had already ended (forking it would only copy the end). */
const endsLoop = (entry: HistoryEntry) => entry.snapshot?.status === 'done'

export async function forkCommand(cli: Cli, name: string, opts: ForkOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const entries = await loadHistory(cli, dataDir, name)
  const last = entries.at(-1)
  if (last === undefined) throw new CliError(`fork: loop ${name} has no history yet`)
  if (opts.at > last.seq) throw new CliError(`fork: the history of ${name} ends at #${last.seq} (got --at ${opts.at})`)
  const points = entries.filter((e) => e.snapshot !== undefined && !endsLoop(e)).map((e) => `#${e.seq}`)
  const from = entries.filter((e) => e.seq <= opts.at && e.snapshot !== undefined).pop()
  const choices = `snapshots to fork from: ${points.join(', ') || 'none'}`
  if (from === undefined) throw new CliError(`fork: no snapshot at or before #${opts.at} of ${name}; ${choices}`)
  if (endsLoop(from)) throw new CliError(`fork: #${from.seq} is where ${name} ended (${from.to}); ${choices}`)
  return drive(cli, dataDir, {
    providers: opts,
    checkModels: { command: 'fork', models: opts.model },
    begin: async (engine) =>
      engine.fork(name, {
        at: from.seq,
        name: opts.name,
        workspace: opts.workspace,
        ...(opts.say !== undefined ? { say: opts.say } : {}),
        ...(opts.model.length > 0 ? { models: opts.model } : {}),
        ...(opts.check.length > 0 ? { checks: await checksOf(opts.check) } : {}),
      }),
    startedLine: (d) =>
      `loop ${d.name} forked from ${name} #${from.seq} (${from.to}, iteration ${from.iteration}): ` +
      `workspace ${d.workspace}, data ${dataDir}`,
  })
}
