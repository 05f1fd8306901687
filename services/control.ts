/**
 * Reaching a loop from another process through the data dir: the process that
 * runs a loop holds `locks/<name>.json`; others drop commands into
 * `inbox/<name>/`, which the owner applies and removes. The store keeps one
 * writer per file: only the owner writes a running loop's record.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ControlEvent } from '../machines/loop.types.ts'

const CONTROL_TYPES = new Set(['loop.cancel', 'loop.pause', 'loop.resume', 'loop.say'])

let sequence = 0

/** Writes the command atomically (temp file + rename) so the owner never reads half of it. */
export async function sendCommand(dataDir: string, name: string, event: ControlEvent): Promise<void> {
  const dir = join(dataDir, 'inbox', name)
  await mkdir(dir, { recursive: true })
  // Sorted by name = sent order (time, then this process's sequence).
  const id = `${Date.now().toString().padStart(15, '0')}-${(sequence++).toString().padStart(6, '0')}-${randomBytes(4).toString('hex')}`
  const tmp = join(dir, `.${id}.tmp`)
  await writeFile(tmp, JSON.stringify(event))
  await rename(tmp, join(dir, `${id}.json`))
}

/** Names of loops with pending commands. */
export async function inboxNames(dataDir: string): Promise<string[]> {
  try {
    return await readdir(join(dataDir, 'inbox'))
  } catch {
    return []
  }
}

/** Takes (reads and removes) the pending commands of a loop, oldest first. Malformed files are dropped. */
export async function takeCommands(dataDir: string, name: string): Promise<ControlEvent[]> {
  const dir = join(dataDir, 'inbox', name)
  let files: string[]
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort()
  } catch {
    return []
  }
  const events: ControlEvent[] = []
  for (const f of files) {
    const path = join(dir, f)
    try {
      const event = JSON.parse(await readFile(path, 'utf8')) as ControlEvent
      if (CONTROL_TYPES.has(event?.type)) events.push(event)
    } catch {
      // unreadable command: dropped below
    }
    await rm(path, { force: true })
  }
  return events
}

interface LockFile {
  pid: number
  since: string
}

const lockPath = (dataDir: string, name: string) => join(dataDir, 'locks', `${name}.json`)

export async function acquireLock(dataDir: string, name: string): Promise<void> {
  await mkdir(join(dataDir, 'locks'), { recursive: true })
  const lock: LockFile = { pid: process.pid, since: new Date().toISOString() }
  await writeFile(lockPath(dataDir, name), JSON.stringify(lock))
}

export async function releaseLock(dataDir: string, name: string): Promise<void> {
  const owner = await lockOwner(dataDir, name)
  if (owner === process.pid) await rm(lockPath(dataDir, name), { force: true })
}

/** The pid of the live process that runs the loop, or null. */
export async function lockOwner(dataDir: string, name: string): Promise<number | null> {
  try {
    const lock = JSON.parse(await readFile(lockPath(dataDir, name), 'utf8')) as LockFile
    return isAlive(lock.pid) ? lock.pid : null
  } catch {
    return null
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
