/**
 * The Node API in one page: an engine, two loops at once, progress, results.
 * Run it with `npx tsx scripts/spawn-loops.ts`.
 */
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createEngine } from '../services/engine.ts'

/** The demo's scripted scenarios, by absolute path so that the script runs from any directory. */
const scenario = (file: string) => `scripted:${fileURLToPath(new URL(`./demo/${file}`, import.meta.url))}`
const plan = (file: string) => fileURLToPath(new URL(`./demo/${file}`, import.meta.url))

async function main() {
  // A throwaway store; leave dataDir out to use ./data like the CLI does. By default the engine
  // also restores the unfinished loops it finds there (`resume: false` leaves them alone).
  const dataDir = await mkdtemp(join(tmpdir(), 'loopstate-spawn-'))
  const engine = await createEngine({ dataDir })

  // A plan file: the coder writes clamp.js, the first audit reports a bug, the second iteration fixes it.
  const clamp = await engine.start(
    { planFile: plan('fix-a-bug.md') },
    { workspace: await mkdtemp(join(tmpdir(), 'loopstate-ws-')), models: [scenario('fix-a-bug.json')] },
  )

  // A goal, a chosen name and a fallback chain: flaky.json refuses twice, then steady.json takes over.
  const greeter = await engine.start(
    { goal: 'Write greet.js exporting greet(name), which returns `Hello, <name>!`.' },
    {
      name: 'greeter',
      workspace: await mkdtemp(join(tmpdir(), 'loopstate-ws-')),
      models: [scenario('flaky.json'), scenario('steady.json')],
      auditorModels: [scenario('steady.json')],
      retryBackoff: { baseMs: 200 }, // the default (2 s, doubling) is meant for real servers
    },
  )

  // Every saved state change reaches subscribers; print only the phase changes.
  for (const loop of [clamp, greeter]) {
    let last = ''
    loop.subscribe((view) => {
      const now = `${view.status} ${view.phase} iteration ${view.iteration}`
      if (now !== last) console.log(`${view.name.padEnd(28)} ${(last = now)}`)
    })
  }

  // `done` settles when the loop reaches a final state and its last snapshot is saved.
  for (const result of await Promise.all([clamp.done, greeter.done])) {
    const tokens = result.usage.total.inputTokens + result.usage.total.outputTokens
    console.log(`${result.name}: ${result.status} (${result.reason}) after ${result.iteration} iteration(s), ${tokens} tokens`)
  }

  // The store keeps every loop: `engine.list()` (and `loopstate list --data <dir>`) reads it back.
  const detail = await engine.get(clamp.name)
  console.log(`${clamp.name} findings:`, detail?.findings.map((f) => `${f.id} ${f.severity} ${f.status}`).join(', '))
  console.log(`records in ${dataDir}/loops/`)

  // Saves whatever still runs (nothing here) and stops the command poller.
  await engine.close()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
