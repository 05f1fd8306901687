import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest'
import { ProviderError, type ChatRequest, type Role, type ToolCall } from '../adapters/model-provider.ts'
import { loadScenario, parseScenario, ScenarioError } from '../adapters/scenario.ts'
import {
  createScriptedProvider,
  createScriptedProviderSync,
  scriptedFactory,
  ScriptedProvider,
} from '../adapters/scripted-provider.ts'
import { modelProviderContract } from './contracts/model-provider.contract.ts'

modelProviderContract('scripted', async (scenario) => ({ provider: new ScriptedProvider(scenario), model: 'demo.json' }))

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'loopstate-scenario-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function provider(json: unknown): ScriptedProvider {
  return new ScriptedProvider(parseScenario(json, 'demo.json'))
}

function request(role: Role = 'coder', overrides: Partial<ChatRequest> = {}): ChatRequest {
  return {
    model: 'demo.json',
    role,
    messages: [{ role: 'user', content: 'x'.repeat(40) }],
    tools: [],
    signal: new AbortController().signal,
    ...overrides,
  }
}

function parseError(json: unknown): string {
  try {
    parseScenario(json, 'demo.json')
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioError)
    return (err as Error).message
  }
  throw new Error('expected a ScenarioError')
}

describe('scenario', () => {
  it('defaults missing roles to no entries', () => {
    expect(parseScenario({}, 'demo.json')).toEqual({ source: 'demo.json', coder: [], auditor: [] })
  })

  it('names the file and the entry of a bad type', () => {
    const text = { type: 'text', text: 'ok' }
    expect(parseError({ coder: [text, text, { type: 'bogus' }] })).toBe(
      'scenario: demo.json: coder[2].type: expected one of text|tool_calls|error|hang',
    )
    expect(parseError({ auditor: [{ text: 'no type' }] })).toBe(
      'scenario: demo.json: auditor[0].type: expected one of text|tool_calls|error|hang',
    )
  })

  it('rejects unknown keys', () => {
    expect(parseError({ auditor: [{ type: 'hang', delayMs: 5 }] })).toBe("scenario: demo.json: auditor[0]: unknown key 'delayMs'")
    expect(parseError({ coder: [], planner: [] })).toBe("scenario: demo.json: unknown key 'planner'")
    expect(parseError({ coder: [{ type: 'tool_calls', calls: [{ name: 'a', arguments: {}, id: 'x' }] }] })).toBe(
      "scenario: demo.json: coder[0].calls[0]: unknown key 'id'",
    )
  })

  it('explains bad field values in one line', () => {
    expect(parseError({ coder: [{ type: 'text', text: 3 }] })).toBe('scenario: demo.json: coder[0].text: expected string, received number')
    expect(parseError({ coder: [{ type: 'error', error: 'EPIPE' }] })).toBe(
      'scenario: demo.json: coder[0].error: expected one of ECONNREFUSED|ECONNRESET|ETIMEDOUT|rate_limited|server_error|model_not_found|unauthorized',
    )
    expect(parseError({ coder: [{ type: 'text', text: 'a', usage: { input: 1.5, output: 1 } }] })).toBe(
      'scenario: demo.json: coder[0].usage.input: expected int, received number',
    )
    expect(parseError({ coder: [{ type: 'tool_calls', calls: [] }] })).toMatch(/^scenario: demo\.json: coder\[0\]\.calls: /)
    expect(parseError({ coder: [{ type: 'text' }] })).toBe('scenario: demo.json: coder[0].text: missing (expected string)')
    expect(parseError([])).toBe('scenario: demo.json: expected object, received array')
  })

  it('loads a file, and names it when it is missing or not JSON', async () => {
    const dir = await tempDir()
    const good = join(dir, 'good.json')
    await writeFile(good, JSON.stringify({ coder: [{ type: 'hang' }] }))
    expect(await loadScenario(good)).toEqual({ source: good, coder: [{ type: 'hang' }], auditor: [] })

    const missing = join(dir, 'missing.json')
    await expect(loadScenario(missing)).rejects.toThrow(new ScenarioError(`scenario: ${missing}: file not found`))
    expect(() => createScriptedProviderSync(missing)).toThrow(`scenario: ${missing}: file not found`)

    const bad = join(dir, 'bad.json')
    await writeFile(bad, '{ "coder": [\n  { "type": "text", }\n] }')
    const error = await loadScenario(bad).then(
      () => expect.unreachable(),
      (err: Error) => err,
    )
    expect(error).toBeInstanceOf(ScenarioError)
    expect(error.message).toMatch(new RegExp(`^scenario: ${bad.replace(/[.\\]/g, '\\$&')}: not valid JSON \\(.+\\)$`))
    expect(error.message).not.toContain('\n')
    expect(() => createScriptedProviderSync(bad)).toThrow(error.message)
  })
})

describe('ScriptedProvider', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('keeps an independent cursor per role', async () => {
    const p = provider({
      coder: [
        { type: 'text', text: 'coder one' },
        { type: 'text', text: 'coder two' },
      ],
      auditor: [{ type: 'text', text: 'auditor one' }],
    })
    expect((await p.chat(request('coder'))).content).toBe('coder one')
    expect((await p.chat(request('auditor'))).content).toBe('auditor one')
    expect((await p.chat(request('coder'))).content).toBe('coder two')
    expect([p.consumed('coder'), p.consumed('auditor')]).toEqual([2, 1])
  })

  it('fails with scenario_exhausted when a role has no entries left', async () => {
    const p = provider({ coder: [{ type: 'text', text: 'only' }] })
    await p.chat(request())
    const error = await p.chat(request()).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(ProviderError)
    expect(error).toMatchObject({
      message: 'scripted: scenario demo.json has no more coder turns (used 1)',
      code: 'scenario_exhausted',
      retryable: false,
    })
    await expect(p.chat(request('auditor'))).rejects.toThrow('scripted: scenario demo.json has no more auditor turns (used 0)')
  })

  it('rejects an already aborted call without consuming an entry', async () => {
    const p = provider({ coder: [{ type: 'text', text: 'kept' }] })
    const controller = new AbortController()
    controller.abort()
    await expect(p.chat(request('coder', { signal: controller.signal }))).rejects.toMatchObject({ code: 'aborted' })
    expect(p.consumed('coder')).toBe(0)
    expect((await p.chat(request())).content).toBe('kept')
  })

  it('waits delayMs on the (fake) clock before answering', async () => {
    vi.useFakeTimers()
    const p = provider({ coder: [{ type: 'text', text: 'late', delayMs: 5_000 }] })
    let settled = false
    const call = p.chat(request()).finally(() => (settled = true))
    await vi.advanceTimersByTimeAsync(4_999)
    expect(settled).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    expect(await call).toMatchObject({ content: 'late', usage: { durationMs: 5_000 } })
    expect(vi.getTimerCount()).toBe(0)
  })

  it('aborts during a delay promptly and clears its timer', async () => {
    vi.useFakeTimers()
    const p = provider({ coder: [{ type: 'error', error: 'server_error', delayMs: 60_000 }] })
    const controller = new AbortController()
    const call = p.chat(request('coder', { signal: controller.signal })).catch((err: unknown) => err)
    await vi.advanceTimersByTimeAsync(1_000)
    expect(vi.getTimerCount()).toBe(1)
    controller.abort()
    expect(await call).toMatchObject({ code: 'aborted' })
    expect(vi.getTimerCount()).toBe(0)
  })

  it('hangs without timers until aborted', async () => {
    vi.useFakeTimers()
    const p = provider({ coder: [{ type: 'hang' }] })
    const controller = new AbortController()
    let settled = false
    const call = p.chat(request('coder', { signal: controller.signal })).catch((err: unknown) => {
      settled = true
      return err
    })
    await vi.advanceTimersByTimeAsync(3_600_000)
    expect(settled).toBe(false)
    expect(vi.getTimerCount()).toBe(0)
    controller.abort()
    expect(await call).toMatchObject({ code: 'aborted', message: 'model call aborted' })
  })

  it('classifies every scripted error', async () => {
    const cases = [
      ['ECONNREFUSED', true, 'connect ECONNREFUSED 127.0.0.1:11434'],
      ['ECONNRESET', true, 'read ECONNRESET'],
      ['ETIMEDOUT', true, 'connect ETIMEDOUT 127.0.0.1:11434'],
      ['rate_limited', true, 'rate limited (429 Too Many Requests)'],
      ['server_error', true, 'server error (500 Internal Server Error)'],
      ['model_not_found', false, "model 'demo.json' not found"],
      ['unauthorized', false, 'unauthorized (401)'],
    ] as const
    const p = provider({ coder: cases.map(([error]) => ({ type: 'error', error })) })
    for (const [code, retryable, message] of cases) {
      await expect(p.chat(request())).rejects.toMatchObject({ name: 'ProviderError', code, retryable, message })
    }
    const custom = provider({ coder: [{ type: 'error', error: 'unauthorized', message: 'bad key' }] })
    await expect(custom.chat(request())).rejects.toMatchObject({ code: 'unauthorized', message: 'bad key' })
  })

  it('streams text in at most 4 chunks and one chunk per tool call', async () => {
    const text = 'one two three four five six seven eight nine ten'
    const p = provider({
      coder: [
        { type: 'text', text },
        { type: 'tool_calls', text: 'reading', calls: [{ name: 'a', arguments: {} }, { name: 'b', arguments: { n: 1 } }] },
      ],
    })
    const chunks: { text?: string; toolCall?: ToolCall }[] = []
    await p.chat(request('coder', { onChunk: (c) => chunks.push(c) }))
    expect(chunks.length).toBeLessThanOrEqual(4)
    expect(chunks.length).toBeGreaterThan(1)
    expect(chunks.map((c) => c.text).join('')).toBe(text)
    chunks.length = 0
    const response = await p.chat(request('coder', { onChunk: (c) => chunks.push(c) }))
    expect(chunks).toEqual([{ text: 'reading' }, { toolCall: response.toolCalls[0] }, { toolCall: response.toolCalls[1] }])
  })

  it('gives tool calls ids naming role, entry and position, the same when an entry is asked again', async () => {
    const call = { type: 'tool_calls', calls: [{ name: 'list_findings', arguments: {} }, { name: 'list_files', arguments: {} }] }
    const p = provider({ coder: [call, call], auditor: [call] })
    const ids = []
    for (const role of ['coder', 'auditor', 'coder'] as const) ids.push(...(await p.chat(request(role))).toolCalls.map((c) => c.id))
    expect(ids).toEqual(['coder-1-1', 'coder-1-2', 'auditor-1-1', 'auditor-1-2', 'coder-2-1', 'coder-2-2'])
    const again = await p.chat({ ...request('coder'), callIndex: 1 })
    expect(again.toolCalls.map((c) => c.id)).toEqual(['coder-2-1', 'coder-2-2'])
  })

  it('estimates usage from characters when the entry gives none', async () => {
    const p = provider({ coder: [{ type: 'text', text: 'abcde' }, { type: 'tool_calls', calls: [{ name: 'a', arguments: {} }] }] })
    expect((await p.chat(request())).usage).toEqual({ inputTokens: 10, outputTokens: 2, durationMs: 0 })
    const response = await p.chat(request())
    expect(response.usage.outputTokens).toBe(Math.ceil(JSON.stringify(response.toolCalls[0]).length / 4))
  })

  it('hands out copies of the scenario arguments', async () => {
    const call = { type: 'tool_calls', calls: [{ name: 'a', arguments: { list: [1] } }] }
    const p = provider({ coder: [call, call] })
    const first = (await p.chat(request())).toolCalls[0]!.arguments
    ;(first.list as number[]).push(2)
    expect((await p.chat(request())).toolCalls[0]!.arguments).toEqual({ list: [1] })
  })
})

describe('scripted loaders', () => {
  it('createScriptedProvider and scriptedFactory load a scenario file', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'demo.json'), JSON.stringify({ auditor: [{ type: 'text', text: 'clean' }] }))
    const loaded = await createScriptedProvider(join(dir, 'demo.json'))
    expect((await loaded.chat(request('auditor'))).content).toBe('clean')

    const factory = scriptedFactory(dir)
    const a = factory('demo.json', 'loop-a')
    const b = factory('demo.json', 'loop-b')
    expect(a.scheme).toBe('scripted')
    expect((await a.chat(request('auditor'))).content).toBe('clean')
    expect((await b.chat(request('auditor'))).content).toBe('clean')
    expect(() => factory('nope.json', 'loop-c')).toThrow(`scenario: ${join(dir, 'nope.json')}: file not found`)
  })

  it('scriptedFactory reads a scenario again when the file changes, and refuses it when it turns bad', async () => {
    const dir = await tempDir()
    const file = join(dir, 'live.json')
    await writeFile(file, JSON.stringify({ coder: [{ type: 'text', text: 'first' }] }))
    const factory = scriptedFactory(dir)
    expect((await factory('live.json', 'a').chat(request('coder'))).content).toBe('first')
    await writeFile(file, JSON.stringify({ coder: [{ type: 'text', text: 'second version' }] }))
    expect((await factory('live.json', 'b').chat(request('coder'))).content).toBe('second version')
    await writeFile(file, JSON.stringify({ coder: [{ type: 'txt' }] }))
    expect(() => factory('live.json', 'c')).toThrow(`scenario: ${file}: coder[0].type: expected one of`)
  })
})
