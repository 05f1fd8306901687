/**
 * What the HTTP model providers (ollama, openai) share when they classify a failure
 * and read a streamed answer: the network error codes down a `fetch failed` cause
 * chain, abort detection, and the clean-up of what a model sends (tool arguments,
 * a `<think>` block in the reply). Each provider still classifies its failures once,
 * in its own terms (adapters/ollama-provider.ts, adapters/openai-errors.ts).
 */

/** A network failure by errno-like code: the provider's code for it and what to say. Every one is retryable. */
export const NETWORK_CODES: Record<string, { code: string; what: string }> = {
  ECONNREFUSED: { code: 'connection_refused', what: 'connection refused' },
  ECONNRESET: { code: 'connection_reset', what: 'connection reset' },
  EPIPE: { code: 'connection_reset', what: 'connection reset' },
  UND_ERR_SOCKET: { code: 'connection_reset', what: 'connection closed by the server' },
  ECONNABORTED: { code: 'connection_reset', what: 'connection aborted' },
  ETIMEDOUT: { code: 'timeout', what: 'timed out' },
  UND_ERR_CONNECT_TIMEOUT: { code: 'timeout', what: 'connect timed out' },
  UND_ERR_HEADERS_TIMEOUT: { code: 'timeout', what: 'no response headers within the fetch timeout' },
  UND_ERR_BODY_TIMEOUT: { code: 'timeout', what: 'the response body stalled past the fetch timeout' },
  ENOTFOUND: { code: 'host_not_found', what: 'host name not found' },
  EAI_AGAIN: { code: 'host_not_found', what: 'host name lookup failed' },
  EHOSTUNREACH: { code: 'unreachable', what: 'host unreachable' },
  ENETUNREACH: { code: 'unreachable', what: 'network unreachable' },
}

/** The first errno-like code down the cause chain (`fetch failed` → SocketError → …). */
export function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && code !== '') return code
    // AggregateError (e.g. both IPv4 and IPv6 refused) carries the codes in `errors`.
    const inner = (e as { errors?: unknown }).errors
    if (Array.isArray(inner) && inner.length > 0) {
      const found = networkCode(inner[0])
      if (found) return found
    }
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

/** The message of `err`'s cause, when it has one worth showing. */
export function causeMessage(err: unknown): string | undefined {
  const cause = (err as { cause?: unknown } | null)?.cause
  return cause instanceof Error && cause.message ? cause.message : undefined
}

/** An AbortError anywhere in the first links of the cause chain. */
export function isAbortError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 3; depth++) {
    const name = (e as { name?: unknown }).name
    if (name === 'AbortError' || name === 'APIUserAbortError') return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}

/** undici's way of saying the response body stopped because the socket closed under it. */
export function isTerminated(err: unknown): boolean {
  return err instanceof TypeError && err.message === 'terminated'
}

/** Tool arguments as an object, or why they are not one (a model's JSON string that does not parse). */
export function parseToolArguments(raw: unknown): { arguments: Record<string, unknown>; error?: string } {
  let value = raw
  if (typeof value === 'string') {
    if (value.trim() === '') return { arguments: {} }
    try {
      value = JSON.parse(value)
    } catch (err) {
      const text = raw as string
      const shown = text.length > 120 ? `${text.slice(0, 120)}…` : text
      return { arguments: {}, error: `not valid JSON (${oneLine((err as Error).message)}): ${shown}` }
    }
  }
  if (value === null || value === undefined) return { arguments: {} }
  if (typeof value !== 'object' || Array.isArray(value)) {
    return { arguments: {}, error: `a JSON ${Array.isArray(value) ? 'array' : typeof value}, not an object` }
  }
  return { arguments: value as Record<string, unknown> }
}

/** Drops a leading `<think>…</think>` block that some models put into the content. */
export function stripThinking(content: string): string {
  const match = /^\s*<think>[\s\S]*?<\/think>\s*/.exec(content)
  return match ? content.slice(match[0].length) : content
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

/** A count a server reported, or 0 for anything that is not a positive finite number. */
export function count(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0
}

/**
 * `text` with every secret value replaced: a key a server echoes in its error
 * must not reach the loop's record, history or inspector stream. Values shorter
 * than 8 characters are left alone (they would match ordinary words).
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text
  for (const secret of secrets) if (secret.length >= 8) out = out.split(secret).join('[redacted]')
  return out
}
