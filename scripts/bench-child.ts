/**
 * The child processes of `npm run bench` (scripts/bench.ts), one job per process so
 * that each figure (time, RSS) comes from a clean process. Not meant to be run by hand;
 * each mode prints one JSON line (prefixed `BENCH `) on stdout.
 *
 *   import                      imports the engine and reports the time since process start
 *   resume  <dataDir> <n>       createEngine (resume) on a data dir of n unfinished loops
 *   resume-bare <dataDir> <n>   the same actors restored with createActor directly (no engine)
 *   workload <bare|durable> <config.json>   n loops of a scenario, timed
 *   hang <config.json>          makes the data dir of n unfinished loops for `resume`
 *
 * `import` and `resume` load the engine with a dynamic import so that module loading
 * and the work itself can be told apart; process.uptime() counts from process start.
 */
const importStarted = process.uptime()
const mode = process.argv[2]

/**
 * Peak RSS sampled every `ms` (a busy event loop samples less often), with what
 * process.memoryUsage() said at that peak (V8 heap, external memory).
 */
function rssSampler(ms = 20) {
  let peak = process.memoryUsage()
  // rss() is cheap; the whole memoryUsage() (heap statistics) only at a new peak
  const sample = () => {
    if (process.memoryUsage.rss() > peak.rss) peak = process.memoryUsage()
    return peak.rss
  }
  const timer = setInterval(sample, ms)
  return {
    sample,
    stop: () => {
      clearInterval(timer)
      return sample()
    },
    atPeak: () => ({ heapTotal: peak.heapTotal, heapUsed: peak.heapUsed, external: peak.external, arrayBuffers: peak.arrayBuffers }),
  }
}

function report(result: unknown): void {
  process.stdout.write(`BENCH ${JSON.stringify(result)}\n`)
}

interface WorkloadConfig {
  /** `scripted:<absolute path>` */
  model: string
  plan: string
  workspace: string
  /** Fresh, empty data dirs (durable mode): one for the warm-up, one for the measured run. */
  dataDir: string
  warmupDir: string
  loops: number
  warmup: number
}

async function importOnly(): Promise<void> {
  const { createEngine } = await import('../services/engine.ts')
  const imported = process.uptime()
  report({ mode: 'import', importStartedMs: importStarted * 1000, importedMs: imported * 1000, ok: typeof createEngine === 'function' })
}

async function resume(dataDir: string, expected: number): Promise<void> {
  const startIso = new Date(Date.now() - process.uptime() * 1000).toISOString()
  const { createEngine } = await import('../services/engine.ts')
  const imported = process.uptime()
  const problems: string[] = []
  const rss = rssSampler(10)
  const engine = await createEngine({ dataDir, maxConcurrentLoops: expected, onProblem: (m) => problems.push(m) })
  const returned = process.uptime()
  // Restored and running: every handle is live and its actor has started (its restored
  // snapshot, stamped after this process started, is the loop's current record).
  const isRunning = () => {
    const handles = engine.handles()
    return (
      handles.length === expected &&
      handles.every((h) => {
        const v = h.view()
        return v.status === 'running' && v.state === 'running.coding.watching' && v.updatedAt >= startIso
      })
    )
  }
  while (!isRunning() && process.uptime() - returned < 10) await new Promise((r) => setImmediate(r))
  const ready = process.uptime()
  const running = isRunning()
  const live = engine.handles().length
  // when not all are running: how the others stand
  const notRunning = engine
    .handles()
    .map((h) => h.view())
    .filter((v) => !(v.status === 'running' && v.state === 'running.coding.watching' && v.updatedAt >= startIso))
  const notRunningSample = notRunning.slice(0, 3).map((v) => ({ name: v.name, status: v.status, state: v.state, updatedAt: v.updatedAt }))
  const rssAtReady = rss.sample()
  // The loops stay live (their sessions hang in a model call) for a while: RSS of 1,000 live
  // loops, then after a full GC (with --expose-gc): what they hold, without the restore's garbage.
  await new Promise((r) => setTimeout(r, 1000))
  const rssLive = process.memoryUsage.rss()
  ;(globalThis as { gc?: () => void }).gc?.()
  await new Promise((r) => setTimeout(r, 100))
  const rssAfterGc = process.memoryUsage.rss()
  const heapLive = process.memoryUsage().heapUsed
  const closeStart = process.uptime()
  await engine.close()
  const closed = process.uptime()
  report({
    mode: 'resume',
    running,
    loops: live,
    importedMs: imported * 1000,
    engineReturnedMs: returned * 1000,
    readyMs: ready * 1000,
    readyAt: new Date().toISOString(),
    closeMs: (closed - closeStart) * 1000,
    rssAtReady,
    rssLive,
    rssAfterGc,
    heapLive,
    peakRss: rss.stop(),
    problems: problems.slice(0, 5),
    // when not all are running: how the others stand
    notRunning: { count: notRunning.length, sample: notRunningSample, startedAt: startIso },
  })
}

/**
 * The bare baseline's machine: the same loopMachine, provided with the same session
 * actor and one ScriptedProvider per loop and model from the same factory (as the
 * engine caches them), without the engine.
 */
async function bareMachine() {
  const { scriptedFactory } = await import('../adapters/scripted-provider.ts')
  const { loopMachine } = await import('../machines/loop.machine.ts')
  const { createLoopServices } = await import('../services/session-actor.ts')
  const factory = scriptedFactory()
  const providers = new Map<string, ReturnType<typeof factory>>()
  const machine = loopMachine.provide(
    createLoopServices({
      provider: (loop, spec) => {
        const model = spec.slice(spec.indexOf(':') + 1)
        const key = `${loop}\u0000${spec}`
        let provider = providers.get(key)
        if (!provider) providers.set(key, (provider = factory(model, loop)))
        return { provider, model }
      },
    }),
  )
  /** Drops a finished loop's provider, as the engine does. */
  const forget = (loop: string, spec: string) => providers.delete(`${loop}\u0000${spec}`)
  return { machine, forget }
}

/**
 * The bare counterpart of `resume`: the same records read from the same files (readFile +
 * JSON.parse), and each actor restored with createActor({ snapshot }), started and told
 * `loop.restored`, as the engine does; no engine, no store writes, no locks, no history.
 */
async function resumeBare(dataDir: string, expected: number): Promise<void> {
  const { readdir, readFile } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const { createActor } = await import('xstate')
  const { stateString } = await import('../services/views.ts')
  const { machine } = await bareMachine() // imports the machine and the services
  const imported = process.uptime()
  const dir = join(dataDir, 'loops')
  const files = (await readdir(dir)).filter((f) => /^[a-z0-9][a-z0-9-]*\.json$/.test(f))
  const records = await Promise.all(files.map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8'))))
  const read = process.uptime()
  const actors = records.map((r) => {
    const actor = createActor(machine, { snapshot: r.snapshot, input: r.snapshot.context })
    actor.subscribe({ error: () => {} })
    actor.start()
    actor.send({ type: 'loop.restored' })
    return actor
  })
  const ready = process.uptime()
  const running = actors.filter((a) => stateString(a.getSnapshot().value) === 'running.coding.watching').length
  await new Promise((r) => setTimeout(r, 1000))
  const rss = process.memoryUsage.rss()
  for (const a of actors) a.stop()
  report({ mode: 'resume-bare', rss, loops: actors.length, running: running === expected, importedMs: imported * 1000, readMs: read * 1000, readyMs: ready * 1000 })
}

async function workload(kind: 'bare' | 'durable', config: WorkloadConfig): Promise<void> {
  const { createActor } = await import('xstate')
  const { JsonStore } = await import('../adapters/json-store.ts')
  const { resolveConfig } = await import('../services/config.ts')
  const { createEngine } = await import('../services/engine.ts')
  const { parsePlan } = await import('../services/plan.ts')
  const { stateString } = await import('../services/views.ts')
  type Output = { status: string; reason: string; iteration: number }

  /**
   * The bare baseline: the same loopMachine, provided with the same session actor
   * (session runner, tools, findings ledger) and a ScriptedProvider per loop from the
   * same factory, run with createActor: no engine, no store, no locks, no history.
   */
  async function bare(n: number, prefix: string) {
    const { machine, forget } = await bareMachine()
    let changes = 0
    const t0 = performance.now()
    const outputs = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const name = `${prefix}-${String(i).padStart(4, '0')}`
        // What engine.start builds for each loop: the parsed plan and the validated config.
        const input = { name, ...parsePlan(config.plan, 'bench-plan.md'), workspace: config.workspace, config: resolveConfig({ models: [config.model] }) }
        const actor = createActor(machine, { input })
        let lastContext: unknown = null
        let lastState = ''
        return new Promise<Output>((resolve, reject) => {
          actor.subscribe({
            // Counted as the engine saves: a root snapshot whose state or context changed (or the final one).
            next: (s) => {
              const state = stateString(s.value)
              if (s.context === lastContext && state === lastState && s.status !== 'done') return
              lastContext = s.context
              lastState = state
              changes++
            },
            complete: () => {
              forget(name, config.model)
              resolve(actor.getSnapshot().output as Output)
            },
            error: reject,
          })
          actor.start()
        })
      }),
    )
    return { elapsedMs: performance.now() - t0, changes, outputs }
  }

  /**
   * The real engine on a fresh JSON store: every state change saved, history logged, locks taken.
   * `inPlace: true`: the workspace is not a git repository, and the check for one (a `git rev-parse`
   * spawn per start) is not what this measures.
   */
  async function durable(n: number, prefix: string, dataDir: string) {
    const problems: string[] = []
    const engine = await createEngine({ dataDir, maxConcurrentLoops: n, resume: false, onProblem: (m) => problems.push(m) })
    // Every save goes through store.put: one at start (the record before the actor runs),
    // then one per state change (the engine writes a root snapshot whose state or context changed).
    let puts = 0
    const put = engine.store.put.bind(engine.store)
    engine.store.put = (record) => {
      puts++
      return put(record)
    }
    const t0 = performance.now()
    const handles = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        engine.start(
          { plan: config.plan, source: 'bench-plan.md' },
          { name: `${prefix}-${String(i).padStart(4, '0')}`, workspace: config.workspace, inPlace: true, models: [config.model] },
        ),
      ),
    )
    const outputs = (await Promise.all(handles.map((h) => h.done))) as Output[]
    const doneMs = performance.now() - t0
    await engine.close() // waits for every pending write (history lines too)
    const elapsedMs = performance.now() - t0
    return { elapsedMs, doneMs, changes: puts - n, outputs, problems }
  }

  const warmupStart = performance.now()
  if (config.warmup > 0 && kind === 'bare') await bare(config.warmup, 'warm')
  else if (config.warmup > 0) await durable(config.warmup, 'warm', config.warmupDir)
  const warmupMs = performance.now() - warmupStart
  ;(globalThis as { gc?: () => void }).gc?.()

  const rssBefore = process.memoryUsage.rss()
  const rss = rssSampler()
  const cpu = process.cpuUsage()
  const run = kind === 'bare' ? await bare(config.loops, 'loop') : await durable(config.loops, 'loop', config.dataDir)
  const { user, system } = process.cpuUsage(cpu)
  const peakRss = rss.stop()
  const wrong = run.outputs.filter((o) => o.status !== 'completed' || o.reason !== 'completed' || o.iteration !== 3)
  let stored: { records: number; completed: number } | null = null
  if (kind === 'durable') {
    const records = await new JsonStore(config.dataDir).list()
    stored = { records: records.length, completed: records.filter((r) => r.status === 'completed').length }
  }
  report({
    mode: 'workload',
    kind,
    loops: config.loops,
    warmupMs,
    elapsedMs: run.elapsedMs,
    doneMs: 'doneMs' in run ? run.doneMs : run.elapsedMs,
    changes: run.changes,
    // CPU time of the whole process (main thread, GC and libuv's fs threads) during the run, ms
    cpuUserMs: user / 1000,
    cpuSystemMs: system / 1000,
    wrong: wrong.length,
    firstWrong: wrong[0] ?? null,
    problems: 'problems' in run ? (run.problems as string[]).slice(0, 5) : [],
    stored,
    rssBefore,
    peakRss,
    atPeak: rss.atPeak(),
  })
}

/** Starts n loops whose coder hangs in iteration 2 (after one dirty audit), then closes the engine: n unfinished loops. */
async function hang(config: WorkloadConfig): Promise<void> {
  const { createEngine } = await import('../services/engine.ts')
  const { JsonStore } = await import('../adapters/json-store.ts')
  const problems: string[] = []
  const engine = await createEngine({ dataDir: config.dataDir, maxConcurrentLoops: config.loops, resume: false, onProblem: (m) => problems.push(m) })
  // A watchdog of an hour: the hung call must not be nudged (the scenario has no answer after
  // the hang) while a resume child runs, however long the bench takes between stages.
  const loopOptions = { workspace: config.workspace, inPlace: true, models: [config.model], stallTimeoutMs: 3_600_000 }
  const handles = await Promise.all(
    Array.from({ length: config.loops }, (_, i) =>
      engine.start({ plan: config.plan, source: 'bench-plan.md' }, { name: `loop-${String(i).padStart(4, '0')}`, ...loopOptions }),
    ),
  )
  const hung = () => handles.every((h) => h.view().iteration === 2 && h.view().state === 'running.coding.watching')
  const t0 = Date.now()
  while (!hung() && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20))
  await new Promise((r) => setTimeout(r, 200)) // the sessions' last steps (journal of the hung call) land
  await engine.close()
  const records = await new JsonStore(config.dataDir).list()
  const unfinished = records.filter((r) => r.status === 'running' && r.iteration === 2)
  const withJournal = unfinished.filter((r) => (r.snapshot as { context: { journal: unknown } }).context.journal !== null)
  report({ mode: 'hang', records: records.length, unfinished: unfinished.length, withJournal: withJournal.length, problems: problems.slice(0, 5) })
}

async function main(): Promise<void> {
  const { readFile } = await import('node:fs/promises')
  const readConfig = async (file: string) => JSON.parse(await readFile(file, 'utf8')) as WorkloadConfig
  if (mode === 'import') await importOnly()
  else if (mode === 'resume') await resume(process.argv[3]!, Number(process.argv[4]))
  else if (mode === 'resume-bare') await resumeBare(process.argv[3]!, Number(process.argv[4]))
  else if (mode === 'workload') await workload(process.argv[3] as 'bare' | 'durable', await readConfig(process.argv[4]!))
  else if (mode === 'hang') await hang(await readConfig(process.argv[3]!))
  else throw new Error(`bench-child: unknown mode '${mode}'`)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
