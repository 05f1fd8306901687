/**
 * A loop owned by another process, for the viewer's controls: control-owner-child.ts
 * runs it on an engine as `loopstate run` would, on a scripted model whose every call
 * hangs until it is aborted, so the loop runs until it is paused or cancelled (and,
 * paused, its process waits for `resume`).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { LoopClient } from '../../services/client.ts'
import { hang } from './loop-harness.ts'
import { waitFor } from './wait-for.ts'

const CHILD = resolve('test/helpers/control-owner-child.ts')

export interface OwnerProcess {
  child: ChildProcess
  /** Resolves once it exited, with its exit code and what it printed. */
  exited: Promise<{ code: number | null; output: string }>
  output(): string
  /** Kills it (SIGKILL) if it still runs, and waits for its exit. */
  kill(): Promise<void>
}

/** Runs loop `name` in a child process on data dir `data`; its files go under `dir`. */
export async function startOwner(dir: string, data: string, name: string): Promise<OwnerProcess> {
  const ws = join(dir, `ws-${name}`)
  await mkdir(ws, { recursive: true })
  const scenario = join(dir, `${name}.json`)
  // every call hangs until aborted (a pause aborts it; the resumed session calls again)
  await writeFile(scenario, JSON.stringify({ coder: Array.from({ length: 8 }, hang), auditor: [] }))
  // tsx as a loader of this very process (its CLI would run the script in a grandchild, which a kill would miss)
  const args = ['--import', 'tsx', CHILD, '--data', data, '--scenario', scenario, '--workspace', ws, '--name', name]
  const child = spawn(process.execPath, args, {
    env: { ...process.env, LOOPSTATE_DATA: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d) => (output += d))
  child.stderr!.on('data', (d) => (output += d))
  const exited = new Promise<{ code: number | null; output: string }>((r) => child.on('close', (code) => r({ code, output })))
  return {
    child,
    exited,
    output: () => output,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

/** Waits until loop `name` runs in its owner's process (its claim held) and has asked its model. */
export async function waitRunning(client: LoopClient, name: string, owner: OwnerProcess): Promise<void> {
  await waitFor(
    async () => {
      if (owner.child.exitCode !== null) throw new Error(`owner exited early (${owner.child.exitCode}): ${owner.output()}`)
      const record = await client.record(name)
      if (record?.status !== 'running' || record.snapshot.context.journal === null) return false
      return (await client.owner(name))?.pid === owner.child.pid
    },
    `loop ${name} running in its owner`,
  )
}

/** Waits until the record of loop `name` has `status`. */
export async function waitStatus(client: LoopClient, name: string, status: string): Promise<void> {
  await waitFor(async () => (await client.record(name))?.status === status, `loop ${name} ${status}`)
}
