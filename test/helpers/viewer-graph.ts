/**
 * What the statechart graph's browser test (test/viewer-graph.browser.test.ts) runs on:
 * Debian's chromium, loops run in child processes as `loopstate run` would
 * (test/helpers/viewer-child.ts, on test/helpers/viewer-fixtures.ts's plans), and a
 * wait on a condition in the page.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'

const CHROMIUM = '/usr/bin/chromium'
const CHILD = resolve('test/helpers/viewer-child.ts')
/** tsx's loader, in the child itself: no tsx CLI process between, so killing the child stops the loop. */
const TSX_LOADER = pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href

/** Debian's chromium, headless; fails (never skips) without it. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; install it with 'apt-get install -y chromium'`)
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  })
}

export interface LoopChild {
  proc: ChildProcess
  /** Its output once it exited 0; rejects on another exit. */
  exited: Promise<string>
  /** Kills it (if it still runs) and waits until it has exited. */
  stop(): Promise<void>
}

/** Writes the plan and scenario of `fixture` under `dir` and runs the loop `name` in a child process on `dataDir`. */
export async function runLoopChild(
  dir: string,
  name: string,
  fixture: { plan: string; scenario: unknown },
  dataDir: string,
): Promise<LoopChild> {
  const ws = join(dir, `ws-${name}`)
  await mkdir(ws, { recursive: true })
  await writeFile(join(dir, `${name}.md`), fixture.plan)
  await writeFile(join(dir, `${name}.json`), JSON.stringify(fixture.scenario))
  const args = ['--import', TSX_LOADER, CHILD, '--data', dataDir, '--plan', join(dir, `${name}.md`), '--scenario', join(dir, `${name}.json`), '--workspace', ws, '--name', name]
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout!.on('data', (d) => (output += d))
  proc.stderr!.on('data', (d) => (output += d))
  const exited = new Promise<string>((res, rej) => proc.on('exit', (code) => (code === 0 ? res(output) : rej(new Error(`child exited ${code}: ${output}`)))))
  exited.catch(() => {}) // awaited by the test; a child killed at the end of a test is not a failure
  const gone = new Promise<void>((r) => proc.once('exit', () => r()))
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await gone
  }
  return { proc, exited, stop }
}

/**
 * Polls `expression` in the page until it is truthy (page.evaluate goes through the
 * DevTools protocol: the page's CSP forbids the eval that waitForFunction's string form
 * needs). Bounded by a count of polls, so a slow machine only makes it take longer.
 */
export async function waitUntil(page: Page, expression: string, { polls = 600, everyMs = 25 } = {}): Promise<void> {
  for (let i = 0; i < polls; i++) {
    if (await page.evaluate(expression)) return
    await new Promise((r) => setTimeout(r, everyMs))
  }
  throw new Error(`waitUntil: not reached after ${polls} polls: ${expression}`)
}
