/**
 * The coder's `run_command` tool: one allowed executable with its arguments, run
 * without a shell in the workspace, with a timeout.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { ToolError, type Tool, type ToolContext } from './tool-types.ts'
import { stringArg } from './workspace-tools.ts'

/** Bytes of stdout and of stderr each kept in the result. */
export const OUTPUT_CAP_BYTES = 10 * 1024
/** Time a killed command gets to close its pipes before the result is given anyway. */
const CLOSE_GRACE_MS = 1_000

const PLAIN_ONLY =
  'only plain commands run (no shell): pipes, redirections, ;, &, $(...) and backticks are not supported'

/**
 * Splits a command line into argv like a shell would for plain words: single
 * quotes keep everything literal, double quotes allow `\"` and `\\`, a backslash
 * outside quotes escapes the next character. Throws ToolError for shell syntax
 * (`| ; & > <`, newlines, `$(`, backticks) outside single quotes and for an
 * unterminated quote.
 */
export function splitCommand(command: string): string[] {
  const argv: string[] = []
  let word = ''
  let inWord = false
  let quote: "'" | '"' | null = null
  for (let i = 0; i < command.length; i++) {
    const c = command[i] as string
    const next = command[i + 1]
    if (quote === "'") {
      if (c === "'") quote = null
      else word += c
      continue
    }
    if (c === '`' || (c === '$' && next === '(')) throw new ToolError(PLAIN_ONLY)
    if (quote === '"') {
      if (c === '"') quote = null
      else if (c === '\\' && (next === '"' || next === '\\' || next === '$' || next === '`')) word += command[++i]
      else word += c
      continue
    }
    if ('|;&<>\n\r'.includes(c)) throw new ToolError(PLAIN_ONLY)
    if (c === ' ' || c === '\t') {
      if (inWord) argv.push(word)
      word = ''
      inWord = false
      continue
    }
    inWord = true
    if (c === "'" || c === '"') quote = c
    else if (c === '\\' && next !== undefined) word += command[++i]
    else word += c
  }
  if (quote) throw new ToolError(`unterminated ${quote} quote in command`)
  if (inWord) argv.push(word)
  return argv
}

/** Keeps the head and the tail of a stream's output, counting what is dropped. */
class OutputBuffer {
  private head = Buffer.alloc(0)
  private tail = Buffer.alloc(0)
  private total = 0
  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length
    const headRoom = Math.floor(this.cap / 4) - this.head.length
    if (headRoom > 0) {
      this.head = Buffer.concat([this.head, chunk.subarray(0, headRoom)])
      chunk = chunk.subarray(headRoom)
    }
    const tailCap = this.cap - Math.floor(this.cap / 4)
    this.tail = Buffer.concat([this.tail, chunk])
    if (this.tail.length > tailCap) this.tail = this.tail.subarray(this.tail.length - tailCap)
  }

  toString(): string {
    const dropped = this.total - this.head.length - this.tail.length
    const text =
      dropped > 0
        ? `${this.head.toString()}\n[… ${dropped} bytes cut …]\n${this.tail.toString()}`
        : Buffer.concat([this.head, this.tail]).toString()
    return text.trimEnd() || '(empty)'
  }
}

/** The executable to run for argv[0]: an allow entry named exactly so, or whose basename it is. */
function allowedExecutable(name: string, allow: string[]): string | undefined {
  if (allow.includes(name)) return name
  // A bare name may match an allow entry given as a full path; a path never matches a basename,
  // so `./node` written into the workspace cannot pass for `node`.
  if (name.includes('/') || name.includes('\\')) return undefined
  return allow.find((entry) => path.basename(entry) === name)
}

interface Outcome {
  code: number | null
  signal: NodeJS.Signals | null
  ending: 'exited' | 'timed out' | 'aborted'
  error?: Error
}

function execute(file: string, args: string[], ctx: ToolContext, out: OutputBuffer, err: OutputBuffer): Promise<Outcome> {
  return new Promise((resolve) => {
    // detached: the command gets its own process group, so a timeout kills its children too.
    const child = spawn(file, args, { cwd: ctx.workspace, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let ending: Outcome['ending'] = 'exited'
    let settled = false
    const finish = (outcome: Omit<Outcome, 'ending'>): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ctx.signal.removeEventListener('abort', onAbort)
      resolve({ ...outcome, ending })
    }
    const kill = (why: Outcome['ending']): void => {
      ending = why
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
      } catch {
        child.kill('SIGKILL')
      }
    }
    const onAbort = (): void => kill('aborted')
    const timer = setTimeout(() => kill('timed out'), ctx.runCommand.timeoutMs)
    ctx.signal.addEventListener('abort', onAbort, { once: true })

    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    child.on('error', (error) => finish({ code: null, signal: null, error }))
    child.on('close', (code, signal) => finish({ code, signal }))
    // A grandchild that left the process group may hold the pipes open: do not wait for it forever.
    child.on('exit', (code, signal) => {
      setTimeout(() => {
        child.stdout.destroy()
        child.stderr.destroy()
        finish({ code, signal })
      }, CLOSE_GRACE_MS).unref()
    })
  })
}

/** `run_command`: runs an allowed executable in the workspace (offered only when run_command is enabled). */
export const runCommandTool: Tool = {
  spec: {
    name: 'run_command',
    description:
      'Run a command in the workspace directory, e.g. `npm test` or `node scripts/check.js`. ' +
      'No shell: one plain command with arguments (quotes allowed); pipes, redirections, ; and && are not supported. ' +
      'Returns the exit code, stdout and stderr (long output is cut).',
    parameters: {
      type: 'object',
      properties: { command: { type: 'string', description: 'The command line, e.g. npm test' } },
      required: ['command'],
    },
  },
  sideEffects: true,
  async run(args, ctx) {
    const { enabled, allow, timeoutMs } = ctx.runCommand
    if (!enabled) throw new ToolError('run_command is not enabled for this loop')
    const command = stringArg(args, 'command').trim()
    const argv = splitCommand(command)
    const [name, ...rest] = argv
    if (name === undefined) throw new ToolError(`argument 'command' must not be empty`)
    const file = allowedExecutable(name, allow)
    if (file === undefined) {
      throw new ToolError(`command '${name}' is not allowed (allowed: ${allow.length ? allow.join(', ') : 'none'})`)
    }
    if (ctx.signal.aborted) throw new ToolError('command not started: the session was aborted')

    const started = Date.now()
    const out = new OutputBuffer(OUTPUT_CAP_BYTES)
    const err = new OutputBuffer(OUTPUT_CAP_BYTES)
    const result = await execute(file, rest, ctx, out, err)
    if (result.error) {
      const code = (result.error as NodeJS.ErrnoException).code
      if (code === 'ENOENT') throw new ToolError(`command '${name}' was not found on this machine`)
      throw new ToolError(`command '${name}' could not be started: ${result.error.message}`)
    }
    const ms = Date.now() - started
    const status =
      result.ending === 'timed out'
        ? `timed out after ${timeoutMs} ms; the command was killed`
        : result.ending === 'aborted'
          ? `aborted after ${ms} ms; the command was killed`
          : result.code !== null
            ? `exit code ${result.code} (${ms} ms)`
            : `killed by ${result.signal} (${ms} ms)`
    return `$ ${command}\n${status}\n--- stdout ---\n${out.toString()}\n--- stderr ---\n${err.toString()}`
  },
}
