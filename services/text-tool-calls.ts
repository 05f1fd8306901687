/**
 * Tool calls written as text (docs/architecture.md "The loop and its sessions"): a
 * small model that forgets the tools API answers with the call as JSON instead,
 * bare or in one fenced block. When a reply without tool calls is, as a whole,
 * such a call (or a list of them) naming the session's tools, the session runs it
 * as if it had been asked for properly; the journal marks the turn `fromText`.
 * Anything else (prose around it, an unknown tool, arguments that are not an
 * object) is a reply, as before.
 */
import type { ToolCall } from '../machines/chat.types.ts'

const FENCED = /^```[A-Za-z_-]*[ \t]*\r?\n([\s\S]*?)\r?\n?```$/

/** The calls `content` holds as a whole, ids `<idPrefix>-1`, `-2` …; null when it is not (only) tool calls. */
export function toolCallsInText(content: string, toolNames: ReadonlySet<string>, idPrefix: string): ToolCall[] | null {
  let text = content.trim()
  const fenced = FENCED.exec(text)
  if (fenced) text = fenced[1]!.trim()
  if (!text.startsWith('{') && !text.startsWith('[')) return null
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return null
  }
  const list = Array.isArray(parsed) ? parsed : isObject(parsed) && Array.isArray(parsed.tool_calls) ? parsed.tool_calls : [parsed]
  if (list.length === 0) return null
  const calls: ToolCall[] = []
  for (const [i, item] of list.entries()) {
    const call = oneCall(item)
    if (call === null || !toolNames.has(call.name)) return null
    calls.push({ id: `${idPrefix}-${i + 1}`, ...call })
  }
  return calls
}

/** `{ name, arguments }` in the shapes models write: OpenAI's, Ollama's, and the common variants. */
function oneCall(item: unknown): { name: string; arguments: Record<string, unknown> } | null {
  if (!isObject(item)) return null
  const inner = isObject(item.function) ? item.function : item
  const name = [inner.name, item.tool, item.tool_name, typeof item.function === 'string' ? item.function : undefined].find(
    (n): n is string => typeof n === 'string' && n !== '',
  )
  if (name === undefined) return null
  const raw = inner.arguments ?? inner.parameters ?? item.arguments ?? item.parameters ?? item.args ?? item.input ?? {}
  let args: unknown = raw
  if (typeof raw === 'string') {
    try {
      args = JSON.parse(raw)
    } catch {
      return null
    }
  }
  return isObject(args) ? { name, arguments: args } : null
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
