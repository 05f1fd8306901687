import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { MemoryStore } from '../adapters/memory-store.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { createStatelyInspect, inspectorUrl, type StatelyInspect } from '../services/inspect/stately.ts'

const SECRET = 'sk-live-0123456789abcdefABCDEF'
const BODY = `# settings\nAPI_KEY=${SECRET}\n${'const filler = 1\n'.repeat(200)}`

type Msg = { type: string; sessionId: string; parentId?: string; name?: string; snapshot?: any; event?: any; definition?: string }

describe('stately inspector adapter', () => {
  let dir: string
  let wss: WebSocketServer
  let received: Msg[]
  let raw: string[]
  let engine: Engine | null = null
  let inspect: StatelyInspect | null = null

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-inspect-'))
    received = []
    raw = []
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((r) => wss.once('listening', r))
    wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        raw.push(data.toString())
        received.push(JSON.parse(data.toString()) as Msg)
      })
    })
  })

  afterEach(async () => {
    await inspect?.close()
    await engine?.close()
    engine = null
    inspect = null
    await new Promise((r) => wss.close(r))
    await rm(dir, { recursive: true, force: true })
  })

  it('streams actor, event and snapshot events of the loop and its sessions, sanitized', async () => {
    const scenario = join(dir, 'scenario.json')
    await writeFile(
      scenario,
      JSON.stringify({
        coder: [
          {
            type: 'tool_calls',
            text: 'Writing the settings.',
            calls: [{ name: 'write_file', arguments: { path: 'settings.env', content: BODY, apiKey: SECRET } }],
          },
          { type: 'text', text: 'Wrote settings.env.' },
        ],
        auditor: [
          {
            type: 'tool_calls',
            calls: [
              {
                name: 'report_finding',
                arguments: { file: 'settings.env', line: 2, severity: 'warning', message: `the key is committed: token: ${SECRET}` },
              },
            ],
          },
          { type: 'text', text: 'One warning.' },
        ],
      }),
    )
    const workspace = join(dir, 'ws')
    await (await import('node:fs/promises')).mkdir(workspace)
    const port = (wss.address() as AddressInfo).port
    inspect = createStatelyInspect(`ws://127.0.0.1:${port}`)
    engine = await createEngine({ store: new MemoryStore(), inspect: inspect.inspect })
    const plan = `# Keep the settings\n\n${'Write the settings file with every option explained. '.repeat(30)}`
    const handle = await engine.start({ plan }, { name: 'settings', models: [`scripted:${scenario}`], workspace })
    expect((await handle.done).status).toBe('completed')
    await inspect.close()

    const loopActor = received.find((m) => m.type === '@xstate.actor' && m.snapshot?.context?.name === 'settings')
    expect(loopActor, 'the loop actor registers').toBeDefined()
    expect(loopActor!.name).toBeTypeOf('string')
    expect(JSON.parse(loopActor!.definition!).id).toBe('loop')
    const loopId = loopActor!.sessionId
    const sessions = received.filter((m) => m.type === '@xstate.actor' && m.parentId === loopId)
    // coding and auditing each run a session child
    expect(sessions.length).toBeGreaterThanOrEqual(2)
    expect(sessions.every((m) => m.snapshot.input.context.name === 'settings')).toBe(true)

    const events = received.filter((m) => m.type === '@xstate.event' && m.sessionId === loopId).map((m) => m.event.type)
    expect(events).toEqual(expect.arrayContaining(['xstate.init', 'session.started', 'session.turn', 'session.done']))
    expect(received.some((m) => m.type === '@xstate.event' && sessions.some((s) => s.sessionId === m.sessionId))).toBe(true)

    const snapshots = received.filter((m) => m.type === '@xstate.snapshot' && m.sessionId === loopId)
    // activity (a token, a tool call) goes out as an event; its snapshot (a moved deadline) does not
    expect(events).toContain('session.activity')
    expect(snapshots.some((m) => m.event?.type === 'session.activity')).toBe(false)
    const values = snapshots.map((m) => JSON.stringify(m.snapshot.value))
    expect(values).toContain(JSON.stringify({ running: { coding: 'watching' } }))
    expect(values).toContain(JSON.stringify({ running: { auditing: 'watching' } }))
    expect(snapshots.at(-1)!.snapshot.value).toBe('completed')
    expect(snapshots.at(-1)!.snapshot.status).toBe('done')

    // Sanitized: the secret never leaves, the file body and the plan arrive cut.
    const all = raw.join('\n')
    expect(all).not.toContain(SECRET)
    expect(all).not.toContain('const filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1\\nconst filler = 1')
    const turn = received.find(
      (m) => m.type === '@xstate.event' && m.event.type === 'session.turn' && m.event.message.toolCalls.length > 0,
    )!
    const args = turn.event.message.toolCalls[0].arguments
    expect(args.apiKey).toBe('[redacted]')
    expect(args.content).toMatch(new RegExp(`^# settings\\nAPI_KEY=\\[redacted\\]\\n[\\s\\S]*…\\(${BODY.length} chars\\)$`))
    const last = snapshots.at(-1)!.snapshot.context
    expect(last.task.text).toMatch(/…\(\d+ chars\)$/)
    expect(last.findings[0].message).toBe('the key is committed: token: [redacted]')
    expect(last.usage.total.inputTokens).toBeGreaterThan(0)
    const started = received.find((m) => m.type === '@xstate.event' && m.event.type === 'session.started')!
    expect(started.event.messages.length).toBeLessThanOrEqual(4)
  })

  it('takes the viewer page address as its WebSocket twin and refuses other URLs', () => {
    expect(inspectorUrl('http://127.0.0.1:4747')).toBe('ws://127.0.0.1:4747/')
    expect(inspectorUrl('ws://localhost:8080')).toBe('ws://localhost:8080/')
    expect(() => inspectorUrl('ftp://x')).toThrow("inspect: 'ftp://x' is not a WebSocket URL (expected ws://host:port)")
    expect(() => inspectorUrl('nope')).toThrow("inspect: 'nope' is not a URL")
  })

  it('buffers while the inspector is down and delivers registrations once it is up', async () => {
    const port = (wss.address() as AddressInfo).port
    await new Promise((r) => wss.close(r))
    const problems: string[] = []
    inspect = createStatelyInspect(`ws://127.0.0.1:${port}`, { reconnectMs: 50, onProblem: (m) => problems.push(m) })
    inspect.inspect({ type: '@xstate.event', event: { type: 'x' }, actorRef: { sessionId: 'a' } } as never)
    await new Promise((r) => setTimeout(r, 100))
    expect(problems[0]).toMatch(/^inspect: cannot reach ws:\/\/127\.0\.0\.1:\d+\/ .*retrying/)
    wss = new WebSocketServer({ host: '127.0.0.1', port })
    wss.on('connection', (ws) => ws.on('message', (d) => received.push(JSON.parse(d.toString()) as Msg)))
    const deadline = Date.now() + 3000
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(received.map((m) => m.type)).toEqual(['@xstate.event'])
    expect(problems.at(-1)).toMatch(/^inspect: connected to/)
  })
})
