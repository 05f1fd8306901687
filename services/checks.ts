/**
 * Runs a loop's checks (machines/checks.ts) in its workspace, one after another,
 * under the same sandbox as `run_command` (services/run-command.ts): no shell, a
 * minimal environment, the whole process tree killed on timeout, on abort (cancel,
 * pause, shutdown) and when the engine exits. The commands are the user's own
 * (config or `--check`), not the model's: no allow-list applies.
 */
import { fromPromise } from 'xstate'
import type { ChecksInput } from '../machines/checks.ts'
import type { CheckConfig, CheckResult } from '../machines/loop.types.ts'
import { commandEnv, execute, OutputBuffer } from './run-command.ts'

/** Characters of a check's output kept for the prompts. */
export const CHECK_TAIL_CHARS = 2_000

export async function runChecks(input: ChecksInput, signal: AbortSignal): Promise<CheckResult[]> {
  const results: CheckResult[] = []
  for (const check of input.checks) {
    if (signal.aborted) break
    results.push(await runCheck(check, input, signal))
  }
  return results
}

async function runCheck(check: CheckConfig, input: ChecksInput, signal: AbortSignal): Promise<CheckResult> {
  const [file, ...args] = check.run
  const started = Date.now()
  const out = new OutputBuffer(CHECK_TAIL_CHARS * 2)
  const err = new OutputBuffer(CHECK_TAIL_CHARS * 2)
  const r = await execute(file!, args, commandEnv(input.env), { workspace: input.workspace, timeoutMs: check.timeoutMs, signal }, out, err)
  const ms = Date.now() - started
  const result = (passed: boolean, outcome: string): CheckResult => ({ name: check.name, passed, outcome, tail: tailOf(out, err), ms })
  if (r.error) {
    return result(false, r.error.code === 'ENOENT' ? `could not start: '${file}' was not found` : `could not start: ${r.error.message}`)
  }
  if (r.ending === 'timed out') return result(false, `timed out after ${check.timeoutMs} ms (killed)`)
  if (r.ending === 'aborted') return result(false, 'aborted (killed)')
  if (r.ending === 'lost') return result(false, `no result: its supervisor ended (${r.lost})`)
  if (r.code === 0) return result(true, 'exit code 0')
  return result(false, r.code !== null ? `exit code ${r.code}` : `killed by ${r.signal}`)
}

/** The end of a check's output: stdout, then stderr, cut from the front. */
function tailOf(out: OutputBuffer, err: OutputBuffer): string {
  const text = [out.toString(), err.toString()].filter((t) => t !== '(empty)').join('\n')
  return text.length > CHECK_TAIL_CHARS ? `…${text.slice(text.length - CHECK_TAIL_CHARS)}` : text
}

/** The `runChecks` actor the loop machine invokes; stopping it (cancel, pause, shutdown) kills the check running. */
export const runChecksLogic = fromPromise<CheckResult[], ChecksInput>(({ input, signal }) => runChecks(input, signal))
