/**
 * Runs one loop in this (child) process and keeps running while it is paused, as
 * `loopstate run` does, until it ends; prints `<name> <status>` then.
 * Usage: node --import tsx control-owner-child.ts --data DIR --scenario FILE --workspace DIR --name NAME
 */
import { parseArgs } from 'node:util'
import { createEngine } from '../../services/engine.ts'

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { data: { type: 'string' }, scenario: { type: 'string' }, workspace: { type: 'string' }, name: { type: 'string' } },
  })
  const engine = await createEngine({ dataDir: values.data, resume: false })
  const handle = await engine.start(
    { goal: 'Write notes.md with one line.' },
    { name: values.name, models: [`scripted:${values.scenario}`], workspace: values.workspace },
  )
  // The engine's timers do not hold the process open; a paused loop must still hear `resume`.
  const keepAlive = setInterval(() => {}, 60_000)
  const result = await handle.done
  clearInterval(keepAlive)
  await engine.close()
  console.log(`${result.name} ${result.status}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
