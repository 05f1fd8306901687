// The selected loop's controls: Pause, Resume, Cancel (confirmed) and Say, each sent as
// POST /api/loops/<name>/commands with the page's command token, which the viewer puts
// in the page's <meta name="loopstate-token"> (the server refuses a command without it).
// What the server answered is shown here; the loop's new state comes from the live feed.
import { $, h } from './dom.js'
import { state } from './state.js'

const TOKEN = document.querySelector('meta[name="loopstate-token"]')?.getAttribute('content') || ''
const FINAL = new Set(['completed', 'cancelled', 'errored', 'stalled'])
/** The longest message the server takes (server/commands.ts). */
const SAY_MAX = 4000

/** The controls' own state: the loop they are for, a request in flight, the last answer. */
const ui = { name: null, summary: null, busy: false, confirming: false, result: null }
let els = null

function build(root) {
  const button = (id, label, title, onclick) => h('button', { type: 'button', id, class: 'ctl', title, onclick }, label)
  els = {
    pause: button('ctl-pause', 'Pause', 'pause the loop: its live model call is aborted; Resume continues it', () => send({ type: 'pause' })),
    resume: button('ctl-resume', 'Resume', 'resume the paused loop in the process that runs it', () => send({ type: 'resume' })),
    cancel: button('ctl-cancel', 'Cancel…', 'cancel the loop (asks first)', () => {
      ui.confirming = true
      update()
    }),
    confirm: h('span', { class: 'ctl-confirm', id: 'ctl-confirm' }),
    yes: button('ctl-cancel-yes', 'Yes, cancel it', 'the loop ends for good', () => {
      ui.confirming = false
      void send({ type: 'cancel' })
    }),
    no: button('ctl-cancel-no', 'No', 'keep the loop', () => {
      ui.confirming = false
      update()
    }),
    say: h('span', { class: 'ctl-say' }),
    text: h('input', {
      type: 'text',
      id: 'ctl-say-text',
      maxlength: SAY_MAX,
      placeholder: 'Say something to the loop (its next prompt)',
      'aria-label': 'message to the loop',
      onkeydown: (e) => {
        if (e.key === 'Enter') sayIt()
      },
      oninput: () => update(),
    }),
    send: button('ctl-say-send', 'Say', "add the message to the loop's next prompt", () => sayIt()),
    result: h('span', { id: 'ctl-result', class: 'ctl-result', role: 'status', 'aria-live': 'polite' }),
  }
  els.confirm.append(h('span', { id: 'ctl-confirm-text' }), els.yes, els.no)
  els.say.append(els.text, els.send)
  root.append(els.pause, els.resume, els.cancel, els.confirm, els.say, els.result)
}

function sayIt() {
  const text = els.text.value.trim()
  if (text !== '') void send({ type: 'say', text })
}

/** Shows the controls that make sense for the selected loop's status (`summary`: its LoopSummary, or null). */
export function renderControls(summary) {
  const root = $('#loop-controls')
  if (!root) return
  if (!els) build(root)
  if (state.selected !== ui.name) {
    ui.name = state.selected
    ui.confirming = false
    ui.result = null
    els.text.value = ''
  }
  ui.summary = summary && summary.name === ui.name ? summary : null
  update()
}

function update() {
  const root = $('#loop-controls')
  const l = ui.summary
  // commands go through the store: a loop known only from inspection events has none
  const live = l !== null && l.sources?.store !== false && !FINAL.has(l.status)
  root.hidden = l === null || (!live && ui.result === null)
  els.pause.hidden = !live || l.status !== 'running'
  els.resume.hidden = !live || l.status !== 'paused'
  els.cancel.hidden = !live || ui.confirming
  els.confirm.hidden = !live || !ui.confirming
  els.say.hidden = !live
  if (l) $('#ctl-confirm-text').textContent = `Cancel loop ${l.name}? It ends for good.`
  for (const b of [els.pause, els.resume, els.cancel, els.yes, els.no, els.text]) b.disabled = ui.busy
  els.send.disabled = ui.busy || els.text.value.trim() === ''
  const r = ui.result
  els.result.textContent = r ? r.text : ''
  els.result.className = `ctl-result${r ? (r.pending ? ' ctl-pending' : r.ok ? ' ctl-ok' : ' ctl-err') : ''}`
  root.classList.toggle('busy', ui.busy)
}

async function send(command) {
  const name = ui.name
  if (!name || ui.busy) return
  ui.busy = true
  ui.result = { pending: true, text: command.type === 'say' ? 'sending the message…' : `${command.type}: waiting for the loop…` }
  update()
  let result
  try {
    const res = await fetch(`/api/loops/${encodeURIComponent(name)}/commands`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-loopstate-token': TOKEN },
      body: JSON.stringify(command),
      cache: 'no-store',
      credentials: 'same-origin',
    })
    const body = await res.json().catch(() => null)
    if (body && body.ok) result = { ok: true, text: body.message }
    else result = { ok: false, text: body?.error ?? `${command.type}: the viewer answered ${res.status}` }
  } catch (err) {
    result = { ok: false, text: `${command.type}: could not reach the viewer (${err.message})` }
  }
  ui.busy = false
  if (ui.name === name) {
    ui.result = result
    if (result.ok && command.type === 'say') els.text.value = ''
  }
  update()
}
