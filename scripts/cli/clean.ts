/** `loopstate clean NAME`: removes an ended loop's git worktree; its branch loop/<name> stays. */
import { loadRecord, openClient } from './client.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag } from './shared.ts'

export async function cleanCommand(cli: Cli, name: string, opts: DataFlag): Promise<number> {
  const dataDir = dataDirOf(opts)
  const record = await loadRecord(openClient(cli, dataDir), dataDir, name)
  const { createEngine } = await import('../../services/engine.ts')
  const engine = await createEngine({ dataDir, resume: false, acceptCommands: false, onProblem: (m) => cli.err(m) })
  try {
    const git = record.snapshot.context.git
    const removed = await engine.clean(name)
    cli.out(
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
