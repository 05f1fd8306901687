/**
 * Slots and the queue: at most `maxConcurrent` loops run at once (a paused loop
 * keeps its slot); the others wait, first come first served, and start as slots
 * free up. The scheduler only counts and orders; starting a loop is `launch`'s.
 */
import { EngineError, type LiveLoop } from './types.ts'

export class Scheduler {
  readonly maxConcurrent: number
  #running = 0
  readonly #queue: LiveLoop[] = []
  #closed = false

  constructor(
    maxConcurrent: number | undefined,
    private readonly launch: (loop: LiveLoop) => void,
  ) {
    this.maxConcurrent = maxConcurrent ?? 3
    if (!Number.isInteger(this.maxConcurrent) || this.maxConcurrent < 1) {
      throw new EngineError(`engine: maxConcurrentLoops must be a positive integer (got ${maxConcurrent})`)
    }
  }

  /** Whether a loop admitted now would wait. */
  full(): boolean {
    return this.#running >= this.maxConcurrent
  }

  /** Runs the loop now, in a slot (the caller decided it has one). Nothing starts once closed. */
  run(loop: LiveLoop): void {
    if (!this.#closed) this.#start(loop)
  }

  /** Queues the loop (at the front: it had its turn already). */
  enqueue(loop: LiveLoop, front = false): void {
    if (front) this.#queue.unshift(loop)
    else this.#queue.push(loop)
  }

  /** Takes the loop out of the queue (it ended, or was given up, while waiting). */
  dequeue(loop: LiveLoop): void {
    const i = this.#queue.indexOf(loop)
    if (i >= 0) this.#queue.splice(i, 1)
  }

  /** A running loop stopped (ended, crashed, was stopped): its slot is free. */
  stopped(): void {
    this.#running--
  }

  /** Starts waiting loops while there are free slots. */
  drain(): void {
    while (!this.#closed && this.#running < this.maxConcurrent && this.#queue.length > 0) this.#start(this.#queue.shift()!)
  }

  /** No loop starts any more. */
  close(): void {
    this.#closed = true
    this.#queue.length = 0
  }

  #start(loop: LiveLoop): void {
    this.#running++
    this.launch(loop)
  }
}
