/** `loopstate run [PLAN] | --goal TEXT`: starts a loop and drives it here to its end. */
import { readFile } from 'node:fs/promises'
import type { LoopOptions } from '../../services/config.ts'
import type { LoopTaskSpec } from '../../services/engine.ts'
import { drive, type OllamaConfig } from './drive.ts'
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
  config?: string
}

export async function runCommand(cli: Cli, plan: string | undefined, opts: RunOptions): Promise<number> {
  if (plan !== undefined && opts.goal !== undefined) throw new CliError('run: give a plan file or --goal, not both')
  if (plan === undefined && opts.goal === undefined) throw new CliError('run: a plan file or --goal TEXT is required')
  const { loop: fromFile, ollama } = opts.config ? await readConfigFile(opts.config) : { loop: {}, ollama: {} }
  const models = opts.model.length > 0 ? opts.model : fromFile.models
  if (!models || models.length === 0) throw new CliError('run: --model is required (e.g. --model scripted:scenario.json)')
  const loopOptions: LoopOptions = { ...fromFile, models }
  if (opts.auditorModel.length > 0) loopOptions.auditorModels = opts.auditorModel
  if (opts.maxIterations !== undefined) loopOptions.maxIterations = opts.maxIterations
  if (opts.check.length > 0) loopOptions.checks = [...(fromFile.checks ?? []), ...(await checksOf(opts.check))]
  const spec: LoopTaskSpec = plan !== undefined ? { planFile: plan } : { goal: opts.goal! }
  const dataDir = dataDirOf(opts)

  return drive(cli, dataDir, {
    providers: { ...opts, ollama },
    begin: (engine) =>
      engine.start(spec, { ...loopOptions, name: opts.name, workspace: opts.workspace, inPlace: opts.inPlace }),
    startedLine: (detail) =>
      `loop ${detail.name} started: ${plan !== undefined ? `${detail.kind} plan ${plan}` : 'goal'}, ` +
      `workspace ${detail.workspace}, data ${dataDir}`,
    hintUnfinished: true,
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

/**
 * Reads a `--config` JSON file: loop options (every LoopOptions field, `models`
 * optional) and an optional `ollama: { host, numCtxCap }` section.
 */
async function readConfigFile(file: string): Promise<{ loop: Partial<LoopOptions>; ollama: OllamaConfig }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new CliError(`config: ${file}: ${code === 'ENOENT' ? 'file not found' : message(e)}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw new CliError(`config: ${file}: not valid JSON (${message(e)})`)
  }
  const { loopOptionsSchema } = await import('../../services/config.ts')
  const z = await import('zod/mini')
  const schema = z.extend(z.partial(loopOptionsSchema), {
    ollama: z.optional(
      z.strictObject({
        host: z.optional(z.string().check(z.minLength(1))),
        numCtxCap: z.optional(z.int().check(z.positive())),
      }),
    ),
  })
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new CliError(`config: ${file}: ${where}${issue.message}`)
  }
  const { ollama, ...loop } = parsed.data
  return { loop, ollama: ollama ?? {} }
}
