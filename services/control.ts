/**
 * Reaching a loop from another process through the data dir: the process that
 * holds a loop's claim (adapters/claims.ts) runs it; others drop commands into
 * `inbox/<name>/`, which the owner takes (removes: the acknowledgement) and
 * applies. A sender whose command was not taken in time withdraws it (removes it
 * itself): a command is taken or withdrawn, never both.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ControlEvent } from '../machines/loop.types.ts'

const CONTROL_TYPES = new Set(['loop.cancel', 'loop.pause', 'loop.resume', 'loop.say'])

let sequence = 0

/** Writes the command atomically (temp file + rename) so the owner never reads half of it; returns its file. */
export async function sendCommand(dataDir: string, name: string, event: ControlEvent): Promise<string> {
  const dir = join(dataDir, 'inbox', name)
  await mkdir(dir, { recursive: true })
  // Sorted by name = sent order (time, then this process's sequence).
  const id = `${Date.now().toString().padStart(15, '0')}-${(sequence++).toString().padStart(6, '0')}-${randomBytes(4).toString('hex')}`
  const tmp = join(dir, `.${id}.tmp`)
  await writeFile(tmp, JSON.stringify(event))
  const file = join(dir, `${id}.json`)
  await rename(tmp, file)
  return file
}

/** Whether the owner took the command (its file is gone). */
export async function commandTaken(file: string): Promise<boolean> {
  try {
    await stat(file)
    return false
  } catch {
    return true
  }
}

/**
 * Withdraws a command that was not taken: true when it is withdrawn (the owner
 * will never see it), false when the owner took it first (it is applied).
 */
export async function withdrawCommand(file: string): Promise<boolean> {
  try {
    await unlink(file)
    return true
  } catch {
    return false
  }
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
