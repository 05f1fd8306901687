/**
 * The CLI's output functions, pure: colour and width decisions (scripts/term.ts),
 * tables that fit a width, times, the progress line (and its drawing on a terminal
 * or a pipe, scripts/follow.ts), list, history and status text (scripts/format/).
 */
import { describe, expect, it } from 'vitest'
import type { HistoryEntry } from '../adapters/snapshot-store.ts'
import { showProgress, type Followed, type ProgressStream } from '../scripts/follow.ts'
import {
  detailText,
  eventLabel,
  fitTable,
  historyTable,
  listTable,
  orphanNotes,
  progressLine,
  relativeTime,
  stateLabel,
  untilText,
} from '../scripts/format.ts'
import { colorEnabled, elide, liveTerminal, stripAnsi, styleOf, termOf, visibleWidth, widthOf } from '../scripts/term.ts'
import type { LoopDetail, LoopView } from '../services/views.ts'

const ESC = '\x1b['
const NOW = Date.parse('2025-06-01T12:00:00Z')
const ago = (ms: number) => new Date(NOW - ms).toISOString()

function view(over: Partial<LoopView> = {}): LoopView {
  return {
    name: 'add-a-greeting',
    status: 'running',
    reason: null,
    phase: 'coding',
    iteration: 2,
    kind: 'plain',
    title: 'Add a greeting',
    section: null,
    state: 'running.coding.watching',
    openFindings: 0,
    tokens: 12_345,
    costUsd: 0,
    elapsedMs: 65_000,
    createdAt: ago(180_000),
    updatedAt: ago(1_000),
    retry: null,
    ...over,
  }
}

const usage = (calls: number, costUsd = 0) => ({ inputTokens: 100 * calls, outputTokens: 20 * calls, durationMs: 500 * calls, costUsd, calls })

function detail(over: Partial<LoopDetail> = {}): LoopDetail {
  return {
    ...view({ status: 'completed', reason: 'completed', phase: 'auditing', state: 'completed' }),
    workspace: '/tmp/ws',
    models: { coder: ['scripted:/a/flaky.json', 'scripted:/a/steady.json'], auditor: ['scripted:/a/steady.json'] },
    findings: [],
    sections: [],
    usage: {
      total: usage(4),
      byModel: { 'scripted:/a/steady.json': usage(4) },
      byRole: { coder: usage(2), auditor: usage(2) },
    },
    lastAudit: { n: 1, phase: 'auditing', section: null, text: 'Clean.', clean: true, summaryFound: false, blocking: 0, verdict: 'clean' },
    error: null,
    inbox: [],
    toolErrors: [],
    forkedFrom: null,
    activeModels: { coder: 'scripted:/a/steady.json', auditor: 'scripted:/a/steady.json' },
    failedCalls: { total: 2, byModel: { 'scripted:/a/flaky.json': 2 }, byRole: { coder: 2, auditor: 0 } },
    pricedModels: [],
    blockOn: ['bug'],
    git: null,
    ...over,
  }
}

describe('colour and width (scripts/term.ts)', () => {
  const tty = { isTTY: true, columns: 120 }
  const pipe = { isTTY: false }
  it('colours a terminal unless NO_COLOR or TERM=dumb; FORCE_COLOR decides for a pipe', () => {
    expect(colorEnabled(tty, { TERM: 'xterm' })).toBe(true)
    expect(colorEnabled(tty, { TERM: 'xterm', NO_COLOR: '1' })).toBe(false)
    expect(colorEnabled(tty, { TERM: 'xterm', NO_COLOR: '' })).toBe(true)
    expect(colorEnabled(tty, { TERM: 'dumb' })).toBe(false)
    expect(colorEnabled(tty, { TERM: 'xterm', FORCE_COLOR: '0' })).toBe(false)
    expect(colorEnabled(pipe, {})).toBe(false)
    for (const force of ['1', '2', '3', 'true', '']) expect(colorEnabled(pipe, { FORCE_COLOR: force })).toBe(true)
    expect(colorEnabled(pipe, { FORCE_COLOR: '1', NO_COLOR: '1' })).toBe(false)
    expect(colorEnabled(tty, { TERM: 'dumb', FORCE_COLOR: '1' })).toBe(true)
  })

  it('redraws only on a terminal that is not dumb; widths from the terminal, else COLUMNS, else 80', () => {
    expect(liveTerminal(tty, { TERM: 'xterm' })).toBe(true)
    expect(liveTerminal(tty, { TERM: 'dumb', FORCE_COLOR: '1' })).toBe(false)
    expect(liveTerminal(pipe, {})).toBe(false)
    expect(widthOf(tty, { COLUMNS: '60' })).toBe(120)
    expect(widthOf(pipe, { COLUMNS: '60' })).toBe(60)
    expect(widthOf({ isTTY: true, columns: 0 }, {})).toBe(80)
    expect(widthOf(pipe, { COLUMNS: 'wide' })).toBe(80)
    expect(termOf(pipe, { COLUMNS: '72' })).toMatchObject({ columns: 72, live: false, style: { enabled: false } })
  })

  it('measures and cuts text without counting colour', () => {
    const s = styleOf(true)
    expect(s.status('completed')).toBe(`${ESC}32mcompleted${ESC}39m`)
    expect(styleOf(false).status('errored')).toBe('errored')
    expect(visibleWidth(s.bold('abc'))).toBe(3)
    expect(stripAnsi(s.red('x'))).toBe('x')
    expect(elide('clamp-a-value-into-a-range', 12)).toBe('clamp-a-val…')
    expect(elide('clamp-a-value-into-a-range', 12, 'middle')).toBe('clamp-…range')
    expect(elide('short', 12)).toBe('short')
  })
})

describe('times', () => {
  it('says how long ago, then the date', () => {
    expect(relativeTime(ago(0), NOW)).toBe('just now')
    expect(relativeTime(ago(12_400), NOW)).toBe('12 s ago')
    expect(relativeTime(ago(180_000), NOW)).toBe('3 min ago')
    expect(relativeTime(ago(5 * 3_600_000), NOW)).toBe('5 h ago')
    expect(relativeTime(ago(86_400_000), NOW)).toBe('1 day ago')
    expect(relativeTime(ago(3 * 86_400_000), NOW)).toBe('3 days ago')
    expect(relativeTime(ago(30 * 86_400_000), NOW)).toMatch(/^2025-05-0[12]$/)
    expect(untilText(NOW + 4_000, NOW)).toBe('in 4.0s')
    expect(untilText(NOW - 10, NOW)).toBe('now')
  })
})

describe('tables that fit', () => {
  it('shrinks and drops the columns its steps name, in order, and never the others', () => {
    const columns = [{ header: 'NAME' }, { header: 'STATUS' }, { header: 'TITLE' }]
    const rows = [['a-rather-long-loop-name', 'completed', 'A title that says a great deal about the loop']]
    const wide = fitTable(columns, rows)
    expect(wide.split('\n')[1]).toBe('a-rather-long-loop-name  completed  A title that says a great deal about the loop')
    const narrow = fitTable(columns, rows, { width: 40, fit: [{ shrink: 2, min: 10 }, { drop: 2 }, { shrink: 0, min: 8, elide: 'middle' }] })
    expect(narrow.split('\n')).toEqual(['NAME                     STATUS', 'a-rather-long-loop-name  completed'])
    const tiny = fitTable(columns, rows, { width: 20, fit: [{ drop: 2 }, { shrink: 0, min: 8, elide: 'middle' }] })
    // the name gives way (to 8 columns at most); the status is never cut
    expect(tiny.split('\n')[1]).toBe('a-ra…name  completed')
    expect(fitTable(columns, rows, { width: 10, fit: [{ drop: 2 }, { shrink: 0, min: 8, elide: 'middle' }] }).split('\n')[1]).toBe(
      'a-ra…ame  completed',
    )
  })

  it('lists fit 80 columns with status, phase, iteration, tokens, time and creation whole', () => {
    const views = [
      view({ name: 'a-very-long-loop-name-that-goes-on-and-on', title: 'A title '.repeat(8), section: { index: 2, count: 3 }, kind: 'sectioned' }),
      view({ name: 'b', status: 'errored', reason: 'max_section_attempts', phase: 'finalAuditing', createdAt: ago(30_000) }),
      view({ name: 'c', status: 'paused', owner: null, createdAt: ago(3_600_000) }),
    ]
    const text = listTable(views, { width: 80, now: NOW })
    const lines = text.split('\n')
    for (const l of lines) expect(visibleWidth(l), l).toBeLessThanOrEqual(80)
    // the title went, then the name was cut, then the reason went
    expect(lines[0]).toMatch(/^NAME +STATUS +PHASE +ITER +SECTION +TOKENS +ELAPSED +CREATED$/)
    expect(lines[1]).toMatch(/^a-very…nd-on +running +coding +2 +2\/3 +12\.3k +1m05s +3 min ago$/)
    expect(lines[2]).toMatch(/^b +errored +final audit +2 +- +12\.3k +1m05s +30 s ago$/)
    expect(lines[3]).toMatch(/^c +paused ⚠ +coding +2 +- +12\.3k +1m05s +1 h ago$/)
    // narrower still: the section goes too
    const at60 = listTable(views, { width: 60, now: NOW }).split('\n')
    expect(at60[0]).toMatch(/^NAME +STATUS +PHASE +ITER +TOKENS +ELAPSED +CREATED$/)
    expect(at60[2]).toMatch(/^b +errored +final audit +2 +12\.3k +1m05s +30 s ago$/)
    // wide enough: reason, section and title are there too
    const wide = listTable(views, { width: 250, now: NOW }).split('\n')
    expect(wide[0]).toMatch(/^NAME +STATUS +REASON +PHASE +ITER +SECTION +TOKENS +ELAPSED +CREATED +TITLE$/)
    expect(wide[2]).toMatch(/^b +errored +max_section_attempts +final audit +2 +- +12\.3k/)
  })

  it('notes the loops no process runs with the command that carries them on', () => {
    const views = [
      view({ name: 'a', owner: null }),
      view({ name: 'b', owner: 4242 }),
      view({ name: 'c', status: 'completed', owner: null }),
      view({ name: 'd', status: 'paused', owner: null }),
    ]
    expect(orphanNotes(views, ' --data d')).toEqual([
      '⚠ no process runs a (stopped mid-run): `loopstate resume a --data d` carries it on',
      '⚠ d is paused and no process holds it: `loopstate resume d --data d` resumes it here',
    ])
    expect(orphanNotes([view({ name: 'a', owner: null }), view({ name: 'e', status: 'queued', owner: null })])).toEqual([
      '⚠ no process runs 2 loops (a, e): `loopstate resume --all` carries them on',
    ])
    expect(orphanNotes([view({ owner: 1 })])).toEqual([])
  })
})

describe('history in the user\'s words', () => {
  const entry = (over: Partial<HistoryEntry>): HistoryEntry => ({
    seq: 1,
    at: ago(120_000),
    event: 'xstate.init',
    from: '',
    to: 'running.coding.watching',
    iteration: 1,
    phase: 'coding',
    ...over,
  })
  it('names events and states as people would', () => {
    expect(eventLabel(entry({}))).toBe('started')
    expect(eventLabel(entry({ event: 'xstate.after.stallTimeout.loop.running.coding.watching' }))).toBe('stall timeout')
    expect(eventLabel(entry({ event: 'xstate.after.retryBackoff.loop.running.backingOff' }))).toBe('retry')
    expect(eventLabel(entry({ event: 'xstate.done.actor.session' }))).toBe('session ended')
    expect(eventLabel(entry({ event: 'xstate.error.actor.session' }))).toBe('session failed')
    expect(eventLabel(entry({ event: 'xstate.done.actor.commit' }))).toBe('committed')
    expect(eventLabel(entry({ event: 'xstate.error.actor.checks' }))).toBe('checks could not run')
    expect(eventLabel(entry({ event: 'session.done', from: 'running.coding.watching' }))).toBe('coder finished')
    expect(eventLabel(entry({ event: 'session.failed', from: 'running.coding.watching' }))).toBe('model call failed')
    expect(eventLabel(entry({ event: 'loop.pause' }))).toBe('paused')
    expect(eventLabel(entry({ event: 'something.new' }))).toBe('something.new')
    expect(stateLabel('')).toBe('(start)')
    expect(stateLabel('running.coding.watching')).toBe('coding')
    expect(stateLabel('running.finalAuditing.watching')).toBe('final audit')
    expect(stateLabel('running.backingOff')).toBe('waiting to retry')
    expect(stateLabel('paused')).toBe('paused')
  })

  it('prints times ago and the words by default, local times and the statechart names with raw', () => {
    const entries = [entry({}), entry({ seq: 2, event: 'xstate.after.stallTimeout.loop.running.coding.watching', from: 'running.coding.watching' })]
    const readable = historyTable(entries, { now: NOW })
    expect(readable).toMatch(/^ +1 +2 min ago +started +\(start\) → coding +1$/m)
    expect(readable).toMatch(/^ +2 +2 min ago +stall timeout +coding → coding +1$/m)
    expect(readable).not.toContain('xstate')
    const raw = historyTable(entries, { now: NOW, raw: true })
    expect(raw).toMatch(/^ +2 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +xstate\.after\.stallTimeout\.loop\.running\.coding\.watching +running\.coding\.watching → running\.coding\.watching +1$/m)
  })
})

describe('the progress line', () => {
  const retrying = view({
    state: 'running.backingOff',
    retry: { at: new Date(NOW + 4_000).toISOString(), attempt: 2, of: 4, model: 'ollama:qwen3:8b', code: 'ECONNREFUSED' },
  })
  const why = 'ollama: cannot reach http://127.0.0.1:11434: connection refused'

  it('says why a retrying loop waits and when it tries again', () => {
    expect(progressLine(retrying, 0, { why, now: NOW })).toBe(
      `add-a-greeting  coding       iteration 2  12.3k tokens  1m05s  retrying in 4.0s (attempt 2/4): ${why}`,
    )
    expect(progressLine(retrying, 0, { now: NOW })).toMatch(/retrying in 4\.0s \(attempt 2\/4\): ECONNREFUSED$/)
  })

  it('fits a width by cutting the note, then the name; never the changing fields', () => {
    const wide = progressLine(retrying, 0, { why, now: NOW, width: 200 })
    expect(wide.split('\n')).toHaveLength(1)
    // at 100 the note goes below the fields, whole as it fits there
    const at100 = progressLine(retrying, 0, { why, now: NOW, width: 100 })
    expect(at100.split('\n')).toEqual([
      'add-a-greeting  coding       iteration 2  12.3k tokens  1m05s',
      `    retrying in 4.0s (attempt 2/4): ${why}`,
    ])
    const at60 = progressLine(retrying, 0, { why, now: NOW, width: 60 }).split('\n')
    expect(at60[1]).toBe('    retrying in 4.0s (attempt 2/4): ollama: cannot reach ht…')
    for (const l of at60) expect(visibleWidth(l)).toBeLessThanOrEqual(60)
    const at50 = progressLine({ ...retrying, name: 'a-loop-with-a-very-long-name' }, 0, { why, now: NOW, width: 50 })
    expect(at50.split('\n')[0]).toBe('a-lo…ame  coding       iteration 2  12.3k tokens  1m05s')
  })

  /** A loop the progress follows: its view, and a way to move it on. */
  function followed(v: LoopView): Followed & { move(next: LoopView): void } {
    let current = v
    const listeners = new Set<(v: LoopView) => void>()
    return {
      name: v.name,
      view: () => current,
      subscribe(l) {
        listeners.add(l)
        return () => listeners.delete(l)
      },
      move(next) {
        current = next
        for (const l of listeners) l(next)
      },
    }
  }
  const streamOf = (isTTY: boolean) => {
    let written = ''
    const stream: ProgressStream = { isTTY, columns: 100, rows: 30, write: (t) => (written += t) }
    return { stream, written: () => written }
  }

  it('on a terminal, redraws in place (log-update) in colour; NO_COLOR keeps the redraw without colour', async () => {
    const loop = followed(view())
    const out = streamOf(true)
    const p = showProgress([loop], { stream: out.stream, env: { TERM: 'xterm' } })
    await p.ready
    loop.move(view({ phase: 'auditing', state: 'running.auditing.watching' }))
    await p.stop()
    expect(out.written()).toContain(`${ESC}1A`) // up a line: the block is redrawn
    expect(out.written()).toContain(`${ESC}36mauditing`)
    const plainTty = streamOf(true)
    const q = showProgress([followed(view())], { stream: plainTty.stream, env: { TERM: 'xterm', NO_COLOR: '1' } })
    await q.stop()
    expect(plainTty.written()).not.toMatch(/\x1b\[\d*m/)
  })

  it('with TERM=dumb or on a pipe, writes one plain line per change and no escape code at all', async () => {
    for (const [isTTY, env] of [
      [true, { TERM: 'dumb' }],
      [false, { TERM: 'xterm' }],
    ] as const) {
      const loop = followed(view())
      const out = streamOf(isTTY)
      const p = showProgress([loop], { stream: out.stream, env, detail: async () => ({ ...detail(), error: { name: 'E', message: why, code: 'ECONNREFUSED' } }) })
      loop.move(view({ tokens: 20_000 })) // tokens alone: no line
      loop.move(retrying)
      loop.move(view({ phase: 'auditing', state: 'running.auditing.watching' }))
      await p.stop()
      const lines = out.written().split('\n')
      expect(out.written()).not.toContain('\x1b')
      expect(lines).toHaveLength(4)
      expect(lines[0]).toMatch(/^add-a-greeting  coding +iteration 2  12\.3k tokens  1m05s$/)
      expect(lines[1]).toMatch(new RegExp(`^add-a-greeting  coding +iteration 2  12\\.3k tokens  1m05s  retrying (in \\S+|now) \\(attempt 2/4\\): ${why.replace(/[.:/]/g, '\\$&')}$`))
      expect(lines[2]).toMatch(/^add-a-greeting  auditing/)
      expect(lines[3]).toBe('')
    }
  })
})

describe('status', () => {
  it('shows – for the cost of unpriced models, the failed calls and the fallback', () => {
    const text = detailText(detail(), { now: NOW })
    expect(text).toContain('\nelapsed    1m05s, 12.3k tokens, cost –\n')
    expect(text).toContain('\ncoder      scripted:/a/flaky.json → scripted:/a/steady.json (in use)\n')
    expect(text).toContain('\n           fell back to scripted:/a/steady.json after 2 failed calls on scripted:/a/flaky.json\n')
    expect(text).toContain('\nfailed     2 model calls without an answer (scripted:/a/flaky.json 2)\n')
    expect(text).toMatch(/^ {2}model scripted:\/a\/flaky\.json +0 +2 +0 +0 +0ms +–$/m)
    expect(text).toMatch(/^ {2}total +4 +2 +400 +80 +2\.0s +–$/m)
    expect(text).not.toContain('$0.0000')
    const priced = detailText(
      detail({ costUsd: 0.0123, pricedModels: ['scripted:/a/steady.json'], usage: { ...detail().usage, total: usage(4, 0.0123) } }),
      { now: NOW },
    )
    expect(priced).toContain(', cost $0.0123\n')
    expect(priced).toMatch(/^ {2}total +4 +2 +400 +80 +2\.0s +\$0\.0123$/m)
    expect(priced).toMatch(/^ {2}model scripted:\/a\/flaky\.json +0 +2 +0 +0 +0ms +–$/m)
  })

  it('shows the section summaries, the branch, the retry, who runs it, and why the last audit was dirty', () => {
    const text = detailText(
      detail({
        status: 'running',
        reason: null,
        state: 'running.backingOff',
        kind: 'sectioned',
        section: { index: 2, count: 2 },
        retry: { at: new Date(NOW + 2_000).toISOString(), attempt: 3, of: 4, model: 'scripted:/a/steady.json', code: 'ECONNREFUSED' },
        error: { name: 'E', message: 'connect ECONNREFUSED 127.0.0.1:11434', code: 'ECONNREFUSED' },
        sections: [
          { title: 'One', status: 'done', attempts: 1, summary: '### Done\n- one.js written\n- tests added\n### Deviations\nNone.\n### Follow-ups\n- a README' },
          { title: 'Two', status: 'active', attempts: 0, summary: null },
        ],
        findings: [
          { id: 'F1', file: 'a.js', line: 3, severity: 'bug', message: 'off by one', status: 'open', section: 1, reportedInAudit: 2, openAudits: 1, recurring: false },
          { id: 'F2', file: 'a.js', line: null, severity: 'warning', message: 'style', status: 'open', section: 1, reportedInAudit: 2, openAudits: 1, recurring: false },
        ],
        lastAudit: { n: 2, phase: 'auditing', section: 1, text: 'Off by one in a.js.', clean: false, summaryFound: false, blocking: 1, verdict: 'dirty' },
        git: { branch: 'loop/add-a-greeting', repo: '/r', worktree: '/r.loops/add-a-greeting', base: '0123456789abcdef' },
      }),
      { now: NOW, owner: null, resume: 'loopstate resume add-a-greeting' },
    )
    expect(text).toContain('\nprocess    none: no process runs it; `loopstate resume add-a-greeting` carries it on\n')
    expect(text).toContain('\nretry      retrying in 2.0s on steady.json (attempt 3/4): connect ECONNREFUSED 127.0.0.1:11434\n')
    expect(text).toContain('\nbranch     loop/add-a-greeting (worktree of /r, from 0123456789ab)\n')
    expect(text).toContain('\n  1. One — done, 1 dirty audit\n     done: one.js written; tests added\n     follow-ups: a README\n  2. Two — active\n')
    expect(text).toContain(
      '\nlast audit #2 (auditing, section 2): dirty, 1 blocking finding\n  blocked by (bug findings open in its scope):\n    F1 bug open a.js:3 — off by one\n  | Off by one in a.js.',
    )
    expect(detailText(detail(), { owner: 77 })).not.toContain('process ') // an ended loop: nobody runs it, nothing to say
    expect(detailText(detail({ status: 'running' }), { owner: 77 })).toContain('\nprocess    run by process 77\n')
  })

  it('fits its usage table to the width', () => {
    const long = `scripted:/${'very/'.repeat(20)}steady.json`
    const d = detail({ usage: { ...detail().usage, byModel: { [long]: usage(4) } } })
    const table = detailText(d, { width: 80 }).split('\nusage\n')[1]!.split('\nlast audit')[0]!
    for (const l of table.split('\n')) expect(visibleWidth(l), l).toBeLessThanOrEqual(80)
    expect(table).toMatch(/model scripted:\/v.*….*\/steady\.json +4 +0 +400 +80 +2\.0s +–/)
  })
})
