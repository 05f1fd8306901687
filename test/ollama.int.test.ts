/**
 * The plain loop on a REAL Ollama. Runs only when OLLAMA_HOST is set, e.g.
 *   OLLAMA_HOST=127.0.0.1:11434 OLLAMA_MODEL=qwen3:0.6b npx vitest run test/ollama.int.test.ts
 * The model (default qwen3:0.6b) must be pulled and support tools. Small models
 * do not always finish the task, so the loop must end on its own terms (not on a
 * provider failure) with real token counts; the file is checked when it completed.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryStore } from '../adapters/memory-store.ts'
import { OllamaProvider, ollamaFactory, resolveOllamaHost } from '../adapters/ollama-provider.ts'
import { createEngine, type Engine } from '../services/engine.ts'

const MODEL = process.env.OLLAMA_MODEL || 'qwen3:0.6b'
/** CPU-only machines take minutes per loop: raise with OLLAMA_TEST_TIMEOUT_MS. */
const TIMEOUT_MS = Number(process.env.OLLAMA_TEST_TIMEOUT_MS) || 600_000

describe.skipIf(!process.env.OLLAMA_HOST)('ollama (real server)', () => {
  const host = resolveOllamaHost()
  let workspace: string
  let engine: Engine | null = null

  beforeAll(async () => {
    workspace = await mkdtemp(join(tmpdir(), 'loopstate-ollama-int-'))
  })

  afterAll(async () => {
    await engine?.close()
    await rm(workspace, { recursive: true, force: true })
  })

  it(`${MODEL} on ${host}: knows its context and tools, answers a chat with usage`, { timeout: TIMEOUT_MS }, async () => {
    const provider = new OllamaProvider({ host })
    const info = await provider.modelInfo(MODEL)
    expect(info.numCtx).toBeGreaterThan(0)
    expect(info.numCtx).toBeLessThanOrEqual(32_768)
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
    expect(response.usage.inputTokens).toBeGreaterThan(0)
    expect(response.usage.outputTokens).toBeGreaterThan(0)
    expect(response.usage.durationMs).toBeGreaterThan(0)
  })

  it(`${MODEL} runs the plain plan loop to its end`, { timeout: TIMEOUT_MS }, async () => {
    engine = await createEngine({ store: new MemoryStore(), providers: { ollama: ollamaFactory({ host }) } })
    const handle = await engine.start(
      { plan: '# Write hello\n\nCreate the file hello.txt containing exactly the text: hello world' },
      {
        models: [`ollama:${MODEL}`],
        workspace,
        maxIterations: 2,
        maxTurnsPerSession: 12,
        stallTimeoutMs: Math.min(TIMEOUT_MS, 300_000),
        retryBackoff: { baseMs: 1_000, maxMs: 5_000, jitter: 0 },
      },
    )
    const output = await handle.done
    expect(output.error?.code ?? '', output.error?.message).not.toMatch(/^(model_not_found|no_tools|connection_refused|unauthorized)$/)
    expect(['completed', 'max_iterations', 'no_output', 'error_max_retries']).toContain(output.reason)
    expect(output.usage.byRole.coder.inputTokens).toBeGreaterThan(0)
    expect(output.usage.byRole.coder.outputTokens).toBeGreaterThan(0)
    if (output.reason === 'completed') {
      expect(await readFile(join(workspace, 'hello.txt'), 'utf8').catch(() => null)).not.toBeNull()
    }
  })
})
