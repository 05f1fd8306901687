/**
 * Scripted scenarios: the replay script of the `scripted` provider (and of the
 * Ollama-compatible test server). A file is `{ "coder": [Entry…], "auditor": [Entry…] }`;
 * each model call of a role consumes that role's next entry.
 */
import { readFile } from 'node:fs/promises'
import * as z from 'zod/mini'
import type { ZodIssue } from './zod.ts'
import './zod.ts'

const usageSchema = z.strictObject({
  input: z.int().check(z.nonnegative()),
  output: z.int().check(z.nonnegative()),
})

const delayMs = z.optional(z.int().check(z.nonnegative()))

/** Failures an `error` entry can simulate, with whether retrying can help and a default message. */
export const SCENARIO_ERRORS = {
  ECONNREFUSED: { retryable: true, message: () => 'connect ECONNREFUSED 127.0.0.1:11434' },
  ECONNRESET: { retryable: true, message: () => 'read ECONNRESET' },
  ETIMEDOUT: { retryable: true, message: () => 'connect ETIMEDOUT 127.0.0.1:11434' },
  rate_limited: { retryable: true, message: () => 'rate limited (429 Too Many Requests)' },
  server_error: { retryable: true, message: () => 'server error (500 Internal Server Error)' },
  model_not_found: { retryable: false, message: (model: string) => `model '${model}' not found` },
  unauthorized: { retryable: false, message: () => 'unauthorized (401)' },
} as const satisfies Record<string, { retryable: boolean; message: (model: string) => string }>

export type ScenarioErrorCode = keyof typeof SCENARIO_ERRORS

const errorCodes = Object.keys(SCENARIO_ERRORS) as [ScenarioErrorCode, ...ScenarioErrorCode[]]

/** One scripted model answer. */
export const entrySchema = z.discriminatedUnion('type', [
  // the assistant answers with text and no tool call
  z.strictObject({ type: z.literal('text'), text: z.string(), delayMs, usage: z.optional(usageSchema) }),
  // the assistant asks for tool calls (optionally with some text)
  z.strictObject({
    type: z.literal('tool_calls'),
    calls: z
      .array(z.strictObject({ name: z.string().check(z.minLength(1)), arguments: z.record(z.string(), z.unknown()) }))
      .check(z.minLength(1)),
    text: z.optional(z.string()),
    delayMs,
    usage: z.optional(usageSchema),
  }),
  // the call fails (after delayMs)
  z.strictObject({ type: z.literal('error'), error: z.enum(errorCodes), message: z.optional(z.string()), delayMs }),
  // the call never answers; only its AbortSignal ends it
  z.strictObject({ type: z.literal('hang') }),
])

/** The content of a scenario file. */
export const scenarioFileSchema = z.strictObject({
  coder: z._default(z.array(entrySchema), []),
  auditor: z._default(z.array(entrySchema), []),
  /** The model's context window in tokens, as a real provider would report it (for compaction). */
  contextLength: z.optional(z.int().check(z.positive())),
})

export type ScenarioEntry = z.infer<typeof entrySchema>

/** A parsed scenario. `source` names where it came from (file path), for messages. */
export interface Scenario {
  source: string
  coder: ScenarioEntry[]
  auditor: ScenarioEntry[]
  contextLength?: number
}

/** A scenario that cannot be loaded; the message is one line naming the file and the bad entry. */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError'
}

/** Validates parsed JSON. Throws a `ScenarioError` naming `source` and the first bad entry. */
export function parseScenario(json: unknown, source: string): Scenario {
  const result = scenarioFileSchema.safeParse(json)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const where = formatPath(issue.path)
    throw new ScenarioError(`scenario: ${source}: ${where ? `${where}: ` : ''}${describeIssue(issue)}`)
  }
  return { source, ...result.data }
}

/** Reads and validates a scenario file. */
export async function loadScenario(path: string): Promise<Scenario> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw readError(path, err)
  }
  return parseScenarioText(text, path)
}

/** Parses the text of a scenario file (shared by the sync and async loaders). */
export function parseScenarioText(text: string, source: string): Scenario {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new ScenarioError(`scenario: ${source}: not valid JSON (${oneLine((err as Error).message)})`)
  }
  return parseScenario(json, source)
}

/** The one-line error for a scenario file that cannot be read. */
export function readError(path: string, err: unknown): ScenarioError {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return new ScenarioError(`scenario: ${path}: file not found`)
  return new ScenarioError(`scenario: ${path}: cannot read (${oneLine((err as Error).message)})`)
}

function formatPath(path: PropertyKey[]): string {
  return path
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`))
    .join('')
}

function describeIssue(issue: ZodIssue): string {
  switch (issue.code) {
    case 'invalid_union':
      if ('options' in issue && Array.isArray(issue.options)) return `expected one of ${issue.options.join('|')}`
      break
    case 'invalid_value':
      return `expected one of ${issue.values.map(String).join('|')}`
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`
  }
  // zod's messages read "Invalid input: expected string, received number"; keep the useful half.
  const message = oneLine(issue.message.replace(/^[A-Z][\w ]*: /, ''))
  return message.endsWith(', received undefined') ? `missing (${message.slice(0, -', received undefined'.length)})` : message
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}
