/**
 * The git the model may run through `run_command` (services/command-policy.ts):
 * its own commands only (an alias or a `git-<name>` program on PATH can run
 * anything), none of the switches by which git runs a program or leaves the
 * workspace, no `git config` writes, and hooks and fsmonitor off (GIT_HARDENING,
 * prepended to every call). A refusal is a ToolError naming the switch.
 */
import { ToolError } from './tool-types.ts'

/** Configuration prepended to every git the model runs: no hooks, no fsmonitor, no implicit bare repository. */
export const GIT_HARDENING = [
  '-c',
  'core.hooksPath=/dev/null',
  '-c',
  'core.fsmonitor=false',
  // a `HEAD`, `objects/`, `refs/` and `config` written into the workspace would otherwise be a repository
  '-c',
  'safe.bareRepository=explicit',
  '-c',
  'protocol.ext.allow=never',
]

/** git's own commands (porcelain and plumbing, as of git 2.4x) the model may run. */
const GIT_COMMANDS = new Set(
  (
    'add am annotate apply archive bisect blame branch bugreport bundle cat-file check-attr check-ignore ' +
    'check-mailmap check-ref-format checkout checkout-index cherry cherry-pick clean clone column commit ' +
    'commit-graph commit-tree config count-objects describe diagnose diff diff-files diff-index diff-tree ' +
    'fast-export fast-import fetch fetch-pack fmt-merge-msg for-each-ref format-patch fsck gc ' +
    'get-tar-commit-id grep hash-object help index-pack init interpret-trailers log ls-files ls-remote ' +
    'ls-tree mailinfo mailsplit maintenance merge merge-base merge-file merge-tree mktag mktree ' +
    'multi-pack-index mv name-rev notes pack-objects pack-redundant pack-refs patch-id prune prune-packed ' +
    'pull push range-diff read-tree rebase reflog remote repack replace replay request-pull rerere reset ' +
    'restore rev-list rev-parse revert rm send-pack shortlog show show-branch show-index show-ref ' +
    'sparse-checkout stash status stripspace submodule switch symbolic-ref tag unpack-file unpack-objects ' +
    'update-index update-ref update-server-info var verify-commit verify-pack verify-tag version ' +
    'whatchanged worktree write-tree'
  ).split(' '),
)

/** git's own commands that are refused, and why. */
const GIT_REFUSED: Record<string, string> = {
  ...Object.fromEntries(
    [
      'filter-branch',
      'filter-repo',
      'difftool',
      'mergetool',
      'merge-index',
      'merge-one-file',
      'for-each-repo',
      'hook',
      'instaweb',
      'daemon',
      'http-backend',
      'cvsserver',
      'cvsimport',
      'cvsexportcommit',
      'archimport',
      'quiltimport',
      'p4',
      'svn',
      'send-email',
      'imap-send',
      'web--browse',
      'gui',
      'citool',
      'gitk',
      'sh-setup',
      'sh-i18n',
      'upload-pack',
      'receive-pack',
      'upload-archive',
    ].map((c) => [c, 'runs programs or serves the repository']),
  ),
  ...Object.fromEntries(['credential', 'credential-cache', 'credential-store'].map((c) => [c, "hands out the user's credentials"])),
}

/**
 * Options of git subcommands that run a program given on the command line (or set
 * configuration): long ones, short letters, and the short letters that take a value
 * (the rest of a cluster such as `-ix` is read as git's parse-options does).
 */
const GIT_PROGRAM_OPTIONS: Record<string, { long: string[]; short?: string; valued?: string }> = {
  rebase: { long: ['--exec'], short: 'x', valued: 'sXCx' },
  clone: { long: ['--upload-pack', '--template', '--config'], short: 'uc', valued: 'bojuc' },
  init: { long: ['--template'] },
  fetch: { long: ['--upload-pack'] },
  pull: { long: ['--upload-pack'] },
  'ls-remote': { long: ['--upload-pack'], short: 'u', valued: 'u' },
  'fetch-pack': { long: ['--upload-pack', '--exec'] },
  push: { long: ['--receive-pack', '--exec'] },
  'send-pack': { long: ['--receive-pack', '--exec'] },
  archive: { long: ['--exec'] },
  grep: { long: ['--open-files-in-pager'], short: 'O', valued: 'efABCmO' },
}

/** The first of `letters` in a short-option cluster (`-ix`), read up to a letter that takes a value. */
function shortIn(word: string, letters: string, valued: string): string | undefined {
  if (!word.startsWith('-') || word.startsWith('--')) return undefined
  for (const ch of word.slice(1)) {
    if (letters.includes(ch)) return ch
    if (valued.includes(ch)) return undefined
  }
  return undefined
}

/** Subcommands of git subcommands that run a program given on the command line. */
const GIT_PROGRAM_SUBCOMMANDS: Record<string, string> = { bisect: 'run', submodule: 'foreach' }

const gitRefusal = (what: string, why: string) => new ToolError(`run_command: 'git ${what}' ${why}; refused`)

/** git's global options that take the next word as their value. */
const GIT_VALUED_GLOBALS = new Set(['--namespace', '--attr-source'])

/** Throws ToolError when `git <args>` would run a program or leave the workspace (see the header). */
export function checkGit(args: string[]): void {
  let i = 0
  for (; i < args.length; i++) {
    const a = args[i] as string
    if (!a.startsWith('-')) break
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a
    if (a.startsWith('-c') || name === '--config-env') {
      throw gitRefusal(name.startsWith('-c') ? '-c' : name, 'sets git configuration for this command (configuration can make git run programs)')
    }
    if (name === '--exec-path') throw gitRefusal(name, 'changes where git finds its programs')
    if (a.startsWith('-C') || name === '--git-dir' || name === '--work-tree' || name === '--bare') {
      throw gitRefusal(a.startsWith('-C') ? '-C' : name, 'points git at another directory or repository (git runs on the workspace)')
    }
    if (!a.includes('=') && GIT_VALUED_GLOBALS.has(a)) i++
  }
  const sub = args[i]
  if (sub === undefined) return // `git`, `git --version`: usage and version
  const rest = args.slice(i + 1)
  const refusedWhy = GIT_REFUSED[sub]
  if (refusedWhy !== undefined) throw gitRefusal(sub, refusedWhy)
  if (!GIT_COMMANDS.has(sub)) {
    throw new ToolError(
      `run_command: 'git ${sub}' is not one of git's own commands (an alias or a git-${sub} program can run anything); refused`,
    )
  }
  const end = rest.indexOf('--')
  const own = end < 0 ? rest : rest.slice(0, end)
  const options = GIT_PROGRAM_OPTIONS[sub]
  for (const a of options ? own : []) {
    const long = options!.long.find((opt) => a === opt || a.startsWith(`${opt}=`))
    const short = shortIn(a, options!.short ?? '', options!.valued ?? '')
    if (long === undefined && short === undefined) continue
    const what = long ?? `-${short}`
    throw gitRefusal(
      `${sub} ${what}`,
      what === '--config' || what === '-c' ? 'sets git configuration (configuration can make git run programs)' : 'runs a program given on its command line',
    )
  }
  const programSub = GIT_PROGRAM_SUBCOMMANDS[sub]
  if (programSub !== undefined && own.find((a) => !a.startsWith('-')) === programSub) {
    throw gitRefusal(`${sub} ${programSub}`, 'runs a program given on its command line')
  }
  if (sub === 'config' && gitConfigWrites(own)) {
    throw new ToolError(
      `run_command: 'git config ${own.join(' ')}' writes git configuration (configuration can make git run programs); refused (reading is allowed: git config --get NAME, git config --list)`,
    )
  }
}

const CONFIG_WRITE_OPTIONS = new Set(['--add', '--unset', '--unset-all', '--replace-all', '--rename-section', '--remove-section', '-e', '--edit'])
const CONFIG_READ_OPTIONS = new Set(['--get', '--get-all', '--get-regexp', '--get-urlmatch', '--get-color', '--get-colorbool', '-l', '--list'])
const CONFIG_VALUED = new Set(['-f', '--file', '--blob', '--type', '--default', '--comment', '--value'])

/** Whether `git config <args>` would change a configuration file (any form that is not a read). */
function gitConfigWrites(args: string[]): boolean {
  const positional: string[] = []
  let reads = false
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    if (!a.startsWith('-')) {
      positional.push(a)
      continue
    }
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a
    if (CONFIG_WRITE_OPTIONS.has(name)) return true
    if (CONFIG_READ_OPTIONS.has(name)) reads = true
    if (!a.includes('=') && CONFIG_VALUED.has(name)) i++
  }
  const [first] = positional
  if (first === 'get' || first === 'list') return false
  if (first === 'set' || first === 'unset' || first === 'rename-section' || first === 'remove-section' || first === 'edit') return true
  return !reads && positional.length >= 2
}
