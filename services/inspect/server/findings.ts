/**
 * The story of each finding of a loop, as far as its history tells: the snapshots
 * the history keeps at phase boundaries hold the findings as they stood then, so
 * comparing them in order shows when each was first seen, resolved, reopened or
 * flagged recurring, and which audit had last finished. What they cannot show is
 * said, not guessed: a finding already there in the first snapshot kept was
 * reported before it (its audit number is still known: the finding keeps it).
 */
import type { Finding, LoopContext } from '../../../machines/loop.types.ts'
import type { Snap, ViewerEntry } from './records.ts'
import type { FindingEvent, FindingsReport, FindingStory } from './types.ts'

interface Point {
  seq: number | null
  at: string
  iteration: number
  audit: number | null
  findings: Finding[]
}

/**
 * The findings of `current` (the loop's context now, stamped `at`) with what the
 * snapshots of `history` (oldest first) show of each.
 */
export function findingsReport(history: ViewerEntry[], current: LoopContext, at: string): FindingsReport {
  const points: Point[] = []
  for (const e of history) {
    const c = (e.snapshot as Snap | undefined)?.context
    if (!c || !Array.isArray(c.findings)) continue
    points.push({ seq: e.seq, at: e.at, iteration: c.iteration, audit: c.lastAudit?.n ?? null, findings: c.findings })
  }
  const first = points[0] ?? null
  points.push({ seq: null, at, iteration: current.iteration, audit: current.lastAudit?.n ?? null, findings: current.findings })
  // the history starts with the loop when its first entry is the start (seq 1, from no state)
  // (a fork's starts with the findings of the loop it was forked from)
  const forked = current.forkedFrom ?? null
  const fromStart = history.length > 0 && history[0]!.seq === 1 && history[0]!.from === '' && forked === null

  const stories = new Map<string, FindingStory>()
  const last = new Map<string, Finding>()
  for (const [i, p] of points.entries()) {
    const seen = new Set<string>()
    for (const f of p.findings) {
      seen.add(f.id)
      let story = stories.get(f.id)
      const event = (what: FindingEvent['what'], audit = p.audit): FindingEvent => ({ what, seq: p.seq, at: p.at, audit, iteration: p.iteration })
      if (!story) {
        story = { finding: f, events: [], unknown: [] }
        stories.set(f.id, story)
        // already there in the first snapshot kept (or, with none kept, in the current record)
        const before = (i === 0 && p.seq !== null) || (p.seq === null && first === null)
        if (before && !fromStart) {
          story.unknown.push(
            forked && first?.seq === 1
              ? `reported in audit ${f.reportedInAudit} of ${forked.name}, before this loop was forked from it (at its #${forked.seq}): when is not known`
              : first
              ? `reported in audit ${f.reportedInAudit}, before the first snapshot the history keeps (#${first.seq}): when is not known`
              : `reported in audit ${f.reportedInAudit}; the history keeps no snapshot: when, and what changed since, is not known`,
          )
          if (f.status === 'resolved') story.unknown.push('already resolved when first seen: when it was resolved is not known')
          if (f.recurring) story.unknown.push('already flagged recurring when first seen: since when is not known')
        } else {
          story.events.push(event('reported', f.reportedInAudit))
          // reported and resolved (or flagged) between two snapshots
          if (f.status === 'resolved') story.events.push(event('resolved'))
          if (f.recurring) story.events.push(event('recurring'))
        }
      } else {
        const was = last.get(f.id)
        if (!was) story.events.push(event(f.status === 'resolved' ? 'resolved' : 'reopened'))
        else {
          if (was.status !== f.status) story.events.push(event(f.status === 'resolved' ? 'resolved' : 'reopened'))
          if (!was.recurring && f.recurring) story.events.push(event('recurring'))
        }
      }
      story.finding = f
      last.set(f.id, f)
    }
    for (const id of [...last.keys()]) {
      if (seen.has(id)) continue
      stories.get(id)!.events.push({ what: 'gone', seq: p.seq, at: p.at, audit: p.audit, iteration: p.iteration })
      last.delete(id)
    }
  }
  // the findings of the current record, in its order; then any the history shows that it no longer has
  const ordered = current.findings.map((f) => stories.get(f.id)!)
  for (const [id, s] of stories) if (!current.findings.some((f) => f.id === id)) ordered.push(s)
  return { findings: ordered, since: first && first.seq !== null ? { seq: first.seq, at: first.at } : null }
}
