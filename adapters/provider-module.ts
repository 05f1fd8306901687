/**
 * A user's own model provider, loaded from an ES module: `--provider [scheme=]file`
 * on the CLI, `providers: { <scheme>: file }` in the config file. The module's
 * default export is a `ProviderFactory`; it names its scheme with
 * `export const scheme = '…'` unless the caller gives one.
 *
 * The providers it makes are untrusted input, so the factory handed back guards
 * them: every answer is checked before the session sees it (a malformed one is a
 * fatal `bad_response` naming what is wrong; only a missing `toolCalls` or `usage`
 * is filled in), every failure becomes a `ProviderError`, and an abort ends a call
 * at once even when the provider ignores its signal.
 */
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  abortedError,
  ProviderError,
  raceAbort,
  type ChatRequest,
  type ChatResponse,
  type ChatUsage,
  type ModelProvider,
  type ProviderFactory,
  type ToolCall,
} from './model-provider.ts'

/** What a scheme may look like (the part of a model spec before `:`; services/config.ts checks specs alike). */
export const SCHEME_PATTERN = /^[a-z][a-z0-9+.-]*$/

/** Longest message of a provider's own error kept in the loop's record. */
const MAX_MESSAGE_CHARS = 500

export interface LoadProviderOptions {
  /** The scheme to register the provider under; wins over the module's `export const scheme`. */
  scheme?: string
  /** Directory a relative `file` resolves against. @default process.cwd() */
  cwd?: string
  /** Schemes loopstate serves itself (scripted, ollama, openai and its presets): a module may not take one. */
  builtIn?: readonly string[]
}

export interface ProviderModule {
  scheme: string
  /** The module's factory, guarded (see the header): register it with `createEngine({ providers: { [scheme]: factory } })`. */
  factory: ProviderFactory
  /** The module's absolute path. */
  file: string
}

/** A provider module that cannot be used; the message is one line, `provider: <file>: …`. */
export class ProviderModuleError extends Error {
  override readonly name = 'ProviderModuleError'
}

/**
 * Loads a provider module: an ES module (.js/.mjs, or anything Node can import)
 * whose default export is a ProviderFactory `(model, loopName) => ModelProvider`,
 * and which names its scheme by `export const scheme = 'echo'` unless the caller
 * gives one. `file` resolves against `cwd` and is imported by file URL.
 *
 * Throws a `ProviderModuleError` (`provider: <file>: …`) for a file that is not
 * there, a module that fails to import (its error's first line), a default export
 * that is missing or not a function, no scheme, a scheme that is not
 * `[a-z][a-z0-9+.-]*`, and a scheme in `builtIn`. The factory's own failures (it
 * throws, or makes something without a `chat` function) are thrown when the engine
 * calls it, naming the module.
 */
export async function loadProviderModule(file: string, options: LoadProviderOptions = {}): Promise<ProviderModule> {
  const fail = (what: string) => new ProviderModuleError(`provider: ${file}: ${what}`)
  const builtIn = options.builtIn ?? []
  // A given scheme is checked before the module runs any of its code.
  if (options.scheme !== undefined) checkScheme(options.scheme, 'given', builtIn, fail)

  const path = resolve(options.cwd ?? process.cwd(), file)
  try {
    if (!(await stat(path)).isFile()) throw fail(`${path} is not a file`)
  } catch (err) {
    if (err instanceof ProviderModuleError) throw err
    const code = (err as NodeJS.ErrnoException).code
    throw fail(code === 'ENOENT' || code === 'ENOTDIR' ? `not found (${path})` : `cannot read it (${firstLine(err)})`)
  }

  let mod: Record<string, unknown>
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>
  } catch (err) {
    throw fail(`cannot import it: ${firstLine(err)}`)
  }

  const factory = mod.default
  if (factory === undefined) {
    throw fail('has no default export; export default a ProviderFactory: (model, loopName) => provider')
  }
  if (typeof factory !== 'function') {
    throw fail(`its default export is ${describe(factory)}, not a ProviderFactory function: (model, loopName) => provider`)
  }

  let scheme = options.scheme
  if (scheme === undefined) {
    const exported = mod.scheme
    if (exported === undefined) {
      throw fail(`names no scheme: add export const scheme = '<name>' to it, or give one (<name>=${file})`)
    }
    if (typeof exported !== 'string') throw fail(`its scheme export is ${describe(exported)}, not a string`)
    checkScheme(exported, 'exported', builtIn, fail)
    scheme = exported
  }
  return { scheme, factory: guardFactory(factory as ProviderFactory, scheme, file), file: path }
}

function checkScheme(
  scheme: string,
  source: 'given' | 'exported',
  builtIn: readonly string[],
  fail: (what: string) => ProviderModuleError,
): void {
  const named = `scheme '${scheme}'${source === 'exported' ? ' (its scheme export)' : ''}`
  if (!SCHEME_PATTERN.test(scheme)) {
    throw fail(`${named} is not valid: a lowercase letter, then lowercase letters, digits, '+', '.' or '-' (e.g. echo, my-llm)`)
  }
  if (builtIn.includes(scheme)) throw fail(`${named} is built into loopstate; pick another name`)
}

/** The user's factory, with its failures named and every provider it makes guarded. */
function guardFactory(factory: ProviderFactory, scheme: string, file: string): ProviderFactory {
  return (model, loopName) => {
    let made: unknown
    try {
      made = factory(model, loopName)
    } catch (err) {
      throw new ProviderModuleError(`provider: ${file}: its factory failed for model '${model}': ${firstLine(err)}`)
    }
    if (isThenable(made)) {
      // Its rejection, if any, is nobody's to handle: the loop gets the error below.
      made.then(undefined, () => {})
      throw new ProviderModuleError(
        `provider: ${file}: its factory returned a Promise; a ProviderFactory returns the provider itself (do async set-up in chat)`,
      )
    }
    if (made === null || typeof made !== 'object' || typeof (made as { chat?: unknown }).chat !== 'function') {
      throw new ProviderModuleError(`provider: ${file}: its factory returned ${describe(made)} without a chat function, not a ModelProvider`)
    }
    return guardProvider(made as ModelProvider, { scheme, file })
  }
}

interface Origin {
  scheme: string
  file: string
}

/** `inner` behind the checks of the header; `scheme` is the resolved one, whatever `inner` says. */
function guardProvider(inner: ModelProvider, origin: Origin): ModelProvider {
  const contextLength = inner.contextLength
  return {
    scheme: origin.scheme,
    chat: (request) => guardedChat(inner, request, origin),
    ...(typeof contextLength === 'function'
      ? {
          contextLength: async (model: string, signal: AbortSignal) => {
            let value: unknown
            try {
              value = await raceAbort(signal, () => contextLength.call(inner, model, signal))
            } catch (err) {
              if (signal.aborted) throw abortedError()
              throw classifyFailure(err, origin, 'contextLength: ')
            }
            // Anything but a positive integer means "unknown": the session then never shortens.
            return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null
          },
        }
      : {}),
  }
}

async function guardedChat(inner: ModelProvider, request: ChatRequest, origin: Origin): Promise<ChatResponse> {
  const { signal } = request
  const started = Date.now()
  let ended = false
  const onChunk = request.onChunk
  const asked: ChatRequest = {
    ...request,
    // Copies: the messages are the loop's transcript, which a provider must not be able to change.
    messages: structuredClone(request.messages),
    tools: structuredClone(request.tools),
    // Chunks after the call ended (a provider that ignored the abort streams on) are no activity of the loop.
    onChunk: (chunk) => {
      if (!ended) onChunk?.(chunk)
    },
  }
  let answer: unknown
  try {
    answer = await raceAbort(signal, () => inner.chat(asked))
  } catch (err) {
    if (signal.aborted) throw abortedError()
    throw classifyFailure(err, origin, '')
  } finally {
    ended = true
  }
  if (signal.aborted) throw abortedError()
  return checkResponse(answer, request, Date.now() - started, origin)
}

/**
 * A failure of the user's provider as a `ProviderError`: one passes through; so
 * does one from another copy of loopstate (a module's own `ProviderError` import is
 * not this one), recognized by `name`, `code` and `retryable`; anything else is a
 * fatal `provider_error`.
 */
function classifyFailure(err: unknown, origin: Origin, what: string): ProviderError {
  if (err instanceof ProviderError) return err
  if (isProviderErrorLike(err)) {
    const after = err.retryAfterMs
    const options = typeof after === 'number' && Number.isFinite(after) && after >= 0 ? { retryAfterMs: after } : {}
    return new ProviderError(err.message, err.code, err.retryable, options)
  }
  return new ProviderError(`provider ${origin.scheme}: ${what}${errorText(err)}`, 'provider_error', false)
}

function isProviderErrorLike(err: unknown): err is Error & { code: string; retryable: boolean; retryAfterMs?: unknown } {
  return (
    err instanceof Error &&
    err.name === 'ProviderError' &&
    typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { retryable?: unknown }).retryable === 'boolean'
  )
}

/**
 * The answer as a `ChatResponse`, rebuilt from the fields it should have (nothing
 * else reaches the journal). A missing `toolCalls` is `[]`; a missing `usage` is
 * estimated (characters / 4, the call's measured duration). Anything else that is
 * not as the contract says is a fatal `bad_response` naming the field.
 */
function checkResponse(answer: unknown, request: ChatRequest, measuredMs: number, origin: Origin): ChatResponse {
  const bad = (what: string) => new ProviderError(`provider ${origin.scheme} (${origin.file}): ${what}`, 'bad_response', false)
  if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) {
    throw bad(`the answer is ${describe(answer)}; expected an object { content, toolCalls, usage }`)
  }
  const raw = answer as Record<string, unknown>
  const content = raw.content
  if (typeof content !== 'string') throw bad(`content is ${describe(content)}; expected a string`)

  const toolCalls: ToolCall[] = []
  if (raw.toolCalls !== undefined) {
    if (!Array.isArray(raw.toolCalls)) throw bad(`toolCalls is ${describe(raw.toolCalls)}; expected an array`)
    const seen = new Map<string, number>()
    const earlier = new Set(request.messages.flatMap((m) => (m.role === 'assistant' ? (m.toolCalls ?? []).map((c) => c.id) : [])))
    raw.toolCalls.forEach((call: unknown, i) => {
      const at = `toolCalls[${i}]`
      const toolCall = checkToolCall(call, at, bad)
      const first = seen.get(toolCall.id)
      // The session matches results to calls by id: a call whose id is taken would never run.
      if (first !== undefined) throw bad(`${at}.id '${toolCall.id}' repeats toolCalls[${first}].id; each call needs its own id`)
      if (earlier.has(toolCall.id)) {
        throw bad(`${at}.id '${toolCall.id}' is the id of an earlier call in this session; ids must be unique in the session`)
      }
      seen.set(toolCall.id, i)
      toolCalls.push(toolCall)
    })
  }

  let usage: ChatUsage
  if (raw.usage === undefined) {
    const inputChars = request.messages.reduce((n, m) => n + m.content.length, 0)
    const outputChars = content.length + toolCalls.reduce((n, c) => n + JSON.stringify(c).length, 0)
    usage = { inputTokens: Math.ceil(inputChars / 4), outputTokens: Math.ceil(outputChars / 4), durationMs: measuredMs }
  } else {
    const u = raw.usage
    if (u === null || typeof u !== 'object' || Array.isArray(u)) {
      throw bad(`usage is ${describe(u)}; expected { inputTokens, outputTokens, durationMs }`)
    }
    const field = (key: keyof ChatUsage): number => {
      const value = (u as Record<string, unknown>)[key]
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        throw bad(`usage.${key} is ${describe(value)}; expected a finite number >= 0`)
      }
      return value
    }
    usage = { inputTokens: field('inputTokens'), outputTokens: field('outputTokens'), durationMs: field('durationMs') }
  }
  return { content, toolCalls, usage }
}

function checkToolCall(call: unknown, at: string, bad: (what: string) => ProviderError): ToolCall {
  if (call === null || typeof call !== 'object' || Array.isArray(call)) {
    throw bad(`${at} is ${describe(call)}; expected { id, name, arguments }`)
  }
  const c = call as Record<string, unknown>
  for (const key of ['id', 'name'] as const) {
    if (typeof c[key] !== 'string' || c[key] === '') {
      throw bad(`${at}.${key} is ${c[key] === '' ? 'empty' : describe(c[key])}; expected a non-empty string`)
    }
  }
  const args = c.arguments
  if (!isPlainObject(args)) {
    const hint = typeof args === 'string' ? ' (parse a JSON string first)' : ''
    throw bad(`${at}.arguments is ${describe(args)}; expected a plain object${hint}`)
  }
  // The journal keeps arguments as JSON: what does not survive that is refused now, not at the next save.
  let copy: Record<string, unknown>
  try {
    copy = JSON.parse(JSON.stringify(args)) as Record<string, unknown>
  } catch (err) {
    throw bad(`${at}.arguments cannot be saved as JSON (${firstLine(err)})`)
  }
  const argumentsError = c.argumentsError
  if (argumentsError !== undefined && typeof argumentsError !== 'string') {
    throw bad(`${at}.argumentsError is ${describe(argumentsError)}; expected a string or nothing`)
  }
  return {
    id: c.id as string,
    name: c.name as string,
    arguments: copy,
    ...(argumentsError !== undefined ? { argumentsError } : {}),
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function'
}

/** A value as an error message shows it: its type, or itself for small ones. */
function describe(value: unknown): string {
  if (value === undefined) return 'missing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return String(value)
    case 'object':
      return isThenable(value) ? 'a Promise' : 'an object'
    default:
      return `a ${typeof value}`
  }
}

/** The first line of an error's message (an import's syntax error comes with a code frame). */
function firstLine(err: unknown): string {
  const text = rawText(err)
  return clip(text.split(/\r?\n/).find((line) => line.trim() !== '')?.trim() ?? '')
}

/** What a thrown value says, on one line. */
function errorText(err: unknown): string {
  return clip(rawText(err).replace(/\s*\n\s*/g, ' ').trim())
}

function rawText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name
  if (typeof err === 'string') return err
  return `threw ${describe(err)}`
}

/** Not too long for a one-line record; never empty. */
function clip(text: string): string {
  if (text === '') return 'failed without a message'
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS)}…` : text
}
