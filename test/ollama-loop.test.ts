/** Whole loops on the engine with the real Ollama provider, against the Ollama-compatible test server. */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MemoryStore } from '../adapters/memory-store.ts'
import { ollamaFactory } from '../adapters/ollama-provider.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { startOllamaServer, type OllamaServerScript, type OllamaTestServer } from './helpers/ollama-server.ts'

const MODEL = 'qwen3:test'
const PLAN = '# Write hello\n\nWrite hello.ts that prints "hello world".'
const quickRetries = { retryBackoff: { baseMs: 10, maxMs: 50, jitter: 0 } }

let workspace: string
let server: OllamaTestServer | null = null
let engine: Engine | null = null

beforeEach(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'loopstate-ollama-'))
})

afterEach(async () => {
  await engine?.close()
  engine = null
  await server?.close()
  server = null
  await rm(workspace, { recursive: true, force: true })
})

async function engineOn(script: OllamaServerScript): Promise<{ server: OllamaTestServer; engine: Engine }> {
  server = await startOllamaServer(script)
  engine = await createEngine({ store: new MemoryStore(), providers: { ollama: ollamaFactory({ host: server.host }) } })
  return { server, engine }
}

const text = (t: string, input: number, output: number) => ({ type: 'text', text: t, usage: { input, output } })
const calls = (name: string, args: Record<string, unknown>, input: number, output: number) => ({
  type: 'tool_calls',
  calls: [{ name, arguments: args }],
  usage: { input, output },
})

describe('ollama loop', () => {
  it('runs a plain plan to completed: the coder writes, the auditor reports then resolves a bug', async () => {
    const { server, engine } = await engineOn({
      models: {
        [MODEL]: {
          scenario: {
            coder: [
              calls('write_file', { path: 'hello.ts', content: "console.log('hello')\n" }, 100, 20),
              text('Wrote hello.ts.', 150, 10),
              calls('write_file', { path: 'hello.ts', content: "console.log('hello world')\n" }, 200, 30),
              text('Fixed the greeting (F1).', 250, 5),
            ],
            auditor: [
              calls('report_finding', { file: 'hello.ts', line: 1, severity: 'bug', message: 'prints hello, not hello world' }, 300, 40),
              text('One bug: the greeting is incomplete.', 350, 8),
              calls('resolve_finding', { id: 'F1' }, 400, 12),
              text('Clean: hello.ts prints hello world.', 450, 6),
            ],
          },
          contextLength: 131_072,
          totalDurationMs: 250,
        },
      },
    })
    const handle = await engine.start({ plan: PLAN }, { models: [`ollama:${MODEL}`], workspace, ...quickRetries })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2, error: null })
    expect(await readFile(join(workspace, 'hello.ts'), 'utf8')).toBe("console.log('hello world')\n")

    const detail = (await engine.get(handle.name))!
    expect(detail.findings).toMatchObject([{ id: 'F1', file: 'hello.ts', line: 1, severity: 'bug', status: 'resolved' }])
    expect(detail.usage.byRole.coder).toMatchObject({ inputTokens: 700, outputTokens: 65, durationMs: 1_000, calls: 4 })
    expect(detail.usage.byRole.auditor).toMatchObject({ inputTokens: 1_500, outputTokens: 66, durationMs: 1_000, calls: 4 })
    expect(detail.usage.byModel[`ollama:${MODEL}`]).toMatchObject({ inputTokens: 2_200, outputTokens: 131, calls: 8 })

    // On the wire: every chat streamed with num_ctx capped, roles told apart by the system prompt, tool results sent back.
    const chats = server.chats(MODEL)
    expect(chats.map((c) => c.role)).toEqual(['coder', 'coder', 'auditor', 'auditor', 'coder', 'coder', 'auditor', 'auditor'])
    expect(chats.every((c) => c.body.stream === true && c.body.options.num_ctx === 32_768)).toBe(true)
    expect(chats[0]!.body.tools.map((t: { function: { name: string } }) => t.function.name)).toContain('write_file')
    expect(chats[2]!.body.tools.map((t: { function: { name: string } }) => t.function.name)).toContain('report_finding')
    const coderFollowUp = chats[1]!.body.messages as { role: string; tool_name?: string; tool_calls?: unknown[] }[]
    expect(coderFollowUp.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool'])
    expect(coderFollowUp[2]!.tool_calls).toEqual([{ function: { name: 'write_file', arguments: { path: 'hello.ts', content: "console.log('hello')\n" } } }])
    expect(coderFollowUp[3]).toMatchObject({ role: 'tool', tool_name: 'write_file' })
    expect(server.requests.filter((r) => r.path === '/api/show')).toHaveLength(1)
  })

  it('backs off through two 503 loading-model answers and completes', async () => {
    const { server, engine } = await engineOn({
      models: { [MODEL]: { scenario: { coder: [text('Done.', 10, 2)], auditor: [text('Clean.', 10, 2)] } } },
    })
    server.fault({ kind: 'status', status: 503, error: 'loading model' }, { times: 2 })
    const handle = await engine.start({ plan: PLAN }, { models: [`ollama:${MODEL}`], workspace, ...quickRetries })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'completed', reason: 'completed', error: null })
    expect(server.chats().map((c) => c.outcome)).toEqual(['fault:status:503', 'fault:status:503', 'ok', 'ok'])
    // only the answered call carries tokens
    expect(output.usage.byRole.coder).toMatchObject({ inputTokens: 10, outputTokens: 2 })
  })

  it('nudges a stream that stalls: the call is aborted on the wire and the loop completes', async () => {
    const { server, engine } = await engineOn({
      models: { [MODEL]: { scenario: { coder: [text('Done with the plan, all written.', 10, 2)], auditor: [text('Clean.', 10, 2)] } } },
    })
    server.fault({ kind: 'stall', afterChunks: 1 }, { times: 1 })
    const handle = await engine.start({ plan: PLAN }, { models: [`ollama:${MODEL}`], workspace, stallTimeoutMs: 300, ...quickRetries })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'completed', reason: 'completed' })
    const [stalled, nudged] = server.chats()
    expect(stalled).toMatchObject({ outcome: 'fault:stall', chunks: 1, closedEarly: true })
    // the re-prompt carries the nudge after the opening messages
    expect(nudged!.body.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user', 'user'])
  })

  it('keeps a slow stream that takes longer than the stall timeout alive, with one state change per activity interval at most', async () => {
    const events: number[] = []
    server = await startOllamaServer({
      models: {
        [MODEL]: {
          scenario: {
            coder: [text('one two three four five six seven eight nine ten eleven twelve', 10, 2)],
            auditor: [text('Clean.', 10, 2)],
          },
        },
      },
    })
    engine = await createEngine({
      store: new MemoryStore(),
      providers: { ollama: ollamaFactory({ host: server.host }) },
      inspect: (e) => {
        if (e.type === '@xstate.event' && e.event.type === 'session.activity' && e.actorRef.sessionId === e.rootId) events.push(Date.now())
      },
    })
    // 120 ms before each of the 5 lines of a reply: ~600 ms per call, twice the stall timeout
    server.fault({ kind: 'slow', delayMs: 120 })
    const handle = await engine.start({ plan: PLAN }, { models: [`ollama:${MODEL}`], workspace, stallTimeoutMs: 300, ...quickRetries })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'completed', reason: 'completed' })
    expect(server.chats().map((c) => c.outcome)).toEqual(['fault:slow', 'fault:slow']) // no nudge, no re-ask
    expect(server.chats().every((c) => !c.closedEarly)).toBe(true)
    // the stall timeout of 300 ms gives an activity interval of 15 ms: chunks 120 ms apart each count
    expect(events.length).toBeGreaterThanOrEqual(6)
    const gaps = events.slice(1).map((t, i) => t - events[i]!)
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(14)
  })

  it('coalesces activity that comes faster than the interval', async () => {
    const events: number[] = []
    server = await startOllamaServer({
      models: { [MODEL]: { scenario: { coder: [text('one two three four five six seven eight', 10, 2)], auditor: [text('Clean.', 10, 2)] } } },
    })
    engine = await createEngine({
      store: new MemoryStore(),
      providers: { ollama: ollamaFactory({ host: server.host }) },
      inspect: (e) => {
        if (e.type === '@xstate.event' && e.event.type === 'session.activity' && e.actorRef.sessionId === e.rootId) events.push(Date.now())
      },
    })
    // chunks 10 ms apart, the activity interval a second (stall timeout 60 s): ~1 event per call, not 5
    server.fault({ kind: 'slow', delayMs: 10 })
    const handle = await engine.start({ plan: PLAN }, { models: [`ollama:${MODEL}`], workspace, ...quickRetries })
    expect(await handle.done).toMatchObject({ status: 'completed', reason: 'completed' })
    expect(server.chats().reduce((n, c) => n + c.chunks, 0)).toBeGreaterThanOrEqual(6)
    expect(events.length).toBeGreaterThanOrEqual(2) // the first chunk of each call
    expect(events.length).toBeLessThanOrEqual(4)
  })

  it('ends with provider_fatal and the pull hint when the model is not on the server', async () => {
    const { server, engine } = await engineOn({ models: { [MODEL]: { scenario: {} } } })
    const handle = await engine.start({ plan: PLAN }, { models: ['ollama:llama9:70b'], workspace, ...quickRetries })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'errored', reason: 'provider_fatal' })
    expect(output.error).toMatchObject({ code: 'model_not_found', retryable: false })
    expect(output.error!.message).toBe(`ollama: model llama9:70b is not available on ${server.host}; run \`ollama pull llama9:70b\``)
    expect((await engine.get(handle.name))!.error?.message).toContain('ollama pull llama9:70b')
    expect(server.chats()).toEqual([])
  })
})
