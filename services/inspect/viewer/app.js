// loopstate inspector page: plain JS modules, no build step, no external requests.
// Data: GET /api/chart, /api/loops/<name>[/history[/<seq>]]; live pushes on ws /ws/page.
// Modules: state.js, dom.js, format.js, chart.js, loops.js, loop.js, context.js, live.js;
// the loop's tabs: panels.js (events.js, table.js, transcript.js, diff.js, findings.js).
import { renderChart } from './chart.js'
import { $, getJson } from './dom.js'
import { connect } from './live.js'
import { renderAll, renderContextAndChart, renderLog, renderSlider, showAt, snapEntries } from './loop.js'
import { initLoops } from './loops.js'
import { showTab } from './panels.js'
import { state } from './state.js'

function wire() {
  $('#slider').addEventListener('input', (e) => {
    const snaps = snapEntries()
    const i = Number(e.target.value)
    if (i >= snaps.length) {
      state.at = null
      $('#log-wrap').scrollTop = 0
      renderSlider()
      renderLog()
      void renderContextAndChart()
    } else void showAt(snaps[i].seq)
  })
  $('#live-btn').addEventListener('click', () => {
    state.at = null
    $('#log-wrap').scrollTop = 0 // the newest entries are on top
    renderSlider()
    renderLog()
    void renderContextAndChart()
  })
  for (const tab of document.querySelectorAll('#events .tab')) tab.addEventListener('click', () => showTab(tab.dataset.tab))
  $('#side-wide')?.addEventListener('click', () => {
    const wide = document.body.classList.toggle('side-wide')
    $('#side-wide').setAttribute('aria-pressed', String(wide))
  })
  initLoops()
}

async function main() {
  wire()
  renderAll()
  try {
    state.chart = await getJson('/api/chart')
    renderChart()
    void renderContextAndChart()
  } catch (err) {
    $('#chart').textContent = `Could not load the statechart: ${err.message}`
  }
  connect()
}

main()
