/**
 * The `loopstate` CLI as a function: the commander program of every command, run on
 * one argv, resolving to the exit code. Each command lives in a file of its own here,
 * loaded when it runs (the bundle keeps them in chunks), so `--help` and usage errors
 * start without the store or the engine. Usage errors print one line on stderr and
 * exit 2 without touching the data dir.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { packagePath } from '../../services/paths.ts'
import { oneLine } from '../format.ts'
import type { ContinueOptions } from './continue.ts'
import type { DemoOptions } from './demo.ts'
import type { ForkOptions } from './fork.ts'
import type { HistoryOptions } from './history.ts'
import type { InspectOptions } from './inspect.ts'
import type { ListOptions } from './list.ts'
import type { LogOptions } from './log.ts'
import type { ResumeOptions } from './resume.ts'
import type { RunOptions } from './run.ts'
import type { StatusOptions } from './status.ts'
import type { DiffOptions } from './diff.ts'
import type { PruneOptions } from './prune.ts'
import type { RmOptions } from './rm.ts'
import { CliError, cliOf, collect, count, message, positive, repeatable, type Cli, type CliIo, type DataFlag } from './shared.ts'

export type { CliIo }

const HELP = {
  data: 'data directory (default: $LOOPSTATE_DATA or ./data)',
  ollama: 'Ollama server for ollama:<model> (default: the config file, $OLLAMA_HOST, http://127.0.0.1:11434)',
  openai:
    'OpenAI-compatible server for openai:<model>, e.g. http://127.0.0.1:8080/v1 (default: the config file, $OPENAI_BASE_URL, ' +
    'https://api.openai.com/v1); the key is read from $OPENAI_API_KEY',
  provider: 'a provider module of your own for its scheme: --provider ./my-provider.js or --provider myscheme=./file.js; repeatable',
  config: 'JSON file whose provider sections (ollama, openai, providers) are used',
  inspect:
    'stream the loop actors to a WebSocket inspector: `loopstate inspect` (default ws://127.0.0.1:4747) or stately.ai/inspect',
}

/** The statuses `list --status` takes. */
const LIST_STATUSES = ['running', 'queued', 'paused', 'completed', 'errored', 'stalled', 'cancelled']

function listStatuses(value: string, previous: string[]): string[] {
  const statuses = collect(value, previous)
  const bad = statuses.find((s) => !LIST_STATUSES.includes(s))
  if (bad !== undefined) throw new InvalidArgumentError(`'${bad}' is not a status (${LIST_STATUSES.join(', ')}).`)
  return statuses
}

/** A command's examples, for `addHelpText('after', …)`. */
function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}`
}

/** `--older-than 7d`: a duration in ms (s, m, h, d, w). */
function duration(value: string): number {
  const m = /^\s*(\d+)\s*([smhdw])\s*$/.exec(value)
  if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError('expected a duration such as 30m, 12h or 7d.')
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w']
}

/** Runs one command line (`argv` as in process.argv); resolves to its exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const cli = cliOf(io)
  let code = 0
  const program = buildProgram(cli, io, (c) => (code = c))
  try {
    await program.parseAsync(argv)
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; a bare `loopstate` shows the help and counts as bad usage.
      return e.exitCode === 0 ? 0 : 2
    }
    if (e instanceof CliError) {
      cli.err(e.message)
      return e.exitCode
    }
    cli.err(message(e))
    return 1
  }
  return code
}

function buildProgram(cli: Cli, io: CliIo, setExit: (code: number) => void): Command {
  const version = (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version
  const lines = (write: (line: string) => void) => (text: string) => write(text.replace(/\n$/, ''))
  const program = new Command('loopstate')
  program
    .description('Durable AI work loops (coder + auditor) as XState v5 actors, saved to a JSON store')
    .version(version)
    .exitOverride()
    .configureOutput({
      writeOut: lines((l) => io.out(l)),
      writeErr: lines((l) => io.err(l)),
      outputError: (str, write) => write(`loopstate: ${oneLine(str.replace(/^error: /, ''))}\n`),
    })
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      '\nExit codes: 0 completed, 1 errored, 2 bad usage or input, 3 stalled, 4 cancelled,\n' +
        '130/143 stopped by SIGINT/SIGTERM, 141 stdout closed (the loops are saved and stay resumable).',
    )
  /** The action of a command: its file is loaded now, its result is the exit code. */
  const act = async (run: Promise<number>) => setExit(await run)

  program
    .command('run')
    .description('run a loop on a plan (or a goal) until it ends; Ctrl-C saves it and leaves it resumable')
    .argument('[plan]', 'plan file (markdown; `<!-- section -->` lines split it into sections)')
    .option('-g, --goal <text>', 'work on a goal text instead of a plan file')
    .option(
      '-m, --model <spec>',
      'coder model, e.g. ollama:qwen3:8b, openai:gpt-4.1-mini, llamacpp:any, openrouter:qwen/qwen3-coder or ' +
        'scripted:scenario.json; repeat or comma-separate for a fallback chain',
      collect,
      [],
    )
    .option('--auditor-model <spec>', 'auditor model(s), same form (default: the coder models)', collect, [])
    .option(
      '-w, --workspace <dir>',
      'directory the coder works in (default: the current directory); in a git repository the loop works in a worktree on branch loop/<name>',
    )
    .option('--in-place', 'work in the workspace directory itself even when it is in a git repository')
    .option('--max-iterations <n>', 'rework passes allowed after dirty audits (default 15)', count)
    .option(
      '--check <command>',
      'a command the engine runs in the workspace after every coder pass, e.g. "npm test" (no shell); ' +
        'a failing check is a blocking finding: the loop completes only when every check passes; repeatable',
      repeatable,
      [],
    )
    .option('-n, --name <name>', 'loop name (default: from the plan title)')
    .option(
      '--config <file>',
      'JSON file of loop options (maxRetries, stallTimeoutMs, budget, …) and provider sections ' +
        '(ollama: { host, numCtxCap }, openai: { baseURL, apiKeyEnv, headers, contextLength }, providers: { scheme: file }); flags win',
    )
    .option('--ollama-host <url>', HELP.ollama)
    .option('--openai-base-url <url>', HELP.openai)
    .option('--provider <[scheme=]file>', HELP.provider, repeatable, [])
    .option('--inspect [url]', HELP.inspect)
    .option('-j, --json', 'print the result as one JSON object on stdout (output, exitCode, detail); progress goes to stderr')
    .option('-d, --data <dir>', HELP.data)
    .addHelpText(
      'after',
      examples([
        'loopstate run plan.md -m ollama:qwen3:8b',
        'loopstate run -g "add a --verbose flag" -m openai:gpt-4.1-mini,ollama:qwen3:8b -w ../repo -n verbose',
        'loopstate run plan.md -m llamacpp:any --check "npm test" --max-iterations 5',
        'loopstate run plan.md -m scripted:scenario.json -j > result.json',
      ]) +
        '\n\nThe models are asked for first (an unreachable server or a missing model: one line, exit 2, nothing saved).\n' +
        'Ctrl-C saves the loop and prints the `loopstate resume` command that carries it on.',
    )
    .action((plan: string | undefined, opts: RunOptions) => act(import('./run.ts').then((m) => m.runCommand(cli, plan, opts))))

  program
    .command('list')
    .description('list the loops of the data dir, newest first; ⚠ marks an unfinished loop no process runs')
    .option('--status <status>', `only loops of these statuses (${LIST_STATUSES.join(', ')}); repeat or comma-separate`, listStatuses, [])
    .option('--limit <n>', 'only the N newest loops', positive)
    .option('-j, --json', 'JSON array of loop views (oldest first, with the pid of the process that runs each, or null)')
    .option('-d, --data <dir>', HELP.data)
    .addHelpText('after', examples(['loopstate list', 'loopstate list --status running,paused --limit 10', 'loopstate list -j -d /tmp/data']))
    .action((opts: ListOptions) => act(import('./list.ts').then((m) => m.listCommand(cli, opts))))

  program
    .command('status')
    .description('show one loop: phase, findings, sections, usage, last audit')
    .argument('<name>', 'loop name')
    .option('-j, --json', 'the loop detail as JSON')
    .option('-d, --data <dir>', HELP.data)
    .addHelpText('after', examples(['loopstate status add-a-greeting', 'loopstate status add-a-greeting -j']))
    .action((name: string, opts: StatusOptions) => act(import('./status.ts').then((m) => m.statusCommand(cli, name, opts))))

  program
    .command('diff')
    .description(
      "show what a loop changed: a git loop's branch loop/<name> and worktree against its base; " +
        "in a plain directory, the files the loop's tools wrote",
    )
    .argument('<name>', 'loop name')
    .option('--stat', 'only the files and how each changed')
    .option('-j, --json', 'the diff as JSON: { kind, base, branch, files: [{ path, status, patch }], text }')
    .option('-d, --data <dir>', HELP.data)
    .addHelpText('after', examples(['loopstate diff add-a-greeting', 'loopstate diff add-a-greeting --stat', 'loopstate diff add-a-greeting -j']))
    .action((name: string, opts: DiffOptions) => act(import('./diff.ts').then((m) => m.diffCommand(cli, name, opts))))

  program
    .command('rm')
    .description('remove a loop from the data dir: record, history, journal, waiting commands (a running loop: cancel it first)')
    .argument('<name>', 'loop name')
    .option('--worktree', 'also remove its git worktree (the branch loop/<name> stays)')
    .option('-f, --force', 'remove a loop that has not ended (no process runs it; it would be resumable)')
    .option('-d, --data <dir>', HELP.data)
    .addHelpText('after', examples(['loopstate rm add-a-greeting', 'loopstate rm old-experiment --worktree', 'loopstate rm stopped-loop --force']))
    .action((name: string, opts: RmOptions) => act(import('./rm.ts').then((m) => m.rmCommand(cli, name, opts))))

  program
    .command('prune')
    .description('remove the loops that ended (completed, cancelled, errored, stalled) longer ago than a duration, as rm does')
    .requiredOption('--older-than <duration>', 'e.g. 30m, 12h, 7d: loops whose last change is older are removed', duration)
    .option('--worktree', 'also remove their git worktrees (the branches stay)')
    .option('--dry-run', 'only list what would be removed')
    .option('-d, --data <dir>', HELP.data)
    .addHelpText('after', examples(['loopstate prune --older-than 7d --dry-run', 'loopstate prune --older-than 12h --worktree']))
    .action((opts: PruneOptions) => act(import('./prune.ts').then((m) => m.pruneCommand(cli, opts))))

  program
    .command('history')
    .description("print a loop's transition log; `*` marks the snapshots that fork starts from")
    .argument('<name>', 'loop name')
    .option('--raw', "the statechart's own event and state names, and local times")
    .option('-j, --json', 'JSON array of history entries (without the snapshots: hasSnapshot says where one is kept)')
    .option('-d, --data <dir>', HELP.data)
    .action((name: string, opts: HistoryOptions) => act(import('./history.ts').then((m) => m.historyCommand(cli, name, opts))))

  program
    .command('log')
    .description("print what the loop's models said and did, session by session (tool calls, results, re-prompts)")
    .argument('<name>', 'loop name')
    .option('--session <n>', 'only session N', positive)
    .option('-j, --json', 'JSON array of sessions: { id, head, messages }')
    .option('--follow', 'keep printing new messages until the loop ends')
    .option('-d, --data <dir>', HELP.data)
    .action((name: string, opts: LogOptions) => act(import('./log.ts').then((m) => m.logCommand(cli, name, opts))))

  program
    .command('fork')
    .description('start a new loop from a past snapshot of a loop (with a copy of its workspace) and run it here, like run')
    .argument('<name>', 'loop to fork; it is left as it is')
    .requiredOption('--at <seq>', 'history entry (see `loopstate history`): its snapshot, or the nearest earlier one', positive)
    .option('-n, --name <name>', 'name of the new loop (default: <name>-fork)')
    .option('-w, --workspace <dir>', "where the copy of the workspace goes (default: beside the original, '<workspace>.<new name>'); must not exist")
    .option('-m, --model <spec>', 'coder model(s) for the fork (the auditor\'s too when they were the same)', collect, [])
    .option('--say <text>', 'a message for the fork\'s next prompt')
    .option('--check <command>', 'a check added to the fork\'s; repeatable', repeatable, [])
    .option('--ollama-host <url>', HELP.ollama)
    .option('--openai-base-url <url>', HELP.openai)
    .option('--provider <[scheme=]file>', HELP.provider, repeatable, [])
    .option('--config <file>', HELP.config)
    .option('--inspect [url]', HELP.inspect)
    .option('-d, --data <dir>', HELP.data)
    .action((name: string, opts: ForkOptions) => act(import('./fork.ts').then((m) => m.forkCommand(cli, name, opts))))

  program
    .command('resume')
    .description(
      'resume a paused loop; a loop no process runs (after Ctrl-C, SIGTERM or a crash) is restored and driven here, like run',
    )
    .argument('[name]', 'loop name')
    .option('--all', 'restore every unfinished loop no process runs and drive them here (paused ones stay paused)')
    .option('--max-concurrent <n>', 'with --all: loops run at once (default 3); the others wait as queued', positive)
    .option('--ollama-host <url>', HELP.ollama)
    .option('--openai-base-url <url>', HELP.openai)
    .option('--provider <[scheme=]file>', HELP.provider, repeatable, [])
    .option('--config <file>', HELP.config)
    .option('--inspect [url]', HELP.inspect)
    .option('-d, --data <dir>', HELP.data)
    .action((name: string | undefined, opts: ResumeOptions) =>
      act(import('./resume.ts').then((m) => m.resumeCommand(cli, name, opts))),
    )

  program
    .command('continue')
    .description(
      'give a loop that ended (max_iterations, max_section_attempts, no_progress, error_max_retries, provider_fatal, ' +
        'stall_timeout, budget_exhausted; or completed, with --say) more room and drive it here',
    )
    .argument('<name>', 'loop name')
    .option('--more <n>', 'rework passes added (default 5)', positive)
    .option('--say <text>', 'a message for the next prompt (a completed loop needs one)')
    .option('-m, --model <spec>', 'coder model(s) instead of the loop\'s (the auditor\'s too when they were the same)', collect, [])
    .option('--check <command>', 'a check added to the loop\'s; repeatable', repeatable, [])
    .option('--max-tokens <n>', 'raise the token budget', positive)
    .option('--max-cost-usd <n>', 'raise the cost budget', (v: string) => {
      const n = Number(v)
      if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.')
      return n
    })
    .option('--max-wall-ms <n>', 'raise the running-time budget', positive)
    .option('--ollama-host <url>', HELP.ollama)
    .option('--openai-base-url <url>', HELP.openai)
    .option('--provider <[scheme=]file>', HELP.provider, repeatable, [])
    .option('--config <file>', HELP.config)
    .option('--inspect [url]', HELP.inspect)
    .option('-d, --data <dir>', HELP.data)
    .action((name: string, opts: ContinueOptions) => act(import('./continue.ts').then((m) => m.continueCommand(cli, name, opts))))

  for (const [kind, description] of [
    ['cancel', 'cancel a loop (it ends as cancelled)'],
    ['pause', 'pause a loop (the live model call is aborted; resume continues it)'],
  ] as const) {
    program
      .command(kind)
      .description(description)
      .argument('<name>', 'loop name')
      .option('-d, --data <dir>', HELP.data)
      .action((name: string, opts: DataFlag) => act(import('./control.ts').then((m) => m.controlCommand(cli, kind, name, opts))))
  }

  program
    .command('say')
    .description("send a message that the loop's next prompt includes")
    .argument('<name>', 'loop name')
    .argument('<text...>', 'the message')
    .option('-d, --data <dir>', HELP.data)
    .action((name: string, words: string[], opts: DataFlag) =>
      act(import('./control.ts').then((m) => m.sayCommand(cli, name, words, opts))),
    )

  program
    .command('clean')
    .description("remove an ended loop's git worktree (its branch loop/<name> stays)")
    .argument('<name>', 'loop name')
    .option('-d, --data <dir>', HELP.data)
    .action((name: string, opts: DataFlag) => act(import('./clean.ts').then((m) => m.cleanCommand(cli, name, opts))))

  program
    .command('demo')
    .description('run three scripted loops at once (a bug fixed, a sectioned plan, a model fallback)')
    .option('--ollama <model>', 'instead, run the plain-plan demo on a real model of an Ollama server')
    .option('--ollama-host <url>', HELP.ollama)
    .option('--inspect [url]', HELP.inspect)
    .option('-d, --data <dir>', HELP.data)
    .action((opts: DemoOptions) => act(import('./demo.ts').then((m) => m.demoCommand(cli, opts))))

  program
    .command('inspect')
    .description('serve the loop viewer (statecharts, event logs, context, past snapshots) on 127.0.0.1')
    .option('--port <n>', 'port (default 4747; 0 picks a free one)', count)
    .option('--host <host>', 'address to listen on (default 127.0.0.1); a non-loopback one requires the random token printed at start')
    .option('-d, --data <dir>', HELP.data)
    .action((opts: InspectOptions) => act(import('./inspect.ts').then((m) => m.inspectCommand(cli, opts))))

  return program
}
