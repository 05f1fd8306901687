/**
 * Which values of the engine's environment are secrets (services/inspect/redact.ts
 * replaces them wherever they occur), and a fast matcher for many literal values
 * at once.
 */

/** What a secret is replaced by. */
export const REDACTED = '[redacted]'

/** A word of 12+ characters with upper case, lower case and digits (a generated value, not a name). */
export function randomWord(word: string): boolean {
  return word.length >= 12 && /[A-Z]/.test(word) && /[a-z]/.test(word) && /[0-9]/.test(word)
}

/**
 * Environment variables whose values are public and show up all over a loop's
 * stream: paths (the workspace, the data dir and every file path live under
 * HOME, PWD, TMPDIR), the user and host names, locale and terminal settings.
 * Redacting them would only wreck the stream.
 */
const PUBLIC_ENV_NAMES = new Set([
  '_',
  'PATH',
  'HOME',
  'PWD',
  'OLDPWD',
  'INIT_CWD',
  'SHELL',
  'USER',
  'USERNAME',
  'LOGNAME',
  'HOSTNAME',
  'HOST',
  'LANG',
  'LANGUAGE',
  'TERM',
  'COLORTERM',
  'TMPDIR',
  'TMP',
  'TEMP',
  'SHLVL',
  'EDITOR',
  'VISUAL',
  'PAGER',
  'DISPLAY',
  'TZ',
  'MAIL',
  'MANPATH',
  'INFOPATH',
  'LS_COLORS',
  'HOSTTYPE',
  'OSTYPE',
  'MACHTYPE',
  'COLUMNS',
  'LINES',
  'NODE_ENV',
  'NODE_VERSION',
  'YARN_VERSION',
  'DEBIAN_FRONTEND',
  'FORCE_COLOR',
  'NO_COLOR',
  'CI',
  // where the loop's models run: printed in every Ollama error message
  'OLLAMA_HOST',
])

/**
 * Prefixes of public variables: locale (`LC_ALL`), desktop dirs (`XDG_*`), the
 * terminal (`TERM_PROGRAM`), and what npm sets for a script (`npm_package_name=loopstate`,
 * `npm_lifecycle_script`, `npm_config_cache`…: lower case; `NPM_TOKEN` is not one of
 * them). A secret-looking name under a public prefix (`npm_config__authToken`) is
 * still secret.
 */
const PUBLIC_ENV_PREFIXES = ['LC_', 'XDG_', 'TERM_', 'npm_']

/**
 * Names that make a value secret whatever it looks like (a numeric `DB_PASS`, a path
 * in `GITHUB_TOKEN_FILE`…). CERT is not here: `*_CA_CERTS` name public CA bundles.
 */
const SECRET_ENV_NAME = /PASS|PWD|SECRET|TOKEN|KEY|AUTH|CREDENTIAL|PRIVATE|COOKIE|SESSION|SIGNATURE|SALT|DSN/i

/** Settings words that are values of many variables (`RAILS_ENV=production`) and ordinary words of the stream. */
const PUBLIC_WORDS = new Set([
  'true',
  'false',
  'enabled',
  'disabled',
  'production',
  'development',
  'staging',
  'testing',
  'noninteractive',
  'truecolor',
  'xterm-256color',
  'screen-256color',
  'tmux-256color',
  'undefined',
])

/** Numbers, versions, dates, ports, IP addresses (`1700000000`, `20.19.4`, `127.0.0.1:11434`). */
const NUMERIC_VALUE = /^[\d\s.,:;_+\-/]+$/
/** An absolute path (POSIX or Windows) of ordinary file name characters. */
const ABSOLUTE_PATH = /^(?:~?\/|[A-Za-z]:[\\/])[\w.@~ -]*(?:[\\/][\w.@~ -]*)*$/
/** A URL that is only an origin (`http://127.0.0.1:11434/`): no credentials, path, query or fragment to hide a token in. */
const ORIGIN_URL = /^[a-z][a-z0-9+.-]*:\/\/[^\s/@?#]+\/?$/i

/**
 * Whether an environment variable's value may leave the process (and so is not
 * redacted wherever it appears). Public are:
 *
 * - values of 7 characters or less (too short to match safely: `CI=true`, `USER=root`);
 * - the variables of {@link PUBLIC_ENV_NAMES} and {@link PUBLIC_ENV_PREFIXES};
 * - unless the name looks secret ({@link SECRET_ENV_NAME}): numbers, versions and
 *   dates (a stream full of counts, ids and timestamps would be wrecked by a numeric
 *   value), absolute paths and path lists (the workspace, the data dir and their
 *   files are in every event; a path names a secret, it is not one), origin-only URLs,
 *   and a few settings words (`production`, `noninteractive`).
 *
 * Everything else is secret: a random value in an innocuously named variable
 * (`FOO_CONFIG=Xk3…`) is exactly what the stream must not carry.
 */
export function isPublicEnvVar(name: string, value: string): boolean {
  if (value.length <= 7) return true
  if (PUBLIC_ENV_NAMES.has(name)) return true
  if (SECRET_ENV_NAME.test(name)) return false
  if (PUBLIC_ENV_PREFIXES.some((p) => name.startsWith(p))) return true
  const v = value.trim()
  if (NUMERIC_VALUE.test(v) || ORIGIN_URL.test(v) || PUBLIC_WORDS.has(v.toLowerCase())) return true
  // a path or a list of them (PYTHONPATH, NODE_PATH); not a random value that happens to start with a slash
  const parts = v.split(/[:;](?=~?\/|[A-Za-z]:[\\/])/)
  return parts.every((p) => ABSOLUTE_PATH.test(p) && !p.split(/[\\/]/).some(randomWord))
}

/** The forms an env value can take in the stream: as is, trimmed, inside a JSON string, URL-encoded. */
export function envForms(value: string): string[] {
  const forms = new Set([value, value.trim(), JSON.stringify(value).slice(1, -1)])
  try {
    forms.add(encodeURIComponent(value))
  } catch {
    // a lone surrogate has no URL form
  }
  // too short to match safely, or a part of our own marks (would break idempotence)
  return [...forms].filter((f) => f.length > 7 && !REDACTED.includes(f) && !f.includes(REDACTED) && !f.includes('…'))
}

/**
 * One regular expression that matches any of `literals`, the longest one where
 * several start at the same place: the literals as a trie (`ab(?:c|d(?:ef)?)`), so
 * that at each position of a text at most one branch is followed, however many
 * literals there are.
 */
export function literalsMatcher(literals: readonly string[]): RegExp | null {
  interface Node {
    end: boolean
    next: Map<string, Node>
  }
  const root: Node = { end: false, next: new Map() }
  for (const literal of literals) {
    if (literal === '') continue
    let node = root
    for (const c of literal) {
      let child = node.next.get(c)
      if (!child) node.next.set(c, (child = { end: false, next: new Map() }))
      node = child
    }
    node.end = true
  }
  if (root.next.size === 0) return null
  const escape = (c: string) =>
    /[A-Za-z0-9 _]/.test(c)
      ? c
      : [...c]
          .map((ch) => {
            // every code unit as \uXXXX (astral characters as their two halves): valid in any RegExp
            let out = ''
            for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`
            return out
          })
          .join('')
  // iterative over chains (a long literal is a long chain), recursive at the branches
  const source = (node: Node): string => {
    const branches: string[] = []
    for (const [c, child] of node.next) {
      let chain = escape(c)
      let n = child
      while (!n.end && n.next.size === 1) {
        const [[c2, only]] = [...n.next] as [[string, Node]]
        chain += escape(c2)
        n = only
      }
      if (n.next.size === 0) branches.push(chain)
      else {
        const rest = source(n)
        // greedy `?`: the longer literal first, the shorter one when it does not go on
        branches.push(n.end ? `${chain}(?:${rest})?` : `${chain}(?:${rest})`)
      }
    }
    return branches.join('|')
  }
  return new RegExp(source(root), 'g')
}
