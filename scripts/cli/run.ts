/** `loopstate run [PLAN] | --goal TEXT`: starts a loop and drives it here to its end. */
import type { LoopOptions } from '../../services/config.ts'
import type { LoopTaskSpec } from '../../services/engine.ts'
import { readConfigFile } from './config.ts'
import { drive } from './drive.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag, type ProviderFlags } from './shared.ts'

export interface RunOptions extends ProviderFlags, DataFlag {
  goal?: string
  model: string[]
  auditorModel: string[]
  workspace?: string
  inPlace?: boolean
  maxIterations?: number
  check: string[]
  name?: string
  /** The result object as JSON on stdout; every other line on stderr. */
  json?: boolean
}

export async function runCommand(cli: Cli, plan: string | undefined, opts: RunOptions): Promise<number> {
  if (plan !== undefined && opts.goal !== undefined) throw new CliError('run: give a plan file or --goal, not both')
  if (plan === undefined && opts.goal === undefined) throw new CliError('run: a plan file or --goal TEXT is required')
  const { loop: fromFile, providers: settings } = opts.config ? await readConfigFile(opts.config) : { loop: {}, providers: {} }
  const models = opts.model.length > 0 ? opts.model : fromFile.models
  if (!models || models.length === 0) throw new CliError('run: --model is required (e.g. --model scripted:scenario.json)')
  const loopOptions: LoopOptions = { ...fromFile, models }
  if (opts.auditorModel.length > 0) loopOptions.auditorModels = opts.auditorModel
  if (opts.maxIterations !== undefined) loopOptions.maxIterations = opts.maxIterations
  if (opts.check.length > 0) loopOptions.checks = [...(fromFile.checks ?? []), ...(await checksOf(opts.check))]
  const spec: LoopTaskSpec = plan !== undefined ? { planFile: plan } : { goal: opts.goal! }
  const dataDir = dataDirOf(opts)

  return drive(cli, dataDir, {
    providers: { ...opts, settings },
    begin: (engine) =>
      engine.start(spec, { ...loopOptions, name: opts.name, workspace: opts.workspace, inPlace: opts.inPlace }),
    startedLine: (detail) =>
      `loop ${detail.name} started: ${plan !== undefined ? `${detail.kind} plan ${plan}` : 'goal'}, ` +
      `workspace ${detail.workspace}, data ${dataDir}`,
    hintUnfinished: true,
    // every model the loop may call, fallbacks included, before anything is saved
    checkModels: { command: 'run', models: [...models, ...(loopOptions.auditorModels ?? [])] },
    json: opts.json === true,
  })
}

/** `--check "npm test"`: argv split like a shell splits plain words (no shell syntax). */
export async function checksOf(commands: string[]): Promise<{ run: string[] }[]> {
  const { splitCommand } = await import('../../services/run-command.ts')
  return commands.map((command) => {
    let run: string[]
    try {
      run = splitCommand(command)
    } catch (e) {
      throw new CliError(`--check ${JSON.stringify(command)}: ${message(e)}`)
    }
    if (run.length === 0) throw new CliError('--check: the command is empty')
    return { run }
  })
}
