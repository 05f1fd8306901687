/**
 * The coder's `run_command` tool: one allowed executable with its arguments, run
 * without a shell in the workspace, with a timeout.
 *
 * What holds (docs/architecture.md, "The sandbox"):
 * - the arguments are checked first (services/command-policy.ts, services/git-policy.ts): no path out of the
 *   workspace, into `.git` or the data dir; no inline code for the interpreters unless
 *   `runCommand.allowInlineCode`; none of git's ways to run programs; the model's git
 *   runs with hooks and fsmonitor off (GIT_HARDENING);
 * - the command gets a minimal environment (`commandEnv`);
 * - it runs under a supervisor process (services/run-supervisor.mjs) that kills its
 *   whole process tree, also what left its process group or session, on timeout, on
 *   abort, when it exits, and when the engine exits or is killed (SIGKILL included).
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { checkCommand, checkPathArguments } from './command-policy.ts'
import { GIT_HARDENING } from './git-policy.ts'
import { ProcessTree } from './process-tree.mjs'
import { packagePath } from './paths.ts'
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
export class OutputBuffer {
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

/**
 * The command's environment: PATH, HOME, LANG and the variables `runCommand.env`
 * names, each taken from the engine's environment when it is set there; nothing
 * else of it (API keys, tokens, GIT_* …). The supervisor adds LOOPSTATE_RUN_ID, a
 * random id per call by which the command's processes are found (no secret).
 */
export function commandEnv(names: string[], from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {}
  for (const name of ['PATH', 'HOME', 'LANG', ...names]) {
    const value = from[name]
    if (value !== undefined) env[name] = value
  }
  return env
}

export interface Outcome {
  code: number | null
  signal: NodeJS.Signals | null
  ending: 'exited' | 'timed out' | 'aborted' | 'lost'
  error?: { code?: string; message: string }
  /** How the supervisor ended, when it did without telling how the command did. */
  lost?: string
}

/** Time past the timeout after which a supervisor that has not ended is killed with its command's group. */
const SUPERVISOR_BACKSTOP_MS = 30_000

/** The process trees of the commands running now, killed synchronously when the engine exits. */
const running = new Set<ProcessTree>()
let exitHook = false

function killOnExit(tree: ProcessTree): void {
  running.add(tree)
  if (exitHook) return
  exitHook = true
  // A belt: on exit the kernel closes the engine's end of each supervisor's pipe, and the
  // supervisor then kills every process of its command; this does it here at once.
  process.on('exit', () => {
    for (const t of running) t.killAll(1_000)
  })
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    // gone already
  }
}

/**
 * Runs the command under its supervisor (services/run-supervisor.mjs), which kills
 * its whole process tree on timeout, on abort, when the command exits, and when this
 * process exits or dies (its end of the supervisor's stdin closes).
 */
export function execute(
  file: string,
  args: string[],
  env: Record<string, string>,
  ctx: { workspace: string; timeoutMs: number; signal: AbortSignal },
  out: OutputBuffer,
  err: OutputBuffer,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const supervisorFile = packagePath('services', 'run-supervisor.mjs')
    // detached: the supervisor leads its own process group, out of reach of a Ctrl-C
    // meant for the engine, so that it outlives the engine long enough to kill the command.
    const sup = spawn(process.execPath, [supervisorFile], {
      cwd: path.dirname(supervisorFile),
      env: {},
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      detached: true,
    })
    const runId = randomBytes(16).toString('hex')
    // What this process can kill itself if the supervisor is gone (or stuck) before its command.
    const tree = new ProcessTree(runId, [process.pid, ...(sup.pid !== undefined ? [sup.pid] : [])])
    killOnExit(tree)
    let aborted = false
    let done: { ending: string; code: number | null; signal: NodeJS.Signals | null; error?: Outcome['error'] } | null = null
    let settled = false

    const finish = (outcome: Outcome): void => {
      if (settled) return
      settled = true
      running.delete(tree)
      clearTimeout(backstop)
      ctx.signal.removeEventListener('abort', onAbort)
      sup.stdout!.destroy()
      sup.stderr!.destroy()
      resolve(outcome)
    }
    const kill = (): void => {
      if (!sup.stdin!.destroyed) sup.stdin!.end('kill\n')
    }
    const onAbort = (): void => {
      aborted = true
      kill()
    }
    const backstop = setTimeout(() => {
      // the supervisor did not end: take down what can be reached from here
      if (sup.pid !== undefined) killGroup(sup.pid)
      tree.killAll()
      finish({ code: null, signal: 'SIGKILL', ending: aborted ? 'aborted' : 'timed out' })
    }, ctx.timeoutMs + SUPERVISOR_BACKSTOP_MS)
    backstop.unref()
    ctx.signal.addEventListener('abort', onAbort, { once: true })

    sup.stdin!.on('error', () => {}) // EPIPE once the supervisor is gone
    sup.stdin!.write(`${JSON.stringify({ file, args, cwd: ctx.workspace, env, timeoutMs: ctx.timeoutMs, runId })}\n`)
    let statusText = ''
    sup.stdio[3]!.on('data', (chunk: Buffer) => {
      statusText += chunk.toString('utf8')
      let nl: number
      while ((nl = statusText.indexOf('\n')) >= 0) {
        const line = statusText.slice(0, nl)
        statusText = statusText.slice(nl + 1)
        let message: { pid?: number; done?: typeof done }
        try {
          message = JSON.parse(line) as typeof message
        } catch {
          continue
        }
        if (typeof message.pid === 'number') tree.setLeader(message.pid)
        if (message.done) done = message.done
      }
    })
    sup.stdio[3]!.on('error', () => {})
    sup.stdout!.on('data', (chunk: Buffer) => out.push(chunk))
    sup.stderr!.on('data', (chunk: Buffer) => err.push(chunk))
    sup.on('error', (error) => finish({ code: null, signal: null, ending: 'exited', error: { message: error.message } }))
    sup.on('exit', (code, signal) => {
      // The supervisor killed the command's processes before it exited, so the pipes
      // close now; a process it could not find must not hold the result: wait a little.
      let open = 3
      const closed = (): void => {
        if (--open > 0) return
        clearTimeout(grace)
        conclude()
      }
      const conclude = (): void => {
        if (done === null) {
          // The supervisor ended without telling (killed, e.g. by the command itself):
          // what it would have killed is left to us.
          tree.killAll()
          const how = signal !== null ? `killed by ${signal}` : `exit code ${code}`
          finish({ code: null, signal: null, ending: aborted ? 'aborted' : 'lost', lost: how })
          return
        }
        // 'killed': by our abort, or the supervisor was signalled (then the command's own end is told)
        const ending = done.ending === 'timed out' ? 'timed out' : done.ending === 'killed' && aborted ? 'aborted' : 'exited'
        finish({ code: done.code, signal: done.signal, ending, ...(done.error ? { error: done.error } : {}) })
      }
      const grace = setTimeout(conclude, CLOSE_GRACE_MS)
      grace.unref()
      for (const stream of [sup.stdout!, sup.stderr!, sup.stdio[3] as Readable]) {
        if (stream.readableEnded || stream.destroyed) closed()
        else stream.once('close', closed)
      }
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
      'Paths given as arguments must stay inside the workspace (relative, no .., not .git). ' +
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
    const { codeArgs } = checkCommand(name, file, rest, ctx.runCommand.allowInlineCode)
    await checkPathArguments({ workspace: ctx.workspace, dataDir: ctx.dataDir }, rest, codeArgs)
    if (ctx.signal.aborted) throw new ToolError('command not started: the session was aborted')

    const started = Date.now()
    const out = new OutputBuffer(OUTPUT_CAP_BYTES)
    const err = new OutputBuffer(OUTPUT_CAP_BYTES)
    const runArgs = path.basename(file) === 'git' ? [...GIT_HARDENING, ...rest] : rest
    const result = await execute(file, runArgs, commandEnv(ctx.runCommand.env), { workspace: ctx.workspace, timeoutMs, signal: ctx.signal }, out, err)
    if (result.error) {
      const code = result.error.code
      if (code === 'ENOENT') throw new ToolError(`command '${name}' was not found on this machine`)
      throw new ToolError(`command '${name}' could not be started: ${result.error.message}`)
    }
    const ms = Date.now() - started
    const status =
      result.ending === 'timed out'
        ? `timed out after ${timeoutMs} ms; the command was killed`
        : result.ending === 'aborted'
          ? `aborted after ${ms} ms; the command was killed`
          : result.ending === 'lost'
            ? `no result: the command's supervisor ended (${result.lost}); the command was killed`
            : result.code !== null
              ? `exit code ${result.code} (${ms} ms)`
              : `killed by ${result.signal} (${ms} ms)`
    return `$ ${command}\n${status}\n--- stdout ---\n${out.toString()}\n--- stderr ---\n${err.toString()}`
  },
}
