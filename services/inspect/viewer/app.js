// loopstate inspector page: plain JS modules, no build step, no external requests.
// Data: GET /api/chart, /api/loops/<name>[/history[/<seq>]]; live pushes on ws /ws/page.
// Modules: state.js, dom.js, format.js, chart.js, loops.js, loop.js, context.js, live.js.
import { renderChart } from './chart.js'
import { $, getJson } from './dom.js'
import { connect } from './live.js'
import { renderAll, renderContextAndChart, renderLog, renderSlider, showAt, snapEntries } from './loop.js'
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
  for (const tab of document.querySelectorAll('.tab')) {
    tab.addEventListener('click', () => {
      state.tab = tab.dataset.tab
      for (const t of document.querySelectorAll('.tab')) t.classList.toggle('tab-on', t === tab)
      $('#log-wrap').hidden = state.tab !== 'log'
      $('#stream-wrap').hidden = state.tab !== 'stream'
    })
  }
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
