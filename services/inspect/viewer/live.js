// The live connection: the /ws/page socket, what the server pushes, reconnects.
import { $ } from './dom.js'
import { renderContextAndChart, renderHead, renderLog, renderSlider, renderStream } from './loop.js'
import { renderLoops, select } from './loops.js'
import { loopChanged } from './panels.js'
import { state } from './state.js'

/** The loop a page opens with: the one its address names, else the first some process runs, else the newest. */
function firstPick(loops) {
  const want = decodeURIComponent((location.hash.match(/loop=([^&]+)/) || [])[1] || '')
  return loops.find((l) => l.name === want) || loops.find((l) => l.run === 'live' || l.run === 'owned') || loops[0]
}

export function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/page`)
  state.ws = ws
  ws.onopen = () => {
    state.connected = true
    setConn(true)
    if (state.selected) ws.send(JSON.stringify({ type: 'select', name: state.selected }))
  }
  ws.onclose = () => {
    state.connected = false
    setConn(false)
    setTimeout(connect, 1000)
  }
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data)
    if (msg.type === 'server') {
      const engines = msg.engines === 1 ? '1 engine streaming' : `${msg.engines} engines streaming`
      $('#top-note').textContent = `data: ${msg.dataDir} · ${engines} · run loops with --inspect ${msg.inspectUrl}`
    } else if (msg.type === 'loops') {
      state.loops = msg.loops
      if (!state.selected && state.loops.length) {
        select(firstPick(state.loops).name)
        return
      }
      renderLoops()
    } else if (msg.type === 'loop' && msg.loop && msg.loop.summary.name === state.selected) {
      // one payload feeds the header, the list's item of the loop and every panel
      state.loop = msg.loop
      renderHead()
      renderLoops()
      if (state.at === null) void renderContextAndChart()
      loopChanged()
    } else if (msg.type === 'history' && msg.name === state.selected) {
      const lastSeq = state.history.length ? state.history[state.history.length - 1].seq : 0
      // a reset sent on selection may already hold entries that a later push repeats
      state.history = msg.reset ? msg.entries : state.history.concat(msg.entries.filter((e) => e.seq > lastSeq))
      if (msg.reset) state.snapshots.clear()
      renderSlider()
      renderLog()
      if (state.at === null) void renderContextAndChart()
      loopChanged()
    } else if (msg.type === 'stream' && msg.name === state.selected) {
      const lastSeq = state.stream.length ? state.stream[state.stream.length - 1].seq : 0
      state.stream = msg.reset ? msg.events : state.stream.concat(msg.events.filter((e) => !(e.seq <= lastSeq))).slice(-300)
      renderStream()
    }
  }
}

function setConn(on) {
  const el = $('#conn')
  el.textContent = on ? 'live' : 'disconnected: retrying'
  el.className = `conn ${on ? 'conn-on' : 'conn-off'}`
}
