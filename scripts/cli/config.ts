/**
 * The `--config` JSON file: loop options (every LoopOptions field, for `run`) and
 * the provider sections every command that runs loops reads: `ollama: { host,
 * numCtxCap }`, `openai: { baseURL, apiKeyEnv, headers, contextLength }` and
 * `providers: { scheme: "./file.js" }` (paths relative to the config file).
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { OpenAIConfig } from '../../adapters/openai-config.ts'
import type { LoopOptions } from '../../services/config.ts'
import { CliError, message } from './shared.ts'

/** The `ollama` section of a `--config` file. */
export interface OllamaConfig {
  host?: string
  numCtxCap?: number
}

/** Where the model providers are, from a config file. */
export interface ProviderSettings {
  ollama?: OllamaConfig
  openai?: OpenAIConfig
  /** Provider modules by scheme, as absolute paths. */
  providers?: Record<string, string>
}

export interface ConfigFile {
  loop: Partial<LoopOptions>
  providers: ProviderSettings
}

/** Reads and checks a `--config` file; a bad one is a one-line CliError naming the file and the field. */
export async function readConfigFile(file: string): Promise<ConfigFile> {
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
  if ((json as { openai?: { apiKey?: unknown } } | null)?.openai?.apiKey !== undefined) {
    throw new CliError(`config: ${file}: openai.apiKey: keys are read from the environment only; name the variable in openai.apiKeyEnv`)
  }
  const { loopOptionsSchema } = await import('../../services/config.ts')
  const z = await import('zod/mini')
  const nonEmpty = z.string().check(z.minLength(1))
  const schema = z.extend(z.partial(loopOptionsSchema), {
    ollama: z.optional(z.strictObject({ host: z.optional(nonEmpty), numCtxCap: z.optional(z.int().check(z.positive())) })),
    openai: z.optional(
      z.strictObject({
        baseURL: z.optional(nonEmpty),
        apiKeyEnv: z.optional(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'))),
        headers: z.optional(z.record(z.string(), z.string())),
        contextLength: z.optional(z.int().check(z.positive())),
      }),
    ),
    providers: z.optional(z.record(z.string(), nonEmpty)),
  })
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new CliError(`config: ${file}: ${where}${issue.message}`)
  }
  const { ollama, openai, providers, ...loop } = parsed.data
  const base = dirname(resolve(file))
  return {
    loop,
    providers: {
      ...(ollama ? { ollama } : {}),
      ...(openai ? { openai } : {}),
      ...(providers ? { providers: Object.fromEntries(Object.entries(providers).map(([s, f]) => [s, resolve(base, f)])) } : {}),
    },
  }
}
