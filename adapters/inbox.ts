/**
 * The inbox: how a command reaches the process that owns a loop (docs/architecture.md
 * "Ownership"). A sender leaves the command; the owner takes it (the
 * acknowledgement) and applies it; a sender whose command was not taken in time
 * withdraws it. Taking and withdrawing exclude each other: a command is taken or
 * withdrawn, never both.
 *
 * The JSON store keeps commands as files, `inbox/<name>/<id>.json` (adapters/data-dir.ts):
 * written atomically (temp + rename), taken with a rename, withdrawn with an unlink.
 */
import { randomBytes } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import { lstat, mkdir, open, readdir, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ControlEvent } from '../machines/loop.types.ts'
import { dataDirLayout, type DataDirLayout } from './data-dir.ts'

/** A command left for an owner, as its sender knows it. */
export interface CommandTicket {
  name: string
  id: string
}

/** The inbox port (part of the store port, adapters/snapshot-store.ts). */
export interface CommandInbox {
  /** Leaves `event` for the owner of loop `name`; refuses what `take` would not return (`commandProblem`). */
  send(name: string, event: ControlEvent): Promise<CommandTicket>
  /** Whether the command is no longer waiting: its owner took it (or its sender withdrew it). */
  taken(ticket: CommandTicket): Promise<boolean>
  /** Withdraws a command not taken: true when withdrawn (never applied), false when its owner took it first. */
  withdraw(ticket: CommandTicket): Promise<boolean>
  /** Names of the loops with commands waiting. */
  waiting(): Promise<string[]>
  /**
   * Takes the commands waiting for `name`, oldest first. An entry that is no command
   * is reported through `onProblem` once and put aside, never taken.
   */
  take(name: string, onProblem?: (message: string) => void): Promise<ControlEvent[]>
}

const CONTROL_TYPES = new Set(['loop.cancel', 'loop.pause', 'loop.resume', 'loop.say'])

/** The largest command file taken (a `say` text included). */
export const MAX_COMMAND_BYTES = 64 * 1024

/** Whether `v` is a control command (what an inbox entry must be to be taken). */
export function isCommand(v: unknown): v is ControlEvent {
  const e = v as { type?: unknown; text?: unknown }
  if (typeof e !== 'object' || e === null || typeof e.type !== 'string' || !CONTROL_TYPES.has(e.type)) return false
  return e.type !== 'loop.say' || typeof e.text === 'string'
}

/**
 * Why `event` cannot go through an inbox (not a command, or larger than an owner
 * takes), or null. Checked when a command is sent, so that nothing is acknowledged
 * that its owner would put aside.
 */
export function commandProblem(event: unknown): string | null {
  if (!isCommand(event)) return `not a command (${[...CONTROL_TYPES].join(', ')}): ${JSON.stringify(event)?.slice(0, 80)}`
  const bytes = Buffer.byteLength(JSON.stringify(event))
  if (bytes > MAX_COMMAND_BYTES) return `${event.type} is ${bytes} bytes, over the ${MAX_COMMAND_BYTES} a command may have`
  return null
}

function checkCommand(event: unknown): void {
  const problem = commandProblem(event)
  if (problem !== null) throw new Error(`inbox: ${problem}`)
}

let sequence = 0

/** Commands as files under `<dataDir>/inbox/` (see the header). */
export class JsonInbox implements CommandInbox {
  readonly #layout: DataDirLayout

  constructor(dataDir: string | DataDirLayout) {
    this.#layout = typeof dataDir === 'string' ? dataDirLayout(dataDir) : dataDir
  }

  #file(ticket: CommandTicket): string {
    return join(this.#layout.inbox(ticket.name), `${ticket.id}.json`)
  }

  async send(name: string, event: ControlEvent): Promise<CommandTicket> {
    checkCommand(event)
    const dir = this.#layout.inbox(name)
    // Sorted by name = sent order (time, then this process's sequence).
    const id = `${Date.now().toString().padStart(15, '0')}-${(sequence++).toString().padStart(6, '0')}-${randomBytes(4).toString('hex')}`
    const tmp = join(dir, `.${id}.tmp`)
    for (let attempt = 1; ; attempt++) {
      await mkdir(dir, { recursive: true })
      try {
        await writeFile(tmp, JSON.stringify(event), { flag: 'wx' })
        break
      } catch (err) {
        // the owner removed the emptied directory meanwhile: make it again
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err
      }
    }
    await rename(tmp, join(dir, `${id}.json`))
    return { name, id }
  }

  async taken(ticket: CommandTicket): Promise<boolean> {
    try {
      await stat(this.#file(ticket))
      return false
    } catch {
      return true
    }
  }

  async withdraw(ticket: CommandTicket): Promise<boolean> {
    try {
      await unlink(this.#file(ticket))
      return true
    } catch {
      return false
    }
  }

  async waiting(): Promise<string[]> {
    let names: string[]
    try {
      names = await readdir(this.#layout.inboxDir)
    } catch {
      return []
    }
    const waiting: string[] = []
    for (const name of names) {
      const files = await readdir(this.#layout.inbox(name)).catch(() => [] as string[])
      if (files.some((f) => f.endsWith('.json'))) waiting.push(name)
    }
    return waiting
  }

  /**
   * Each file is taken with a rename (atomic: either this owner takes it, or its
   * sender withdrew it first, never both), then read and removed. An entry that is
   * no command (a directory, FIFO, socket, symlink, a file too big, not JSON, not a
   * known command) is never opened for a blocking read: it is reported once and
   * moved aside (`<file>.bad-<time>`), so neither this owner nor a later one trips on it.
   */
  async take(name: string, onProblem: (message: string) => void = () => {}): Promise<ControlEvent[]> {
    const dir = this.#layout.inbox(name)
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
            const parsed: unknown = JSON.parse(await handle.readFile('utf8'))
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
    // An emptied directory goes (a sender meanwhile makes it again); one with entries stays.
    await rmdir(dir).catch(() => {})
    return events
  }
}

/** Commands kept in memory (the memory store): one process, same rules. */
export class MemoryInbox implements CommandInbox {
  readonly #waiting = new Map<string, Map<string, ControlEvent>>()

  async send(name: string, event: ControlEvent): Promise<CommandTicket> {
    checkCommand(event)
    const id = `${Date.now().toString().padStart(15, '0')}-${(sequence++).toString().padStart(6, '0')}`
    let box = this.#waiting.get(name)
    if (!box) this.#waiting.set(name, (box = new Map()))
    box.set(id, structuredClone(event))
    return { name, id }
  }

  async taken(ticket: CommandTicket): Promise<boolean> {
    return !(this.#waiting.get(ticket.name)?.has(ticket.id) ?? false)
  }

  async withdraw(ticket: CommandTicket): Promise<boolean> {
    return this.#waiting.get(ticket.name)?.delete(ticket.id) ?? false
  }

  async waiting(): Promise<string[]> {
    return [...this.#waiting].filter(([, box]) => box.size > 0).map(([name]) => name)
  }

  async take(name: string): Promise<ControlEvent[]> {
    const box = this.#waiting.get(name)
    if (!box) return []
    const events = [...box.keys()].sort().map((id) => box.get(id)!)
    this.#waiting.delete(name)
    return events
  }
}

function entryKind(s: Stats): string {
  if (s.isDirectory()) return 'a directory'
  if (s.isFIFO()) return 'a FIFO'
  if (s.isSocket()) return 'a socket'
  if (s.isSymbolicLink()) return 'a symbolic link'
  return 'not a regular file'
}
