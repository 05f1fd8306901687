/**
 * A temporary directory to run the real `loopstate` bin in (`node scripts/loopstate.js`),
 * with a workspace and a `--data` dir beside it; children still running at the end of
 * the test are killed and the directory removed. The CLI suites share it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'vitest'

export const BIN = fileURLToPath(new URL('../../scripts/loopstate.js', import.meta.url))
const FIXTURES = fileURLToPath(new URL('../fixtures/cli/', import.meta.url))
export const fixture = (name: string) => join(FIXTURES, name)
export const scripted = (name: string) => `scripted:${fixture(name)}`

export type Env = Record<string, string | undefined>

export interface Result {
  code: number | null
  stdout: string
  stderr: string
}

export interface Sandbox {
  dir: string
  data: string
  workspace: string
  /** Runs the bin to its end, with `env` over the sandbox's (killed after the sandbox's hang cap). */
  cli(args: string[], env?: Env): Promise<Result>
  /** Starts the bin and returns at once. */
  spawn(args: string[]): { child: ChildProcess; output: () => string; exit: Promise<Result> }
}

export interface SandboxOptions {
  /** The name of the temporary directory starts with it. */
  prefix: string
  /** The bin's environment. */
  env: Env
  /** Stops a hung child only: a loaded machine makes a command slow, not wrong. */
  timeoutMs: number
}

export async function cliSandbox({ onTestFinished }: TestContext, options: SandboxOptions): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix))
  const workspace = join(dir, 'ws')
  await mkdir(workspace)
  const children: ChildProcess[] = []
  onTestFinished(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })
  return {
    dir,
    data: join(dir, 'data'),
    workspace,
    cli: (args, env = {}) =>
      new Promise((resolve) => {
        execFile(process.execPath, [BIN, ...args], { cwd: dir, env: { ...options.env, ...env }, timeout: options.timeoutMs }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr })
        })
      }),
    spawn(args) {
      const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: options.env })
      children.push(child)
      let stdout = ''
      let stderr = ''
      child.stdout!.on('data', (d: Buffer) => (stdout += d))
      child.stderr!.on('data', (d: Buffer) => (stderr += d))
      const exit = new Promise<Result>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
      return { child, output: () => stdout, exit }
    },
  }
}
