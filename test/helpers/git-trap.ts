/**
 * A `git` for the PATH of an engine process that freezes one real git command in
 * the middle of its work, so that a test can SIGKILL the engine (and that git) at
 * an instant a real kill could land in and meet exactly what git leaves on disk.
 *
 * The wrapper execs the real git for every command but the target one (`commit`,
 * or `worktree add`), and that one only once. For it, the wrapper runs the real
 * git in the background with two settings added right before the subcommand
 * (after loopstate's own `-c`s, so they win), which make git run a helper of the
 * trap at a fixed point of its work:
 *
 * - `commit`: a clean filter for every path (`core.attributesFile`); the wrapper
 *   touches the worktree's files first (their content stays the same), so the
 *   refresh of the index, which `git commit` runs holding `<gitdir>/index.lock`,
 *   hashes them again through the filter.
 * - `worktree add`: a `reference-transaction` hook (`core.hooksPath`), which git
 *   also runs in the `git reset --hard` that checks the new worktree out, while
 *   `<common>/worktrees/<name>/locked` ("initializing") is there.
 *
 * The helper checks that the artefacts the test named are on disk, stops itself
 * (SIGSTOP: git waits for it), and tells the wrapper, which SIGSTOPs the real git
 * too, checks the artefacts again and writes `stopped.json` (the pids) for the
 * test. git never goes on: the test kills the engine's process group, and
 * `killTrapped` kills (SIGCONT, SIGKILL) whatever of the trap is left.
 */
import { existsSync, readFileSync } from 'node:fs'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export type TrapTarget = 'commit' | 'worktree-add'

export interface GitTrap {
  /** The directory to put first on the engine's PATH (it holds the `git`). */
  bin: string
  /** Written by the wrapper once git is stopped with the artefact on disk. */
  stoppedFile: string
  /** The pids of the stopped command, once stopped.json is there (else null). */
  stopped(): TrapStopped | null
}

export interface TrapStopped {
  /** The wrapper (a child of the engine). */
  wrapper: number
  /** The real git the wrapper started (`git commit`, `git worktree add`). */
  git: number
  /** The trap's helper that git runs (the filter, the hook); stopped too. */
  helper: number
  /** The process that runs the helper and waits for it: the git, or a git child of it (worktree add's checkout). */
  parent: number
  /** Whether the artefacts were all on disk once the real git was stopped. */
  artefact: boolean
}

const sh = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/**
 * Writes the trap in `dir`: a `git` wrapper (in `<dir>/bin`) around `realGit` that
 * stops `target` at its helper's first run that finds all of `artefacts` (absolute
 * paths) on disk.
 */
export async function makeGitTrap(dir: string, opts: { realGit: string; target: TrapTarget; artefacts: string[] }): Promise<GitTrap> {
  const bin = join(dir, 'bin')
  const hooks = join(dir, 'hooks')
  await mkdir(bin, { recursive: true })
  await mkdir(hooks, { recursive: true })
  const helper = join(dir, 'stop-here')
  const stoppedFile = join(dir, 'stopped.json')
  const allThere = opts.artefacts.map((a) => `[ -e ${sh(a)} ]`).join(' && ')

  // Run by git at the trap's point: `filter` (stdin to stdout) or `hook` (stdin consumed).
  await writeFile(
    helper,
    `#!/bin/bash
if ${allThere} && mkdir ${sh(join(dir, 'caught'))} 2>/dev/null; then
  echo "$$ $PPID" > ${sh(join(dir, 'helper.tmp'))}
  mv ${sh(join(dir, 'helper.tmp'))} ${sh(join(dir, 'helper.pid'))}
  kill -STOP $$
fi
if [ "$1" = filter ]; then cat; else cat > /dev/null; fi
exit 0
`,
  )
  await writeFile(join(hooks, 'reference-transaction'), `#!/bin/bash\nexec ${sh(helper)} hook\n`)
  await writeFile(join(dir, 'attributes'), '* filter=loopstate-trap\n')

  const extra =
    opts.target === 'commit'
      ? `extra=(-c ${sh(`filter.loopstate-trap.clean=${sh(helper)} filter`)} -c ${sh(`core.attributesFile=${join(dir, 'attributes')}`)})`
      : `extra=(-c ${sh(`core.hooksPath=${hooks}`)})`
  await writeFile(
    join(bin, 'git'),
    `#!/bin/bash
# The git of a fault test (test/helpers/git-trap.ts): the real git, except once for the target.
real=${sh(opts.realGit)}
trap_dir=${sh(dir)}
args=("$@")
n=$#
i=0
sub=-1
worktree=''
# the subcommand: the first argument that is neither a global option nor the value of one
while [ $i -lt $n ]; do
  case "\${args[$i]}" in
    -c|-C|--git-dir|--work-tree|--namespace|--config-env)
      [ "\${args[$i]}" = --work-tree ] && worktree=\${args[$((i + 1))]}
      i=$((i + 2)) ;;
    -*) i=$((i + 1)) ;;
    *) sub=$i; break ;;
  esac
done
hit=no
if [ $sub -ge 0 ]; then
  case ${opts.target === 'commit' ? `"\${args[$sub]}"` : `"\${args[$sub]} \${args[$((sub + 1))]}"`} in
    ${opts.target === 'commit' ? 'commit' : "'worktree add'"}) mkdir "$trap_dir/armed" 2>/dev/null && hit=yes ;;
  esac
fi
[ $hit = yes ] || exec "$real" "$@"

${extra}
${
  opts.target === 'commit'
    ? `# new mtimes, same content: the index refresh hashes the files again (through the filter)
[ -n "$worktree" ] && find "$worktree" -path "$worktree/.git" -prune -o -type f -exec touch -c {} +`
    : ''
}
"$real" "\${args[@]:0:$sub}" "\${extra[@]}" "\${args[@]:$sub}" &
git=$!
# until the helper has stopped inside git (or git ended without reaching it)
while [ ! -e "$trap_dir/helper.pid" ] && kill -0 $git 2>/dev/null; do sleep 0.01; done
if [ ! -e "$trap_dir/helper.pid" ]; then
  wait $git
  exit $?
fi
kill -STOP $git
if ${allThere}; then artefact=true; else artefact=false; fi
read -r helper parent < "$trap_dir/helper.pid"
printf '{"wrapper":%d,"git":%d,"helper":%d,"parent":%d,"artefact":%s}\\n' $$ $git $helper $parent $artefact > "$trap_dir/stopped.tmp"
mv "$trap_dir/stopped.tmp" "$trap_dir/stopped.json"
# git never ends now; nor does its caller hear back
exec sleep infinity
`,
  )
  for (const f of [helper, join(hooks, 'reference-transaction'), join(bin, 'git')]) await chmod(f, 0o755)
  return {
    bin,
    stoppedFile,
    stopped: () => (existsSync(stoppedFile) ? (JSON.parse(readFileSync(stoppedFile, 'utf8')) as TrapStopped) : null),
  }
}

/** Ends what is left of a trap's processes (stopped ones included). */
export function killTrapped(stopped: TrapStopped | null): void {
  if (stopped === null) return
  for (const pid of [stopped.git, stopped.parent, stopped.helper, stopped.wrapper]) {
    for (const sig of ['SIGCONT', 'SIGKILL'] as const) {
      try {
        process.kill(pid, sig)
      } catch {
        // gone already
      }
    }
  }
}
