/**
 * The model check before a loop is saved (`loopstate run`, and `continue`/`fork`
 * with new models): every model a loop may call, fallbacks included, is asked of its
 * server once, so that a server that is down or a model it does not have is one line
 * at once instead of a loop retrying with backoff and then ending errored.
 *
 * - `ollama:<model>`: the server's `show` of the model (the Ollama provider's
 *   `modelInfo`, as `demo --ollama` asks it); a model without tool calling is refused too.
 * - `openai:<model>` and its presets: `GET <baseURL>/models` (the OpenAI provider's
 *   `checkModel`).
 * - `scripted:<file>`: the scenario file loads.
 * - Other schemes (provider modules of the user's) are not checked.
 *
 * Refused: a server that cannot be reached, answers nothing within `timeoutMs`, or
 * refuses the request; a missing model; a failure the loop could not get past. A
 * server that is up but busy (5xx, 429, a model still loading) passes: the loop's
 * own retries deal with that. Nothing is retried here.
 */
import { resolve } from 'node:path'
import { parseModelSpec } from '../adapters/model-provider.ts'
import type { ResolvedOpenAI } from '../adapters/openai-config.ts'

export interface ModelServers {
  /** The Ollama server of `ollama:` models, e.g. `http://127.0.0.1:11434`. */
  ollamaHost?: string
  /** The server of each OpenAI-compatible scheme (adapters/openai-config.ts `resolveOpenAI`). */
  openai?: Record<string, ResolvedOpenAI>
  /** Where relative `scripted:` paths resolve. @default process.cwd() */
  cwd?: string
  /** Longest wait for one server's answer. @default 10000 */
  timeoutMs?: number
  /** The fetch the HTTP checks use. @default globalThis.fetch */
  fetch?: typeof fetch
}

/** A model that cannot be used, and why (one line). */
export interface ModelProblem {
  spec: string
  message: string
}

/** Failures of a server that is there: the loop's retries get past them. */
const TRANSIENT = new Set(['server_error', 'rate_limited', 'model_loading', 'bad_response', 'stream_cut'])

/** The first problem among `specs` (in their order; each checked once, all at once), or null when every one may be used. */
export async function checkModels(specs: string[], servers: ModelServers = {}): Promise<ModelProblem | null> {
  const unique = [...new Set(specs)]
  const problems = await Promise.all(unique.map((spec) => checkModel(spec, servers)))
  const i = problems.findIndex((p) => p !== null)
  return i < 0 ? null : { spec: unique[i]!, message: problems[i]! }
}

/** Why `spec` cannot be used, or null. */
async function checkModel(spec: string, servers: ModelServers): Promise<string | null> {
  let scheme: string
  let model: string
  try {
    ;({ scheme, model } = parseModelSpec(spec))
  } catch (e) {
    return messageOf(e)
  }
  const timeoutMs = servers.timeoutMs ?? 10_000
  const signal = AbortSignal.timeout(timeoutMs)
  const late = (where: string) => `${scheme}: ${where} did not answer within ${timeoutMs / 1000} s`

  if (scheme === 'scripted') {
    const { loadScenario } = await import('../adapters/scenario.ts')
    return loadScenario(resolve(servers.cwd ?? process.cwd(), model)).then(
      () => null,
      (e: unknown) => messageOf(e),
    )
  }

  if (scheme === 'ollama' && servers.ollamaHost !== undefined) {
    const host = servers.ollamaHost
    const { OllamaProvider, classifyOllamaError } = await import('../adapters/ollama-provider.ts')
    try {
      const info = await new OllamaProvider({ host, ...(servers.fetch ? { fetch: servers.fetch } : {}) }).modelInfo(model, signal)
      if (info.capabilities !== null && !info.capabilities.includes('tools')) {
        return `ollama: model ${model} on ${host} does not support tools; pick a model with tool calling (e.g. qwen3, llama3.1)`
      }
      return null
    } catch (e) {
      if (signal.aborted) return late(host)
      const failure = classifyOllamaError(e, model, host)
      return TRANSIENT.has(failure.code) ? null : failure.message
    }
  }

  const openai = servers.openai?.[scheme]
  if (openai !== undefined) {
    const { OpenAIProvider } = await import('../adapters/openai-provider.ts')
    try {
      await new OpenAIProvider({ ...openai, ...(servers.fetch ? { fetch: servers.fetch } : {}) }).checkModel(model, signal)
      return null
    } catch (e) {
      if (signal.aborted) return late(openai.baseURL)
      const code = (e as { code?: unknown }).code
      return typeof code === 'string' && TRANSIENT.has(code) ? null : messageOf(e)
    }
  }
  return null
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
