/**
 * For the viewer's browser tests: Debian's chromium through playwright-core, loops run
 * in child processes (test/helpers/viewer-child.ts, as `loopstate run` would) on the
 * plans of test/helpers/viewer-fixtures.ts, a loop replayed step by step into a store
 * (`storeReplay`), and waiting on the page's state.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { currentOwner } from '../../adapters/claims.ts'
import { JsonStore } from '../../adapters/json-store.ts'
import type { Phase, SessionJournal } from '../../machines/loop.types.ts'
import type { Role } from '../../machines/chat.types.ts'
import { recordOf } from '../../services/views.ts'

const CHROMIUM = '/usr/bin/chromium'
const CHILD = resolve('test/helpers/viewer-child.ts')
const TSX = resolve('node_modules/tsx/dist/cli.mjs')

/** Fails (never skips) without the browser. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; install it with 'apt-get install -y chromium'`)
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  })
}

/**
 * Polls an expression in the page until it is truthy (page.evaluate goes through the
 * DevTools protocol; the page's CSP forbids the eval that waitForFunction's string form needs).
 */
export async function waitUntil(page: Page, expression: string, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${expression}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export interface ChildLoop {
  proc: ChildProcess
  /** Resolves with its output when it exits 0, rejects otherwise. */
  exited: Promise<string>
  /** The workspace it was given. */
  workspace: string
}

export interface RunOptions {
  /** Runs in a git repository (one commit: README.md), as a worktree on `loop/<name>`. */
  git?: boolean
  /** Streams inspection events to this URL. */
  inspect?: string
}

/** Writes a plan and scenario under `dir` and runs the loop `name` in a child process. */
export async function runLoop(
  dir: string,
  dataDir: string,
  name: string,
  fixture: { plan: string; scenario: unknown },
  options: RunOptions = {},
): Promise<ChildLoop> {
  const workspace = join(dir, `ws-${name}`)
  await mkdir(workspace)
  if (options.git) {
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@localhost', ...args], { cwd: workspace, encoding: 'utf8' })
    git('init', '-q', '-b', 'main')
    await writeFile(join(workspace, 'README.md'), '# project\n')
    git('add', '-A')
    git('commit', '-q', '-m', 'initial')
  }
  await writeFile(join(dir, `${name}.md`), fixture.plan)
  await writeFile(join(dir, `${name}.json`), JSON.stringify(fixture.scenario))
  const args = [TSX, CHILD, '--data', dataDir, '--plan', join(dir, `${name}.md`), '--scenario', join(dir, `${name}.json`), '--workspace', workspace, '--name', name]
  if (options.inspect) args.push('--inspect', options.inspect)
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout!.on('data', (d) => (output += d))
  proc.stderr!.on('data', (d) => (output += d))
  const exited = new Promise<string>((res, rej) => proc.on('exit', (code) => (code === 0 ? res(output) : rej(new Error(`child ${name} exited ${code}: ${output}`)))))
  exited.catch(() => {}) // awaited by the test; a child killed after a test is not a failure
  return { proc, exited, workspace }
}

export interface StoreReplay {
  /** Transitions of the template. */
  readonly steps: number
  /** The state and iteration after each step (1-based: `after[0]` is step 1's). */
  readonly after: { state: string; iteration: number }[]
  /** Writes the template's next transition as the loop's: its record (with the session it starts) and its history line. */
  next(): Promise<void>
  /** Lets the loop go (its claim released): no process runs it any more. */
  release(): Promise<void>
}

/**
 * A loop `name` in `dataDir` that this process owns and moves on only when told: it
 * replays, transition by transition, the history and transcripts of the loop
 * `template` of `templateDir` (a real run), writing the store as an engine in
 * another process would (a record per step, its running session's messages, a
 * history line). Deterministic updates for the page, with no clock in between.
 */
export async function storeReplay(templateDir: string, template: string, dataDir: string, name: string): Promise<StoreReplay> {
  const tpl = new JsonStore(templateDir)
  const history = await tpl.history(template)
  const sessions = await tpl.transcript(template)
  const store = new JsonStore(dataDir)
  const got = await store.claims.claim(name, currentOwner())
  if (!('claim' in got)) throw new Error(`storeReplay: ${name} is claimed already`)
  const createdAt = new Date().toISOString()
  let step = 0
  return {
    steps: history.length,
    after: history.map((e) => ({ state: e.to, iteration: e.iteration })),
    async next() {
      const entry = history[step]
      if (!entry?.snapshot) throw new Error(`storeReplay: no snapshot at step ${step + 1} of ${template}`)
      step++
      const snap = entry.snapshot
      const session = sessions.find((s) => s.id === step)
      const journal: SessionJournal | null =
        session?.head
          ? {
              id: session.id,
              phase: session.head.phase as Phase,
              iteration: session.head.iteration,
              sectionIndex: session.head.section,
              role: session.head.role as Role,
              messages: session.messages,
              delivered: 0,
              running: [],
            }
          : null
      const context = { ...snap.context, name, journal, sessions: session?.id ?? snap.context.sessions }
      await store.put(recordOf({ ...snap, context }, createdAt))
      const { seq: _seq, snapshot: _snapshot, ...line } = entry
      await store.appendHistory(name, [{ ...line, at: new Date().toISOString(), snapshot: { ...snap, context: { ...context, journal: null } } }], 500)
      await store.flush()
    },
    async release() {
      await store.claims.release(got.claim)
    },
  }
}
