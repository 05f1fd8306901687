/**
 * The engine's side of ownership (docs/architecture.md "Ownership"): every loop it
 * acts on is claimed first through the store's claims, and commands other processes
 * leave in the store's inbox reach the loops it owns. Names of new loops are
 * reserved here too: a name is free when no loop has it and its claim is had.
 */
import { currentOwner, ownerText, type Claim, type ClaimStore, type Owner } from '../../adapters/claims.ts'
import type { SnapshotStore } from '../../adapters/snapshot-store.ts'
import { LOOP_NAME } from '../../adapters/memory-store.ts'
import type { ControlEvent } from '../../machines/loop.types.ts'
import { EngineError } from './types.ts'

export class Ownership {
  /** This engine as the owner of its claims. */
  readonly owner: Owner = currentOwner()
  readonly claims: ClaimStore
  /** Names a start or fork of this engine is making. */
  readonly #reserved = new Set<string>()
  #poller: NodeJS.Timeout | null = null

  constructor(
    private readonly store: SnapshotStore,
    private readonly onProblem: (message: string) => void,
  ) {
    this.claims = store.claims
  }

  /** Claims `name`, or refuses with `refusal` of its live owner (`process 1234`). */
  async claim(name: string, refusal: (owner: string) => string): Promise<Claim> {
    const got = await this.claims.claim(name, this.owner)
    if (!('claim' in got)) throw new EngineError(refusal(ownerText(got.heldBy)))
    return got.claim
  }

  /** Claims `name` if no live process holds it; null otherwise (or when claiming failed, reported). */
  async tryClaim(name: string): Promise<Claim | null> {
    const got = await this.claims.claim(name, this.owner).catch((err: unknown) => {
      this.onProblem(`engine: could not claim ${name}: ${err instanceof Error ? err.message : err}`)
      return null
    })
    return got !== null && 'claim' in got ? got.claim : null
  }

  /** Fencing: whether the claim is still this engine's (no other process took it over). */
  held(claim: Claim): boolean {
    return this.claims.held(claim)
  }

  release(claim: Claim): Promise<void> {
    return this.claims.release(claim)
  }

  /** Whether a start or fork of this engine is making `name`. */
  reserving(name: string): boolean {
    return this.#reserved.has(name)
  }

  /**
   * A free name for a new loop, claimed: `wanted` (refused when a loop of that name
   * exists or another process is starting one), else `base`, `base-2` … (the first
   * whose claim this engine gets and that no saved loop has). `unreserve` it once
   * the loop is saved or given up.
   */
  async reserveName(wanted: string | undefined, base: string, isLive: (name: string) => boolean): Promise<{ name: string; claim: Claim }> {
    const taken = async (n: string) => this.#reserved.has(n) || isLive(n) || (await this.store.has(n))
    if (wanted !== undefined && !LOOP_NAME.test(wanted)) {
      throw new EngineError(`name: '${wanted}' is not a valid loop name (lower-case letters, digits and -)`)
    }
    for (let n = 1; ; n++) {
      const name = wanted ?? (n === 1 ? base : `${base}-${n}`)
      const exists = () => new EngineError(`name: a loop named '${name}' already exists`)
      if (await taken(name)) {
        if (wanted !== undefined) throw exists()
        continue
      }
      this.#reserved.add(name)
      const got = await this.claims.claim(name, this.owner).catch((err: unknown) => {
        this.#reserved.delete(name)
        throw err
      })
      if (!('claim' in got)) {
        this.#reserved.delete(name)
        if (wanted !== undefined) {
          throw new EngineError(`name: a loop named '${name}' is being started or run by ${ownerText(got.heldBy)}`)
        }
        continue
      }
      // saved by another process between the look and the claim
      if (await this.store.has(name)) {
        this.#reserved.delete(name)
        await this.claims.release(got.claim)
        if (wanted !== undefined) throw exists()
        continue
      }
      return { name, claim: got.claim }
    }
  }

  unreserve(name: string): void {
    this.#reserved.delete(name)
  }

  /**
   * Takes, every `pollMs`, the commands waiting in the store's inbox for the loops
   * `deliver` accepts (the ones this engine owns), oldest first.
   */
  acceptCommands(pollMs: number, owns: (name: string) => boolean, deliver: (name: string, event: ControlEvent) => void): void {
    const poll = async () => {
      for (const name of await this.store.inbox.waiting()) {
        if (!owns(name)) continue
        for (const event of await this.store.inbox.take(name, this.onProblem)) deliver(name, event)
      }
    }
    // One poll at a time: a slow one (a loaded disk) is not overlapped by the next tick.
    let polling = false
    this.#poller = setInterval(() => {
      if (polling) return
      polling = true
      void poll()
        .catch((err: unknown) => this.onProblem(`engine: commands: ${err instanceof Error ? err.message : err}`))
        .finally(() => (polling = false))
    }, pollMs)
    this.#poller.unref()
  }

  stopCommands(): void {
    if (this.#poller) clearInterval(this.#poller)
    this.#poller = null
  }
}
