/**
 * `scripted:<file>`: deterministic replay of a scenario (adapters/scenario.ts).
 * One instance per loop: it keeps a cursor per role into the scenario.
 */
import { appendFileSync, readFileSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import {
  abortedError,
  ProviderError,
  type ChatRequest,
  type ChatResponse,
  type ModelProvider,
  type ProviderFactory,
  type Role,
  type ToolCall,
} from './model-provider.ts'
import { loadScenario, parseScenarioText, readError, SCENARIO_ERRORS, type Scenario } from './scenario.ts'

/** Streamed text is split into at most this many chunks. */
const MAX_TEXT_CHUNKS = 4

/**
 * Where a scripted provider records its calls: one JSON line per call,
 * `{ loop, role, call, pid, at }` (`call`: the scenario entry it answered with),
 * appended to `file`. Set `LOOPSTATE_SCRIPTED_LOG=<file>` to have every scripted
 * loop of a process log there: with several processes on one data dir it shows
 * which process asked what, and that no answered call was asked twice.
 */
export interface CallLog {
  file: string
  loop: string
}

/** A `ModelProvider` that answers from a scenario, one entry per call and role. */
export class ScriptedProvider implements ModelProvider {
  readonly scheme = 'scripted'
  readonly #scenario: Scenario
  readonly #cursor: Record<Role, number> = { coder: 0, auditor: 0 }
  readonly #log: CallLog | null

  /** @param log where each call is recorded (see `CallLog`), or null */
  constructor(scenario: Scenario, log: CallLog | null = null) {
    this.#scenario = scenario
    this.#log = log
  }

  async contextLength(): Promise<number | null> {
    return this.#scenario.contextLength ?? null
  }

  /** Entries of `role` used so far. */
  consumed(role: Role): number {
    return this.#cursor[role]
  }

  async chat(request: ChatRequest): Promise<ChatResponse> {
    const { role, signal } = request
    if (signal.aborted) throw abortedError()
    // The loop's call index, when given, makes the answer independent of this instance's history.
    const used = request.callIndex ?? this.#cursor[role]
    const entry = this.#scenario[role][used]
    if (!entry) {
      throw new ProviderError(
        `scripted: scenario ${this.#scenario.source} has no more ${role} turns (used ${used})`,
        'scenario_exhausted',
        false,
      )
    }
    this.#cursor[role] = used + 1
    if (this.#log) {
      const line = { loop: this.#log.loop, role, call: used, pid: process.pid, at: new Date().toISOString() }
      appendFileSync(this.#log.file, `${JSON.stringify(line)}\n`)
    }

    if (entry.type === 'hang') return waitForAbort(signal)
    const delayMs = entry.delayMs ?? 0
    await sleep(delayMs, signal)

    if (entry.type === 'error') {
      const kind = SCENARIO_ERRORS[entry.error]
      throw new ProviderError(entry.message ?? kind.message(request.model), entry.error, kind.retryable)
    }

    const content = entry.text ?? ''
    // Ids name the entry, so a call asked again (after a restart) gets the same ids.
    const toolCalls: ToolCall[] = (entry.type === 'tool_calls' ? entry.calls : []).map((call, k) => ({
      id: `${role}-${used + 1}-${k + 1}`,
      name: call.name,
      arguments: structuredClone(call.arguments),
    }))
    for (const text of splitText(content, MAX_TEXT_CHUNKS)) request.onChunk?.({ text })
    for (const toolCall of toolCalls) request.onChunk?.({ toolCall })

    const inputChars = request.messages.reduce((n, m) => n + m.content.length, 0)
    const outputChars = content.length + toolCalls.reduce((n, c) => n + JSON.stringify(c).length, 0)
    return {
      content,
      toolCalls,
      usage: {
        inputTokens: entry.usage?.input ?? Math.ceil(inputChars / 4),
        outputTokens: entry.usage?.output ?? Math.ceil(outputChars / 4),
        durationMs: delayMs,
      },
    }
  }
}

/** Loads `file` and builds a provider on it. */
export async function createScriptedProvider(file: string): Promise<ScriptedProvider> {
  return new ScriptedProvider(await loadScenario(file))
}

/** Like `createScriptedProvider`, synchronously (provider factories are sync). */
export function createScriptedProviderSync(file: string): ScriptedProvider {
  return new ScriptedProvider(readScenarioSync(file))
}

function readScenarioSync(file: string): Scenario {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw readError(file, err)
  }
  return parseScenarioText(text, file)
}

/**
 * The factory for `scripted:<file>`: a fresh provider (fresh cursors) per loop.
 * A file is read and validated once per change (by mtime and size), not once per
 * loop: restoring 1,000 loops of one scenario parses it once.
 * @param baseDir directory relative scenario paths resolve against. @default process.cwd()
 */
export function scriptedFactory(baseDir?: string): ProviderFactory {
  const parsed = new Map<string, { stamp: string; scenario: Scenario }>()
  return (model, loopName) => {
    const file = resolve(baseDir ?? process.cwd(), model)
    let stamp: string
    try {
      const s = statSync(file)
      stamp = `${s.mtimeMs}:${s.size}`
    } catch (err) {
      throw readError(file, err)
    }
    let entry = parsed.get(file)
    if (entry?.stamp !== stamp) {
      entry = { stamp, scenario: readScenarioSync(file) }
      parsed.set(file, entry)
    }
    const log = process.env.LOOPSTATE_SCRIPTED_LOG
    return new ScriptedProvider(entry.scenario, log ? { file: log, loop: loopName } : null)
  }
}

/** Resolves after `ms` (at once for 0); rejects with `abortedError()` on abort, clearing the timer. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(abortedError())
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function waitForAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener('abort', () => reject(abortedError()), { once: true })
  })
}

/** Splits text at word boundaries into at most `max` chunks that join back to it (how replayed text streams). */
export function splitText(text: string, max: number): string[] {
  if (!text) return []
  const words = text.split(/(?<=\s)(?=\S)/)
  const size = Math.ceil(words.length / max)
  const chunks: string[] = []
  for (let i = 0; i < words.length; i += size) chunks.push(words.slice(i, i + size).join(''))
  return chunks
}
