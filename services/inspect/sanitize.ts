/**
 * What leaves the process through an inspector: a copy of any value with secrets
 * redacted, long strings cut to a preview and session transcripts shortened.
 * Pure, and idempotent (sanitizing a sanitized value changes nothing), because
 * inspection events may pass through it twice (buffered, then sent).
 */

/** Object keys whose (non-numeric) values are never sent. */
export const SECRET_KEY = /key|token|secret|password|authorization/i

export const REDACTED = '[redacted]'

export interface SanitizeOptions {
  /** Strings longer than this (plus a little slack) are cut to this many characters and a `…(N chars)` note. @default 200 */
  maxString?: number
  /** Chat transcripts (`messages` arrays) keep their last this many messages. @default 3 */
  keepMessages?: number
  /** Objects and arrays nested deeper than this become `[depth]`. @default 12 */
  maxDepth?: number
  /** Arrays longer than this keep their first items and a note of how many were dropped. @default 100 */
  maxItems?: number
}

/** Secrets written inline in text: `API_KEY=…`, `"token": "…"`, `Authorization: Bearer …`. */
const INLINE_SECRET =
  /((?:[A-Za-z0-9_-]*(?:api[_-]?key|token|secret|password|passwd)[A-Za-z0-9_]*)["']?\s*[:=]\s*["']?)((?=[^\s"',;]*[A-Za-z])[^\s"',;]{4,})/gi
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g
/** Provider-style key literals (OpenAI/Anthropic `sk-…`, GitHub `ghp_…`, AWS access key ids). */
const KEY_LITERAL = /\b(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b/g

/** A string that already is a cut preview (so that a second pass leaves it alone). */
const PREVIEW_NOTE = /…\(\d+ chars\)$/

/** Replaces inline secrets in a text. */
export function redactText(text: string): string {
  if (!/key|token|secret|passw|bearer|basic|sk-|gh[pousr]_|AKIA/i.test(text)) return text
  return text
    .replace(INLINE_SECRET, (_m, lead: string, value: string) => (value === REDACTED ? `${lead}${value}` : `${lead}${REDACTED}`))
    .replace(BEARER, (_m, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(KEY_LITERAL, REDACTED)
}

/** `text` cut to `max` characters and `…(N chars)` (N: `length`) when it is longer than `max` + the note's room. */
export function preview(text: string, max = 200, length = text.length): string {
  if (text.length <= max + 24 || PREVIEW_NOTE.test(text)) return text
  return `${text.slice(0, max)}…(${length} chars)`
}

/** A sanitized deep copy of `value` (plain JSON data: functions and symbols are dropped). */
export function sanitize<T = unknown>(value: T, options: SanitizeOptions = {}): T {
  const o: Required<SanitizeOptions> = {
    maxString: options.maxString ?? 200,
    keepMessages: options.keepMessages ?? 3,
    maxDepth: options.maxDepth ?? 12,
    maxItems: options.maxItems ?? 100,
  }
  return walk(value, o, 0, new WeakSet()) as T
}

function walk(value: unknown, o: Required<SanitizeOptions>, depth: number, seen: WeakSet<object>): unknown {
  // the note gives the length of the original text
  if (typeof value === 'string') return preview(redactText(value), o.maxString, value.length)
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
      if (SECRET_KEY.test(k) && isSecretValue(v)) out[k] = REDACTED
      else if (k === 'messages' && Array.isArray(v)) out[k] = shortenTranscript(v, o, depth + 1, seen)
      else {
        const w = walk(v, o, depth + 1, seen)
        if (w !== undefined) out[k] = w
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
function shortenTranscript(
  messages: unknown[],
  o: Required<SanitizeOptions>,
  depth: number,
  seen: WeakSet<object>,
): unknown[] {
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
