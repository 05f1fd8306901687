/**
 * The `ModelProvider` contract, phrased in terms of a scenario: the scripted
 * provider replays it directly, an Ollama-compatible test server replays it over
 * HTTP for the real client. Each test builds a fresh provider on its scenario.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import {
  ProviderError,
  type ChatMessage,
  type ChatRequest,
  type ModelProvider,
  type ToolCall,
  type ToolSpec,
} from '../../adapters/model-provider.ts'
import { parseScenario, type Scenario } from '../../adapters/scenario.ts'

/** A provider (and the model name to ask it for) that answers from `scenario`. */
export type MakeModelProvider = (scenario: Scenario) => Promise<{
  provider: ModelProvider
  model: string
  cleanup?: () => Promise<void>
}>

const tools: ToolSpec[] = [
  {
    name: 'read_file',
    description: 'Reads a file of the workspace.',
    parameters: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
  },
  {
    name: 'report_finding',
    description: 'Records an audit finding.',
    parameters: {
      type: 'object',
      properties: { file: { type: 'string' }, line: { type: 'number' }, severity: { type: 'string' }, message: { type: 'string' } },
      required: ['file', 'severity', 'message'],
    },
  },
]

const messages: ChatMessage[] = [
  { role: 'system', content: 'You are the coder of a test loop.' },
  { role: 'user', content: 'Write hello.ts that prints hello.' },
]

export function modelProviderContract(name: string, make: MakeModelProvider): void {
  async function setup(json: unknown) {
    const made = await make(parseScenario(json, `${name}-contract.json`))
    if (made.cleanup) onTestFinished(made.cleanup)
    const chunks: { text?: string; toolCall?: ToolCall }[] = []
    const chat = (overrides: Partial<ChatRequest> = {}) =>
      made.provider.chat({
        model: made.model,
        role: 'coder',
        messages,
        tools,
        signal: new AbortController().signal,
        onChunk: (chunk) => chunks.push(chunk),
        ...overrides,
      })
    return { ...made, chunks, chat }
  }

  describe(`ModelProvider contract: ${name}`, () => {
    it('answers a text entry with its text, no tool calls and usage', async () => {
      const { chat } = await setup({ coder: [{ type: 'text', text: 'Done: hello.ts prints hello.' }] })
      const response = await chat()
      expect(response.content).toBe('Done: hello.ts prints hello.')
      expect(response.toolCalls).toEqual([])
      expect(response.usage.inputTokens).toBeGreaterThan(0)
      expect(response.usage.outputTokens).toBeGreaterThan(0)
      expect(response.usage.durationMs).toBeGreaterThanOrEqual(0)
    })

    it('reports the usage a scenario entry gives', async () => {
      const { chat } = await setup({ coder: [{ type: 'text', text: 'ok', usage: { input: 120, output: 7 } }] })
      const { usage } = await chat()
      expect(usage).toMatchObject({ inputTokens: 120, outputTokens: 7 })
    })

    it('answers a tool_calls entry with ids, names and arguments', async () => {
      const { chat } = await setup({
        coder: [
          {
            type: 'tool_calls',
            calls: [
              { name: 'read_file', arguments: { path: 'src/hello.ts' } },
              { name: 'report_finding', arguments: { file: 'a.ts', line: 3, severity: 'bug', message: 'off by one' } },
            ],
          },
        ],
      })
      const { toolCalls } = await chat()
      expect(toolCalls.map(({ name, arguments: args }) => ({ name, arguments: args }))).toEqual([
        { name: 'read_file', arguments: { path: 'src/hello.ts' } },
        { name: 'report_finding', arguments: { file: 'a.ts', line: 3, severity: 'bug', message: 'off by one' } },
      ])
      const ids = toolCalls.map((c) => c.id)
      expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true)
      expect(new Set(ids).size).toBe(ids.length)
    })

    it('streams chunks to onChunk: the text, and each tool call', async () => {
      const { chat, chunks } = await setup({
        coder: [
          { type: 'text', text: 'Step one done, step two next, then the audit.' },
          { type: 'tool_calls', calls: [{ name: 'read_file', arguments: { path: 'x.ts' } }] },
        ],
      })
      const text = await chat()
      expect(chunks.length).toBeGreaterThanOrEqual(1)
      expect(chunks.map((c) => c.text ?? '').join('')).toBe(text.content)
      chunks.length = 0
      const calls = await chat()
      expect(chunks.filter((c) => c.toolCall).map((c) => c.toolCall!.name)).toEqual(['read_file'])
      expect(calls.toolCalls).toHaveLength(1)
    })

    it('ends a hanging call with code aborted when the signal aborts (nothing else ends it)', async () => {
      const { chat } = await setup({ coder: [{ type: 'hang' }] })
      const controller = new AbortController()
      const call = chat({ signal: controller.signal })
      setTimeout(() => controller.abort(), 30)
      const error = await call.then(
        () => null,
        (err: unknown) => err,
      )
      expect(error).toBeInstanceOf(ProviderError)
      expect(error).toMatchObject({ code: 'aborted', retryable: false })
    })

    it('fails a retryable error entry (ECONNREFUSED) with retryable true', async () => {
      const { chat } = await setup({ coder: [{ type: 'error', error: 'ECONNREFUSED' }] })
      const error = await chat().catch((err: unknown) => err)
      expect(error).toBeInstanceOf(ProviderError)
      expect(error).toMatchObject({ retryable: true })
    })

    it('fails a model_not_found entry with retryable false', async () => {
      const { chat } = await setup({ coder: [{ type: 'error', error: 'model_not_found' }] })
      const error = await chat().catch((err: unknown) => err)
      expect(error).toBeInstanceOf(ProviderError)
      expect(error).toMatchObject({ retryable: false })
    })
  })
}
