/**
 * Runs one loop in this (child) process, as `loopstate run` would, optionally
 * streaming its inspection events to `--inspect URL`.
 * Usage: tsx viewer-child.ts --data DIR --plan FILE --scenario FILE --workspace DIR --name NAME [--inspect URL]
 */
import { parseArgs } from 'node:util'
import { createEngine } from '../../services/engine.ts'
import { createStatelyInspect } from '../../services/inspect/stately.ts'

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string' },
      plan: { type: 'string' },
      scenario: { type: 'string' },
      workspace: { type: 'string' },
      name: { type: 'string' },
      inspect: { type: 'string' },
    },
  })
  const inspector = values.inspect ? createStatelyInspect(values.inspect, { onProblem: (m) => console.error(m) }) : null
  const engine = await createEngine({ dataDir: values.data, resume: false, inspect: inspector?.inspect })
  const handle = await engine.start(
    { planFile: values.plan! },
    { name: values.name, models: [`scripted:${values.scenario}`], workspace: values.workspace },
  )
  const result = await handle.done
  await engine.close()
  await inspector?.close()
  console.log(`${result.name} ${result.status}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
