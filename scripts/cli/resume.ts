/**
 * `loopstate resume NAME | --all`: a paused loop some process runs is resumed there;
 * a loop no process runs is restored and driven here, like `run`.
 */
import { controlCommand } from './control.ts'
import { drive } from './drive.ts'
import { resumeAllCommand } from './resume-all.ts'
import { CliError, dataDirOf, type Cli, type DataFlag, type ProviderFlags } from './shared.ts'

export interface ResumeOptions extends ProviderFlags, DataFlag {
  all?: boolean
  maxConcurrent?: number
}

export async function resumeCommand(cli: Cli, name: string | undefined, opts: ResumeOptions): Promise<number> {
  if (name !== undefined && opts.all) throw new CliError('resume: give a loop name or --all, not both')
  if (opts.maxConcurrent !== undefined && !opts.all) throw new CliError('resume: --max-concurrent goes with --all')
  if (opts.all) return resumeAllCommand(cli, dataDirOf(opts), opts)
  if (name === undefined) throw new CliError('resume: a loop name or --all is required')
  return controlCommand(cli, 'resume', name, opts, { unowned: () => resumeHere(cli, dataDirOf(opts), name, opts) })
}

/** Restores a loop that no process runs (saved by Ctrl-C, paused, queued) and drives it here, like `run`. */
function resumeHere(cli: Cli, dataDir: string, name: string, flags: ProviderFlags): Promise<number> {
  return drive(cli, dataDir, {
    providers: flags,
    begin: async (engine) => {
      const handle = await engine.resume(name)
      if (handle.view().status === 'paused') handle.resume()
      return handle
    },
    startedLine: (d) => `loop ${d.name} resumed: ${d.phase}, iteration ${d.iteration}, workspace ${d.workspace}, data ${dataDir}`,
  })
}
