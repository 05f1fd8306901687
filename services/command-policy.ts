/**
 * What `run_command` refuses before anything runs (services/run-command.ts):
 *
 * - **Inline code**: the switches by which an allow-listed interpreter runs code
 *   given on the command line (`node -e`, `python -c`, `sh -c` …, see inlineScanner), unless
 *   `runCommand.allowInlineCode`. Matched on the executable's basename; options are
 *   read up to the script or the first operand, as the interpreter does.
 * - **git's own ways to run programs or leave the workspace**, always
 *   (services/git-policy.ts): `-c`, *   `--config-env`, `--exec-path`, `-C`, `--git-dir`, `--work-tree`, `--bare`; any
 *   subcommand that is not one of git's own (an alias or a `git-<name>` program on
 *   PATH can run anything); the commands that run programs named on their command
 *   line or hand out credentials (GIT_REFUSED) and such options of the others
 *   (`rebase --exec`, `clone --upload-pack` …); `git config` writes.
 * - **`find -exec`** (and `-execdir`, `-ok`, `-okdir`), always.
 * - **Paths out of the workspace**, always: see `checkPathArguments`.
 *
 * A refusal is a ToolError naming the switch or argument and the rule.
 */
import path from 'node:path'
import { checkGit } from './git-policy.ts'
import { resolveInWorkspace, type Boundary } from './sandbox.ts'
import { ToolError } from './tool-types.ts'

/** What the checks found: the arguments that are inline code (allowed), exempt from the path rules. */
export interface CommandShape {
  codeArgs: Set<number>
}

const inlineRefusal = (name: string, flag: string) =>
  new ToolError(`run_command: '${name} ${flag}' runs code given inline; refused (set runCommand.allowInlineCode to allow it)`)

/** How an interpreter reads its options: which short letters take code, a value, or end the options. */
interface Grammar {
  /** Short option letters whose value is code (`c` of `python -c`). */
  code: string
  /** Short option letters that take a value: the rest of the word, or the next word. */
  valued: string
  /** Short option letters after which the interpreter reads no more options (`python -m`). */
  stop?: string
  /** Long options whose value is code. */
  longCode?: string[]
  /** Long options that take the next word as their value (when not given as `--opt=value`). */
  longValued?: string[]
  /** Whether `+o`-style words are options too (the shells). */
  plus?: boolean
}

const PYTHON: Grammar = { code: 'c', valued: 'WX', stop: 'm', longValued: ['--check-hash-based-pycs'] }
const SHELL: Grammar = {
  code: 'c',
  valued: 'oO',
  plus: true,
  longCode: ['--command', '--init-command'],
  longValued: ['--rcfile', '--init-file'],
}
// perl: -i takes the rest of its word (an extension), -M/-m a module (checked apart)
const PERL: Grammar = { code: 'eE', valued: 'iIMmxdDV' }
const RUBY: Grammar = { code: 'e', valued: 'rICEFKx' }

/** An inline-code switch found: its text, and the arguments that hold its code. */
interface Inline {
  flag: string
  code: number[]
}

/**
 * Reads option words (`-Bc`, `-ne`, `--rcfile x`) up to the first operand. Returns
 * the first inline-code switch, or null. A letter that takes a value takes the rest
 * of its word; when that is empty the next word may be its value, so that word ends
 * nothing but is still read as an option if it looks like one (`perl -x -e …`).
 */
function scanGrammar(args: string[], g: Grammar, extra?: (letter: string, value: string | undefined) => string | null): Inline | null {
  let valueNext = false
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    const option = (a.startsWith('-') || (g.plus === true && a.startsWith('+'))) && a.length > 1 && a !== '--'
    if (!option) {
      if (valueNext && a !== '--') {
        valueNext = false
        continue
      }
      return null
    }
    valueNext = false
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      const name = eq < 0 ? a : a.slice(0, eq)
      if (g.longCode?.includes(name)) return { flag: name, code: [i, i + 1] }
      valueNext = eq < 0 && g.longValued?.includes(name) === true
      continue
    }
    for (let j = 1; j < a.length; j++) {
      const ch = a[j] as string
      if (g.code.includes(ch)) return { flag: a, code: [i, i + 1] }
      if (g.valued.includes(ch)) {
        const rest = a.slice(j + 1)
        const bad = extra?.(ch, rest === '' ? args[i + 1] : rest)
        if (bad) return { flag: bad, code: [i, i + 1] }
        valueNext = rest === ''
        break
      }
      if (g.stop?.includes(ch)) return null
    }
  }
  return null
}

/** node's long options that take no value (any other one may take the next word, so scanning goes on past it). */
const NODE_FLAGS = new Set([
  '--abort-on-uncaught-exception',
  '--check',
  '--enable-source-maps',
  '--experimental-detect-module',
  '--experimental-require-module',
  '--experimental-strip-types',
  '--experimental-test-coverage',
  '--experimental-transform-types',
  '--experimental-vm-modules',
  '--experimental-wasm-modules',
  '--expose-gc',
  '--frozen-intrinsics',
  '--help',
  '--inspect',
  '--inspect-brk',
  '--inspect-wait',
  '--interactive',
  '--jitless',
  '--pending-deprecation',
  '--preserve-symlinks',
  '--preserve-symlinks-main',
  '--prof',
  '--test',
  '--test-only',
  '--throw-deprecation',
  '--trace-deprecation',
  '--trace-exit',
  '--trace-uncaught',
  '--trace-warnings',
  '--version',
  '--watch',
  '--watch-preserve-output',
  '--zero-fill-buffers',
])
const NODE_SHORT_FLAGS = new Set(['-i', '-c', '-v', '-h'])
/** Options whose value is a module to load: a `data:` or `http(s):` URL there is code given inline. */
const MODULE_OPTIONS = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r'])
const INLINE_URL = /^(data|https?):/i

/**
 * node (and bun): `-e`, `--eval`, `-p`, `--print`, any short word holding e or p
 * (`-pe`), and a module option given a `data:`/`http:` URL (`--import data:…`).
 * Options are read up to the script; one that is not known to take no value may
 * take the next word, so the scan goes on past that word (never past `--`).
 */
function nodeInline(args: string[]): Inline | null {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    if (a === '--' || a === '-' || !a.startsWith('-')) {
      // an operand: the script, unless it is the value of the option before it
      const prev = args[i - 1]
      if (a === '--' || a === '-' || prev === undefined || !mayTakeValue(prev)) return null
      continue
    }
    const eq = a.indexOf('=')
    const name = eq < 0 ? a : a.slice(0, eq)
    if (name === '--eval' || name === '--print') return { flag: name, code: [i, i + 1] }
    if (!a.startsWith('--') && /[ep]/.test(name.slice(1))) return { flag: name, code: [i, i + 1] }
    if (MODULE_OPTIONS.has(name)) {
      const value = eq < 0 ? args[i + 1] : a.slice(eq + 1)
      if (value !== undefined && INLINE_URL.test(value)) return { flag: `${name} ${value.split(':')[0]}:`, code: [i, i + 1] }
    }
  }
  return null
}

function mayTakeValue(option: string): boolean {
  if (!option.startsWith('-') || option.includes('=')) return false
  if (option.startsWith('--')) return !(NODE_FLAGS.has(option) || option.startsWith('--no-'))
  return !NODE_SHORT_FLAGS.has(option)
}

/** npx's options, read up to the package: `-c`/`--call` run a shell command line. */
const NPX: Grammar = {
  code: 'c',
  valued: 'pw',
  longCode: ['--call'],
  longValued: ['--package', '--workspace', '--userconfig', '--prefix', '--registry'],
}

/** `npm exec` / `npm x`: npm reads its options anywhere before `--`. */
function npmInline(args: string[]): Inline | null {
  const end = args.indexOf('--')
  const own = end < 0 ? args : args.slice(0, end)
  if (!own.some((a) => a === 'exec' || a === 'x')) return null
  const i = own.findIndex((a) => a === '-c' || a === '--call' || a.startsWith('--call='))
  if (i < 0) return null
  const a = own[i] as string
  return { flag: `exec ${a.startsWith('--call=') ? '--call' : a}`, code: [i, i + 1] }
}

/** deno: `eval`, `repl --eval[-file]`, and a `data:` URL to run. */
function denoInline(args: string[]): Inline | null {
  const sub = args.findIndex((a) => !a.startsWith('-'))
  if (sub >= 0 && args[sub] === 'eval') return { flag: 'eval', code: args.map((_, i) => i).filter((i) => i > sub) }
  if (sub >= 0 && args[sub] === 'repl') {
    const i = args.findIndex((a) => /^--eval(-file)?(=|$)/.test(a))
    if (i >= 0) return { flag: `repl ${(args[i] as string).split('=')[0]}`, code: [i, i + 1] }
  }
  const url = args.findIndex((a) => /^data:/i.test(a))
  if (url >= 0) return { flag: 'data:', code: [url] }
  return null
}

/** perl's -M/-m take a module name (`-MList::Util=sum`); anything else there becomes code. */
const perlModule = (letter: string, value: string | undefined) =>
  (letter === 'M' || letter === 'm') && value !== undefined && !/^-?[A-Za-z_][\w:]*(=[\w,:]*)?$/.test(value) ? `-${letter}` : null

/** The interpreters whose inline-code switches are refused, by basename. */
function inlineScanner(base: string): ((args: string[]) => Inline | null) | null {
  if (base === 'node' || base === 'nodejs' || base === 'bun') return nodeInline
  if (/^python(\d+(\.\d+)?)?$/.test(base) || base === 'pypy' || base === 'pypy3') return (a) => scanGrammar(a, PYTHON)
  if (['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash'].includes(base)) return (a) => scanGrammar(a, SHELL)
  if (base === 'fish') return (a) => scanGrammar(a, { ...SHELL, code: 'cC' })
  if (base === 'perl') return (a) => scanGrammar(a, PERL, perlModule)
  if (base === 'ruby') return (a) => scanGrammar(a, RUBY)
  if (base === 'deno') return denoInline
  if (base === 'npx') return (a) => scanGrammar(a, NPX)
  if (base === 'npm') return npmInline
  return null
}

// --- git -------------------------------------------------------------------

function checkFind(args: string[]): void {
  const hit = args.find((a) => a === '-exec' || a === '-execdir' || a === '-ok' || a === '-okdir')
  if (hit !== undefined) throw new ToolError(`run_command: 'find ${hit}' runs other programs; refused`)
}

/**
 * Refuses inline code, git's program-running switches and `find -exec` (see the
 * header). `name` is the command as the model typed it (named in the messages),
 * `file` the allow entry it resolved to (whose basename decides the rules).
 */
export function checkCommand(name: string, file: string, args: string[], allowInlineCode: boolean): CommandShape {
  const base = path.basename(file)
  const codeArgs = new Set<number>()
  if (base === 'git') checkGit(args)
  if (base === 'find') checkFind(args)
  const hit = inlineScanner(base)?.(args)
  if (hit) {
    if (!allowInlineCode) throw inlineRefusal(name, hit.flag)
    for (const i of hit.code) codeArgs.add(i)
  }
  return { codeArgs }
}

// --- paths -----------------------------------------------------------------

/**
 * The parts of an argument that are taken as paths:
 * - a plain word, whole (`src/x.test.ts`, `../x`, `/etc`);
 * - the value of `--opt=value`, and of a word that reads as an assignment (`DESTDIR=/x`);
 * - a value attached to a short option when it looks like a path (`-o/tmp/x`, `-I../inc`).
 * Option names (`-v`, `--reporter`) are not paths; neither is the empty word.
 */
export function pathParts(arg: string): string[] {
  if (arg === '') return []
  if (arg.startsWith('--')) {
    const eq = arg.indexOf('=')
    return eq < 0 ? [] : [arg.slice(eq + 1)].filter((v) => v !== '')
  }
  if (arg.startsWith('-') && arg.length > 1) {
    const parts: string[] = []
    const eq = arg.indexOf('=')
    if (eq >= 0 && eq < arg.length - 1) parts.push(arg.slice(eq + 1))
    const attached = arg.slice(2)
    if (attached.includes('/') || attached.startsWith('~') || attached === '..') parts.push(attached)
    return parts
  }
  const assignment = /^[A-Za-z_][\w.-]*=(.+)$/.exec(arg)
  return assignment ? [arg, assignment[1] as string] : [arg]
}

/** `path 'x' is outside the workspace` → `'x' is outside the workspace` (the argument is named before it). */
function ruleOf(message: string, part: string): string {
  const prefix = `path '${part}' `
  if (!message.startsWith(prefix)) return message
  const rest = message.slice(prefix.length)
  return rest.startsWith('is refused: ') ? `'${part}': ${rest.slice('is refused: '.length)}` : `'${part}' ${rest}`
}

/** An fs error met resolving an argument that cannot name an existing file: it is no path. */
const NOT_A_PATH = Symbol('not a path')

/**
 * Refuses every argument (but inline code that is allowed) with a part that is
 * absolute, starts with `~` (it reads as the home directory, though no shell
 * expands it), is a `file:` URL, leaves the workspace lexically (`..`) or, when it
 * exists, through a symlink, has a `.git` component, or lies in the data dir: the rules of
 * `resolveInWorkspace`. A word that merely resolves inside (`test`, `1`,
 * `http://127.0.0.1:3000`, `HEAD~1`) passes. Words are taken as paths wherever they
 * appear, so a message such as `-m "see ../x"` is refused too (write it to a file).
 */
export async function checkPathArguments(boundary: Boundary, args: string[], skip: Set<number> = new Set()): Promise<void> {
  for (const [i, arg] of args.entries()) {
    if (skip.has(i)) continue
    for (const part of pathParts(arg)) {
      if (part.trim() === '') continue
      const refuse = (rule: string) => new ToolError(`run_command: argument '${arg}' is refused: ${rule}`)
      if (part.startsWith('~')) throw refuse(`'${part}' reads as a home directory; use a path relative to the workspace`)
      if (/^file:/i.test(part)) throw refuse(`'${part}' is a file: URL (a path by another name); use a path relative to the workspace`)
      try {
        await resolveInWorkspace(boundary, part, (err) => {
          const code = err instanceof Error && 'code' in err ? String(err.code) : ''
          return code === 'ENAMETOOLONG' ? NOT_A_PATH : new ToolError(`path '${part}' could not be resolved (${code || 'error'})`)
        })
      } catch (err) {
        if (err === NOT_A_PATH) continue
        if (err instanceof ToolError) throw refuse(ruleOf(err.message, part))
        throw err
      }
    }
  }
}
