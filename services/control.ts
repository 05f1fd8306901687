/**
 * Reaching a loop from another process through the data dir: the process that
 * runs a loop lists it in its `locks/engine-<pid>.json`; others drop commands into
 * `inbox/<name>/`, which the owner applies and removes. The store keeps one
 * writer per file: only the owner writes a running loop's record.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
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

/** `locks/engine-<pid>.json`: the loops one engine process runs. */
interface LockFile {
  pid: number
  since: string
  loops: string[]
}

const LOCK_FILE = /^engine-(\d+)\.json$/

/**
 * The lock of this process's engine: one file listing the loops it runs,
 * rewritten (atomically, coalesced) as loops start and end, and removed when it
 * runs none. One file per process keeps starting 1,000 loops to a few writes.
 */
export class EngineLock {
  readonly path: string
  readonly #loops = new Set<string>()
  readonly #since = new Date().toISOString()
  /** The write in flight, and the one queued behind it (it will carry every change made meanwhile). */
  #current: Promise<void> = Promise.resolve()
  #next: Promise<void> | null = null

  constructor(readonly dataDir: string) {
    this.path = join(dataDir, 'locks', `engine-${process.pid}.json`)
  }

  /** Records that this process runs `name`; resolves when that is on disk. */
  add(name: string): Promise<void> {
    this.#loops.add(name)
    return this.#flush()
  }

  /** Records that this process no longer runs `name`; resolves when that is on disk. */
  remove(name: string): Promise<void> {
    if (!this.#loops.delete(name)) return this.#next ?? this.#current
    return this.#flush()
  }

  #flush(): Promise<void> {
    this.#next ??= this.#current
      .catch(() => {})
      .then(() => {
        this.#next = null
        this.#current = this.#write([...this.#loops])
        return this.#current
      })
    return this.#next
  }

  async #write(loops: string[]): Promise<void> {
    if (loops.length === 0) {
      await rm(this.path, { force: true })
      return
    }
    await mkdir(dirname(this.path), { recursive: true })
    const lock: LockFile = { pid: process.pid, since: this.#since, loops }
    const tmp = `${this.path}.tmp`
    await writeFile(tmp, JSON.stringify(lock))
    await rename(tmp, this.path)
  }
}

/** Which live process runs which loop: loop name → pid. Locks of dead processes (a crash) are ignored. */
export async function lockOwners(dataDir: string): Promise<Map<string, number>> {
  const owners = new Map<string, number>()
  let files: string[]
  try {
    files = await readdir(join(dataDir, 'locks'))
  } catch {
    return owners
  }
  for (const file of files) {
    const pid = Number(LOCK_FILE.exec(file)?.[1])
    if (!isAlive(pid)) continue
    try {
      const lock = JSON.parse(await readFile(join(dataDir, 'locks', file), 'utf8')) as LockFile
      for (const name of lock.loops ?? []) owners.set(name, pid)
    } catch {
      // a lock being replaced: its rename lands atomically, the next look sees it
    }
  }
  return owners
}

/** The pid of the live process that runs the loop, or null. */
export async function lockOwner(dataDir: string, name: string): Promise<number | null> {
  return (await lockOwners(dataDir)).get(name) ?? null
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
