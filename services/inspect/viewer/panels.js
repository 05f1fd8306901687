// The tabs of the selected loop's panel: Transitions, Inspector stream, Transcript,
// Diff, Findings. The last three are fetched when their tab is open, again when the
// loop changes while it is (at most once a second, the diff every two: one fetch at
// a time), and start over for another loop.
import { $ } from './dom.js'
import { refreshDiff, resetDiff } from './diff.js'
import { refreshFindings, resetFindings } from './findings.js'
import { state } from './state.js'
import { refreshTranscript, resetTranscript } from './transcript.js'

const TABS = ['log', 'stream', 'transcript', 'diff', 'findings']
const FETCHED = {
  transcript: { refresh: refreshTranscript, reset: resetTranscript, everyMs: 1000 },
  diff: { refresh: refreshDiff, reset: resetDiff, everyMs: 2000 },
  findings: { refresh: refreshFindings, reset: resetFindings, everyMs: 1000 },
}
/** Per fetched tab: a fetch in flight, another wanted after it, when the last started, the loop version it showed. */
const runs = Object.fromEntries(Object.keys(FETCHED).map((k) => [k, { busy: false, again: false, last: 0, timer: null, version: null }]))

/** Shows tab `tab` (its button marked, its box shown) and fetches it if it is fetched. */
export function showTab(tab) {
  if (!TABS.includes(tab)) return
  state.tab = tab
  for (const t of document.querySelectorAll('#events .tab')) t.classList.toggle('tab-on', t.dataset.tab === tab)
  for (const t of TABS) {
    const el = $(`#${t}-wrap`)
    if (el) el.hidden = t !== tab
  }
  if (FETCHED[tab]) refresh(tab)
}

/** The selected loop changed (a new payload, or new history): the open tab is fetched again if it is fetched. */
export function loopChanged() {
  const tab = state.tab
  if (!FETCHED[tab] || !state.selected) return
  if (runs[tab].version === version()) return
  refresh(tab)
}

/** Another loop is selected: every fetched tab starts over. */
export function resetPanels() {
  for (const [k, p] of Object.entries(FETCHED)) {
    const r = runs[k]
    clearTimeout(r.timer)
    Object.assign(r, { again: false, last: 0, timer: null, version: null })
    p.reset()
  }
  for (const id of ['#transcript-count', '#diff-count', '#findings-count']) {
    const el = $(id)
    if (el) el.textContent = ''
  }
}

/** What the fetched tabs depend on: the loop's last update and the length of its history. */
function version() {
  return `${state.selected}|${state.loop?.summary.updatedAt ?? ''}|${state.history.length}`
}

function refresh(tab) {
  const r = runs[tab]
  if (r.busy) {
    r.again = true
    return
  }
  const wait = r.last + FETCHED[tab].everyMs - Date.now()
  if (wait > 0) {
    r.timer ??= setTimeout(() => {
      r.timer = null
      refresh(tab)
    }, wait)
    return
  }
  r.busy = true
  r.again = false
  r.last = Date.now()
  const v = version()
  FETCHED[tab]
    .refresh()
    .then(
      () => (r.version = v),
      (err) => {
        // a panel still loading says why it did not load (it is tried again on the next change)
        const empty = $(`#${tab}-wrap`)?.querySelector(':scope > .empty')
        if (empty) empty.textContent = `Could not load the ${tab}: ${err.message}`
      },
    )
    .finally(() => {
      r.busy = false
      if (r.again && state.tab === tab) refresh(tab)
    })
}
