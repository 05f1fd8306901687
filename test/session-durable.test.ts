/**
 * A model's answer is on disk before the session acts on it: no tool (read-only
 * ones included) runs and no next call is made until `durable()` resolves for the
 * turn, so a restore never asks an answered call again.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseScenario } from '../adapters/scenario.ts'
import { ScriptedProvider } from '../adapters/scripted-provider.ts'
import { DEFAULT_CONFIG } from '../machines/loop.types.ts'
import { createFindingsLedger } from '../services/findings-tools.ts'
import { ModelSession, type SessionObserver } from '../services/session.ts'
import { toolsFor } from '../services/tools.ts'

let ws: string

beforeEach(async () => {
  ws = await mkdtemp(join(tmpdir(), 'loopstate-durable-'))
  await writeFile(join(ws, 'a.txt'), 'hello\n')
})

afterEach(async () => {
  await rm(ws, { recursive: true, force: true })
})

describe('session durability', () => {
  it('runs no tool, not even read_file, and asks nothing more, until the answer that asked for it is durable', async () => {
    const provider = new ScriptedProvider(
      parseScenario(
        { coder: [{ type: 'tool_calls', calls: [{ name: 'read_file', arguments: { path: 'a.txt' } }] }, { type: 'text', text: 'read it' }] },
        'durable.json',
      ),
    )
    const events: string[] = []
    const observer: SessionObserver = {
      started: () => events.push('started'),
      activity: () => {},
      turn: (_u, m) => events.push(`turn:${m.toolCalls.map((c) => c.name).join(',') || m.content}`),
      toolStarted: () => events.push('tool started'),
      toolFinished: (_id, name, content) => events.push(`tool finished:${name}:${content}`),
      nudged: () => events.push('nudged'),
      reprompted: () => events.push('reprompted'),
      compacted: () => events.push('compacted'),
    }
    const gates: (() => void)[] = []
    const durable = () => new Promise<void>((resolve) => gates.push(resolve))
    const session = new ModelSession({
      provider,
      model: 'durable.json',
      role: 'coder',
      start: { kind: 'fresh', system: 'sys', user: 'read a.txt' },
      callIndex: 0,
      tools: toolsFor('coder', DEFAULT_CONFIG.runCommand),
      toolContext: {
        workspace: ws,
        dataDir: null,
        maxReadBytes: DEFAULT_CONFIG.maxReadBytes,
        role: 'coder',
        runCommand: DEFAULT_CONFIG.runCommand,
        findings: createFindingsLedger({ findings: [], nextId: 1, section: null, audit: 1, onReport: () => {}, onResolve: () => {} }),
      },
      signal: new AbortController().signal,
      maxTurns: 10,
      observer,
      durable,
    })
    const done = session.run()
    // the session runs on real I/O (read_file): up to 10 s of event-loop turns, then the check
    const waitForGate = async (n: number) => {
      const until = Date.now() + 10_000
      while (gates.length < n && Date.now() < until) await new Promise((r) => setImmediate(r))
      expect(gates.length, `the session never waited for the save of answer ${n}: ${events.join(' | ')}`).toBe(n)
    }
    await waitForGate(1)
    // the first answer is in, and waits for its save: nothing acted on it yet
    expect(events).toEqual(['started', 'turn:read_file'])
    expect(provider.consumed('coder')).toBe(1)
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
    expect(events).toEqual(['started', 'turn:read_file'])
    gates[0]!()
    await waitForGate(2)
    // saved: the tool ran, and the next answer waits for its own save
    expect(events).toEqual(['started', 'turn:read_file', 'tool started', 'tool finished:read_file:hello', 'turn:read it'])
    gates[1]!()
    expect(await done).toBe('read it')
  })
})
