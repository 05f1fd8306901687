/**
 * `npm run bench` (issue #3): what durability costs. Prints figures with their
 * targets; it is not a test and asserts nothing. Each workload runs in a child
 * process of its own (scripts/bench-child.ts) so that times and RSS come from a
 * clean process; the persist-cost table runs here.
 *
 *   npm run bench [-- --loops 1000 --rounds 2 --warmup 100 --puts 2000 --keep]
 *
 * Stages:
 *   1. bare baseline: the real loopMachine + the real session actor + ScriptedProvider,
 *      run with createActor directly (no engine, no store), n concurrent loops
 *   2. durable engine: createEngine on a fresh JSON store, the same n loops at once
 *   3. a data dir of n unfinished loops (their coder hangs), for the resume stage
 *   4. persist cost per state change with 10 … 10,000 loops in the store
 *   5. module loading: a child that only imports the engine
 *   6. resume: a child that restores the n unfinished loops, from process start (and the
 *      same data dir copied to /dev/shm, when there is one: the same work without the disk)
 *
 * Rounds of 1–2 alternate bare and durable; the fastest round of each counts (other
 * processes on the machine slow runs down, never up).
 *
 * The children run as the `loopstate` bin runs the CLI: bench-child.ts is bundled first
 * (esbuild, the options of scripts/build.mjs) and run with plain node. The same children
 * under tsx (the sources, as in development) are measured too, for comparison: module
 * loading and RSS differ, the work does not.
 */
import { execFileSync, spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { cpus, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { JsonStore } from '../adapters/json-store.ts'
import type { LoopRecord } from '../adapters/snapshot-store.ts'

const args = process.argv.slice(2)
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const LOOPS = flag('loops', 1000)
const ROUNDS = flag('rounds', 2)
const WARMUP = flag('warmup', 100)
const PUTS = flag('puts', 2000)
const KEEP = args.includes('--keep')
const STORE_SIZES = [10, 100, 1_000, 10_000]

const CHILD = fileURLToPath(new URL('./bench-child.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))

const text = (t: string, input: number, output: number) => ({ type: 'text', text: t, usage: { input, output } })
const calls = (list: { name: string; arguments: Record<string, unknown> }[], input: number, output: number) => ({
  type: 'tool_calls',
  calls: list,
  usage: { input, output },
})
const report = (line: number, message: string) => ({
  name: 'report_finding',
  arguments: { file: 'src/parse.ts', line, severity: 'bug', message },
})
const resolveF = (id: string) => ({ name: 'resolve_finding', arguments: { id } })

/** The "instant" model: no delayMs anywhere. 3 iterations: two dirty audits (one bug each), then a clean one. */
const SCENARIO = {
  coder: [
    text('Implemented the parser in src/parse.ts with tests in test/parse.test.ts.', 1200, 300),
    text('Fixed F1: the loop bound in parse() is now exclusive.', 1500, 250),
    text('Fixed F2: parse() returns null for an empty input.', 1600, 250),
  ],
  auditor: [
    calls([report(12, 'off-by-one: the loop reads one byte past the end of the buffer')], 1400, 80),
    text('One bug open (F1). Not done yet.', 1500, 40),
    calls([resolveF('F1'), report(3, 'an empty input throws instead of returning null')], 1600, 80),
    text('F1 is fixed; one new bug open (F2). Not done yet.', 1700, 40),
    calls([resolveF('F2')], 1800, 60),
    text('F1 and F2 are fixed; no open findings. Clean.', 1900, 30),
  ],
}

/** For the resume stage: one dirty audit, then the coder's next call never answers. */
const HANG_SCENARIO = {
  coder: [SCENARIO.coder[0], { type: 'hang' }],
  auditor: SCENARIO.auditor.slice(0, 2),
}

const PLAN = '# Bench plan\n\nWrite `parse(buffer)` in src/parse.ts and its tests.\n'

interface ChildResult {
  [key: string]: unknown
}

/** Where bundleChild() put the bundled bench child (set in main). */
let bundledChild = ''

/** Bundles scripts/bench-child.ts (and the engine it imports) into `dir`, as scripts/build.mjs builds dist/. */
async function bundleChild(dir: string): Promise<string> {
  const esbuild = await import('esbuild')
  // @ts-expect-error plain JavaScript module without type declarations
  const { bundleOptions } = (await import('./build.mjs')) as { bundleOptions: () => Record<string, unknown> }
  await esbuild.build({
    ...bundleOptions(),
    absWorkingDir: ROOT,
    entryPoints: [CHILD],
    outdir: dir,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
  })
  return join(dir, 'bench-child.js')
}

type Runner = 'bundle' | 'tsx'

/**
 * Runs the bench child (`node <bundle>/bench-child.js …`, or `node --import tsx
 * scripts/bench-child.ts …`) and returns its BENCH line.
 */
function child(argv: string[], nodeFlags: string[] = [], runner: Runner = 'bundle'): Promise<ChildResult & { wallMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const entry = runner === 'bundle' ? [bundledChild] : ['--import', 'tsx', CHILD]
    const p = spawn(process.execPath, [...nodeFlags, ...entry, ...argv], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    p.stdout.on('data', (d: Buffer) => (out += d))
    p.stderr.on('data', (d: Buffer) => (err += d))
    p.on('error', reject)
    p.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH '))
      if (code !== 0 || !line) {
        reject(new Error(`bench-child ${argv[0]} exited ${code}:\n${err || out}`))
        return
      }
      resolve({ ...(JSON.parse(line.slice(6)) as ChildResult), wallMs: performance.now() - t0 })
    })
  })
}

const isDir = (path: string) => stat(path).then((s) => s.isDirectory(), () => false)
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS')
/** What memoryUsage() said at a child's RSS peak. */
const atPeak = (r: ChildResult) => {
  const m = r.atPeak as { heapTotal: number; heapUsed: number } | undefined
  return m ? `${mb(m.heapTotal)} allocated, ${mb(m.heapUsed)} in use` : '?'
}
/** The run with the median value of `key` (of 3). */
const byMedian = (runs: ChildResult[], key: string) =>
  runs.slice().sort((a, b) => (a[key] as number) - (b[key] as number))[Math.floor((runs.length - 1) / 2)]!

let stage = 0
const STAGES = 6
const benchStart = performance.now()
function progress(message: string): void {
  stage++
  console.log(`[${stage}/${STAGES}] ${message}  (at ${((performance.now() - benchStart) / 1000).toFixed(0)} s)`)
}

/** Flushes dirty pages so that one stage's writeback does not land in the next one's timing. */
function sync(): void {
  try {
    execFileSync('sync')
  } catch {
    // no sync(1): timings may carry some writeback
  }
}

function fsType(dir: string): string {
  try {
    return execFileSync('df', ['-T', dir], { encoding: 'utf8' }).trim().split('\n').pop()!.split(/\s+/)[1] ?? '?'
  } catch {
    return '?'
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'loopstate-bench-'))
  const cpu = cpus()
  const machine = {
    cpu: cpu[0]?.model ?? '?',
    cores: cpu.length,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    os: `${process.platform} ${release()}`,
    tmp: `${root} (${fsType(root)})`,
  }
  console.log(`loopstate bench — ${new Date().toISOString()}`)
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory}, node ${machine.node}, ${machine.os}`)
  console.log(`store on: ${machine.tmp}`)
  console.log(`workload: ${LOOPS} concurrent loops × 3 code→audit iterations on the scripted instant model (no delays)`)

  progress('npm run build (dist/, what the loopstate bin runs) and a bundle of the bench child and the engine')
  // @ts-expect-error plain JavaScript module without type declarations
  const { build } = (await import('./build.mjs')) as { build: (o: { quiet: boolean }) => Promise<unknown> }
  if (!(await build({ quiet: true }))) throw new Error('bench: esbuild is not installed (npm ci installs it)')
  bundledChild = await bundleChild(join(root, 'bundle'))

  const scenarioFile = join(root, 'instant.json')
  const hangFile = join(root, 'hang.json')
  const workspace = join(root, 'workspace')
  await mkdir(workspace)
  await writeFile(scenarioFile, JSON.stringify(SCENARIO, null, 2))
  await writeFile(hangFile, JSON.stringify(HANG_SCENARIO, null, 2))
  const workloadConfig = async (tag: string, model: string) => {
    const file = join(root, `${tag}.config.json`)
    const config = {
      model: `scripted:${model}`,
      plan: PLAN,
      workspace,
      dataDir: join(root, `${tag}-data`),
      warmupDir: join(root, `${tag}-warmup`),
      loops: LOOPS,
      warmup: WARMUP,
    }
    await writeFile(file, JSON.stringify(config))
    return file
  }

  // 1–2: bare and durable, alternating when there are several rounds; the best round of each counts.
  const bareRuns: ChildResult[] = []
  const durableRuns: ChildResult[] = []
  progress(`bare machine and durable engine, ${LOOPS} loops each (${ROUNDS} round${ROUNDS > 1 ? 's' : ''}, ${WARMUP} warm-up loops in each child)`)
  for (let r = 1; r <= ROUNDS; r++) {
    sync()
    const bare = await child(['workload', 'bare', await workloadConfig(`bare${r}`, scenarioFile)], ['--expose-gc'])
    bareRuns.push(bare)
    console.log(`      bare    round ${r}: ${fmt(bare.elapsedMs as number)} ms, ${fmt(bare.changes as number)} state changes, peak RSS ${mb(bare.peakRss as number)}${bare.wrong ? `, ${bare.wrong} loops did not complete as scripted!` : ''}`)
    sync()
    const durable = await child(['workload', 'durable', await workloadConfig(`durable${r}`, scenarioFile)], ['--expose-gc'])
    durableRuns.push(durable)
    const stored = durable.stored as { records: number; completed: number }
    console.log(`      durable round ${r}: ${fmt(durable.elapsedMs as number)} ms (all done at ${fmt(durable.doneMs as number)} ms), ${fmt(durable.changes as number)} state changes, peak RSS ${mb(durable.peakRss as number)}, store: ${stored.completed}/${stored.records} completed${durable.wrong ? `, ${durable.wrong} loops did not complete as scripted!` : ''}`)
    for (const p of durable.problems as string[]) console.log(`      problem: ${p}`)
  }
  // The durable engine once more under tsx: the same work, with tsx and the TypeScript sources loaded.
  sync()
  const durableTsx = await child(['workload', 'durable', await workloadConfig('durable-tsx', scenarioFile)], ['--expose-gc'], 'tsx')
  console.log(`      durable under tsx: ${fmt(durableTsx.elapsedMs as number)} ms, peak RSS ${mb(durableTsx.peakRss as number)}${durableTsx.wrong ? `, ${durableTsx.wrong} loops did not complete as scripted!` : ''}`)
  const best = (runs: ChildResult[]) => runs.reduce((a, b) => ((a.elapsedMs as number) <= (b.elapsedMs as number) ? a : b))
  const bare = best(bareRuns)
  const durable = best(durableRuns)

  // 3: n unfinished loops for the resume stage (and a realistic record for stage 4).
  progress(`making ${LOOPS} unfinished loops (coder hangs in iteration 2) for the resume stage`)
  const hangConfig = await workloadConfig('resume', hangFile)
  const resumeDir = join(root, 'resume-data')
  const hang = await child(['hang', hangConfig])
  console.log(`      ${hang.unfinished}/${hang.records} records unfinished (running, iteration 2), ${hang.withJournal} with a session journal`)

  // 4: persist cost per state change at N stored loops.
  progress(`persist cost per state change with ${STORE_SIZES.join(', ')} loops in the store (${PUTS} puts of one loop each)`)
  const sampleText = await readFile(join(resumeDir, 'loops', 'loop-0000.json'), 'utf8')
  const sample = JSON.parse(sampleText) as LoopRecord
  const sampleBytes = Buffer.byteLength(JSON.stringify(sample))
  const persist = await persistCost(join(root, 'persist'), sample)
  for (const row of persist) {
    console.log(`      N=${String(row.n).padStart(6)}: awaited put ${row.awaitedUs.toFixed(1)} µs, engine pattern ${row.engineUs.toFixed(1)} µs, history append ${row.historyUs.toFixed(1)} µs`)
  }

  // 5: module loading alone.
  progress('module loading: child processes that only import the engine (3 runs bundled, 3 under tsx)')
  const imports: number[] = []
  for (let i = 0; i < 3; i++) imports.push((await child(['import'])).importedMs as number)
  const importsTsx: number[] = []
  for (let i = 0; i < 3; i++) importsTsx.push((await child(['import'], [], 'tsx')).importedMs as number)
  console.log(`      bundled: ${imports.map((ms) => fmt(ms)).join(', ')} ms from process start; under tsx: ${importsTsx.map((ms) => fmt(ms)).join(', ')} ms`)

  // 6: resume from process start, with the engine and bare.
  progress(`resume: child processes that restore the ${LOOPS} unfinished loops (3 runs, then 3 bare, then on tmpfs)`)
  const resumes: ChildResult[] = []
  for (let i = 0; i < 3; i++) {
    const r = await child(['resume', resumeDir, String(LOOPS)], ['--expose-gc'])
    resumes.push(r)
    console.log(`      run ${i + 1}: engine imported at ${fmt(r.importedMs as number)} ms, createEngine returned at ${fmt(r.engineReturnedMs as number)} ms, all ${r.loops} running at ${fmt(r.readyMs as number)} ms; RSS ${mb(r.rssLive as number)} (heap after GC ${mb(r.heapLive as number)})`)
    if (!r.running) console.log(`      NOT all running: ${JSON.stringify(r.notRunning)}`)
    for (const p of r.problems as string[]) console.log(`      problem: ${p}`)
  }
  const resume = byMedian(resumes, 'readyMs')
  const tsxResumes: ChildResult[] = []
  for (let i = 0; i < 3; i++) tsxResumes.push(await child(['resume', resumeDir, String(LOOPS)], ['--expose-gc'], 'tsx'))
  const tsxResume = byMedian(tsxResumes, 'readyMs')
  console.log(`      under tsx: all running at ${tsxResumes.map((r) => `${fmt(r.readyMs as number)}${r.running ? '' : ' (NOT all running!)'}`).join(', ')} ms; RSS ${mb(tsxResume.rssLive as number)}`)
  // The same through the CLI as a user types it: `loopstate resume --all` (the bin runs dist/cli.js),
  // timed from the spawn to its "resuming N unfinished loops" line (printed once resumeAll has
  // restored and started them all), then stopped with Ctrl-C (SIGINT), which saves every loop.
  const cliResumes: { readyMs: number; stopMs: number; code: number | null }[] = []
  for (let i = 0; i < 3; i++) {
    const copy = join(root, `cli-resume-${i}`)
    await cp(resumeDir, copy, { recursive: true })
    sync()
    cliResumes.push(await cliResume(copy))
  }
  console.log(`      loopstate resume --all --max-concurrent ${LOOPS}: "resuming ${LOOPS} unfinished loops" at ${cliResumes.map((r) => fmt(r.readyMs)).join(', ')} ms after the spawn; Ctrl-C: exit ${cliResumes.map((r) => `${r.code} in ${fmt(r.stopMs)} ms`).join(', ')}`)
  const bareResumes: ChildResult[] = []
  for (let i = 0; i < 3; i++) bareResumes.push(await child(['resume-bare', resumeDir, String(LOOPS)]))
  const bareResume = byMedian(bareResumes, 'readyMs')
  console.log(`      bare (createActor from the snapshots, no engine): all running at ${bareResumes.map((r) => `${fmt(r.readyMs as number)}${r.running ? '' : ' (NOT all running!)'}`).join(', ')} ms`)
  let shm: ChildResult | null = null
  if (await isDir('/dev/shm')) {
    const shmRoot = await mkdtemp('/dev/shm/loopstate-bench-')
    try {
      await cp(resumeDir, join(shmRoot, 'data'), { recursive: true })
      const runs: ChildResult[] = []
      for (let i = 0; i < 3; i++) runs.push(await child(['resume', join(shmRoot, 'data'), String(LOOPS)]))
      shm = byMedian(runs, 'readyMs')
      console.log(`      the same data dir on /dev/shm (tmpfs): all running at ${runs.map((r) => `${fmt(r.readyMs as number)}${r.running ? '' : ' (NOT all running!)'}`).join(', ')} ms`)
    } finally {
      await rm(shmRoot, { recursive: true, force: true })
    }
  }

  // Figures.
  const bareLoopsPerS = LOOPS / ((bare.elapsedMs as number) / 1000)
  const durableLoopsPerS = LOOPS / ((durable.elapsedMs as number) / 1000)
  const bareChangesPerS = (bare.changes as number) / ((bare.elapsedMs as number) / 1000)
  const durableChangesPerS = (durable.changes as number) / ((durable.elapsedMs as number) / 1000)
  const ratio = durableLoopsPerS / bareLoopsPerS
  const cpuPerLoop = (r: ChildResult) => ((r.cpuUserMs as number) + (r.cpuSystemMs as number)) / LOOPS
  const flat = Math.max(...persist.map((r) => r.awaitedUs)) / Math.min(...persist.map((r) => r.awaitedUs))
  const growth = persist[persist.length - 1]!.awaitedUs / persist[0]!.awaitedUs
  const importMs = median(imports)
  const resumeMs = resume.readyMs as number
  // A peak: the highest of the durable rounds (the rest of a round's figures come from the fastest one).
  const peakRss = Math.max(...durableRuns.map((r) => r.peakRss as number))
  const liveRss = resume.rssLive as number

  const lines = [
    '',
    `== loopstate bench, ${new Date().toISOString().slice(0, 10)} ==`,
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory}, node ${machine.node}, ${machine.os}, store on ${fsType(root)}`,
    `baseline: the same loopMachine + the same session actor + ScriptedProvider, createActor directly, no engine, no store`,
    `workload: ${LOOPS} concurrent loops × 3 code→audit iterations (${fmt((bare.changes as number) / LOOPS)} state changes per loop), instant scripted model`,
    '',
    `1. throughput                  loops/s   state changes/s    time`,
    `   bare machine (no store)    ${fmt(bareLoopsPerS).padStart(7)}   ${fmt(bareChangesPerS).padStart(15)}   ${fmt(bare.elapsedMs as number).padStart(6)} ms`,
    `   durable engine (JSON)      ${fmt(durableLoopsPerS).padStart(7)}   ${fmt(durableChangesPerS).padStart(15)}   ${fmt(durable.elapsedMs as number).padStart(6)} ms  (every write landed; all loops done at ${fmt(durable.doneMs as number)} ms)`,
    `   durable / bare: ${(ratio * 100).toFixed(1)}% of the bare loop rate             target ≥ 25%     ${verdict(ratio >= 0.25)}`,
    `   CPU time per loop (user+system, all threads): bare ${cpuPerLoop(bare).toFixed(2)} ms, durable ${cpuPerLoop(durable).toFixed(2)} ms (${((cpuPerLoop(bare) / cpuPerLoop(durable)) * 100).toFixed(1)}%)`,
    `   rounds (ms): bare ${bareRuns.map((r) => fmt(r.elapsedMs as number)).join(', ')}; durable ${durableRuns.map((r) => fmt(r.elapsedMs as number)).join(', ')}`,
    (bare.changes as number) === (durable.changes as number)
      ? `   (both counted ${fmt(bare.changes as number)} state changes: root snapshots whose state or context changed)`
      : `   (state changes differ: bare ${bare.changes}, durable ${durable.changes})`,
    '',
    `2. persist cost per state change (one loop's record, ${fmt(sampleBytes / 1024, 1)} KiB as JSON: a loop in iteration 2 with its session journal)`,
    `   loops in store   awaited put   engine pattern   history append`,
    ...persist.map(
      (r) =>
        `   ${fmt(r.n).padStart(14)}   ${r.awaitedUs.toFixed(1).padStart(8)} µs   ${r.engineUs.toFixed(1).padStart(11)} µs   ${r.historyUs.toFixed(1).padStart(11)} µs`,
    ),
    `   growth from 10 to 10,000 loops: awaited ${growth.toFixed(2)}× (max/min over all N ${flat.toFixed(2)}×)   target flat (≤ 1.5×)  ${verdict(growth <= 1.5)}`,
    `   (awaited put: one after another, each landed before the next; engine pattern: ${PUTS} puts not awaited, 4 per`,
    `   event-loop turn, then all awaited, as the engine writes on every state change; history append: one line, awaited)`,
    '',
    `3. resume ${LOOPS} unfinished loops: all restored and running ${fmt(resumeMs)} ms after process start (median of 3)   target < 1000 ms  ${verdict(resumeMs < 1000)}`,
    `   (bundled, as the loopstate bin runs; under tsx, from the sources: ${fmt(tsxResume.readyMs as number)} ms)`,
    `   the loopstate CLI (\`resume --all --max-concurrent ${LOOPS}\`, spawn to its "resuming" line): ${fmt(median(cliResumes.map((r) => r.readyMs)))} ms (median of 3); Ctrl-C then saved all and exited in ${fmt(Math.max(...cliResumes.map((r) => r.stopMs)))} ms at most (limit 2,000 ms)`,
    `   module loading (node + the bundled engine): ${fmt(resume.importedMs as number)} ms of it; an import-only child: ${fmt(importMs)} ms bundled, ${fmt(median(importsTsx))} ms under tsx (medians of 3)`,
    `   createEngine (resume: list, lock checks, restore, locks, start): ${fmt((resume.engineReturnedMs as number) - (resume.importedMs as number))} ms; runs: ${resumes.map((r) => fmt(r.readyMs as number)).join(', ')} ms`,
    `   bare, for comparison (read the same files, createActor({ snapshot }), start, loop.restored; no engine): all running at ${fmt(bareResume.readyMs as number)} ms,`,
    `   of which module loading ${fmt(bareResume.importedMs as number)} ms, reading ${fmt((bareResume.readMs as number) - (bareResume.importedMs as number))} ms, restoring ${fmt((bareResume.readyMs as number) - (bareResume.readMs as number))} ms`,
    ...(shm
      ? [`   the same on /dev/shm (tmpfs, no disk): ${fmt(shm.readyMs as number)} ms (createEngine ${fmt((shm.engineReturnedMs as number) - (shm.importedMs as number))} ms)`]
      : []),
    '',
    `4. peak RSS with ${LOOPS} live loops running the workload (durable engine, highest of ${durableRuns.length} round${durableRuns.length > 1 ? 's' : ''}): ${mb(peakRss)}   target < 200 MB  ${verdict(peakRss < 200 * 2 ** 20)}`,
    `   (rounds: ${durableRuns.map((r) => mb(r.peakRss as number)).join(', ')}; V8 heap at that peak: ${atPeak(durableRuns.reduce((a, b) => ((a.peakRss as number) >= (b.peakRss as number) ? a : b)))})`,
    `   (the bare machine's peak on the same workload: ${mb(Math.max(...bareRuns.map((r) => r.peakRss as number)))}; the durable engine under tsx: ${mb(durableTsx.peakRss as number)})`,
    `   ${LOOPS} live loops after resume (idle in a model call), 1 s after ready: ${mb(liveRss)}   target < 200 MB  ${verdict(liveRss < 200 * 2 ** 20)}`,
    `   (V8 heap in use after a full GC there: ${mb(resume.heapLive as number)}; peak RSS during the resume: ${mb(resume.peakRss as number)}; under tsx: ${mb(tsxResume.rssLive as number)})`,
    '',
    `bench time ${fmt((performance.now() - benchStart) / 1000, 1)} s${KEEP ? `; files kept in ${root}` : ''}`,
  ]
  console.log(lines.join('\n'))
  if (!KEEP) await rm(root, { recursive: true, force: true })
}

/** `loopstate resume --all` on a data dir: ms to its "resuming" line, then SIGINT and ms to exit. */
function cliResume(dataDir: string): Promise<{ readyMs: number; stopMs: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const bin = join(ROOT, 'scripts', 'loopstate.js')
    const p = spawn(process.execPath, [bin, 'resume', '--all', '--max-concurrent', String(LOOPS), '--data', dataDir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    let readyMs = -1
    let stopAt = 0
    const killer = setTimeout(() => p.kill('SIGKILL'), 60_000)
    p.stdout.on('data', (d: Buffer) => {
      out += d
      if (readyMs < 0 && out.includes(`resuming ${LOOPS} unfinished loop`)) {
        readyMs = performance.now() - t0
        stopAt = performance.now()
        p.kill('SIGINT')
      }
    })
    p.stderr.on('data', (d: Buffer) => (err += d))
    p.on('error', reject)
    p.on('close', (code) => {
      clearTimeout(killer)
      if (readyMs < 0) reject(new Error(`loopstate resume --all exited ${code} before resuming:\n${err || out.slice(0, 2000)}`))
      else resolve({ readyMs, stopMs: performance.now() - stopAt, code })
    })
  })
}

interface PersistRow {
  n: number
  awaitedUs: number
  engineUs: number
  historyUs: number
}

/**
 * Grows one store to 10, 100, 1,000, 10,000 loops (copies of a real record), and at
 * each size times puts of one loop: awaited one after another; the engine's pattern
 * (a put on every state change, not awaited, several per turn of the event loop);
 * and history appends (one line per transition, awaited). Median of 3 runs each.
 */
async function persistCost(dir: string, sample: LoopRecord): Promise<PersistRow[]> {
  const rows: PersistRow[] = []
  const loops = join(dir, 'loops')
  await mkdir(loops, { recursive: true })
  const text = (name: string) =>
    JSON.stringify({ ...sample, name, snapshot: { ...(sample.snapshot as object), context: { ...(sample.snapshot as { context: object }).context, name } } })
  let have = 0
  for (const n of STORE_SIZES) {
    for (; have < n; ) {
      const batch = Array.from({ length: Math.min(500, n - have) }, (_, k) => `loop-${String(have + k).padStart(5, '0')}`)
      await Promise.all(batch.map((name) => writeFile(join(loops, `${name}.json`), text(name))))
      have += batch.length
    }
    const store = new JsonStore(dir)
    const target = 'loop-00000'
    const base = JSON.parse(text(target)) as LoopRecord
    // A fresh record per put, as the engine builds one per state change.
    const next = (i: number): LoopRecord => ({ ...base, iteration: i, updatedAt: new Date().toISOString() })
    for (let i = 0; i < 50; i++) await store.put(next(i)) // warm-up
    const awaited: number[] = []
    const engine: number[] = []
    const history: number[] = []
    for (let rep = 0; rep < 3; rep++) {
      sync()
      let t0 = performance.now()
      for (let i = 0; i < PUTS; i++) await store.put(next(i))
      awaited.push(((performance.now() - t0) * 1000) / PUTS)

      t0 = performance.now()
      const writes: Promise<void>[] = []
      for (let i = 0; i < PUTS; i++) {
        writes.push(store.put(next(i)))
        if (i % 4 === 3) await new Promise((r) => setImmediate(r))
      }
      await Promise.all(writes)
      engine.push(((performance.now() - t0) * 1000) / PUTS)

      t0 = performance.now()
      for (let i = 0; i < PUTS; i++) {
        await store.appendHistory(
          target,
          [{ at: new Date().toISOString(), event: 'session.turn', from: 'running.coding.watching', to: 'running.coding.watching', iteration: 2, phase: 'coding' }],
          500,
        )
      }
      history.push(((performance.now() - t0) * 1000) / PUTS)
    }
    rows.push({ n, awaitedUs: median(awaited), engineUs: median(engine), historyUs: median(history) })
  }
  return rows
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
