/**
 * What the commands of the `loopstate` CLI share: where their lines go, the error
 * that ends a command with one line and an exit code, the flags and their parsers.
 * Light on purpose: main.ts loads it before any command.
 */
import { resolve } from 'node:path'
import { InvalidArgumentError } from 'commander'
import { oneLine } from '../format.ts'
import { termOf, type Term } from '../term.ts'

/** Where the CLI writes: one line of stdout, one line of stderr (without their newlines). */
export interface CliIo {
  out(line: string): void
  err(line: string): void
  /**
   * What stdout is: a terminal (colour, redrawing) and its width. Absent: not a
   * terminal (no colour unless FORCE_COLOR, tables fit COLUMNS or 80).
   */
  stdout?: { isTTY?: boolean; columns?: number }
  /** The environment that decides colour and widths (NO_COLOR, FORCE_COLOR, TERM, COLUMNS). @default process.env */
  env?: Record<string, string | undefined>
}

/**
 * What a command writes with: `out` a line of stdout, `err` a `loopstate: …` message
 * on one line of stderr, and `term`, what stdout allows (scripts/term.ts).
 */
export interface Cli {
  out(line?: string): void
  err(message: string): void
  term: Term
}

export function cliOf(io: CliIo): Cli {
  return {
    out: (line = '') => io.out(line),
    err: (m) => io.err(`loopstate: ${oneLine(m)}`),
    term: termOf(io.stdout ?? {}, io.env ?? process.env),
  }
}

/** A failure the CLI reports as one line, with its exit code (2: bad usage or input). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message)
  }
}

/** Exit code of each final status (a signal exits 130 or 143: scripts/follow.ts). */
export const EXIT_CODES = { completed: 0, errored: 1, stalled: 3, cancelled: 4 } as const

export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

/** `--data DIR`, else $LOOPSTATE_DATA, else ./data. */
export function dataDirOf(opts: { data?: string }): string {
  return resolve(opts.data ?? process.env.LOOPSTATE_DATA ?? 'data')
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')]
}

/** A flag given again adds a value (kept whole: a command line may hold commas). */
export function repeatable(value: string, previous: string[]): string[] {
  return [...previous, value]
}

export function count(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a non-negative integer.')
  return Number(value)
}

export function positive(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer.')
  return Number(value)
}

/** Flags of the commands that run loops: where the model providers are, where to stream inspection. */
export interface ProviderFlags {
  ollamaHost?: string
  /** `--openai-base-url`: the server of `openai:<model>`. */
  openaiBaseUrl?: string
  /** `--provider [scheme=]file`, repeatable: provider modules of the user's. */
  provider?: string[]
  /** `--config FILE`: its provider sections (run reads its loop options too). */
  config?: string
  /** `--inspect [url]`: true streams to the local viewer's default address. */
  inspect?: string | boolean
}

export interface DataFlag {
  data?: string
}
