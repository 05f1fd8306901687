/**
 * Where an OpenAI-compatible model server is and how to reach it: the generic
 * `openai:` scheme, the named presets of the common servers (`openrouter:`,
 * `llamacpp:` …), and the order in which flags, the config file and the
 * environment decide. The key itself is only ever read from the environment
 * here and handed to the provider; it is never part of a loop's config, so it
 * is never saved (docs/models.md).
 */

import type { ModelProvider, ProviderFactory } from './model-provider.ts'

/** A server the CLI knows by name: its base URL and the variable its key is read from. */
export interface OpenAIPreset {
  baseURL: string
  /** The environment variable holding the API key; unset for servers that take none. */
  keyEnv?: string
  /** A hosted API that answers 401 to a request without a key: fail before sending one. */
  requiresKey?: boolean
  /** What the server is, for messages and `--help`. */
  description: string
}

/**
 * The schemes served by the OpenAI provider. `openai` is the generic one: its base
 * URL and key variable can be changed (`--openai-base-url`, config `openai`,
 * `OPENAI_BASE_URL`); the others are fixed shortcuts (use `openai:` with a base URL
 * for a server on another address).
 */
export const OPENAI_PRESETS = {
  openai: { baseURL: 'https://api.openai.com/v1', keyEnv: 'OPENAI_API_KEY', description: 'OpenAI, or any OpenAI-compatible server with --openai-base-url' },
  openrouter: { baseURL: 'https://openrouter.ai/api/v1', keyEnv: 'OPENROUTER_API_KEY', requiresKey: true, description: 'OpenRouter' },
  groq: { baseURL: 'https://api.groq.com/openai/v1', keyEnv: 'GROQ_API_KEY', requiresKey: true, description: 'Groq' },
  together: { baseURL: 'https://api.together.xyz/v1', keyEnv: 'TOGETHER_API_KEY', requiresKey: true, description: 'Together AI' },
  deepseek: { baseURL: 'https://api.deepseek.com/v1', keyEnv: 'DEEPSEEK_API_KEY', requiresKey: true, description: 'DeepSeek' },
  mistral: { baseURL: 'https://api.mistral.ai/v1', keyEnv: 'MISTRAL_API_KEY', requiresKey: true, description: 'Mistral' },
  llamacpp: { baseURL: 'http://127.0.0.1:8080/v1', keyEnv: 'LLAMACPP_API_KEY', description: "llama.cpp's llama-server on its default port" },
  vllm: { baseURL: 'http://127.0.0.1:8000/v1', keyEnv: 'VLLM_API_KEY', description: 'vLLM on its default port' },
  lmstudio: { baseURL: 'http://127.0.0.1:1234/v1', description: "LM Studio's server on its default port" },
  litellm: { baseURL: 'http://127.0.0.1:4000/v1', keyEnv: 'LITELLM_API_KEY', description: 'a LiteLLM proxy on its default port' },
} as const satisfies Record<string, OpenAIPreset>

export type OpenAIScheme = keyof typeof OPENAI_PRESETS

/** The `openai` section of a `--config` file (and of `openaiProviders`' options). */
export interface OpenAIConfig {
  /** The server's base URL, usually ending in `/v1`. @default $OPENAI_BASE_URL, else https://api.openai.com/v1 */
  baseURL?: string
  /** The environment variable the API key is read from (the key itself never goes into a config). @default 'OPENAI_API_KEY' */
  apiKeyEnv?: string
  /** Extra headers on every request (e.g. for a proxy). Their values are treated as secrets. */
  headers?: Record<string, string>
  /**
   * The model's context window in tokens, for the session's shortening of old tool
   * outputs. @default the server's model listing where it says, else 32768
   */
  contextLength?: number
}

/** What the provider of one scheme is built from. */
export interface ResolvedOpenAI {
  scheme: string
  baseURL: string
  apiKey?: string
  /** The variable the key was (or would have been) read from, for messages. */
  keyEnv?: string
  requiresKey: boolean
  headers?: Record<string, string>
  contextLength?: number
}

/**
 * The server of `scheme`: for `openai`, the flag, else the config's `baseURL`,
 * else `OPENAI_BASE_URL`, else OpenAI's own API; the key from the config's
 * `apiKeyEnv` (default `OPENAI_API_KEY`). A preset has its fixed base URL and key
 * variable. Throws a one-line error for a base URL that is not http(s).
 */
export function resolveOpenAI(
  scheme: OpenAIScheme,
  options: { flagBaseURL?: string; config?: OpenAIConfig; env?: Record<string, string | undefined> } = {},
): ResolvedOpenAI {
  const env = options.env ?? process.env
  const preset: OpenAIPreset = OPENAI_PRESETS[scheme]
  const config = scheme === 'openai' ? (options.config ?? {}) : {}
  const given = (v: string | undefined) => (v !== undefined && v.trim() !== '' ? v.trim() : undefined)
  const baseURL =
    scheme === 'openai'
      ? (given(options.flagBaseURL) ?? given(config.baseURL) ?? given(env.OPENAI_BASE_URL) ?? preset.baseURL)
      : preset.baseURL
  const keyEnv = config.apiKeyEnv ?? preset.keyEnv
  const apiKey = keyEnv !== undefined ? given(env[keyEnv]) : undefined
  return {
    scheme,
    baseURL: normalizeBaseURL(baseURL, scheme),
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(keyEnv !== undefined ? { keyEnv } : {}),
    requiresKey: preset.requiresKey === true || (scheme === 'openai' && isOpenAIHost(baseURL)),
    ...(config.headers ? { headers: config.headers } : {}),
    ...(config.contextLength !== undefined ? { contextLength: config.contextLength } : {}),
  }
}

/**
 * The factory of one scheme that loads the `openai` client only when a loop first
 * calls a model of it: every command that runs loops builds the factories of all the
 * schemes, and most loops use none of them.
 */
export function lazyOpenAIFactory(resolved: ResolvedOpenAI): ProviderFactory {
  return () => {
    let provider: Promise<ModelProvider> | null = null
    const load = () => (provider ??= import('./openai-provider.ts').then((m) => new m.OpenAIProvider(resolved)))
    return {
      scheme: resolved.scheme,
      chat: async (request) => (await load()).chat(request),
      contextLength: async (model, signal) => (await (await load()).contextLength?.(model, signal)) ?? null,
    }
  }
}

/** The base URL without a trailing slash; throws for one that is not an http(s) URL. */
export function normalizeBaseURL(text: string, scheme = 'openai'): string {
  let url: URL
  try {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text.trim())) throw new Error('no scheme')
    url = new URL(text.trim())
  } catch {
    throw new Error(`${scheme}: base URL '${text}' is not a URL (e.g. http://127.0.0.1:8080/v1)`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${scheme}: base URL '${text}' must be http or https`)
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1'
  return url.href.replace(/\/+$/, '')
}

/** The base URL as messages show it: without user and password. */
export function displayURL(baseURL: string): string {
  try {
    const url = new URL(baseURL)
    url.username = ''
    url.password = ''
    return url.href.replace(/\/+$/, '')
  } catch {
    return baseURL
  }
}

function isOpenAIHost(baseURL: string): boolean {
  try {
    return new URL(baseURL).hostname === 'api.openai.com'
  } catch {
    return false
  }
}
