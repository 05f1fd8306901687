/**
 * Claims: one owner per loop (docs/architecture.md, "Ownership"). Before anything
 * acts on a loop (start, restore, queue, an offline command, fork, clean) the
 * process claims it; the claim is exclusive and names its owner by pid AND process
 * start time, so that a zombie or a reused pid is never taken for the owner. A
 * claim whose owner is gone is taken over; every write of the owner is fenced
 * (`held()`): once another process took the claim, the old owner's writes are
 * refused instead of landing over the new owner's.
 *
 * The JSON store keeps them as generation files, `claims/<name>/<gen>.json`:
 * claiming creates generation N+1 with O_EXCL over the current N (whose owner must
 * be gone), so of two processes taking over the same dead claim exactly one wins;
 * the owner of N still holds it while N+1 does not exist (one stat per write). A
 * release removes the owner's file. One host per data dir: a claim of another
 * host is taken for live.
 */
import { closeSync, openSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { dataDirLayout, type DataDirLayout } from './data-dir.ts'

/** Who holds a claim. */
export interface Owner {
  /** Random per engine (or per CLI command): two engines of one process are two owners. */
  id: string
  pid: number
  /** The process's start time (Linux: clock ticks since boot, from /proc), or null where unknown. */
  started: string | null
  host: string
}

/** A claim this process holds. */
export interface Claim {
  name: string
  owner: Owner
  generation: number
}

export type ClaimResult = { claim: Claim } | { heldBy: Owner }

/** The claims port: the JSON store's files, or memory. */
export interface ClaimStore {
  /** Claims `name` for `owner`: exclusive; a claim whose owner is gone is taken over. */
  claim(name: string, owner: Owner): Promise<ClaimResult>
  /** Whether `claim` is still this owner's (no other process took it over). Cheap: called before every write. */
  held(claim: Claim): boolean
  /**
   * Confirms the claim before a long step: true while it is this owner's. (A claim
   * here lives as long as its owner's process; a lease-based store extends the
   * lease here.)
   */
  renew(claim: Claim): Promise<boolean>
  /** Gives the claim up (nothing happens when it was lost meanwhile). */
  release(claim: Claim): Promise<void>
  /** The live owner of `name`, or null. */
  holder(name: string): Promise<Owner | null>
}

/** The start time of process `pid` (field 22 of /proc/PID/stat), or null where there is no /proc. */
export function processStart(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

/** This process as an owner (a fresh id: each engine or command is its own owner). */
export function currentOwner(): Owner {
  return { id: randomUUID(), pid: process.pid, started: processStart(process.pid), host: hostname() }
}

/** `process 1234`, or `another process` while its claim is being written. */
export function ownerText(owner: Owner): string {
  return owner.pid > 0 ? `process ${owner.pid}` : 'another process'
}

/**
 * Whether `owner` still runs: the same host (else assumed), its pid alive and not a
 * zombie, and, where start times are known, started when the claim says (a reused
 * pid is another process).
 */
export function ownerAlive(owner: Owner): boolean {
  if (owner.host !== hostname()) return true
  if (!Number.isInteger(owner.pid) || owner.pid <= 0) return false
  try {
    process.kill(owner.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  let stat: string
  try {
    stat = readFileSync(`/proc/${owner.pid}/stat`, 'latin1')
  } catch {
    return true // no /proc: the pid is all there is to go by
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  if (fields[0] === 'Z' || fields[0] === 'X') return false
  return owner.started === null || fields[19] === owner.started
}

function isOwner(v: unknown): v is Owner {
  const o = v as Owner
  return typeof o === 'object' && o !== null && typeof o.id === 'string' && typeof o.pid === 'number' && typeof o.host === 'string'
}

const GENERATION = /^(\d+)\.json$/
/** How long a claim file may stay empty while its claimer writes it. */
const BUSY_MS = 5_000

/** Claims as files under `<dataDir>/claims/` (see the header). */
export class JsonClaims implements ClaimStore {
  readonly #layout: DataDirLayout

  constructor(dataDir: string | DataDirLayout) {
    this.#layout = typeof dataDir === 'string' ? dataDirLayout(dataDir) : dataDir
  }

  #loopDir(name: string): string {
    return this.#layout.claims(name)
  }

  #file(name: string, generation: number): string {
    return join(this.#loopDir(name), `${generation}.json`)
  }

  /**
   * The current (highest) generation and its owner. A file still empty (its claimer
   * is between create and write) is busy; one empty or unreadable for longer than
   * BUSY_MS (its claimer died there) counts as gone.
   */
  #current(name: string): { generation: number; owner: Owner | null; busy: boolean } {
    let files: string[]
    try {
      files = readdirSync(this.#loopDir(name))
    } catch {
      return { generation: 0, owner: null, busy: false }
    }
    let generation = 0
    for (const f of files) {
      const m = GENERATION.exec(f)
      if (m) generation = Math.max(generation, Number(m[1]))
    }
    if (generation === 0) return { generation, owner: null, busy: false }
    const file = this.#file(name, generation)
    try {
      const owner: unknown = JSON.parse(readFileSync(file, 'utf8'))
      if (isOwner(owner)) return { generation, owner, busy: false }
    } catch {
      // being written, or torn
    }
    let fresh = false
    try {
      fresh = Date.now() - statSync(file).mtimeMs < BUSY_MS
    } catch {
      // removed meanwhile
    }
    return { generation, owner: null, busy: fresh }
  }

  async claim(name: string, owner: Owner): Promise<ClaimResult> {
    await mkdir(this.#loopDir(name), { recursive: true })
    for (let attempt = 0; attempt < 20; attempt++) {
      const { generation, owner: holder, busy } = this.#current(name)
      if (holder !== null && holder.id === owner.id) return { claim: { name, owner, generation } }
      if (holder !== null && ownerAlive(holder)) return { heldBy: holder }
      if (busy) return { heldBy: { id: '?', pid: 0, started: null, host: hostname() } }
      const next = generation + 1
      let fd: number
      try {
        fd = openSync(this.#file(name, next), 'wx')
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EEXIST') continue // another process took it first: look again
        if (code === 'ENOENT') {
          await mkdir(this.#loopDir(name), { recursive: true }) // released (and removed) meanwhile
          continue
        }
        throw err
      }
      try {
        writeSync(fd, JSON.stringify({ ...owner, since: new Date().toISOString() }))
      } finally {
        closeSync(fd)
      }
      // older generations are history: the dead owner's file goes
      for (let g = generation; g >= 1 && g >= generation - 1; g--) {
        try {
          unlinkSync(this.#file(name, g))
        } catch {
          // gone already
        }
      }
      return { claim: { name, owner, generation: next } }
    }
    throw new Error(`claims: ${name}: could not claim it after 20 attempts (processes keep taking it)`)
  }

  held(claim: Claim): boolean {
    try {
      statSync(this.#file(claim.name, claim.generation + 1))
      return false
    } catch {
      return true
    }
  }

  async renew(claim: Claim): Promise<boolean> {
    return this.held(claim)
  }

  async release(claim: Claim): Promise<void> {
    if (!this.held(claim)) return
    try {
      unlinkSync(this.#file(claim.name, claim.generation))
    } catch {
      // gone already
    }
    try {
      rmdirSync(this.#loopDir(claim.name))
    } catch {
      // another claim is being made there, or it is gone
    }
  }

  async holder(name: string): Promise<Owner | null> {
    const { owner } = this.#current(name)
    return owner !== null && ownerAlive(owner) ? owner : null
  }
}

/** Claims of one process (the memory store, tests): owners of this process only. */
export class MemoryClaims implements ClaimStore {
  readonly #claims = new Map<string, Claim>()

  async claim(name: string, owner: Owner): Promise<ClaimResult> {
    const current = this.#claims.get(name)
    if (current && current.owner.id !== owner.id) return { heldBy: current.owner }
    const claim = current ?? { name, owner, generation: 1 }
    this.#claims.set(name, claim)
    return { claim }
  }

  held(claim: Claim): boolean {
    return this.#claims.get(claim.name) === claim
  }

  async renew(claim: Claim): Promise<boolean> {
    return this.held(claim)
  }

  async release(claim: Claim): Promise<void> {
    if (this.#claims.get(claim.name) === claim) this.#claims.delete(claim.name)
  }

  async holder(name: string): Promise<Owner | null> {
    return this.#claims.get(name)?.owner ?? null
  }
}
