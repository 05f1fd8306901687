/** Reads a plan (markdown) into the task and sections a loop works on (docs/architecture.md "Plans"). */
import type { LoopInput, LoopTask } from '../machines/loop.types.ts'

export class PlanError extends Error {
  override readonly name = 'PlanError'
}

const MARKER = '<!-- section -->'
const FENCE = /^\s{0,3}(`{3,}|~{3,})/

/**
 * Splits a plan at lines that are exactly `<!-- section -->` outside fenced code
 * blocks. The text before the first marker is the preamble shared by every section.
 * `source` names the plan in error messages.
 */
export function parsePlan(markdown: string, source: string): Pick<LoopInput, 'task' | 'sections'> {
  const text = markdown.replace(/\r\n/g, '\n')
  if (text.trim() === '') throw new PlanError(`plan: ${source} is empty`)
  const chunks: string[][] = [[]]
  let fence: string | null = null
  for (const line of text.split('\n')) {
    const m = FENCE.exec(line)
    if (m) {
      const mark = m[1]!
      if (fence === null) fence = mark
      else if (mark[0] === fence[0] && mark.length >= fence.length && line.trim() === mark) fence = null
    }
    if (fence === null && line === MARKER) {
      chunks.push([])
      continue
    }
    chunks[chunks.length - 1]!.push(line)
  }
  const [preambleLines, ...sectionLines] = chunks
  const preamble = preambleLines!.join('\n').trim()
  const title = firstHeading(preamble) ?? firstHeading(text) ?? source.replace(/^.*[\\/]/, '').replace(/\.md$/i, '')
  if (sectionLines.length === 0) {
    return { task: { kind: 'plain', title, text: text.trim() }, sections: [] }
  }
  const sections = sectionLines.map((lines, i) => {
    const body = lines.join('\n').trim()
    if (body === '') throw new PlanError(`plan: ${source}: section ${i + 1} is empty`)
    return { title: firstHeading(body) ?? `Section ${i + 1}`, body }
  })
  const task: LoopTask = { kind: 'sectioned', title, text: text.trim(), preamble }
  return { task, sections }
}

/** A goal loop: the goal text is the whole task. */
export function goalTask(goal: string): Pick<LoopInput, 'task' | 'sections'> {
  const text = goal.trim()
  if (text === '') throw new PlanError('goal: the goal text is empty')
  const firstLine = text.split('\n')[0]!
  const title = firstLine.length > 60 ? `${firstLine.slice(0, 57)}...` : firstLine
  return { task: { kind: 'goal', title, text }, sections: [] }
}

function firstHeading(text: string): string | null {
  let fence = false
  for (const line of text.split('\n')) {
    if (FENCE.test(line)) fence = !fence
    if (fence) continue
    const m = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line)
    if (m) return m[1]!
  }
  return null
}

/** Lower-case slug for loop names: letters, digits and single dashes, at most 40 characters. */
export function slugify(title: string): string {
  const slug = title
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '')
  return slug === '' ? 'loop' : slug
}
