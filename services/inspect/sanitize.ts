/**
 * What leaves the process through an inspector: a copy of any value with secrets
 * redacted (services/inspect/redact.ts, in every string and object key, before a
 * long string is cut, so a secret across the cut is gone too), long strings cut
 * to a preview and session transcripts shortened. Pure for a given Redactor (its
 * cache only remembers results), and idempotent (sanitizing a sanitized value
 * changes nothing), because inspection events may pass through it twice
 * (buffered, then sent). Besides the values, every string or object under a key
 * like `apiKey`, `token`, `password`, `DB_PASS` is replaced whole.
 */
import { defaultRedactor, isSecretName, REDACTED, type Redactor } from './redact.ts'

export { createRedactor, defaultRedactor, isPublicEnvVar, isSecretName, literalsMatcher, REDACTED, redactText } from './redact.ts'
export type { Redactor, RedactorOptions } from './redact.ts'

/** Object keys whose (non-numeric) values are never sent. */
export const SECRET_KEY = /key|token|secret|password|authorization/i

export interface SanitizeOptions {
  /** Strings longer than this (plus a little slack) are cut to this many characters and a `…(N chars)` note. @default 200 */
  maxString?: number
  /** Chat transcripts (`messages` arrays) keep their last this many messages. @default 3 */
  keepMessages?: number
  /** Objects and arrays nested deeper than this become `[depth]`. @default 12 */
  maxDepth?: number
  /** Arrays longer than this keep their first items and a note of how many were dropped. @default 100 */
  maxItems?: number
  /** What redacts the strings. @default {@link defaultRedactor}: built once from process.env */
  redactor?: Redactor
}

// ------------------------------------------------------------------ sanitize

/** A string that already is a cut preview (so that a second pass leaves it alone). */
const PREVIEW_NOTE = /…\(\d+ chars\)$/

/** `text` cut to `max` characters and `…(N chars)` (N: `length`) when it is longer than `max` + the note's room. */
export function preview(text: string, max = 200, length = text.length): string {
  if (text.length <= max + 24 || PREVIEW_NOTE.test(text)) return text
  let cut = max
  // never in the middle of a `[redacted]` (its remains would look like a value to redact again)
  const open = text.lastIndexOf('[', cut)
  if (open >= 0 && open > cut - REDACTED.length && text.startsWith(REDACTED, open)) cut = open + REDACTED.length
  return `${text.slice(0, cut)}…(${length} chars)`
}

/** A sanitized deep copy of `value` (plain JSON data: functions and symbols are dropped). */
export function sanitize<T = unknown>(value: T, options: SanitizeOptions = {}): T {
  const o: Options = {
    maxString: options.maxString ?? 200,
    keepMessages: options.keepMessages ?? 3,
    maxDepth: options.maxDepth ?? 12,
    maxItems: options.maxItems ?? 100,
    redactor: options.redactor ?? defaultRedactor(),
  }
  return walk(value, o, 0, new WeakSet()) as T
}

type Options = Required<SanitizeOptions>

/** Redacted, then cut; a cut may leave a fragment that redacts differently: redacted again, so that a second pass finds nothing. */
function sanitizeString(value: string, o: Options): string {
  const redacted = o.redactor.redact(value)
  // the note gives the length of the original text
  const cut = preview(redacted, o.maxString, value.length)
  return cut === redacted ? redacted : o.redactor.redact(cut)
}

function walk(value: unknown, o: Options, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return sanitizeString(value, o)
  if (typeof value === 'function' || typeof value === 'symbol') return undefined
  if (typeof value === 'bigint') return value.toString()
  if (value === null || typeof value !== 'object') return value
  if (seen.has(value)) return '[circular]'
  if (value instanceof Error) return { name: value.name, message: walk(value.message, o, depth + 1, seen) }
  const json = (value as { toJSON?: unknown }).toJSON
  if (typeof json === 'function' && !(value instanceof Date)) return walk(json.call(value), o, depth, seen)
  if (value instanceof Date) return value.toISOString()
  if (depth >= o.maxDepth) return '[depth]'
  seen.add(value)
  try {
    if (Array.isArray(value)) {
      const items = value.length > o.maxItems ? value.slice(0, o.maxItems) : value
      const out = items.map((v) => walk(v, o, depth + 1, seen) ?? null)
      if (value.length > o.maxItems) out.push(`…(${value.length - o.maxItems} more)`)
      return out
    }
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      // keys are strings of the stream too (a record keyed by a token)
      const key = o.redactor.redact(k)
      if ((SECRET_KEY.test(k) || isSecretName(k)) && isSecretValue(v)) out[key] = REDACTED
      else if (k === 'messages' && Array.isArray(v)) out[key] = shortenTranscript(v, o, depth + 1, seen)
      else {
        const w = walk(v, o, depth + 1, seen)
        if (w !== undefined) out[key] = w
      }
    }
    return out
  } finally {
    seen.delete(value)
  }
}

/**
 * Counts and flags are not secrets (`inputTokens`, `maxTokens`, `hasKey`): only
 * strings, objects and arrays under a secret-looking key are redacted.
 */
function isSecretValue(v: unknown): boolean {
  return typeof v === 'string' || (typeof v === 'object' && v !== null)
}

/** A transcript keeps its last `keepMessages` messages after a note of how many came before. */
function shortenTranscript(messages: unknown[], o: Options, depth: number, seen: WeakSet<object>): unknown[] {
  const omittedNote = (m: unknown) =>
    typeof m === 'object' && m !== null && (m as { role?: unknown }).role === 'note'
  const already = messages.length > 0 && omittedNote(messages[0])
  const kept = already ? messages.length - 1 : messages.length
  if (kept <= o.keepMessages) return messages.map((m) => walk(m, o, depth + 1, seen) ?? null)
  const earlier = messages.length - o.keepMessages - (already ? 1 : 0) + (already ? earlierCount(messages[0]) : 0)
  const note = { role: 'note', content: `…(${earlier} earlier messages)` }
  return [note, ...messages.slice(-o.keepMessages).map((m) => walk(m, o, depth + 1, seen) ?? null)]
}

function earlierCount(note: unknown): number {
  const m = /…\((\d+) earlier messages\)/.exec(String((note as { content?: unknown }).content ?? ''))
  return m ? Number(m[1]) : 0
}
