/**
 * Running loops in this process (run, resume, fork, resume --all): an engine on the
 * data dir with the providers and inspector of the flags, and one loop followed to
 * its end with a progress line.
 */
import { resolve } from 'node:path'
import type { ProviderFactory } from '../../adapters/model-provider.ts'
import type { ResolvedOpenAI } from '../../adapters/openai-config.ts'
import type { LoopOutput } from '../../machines/loop.types.ts'
import type { Engine, LoopHandle } from '../../services/engine.ts'
import type { LoopDetail } from '../../services/views.ts'
import { preloadProgress, showProgress, stopOnSignals, type Progress } from '../follow.ts'
import { plural, resultLine, shortPath } from '../format.ts'
import { readConfigFile, type ProviderSettings } from './config.ts'
import { CliError, EXIT_CODES, message, type Cli, type ProviderFlags } from './shared.ts'

export type EngineFlags = ProviderFlags & {
  /** The provider sections of a config file the command read already (`run`). */
  settings?: ProviderSettings
  maxConcurrent?: number
}

/**
 * The model servers the flags and the config file name: the config's provider
 * sections (read once: `settings` when the command read the file already), Ollama's
 * host (flag, config, OLLAMA_HOST) and the server of every OpenAI-compatible scheme
 * (adapters/openai-config.ts). A bad address is bad input.
 */
async function serversOf(flags: EngineFlags): Promise<{ settings: ProviderSettings; ollamaHost: string; openai: Record<string, ResolvedOpenAI> }> {
  const settings = flags.settings ?? (flags.config ? (await readConfigFile(flags.config)).providers : {})
  const { resolveOllamaHost } = await import('../../adapters/ollama-provider.ts')
  const { OPENAI_PRESETS, resolveOpenAI } = await import('../../adapters/openai-config.ts')
  try {
    const openai: Record<string, ResolvedOpenAI> = {}
    for (const scheme of Object.keys(OPENAI_PRESETS) as (keyof typeof OPENAI_PRESETS)[]) {
      openai[scheme] = resolveOpenAI(scheme, { flagBaseURL: flags.openaiBaseUrl, config: settings.openai })
    }
    return { settings, ollamaHost: resolveOllamaHost(flags.ollamaHost, settings.ollama?.host), openai }
  } catch (e) {
    throw new CliError(message(e))
  }
}

/**
 * Model providers beyond `scripted`: Ollama and every OpenAI-compatible scheme on
 * their servers (serversOf), and the provider modules of `--provider` and the
 * config's `providers`.
 */
async function providersFor(flags: EngineFlags): Promise<Record<string, ProviderFactory>> {
  const { settings, ollamaHost, openai } = await serversOf(flags)
  const { ollamaFactory } = await import('../../adapters/ollama-provider.ts')
  const { lazyOpenAIFactory } = await import('../../adapters/openai-config.ts')
  const factories: Record<string, ProviderFactory> = {}
  try {
    factories.ollama = ollamaFactory({ host: ollamaHost, numCtxCap: settings.ollama?.numCtxCap })
  } catch (e) {
    throw new CliError(message(e))
  }
  for (const [scheme, server] of Object.entries(openai)) factories[scheme] = lazyOpenAIFactory(server)
  const modules: { scheme?: string; file: string; cwd?: string }[] = [
    ...Object.entries(settings.providers ?? {}).map(([scheme, file]) => ({ scheme, file })),
    ...(flags.provider ?? []).map(providerFlag),
  ]
  if (modules.length > 0) {
    const { loadProviderModule } = await import('../../adapters/provider-module.ts')
    const builtIn = ['scripted', ...Object.keys(factories)]
    for (const m of modules) {
      let loaded
      try {
        loaded = await loadProviderModule(m.file, { builtIn, ...(m.scheme !== undefined ? { scheme: m.scheme } : {}) })
      } catch (e) {
        throw new CliError(message(e))
      }
      factories[loaded.scheme] = loaded.factory
    }
  }
  return factories
}

/** `--provider [scheme=]file`: a scheme before `=` names the provider, else the module does. */
function providerFlag(value: string): { scheme?: string; file: string } {
  const m = /^([a-z][a-z0-9+.-]*)=(.+)$/.exec(value)
  return m ? { scheme: m[1]!, file: m[2]! } : { file: value }
}

/** An engine on `dataDir` that restores nothing by itself: each command picks the loops it drives. */
export async function openEngine(cli: Cli, dataDir: string, flags: EngineFlags = {}): Promise<Engine> {
  const providers = await providersFor(flags)
  // The engine (with zod and xstate) loads on demand: `list` and `status` start faster without it.
  const { createEngine } = await import('../../services/engine.ts')
  const { closeWithEngine, inspectorFor } = await import('../inspector-flag.ts')
  let inspector
  try {
    inspector = inspectorFor(flags.inspect, (m) => cli.err(m))
  } catch (e) {
    throw new CliError(message(e))
  }
  if (inspector) cli.err(`streaming inspection events to ${inspector.url} (\`loopstate inspect\` shows them; so does stately.ai/inspect)`)
  const engine = await createEngine({
    dataDir,
    onProblem: (m) => cli.err(m),
    resume: false,
    providers,
    inspect: inspector?.inspect,
    ...(flags.maxConcurrent !== undefined ? { maxConcurrentLoops: flags.maxConcurrent } : {}),
  })
  return closeWithEngine(engine, inspector)
}

export interface DriveOptions {
  /** Where the providers of the loop's models are. */
  providers?: EngineFlags
  /** Starts (restores, forks) the loop to follow. */
  begin: (engine: Engine) => Promise<LoopHandle>
  /** The line printed once it runs. */
  startedLine: (detail: LoopDetail) => string
  /** Mention the other unfinished loops of the data dir (for `run`). */
  hintUnfinished?: boolean
  /**
   * The models the loop will call that are checked before the engine opens
   * (services/model-check.ts): a server down or a model it lacks is one line, exit 2,
   * and nothing is written. `command` names the command in that line.
   */
  checkModels?: { command: string; models: string[] }
  /** `--json`: the result object on stdout; the started, progress and saved lines on stderr. */
  json?: boolean
}

/** What `run --json` prints when the loop ends: its output, the exit code, and its detail as `status --json` shows it. */
export type RunResult = LoopOutput & { exitCode: number; detail: LoopDetail | null }

/**
 * Creates an engine on `dataDir`, lets `begin` start a loop on it, and follows
 * that loop to its end with a progress line. SIGINT/SIGTERM save it (exit 130/143)
 * and print the command that resumes it; so does a closed stdout (EPIPE, exit 141).
 * Resolves to the exit code of the loop's final status.
 */
export async function drive(
  cli: Cli,
  dataDir: string,
  { providers, begin, startedLine, hintUnfinished = false, checkModels, json = false }: DriveOptions,
): Promise<number> {
  // The config file is read once, for the check and the engine both.
  if (providers?.config !== undefined && providers.settings === undefined) providers = { ...providers, settings: (await serversOf(providers)).settings }
  if (checkModels && checkModels.models.length > 0) await checkModelsOf(checkModels.command, checkModels.models, providers)
  const engine = await openEngine(cli, dataDir, providers)
  let handle: LoopHandle | undefined
  let progress: Progress | null = null
  let ended: LoopOutput | null = null
  const guard = stopOnSignals({
    close: () => engine.close(),
    before: () => void progress?.stop(),
    saved: () => {
      if (!handle) return 'stopped before the loop started'
      if (ended) return resultLine(handle.view(), ended.error)
      return `saved; loop ${handle.name} stays resumable: ${resumeCommandOf(handle.name, dataDir, providers)}`
    },
    savedTo: json ? 'stderr' : 'stdout',
  })

  await preloadProgress(json ? process.stderr : process.stdout)
  try {
    handle = await begin(engine)
  } catch (e) {
    await engine.close()
    throw new CliError(message(e))
  }
  if (guard.stopping) return new Promise(() => {}) // the signal handler exits
  if (hintUnfinished) {
    const others = await engine.unfinished()
    if (others.length > 0) cli.err(unfinishedHint(dataDir, others))
  }
  const detail = await engine.get(handle.name)
  if (detail) (json ? cli.err : cli.out)(startedLine(detail))
  progress = showProgress([handle], { detail: (name) => engine.get(name), ...(json ? { stream: process.stderr } : {}) })
  // The engine's timers do not hold the process open; a paused loop must still hear `resume`.
  const keepAlive = setInterval(() => {}, 60_000)
  let output: LoopOutput
  try {
    output = await handle.done
  } catch (e) {
    progress.stop()
    await engine.close()
    throw new CliError(`loop ${handle.name} crashed: ${message(e)}`, EXIT_CODES.errored)
  } finally {
    clearInterval(keepAlive)
  }
  ended = output
  await progress.stop()
  const view = handle.view()
  if (json) {
    const result: RunResult = { ...output, exitCode: EXIT_CODES[output.status], detail: await engine.get(handle.name) }
    await engine.close()
    cli.out(JSON.stringify(result, null, 2))
    return EXIT_CODES[output.status]
  }
  await engine.close()
  cli.out(resultLine(view, output.error, cli.term.style))
  return EXIT_CODES[output.status]
}

/**
 * The command that carries a stopped loop on, with the flags of this command that
 * say where its models are: `loopstate resume x --data /abs/data --ollama-host …`
 * (files made absolute, words quoted for a POSIX shell where needed).
 */
export function resumeCommandOf(name: string, dataDir: string, flags: EngineFlags = {}): string {
  const args = ['loopstate', 'resume', name, '--data', resolve(dataDir)]
  if (flags.ollamaHost !== undefined) args.push('--ollama-host', flags.ollamaHost)
  if (flags.openaiBaseUrl !== undefined) args.push('--openai-base-url', flags.openaiBaseUrl)
  for (const value of flags.provider ?? []) {
    const { scheme, file } = providerFlag(value)
    args.push('--provider', scheme !== undefined ? `${scheme}=${resolve(file)}` : resolve(file))
  }
  if (flags.config !== undefined) args.push('--config', resolve(flags.config))
  return args.map(shellWord).join(' ')
}

function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/**
 * Checks the models before anything is saved (services/model-check.ts), on the
 * servers the flags and the config file name; a problem is bad input (exit 2).
 */
export async function checkModelsOf(command: string, models: string[], flags: EngineFlags = {}): Promise<void> {
  const { ollamaHost, openai } = await serversOf(flags)
  const { checkModels } = await import('../../services/model-check.ts')
  const servers = { ollamaHost, openai }
  const problem = await checkModels(models, servers)
  if (problem !== null) throw new CliError(`${command}: cannot use ${problem.spec}: ${problem.message}`)
}

/** `data/ holds 2 unfinished loops (a, b) that no process runs; …` */
function unfinishedHint(dataDir: string, names: string[]): string {
  const shown = names.length > 5 ? [...names.slice(0, 5), '…'] : names
  return (
    `${shortPath(dataDir)}/ holds ${plural(names.length, 'unfinished loop')} (${shown.join(', ')}) that no process runs; ` +
    `\`loopstate resume --all --data ${shortPath(dataDir)}\` carries ${names.length === 1 ? 'it' : 'them'} on`
  )
}
