import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { ProviderError, type ChatRequest, type ModelProvider } from '../adapters/model-provider.ts'
import { loadProviderModule, ProviderModuleError } from '../adapters/provider-module.ts'
import { createEngine, type Engine } from '../services/engine.ts'

const FIXTURES = resolve('test/fixtures/providers')
const fixture = (name: string) => join(FIXTURES, name)
/** The fixture as the user named it, relative to FIXTURES (how messages show it). */
const rel = (name: string) => `./${name}`
const BUILT_IN = ['scripted', 'ollama', 'openai', 'openrouter', 'llamacpp']

/** The fixture module itself, as the loader's import sees it (the same instance). */
async function fixtureModule(name: string): Promise<Record<string, unknown>> {
  return (await import(pathToFileURL(fixture(name)).href)) as Record<string, unknown>
}

async function providerOf(name: string, model: string, scheme?: string): Promise<ModelProvider> {
  const { factory } = await loadProviderModule(rel(name), { cwd: FIXTURES, ...(scheme ? { scheme } : {}) })
  return factory(model, 'test-loop')
}

function request(signal: AbortSignal = new AbortController().signal, extra: Partial<ChatRequest> = {}): ChatRequest {
  return {
    model: 'any',
    role: 'coder',
    messages: [
      { role: 'system', content: 'You are the coder.' },
      { role: 'user', content: '# Goal\n\nWrite a file.' },
    ],
    tools: [],
    signal,
    callIndex: 0,
    ...extra,
  }
}

/** True when `promise` has not settled after the event loop has run everything it had to do. */
async function stillPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false
  promise.then(
    () => (settled = true),
    () => (settled = true),
  )
  await new Promise((r) => setImmediate(r))
  return !settled
}

describe('loadProviderModule: the module', () => {
  it('loads a module with its exported scheme and returns its absolute path', async () => {
    const loaded = await loadProviderModule(rel('echo-provider.js'), { cwd: FIXTURES, builtIn: BUILT_IN })
    expect(loaded.scheme).toBe('echo')
    expect(loaded.file).toBe(fixture('echo-provider.js'))
    expect(loaded.factory('any', 'l').scheme).toBe('echo')
  })

  it('resolves a relative file against the working directory by default', async () => {
    const loaded = await loadProviderModule('test/fixtures/providers/echo-provider.js')
    expect(loaded.file).toBe(fixture('echo-provider.js'))
  })

  it('takes a given scheme over the exported one, and needs none exported when one is given', async () => {
    const echo = await loadProviderModule(rel('echo-provider.js'), { cwd: FIXTURES, scheme: 'mine' })
    expect(echo.scheme).toBe('mine')
    expect(echo.factory('any', 'l').scheme).toBe('mine')
    const minimal = await loadProviderModule(rel('minimal-provider.js'), { cwd: FIXTURES, scheme: 'tiny' })
    expect(minimal.scheme).toBe('tiny')
    // the provider's own `scheme` property does not count
    expect(minimal.factory('m', 'l').scheme).toBe('tiny')
    // an exported scheme that is not valid does not matter when one is given
    const renamed = await loadProviderModule(rel('bad-scheme.js'), { cwd: FIXTURES, scheme: 'good.name+2' })
    expect(renamed.scheme).toBe('good.name+2')
  })

  it('refuses a file that is not there, or not a file', async () => {
    await expect(loadProviderModule('./nope.js', { cwd: FIXTURES })).rejects.toThrow(
      `provider: ./nope.js: not found (${fixture('nope.js')})`,
    )
    await expect(loadProviderModule('.', { cwd: FIXTURES })).rejects.toThrow(`provider: .: ${FIXTURES} is not a file`)
  })

  it('refuses a module that does not import, with the first line of its error', async () => {
    const syntax = loadProviderModule(rel('syntax-error.js'), { cwd: FIXTURES })
    await expect(syntax).rejects.toBeInstanceOf(ProviderModuleError)
    await expect(syntax).rejects.toThrow(/^provider: \.\/syntax-error\.js: cannot import it: \S.*$/)
    const thrown = await loadProviderModule(rel('throws-on-import.js'), { cwd: FIXTURES }).catch((e: Error) => e)
    expect((thrown as Error).message).toBe('provider: ./throws-on-import.js: cannot import it: MY_LLM_KEY is not set')
  })

  it('refuses a module without a default export, or whose default export is not a function', async () => {
    await expect(loadProviderModule(rel('no-default.js'), { cwd: FIXTURES })).rejects.toThrow(
      'provider: ./no-default.js: has no default export; export default a ProviderFactory: (model, loopName) => provider',
    )
    await expect(loadProviderModule(rel('default-not-function.js'), { cwd: FIXTURES })).rejects.toThrow(
      'provider: ./default-not-function.js: its default export is an object, not a ProviderFactory function',
    )
  })

  it('refuses a module that names no scheme when none is given', async () => {
    await expect(loadProviderModule(rel('minimal-provider.js'), { cwd: FIXTURES })).rejects.toThrow(
      "provider: ./minimal-provider.js: names no scheme: add export const scheme = '<name>' to it, or give one (<name>=./minimal-provider.js)",
    )
    await expect(loadProviderModule(rel('numeric-scheme.js'), { cwd: FIXTURES })).rejects.toThrow(
      'provider: ./numeric-scheme.js: its scheme export is 42, not a string',
    )
  })

  it('refuses a scheme that is not [a-z][a-z0-9+.-]*, exported or given', async () => {
    await expect(loadProviderModule(rel('bad-scheme.js'), { cwd: FIXTURES })).rejects.toThrow(
      "provider: ./bad-scheme.js: scheme 'My_LLM' (its scheme export) is not valid: a lowercase letter, then lowercase letters, digits, '+', '.' or '-'",
    )
    for (const scheme of ['', '1llm', 'my llm', 'Echo', 'my_llm', 'a:b']) {
      await expect(loadProviderModule(rel('echo-provider.js'), { cwd: FIXTURES, scheme })).rejects.toThrow(
        `provider: ./echo-provider.js: scheme '${scheme}' is not valid`,
      )
    }
    // a given scheme is checked before the file is even looked for
    await expect(loadProviderModule('./nope.js', { cwd: FIXTURES, scheme: 'Bad' })).rejects.toThrow("scheme 'Bad' is not valid")
  })

  it('refuses a built-in scheme, exported or given', async () => {
    await expect(loadProviderModule(rel('builtin-scheme.js'), { cwd: FIXTURES, builtIn: BUILT_IN })).rejects.toThrow(
      "provider: ./builtin-scheme.js: scheme 'ollama' (its scheme export) is built into loopstate; pick another name",
    )
    await expect(
      loadProviderModule(rel('echo-provider.js'), { cwd: FIXTURES, scheme: 'scripted', builtIn: BUILT_IN }),
    ).rejects.toThrow("provider: ./echo-provider.js: scheme 'scripted' is built into loopstate; pick another name")
    // the caller names the built-in schemes: without a list, none is refused
    expect((await loadProviderModule(rel('builtin-scheme.js'), { cwd: FIXTURES })).scheme).toBe('ollama')
    // a given scheme rescues a module whose exported one is taken
    expect((await loadProviderModule(rel('builtin-scheme.js'), { cwd: FIXTURES, scheme: 'my-ollama', builtIn: BUILT_IN })).scheme).toBe('my-ollama')
  })
})

describe('loadProviderModule: the factory', () => {
  it('names the module when the factory throws or makes no provider', async () => {
    const { factory } = await loadProviderModule(rel('throwing-provider.js'), { cwd: FIXTURES })
    const thrown = (() => {
      try {
        factory('factory-throws', 'l')
      } catch (e) {
        return e as Error
      }
      return null
    })()
    expect(thrown).toBeInstanceOf(ProviderModuleError)
    expect(thrown?.message).toBe(
      "provider: ./throwing-provider.js: its factory failed for model 'factory-throws': MY_LLM_KEY is not set",
    )
    expect(() => factory('no-chat', 'l')).toThrow(
      'provider: ./throwing-provider.js: its factory returned an object without a chat function, not a ModelProvider',
    )
    expect(() => factory('null', 'l')).toThrow('provider: ./throwing-provider.js: its factory returned null without a chat function')
    expect(() => factory('async-factory', 'l')).toThrow(
      'provider: ./throwing-provider.js: its factory returned a Promise; a ProviderFactory returns the provider itself',
    )
  })

  it('passes the model and the loop name to the factory', async () => {
    const provider = await providerOf('minimal-provider.js', 'my-model', 'tiny')
    await expect(provider.chat(request())).resolves.toMatchObject({ content: 'my-model heard 2 messages' })
  })
})

describe('answers', () => {
  const malformed: [model: string, what: string][] = [
    ['null', 'the answer is null; expected an object { content, toolCalls, usage }'],
    ['string', 'the answer is a string; expected an object { content, toolCalls, usage }'],
    ['array', 'the answer is an array; expected an object { content, toolCalls, usage }'],
    ['no-content', 'content is missing; expected a string'],
    ['content-number', 'content is 42; expected a string'],
    ['tool-calls-object', 'toolCalls is an object; expected an array'],
    ['tool-call-string', 'toolCalls[0] is a string; expected { id, name, arguments }'],
    ['tool-call-no-id', 'toolCalls[0].id is missing; expected a non-empty string'],
    ['tool-call-empty-id', 'toolCalls[0].id is empty; expected a non-empty string'],
    ['tool-call-no-name', 'toolCalls[0].name is missing; expected a non-empty string'],
    ['tool-call-name-number', 'toolCalls[0].name is 7; expected a non-empty string'],
    ['arguments-string', 'toolCalls[0].arguments is a string; expected a plain object (parse a JSON string first)'],
    ['arguments-array', 'toolCalls[0].arguments is an array; expected a plain object'],
    ['arguments-null', 'toolCalls[0].arguments is null; expected a plain object'],
    ['arguments-map', 'toolCalls[0].arguments is an object; expected a plain object'],
    ['arguments-cyclic', 'toolCalls[0].arguments cannot be saved as JSON (Converting circular structure to JSON'],
    ['arguments-error-number', 'toolCalls[0].argumentsError is 1; expected a string or nothing'],
    ['duplicate-ids', "toolCalls[1].id 'c1' repeats toolCalls[0].id; each call needs its own id"],
    ['usage-string', 'usage is a string; expected { inputTokens, outputTokens, durationMs }'],
    ['usage-partial', 'usage.durationMs is missing; expected a finite number >= 0'],
    ['usage-negative', 'usage.inputTokens is -1; expected a finite number >= 0'],
    ['usage-nan', 'usage.outputTokens is NaN; expected a finite number >= 0'],
    ['usage-infinite', 'usage.durationMs is Infinity; expected a finite number >= 0'],
    ['usage-string-number', 'usage.inputTokens is a string; expected a finite number >= 0'],
  ]

  it.each(malformed)('a malformed answer (%s) is a fatal bad_response naming what is wrong', async (model, what) => {
    const provider = await providerOf('garbage-provider.js', model)
    const err = await provider.chat(request()).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ProviderError)
    expect(err).toMatchObject({ code: 'bad_response', retryable: false })
    expect((err as Error).message.startsWith(`provider garbage (./garbage-provider.js): ${what}`)).toBe(true)
  })

  it('keeps only the fields of the contract, with arguments copied', async () => {
    const provider = await providerOf('garbage-provider.js', 'good-extra')
    const response = await provider.chat(request())
    expect(response).toStrictEqual({
      content: 'ok',
      toolCalls: [{ id: 'c1', name: 'write_file', arguments: { path: 'a', content: 'b' } }],
      usage: { inputTokens: 1, outputTokens: 2, durationMs: 3 },
    })
    const { answers } = (await fixtureModule('garbage-provider.js')) as { answers: Record<string, { toolCalls: { arguments: object }[] }> }
    expect(response.toolCalls[0]!.arguments).not.toBe(answers['good-extra']!.toolCalls[0]!.arguments)
  })

  it('refuses a tool call id that an earlier call of the session has', async () => {
    const provider = await providerOf('garbage-provider.js', 'good-extra')
    const req = request()
    const earlier = { id: 'c1', name: 'read_file', arguments: { path: 'a' } }
    const err = await provider
      .chat({ ...req, messages: [...req.messages, { role: 'assistant', content: '', toolCalls: [earlier] }] })
      .catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'bad_response',
      message: "provider garbage (./garbage-provider.js): toolCalls[0].id 'c1' is the id of an earlier call in this session; ids must be unique in the session",
    })
  })

  it("passes a tool call's argumentsError on", async () => {
    const provider = await providerOf('garbage-provider.js', 'good-arguments-error')
    const response = await provider.chat(request())
    expect(response.toolCalls).toStrictEqual([{ id: 'c1', name: 'write_file', arguments: {}, argumentsError: 'not valid JSON' }])
  })

  it('fills in a missing toolCalls and usage', async () => {
    const provider = await providerOf('minimal-provider.js', 'm', 'tiny')
    const req = request()
    const response = await provider.chat(req)
    const inputChars = req.messages.reduce((n, m) => n + m.content.length, 0)
    expect(response.content).toBe('m heard 2 messages')
    expect(response.toolCalls).toEqual([])
    expect(response.usage.inputTokens).toBe(Math.ceil(inputChars / 4))
    expect(response.usage.outputTokens).toBe(Math.ceil('m heard 2 messages'.length / 4))
    expect(Number.isFinite(response.usage.durationMs) && response.usage.durationMs >= 0).toBe(true)
  })

  it('passes a positive integer contextLength through, and anything else as null', async () => {
    expect(await (await providerOf('garbage-provider.js', 'ctx-8192')).contextLength?.('m', new AbortController().signal)).toBe(8192)
    for (const model of ['ctx-zero', 'ctx-negative', 'ctx-fraction', 'ctx-string', 'ctx-null', 'no-such-model']) {
      const provider = await providerOf('garbage-provider.js', model)
      expect(await provider.contextLength?.('m', new AbortController().signal)).toBeNull()
    }
    // a provider without contextLength gets none
    expect((await providerOf('minimal-provider.js', 'm', 'tiny')).contextLength).toBeUndefined()
  })

  it('gives the provider copies of the messages and tools', async () => {
    const provider = await providerOf('hanging-provider.js', 'm')
    const { asked } = (await fixtureModule('hanging-provider.js')) as { asked: ChatRequest[] }
    const controller = new AbortController()
    const req = request(controller.signal)
    const pending = provider.chat(req)
    const seen = asked[asked.length - 1]!
    expect(seen.messages).toEqual(req.messages)
    expect(seen.messages).not.toBe(req.messages)
    seen.messages[0]!.content = 'changed by the provider'
    expect(req.messages[0]!.content).toBe('You are the coder.')
    controller.abort()
    await expect(pending).rejects.toMatchObject({ code: 'aborted' })
  })
})

describe('failures', () => {
  it('wraps an error of any other kind into a fatal provider_error', async () => {
    const cases: [string, string][] = [
      ['plain', 'provider throwing: the server said no second line of detail'],
      ['string', 'provider throwing: out of quota'],
      ['sync', "provider throwing: Cannot read properties of undefined (reading 'choices')"],
    ]
    for (const [model, message] of cases) {
      const provider = await providerOf('throwing-provider.js', model)
      const err = await provider.chat(request()).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ProviderError)
      expect(err).toMatchObject({ message, code: 'provider_error', retryable: false })
    }
  })

  it('passes a ProviderError through unchanged', async () => {
    const provider = await providerOf('same-provider-error.js', 'm')
    const { thrown } = await fixtureModule('same-provider-error.js')
    expect(thrown).toBeInstanceOf(ProviderError)
    await expect(provider.chat(request())).rejects.toBe(thrown)
  })

  it("keeps a ProviderError of another copy of loopstate (name, code, retryable) as it is", async () => {
    const retryable = await (await providerOf('throwing-provider.js', 'provider-error')).chat(request()).catch((e: unknown) => e)
    expect(retryable).toBeInstanceOf(ProviderError)
    expect(retryable).toMatchObject({ message: 'my-llm: rate limited', code: 'rate_limited', retryable: true, retryAfterMs: 2000 })
    const fatal = await (await providerOf('throwing-provider.js', 'provider-error-fatal')).chat(request()).catch((e: unknown) => e)
    expect(fatal).toBeInstanceOf(ProviderError)
    expect(fatal).toMatchObject({ message: 'my-llm: bad key', code: 'unauthorized', retryable: false })
    expect((fatal as ProviderError).retryAfterMs).toBeUndefined()
  })

  it('wraps a failing contextLength the same way', async () => {
    const provider = await providerOf('throwing-provider.js', 'context-length')
    await expect(provider.contextLength?.('m', new AbortController().signal)).rejects.toMatchObject({
      name: 'ProviderError',
      message: 'provider throwing: contextLength: cannot ask the server for the context length',
      code: 'provider_error',
      retryable: false,
    })
  })
})

describe('abort', () => {
  it('rejects with aborted at once when the signal has already aborted, without calling the provider', async () => {
    const provider = await providerOf('hanging-provider.js', 'm')
    const { asked } = (await fixtureModule('hanging-provider.js')) as { asked: ChatRequest[] }
    const before = asked.length
    const controller = new AbortController()
    controller.abort()
    await expect(provider.chat(request(controller.signal))).rejects.toMatchObject({ code: 'aborted', retryable: false })
    await expect(provider.contextLength?.('m', controller.signal)).rejects.toMatchObject({ code: 'aborted' })
    expect(asked.length).toBe(before)
  })

  it('ends a call to a provider that ignores its signal when the signal aborts', async () => {
    const provider = await providerOf('hanging-provider.js', 'm')
    const { asked } = (await fixtureModule('hanging-provider.js')) as { asked: ChatRequest[] }
    const controller = new AbortController()
    const chunks: unknown[] = []
    const pending = provider.chat(request(controller.signal, { onChunk: (c) => chunks.push(c) }))
    const seen = asked[asked.length - 1]!
    expect(await stillPending(pending)).toBe(true)
    seen.onChunk?.({ text: 'streaming' })
    controller.abort()
    await expect(pending).rejects.toMatchObject({ name: 'ProviderError', code: 'aborted', retryable: false })
    // a provider that streams on after the call ended is no activity of the loop
    seen.onChunk?.({ text: 'late' })
    expect(chunks).toEqual([{ text: 'streaming' }])
  })

  it('ends a contextLength that ignores its signal when the signal aborts', async () => {
    const provider = await providerOf('hanging-provider.js', 'm')
    const controller = new AbortController()
    const pending = provider.contextLength!('m', controller.signal)
    expect(await stillPending(pending)).toBe(true)
    controller.abort()
    await expect(pending).rejects.toMatchObject({ code: 'aborted' })
  })

  it("turns what a provider throws on abort into aborted", async () => {
    const provider = await providerOf('echo-provider.js', 'any')
    const controller = new AbortController()
    const pending = provider.chat(request(controller.signal))
    controller.abort()
    await expect(pending).rejects.toMatchObject({ message: 'model call aborted', code: 'aborted' })
  })
})

describe('the README example', () => {
  it('is the echo provider fixture, byte for byte', async () => {
    const readme = await readFile('README.md', 'utf8')
    const start = readme.indexOf('\n## Your own model provider\n')
    expect(start).toBeGreaterThanOrEqual(0)
    const next = readme.indexOf('\n## ', start + 1)
    const section = readme.slice(start, next < 0 ? undefined : next)
    const open = section.indexOf('\n```js\n')
    expect(open).toBeGreaterThanOrEqual(0)
    const from = open + '\n```js\n'.length
    const block = section.slice(from, section.indexOf('\n```\n', from) + 1)
    expect(Buffer.from(block, 'utf8').equals(await readFile(fixture('echo-provider.js')))).toBe(true)
  })

  it('answers a coder with a write_file call, then with text, and an auditor with the summary block', async () => {
    const provider = await providerOf('echo-provider.js', 'any')
    const first = await provider.chat(request())
    expect(first.toolCalls).toEqual([
      { id: 'echo-0', name: 'write_file', arguments: { path: 'ECHO.md', content: '# Goal\n\nWrite a file.\n' } },
    ])
    const req = request()
    const second = await provider.chat({
      ...req,
      callIndex: 1,
      messages: [
        ...req.messages,
        { role: 'assistant', content: '', toolCalls: first.toolCalls },
        { role: 'tool', content: 'wrote 23 bytes to ECHO.md', toolCallId: 'echo-0', toolName: 'write_file' },
      ],
    })
    expect(second).toMatchObject({ content: 'Wrote the task to ECHO.md (any, loop test-loop).', toolCalls: [] })
    const audit = await provider.chat({ ...request(), role: 'auditor' })
    expect(audit.content).toContain('<!-- summary -->\n### Done\n')
    expect(audit.toolCalls).toEqual([])
  })
})

describe('in an engine', () => {
  let dir: string | null = null
  let engine: Engine | null = null

  afterEach(async () => {
    await engine?.close()
    engine = null
    if (dir) await rm(dir, { recursive: true, force: true })
    dir = null
  })

  async function echoEngine(name = 'echo-provider.js') {
    dir = await mkdtemp(join(tmpdir(), 'loopstate-provider-module-'))
    const workspace = join(dir, 'ws')
    await mkdir(workspace)
    const { scheme, factory } = await loadProviderModule(rel(name), { cwd: FIXTURES, builtIn: BUILT_IN })
    engine = await createEngine({ dataDir: join(dir, 'data'), providers: { [scheme]: factory } })
    return { engine, workspace, scheme }
  }

  it('runs a goal loop on the echo provider to completed, with the file its coder wrote', async () => {
    const { engine, workspace } = await echoEngine()
    const handle = await engine.start({ goal: 'Write a greeting' }, { models: ['echo:any'], workspace })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'completed', reason: 'completed', iteration: 1, error: null })
    expect(existsSync(join(workspace, 'ECHO.md'))).toBe(true)
    expect(await readFile(join(workspace, 'ECHO.md'), 'utf8')).toBe('# Goal\n\nWrite a greeting\n')
    expect(output.usage.total.calls).toBe(3) // the coder's two calls and the auditor's one
  })

  it('runs a sectioned plan on the echo provider to completed (its audits carry the summary block)', async () => {
    const { engine, workspace } = await echoEngine()
    const plan = '# Two steps\n\nIntro.\n\n<!-- section -->\n\n## First\n\nDo one.\n\n<!-- section -->\n\n## Second\n\nDo two.\n'
    const handle = await engine.start({ plan }, { models: ['echo:any'], workspace })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'completed', reason: 'completed' })
    expect(await readFile(join(workspace, 'ECHO.md'), 'utf8')).toContain('Do two.')
    const detail = await engine.get(handle.name)
    expect(detail?.sections.map((s) => s.status)).toEqual(['done', 'done'])
  })

  it('ends a loop whose provider answers garbage with provider_fatal, naming what is wrong', async () => {
    const { engine, workspace } = await echoEngine('garbage-provider.js')
    const handle = await engine.start({ goal: 'Anything' }, { models: ['garbage:no-content'], workspace })
    const output = await handle.done
    expect(output).toMatchObject({ status: 'errored', reason: 'provider_fatal' })
    expect(output.error).toMatchObject({
      code: 'bad_response',
      message: 'provider garbage (./garbage-provider.js): content is missing; expected a string',
    })
  })
})
