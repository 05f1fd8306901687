/** The auditor's summary block of a sectioned plan (docs/architecture.md "Plans"), each marker on its own line. */

export interface SummaryBlock {
  done: string
  deviations: string
  followUps: string
  /** The whole block between the markers, trimmed. */
  raw: string
}

const OPEN = '<!-- summary -->'
const CLOSE = '<!-- /summary -->'

/** The last well-formed summary block in `text`, or null when there is none. */
export function parseSummary(text: string): SummaryBlock | null {
  const lines = text.split(/\r?\n/)
  let found: SummaryBlock | null = null
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== OPEN) continue
    const end = lines.findIndex((l, j) => j > i && l.trim() === CLOSE)
    if (end < 0) break
    const body = lines.slice(i + 1, end)
    const parts = splitHeadings(body)
    if (parts.has('done')) {
      found = {
        done: parts.get('done') ?? '',
        deviations: parts.get('deviations') ?? '',
        followUps: parts.get('follow-ups') ?? '',
        raw: body.join('\n').trim(),
      }
    }
    i = end
  }
  return found
}

function splitHeadings(body: string[]): Map<string, string> {
  const parts = new Map<string, string>()
  let key: string | null = null
  let acc: string[] = []
  const flush = () => {
    if (key !== null) parts.set(key, acc.join('\n').trim())
  }
  for (const line of body) {
    const m = /^###\s+(.+?)\s*$/.exec(line)
    if (m) {
      flush()
      key = m[1]!.toLowerCase().replace(/\s+/g, '-')
      acc = []
    } else {
      acc.push(line)
    }
  }
  flush()
  return parts
}
