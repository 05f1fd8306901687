/**
 * Runs the real loop machine with the real session runner on scripted scenarios,
 * recording every model request, in a temp workspace.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { vi } from 'vitest'
import { createActor, type Actor } from 'xstate'
import type { ChatRequest, ModelProvider } from '../../adapters/model-provider.ts'
import { parseScenario } from '../../adapters/scenario.ts'
import { ScriptedProvider } from '../../adapters/scripted-provider.ts'
import { loopMachine } from '../../machines/loop.machine.ts'
import type { LoopContext, LoopInput } from '../../machines/loop.types.ts'
import { resolveConfig, type LoopOptions } from '../../services/config.ts'
import { goalTask, parsePlan } from '../../services/plan.ts'
import { createLoopServices } from '../../services/session-actor.ts'
import { stateString } from '../../services/views.ts'

/**
 * One turn of the real event loop (taken before any test fakes the timers). Fake
 * time does not wait for real I/O (the tools read and write real files): each step
 * of fake time first lets the I/O that completed run, so that on a loaded machine
 * fake time does not race ahead of a tool that is still reading.
 */
const realImmediate = setImmediate
const realTurn = () => new Promise<void>((resolve) => realImmediate(() => resolve()))
const realNow = Date.now

/**
 * While a session's tool runs (the journal shows it started and not finished), fake
 * time stands still: the tool works on real files, and however long the machine takes
 * over them, no fake timer (a stall, a backoff, a model's delay) may fire meanwhile.
 * Ends early when `reached` holds (a test waiting for a state between two tools), and
 * is bounded in real time (a test that stopped a loop mid-tool goes on after 10 s).
 */
async function toolsSettled(h: Harness, reached: () => boolean = () => false): Promise<void> {
  const until = realNow() + 10_000
  const busy = () => h.state().endsWith('.watching') && (h.ctx().journal?.running.length ?? 0) > 0
  while (busy() && !reached() && realNow() < until) await realTurn()
}

export type ScenarioJson = { coder?: unknown[]; auditor?: unknown[]; contextLength?: number }

export interface Recorded {
  model: string
  role: ChatRequest['role']
  /** The last user or tool message content of the request. */
  messages: ChatRequest['messages']
}

export interface Harness {
  actor: Actor<typeof loopMachine>
  workspace: string
  requests: Recorded[]
  providers: Map<string, ScriptedProvider>
  /** Every distinct state the loop went through, in order. */
  states: string[]
  ctx(): LoopContext
  state(): string
  /** Requests of one role, in order. */
  prompts(role: ChatRequest['role']): string[]
  /**
   * Stops the actor as a crash would (no event), keeps its persisted snapshot,
   * optionally lets `downMs` of fake time pass, and restores it on fresh providers.
   */
  restart(downMs?: number): Promise<void>
  cleanup(): Promise<void>
}

/** A scenario per model spec (`scripted:<key>`); `scenario` alone is served as `scripted:main`. */
export interface HarnessOptions {
  scenario?: ScenarioJson
  scenarios?: Record<string, ScenarioJson>
  plan?: string
  goal?: string
  /** Files to put in the workspace before the loop starts. */
  files?: Record<string, string>
  options?: Omit<LoopOptions, 'models'> & { models?: string[] }
}

export async function startLoop(opts: HarnessOptions): Promise<Harness> {
  const workspace = await mkdtemp(join(tmpdir(), 'loopstate-test-'))
  for (const [path, content] of Object.entries(opts.files ?? {})) await writeFile(join(workspace, path), content)
  const scenarios = opts.scenarios ?? { main: opts.scenario ?? {} }
  const providers = new Map<string, ScriptedProvider>()
  const requests: Recorded[] = []
  const freshProviders = () => {
    for (const [key, json] of Object.entries(scenarios)) {
      providers.set(`scripted:${key}`, new ScriptedProvider(parseScenario(json, `${key}.json`)))
    }
  }
  freshProviders()
  const recording = (spec: string, inner: ModelProvider): ModelProvider => ({
    scheme: inner.scheme,
    contextLength: (model, signal) => inner.contextLength?.(model, signal) ?? Promise.resolve(null),
    chat: (req) => {
      requests.push({ model: spec, role: req.role, messages: req.messages })
      return inner.chat(req)
    },
  })
  const services = createLoopServices({
    provider: (_loop, spec) => {
      const p = providers.get(spec)
      if (!p) throw new Error(`harness: no scenario for ${spec}`)
      return { provider: recording(spec, p), model: spec.slice('scripted:'.length) }
    },
  })
  const config = resolveConfig({
    models: opts.options?.models ?? ['scripted:main'],
    retryBackoff: { baseMs: 1000, maxMs: 60_000, jitter: 0 },
    ...opts.options,
  })
  const task = opts.goal !== undefined ? goalTask(opts.goal) : parsePlan(opts.plan ?? '# Test plan\n\nDo it.', 'plan.md')
  const input: LoopInput = { name: 'test-loop', ...task, workspace, config }
  const machine = loopMachine.provide(services)
  const states: string[] = []
  const watch = (a: Actor<typeof loopMachine>) => {
    a.subscribe({
      next: (s) => {
        const v = stateString(s.value)
        if (states[states.length - 1] !== v) states.push(v)
      },
      error: () => {},
    })
    a.start()
  }
  const actor = createActor(machine, { input })
  watch(actor)
  const h: Harness = {
    actor,
    workspace,
    requests,
    providers,
    states,
    ctx: () => h.actor.getSnapshot().context,
    state: () => stateString(h.actor.getSnapshot().value),
    prompts: (role) =>
      requests
        .filter((r) => r.role === role)
        .map((r) => r.messages.filter((m) => m.role === 'user').map((m) => m.content).join('\n---\n')),
    restart: async (downMs = 0) => {
      const snapshot = JSON.parse(JSON.stringify(h.actor.getPersistedSnapshot()))
      h.actor.stop()
      if (downMs > 0) await vi.advanceTimersByTimeAsync(downMs)
      freshProviders()
      const restored = createActor(machine, { snapshot, input })
      h.actor = restored
      watch(restored)
      restored.send({ type: 'loop.restored' })
      await vi.advanceTimersByTimeAsync(0) // let the restored session make its first call
    },
    cleanup: async () => {
      h.actor.stop()
      await rm(workspace, { recursive: true, force: true })
    },
  }
  return h
}

/** Advances fake time in steps until the loop is done (or `maxMs` of fake time passed). */
export async function runToEnd(h: Harness, maxMs = 10 * 60_000, stepMs = 100): Promise<LoopContext> {
  for (let t = 0; t <= maxMs && h.actor.getSnapshot().status !== 'done'; t += stepMs) {
    await realTurn()
    await toolsSettled(h)
    await vi.advanceTimersByTimeAsync(stepMs)
  }
  if (h.actor.getSnapshot().status !== 'done') throw new Error(`loop still in ${h.state()} after ${maxMs} ms`)
  return h.ctx()
}

/** Advances fake time until `predicate` holds. */
export async function advanceUntil(h: Harness, predicate: () => boolean, maxMs = 60_000, stepMs = 10): Promise<void> {
  for (let t = 0; t <= maxMs; t += stepMs) {
    if (predicate()) return
    await realTurn()
    await toolsSettled(h, predicate)
    if (predicate()) return
    await vi.advanceTimersByTimeAsync(stepMs)
  }
  throw new Error(`condition not reached within ${maxMs} ms (state ${h.state()})`)
}

// Scenario entry builders.
export const text = (t: string, delayMs?: number) => ({ type: 'text', text: t, ...(delayMs ? { delayMs } : {}) })
export const calls = (list: [string, Record<string, unknown>][], delayMs?: number) => ({
  type: 'tool_calls',
  calls: list.map(([name, args]) => ({ name, arguments: args })),
  ...(delayMs ? { delayMs } : {}),
})
export const error = (e: string) => ({ type: 'error', error: e })
export const hang = () => ({ type: 'hang' })
export const report = (file: string, message: string, severity: 'bug' | 'warning' = 'bug') =>
  calls([['report_finding', { file, line: 1, severity, message }]])
export const resolveF = (id: string) => calls([['resolve_finding', { id }]])
export const summary = (done = 'it works') =>
  text(`Looks good.\n\n<!-- summary -->\n### Done\n${done}\n### Deviations\nnone\n### Follow-ups\nnone\n<!-- /summary -->`)
