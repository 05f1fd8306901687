import { Ollama } from 'ollama'
import { describe, expect, it, onTestFinished } from 'vitest'
import { waitFor } from './helpers/wait-for.ts'
import {
  ProviderError,
  type ChatMessage,
  type ChatRequest,
  type ToolCall,
  type ToolSpec,
} from '../adapters/model-provider.ts'
import {
  classifyOllamaError,
  DEFAULT_NUM_CTX_CAP,
  normalizeOllamaHost,
  ollamaFactory,
  OllamaProvider,
  resolveOllamaHost,
  type OllamaProviderOptions,
} from '../adapters/ollama-provider.ts'
import { modelProviderContract } from './contracts/model-provider.contract.ts'
import { startOllamaServer, type ModelScript, type ServerFault } from './helpers/ollama-server.ts'

const MODEL = 'qwen3:test'

modelProviderContract('ollama', async (scenario) => {
  const server = await startOllamaServer({ models: { [MODEL]: { scenario } } })
  return { provider: new OllamaProvider({ host: server.host }), model: MODEL, cleanup: () => server.close() }
})

const tools: ToolSpec[] = [
  {
    name: 'write_file',
    description: 'Writes a file of the workspace.',
    parameters: {
      type: 'object',
      properties: { path: { type: 'string' }, content: { type: 'string' } },
      required: ['path', 'content'],
    },
  },
]

const opening: ChatMessage[] = [
  { role: 'system', content: 'You are the coder of a test loop.' },
  { role: 'user', content: 'Write hello.ts.' },
]

const text = (t: string) => ({ type: 'text', text: t })

/** A test server with `models` and a provider on it; both go away after the test. */
async function setup(models: Record<string, ModelScript>, options: Omit<OllamaProviderOptions, 'host'> = {}) {
  const server = await startOllamaServer({ models })
  onTestFinished(() => server.close())
  const provider = new OllamaProvider({ host: server.host, ...options })
  const chat = (overrides: Partial<ChatRequest> = {}) =>
    provider.chat({ model: MODEL, role: 'coder', messages: opening, tools, signal: new AbortController().signal, ...overrides })
  return { server, provider, chat }
}

/** A model answering `n` plain texts. */
function texts(n: number, t = 'one two three four five six seven eight'): ModelScript {
  return { scenario: { coder: Array.from({ length: n }, () => text(t)) } }
}

async function failure(call: Promise<unknown>): Promise<ProviderError> {
  const err = await call.then(
    () => expect.unreachable('the call should fail'),
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ProviderError)
  return err as ProviderError
}

describe('resolveOllamaHost', () => {
  it('takes the flag, then the config file, then OLLAMA_HOST, then the default', () => {
    const env = { OLLAMA_HOST: 'http://env-host:1111' }
    expect(resolveOllamaHost('http://flag:2222', 'http://config:3333', env)).toBe('http://flag:2222')
    expect(resolveOllamaHost(undefined, 'http://config:3333', env)).toBe('http://config:3333')
    expect(resolveOllamaHost(undefined, undefined, env)).toBe('http://env-host:1111')
    expect(resolveOllamaHost('', '  ', env)).toBe('http://env-host:1111')
    expect(resolveOllamaHost(undefined, undefined, {})).toBe('http://127.0.0.1:11434')
  })

  it('accepts host:port, a bare host, :port and 0.0.0.0 like Ollama reads OLLAMA_HOST', () => {
    expect(normalizeOllamaHost('gpu-box:11500')).toBe('http://gpu-box:11500')
    expect(normalizeOllamaHost('gpu-box')).toBe('http://gpu-box:11434')
    expect(normalizeOllamaHost(':9999')).toBe('http://127.0.0.1:9999')
    expect(normalizeOllamaHost('0.0.0.0:11434')).toBe('http://127.0.0.1:11434')
    expect(normalizeOllamaHost('https://ollama.example.com/')).toBe('https://ollama.example.com:443')
    expect(normalizeOllamaHost('http://127.0.0.1:11434/')).toBe('http://127.0.0.1:11434')
    expect(resolveOllamaHost(undefined, undefined, { OLLAMA_HOST: '10.0.0.5:8080' })).toBe('http://10.0.0.5:8080')
    expect(() => normalizeOllamaHost('http://bad host')).toThrow("ollama: host 'http://bad host' is not a URL or host:port")
    expect(() => normalizeOllamaHost('ftp://x:1')).toThrow("ollama: host 'ftp://x:1' must be http or https")
  })
})

describe('ollamaFactory', () => {
  it('makes a fresh provider per loop and model on the normalized host', () => {
    const factory = ollamaFactory({ host: '127.0.0.1:5555' })
    const a = factory('qwen3', 'loop-a') as OllamaProvider
    const b = factory('qwen3', 'loop-b') as OllamaProvider
    expect(a).not.toBe(b)
    expect([a.scheme, a.host, a.numCtxCap]).toEqual(['ollama', 'http://127.0.0.1:5555', DEFAULT_NUM_CTX_CAP])
  })

  it('rejects a bad host or cap when it is created', () => {
    expect(() => ollamaFactory({ host: 'http://a b' })).toThrow(/is not a URL/)
    expect(() => ollamaFactory({ numCtxCap: 0 })).toThrow('ollama: numCtxCap must be a positive integer (got 0)')
  })
})

describe('OllamaProvider', () => {
  it('streams every request, with the tools in Ollama form', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(1) })
    await chat()
    const [request] = server.chats()
    expect(request!.body).toMatchObject({ model: MODEL, stream: true })
    expect(request!.body.tools).toEqual([
      {
        type: 'function',
        function: { name: 'write_file', description: 'Writes a file of the workspace.', parameters: tools[0]!.parameters },
      },
    ])
  })

  it('sends num_ctx = min(context length, cap) on every chat and asks show once', async () => {
    const { server, chat } = await setup({
      [MODEL]: { ...texts(2), contextLength: 131_072 },
      small: { scenario: { coder: [text('a')] }, contextLength: 8_192, architecture: 'qwen3' },
      unknown: { scenario: { coder: [text('a')] }, contextLength: null },
    })
    await chat()
    await chat()
    await chat({ model: 'small' })
    await chat({ model: 'unknown' })
    expect(server.chats().map((r) => r.body.options.num_ctx)).toEqual([32_768, 32_768, 8_192, 32_768])
    expect(server.requests.filter((r) => r.path === '/api/show').map((r) => r.body.model)).toEqual([MODEL, 'small', 'unknown'])

    const capped = await setup({ [MODEL]: { ...texts(1), contextLength: 131_072 } }, { numCtxCap: 4_096 })
    await capped.chat()
    expect(capped.server.chats()[0]!.body.options).toEqual({ num_ctx: 4_096 })
  })

  it('reports the num_ctx it sends as contextLength (for the session), null when show fails or hangs', async () => {
    const { server, provider } = await setup(
      { [MODEL]: { ...texts(1), contextLength: 8_192 }, big: { scenario: { contextLength: 65_536 } } },
      { showTimeoutMs: 200 },
    )
    const signal = new AbortController().signal
    expect(await provider.contextLength(MODEL, signal)).toBe(8_192)
    expect(await provider.contextLength('big', signal)).toBe(32_768)
    expect(await provider.contextLength('llama9', signal)).toBeNull()

    server.fault({ kind: 'hang', on: 'show' }, { times: 1 })
    const fresh = new OllamaProvider({ host: server.host, showTimeoutMs: 200 })
    // the show hangs for good: only showTimeoutMs can end this wait
    expect(await fresh.contextLength(MODEL, signal)).toBeNull()
    // the chat asks show again and goes through
    expect((await fresh.chat({ model: MODEL, role: 'coder', messages: opening, tools, signal })).content).toContain('one')

    const controller = new AbortController()
    server.fault({ kind: 'hang', on: 'show' }, { times: 1 })
    const pending = new OllamaProvider({ host: server.host }).contextLength(MODEL, controller.signal)
    setTimeout(() => controller.abort(), 20)
    expect(await failure(pending)).toMatchObject({ code: 'aborted' })
  })

  it('fails fatally with no_tools before any chat when the model lacks tool calling', async () => {
    const { server, chat } = await setup({ [MODEL]: { ...texts(1), capabilities: ['completion'] } })
    const err = await failure(chat())
    expect(err).toMatchObject({ code: 'no_tools', retryable: false })
    expect(err.message).toBe(
      `ollama: model ${MODEL} on ${server.host} does not support tools; pick a model with tool calling (e.g. qwen3, llama3.1)`,
    )
    expect(server.chats()).toEqual([])
  })

  it('assumes tools work when the server reports no capabilities (older Ollama)', async () => {
    const { chat } = await setup({ [MODEL]: { ...texts(1), capabilities: null } })
    expect((await chat()).content).toBe('one two three four five six seven eight')
  })

  it('classifies a 400 "does not support tools" from chat as no_tools', async () => {
    const { server, chat } = await setup({ [MODEL]: { ...texts(1), capabilities: null } })
    server.fault({ kind: 'status', status: 400, error: `registry.ollama.ai/library/${MODEL} does not support tools` })
    expect(await failure(chat())).toMatchObject({ code: 'no_tools', retryable: false })
  })

  it('takes usage from prompt_eval_count, eval_count and total_duration', async () => {
    const { chat } = await setup({
      [MODEL]: { scenario: { coder: [{ type: 'text', text: 'ok', usage: { input: 321, output: 45 } }] }, totalDurationMs: 1_234 },
    })
    expect((await chat()).usage).toEqual({ inputTokens: 321, outputTokens: 45, durationMs: 1_234 })
  })

  it('calls onChunk for every streamed chunk: text pieces, each tool call, and the final chunk', async () => {
    const { chat } = await setup({
      [MODEL]: {
        scenario: {
          coder: [
            {
              type: 'tool_calls',
              text: 'Writing both files now.',
              calls: [
                { name: 'write_file', arguments: { path: 'a.ts', content: 'a' } },
                { name: 'write_file', arguments: { path: 'b.ts', content: 'b' } },
              ],
            },
          ],
        },
      },
    })
    const chunks: { text?: string; toolCall?: ToolCall }[] = []
    const response = await chat({ callIndex: 4, onChunk: (c) => chunks.push(c) })
    expect(chunks.filter((c) => c.text).map((c) => c.text).join('')).toBe('Writing both files now.')
    expect(chunks.filter((c) => c.toolCall).map((c) => c.toolCall)).toEqual(response.toolCalls)
    expect(chunks[chunks.length - 1]).toEqual({})
    expect(chunks.length).toBe(chunks.filter((c) => c.text).length + 2 + 1)
    expect(response.toolCalls).toEqual([
      { id: 'coder-5-1', name: 'write_file', arguments: { path: 'a.ts', content: 'a' } },
      { id: 'coder-5-2', name: 'write_file', arguments: { path: 'b.ts', content: 'b' } },
    ])
  })

  it('collects tool calls that arrive in the final chunk, with ids per role and call', async () => {
    const call = { type: 'tool_calls', calls: [{ name: 'list_findings', arguments: {} }, { name: 'list_files', arguments: {} }] }
    const { chat } = await setup({ [MODEL]: { scenario: { coder: [call, call], auditor: [call] }, toolCallsInFinalChunk: true } })
    const auditor: ChatMessage[] = [{ role: 'system', content: 'You are the auditor of a test loop.' }, opening[1]!]
    const ids: string[] = []
    for (const overrides of [{}, { role: 'auditor' as const, messages: auditor }, {}]) {
      ids.push(...(await chat(overrides)).toolCalls.map((c) => c.id))
    }
    // Without callIndex the provider counts its own calls per role.
    expect(ids).toEqual(['coder-1-1', 'coder-1-2', 'auditor-1-1', 'auditor-1-2', 'coder-2-1', 'coder-2-2'])
  })

  it('sends the history back: assistant tool calls, then tool results as role tool with tool_name', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(1) })
    const call: ToolCall = { id: 'coder-1-1', name: 'write_file', arguments: { path: 'a.ts', content: 'x' } }
    await chat({
      messages: [
        ...opening,
        { role: 'assistant', content: 'Writing.', toolCalls: [call] },
        { role: 'tool', content: 'wrote a.ts (1 bytes)', toolCallId: 'coder-1-1', toolName: 'write_file' },
      ],
    })
    expect(server.chats()[0]!.body.messages).toEqual([
      { role: 'system', content: 'You are the coder of a test loop.' },
      { role: 'user', content: 'Write hello.ts.' },
      { role: 'assistant', content: 'Writing.', tool_calls: [{ function: { name: 'write_file', arguments: { path: 'a.ts', content: 'x' } } }] },
      { role: 'tool', content: 'wrote a.ts (1 bytes)', tool_name: 'write_file' },
    ])
  })

  it('aborts mid-stream promptly with code aborted, and the server sees the connection close', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(1) })
    server.fault({ kind: 'stall', afterChunks: 1 })
    const controller = new AbortController()
    // the stream stalls for good after its first chunk: only the abort can end the call
    const call = chat({ signal: controller.signal, onChunk: () => controller.abort() })
    const err = await failure(call)
    expect(err).toMatchObject({ code: 'aborted', retryable: false, message: 'model call aborted' })
    const [request] = server.chats()
    expect(request!.chunks).toBe(1)
    await waitFor(() => request!.closedEarly, 'the server seeing the connection close')
  })

  it('aborts while waiting for the response headers, and the server sees the connection close', async () => {
    const { server, chat } = await setup({ [MODEL]: { scenario: { coder: [{ type: 'hang' }] } } })
    const controller = new AbortController()
    const call = chat({ signal: controller.signal })
    await waitFor(() => server.chats().length === 1, 'the chat request')
    controller.abort()
    expect(await failure(call)).toMatchObject({ code: 'aborted' })
    await waitFor(() => server.chats()[0]!.closedEarly, 'the server seeing the connection close')
  })

  it('rejects an already aborted call without a request', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(1) })
    const controller = new AbortController()
    controller.abort()
    expect(await failure(chat({ signal: controller.signal }))).toMatchObject({ code: 'aborted' })
    expect(server.requests).toEqual([])
  })

  it('aborting one call leaves a concurrent call of the same provider alone', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(3) })
    await chat() // warms the show cache
    server.fault({ kind: 'slow', delayMs: 30 })
    const controller = new AbortController()
    const doomed = chat({ signal: controller.signal })
    const kept = chat()
    setTimeout(() => controller.abort(), 20)
    expect(await failure(doomed)).toMatchObject({ code: 'aborted' })
    expect((await kept).content).toBe('one two three four five six seven eight')
  })

  it('keeps streaming through slow tokens, each chunk reported as it arrives', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(1) })
    server.fault({ kind: 'slow', delayMs: 40 })
    const times: number[] = []
    const response = await chat({ onChunk: () => times.push(Date.now()) })
    expect(response.content).toBe('one two three four five six seven eight')
    expect(times.length).toBe(5)
    // activity is spread over the call, not delivered at its end
    expect(times[times.length - 1]! - times[0]!).toBeGreaterThanOrEqual(120)
  })

  it('asks show again after a failed show (nothing cached but success)', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(1) })
    server.fault({ kind: 'status', status: 500, error: 'boom', on: 'show' }, { times: 1 })
    expect(await failure(chat())).toMatchObject({ code: 'server_error', retryable: true })
    expect((await chat()).content).toContain('one two')
    expect(server.requests.filter((r) => r.path === '/api/show')).toHaveLength(2)
  })

  it('the test server answers a non-streamed chat too (real client, stream: false)', async () => {
    const { server } = await setup({ [MODEL]: { scenario: { coder: [{ type: 'text', text: 'plain', usage: { input: 3, output: 1 } }] } } })
    const reply = await new Ollama({ host: server.host }).chat({ model: MODEL, messages: opening, stream: false })
    expect(reply).toMatchObject({ done: true, message: { content: 'plain' }, prompt_eval_count: 3, eval_count: 1 })
    expect((await new Ollama({ host: server.host }).list()).models.map((m) => m.name)).toEqual([MODEL])
  })
})

describe('OllamaProvider faults', () => {
  const faults: [string, ServerFault, string, boolean][] = [
    ['a connection dropped on arrival', { kind: 'reset' }, 'connection_reset', true],
    ['HTTP 500', { kind: 'status', status: 500, error: 'internal error' }, 'server_error', true],
    ['HTTP 502', { kind: 'status', status: 502, error: 'bad gateway' }, 'server_error', true],
    ['HTTP 429', { kind: 'status', status: 429, error: 'too many requests' }, 'rate_limited', true],
    ['HTTP 503 loading model', { kind: 'status', status: 503, error: 'loading model' }, 'model_loading', true],
    ['HTTP 503 busy', { kind: 'status', status: 503, error: 'server busy, please try again' }, 'server_error', true],
    ['a stream cut mid-message (socket destroyed)', { kind: 'cut', afterChunks: 2 }, 'stream_cut', true],
    ['a stream that ends without its final chunk', { kind: 'end', afterChunks: 2 }, 'stream_cut', true],
    ['a malformed NDJSON line', { kind: 'malformed', afterChunks: 1 }, 'bad_response', true],
    ['an error line inside the stream', { kind: 'stream_error', afterChunks: 1, error: 'llama runner process has terminated' }, 'server_error', true],
    ['a 404 on chat for a model show knew', { kind: 'status', status: 404, error: `model '${MODEL}' not found` }, 'model_not_found', false],
    ['HTTP 401', { kind: 'status', status: 401, error: 'unauthorized' }, 'unauthorized', false],
    ['HTTP 403', { kind: 'status', status: 403, error: 'forbidden' }, 'unauthorized', false],
    ['another 4xx', { kind: 'status', status: 400, error: 'invalid options' }, 'bad_request', false],
  ]

  it.each(faults)('%s → %s', async (_, fault, code, retryable) => {
    const { server, chat } = await setup({ [MODEL]: texts(2) })
    server.fault(fault, { times: 1 })
    expect(await failure(chat())).toMatchObject({ code, retryable })
    // the fault used no scenario entry, and the server works again
    expect(server.consumed(MODEL, 'coder')).toBe(0)
    expect((await chat()).content).toBe('one two three four five six seven eight')
  })

  it('a refused connection → connection_refused (retryable), naming the host', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(1) })
    await server.refuse()
    const err = await failure(chat())
    expect(err).toMatchObject({ code: 'connection_refused', retryable: true })
    expect(err.message).toBe(`ollama: cannot reach ${server.host}: connection refused; is Ollama running (ollama serve)? (ECONNREFUSED)`)
    await server.accept()
    expect((await chat()).content).toContain('one')
  })

  it('an unknown model → model_not_found (fatal) with the pull hint, from show before any chat', async () => {
    const { server, chat } = await setup({ [MODEL]: texts(1) })
    const err = await failure(chat({ model: 'llama9:70b' }))
    expect(err).toMatchObject({ code: 'model_not_found', retryable: false })
    expect(err.message).toBe(`ollama: model llama9:70b is not available on ${server.host}; run \`ollama pull llama9:70b\``)
    expect(server.chats()).toEqual([])
  })

  it('a path that is not Ollama (404 page not found) → not_found (fatal)', async () => {
    const { server } = await setup({ [MODEL]: texts(1) })
    const provider = new OllamaProvider({ host: `${server.host}/nothing-here` })
    const err = await failure(provider.chat({ model: MODEL, role: 'coder', messages: opening, tools, signal: new AbortController().signal }))
    expect(err).toMatchObject({ code: 'not_found', retryable: false })
    expect(err.message).toContain('is it an Ollama server?')
  })

  it('scenario error entries come over HTTP as the matching failures', async () => {
    const entries = ['ECONNRESET', 'rate_limited', 'server_error', 'unauthorized', 'model_not_found'] as const
    const { chat } = await setup({ [MODEL]: { scenario: { coder: entries.map((error) => ({ type: 'error', error })) } } })
    const codes = []
    for (const _ of entries) codes.push((await failure(chat())).code)
    expect(codes).toEqual(['connection_reset', 'rate_limited', 'server_error', 'unauthorized', 'model_not_found'])
  })
})

describe('classifyOllamaError', () => {
  const host = 'http://127.0.0.1:11434'
  const classify = (err: unknown) => classifyOllamaError(err, 'm', host)
  const fetchFailed = (code: string) => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) })

  it('passes ProviderErrors through and turns aborts into aborted', () => {
    const own = new ProviderError('x', 'no_tools', false)
    expect(classify(own)).toBe(own)
    expect(classify(new DOMException('This operation was aborted', 'AbortError'))).toMatchObject({ code: 'aborted' })
  })

  it('maps network codes down the cause chain', () => {
    expect(classify(fetchFailed('ECONNREFUSED'))).toMatchObject({ code: 'connection_refused', retryable: true })
    expect(classify(fetchFailed('ECONNRESET'))).toMatchObject({ code: 'connection_reset', retryable: true })
    expect(classify(fetchFailed('UND_ERR_HEADERS_TIMEOUT'))).toMatchObject({ code: 'timeout', retryable: true })
    expect(classify(fetchFailed('ENOTFOUND'))).toMatchObject({ code: 'host_not_found', retryable: true })
    expect(classify(new Error('socket hang up'))).toMatchObject({ code: 'connection_reset', retryable: true })
    expect(classify(Object.assign(new TypeError('terminated'), { cause: fetchFailed('UND_ERR_SOCKET').cause }))).toMatchObject({
      code: 'stream_cut',
      retryable: true,
    })
  })

  it('makes unknown failures fatal internal errors with the message', () => {
    expect(classify(new RangeError('bad thing'))).toMatchObject({ code: 'internal', retryable: false, message: 'ollama: m on http://127.0.0.1:11434: bad thing' })
  })
})
