/**
 * The convergence behaviours of test/convergence.test.ts and test/checks.test.ts
 * (docs/architecture.md "Findings", "Checks", "Limits, retries, stalls,
 * termination") through the real Ollama provider (adapters/ollama-provider.ts, the
 * `ollama` client) and the engine, against the Ollama-protocol test server on
 * 127.0.0.1 (test/helpers/ollama-server.ts): every model answer crosses HTTP as
 * streamed NDJSON, and every request the loop makes is recorded on the server.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MemoryStore } from '../adapters/memory-store.ts'
import { ollamaFactory } from '../adapters/ollama-provider.ts'
import { DECIDE_NOTICE } from '../services/audit-decide.ts'
import { createEngine, type Engine } from '../services/engine.ts'
import { startOllamaServer, type OllamaServerScript, type OllamaTestServer, type RecordedRequest } from './helpers/ollama-server.ts'

const MODEL = 'qwen3:test'
const SPEC = `ollama:${MODEL}`
const PLAN = '# Fix a.js\n\nMake a.js return the right value.'
const quickRetries = { retryBackoff: { baseMs: 10, maxMs: 50, jitter: 0 } }
/** Whole loops over HTTP on a machine that may be loaded: generous, never a condition. */
const LOOP_TIMEOUT = 120_000

let workspace: string
let store: MemoryStore
let server: OllamaTestServer | null = null
let engine: Engine | null = null

beforeEach(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'loopstate-conv-ollama-'))
  store = new MemoryStore()
})

afterEach(async () => {
  await engine?.close()
  engine = null
  await server?.close()
  server = null
  await rm(workspace, { recursive: true, force: true })
})

async function engineOn(scenario: { coder: unknown[]; auditor: unknown[] }): Promise<{ server: OllamaTestServer; engine: Engine }> {
  const script: OllamaServerScript = { models: { [MODEL]: { scenario } } }
  server = await startOllamaServer(script)
  engine = await createEngine({ store, providers: { ollama: ollamaFactory({ host: server.host }) }, onProblem: () => {} })
  return { server, engine }
}

// Scenario entries as the server serves them.
const text = (t: string) => ({ type: 'text', text: t })
const calls = (...list: [string, Record<string, unknown>][]) => ({
  type: 'tool_calls',
  calls: list.map(([name, args]) => ({ name, arguments: args })),
})
const writeA = (content: string) => calls(['write_file', { path: 'a.js', content }])

type WireMessage = { role: string; content: string; tool_name?: string; tool_calls?: { function: { name: string; arguments: unknown } }[] }
const messagesOf = (r: RecordedRequest): WireMessage[] => r.body.messages
const lastOf = (r: RecordedRequest): WireMessage => messagesOf(r).at(-1)!
/** The session's opening prompt (the first user message) of a request. */
const openingOf = (r: RecordedRequest): string => messagesOf(r).find((m) => m.role === 'user')!.content
const ofRole = (s: OllamaTestServer, role: 'coder' | 'auditor') => s.chats(MODEL).filter((r) => r.role === role)
/** The auditor's requests whose last message is the decide prompt. */
const decideAsks = (s: OllamaTestServer) =>
  ofRole(s, 'auditor').filter((r) => {
    const last = lastOf(r)
    return last.role === 'user' && last.content.startsWith(DECIDE_NOTICE)
  })
/** Tool results sent back to the model, over every request of a role. */
const toolResults = (s: OllamaTestServer, role: 'coder' | 'auditor', name: string) =>
  ofRole(s, role)
    .map(lastOf)
    .filter((m) => m.role === 'tool' && m.tool_name === name)
    .map((m) => m.content)

describe('convergence over Ollama: the auditor decides what it would leave open', () => {
  it(
    'a forgetful auditor that says "All good, no issues remain." without resolving F1 is asked once, resolves it, and the loop completes in 2 iterations',
    async () => {
      const { server, engine } = await engineOn({
        coder: [writeA('return x + 1\n'), text('wrote a.js'), writeA('return x\n'), text('fixed F1')],
        auditor: [
          calls(['report_finding', { file: 'a.js', line: 1, severity: 'bug', message: 'adds one too many' }]),
          text('One bug (F1).'),
          // audit 2: reads the fix and says so, but forgets resolve_finding
          calls(['read_file', { path: 'a.js' }]),
          text('All good, no issues remain.'),
          // asked to decide F1: resolves it
          calls(['resolve_finding', { id: 'F1' }]),
          text('F1 is fixed. All good.'),
        ],
      })
      const handle = await engine.start({ plan: PLAN }, { name: 'forgetful', models: [SPEC], workspace, ...quickRetries })
      const output = await handle.done
      expect(output).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2, error: null })
      expect(await readFile(join(workspace, 'a.js'), 'utf8')).toBe('return x\n')

      const detail = (await engine.get('forgetful'))!
      expect(detail.findings).toEqual([expect.objectContaining({ id: 'F1', file: 'a.js', line: 1, severity: 'bug', status: 'resolved' })])
      // the session's final reply is the one after deciding
      expect(detail.lastAudit?.text).toBe('F1 is fixed. All good.')

      // on the wire: one decide prompt, in audit 2's session, right after the "clean" reply
      const asks = decideAsks(server)
      expect(asks).toHaveLength(1)
      const asked = lastOf(asks[0]!).content
      expect(asked).toContain('F1 bug open a.js:1 — adds one too many')
      const before = messagesOf(asks[0]!).slice(0, -1)
      expect(before.at(-1)).toMatchObject({ role: 'assistant', content: 'All good, no issues remain.' })
      expect(before.some((m) => m.role === 'tool' && m.tool_name === 'read_file' && m.content.includes('return x'))).toBe(true)
      // the resolve that followed went back to the model as a tool result naming F1
      expect(toolResults(server, 'auditor', 'resolve_finding')).toEqual([expect.stringContaining('F1')])

      expect(server.chats(MODEL).map((r) => r.role)).toEqual([
        'coder', 'coder', 'auditor', 'auditor', // pass 1, audit 1
        'coder', 'coder', 'auditor', 'auditor', 'auditor', 'auditor', // pass 2, audit 2 with the decide prompt
      ])
      expect(server.chats().every((r) => r.outcome === 'ok')).toBe(true)
      // every scripted answer was asked for, none twice
      expect(server.consumed(MODEL, 'auditor')).toBe(6)
      expect(server.consumed(MODEL, 'coder')).toBe(4)
    },
    LOOP_TIMEOUT,
  )

  it(
    'resolves by location: resolve_finding { file, line } on the one open finding there, and the loop completes',
    async () => {
      const { server, engine } = await engineOn({
        coder: [writeA('v1'), text('v1'), writeA('v2'), text('v2')],
        auditor: [
          calls(['report_finding', { file: 'a.js', line: 1, severity: 'bug', message: 'bug' }]),
          text('One bug.'),
          calls(['resolve_finding', { file: 'a.js', line: 1 }]),
          text('Fixed.'),
        ],
      })
      const handle = await engine.start({ plan: PLAN }, { name: 'by-location', models: [SPEC], workspace, ...quickRetries })
      const output = await handle.done
      expect(output).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2, error: null })
      const detail = (await engine.get('by-location'))!
      expect(detail.findings).toEqual([expect.objectContaining({ id: 'F1', status: 'resolved' })])

      // the location arrived as arguments over HTTP and the result named F1, not an error
      const [resolved] = toolResults(server, 'auditor', 'resolve_finding')
      expect(resolved).toContain('F1')
      expect(resolved).not.toMatch(/^error/)
      const auditorFollowUp = ofRole(server, 'auditor').at(-1)!
      expect(messagesOf(auditorFollowUp).at(-2)!.tool_calls).toEqual([{ function: { name: 'resolve_finding', arguments: { file: 'a.js', line: 1 } } }])
      expect(decideAsks(server)).toHaveLength(0)
      expect(server.chats(MODEL)).toHaveLength(8)
      expect(server.consumed(MODEL, 'auditor')).toBe(4)
    },
    LOOP_TIMEOUT,
  )
})

describe('convergence over Ollama: reworded findings', () => {
  it(
    'the same file, line and severity in new words every audit stays one finding, flagged recurring after 3 audits',
    async () => {
      const wordings = ['off by one', 'the loop bound is wrong', 'iterates one time too many', 'still off by one']
      const { server, engine } = await engineOn({
        // the coder changes the file every pass: progress, so only maxIterations stops it
        coder: wordings.flatMap((_, i) => [writeA(`v${i}`), text(`pass ${i}`)]),
        auditor: wordings.flatMap((w) => [
          calls(['report_finding', { file: 'a.js', line: 4, severity: 'bug', message: w }]),
          text(`Bug: ${w}.`),
        ]),
      })
      const handle = await engine.start({ plan: PLAN }, { name: 'reworded', models: [SPEC], workspace, maxIterations: 3, ...quickRetries })
      const output = await handle.done
      expect(output).toMatchObject({ status: 'errored', reason: 'max_iterations', iteration: 4 })
      expect(await readFile(join(workspace, 'a.js'), 'utf8')).toBe('v3')

      const detail = (await engine.get('reworded'))!
      expect(detail.findings).toHaveLength(1)
      expect(detail.findings[0]).toMatchObject({ id: 'F1', file: 'a.js', line: 4, message: 'off by one', status: 'open', recurring: true })
      expect(detail.findings[0]!.openAudits).toBeGreaterThanOrEqual(3)

      // re-reporting told the auditor it is the same finding, in audits 2, 3 and 4
      const reports = toolResults(server, 'auditor', 'report_finding')
      expect(reports).toHaveLength(4)
      expect(reports.slice(1).every((r) => r.startsWith('already open as F1'))).toBe(true)
      // the last coder pass's prompt flags it; the earlier ones did not
      const coderOpenings = ofRole(server, 'coder').map(openingOf)
      expect(coderOpenings.at(-1)).toContain('F1 [bug] a.js:4: off by one RECURRING (open in 3 audits in a row)')
      expect(coderOpenings.slice(0, 4).some((p) => p.includes('RECURRING'))).toBe(false)
      // reporting it again decided it: never asked
      expect(decideAsks(server)).toHaveLength(0)
      expect(server.consumed(MODEL, 'coder')).toBe(8)
      expect(server.consumed(MODEL, 'auditor')).toBe(8)
    },
    LOOP_TIMEOUT,
  )
})

describe('convergence over Ollama: the no-progress stop', () => {
  it(
    'a coder that writes the same content every pass ends errored/no_progress at iteration 4, long before maxIterations',
    async () => {
      const sameBug = () => calls(['report_finding', { file: 'a.js', line: 2, severity: 'bug', message: 'returns the wrong value' }])
      // enough answers for every pass maxIterations (15) allows: the stop, not the script, ends the loop
      const passes = 16
      const { server, engine } = await engineOn({
        coder: Array.from({ length: passes }, () => [writeA('wrong'), text('rewrote a.js')]).flat(),
        auditor: Array.from({ length: passes }, () => [sameBug(), text('Still wrong.')]).flat(),
      })
      const handle = await engine.start({ plan: PLAN }, { name: 'no-change', models: [SPEC], workspace, ...quickRetries })
      const output = await handle.done
      expect(output).toMatchObject({ status: 'errored', reason: 'no_progress', iteration: 4 })
      expect(output.error).toMatchObject({ code: 'no_progress' })
      expect(output.error!.message).toBe(
        'no progress: 3 rework passes in a row (iterations 2–4) left the workspace as it was and these blocking findings open: ' +
          'F1 a.js:2 (returns the wrong value)',
      )
      const record = (await store.get('no-change'))!
      expect(record.snapshot.context).toMatchObject({ rework: 3, passesWithoutProgress: 3, audits: 3 })
      expect((await engine.get('no-change'))!.findings).toEqual([expect.objectContaining({ id: 'F1', status: 'open' })])

      // 4 passes of 2 calls and 3 audits of 2 (none of the unchanged workspace after pass 4): 14 of the 64 scripted
      expect(server.chats(MODEL).map((r) => r.role)).toEqual([
        ...['coder', 'coder', 'auditor', 'auditor'],
        ...['coder', 'coder', 'auditor', 'auditor'],
        ...['coder', 'coder', 'auditor', 'auditor'],
        ...['coder', 'coder'],
      ])
      expect(server.consumed(MODEL, 'coder')).toBe(8)
      expect(server.consumed(MODEL, 'auditor')).toBe(6)
      // the coder was told plainly before the stop
      const openings = ofRole(server, 'coder').map(openingOf)
      expect(openings[2]).not.toContain('changed nothing') // pass 2
      expect(openings[4]).toContain('## Your last pass changed nothing') // pass 3
      expect(openings[4]).toContain('The loop stops (no progress) after 2 more such passes.')
      expect(openings[6]).toContain('## Your last 2 passes changed nothing') // pass 4
      expect(openings[6]).toContain('F1 [bug] a.js:2: returns the wrong value')
    },
    LOOP_TIMEOUT,
  )
})

describe('convergence over Ollama: tool calls written as text', () => {
  it(
    'a coder reply that is only a fenced JSON write_file call (no tool_calls on the wire) runs as that call, and the loop completes',
    async () => {
      const asText = '```json\n{"name": "write_file", "arguments": {"path": "a.js", "content": "module.exports = 1\\n"}}\n```'
      const { server, engine } = await engineOn({
        coder: [text(asText), text('wrote a.js')],
        auditor: [text('All good.')],
      })
      const handle = await engine.start({ plan: PLAN }, { name: 'text-call', models: [SPEC], workspace, ...quickRetries })
      const output = await handle.done
      expect(output).toMatchObject({ status: 'completed', reason: 'completed', iteration: 1, error: null })
      expect(await readFile(join(workspace, 'a.js'), 'utf8')).toBe('module.exports = 1\n')

      const [first, second] = ofRole(server, 'coder')
      // the first answer was streamed as content only, in several chunks
      expect(first!.outcome).toBe('ok')
      expect(first!.chunks).toBeGreaterThan(2)
      // the follow-up carries the call as a proper tool call, and its result
      const followUp = messagesOf(second!)
      expect(followUp.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool'])
      expect(followUp[2]).toMatchObject({ content: asText })
      expect(followUp[2]!.tool_calls).toEqual([{ function: { name: 'write_file', arguments: { path: 'a.js', content: 'module.exports = 1\n' } } }])
      expect(followUp[3]).toMatchObject({ role: 'tool', tool_name: 'write_file' })
      expect(followUp[3]!.content).not.toMatch(/^error/)
      expect(server.chats(MODEL).map((r) => r.role)).toEqual(['coder', 'coder', 'auditor'])
    },
    LOOP_TIMEOUT,
  )
})

describe('convergence over Ollama: checks', () => {
  /** Passes when a.js says `ok`, prints what it found either way. */
  const CHECK_JS = `const fs = require('fs')
const got = fs.existsSync('a.js') ? fs.readFileSync('a.js', 'utf8').trim() : '(missing)'
console.log('a.js says: ' + got)
if (got !== 'ok') { console.error('expected ok'); process.exit(3) }
`

  it(
    'a check that fails until the coder fixes it is a blocking finding the engine opens and resolves; the loop completes once it passes',
    async () => {
      await writeFile(join(workspace, 'check.js'), CHECK_JS)
      const { server, engine } = await engineOn({
        coder: [writeA('wrong'), text('wrote a.js'), writeA('ok'), text('fixed a.js')],
        // the auditor tries to resolve the check's finding by hand (refused), then finds nothing once it passes
        auditor: [calls(['resolve_finding', { id: 'F1' }]), text('The check fails.'), text('All good.')],
      })
      const handle = await engine.start(
        { goal: 'make the check pass' },
        { name: 'gated', models: [SPEC], workspace, checks: [{ name: 'unit', run: [process.execPath, 'check.js'], timeoutMs: 60_000 }], ...quickRetries },
      )
      const output = await handle.done
      expect(output).toMatchObject({ status: 'completed', reason: 'completed', iteration: 2, error: null })
      expect(await readFile(join(workspace, 'a.js'), 'utf8')).toBe('ok')

      const c = (await store.get('gated'))!.snapshot.context
      expect(c.findings).toEqual([expect.objectContaining({ id: 'F1', check: 'unit', status: 'resolved', severity: 'bug', file: '(check unit)' })])
      expect(c.lastChecks).toEqual([expect.objectContaining({ name: 'unit', passed: true, outcome: 'exit code 0' })])
      const history = await engine.history('gated')
      expect(history.filter((x) => x.to === 'running.checking')).toHaveLength(2)

      const audits = ofRole(server, 'auditor')
      // audit 1's prompt carried the failing check and its output
      const audit1 = openingOf(audits[0]!)
      expect(audit1).toContain('- unit: FAILS (exit code 3)')
      expect(audit1).toContain('a.js says: wrong')
      expect(audit1).toContain('expected ok')
      // its resolve_finding was refused
      expect(toolResults(server, 'auditor', 'resolve_finding')).toEqual([
        "error: F1 is the check 'unit' failing: loopstate resolves it when the check passes, not by hand",
      ])
      // the rework prompt named the failing check
      const rework = openingOf(ofRole(server, 'coder')[2]!)
      expect(rework).toContain('## Checks that fail')
      expect(rework).toContain("F1 [bug] (check unit): the check 'unit' fails: exit code 3")
      // the check's finding is the engine's: never put to the auditor to decide
      expect(decideAsks(server)).toHaveLength(0)
      expect(server.chats(MODEL).map((r) => r.role)).toEqual(['coder', 'coder', 'auditor', 'auditor', 'coder', 'coder', 'auditor'])
    },
    LOOP_TIMEOUT,
  )
})
