/**
 * Whole loops on the OpenAI-compatible provider against the OpenAI-protocol test
 * server: through the engine, and through the CLI as a new user runs it
 * (`run plan.md --model openai:<model> --openai-base-url …`), with the key kept out
 * of the data dir and the inspector stream.
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { waitFor } from './helpers/wait-for.ts'
import { WebSocketServer } from 'ws'
import { MemoryStore } from '../adapters/memory-store.ts'
import { openaiFactory } from '../adapters/openai-provider.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { OPENAI_ERROR_BODIES, startOpenAIServer, type OpenAIServerScript, type OpenAITestServer } from './helpers/openai-server.ts'
import { random } from './helpers/secret-values.ts'

const MODEL = 'qwen3-8b'
const PLAN = '# Write hello\n\nWrite hello.ts that prints "hello world".'
const quickRetries = { retryBackoff: { baseMs: 10, maxMs: 50, jitter: 0 } }
const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))

let dir: string
let server: OpenAITestServer | null = null
let engine: Engine | null = null

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-openai-'))
})

afterEach(async () => {
  await engine?.close()
  engine = null
  await server?.close()
  server = null
  await rm(dir, { recursive: true, force: true })
})

async function engineOn(script: OpenAIServerScript): Promise<{ server: OpenAITestServer; engine: Engine }> {
  server = await startOpenAIServer(script)
  engine = await createEngine({ store: new MemoryStore(), providers: { openai: openaiFactory({ baseURL: server.baseURL }) } })
  return { server, engine }
}

const text = (t: string, input: number, output: number) => ({ type: 'text', text: t, usage: { input, output } })
const calls = (name: string, args: Record<string, unknown>, input: number, output: number) => ({
  type: 'tool_calls',
  calls: [{ name, arguments: args }],
  usage: { input, output },
})

/** A coder that writes hello.ts twice and an auditor that reports a bug, then resolves it. */
const helloScenario = {
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
}

describe('openai loop', () => {
  it('runs a plain plan to completed: tool calls streamed in pieces, usage from the usage chunks', async () => {
    const { server, engine } = await engineOn({ models: { [MODEL]: { scenario: helloScenario, argumentChunks: 4, reasoning: 'Thinking it over.' } } })
    const workspace = join(dir, 'ws')
    await mkdir(workspace)
    const handle = await engine.start({ plan: PLAN }, { models: [`openai:${MODEL}`], workspace, ...quickRetries })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2, error: null })
    expect(await readFile(join(workspace, 'hello.ts'), 'utf8')).toBe("console.log('hello world')\n")

    const detail = (await engine.get(handle.name))!
    expect(detail.findings).toMatchObject([{ id: 'F1', file: 'hello.ts', line: 1, severity: 'bug', status: 'resolved' }])
    expect(detail.usage.byRole.coder).toMatchObject({ inputTokens: 700, outputTokens: 65, calls: 4 })
    expect(detail.usage.byRole.auditor).toMatchObject({ inputTokens: 1_500, outputTokens: 66, calls: 4 })

    const chats = server.chats(MODEL)
    expect(chats.map((c) => c.role)).toEqual(['coder', 'coder', 'auditor', 'auditor', 'coder', 'coder', 'auditor', 'auditor'])
    expect(chats.every((c) => c.body.stream === true && c.body.stream_options?.include_usage === true)).toBe(true)
    // The coder's second call carries its tool call back, with the server's id on both sides.
    const followUp = chats[1]!.body.messages as { role: string; tool_calls?: { id: string }[]; tool_call_id?: string }[]
    expect(followUp.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool'])
    expect(followUp[2]!.tool_calls![0]!.id).toMatch(/^call_/)
    expect(followUp[3]!.tool_call_id).toBe(followUp[2]!.tool_calls![0]!.id)
    // The session asked the listing for the context window once.
    expect(server.requests.filter((r) => r.path === '/v1/models')).toHaveLength(1)
  })

  it('backs off through a 500 and completes', async () => {
    const { server, engine } = await engineOn({ models: { [MODEL]: { scenario: { coder: [text('All done here.', 10, 2)], auditor: [text('Clean.', 10, 2)] } } } })
    server.fault({ kind: 'status', status: 500 }, { times: 1 })
    const handle = await engine.start({ goal: 'say done' }, { models: [`openai:${MODEL}`], workspace: dir, ...quickRetries })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'completed', reason: 'completed', error: null })
    expect(server.chats().map((c) => c.outcome)).toEqual(['fault:status:500', 'ok', 'ok'])
    expect(output.usage.byRole.coder).toMatchObject({ inputTokens: 10, outputTokens: 2 })
  })

  it("waits out a 429's Retry-After before the next try", async () => {
    const store = new MemoryStore()
    server = await startOpenAIServer({ models: { [MODEL]: { scenario: { coder: [text('done', 1, 1)] } } } })
    engine = await createEngine({ store, providers: { openai: openaiFactory({ baseURL: server.baseURL }) } })
    server.fault({ kind: 'status', status: 429, headers: { 'retry-after': '120' }, body: { error: { message: 'slow down' } } })
    const handle = await engine.start({ goal: 'say done' }, { models: [`openai:${MODEL}`], workspace: dir, ...quickRetries })
    await waitFor(() => handle.view().state === 'running.backingOff', 'the loop backing off')
    await waitFor(async () => JSON.stringify((await store.get(handle.name))?.snapshot.value) === '{"running":"backingOff"}', 'the backing-off snapshot saved')
    const { context } = (await store.get(handle.name))!.snapshot
    expect(context.lastError).toMatchObject({ code: 'rate_limited', retryable: true, retryAfterMs: 120_000 })
    // The backoff alone would be 10 ms: the deadline is the server's two minutes away.
    expect(context.retryDeadline! - Date.now()).toBeGreaterThan(100_000)
    expect(server.chats()).toHaveLength(1)
    handle.cancel()
    expect(await handle.done).toMatchObject({ status: 'cancelled' })
  })

  for (const [what, fault, chunks] of [
    ['a stream that stalls mid-answer', { kind: 'stall', afterChunks: 2 }, 2],
    ['a server that takes the request and never answers', { kind: 'hang' }, 0],
  ] as const) {
    it(`nudges ${what}: the call is aborted on the wire and the loop completes`, async () => {
      const { server, engine } = await engineOn({
        models: { [MODEL]: { scenario: { coder: [text('Done with the plan, all written.', 10, 2)], auditor: [text('Clean.', 10, 2)] } } },
      })
      server.fault(fault, { times: 1 })
      const handle = await engine.start({ plan: PLAN }, { models: [`openai:${MODEL}`], workspace: dir, stallTimeoutMs: 300, ...quickRetries })
      expect(await handle.done).toMatchObject({ status: 'completed', reason: 'completed' })
      const [stalled, nudged] = server.chats()
      expect(stalled).toMatchObject({ outcome: `fault:${fault.kind}`, chunks, closedEarly: true })
      expect(nudged!.body.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user', 'user'])
    })
  }

  for (const [what, body, code, hint] of [
    ['the context window is exceeded', OPENAI_ERROR_BODIES.contextLlamacpp, 'context_length', /contextLength/],
    ['the server cannot call tools', OPENAI_ERROR_BODIES.noToolsLlamacpp, 'no_tools', /--jinja/],
    ['the model is not served', OPENAI_ERROR_BODIES.modelNotFound, 'model_not_found', /\/v1\/models/],
  ] as const) {
    it(`ends with provider_fatal and a hint when ${what}, without retrying`, async () => {
      const { server, engine } = await engineOn({ models: { [MODEL]: { scenario: { coder: [text('x', 1, 1)] } } } })
      server.fault({ kind: 'status', ...body })
      const handle = await engine.start({ goal: 'say done' }, { models: [`openai:${MODEL}`], workspace: dir, ...quickRetries })
      const output = await handle.done
      expect(output).toMatchObject({ status: 'errored', reason: 'provider_fatal' })
      expect(output.error).toMatchObject({ code, retryable: false })
      expect(output.error!.message).toMatch(hint)
      expect(server.chats()).toHaveLength(1)
    })
  }
})

describe('openai from the CLI', () => {
  function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) =>
      execFile(process.execPath, [BIN, ...args], { cwd: dir, env, timeout: 90_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      ),
    )
  }

  /** Every file under `root`, read as text. */
  async function allText(root: string): Promise<string> {
    const out: string[] = []
    for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) out.push(await readFile(join(entry.parentPath, entry.name), 'utf8'))
    }
    return out.join('\n')
  }

  it('run plan.md --model openai:<model> --openai-base-url: completes, and the key is in no record, history, journal or inspector frame', async () => {
    const key = `sk-proj-${random(40)}`
    server = await startOpenAIServer({ apiKey: key, listing: 'llamacpp', models: { [MODEL]: { scenario: helloScenario } } })
    // One answer echoes the key (as a careless proxy might): retried, and the message that is kept has it redacted.
    server.fault({ kind: 'status', status: 503, body: { error: { message: `upstream busy for key ${key}` } } }, { times: 1 })
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((r) => wss.once('listening', r))
    const frames: string[] = []
    const closed: Promise<void>[] = []
    wss.on('connection', (ws) => {
      closed.push(new Promise((r) => ws.once('close', () => r())))
      ws.on('message', (data) => frames.push(data.toString()))
    })
    try {
      const workspace = join(dir, 'ws')
      await mkdir(workspace)
      await writeFile(join(dir, 'plan.md'), PLAN)
      await writeFile(join(dir, 'config.json'), JSON.stringify({ retryBackoff: quickRetries.retryBackoff }))
      const result = await cli(
        ['run', 'plan.md', '--model', `openai:${MODEL}`, '--openai-base-url', server.baseURL, '--workspace', workspace,
          '--config', 'config.json', '--data', join(dir, 'data'), '--name', 'hello-openai', '--inspect', `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`],
        { ...process.env, LOOPSTATE_DATA: undefined, LOOPSTATE_FROM_SOURCE: '1', OPENAI_API_KEY: key, OPENAI_BASE_URL: undefined },
      )
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).toContain('loop hello-openai completed')
      expect(await readFile(join(workspace, 'hello.ts'), 'utf8')).toBe("console.log('hello world')\n")
      expect(server.chats().every((c) => c.headers.authorization === `Bearer ${key}`)).toBe(true)
      expect(server.chats().map((c) => c.outcome)).toEqual(['fault:status:503', ...Array(8).fill('ok')])

      const saved = await allText(join(dir, 'data'))
      expect(saved).toContain('upstream busy for key [redacted]') // the failure is in the history, without the key
      expect(saved).toContain('hello.ts')
      expect(saved).not.toContain(key)
      expect(closed.length, 'the CLI streamed to the inspector').toBeGreaterThan(0)
      await Promise.all(closed)
      expect(frames.length).toBeGreaterThan(10)
      expect(frames.join('\n')).not.toContain(key)
      expect(result.stdout + result.stderr).not.toContain(key)
    } finally {
      await new Promise((r) => wss.close(r))
    }
  }, 120_000)

  it('an unreachable server stops run before anything is saved, with the address in one line', async () => {
    server = await startOpenAIServer({ models: {} })
    const baseURL = server.baseURL
    await server.refuse()
    const result = await cli(
      ['run', '--goal', 'x', '--model', `openai:${MODEL}`, '--openai-base-url', baseURL, '--workspace', dir, '--data', join(dir, 'data')],
      { ...process.env, LOOPSTATE_DATA: undefined, LOOPSTATE_FROM_SOURCE: '1' },
    )
    expect(result.code).toBe(2)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain(`cannot reach ${baseURL}: connection refused`)
    await expect(readdir(join(dir, 'data', 'loops'))).rejects.toThrow()
  }, 120_000)

  it('refuses a bad base URL and a key in the config file before anything is saved', async () => {
    const env = { ...process.env, LOOPSTATE_DATA: undefined, LOOPSTATE_FROM_SOURCE: '1' }
    const bad = await cli(['run', '--goal', 'x', '--model', `openai:${MODEL}`, '--openai-base-url', 'localhost:8080', '--data', join(dir, 'data')], env)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("openai: base URL 'localhost:8080' is not a URL")
    await writeFile(join(dir, 'config.json'), JSON.stringify({ openai: { apiKey: 'sk-in-a-file-0123456789' } }))
    const keyed = await cli(['run', '--goal', 'x', '--model', `openai:${MODEL}`, '--config', 'config.json', '--data', join(dir, 'data')], env)
    expect(keyed.code).toBe(2)
    expect(keyed.stderr).toContain('openai.apiKey: keys are read from the environment only')
    await expect(readdir(join(dir, 'data'))).rejects.toThrow()
  }, 120_000)
})
