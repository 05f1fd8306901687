/**
 * run_command's supervisor (services/run-command.ts starts one per command with
 * `process.execPath`, detached: its own session and process group, so a Ctrl-C of the
 * engine's terminal does not reach it). It starts the command, and kills every
 * process of the command (services/process-tree.mjs: its session and group, what
 * carries the call's LOOPSTATE_RUN_ID, and their parent-pid tree, recorded by
 * polling /proc while the command runs) when
 *
 * - its stdin (a pipe whose other end only the engine holds) ends or brings anything
 *   after the spec: the engine cancelled the call, exited or was killed (even by
 *   SIGKILL: the kernel closes the engine's end);
 * - the command's timeout passes;
 * - the command exits (what it left running in the background goes with it);
 * - the supervisor gets SIGTERM, SIGINT or SIGHUP;
 *
 * then it tells the engine how the command ended and exits.
 *
 * Protocol. stdin: one JSON line `{ file, args, cwd, env, timeoutMs, runId }`, then
 * anything (or EOF) means kill. fd 3: JSON lines to the engine, `{ "pid": N }` once
 * the command runs and `{ "done": { ending, code, signal, error? } }` at the end
 * (ending: exited, timed out, killed). stdout and stderr are handed to the command
 * as its own; the command's fd 3 is /dev/null.
 *
 * Plain JavaScript run by node itself, so that it works from the TypeScript sources
 * and from the bundle in dist/ alike (found with packagePath()).
 */
import { spawn } from 'node:child_process'
import { openSync, writeSync } from 'node:fs'
import { LINUX, ProcessTree, RUN_ID_VARIABLE } from './process-tree.mjs'

/**
 * How often /proc is read while the command runs, to record its parent-pid tree:
 * often in the first second (when most commands fork), then every 100 ms, and never
 * more often than 5 times the last scan took (a machine with many processes).
 */
const POLL_FAST_MS = 20
const POLL_MS = 100
const POLL_FAST_FOR_MS = 1_000

let tree = null
let cmd = null
let poller = null
let timer = null
let ending = null
let exited = null
let reported = false

function status(message) {
  try {
    writeSync(3, `${JSON.stringify(message)}\n`)
  } catch {
    // the engine is gone: nobody to tell
  }
}

function report() {
  if (reported || ending === null) return
  if (cmd !== null && exited === null) return // the command's exit is still to come
  reported = true
  status({ done: { ending, ...(exited ?? { code: null, signal: null }) } })
  process.exit(0)
}

/** Ends the call: kills the command's processes once, then reports when the command's exit is known. */
function finish(why) {
  if (ending !== null) return
  ending = why
  clearTimeout(poller)
  clearTimeout(timer)
  tree?.killAll()
  report()
}

function start(spec) {
  tree = new ProcessTree(spec.runId, [process.pid, process.ppid])
  const devNull = openSync('/dev/null', 'r')
  try {
    // detached: the command leads its own session and process group. fd 3 is /dev/null:
    // the command never gets the status pipe (it could write a false result to it).
    cmd = spawn(spec.file, spec.args, {
      cwd: spec.cwd,
      env: { ...spec.env, [RUN_ID_VARIABLE]: spec.runId },
      stdio: ['ignore', 1, 2, devNull],
      detached: true,
    })
  } catch (error) {
    status({ done: { ending: 'exited', code: null, signal: null, error: { code: error.code, message: error.message } } })
    process.exit(0)
  }
  cmd.on('error', (error) => {
    if (cmd.pid !== undefined) return // a kill failing: the exit still comes
    reported = true
    status({ done: { ending: 'exited', code: null, signal: null, error: { code: error.code, message: error.message } } })
    process.exit(0)
  })
  cmd.on('exit', (code, sig) => {
    exited = { code, signal: sig }
    if (ending === null) finish('exited')
    else report()
  })
  if (cmd.pid === undefined) return // the 'error' event follows
  tree.setLeader(cmd.pid)
  status({ pid: cmd.pid })
  timer = setTimeout(() => finish('timed out'), spec.timeoutMs)
  if (LINUX) {
    const since = Date.now()
    const poll = () => {
      const t = Date.now()
      tree.track()
      const took = Date.now() - t
      poller = setTimeout(poll, Math.max(t - since < POLL_FAST_FOR_MS ? POLL_FAST_MS : POLL_MS, 5 * took))
    }
    poller = setTimeout(poll, POLL_FAST_MS)
  }
}

let input = ''
let started = false
process.stdin.on('data', (chunk) => {
  if (started) return finish('killed')
  input += chunk.toString('utf8')
  const nl = input.indexOf('\n')
  if (nl < 0) return
  started = true
  start(JSON.parse(input.slice(0, nl)))
  if (input.length > nl + 1) finish('killed')
})
const onEnd = () => {
  if (!started) process.exit(0)
  finish('killed')
}
process.stdin.on('end', onEnd)
process.stdin.on('close', onEnd)
process.stdin.on('error', onEnd)
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => (started ? finish('killed') : process.exit(0)))
