/**
 * The crash suite's engine process: makes sure its loops exist (creating the
 * missing ones), lets the engine resume the rest, prints `ready`, and waits for
 * every loop to end. The test SIGKILLs it at chosen instants and starts it again
 * on the same data dir.
 *
 * usage: node --import tsx test/crash/child.ts <dataDir> <specFile>
 */
import { readFile } from 'node:fs/promises'
import { createEngine, type StartOptions } from '../../services/engine.ts'

export interface CrashLoopSpec {
  name: string
  goal?: string
  plan?: string
  options: StartOptions
}

async function main() {
  const [dataDir, specFile] = process.argv.slice(2)
  if (!dataDir || !specFile) throw new Error('usage: child.ts <dataDir> <specFile>')
  const specs = JSON.parse(await readFile(specFile, 'utf8')) as CrashLoopSpec[]
  const engine = await createEngine({ dataDir, maxConcurrentLoops: specs.length, onProblem: (m) => console.error(m) })
  for (const spec of specs) {
    if (await engine.store.has(spec.name)) continue
    const task = spec.plan !== undefined ? { plan: spec.plan, source: `${spec.name}.md` } : { goal: spec.goal ?? spec.name }
    await engine.start(task, { ...spec.options, name: spec.name })
  }
  const handles = engine.handles()
  console.log(JSON.stringify({ ready: true, live: handles.map((h) => h.name) }))
  await Promise.all(handles.map((h) => h.done))
  await engine.close()
  console.log(JSON.stringify({ done: true }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
