/**
 * Every failure of an OpenAI-compatible server, classified once into a
 * `ProviderError` (docs/models.md lists them with what to do). Servers word the
 * same failure differently (OpenAI's `code`, vLLM's top-level `message`,
 * llama.cpp's `type`), and some send a failure with an unexpected status (a model
 * without tools as a 500 or a 404), so the message is read before the status.
 */
import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai'
import { abortedError, ProviderError } from './model-provider.ts'
import { causeMessage, isAbortError, isTerminated, NETWORK_CODES, networkCode, oneLine, redact } from './provider-errors.ts'

/** Who failed, for the message: the scheme, the model, the server, where the key comes from. */
export interface OpenAIFailureContext {
  scheme: string
  model: string
  /** The base URL as shown (no credentials). */
  server: string
  keyEnv?: string
  /** Whether a key was sent. */
  hasKey: boolean
  /** Values that must not appear in a message (the key, header values). */
  secrets: readonly string[]
}

/** The response stream ended before the message did (no `finish_reason`). */
export class StreamCutError extends Error {
  override readonly name = 'StreamCutError'
}

const NO_TOOLS =
  /does not support tools|tools? (?:use |calling )?(?:is |are )?not supported|not support(?:ed)? (?:for )?tool|requires --jinja|enable-auto-tool-choice|tool-call-parser|no endpoints found that support tool/i
const CONTEXT =
  /context[_ ]length[_ ]exceeded|maximum context length|exceeds? the (?:available )?context|context (?:size|window) (?:has been )?exceeded|exceed_context_size|prompt is too long|too many tokens|reduce the length of the messages/i
const QUOTA = /insufficient_quota|exceeded your current quota|insufficient (?:credits|balance|funds)|billing/i

/**
 * Retryable: connection refused or reset, timeouts, 408, 409, 429 (with the
 * server's `Retry-After`), 5xx, a stream cut mid-message or not JSON, an error
 * event inside the stream. Fatal: the context window exceeded, a model without
 * tool support, 401/403, 404 (model or URL), quota or credits used up, other 4xx.
 * An abort is `abortedError()`; a `ProviderError` passes through. Every message
 * is one line with the secrets taken out.
 */
export function classifyOpenAIError(err: unknown, ctx: OpenAIFailureContext): ProviderError {
  if (err instanceof ProviderError) return err
  if (isAbortError(err)) return abortedError()
  const fail = (code: string, text: string, retryable: boolean, retryAfterMs?: number) =>
    new ProviderError(redact(`${ctx.scheme}: ${oneLine(text)}`, ctx.secrets), code, retryable, retryAfterMs !== undefined ? { retryAfterMs } : {})
  const { server, model } = ctx

  if (err instanceof APIConnectionTimeoutError) return fail('timeout', `${server} did not answer in time`, true)
  if (err instanceof APIConnectionError) return network(err, ctx, fail)
  if (err instanceof APIError) {
    const text = apiMessage(err)
    const known = byMessage(err, text, ctx)
    if (known) return fail(known.code, known.text, known.retryable)
    // No status: an error event inside the stream (a runner that died, an overloaded upstream).
    if (err.status === undefined) return fail('server_error', `${server} reported an error for ${model} mid-answer: ${text}`, true)
    return byStatus(err.status, text, err, ctx, fail)
  }
  if (err instanceof StreamCutError || isTerminated(err)) return fail('stream_cut', `${server} cut the response stream of ${model} mid-message`, true)
  if (err instanceof SyntaxError) return fail('bad_response', `${server} sent a stream event that is not JSON (${err.message})`, true)
  const code = networkCode(err)
  if (code !== undefined && NETWORK_CODES[code]) return network(err, ctx, fail)
  const message = err instanceof Error ? err.message : String(err)
  return fail('internal', `${model} on ${server}: ${message}`, false)
}

type Fail = (code: string, text: string, retryable: boolean, retryAfterMs?: number) => ProviderError

function network(err: unknown, ctx: OpenAIFailureContext, fail: Fail): ProviderError {
  const code = networkCode(err)
  const known = code !== undefined ? NETWORK_CODES[code] : undefined
  if (known) {
    const hint = known.code === 'connection_refused' ? '; is the server running, and is the base URL right?' : ''
    return fail(known.code, `cannot reach ${ctx.server}: ${known.what}${hint} (${code})`, true)
  }
  const message = err instanceof Error ? (causeMessage(err) ?? err.message) : String(err)
  return fail('connection_failed', `cannot reach ${ctx.server}: ${message}`, true)
}

/** Failures recognised by what the server says, whatever the status. */
function byMessage(err: APIError, text: string, ctx: OpenAIFailureContext): { code: string; text: string; retryable: boolean } | null {
  const { server, model } = ctx
  const code = typeof err.code === 'string' ? err.code : ''
  if (NO_TOOLS.test(text)) {
    return {
      code: 'no_tools',
      text:
        `model ${model} on ${server} cannot call tools (${text}); pick a model with tool calling, or start the server ` +
        'with tool calls enabled (llama.cpp: --jinja; vLLM: --enable-auto-tool-choice --tool-call-parser <parser>)',
      retryable: false,
    }
  }
  if (code === 'context_length_exceeded' || CONTEXT.test(text) || err.status === 413) {
    const window = /maximum context length is (\d+)|"?n_ctx"?\D{0,3}(\d+)/i.exec(`${text} ${JSON.stringify(err.error ?? {})}`)
    const size = window?.[1] ?? window?.[2]
    return {
      code: 'context_length',
      text:
        `the conversation no longer fits the context window of ${model} on ${server} (${text}); ` +
        `set "contextLength"${size ? `: ${size}` : ''} in the config's openai section so loopstate shortens old tool outputs ` +
        'before the window fills, or give the server a larger context (llama.cpp: --ctx-size; vLLM: --max-model-len)',
      retryable: false,
    }
  }
  if (code === 'insufficient_quota' || err.status === 402 || (err.status === 429 && QUOTA.test(text))) {
    return { code: 'quota', text: `${server} refused ${model}: the account's quota or credits are used up (${text}); check its plan and billing`, retryable: false }
  }
  return null
}

function byStatus(status: number, text: string, err: APIError, ctx: OpenAIFailureContext, fail: Fail): ProviderError {
  const { server, model } = ctx
  const keyHint = ctx.hasKey
    ? `check the key in ${ctx.keyEnv ?? 'the key variable'}`
    : `no key was sent: set ${ctx.keyEnv ?? 'OPENAI_API_KEY'} (or "apiKeyEnv" in the config's openai section)`
  if (status === 401) return fail('unauthorized', `${server} refused the request (401: ${text}); ${keyHint}`, false)
  if (status === 403) return fail('forbidden', `${server} does not allow ${model} for this key (403: ${text}); ${keyHint}`, false)
  if (status === 404) {
    if (/model/i.test(text) || err.code === 'model_not_found') {
      return fail('model_not_found', `model ${model} is not served by ${server} (${text}); \`curl ${server}/models\` lists the ones it has`, false)
    }
    return fail('not_found', `${server} answered 404 (${text}); is the base URL right? It usually ends in /v1`, false)
  }
  if (status === 429) {
    const wait = retryAfterMs(err.headers)
    return fail('rate_limited', `${server} is rate limiting (429: ${text})${wait !== undefined ? `; it asks to wait ${Math.ceil(wait / 1000)} s` : ''}`, true, wait)
  }
  if (status === 408) return fail('timeout', `${server} timed out the request (408: ${text})`, true)
  if (status === 409) return fail('server_error', `${server} answered 409 (${text})`, true)
  if (status >= 500) return fail('server_error', `${server} failed (${status}: ${text})`, true)
  return fail('bad_request', `${server} rejected the request for ${model} (${status}: ${text})`, false)
}

/** The server's message without the client's `<status> ` prefix. */
function apiMessage(err: APIError): string {
  const text = err.status !== undefined ? err.message.replace(new RegExp(`^${err.status} `), '') : err.message
  return oneLine(text).slice(0, 400)
}

/** `retry-after-ms`, else `Retry-After` in seconds or as an HTTP date; undefined when absent or nonsense. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  const ms = Number(headers?.get('retry-after-ms') ?? NaN)
  if (Number.isFinite(ms) && ms >= 0) return ms
  const value = headers?.get('retry-after')?.trim()
  if (!value) return undefined
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000)
  const date = Date.parse(value)
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined
}
