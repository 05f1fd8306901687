/**
 * LoopClient: the one control surface of a data dir for everything that is not the
 * engine running a loop: the CLI's list, status, history and commands, and the
 * viewer (docs/architecture.md "Ownership"). It reads through the store port and
 * reaches a loop's owner through the store's inbox; it never knows a file layout.
 *
 * A command (`send`) is delivered to the loop's owner and acknowledged, or applied
 * to the store under the client's own claim when no process owns the loop, or it
 * fails and is withdrawn: never two of these.
 */
import { currentOwner, ownerText, type Owner } from '../adapters/claims.ts'
import { commandProblem, type CommandTicket } from '../adapters/inbox.ts'
import { JsonStore } from '../adapters/json-store.ts'
import type { HistoryEntry, LoopRecord, RemovedLoop, SnapshotStore, TranscriptSession } from '../adapters/snapshot-store.ts'
import type { ControlEvent } from '../machines/loop.types.ts'
import { FINAL } from './engine/types.ts'
import { detailOf, viewOf, type LoopDetail, type LoopView } from './views.ts'

export { ownerText }

export interface LoopClientOptions {
  /** The data dir of the JSON store (default `data`); ignored when `store` is given. */
  dataDir?: string
  store?: SnapshotStore
  /** Where a bad file met on the way is reported (quarantined records, bad inbox entries). */
  onProblem?: (message: string) => void
  /**
   * How long a command may wait for its owner to take it before it is withdrawn, and
   * then for the owner's record to show it, ms.
   * @default 5000
   */
  ackTimeoutMs?: number
  /** @default 50 */
  pollMs?: number
}

/** Why a request was refused. */
export type ClientErrorCode = 'invalid' | 'not_found' | 'ended' | 'not_paused' | 'withdrawn'

export class ClientError extends Error {
  override readonly name = 'ClientError'
  constructor(
    message: string,
    readonly code: ClientErrorCode,
  ) {
    super(message)
  }
}

/** What became of a command. */
export type SendResult =
  /** It changed nothing (`pause` of a paused loop). */
  | { via: 'unchanged'; record: LoopRecord }
  /** No process owned the loop: applied to its record under the client's claim. */
  | { via: 'store'; record: LoopRecord }
  /**
   * Its owner took it (the acknowledgement). `shown`: the owner's record shows its
   * effect (`record`) within the time allowed; `say` is shown once taken.
   */
  | { via: 'owner'; owner: Owner; shown: boolean; record: LoopRecord | null }
  /** `resume` of a loop no process owns, with `unowned: 'return'`: nothing was done, the caller restores it. */
  | { via: 'unowned'; record: LoopRecord }

export interface SendOptions {
  /**
   * What `resume` does when no process owns the loop: `apply` marks it running in the
   * store (the next engine to restore it runs it), `return` does nothing and says so.
   * @default 'apply'
   */
  unowned?: 'apply' | 'return'
}

/** Why `remove` left a loop alone: a live process runs it (`owned`), or it is resumable (`unfinished`). */
export class RemoveRefused extends Error {
  override readonly name = 'RemoveRefused'
  constructor(
    message: string,
    readonly code: 'owned' | 'unfinished',
  ) {
    super(message)
  }
}

export interface RemoveOptions {
  /** Remove a loop that has not ended and that no process runs (it would be resumable). @default false */
  force?: boolean
  /** Runs before the store's removal, once the loop may go (e.g. removing its worktree); a throw stops the removal. */
  before?: (record: LoopRecord) => Promise<void>
}

export class LoopClient {
  readonly store: SnapshotStore
  readonly #ackTimeoutMs: number
  readonly #pollMs: number

  constructor(options: LoopClientOptions = {}) {
    this.store = options.store ?? new JsonStore(options.dataDir ?? 'data', { onProblem: options.onProblem })
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 5_000
    this.#pollMs = options.pollMs ?? 50
  }

  /** Every loop, oldest first, as of now for the ones some process runs (as of their last save otherwise). */
  async list(): Promise<LoopView[]> {
    const views: LoopView[] = []
    for (const record of await this.store.list()) views.push(await this.#view(record))
    return views
  }

  /** One loop in detail, or null when there is none. */
  async get(name: string): Promise<LoopDetail | null> {
    const record = await this.store.get(name)
    return record === null ? null : { ...detailOf(record), ...(await this.#view(record)) }
  }

  /** The loop's saved record, or null. */
  record(name: string): Promise<LoopRecord | null> {
    return this.store.get(name)
  }

  /** The loop's history, oldest first. */
  async history(name: string): Promise<HistoryEntry[]> {
    if (!(await this.store.has(name))) throw new ClientError(`no loop named '${name}'`, 'not_found')
    return this.store.history(name)
  }

  /** The sessions' transcripts the store keeps, oldest first. */
  async transcript(name: string): Promise<TranscriptSession[]> {
    if (!(await this.store.has(name))) throw new ClientError(`no loop named '${name}'`, 'not_found')
    return this.store.transcript(name)
  }

  /** The live process that owns the loop, or null when none does. */
  owner(name: string): Promise<Owner | null> {
    return this.store.claims.holder(name)
  }

  /**
   * Removes a loop from the store: record, history, transcripts, waiting commands,
   * claims left by dead owners. Refused (`RemoveRefused`, `owned`) while a live process runs it and it
   * has not ended: cancel it first. A loop that has not ended and that no process runs
   * is resumable: refused (`unfinished`) unless `force`. The removal happens under
   * the client's claim (an engine cannot restore the loop meanwhile), or, for an ended
   * loop whose owner still lives, beside that owner (it writes nothing more).
   */
  async remove(name: string, options: RemoveOptions = {}): Promise<{ record: LoopRecord; removed: RemovedLoop }> {
    const found = await this.store.get(name)
    if (found === null) throw new ClientError(`no loop named '${name}'`, 'not_found')
    const got = await this.store.claims.claim(name, currentOwner())
    try {
      // read again under the claim: it may have moved on meanwhile
      const record = 'claim' in got ? await this.store.get(name) : found
      if (record === null) throw new ClientError(`no loop named '${name}'`, 'not_found')
      if ('heldBy' in got && !FINAL.has(record.status)) {
        throw new RemoveRefused(
          `loop ${name} is ${record.status} in ${ownerText(got.heldBy)}; cancel it first (loopstate cancel ${name}), or stop that process`,
          'owned',
        )
      }
      if (!FINAL.has(record.status) && !options.force) {
        throw new RemoveRefused(
          `loop ${name} has not ended (${record.status}) and stays resumable; cancel it first (loopstate cancel ${name}), or force its removal`,
          'unfinished',
        )
      }
      await options.before?.(record)
      return { record, removed: await this.store.remove(name) }
    } finally {
      if ('claim' in got) await this.store.claims.release(got.claim)
    }
  }

  /** Sends a command to a loop (see the header and `SendResult`). Refusals throw a `ClientError`. */
  async send(name: string, event: ControlEvent, options: SendOptions = {}): Promise<SendResult> {
    // the same for every loop, owned or not: what an owner would not take is refused here
    const problem = commandProblem(event)
    if (problem !== null) throw new ClientError(`loop ${name}: ${problem}`, 'invalid')
    const record = await this.store.get(name)
    if (record === null) throw new ClientError(`no loop named '${name}'`, 'not_found')
    if (FINAL.has(record.status)) throw new ClientError(`loop ${name} already ended (${record.status})`, 'ended')
    if (event.type === 'loop.pause' && record.status === 'paused') return { via: 'unchanged', record }

    // The claim decides: no live process holds it, so the command is applied to the store
    // under this client's own claim; or its owner takes it from the inbox.
    const got = await this.store.claims.claim(name, currentOwner())
    if ('claim' in got) {
      try {
        if (event.type === 'loop.resume' && options.unowned === 'return') return { via: 'unowned', record }
        // loaded on demand (xstate and the machine): reads and owned loops' commands do without
        const { applyOffline } = await import('./offline.ts')
        const after = await applyOffline(this.store, name, event)
        if (FINAL.has(after.status) && !(event.type === 'loop.cancel' && after.reason === 'user_cancelled')) {
          throw new ClientError(`loop ${name} already ended (${after.status})`, 'ended')
        }
        return { via: 'store', record: after }
      } finally {
        await this.store.claims.release(got.claim)
      }
    }
    const owner = got.heldBy
    if (event.type === 'loop.resume' && record.status !== 'paused') {
      throw new ClientError(`loop ${name} is not paused (${record.status} in ${ownerText(owner)})`, 'not_paused')
    }
    return this.#deliver(name, event, owner, await this.store.inbox.send(name, event))
  }

  /** Waits for the owner to take the command (then for its record to show it), or withdraws it. */
  async #deliver(name: string, event: ControlEvent, owner: Owner, ticket: CommandTicket): Promise<SendResult> {
    let deadline = Date.now() + this.#ackTimeoutMs
    let taken = false
    for (;;) {
      taken ||= await this.store.inbox.taken(ticket)
      if (taken && event.type === 'loop.say') return { via: 'owner', owner, shown: true, record: null }
      const now = taken ? await this.store.get(name) : null
      if (now !== null && reflects(event, now)) return { via: 'owner', owner, shown: true, record: now }
      if (Date.now() > deadline) {
        if (!taken && (await this.store.inbox.withdraw(ticket))) {
          const kind = event.type.slice('loop.'.length)
          throw new ClientError(
            `sent ${kind} to loop ${name} (${ownerText(owner)}) but it did not take it within ${this.#ackTimeoutMs / 1000} s; withdrawn: nothing was applied`,
            'withdrawn',
          )
        }
        if (!taken) {
          // taken at the last moment: its owner applies it; give the record the same time to show it
          taken = true
          deadline = Date.now() + this.#ackTimeoutMs
          continue
        }
        return { via: 'owner', owner, shown: false, record: now }
      }
      await new Promise((r) => setTimeout(r, this.#pollMs))
    }
  }

  async #view(record: LoopRecord): Promise<LoopView> {
    // A running loop that no process owns stopped at its last save: its clock stopped there too.
    const live = record.status !== 'running' || (await this.store.claims.holder(record.name)) !== null
    return viewOf(record, live ? Date.now() : Date.parse(record.updatedAt))
  }
}

/** Whether the record shows the command's effect. */
function reflects(event: ControlEvent, record: LoopRecord): boolean {
  if (FINAL.has(record.status)) return true
  if (event.type === 'loop.pause') return record.status === 'paused'
  if (event.type === 'loop.resume') return record.status === 'running'
  return false
}
