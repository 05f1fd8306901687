/**
 * `loopstate rm NAME [--worktree] [--force]`: removes a loop from the data dir (its
 * record, history, journal, waiting commands and leftover claims: services/client.ts
 * `remove`), and with `--worktree` its git worktree (the branch stays). A loop a live
 * process runs is refused (cancel it first); so is one that has not ended, which
 * stays resumable, unless `--force`.
 */
import type { LoopRecord, RemovedLoop } from '../../adapters/snapshot-store.ts'
import { RemoveRefused, type LoopClient } from '../../services/client.ts'
import { plural } from '../format.ts'
import { openClient, refusal } from './client.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag } from './shared.ts'

export interface RmOptions extends DataFlag {
  /** Remove its git worktree too. */
  worktree?: boolean
  /** Remove a loop that has not ended (no process runs it). */
  force?: boolean
}

export async function rmCommand(cli: Cli, name: string, opts: RmOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  for (const line of await removeLoop(openClient(cli, dataDir), dataDir, name, opts)) cli.out(line)
  return 0
}

/** Removes one loop (and with `worktree` its worktree); the lines that say what went. Refusals are CliErrors. */
export async function removeLoop(client: LoopClient, dataDir: string, name: string, opts: RmOptions): Promise<string[]> {
  let worktree: string | null = null
  let result: { record: LoopRecord; removed: RemovedLoop }
  try {
    result = await client.remove(name, {
      force: opts.force === true,
      // the worktree goes first, under the loop's claim: when it cannot, nothing is removed
      before: async (record) => {
        const git = record.snapshot.context.git
        if (!opts.worktree || !git) return
        const { removeWorktree } = await import('../../services/git-workspace.ts')
        try {
          worktree = (await removeWorktree(git)) ? `removed worktree ${git.worktree}` : `worktree ${git.worktree} was already gone`
        } catch (e) {
          throw new CliError(`rm: loop ${name}: could not remove its worktree ${git.worktree} (${message(e)}); nothing was removed`, 1)
        }
      },
    })
  } catch (e) {
    if (e instanceof CliError) throw e
    if (e instanceof RemoveRefused) throw new CliError(`rm: ${e.message}${e.code === 'unfinished' ? ' (rm --force)' : ''}`)
    throw refusal(e, name, dataDir)
  }
  const { record, removed } = result
  const lines = [`removed loop ${name} (${record.status}): ${removedParts(removed)}`]
  const git = record.snapshot.context.git
  if (git) {
    lines.push(
      worktree !== null
        ? `${worktree}; branch ${git.branch} stays`
        : `its worktree ${git.worktree} and branch ${git.branch} stay (rm --worktree removes the worktree)`,
    )
  }
  return lines
}

/** `record, history, journal, 1 waiting command` */
export function removedParts(r: RemovedLoop): string {
  const parts = [
    ...(r.record ? ['record'] : []),
    ...(r.history ? ['history'] : []),
    ...(r.journal ? ['journal'] : []),
    ...(r.commands > 0 ? [plural(r.commands, 'waiting command')] : []),
    ...(r.claims > 0 ? [plural(r.claims, 'claim') + ' of a process that is gone'] : []),
  ]
  return parts.join(', ') || 'nothing was left of it'
}
