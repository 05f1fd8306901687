/** The OpenAI-compatible provider against the OpenAI-protocol test server: the contract, the stream, every fault. */
import { describe, expect, it, onTestFinished } from 'vitest'
import { waitFor } from './helpers/wait-for.ts'
import { ProviderError, type ChatMessage, type ChatRequest, type ToolCall, type ToolSpec } from '../adapters/model-provider.ts'
import { OPENAI_PRESETS, resolveOpenAI } from '../adapters/openai-config.ts'
import { retryAfterMs } from '../adapters/openai-errors.ts'
import { DEFAULT_OPENAI_CONTEXT_LENGTH, listedContextLength, openaiFactory, OpenAIProvider, type OpenAIProviderOptions } from '../adapters/openai-provider.ts'
import { modelProviderContract } from './contracts/model-provider.contract.ts'
import { OPENAI_ERROR_BODIES, startOpenAIServer, type OpenAIModelScript, type OpenAIServerScript } from './helpers/openai-server.ts'

const MODEL = 'qwen3-8b'

modelProviderContract('openai', async (scenario) => {
  const server = await startOpenAIServer({ models: { [MODEL]: { scenario } } })
  return { provider: new OpenAIProvider({ baseURL: server.baseURL }), model: MODEL, cleanup: () => server.close() }
})

modelProviderContract('openai (arguments in one piece, reasoning first, a key required)', async (scenario) => {
  const server = await startOpenAIServer({
    apiKey: 'sk-contract-0123456789',
    models: { [MODEL]: { scenario, argumentChunks: 1, reasoning: 'Let me think about it.', reasoningField: 'reasoning' } },
  })
  return { provider: new OpenAIProvider({ baseURL: server.baseURL, apiKey: 'sk-contract-0123456789' }), model: MODEL, cleanup: () => server.close() }
})

const tools: ToolSpec[] = [
  {
    name: 'write_file',
    description: 'Writes a file of the workspace.',
    parameters: { type: 'object', properties: { path: { type: 'string' }, content: { type: 'string' } }, required: ['path', 'content'] },
  },
]
const opening: ChatMessage[] = [
  { role: 'system', content: 'You are the coder of a test loop.' },
  { role: 'user', content: 'Write hello.ts.' },
]
const text = (t: string, usage?: { input: number; output: number }) => ({ type: 'text', text: t, ...(usage ? { usage } : {}) })
const calls = (...list: [string, Record<string, unknown>][]) => ({ type: 'tool_calls', calls: list.map(([name, args]) => ({ name, arguments: args })) })

/** A test server with `model` and a provider on it; both go away after the test. */
async function setup(model: OpenAIModelScript, options: Partial<OpenAIProviderOptions> = {}, server: Omit<OpenAIServerScript, 'models'> = {}) {
  const s = await startOpenAIServer({ ...server, models: { [MODEL]: model } })
  onTestFinished(() => s.close())
  const provider = new OpenAIProvider({ baseURL: s.baseURL, ...options })
  const chunks: { text?: string; toolCall?: ToolCall }[] = []
  const chat = (overrides: Partial<ChatRequest> = {}) =>
    provider.chat({ model: MODEL, role: 'coder', messages: opening, tools, signal: new AbortController().signal, onChunk: (c) => chunks.push(c), ...overrides })
  return { server: s, provider, chat, chunks }
}

async function failure(call: Promise<unknown>): Promise<ProviderError> {
  const err = await call.then(
    () => expect.unreachable('the call should fail'),
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ProviderError)
  return err as ProviderError
}

describe('resolveOpenAI', () => {
  it('takes the flag, then the config, then OPENAI_BASE_URL, then OpenAI; the key from apiKeyEnv', () => {
    const env = { OPENAI_BASE_URL: 'http://env:1/v1', OPENAI_API_KEY: 'sk-env-key', MY_KEY: 'sk-mine' }
    expect(resolveOpenAI('openai', { flagBaseURL: 'http://flag:2/v1/', config: { baseURL: 'http://config:3/v1' }, env }).baseURL).toBe('http://flag:2/v1')
    expect(resolveOpenAI('openai', { config: { baseURL: 'http://config:3/v1' }, env }).baseURL).toBe('http://config:3/v1')
    expect(resolveOpenAI('openai', { env })).toMatchObject({ baseURL: 'http://env:1/v1', apiKey: 'sk-env-key', keyEnv: 'OPENAI_API_KEY', requiresKey: false })
    expect(resolveOpenAI('openai', { env: {} })).toMatchObject({ baseURL: 'https://api.openai.com/v1', requiresKey: true })
    expect(resolveOpenAI('openai', { env: {} }).apiKey).toBeUndefined()
    expect(resolveOpenAI('openai', { config: { apiKeyEnv: 'MY_KEY' }, env })).toMatchObject({ apiKey: 'sk-mine', keyEnv: 'MY_KEY' })
  })

  it('gives a preset its own address and key variable, never OPENAI_BASE_URL or OPENAI_API_KEY', () => {
    const env = { OPENAI_BASE_URL: 'http://env:1/v1', OPENAI_API_KEY: 'sk-openai', OPENROUTER_API_KEY: 'sk-or-key' }
    const r = resolveOpenAI('openrouter', { flagBaseURL: 'http://flag:2/v1', config: { baseURL: 'http://config/v1', apiKeyEnv: 'OPENAI_API_KEY' }, env })
    expect(r).toMatchObject({ baseURL: OPENAI_PRESETS.openrouter.baseURL, apiKey: 'sk-or-key', keyEnv: 'OPENROUTER_API_KEY', requiresKey: true })
    expect(resolveOpenAI('llamacpp', { env })).toMatchObject({ baseURL: 'http://127.0.0.1:8080/v1', requiresKey: false })
    expect(resolveOpenAI('llamacpp', { env }).apiKey).toBeUndefined()
  })

  it('refuses a base URL that is not http(s), naming it', () => {
    expect(() => resolveOpenAI('openai', { flagBaseURL: 'localhost:8080', env: {} })).toThrow(/openai: base URL 'localhost:8080'/)
    expect(() => resolveOpenAI('openai', { flagBaseURL: 'ftp://x/v1', env: {} })).toThrow(/must be http or https/)
    expect(() => openaiFactory({ baseURL: 'http://127.0.0.1:1/v1', contextLength: 0 })).toThrow(/contextLength must be a positive integer/)
  })
})

describe('OpenAIProvider', () => {
  it('streams every request with the tools as functions and asks for the usage chunk', async () => {
    const { server, chat } = await setup({ scenario: { coder: [text('Done.')] } })
    await chat()
    const [request] = server.chats()
    expect(request!.body).toMatchObject({ model: MODEL, stream: true, stream_options: { include_usage: true } })
    expect(request!.body.tools).toEqual([{ type: 'function', function: { name: 'write_file', description: tools[0]!.description, parameters: tools[0]!.parameters } }])
    expect(request!.body.messages).toEqual(opening)
  })

  it('assembles tool calls whose argument pieces arrive interleaved, by index, with the server ids', async () => {
    const { server, chat, chunks } = await setup({
      scenario: {
        coder: [
          calls(
            ['write_file', { path: 'a.ts', content: 'export const a = "{\\"not\\": json}"\n' }],
            ['write_file', { path: 'b.ts', content: 'export const b = [1, 2, 3]\n' }],
          ),
        ],
      },
      argumentChunks: 5,
      interleaveToolCalls: true,
    })
    const response = await chat()
    expect(response.toolCalls.map(({ name, arguments: a }) => ({ name, a }))).toEqual([
      { name: 'write_file', a: { path: 'a.ts', content: 'export const a = "{\\"not\\": json}"\n' } },
      { name: 'write_file', a: { path: 'b.ts', content: 'export const b = [1, 2, 3]\n' } },
    ])
    expect(response.toolCalls.every((c) => /^call_/.test(c.id) && c.argumentsError === undefined)).toBe(true)
    expect(chunks.filter((c) => c.toolCall).map((c) => c.toolCall!.id)).toEqual(response.toolCalls.map((c) => c.id))
    expect(server.chats()[0]!.chunks).toBeGreaterThan(10)
  })

  it('sends the history back: assistant tool_calls with JSON-string arguments, then tool results by id', async () => {
    const { server, chat } = await setup({ scenario: { coder: [text('ok')] } })
    const call: ToolCall = { id: 'call_abc', name: 'write_file', arguments: { path: 'x.ts', content: 'x' } }
    await chat({
      messages: [
        ...opening,
        { role: 'assistant', content: '', toolCalls: [call] },
        { role: 'tool', content: 'wrote x.ts', toolCallId: 'call_abc', toolName: 'write_file' },
      ],
    })
    expect(server.chats()[0]!.body.messages.slice(2)).toEqual([
      { role: 'assistant', content: '', tool_calls: [{ id: 'call_abc', type: 'function', function: { name: 'write_file', arguments: '{"path":"x.ts","content":"x"}' } }] },
      { role: 'tool', content: 'wrote x.ts', tool_call_id: 'call_abc' },
    ])
  })

  it('gives a call whose arguments are not JSON an argumentsError, not a guess', async () => {
    const s = await startOpenAIServer({ models: {} })
    onTestFinished(() => s.close())
    // A server that truncates the arguments (max tokens reached mid-call): a hand-made SSE answer through fetch.
    const sse = [
      { choices: [{ index: 0, delta: { role: 'assistant', tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'write_file', arguments: '{"path": "a.ts", "cont' } }] } }] },
      { choices: [{ index: 0, delta: { tool_calls: [{ index: 1, id: 'call_2', type: 'function', function: { name: 'write_file', arguments: '["a.ts"]' } }] } }] },
      { choices: [{ index: 0, delta: {}, finish_reason: 'length' }] },
    ]
      .map((c) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: MODEL, ...c })}\n\n`)
      .join('')
    const fetchStub: typeof fetch = async () => new Response(`${sse}data: [DONE]\n\n`, { headers: { 'content-type': 'text/event-stream' } })
    const provider = new OpenAIProvider({ baseURL: s.baseURL, fetch: fetchStub })
    const response = await provider.chat({ model: MODEL, role: 'coder', messages: opening, tools, signal: new AbortController().signal })
    expect(response.toolCalls).toMatchObject([
      { id: 'call_1', name: 'write_file', arguments: {}, argumentsError: expect.stringMatching(/^not valid JSON .*"path": "a.ts", "cont$/) },
      { id: 'call_2', name: 'write_file', arguments: {}, argumentsError: 'a JSON array, not an object' },
    ])
  })

  it('makes ids of its own when the server sends none or repeats one from the history', async () => {
    const chunk = (delta: unknown, finish: string | null = null) =>
      `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: MODEL, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    const body =
      chunk({ tool_calls: [{ index: 0, id: 'call_0', type: 'function', function: { name: 'write_file', arguments: '{}' } }] }) +
      chunk({ tool_calls: [{ index: 1, type: 'function', function: { name: 'write_file', arguments: '{}' } }] }) +
      chunk({}, 'tool_calls')
    const provider = new OpenAIProvider({ baseURL: 'http://127.0.0.1:9/v1', fetch: async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }) })
    const history: ChatMessage[] = [...opening, { role: 'assistant', content: '', toolCalls: [{ id: 'call_0', name: 'write_file', arguments: {} }] }]
    const response = await provider.chat({ model: MODEL, role: 'coder', messages: history, tools, signal: new AbortController().signal, callIndex: 4 })
    expect(response.toolCalls.map((c) => c.id)).toEqual(['coder-5-1', 'coder-5-2'])
  })

  it('takes usage from the usage chunk, and estimates it when the server sends none', async () => {
    const reported = await setup({ scenario: { coder: [text('Done here.', { input: 321, output: 12 })] } })
    expect((await reported.chat()).usage).toMatchObject({ inputTokens: 321, outputTokens: 12 })
    const silent = await setup({ scenario: { coder: [text('Done here, with a longer reply of forty chars.', { input: 321, output: 12 })] }, usage: false })
    const { usage } = await silent.chat()
    expect(usage.inputTokens).toBeGreaterThan(0)
    expect(usage.inputTokens).not.toBe(321)
    expect(usage.outputTokens).toBe(Math.ceil('Done here, with a longer reply of forty chars.'.length / 4))
  })

  it('keeps reasoning deltas out of the reply but reports them as activity', async () => {
    for (const reasoningField of ['reasoning_content', 'reasoning'] as const) {
      const { chat, chunks } = await setup({ scenario: { coder: [text('The answer.')] }, reasoning: 'SECRET-THOUGHT step by step', reasoningField })
      const response = await chat()
      expect(response.content).toBe('The answer.')
      expect(JSON.stringify(chunks)).not.toContain('SECRET-THOUGHT')
      const silent = chunks.findIndex((c) => c.text !== undefined)
      expect(silent, 'activity chunks come before the first text').toBeGreaterThan(0)
    }
  })

  it('drops a leading <think> block from the content', async () => {
    const { chat } = await setup({ scenario: { coder: [text('<think>hmm, let me see</think>\nThe answer.')] } })
    expect((await chat()).content).toBe('The answer.')
  })

  it('sends the key as a bearer token, and no Authorization header at all without one', async () => {
    const keyed = await setup({ scenario: { coder: [text('ok')] } }, { apiKey: 'sk-test-123456789' }, { apiKey: 'sk-test-123456789' })
    await keyed.chat()
    expect(keyed.server.chats()[0]!.headers.authorization).toBe('Bearer sk-test-123456789')
    const open = await setup({ scenario: { coder: [text('ok')] } }, { headers: { 'X-Team': 'loops' } })
    await open.chat()
    expect(open.server.chats()[0]!.headers.authorization).toBeUndefined()
    expect(open.server.chats()[0]!.headers['x-team']).toBe('loops')
  })

  it('asks again without stream_options when the server refuses them, then estimates usage', async () => {
    const { server, chat } = await setup({ scenario: { coder: [text('one'), text('two')] } })
    server.fault({ kind: 'status', status: 400, body: { error: { message: "Unrecognized request argument supplied: stream_options", type: 'invalid_request_error' } } }, { times: 1 })
    expect((await chat()).content).toBe('one')
    expect((await chat()).content).toBe('two')
    expect(server.chats().map((c) => c.body.stream_options ?? null)).toEqual([{ include_usage: true }, null, null])
  })

  it('aborts mid-stream promptly with code aborted, and the server sees the connection close', async () => {
    const { server, chat } = await setup({ scenario: { coder: [text('a b c d e f g h')] } })
    server.fault({ kind: 'stall', afterChunks: 2 })
    const controller = new AbortController()
    const call = chat({ signal: controller.signal, onChunk: () => controller.abort() })
    expect(await failure(call)).toMatchObject({ code: 'aborted', retryable: false })
    await waitFor(() => server.chats()[0]!.closedEarly, 'the server seeing the connection close')
  })

  it('rejects an already aborted call without a request', async () => {
    const { server, chat } = await setup({ scenario: { coder: [text('x')] } })
    const controller = new AbortController()
    controller.abort()
    expect(await failure(chat({ signal: controller.signal }))).toMatchObject({ code: 'aborted' })
    expect(server.chats()).toHaveLength(0)
  })
})

describe('OpenAIProvider context window', () => {
  it('takes the configured contextLength without asking the server', async () => {
    const { server, provider } = await setup({ contextLength: 4096 }, { contextLength: 12_000 })
    expect(await provider.contextLength(MODEL, new AbortController().signal)).toBe(12_000)
    expect(server.requests).toHaveLength(0)
  })

  for (const listing of ['vllm', 'openrouter', 'llamacpp'] as const) {
    it(`reads the window from a ${listing} model listing, once`, async () => {
      const { server, provider } = await setup({ contextLength: 8192 }, {}, { listing })
      expect(await provider.contextLength(MODEL, new AbortController().signal)).toBe(8192)
      expect(await provider.contextLength(MODEL, new AbortController().signal)).toBe(8192)
      expect(server.requests.filter((r) => r.path === '/v1/models')).toHaveLength(1)
    })
  }

  it('falls back to the documented default when the listing says nothing or fails', async () => {
    const plain = await setup({ contextLength: 8192 }, {}, { listing: 'openai' })
    expect(await plain.provider.contextLength(MODEL, new AbortController().signal)).toBe(DEFAULT_OPENAI_CONTEXT_LENGTH)
    const none = await setup({}, {}, { listing: 'none' })
    expect(await none.provider.contextLength(MODEL, new AbortController().signal)).toBe(DEFAULT_OPENAI_CONTEXT_LENGTH)
    expect(DEFAULT_OPENAI_CONTEXT_LENGTH).toBe(32_768)
  })

  it('knows the context fields of the common servers', () => {
    expect(listedContextLength({ id: 'm', max_model_len: 4096 })).toBe(4096)
    expect(listedContextLength({ id: 'm', context_window: 131_072 })).toBe(131_072)
    expect(listedContextLength({ id: 'm', max_context_length: 32_000 })).toBe(32_000)
    expect(listedContextLength({ id: 'm', top_provider: { context_length: 64_000 } })).toBe(64_000)
    expect(listedContextLength({ id: 'm', context_length: 'lots' })).toBeNull()
  })
})

describe('OpenAIProvider faults', () => {
  const entries = { coder: [text('a b c d e f g h i j'), text('second')] }
  const cases: [string, (s: Awaited<ReturnType<typeof setup>>['server']) => void | Promise<void>, string, boolean][] = [
    ['a refused connection', (s) => s.refuse(), 'connection_refused', true],
    ['a reset connection', (s) => s.fault({ kind: 'reset' }), 'connection_reset', true],
    ['a stream cut mid-message', (s) => s.fault({ kind: 'cut', afterChunks: 2 }), 'stream_cut', true],
    ['a stream that ends without its finish_reason', (s) => s.fault({ kind: 'end', afterChunks: 2 }), 'stream_cut', true],
    ['a stream event that is not JSON', (s) => s.fault({ kind: 'malformed', afterChunks: 1 }), 'bad_response', true],
    ['an error event inside the stream', (s) => s.fault({ kind: 'stream_error', afterChunks: 2, error: { message: 'CUDA out of memory' } }), 'server_error', true],
    ['a 500', (s) => s.fault({ kind: 'status', status: 500 }), 'server_error', true],
    ['a 503 with an HTML page from a proxy', (s) => s.fault({ kind: 'status', status: 503, body: '<html>Service Unavailable</html>' }), 'server_error', true],
    ['a 429', (s) => s.fault({ kind: 'status', status: 429, body: { error: { message: 'Rate limit reached', code: 'rate_limit_exceeded' } } }), 'rate_limited', true],
    ['OpenAI context_length_exceeded', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.contextOpenAI }), 'context_length', false],
    ['vLLM maximum context length (top-level body)', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.contextVllm }), 'context_length', false],
    ['llama.cpp exceed_context_size_error', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.contextLlamacpp }), 'context_length', false],
    ['vLLM without tool calls enabled', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.noToolsVllm }), 'no_tools', false],
    ['llama.cpp without --jinja (a 500)', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.noToolsLlamacpp }), 'no_tools', false],
    ["Ollama's /v1 with a model without tools", (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.noToolsOllama }), 'no_tools', false],
    ['OpenRouter with no tool endpoint (a 404)', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.noToolsOpenRouter }), 'no_tools', false],
    ['quota used up (a 429)', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.insufficientQuota }), 'quota', false],
    ['a 401', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.invalidKey }), 'unauthorized', false],
    ['a 403', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.forbidden }), 'forbidden', false],
    ['a 404 about the model', (s) => s.fault({ kind: 'status', ...OPENAI_ERROR_BODIES.modelNotFound }), 'model_not_found', false],
    ['a 404 page that is not about a model', (s) => s.fault({ kind: 'status', status: 404, body: '404 page not found' }), 'not_found', false],
    ['a 422', (s) => s.fault({ kind: 'status', status: 422, body: { detail: [{ loc: ['body', 'messages'], msg: 'field required' }] } }), 'bad_request', false],
  ]
  for (const [what, cause, code, retryable] of cases) {
    it(`${what} → ${code} (${retryable ? 'retryable' : 'fatal'}), one line naming the server`, async () => {
      const { server, chat } = await setup({ scenario: entries })
      await cause(server)
      const err = await failure(chat())
      expect({ code: err.code, retryable: err.retryable }).toEqual({ code, retryable })
      expect(err.message).toMatch(/^openai: /)
      expect(err.message).not.toContain('\n')
      if (code !== 'stream_cut' && code !== 'bad_response') expect(err.message).toContain('127.0.0.1')
    })
  }

  it('says what to do for the fatal ones', async () => {
    const message = async (fault: Parameters<Awaited<ReturnType<typeof setup>>['server']['fault']>[0]) => {
      const { server, chat } = await setup({ scenario: entries }, { keyEnv: 'OPENAI_API_KEY' })
      server.fault(fault)
      return (await failure(chat())).message
    }
    expect(await message({ kind: 'status', ...OPENAI_ERROR_BODIES.contextVllm })).toMatch(/maximum context length is 4096.*set "contextLength": 4096/)
    expect(await message({ kind: 'status', ...OPENAI_ERROR_BODIES.noToolsLlamacpp })).toMatch(/--jinja/)
    expect(await message({ kind: 'status', ...OPENAI_ERROR_BODIES.invalidKey })).toMatch(/no key was sent: set OPENAI_API_KEY/)
    expect(await message({ kind: 'status', ...OPENAI_ERROR_BODIES.modelNotFound })).toMatch(/curl http:\/\/127\.0\.0\.1:\d+\/v1\/models/)
    expect(await message({ kind: 'status', status: 404, body: 'nope' })).toMatch(/usually ends in \/v1/)
  })

  it("honours a 429's Retry-After, in seconds or as a date", async () => {
    const { chat } = await setup({ scenario: { coder: [{ type: 'error', error: 'rate_limited' }] } }, {}, { retryAfter: 7 })
    const err = await failure(chat())
    expect(err).toMatchObject({ code: 'rate_limited', retryable: true, retryAfterMs: 7_000 })
    expect(err.message).toContain('wait 7 s')
    const now = Date.parse('2026-12-06T12:00:00Z')
    expect(retryAfterMs(new Headers({ 'retry-after': 'Sun, 06 Dec 2026 12:00:30 GMT' }), now)).toBe(30_000)
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '1500', 'retry-after': '9' }), now)).toBe(1_500)
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined()
  })

  it('keeps the key and header values out of every message, even when the server echoes them', async () => {
    const key = 'sk-proj-EchoedKey0123456789abcdef'
    const { server, chat } = await setup({ scenario: entries }, { apiKey: key, headers: { 'X-Proxy-Token': 'proxy-token-0123456789' } })
    server.fault({ kind: 'status', status: 401, body: { error: { message: `Incorrect API key provided: ${key} (token proxy-token-0123456789)` } } })
    const err = await failure(chat())
    expect(err.code).toBe('unauthorized')
    expect(err.message).not.toContain(key)
    expect(err.message).not.toContain('proxy-token-0123456789')
    expect(err.message).toContain('[redacted]')
  })

  it('fails a hosted preset without its key before sending anything', async () => {
    const { server, chat } = await setup({ scenario: entries }, { scheme: 'openrouter', requiresKey: true, keyEnv: 'OPENROUTER_API_KEY' })
    const err = await failure(chat())
    expect(err).toMatchObject({ code: 'unauthorized', retryable: false })
    expect(err.message).toMatch(/^openrouter: no API key .*set OPENROUTER_API_KEY/)
    expect(server.requests).toHaveLength(0)
  })

  it('a fault uses no scenario entry: the call after it gets the answer', async () => {
    const { server, chat } = await setup({ scenario: entries })
    server.fault({ kind: 'cut', afterChunks: 1 }, { times: 1 })
    await failure(chat())
    expect((await chat()).content).toBe('a b c d e f g h i j')
  })
})
