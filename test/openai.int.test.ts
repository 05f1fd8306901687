/**
 * The plain loop on a REAL OpenAI-compatible server. Runs only when OPENAI_BASE_URL is set, e.g.
 *   llama-server -m qwen3-8b.gguf --jinja --port 8080
 *   OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_MODEL=qwen3-8b npx vitest run test/openai.int.test.ts
 * A hosted API needs OPENAI_API_KEY too. The model must call tools. Small models do not
 * always finish the task, so the loop must end on its own terms (not on a provider
 * failure) with real token counts; the file is checked when it completed.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryStore } from '../adapters/memory-store.ts'
import { resolveOpenAI } from '../adapters/openai-config.ts'
import { openaiFactory, OpenAIProvider } from '../adapters/openai-provider.ts'
import { createEngine, type Engine } from '../services/engine.ts'

const MODEL = process.env.OPENAI_MODEL || 'gpt-4.1-mini'
/** CPU-only servers take minutes per loop: raise with OPENAI_TEST_TIMEOUT_MS. */
const TIMEOUT_MS = Number(process.env.OPENAI_TEST_TIMEOUT_MS) || 600_000

describe.skipIf(!process.env.OPENAI_BASE_URL)('openai-compatible (real server)', () => {
  const server = resolveOpenAI('openai')
  let workspace: string
  let engine: Engine | null = null

  beforeAll(async () => {
    workspace = await mkdtemp(join(tmpdir(), 'loopstate-openai-int-'))
  })

  afterAll(async () => {
    await engine?.close()
    await rm(workspace, { recursive: true, force: true })
  })

  it(`${MODEL} on ${server.baseURL}: a context window, a streamed chat with usage`, { timeout: TIMEOUT_MS }, async () => {
    const provider = new OpenAIProvider(server)
    expect(await provider.contextLength(MODEL, AbortSignal.timeout(TIMEOUT_MS))).toBeGreaterThan(0)
    const chunks: unknown[] = []
    const response = await provider.chat({
      model: MODEL,
      role: 'coder',
      messages: [
        { role: 'system', content: 'You are the coder of a test. Answer in one short sentence.' },
        { role: 'user', content: 'Say hello.' },
      ],
      tools: [],
      signal: AbortSignal.timeout(TIMEOUT_MS),
      onChunk: (c) => chunks.push(c),
    })
    expect(chunks.length).toBeGreaterThan(0)
    expect(response.content.length).toBeGreaterThan(0)
    expect(response.usage.inputTokens).toBeGreaterThan(0)
    expect(response.usage.outputTokens).toBeGreaterThan(0)
  })

  it(`${MODEL} runs the plain plan loop to its end`, { timeout: TIMEOUT_MS }, async () => {
    engine = await createEngine({ store: new MemoryStore(), providers: { openai: openaiFactory(server) } })
    const handle = await engine.start(
      { plan: '# Write hello\n\nCreate the file hello.txt containing exactly the text: hello world' },
      {
        models: [`openai:${MODEL}`],
        workspace,
        maxIterations: 2,
        maxTurnsPerSession: 12,
        stallTimeoutMs: Math.min(TIMEOUT_MS, 300_000),
        retryBackoff: { baseMs: 1_000, maxMs: 5_000, jitter: 0 },
      },
    )
    const output = await handle.done
    expect(output.error?.code ?? '', output.error?.message).not.toMatch(/^(model_not_found|no_tools|connection_refused|unauthorized|not_found|context_length)$/)
    expect(['completed', 'max_iterations', 'no_output', 'error_max_retries']).toContain(output.reason)
    expect(output.usage.byRole.coder.inputTokens).toBeGreaterThan(0)
    if (output.reason === 'completed') {
      expect(await readFile(join(workspace, 'hello.txt'), 'utf8').catch(() => null)).not.toBeNull()
    }
  })
})
