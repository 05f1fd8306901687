// The live connection: the /ws/page socket, what the server pushes, reconnects.
import { $ } from './dom.js'
import { renderContextAndChart, renderHead, renderLog, renderSlider, renderStream } from './loop.js'
import { renderLoops, select } from './loops.js'
import { state } from './state.js'

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
        const want = decodeURIComponent((location.hash.match(/loop=([^&]+)/) || [])[1] || '')
        const pick = state.loops.find((l) => l.name === want) || state.loops.find((l) => l.status === 'running') || state.loops[state.loops.length - 1]
        select(pick.name)
        return
      }
      renderLoops()
    } else if (msg.type === 'loop' && msg.loop && msg.loop.summary.name === state.selected) {
      state.loop = msg.loop
      renderHead()
      if (state.at === null) void renderContextAndChart()
    } else if (msg.type === 'history' && msg.name === state.selected) {
      const lastSeq = state.history.length ? state.history[state.history.length - 1].seq : 0
      // a reset sent on selection may already hold entries that a later push repeats
      state.history = msg.reset ? msg.entries : state.history.concat(msg.entries.filter((e) => e.seq > lastSeq))
      if (msg.reset) state.snapshots.clear()
      renderSlider()
      renderLog()
      if (state.at === null) void renderContextAndChart()
    } else if (msg.type === 'stream' && msg.name === state.selected) {
      state.stream = msg.reset ? msg.events : state.stream.concat(msg.events).slice(-300)
      renderStream()
    }
  }
}

function setConn(on) {
  const el = $('#conn')
  el.textContent = on ? 'live' : 'disconnected: retrying'
  el.className = `conn ${on ? 'conn-on' : 'conn-off'}`
}
