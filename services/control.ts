/**
 * Reaching a loop from another process through the data dir: the process that
 * holds a loop's claim (adapters/claims.ts) runs it; others drop commands into
 * `inbox/<name>/`, which the owner takes (removes: the acknowledgement) and
 * applies. A sender whose command was not taken in time withdraws it (removes it
 * itself): a command is taken or withdrawn, never both.
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { lstat, mkdir, open, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises'
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

/** The largest command file taken (a `say` text included). */
const MAX_COMMAND_BYTES = 64 * 1024

/**
 * Takes the pending commands of a loop, oldest first. Each file is taken with a
 * rename (atomic: either this owner takes it, or its sender withdrew it first,
 * never both), then read and removed. An entry that is no command (a directory,
 * FIFO, socket, symlink, a file too big, not JSON, not a known command) is never
 * opened for a blocking read: it is reported once through `onProblem` and moved
 * aside (`<file>.bad-<time>`), so neither this owner nor a later one trips on it.
 */
export async function takeCommands(
  dataDir: string,
  name: string,
  onProblem: (message: string) => void = () => {},
): Promise<ControlEvent[]> {
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
    const aside = async (why: string) => {
      const to = `${path}.bad-${Date.now()}`
      const moved = await rename(path, to).then(
        () => `moved aside to ${to}`,
        () => rm(path, { recursive: true, force: true }).then(() => 'removed', () => 'left in place'),
      )
      onProblem(`control: ${path}: ${why}; ${moved}`)
    }
    const entry = await lstat(path).catch(() => null)
    if (entry === null) continue // withdrawn meanwhile
    if (!entry.isFile()) {
      await aside(`not a command file (${entryKind(entry)})`)
      continue
    }
    if (entry.size > MAX_COMMAND_BYTES) {
      await aside(`not a command file (${entry.size} bytes, over ${MAX_COMMAND_BYTES})`)
      continue
    }
    const taking = join(dir, `.${f}.taking`)
    try {
      await rename(path, taking)
    } catch {
      continue // withdrawn by its sender
    }
    let event: ControlEvent | null = null
    try {
      const handle = await open(taking, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW)
      try {
        const s = await handle.stat()
        if (s.isFile() && s.size <= MAX_COMMAND_BYTES) {
          const parsed = JSON.parse(await handle.readFile('utf8')) as ControlEvent
          if (isCommand(parsed)) event = parsed
        }
      } finally {
        await handle.close()
      }
    } catch {
      // not JSON, or swapped meanwhile: reported below
    }
    if (event === null) {
      const to = `${path}.bad-${Date.now()}`
      await rename(taking, to).catch(() => rm(taking, { force: true }))
      onProblem(`control: ${path}: not a command (${CONTROL_TYPES.size} kinds: ${[...CONTROL_TYPES].join(', ')}); moved aside to ${to}`)
      continue
    }
    events.push(event)
    await rm(taking, { force: true })
  }
  return events
}

function isCommand(v: unknown): v is ControlEvent {
  const e = v as { type?: unknown; text?: unknown }
  if (typeof e !== 'object' || e === null || typeof e.type !== 'string' || !CONTROL_TYPES.has(e.type)) return false
  return e.type !== 'loop.say' || typeof e.text === 'string'
}

function entryKind(s: import('node:fs').Stats): string {
  if (s.isDirectory()) return 'a directory'
  if (s.isFIFO()) return 'a FIFO'
  if (s.isSocket()) return 'a socket'
  if (s.isSymbolicLink()) return 'a symbolic link'
  return 'not a regular file'
}
