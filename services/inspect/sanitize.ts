/**
 * What leaves the process through an inspector: a copy of any value with secrets
 * redacted, long strings cut to a preview and session transcripts shortened.
 * Pure for a given {@link Redactor} (its cache only remembers results), and
 * idempotent (sanitizing a sanitized value changes nothing), because inspection
 * events may pass through it twice (buffered, then sent).
 *
 * Secrets are found by their VALUES, in every string (and object key) of the value,
 * before a long string is cut (so a secret across the cut is gone too):
 *
 * - the values of the engine's environment (a {@link Redactor} is built once from
 *   an env, process.env by default), except the public ones ({@link isPublicEnvVar});
 * - private key blocks (PEM, OpenSSH) and bare key body lines (long random base64);
 * - URL credentials (`scheme://user:password@host`, `scheme://token@host`);
 * - common token shapes (`sk-…`, `ghp_…`, `github_pat_…`, `xoxb-…`, `hf_…`, `npm_…`,
 *   AWS access key ids, JWTs, `Bearer …` / `Basic …`);
 * - `name=value` / `"name": "value"` / `--name value` with a secret-looking name
 *   (`DB_PASS`, `password`, `client_secret`, `api_key`, `credentials` …);
 *
 * and by key name: every string or object under a key like `apiKey`, `token`,
 * `password`, `DB_PASS` is replaced whole.
 *
 * What it cannot see: a secret the model transforms (base64, split, reversed,
 * spelled out), an env value of 7 characters or less, and a random string that is
 * neither an env value nor in one of the shapes above (a password typed into the
 * goal without a `password:` in front of it).
 */

/** Object keys whose (non-numeric) values are never sent. */
export const SECRET_KEY = /key|token|secret|password|authorization/i

export const REDACTED = '[redacted]'

export interface SanitizeOptions {
  /** Strings longer than this (plus a little slack) are cut to this many characters and a `…(N chars)` note. @default 200 */
  maxString?: number
  /** Chat transcripts (`messages` arrays) keep their last this many messages. @default 3 */
  keepMessages?: number
  /** Objects and arrays nested deeper than this become `[depth]`. @default 12 */
  maxDepth?: number
  /** Arrays longer than this keep their first items and a note of how many were dropped. @default 100 */
  maxItems?: number
  /** What redacts the strings. @default {@link defaultRedactor}: built once from process.env */
  redactor?: Redactor
}

// ------------------------------------------------------------------ environment

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
function envForms(value: string): string[] {
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

// ------------------------------------------------------------------ shapes

/** A private key block, PEM or OpenSSH; without its END line (a cut file), the header and the key lines after it. */
const PRIVATE_KEY_BLOCK =
  /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|(?:(?:\\[nr]|\s)+(?:[A-Za-z0-9+/=]{16,}|[A-Za-z-]+:[^\n\\]*))*)/g

/** `scheme://userinfo@`: the userinfo is everything up to the last `@` before the host. */
const URL_USERINFO = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}:\/\/)([^\s/?#"'`<>\\]+)@/gi

/** Provider token literals. */
const TOKEN_LITERAL = new RegExp(
  [
    String.raw`\bsk-[A-Za-z0-9_-]{16,}`, // OpenAI (sk-proj-…), Anthropic (sk-ant-…)
    String.raw`\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}`, // Stripe
    String.raw`\bgh[pousr]_[A-Za-z0-9]{20,}`, // GitHub
    String.raw`\bgithub_pat_[A-Za-z0-9_]{20,}`,
    String.raw`\bglpat-[A-Za-z0-9_-]{20,}`, // GitLab
    String.raw`\bxox[abposr]-[A-Za-z0-9-]{10,}`, // Slack
    String.raw`\bxapp-[A-Za-z0-9-]{10,}`,
    String.raw`\bhf_[A-Za-z0-9]{20,}`, // Hugging Face
    String.raw`\bnpm_[A-Za-z0-9]{30,}`, // npm
    String.raw`\bAIza[0-9A-Za-z_-]{35}`, // Google API keys
    String.raw`\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b`, // AWS access key ids
    String.raw`\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`, // JWT
  ].join('|'),
  'g',
)

/** `Bearer …`, `Basic …` (HTTP authorization credentials). */
const AUTH_SCHEME = /\b([Bb]earer|[Bb]asic)([ \t]+)([A-Za-z0-9._~+/=-]{8,})/g

/**
 * `name=value`, `name: value`, `"name": "value"`, also inside a JSON string
 * (`\"name\": \"value\"`); the value is read by {@link keyValueEnd}.
 */
const KEY_VALUE_HEAD = /(?<![\w.])([A-Za-z_][\w.-]{0,63})(\\?["'])?[ \t]*[:=][ \t]*/g
/** No secret name without one of these (a quick test before the key=value scan). */
const SECRET_WORD = /pass|pwd|secret|token|key|credential|auth/i
/** `--password hunter2` (`--password=…` is a key=value). */
const FLAG_VALUE = /(--?(?:password|passwd|pass|token|secret|api-key|apikey|auth-token)[ \t]+)(["']?)([^\s"']{4,})\2/gi

/** Values under a secret name that are not secrets: types in code, placeholders, flags. */
const NOT_A_SECRET = /^(?:string|number|boolean|null|undefined|true|false|none|nil|required|optional|include|omit|any|unknown|bearer|basic|token|digest|\$.*|<.*>|\*+|x+|\.+|\{\{.*)$/i

/** The short last line of a key body, right after a redacted key line. */
const KEY_TAIL = /(\[redacted\](?:\\[nr]|[\r\n])+)([A-Za-z0-9+/]{4,39}={0,2})(?=\\[nr]|[\r\n]|["'`]|-----|$)/g

/**
 * Whether a name (`DB_PASS`, `dbPassword`, `x-api-key`, `aws_secret_access_key`)
 * names a secret. Words are split at `_ - .` and camelCase humps; `tokens`,
 * `passes`, `maxTokens`, `tokenizer` are not secret names (`tokenCount` is, but a
 * count under it is no secret: see {@link secretValue}).
 */
export function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .map((w) => w.toLowerCase())
  const last = words.length - 1
  for (let i = 0; i <= last; i++) {
    const w = words[i]!
    if (w === '') continue
    if (/(?:password|passwd|passphrase|secret|secrets|token|apikey|credentials?|authorization)$/.test(w)) return true
    if ((w === 'key' || w === 'keys') && i > 0 && ['api', 'private', 'access', 'secret', 'signing', 'encryption', 'master', 'session'].includes(words[i - 1]!)) return true
    // weak words only as the last word after another one (`DB_PASS`, `MYSQL_PWD`, `_auth`): not `PWD`, `pass: 3`
    if (i === last && i > 0 && (w === 'pass' || w === 'pwd' || w === 'auth')) return true
  }
  // an ENV_STYLE name ending in _KEY (GPG_KEY, STRIPE_KEY): not `sortKey`, `primaryKey`
  return /^[A-Z0-9_]+_KEYS?$/.test(name)
}

/** Whether a value under a secret name is to be redacted: not a count, a placeholder or already redacted. */
function secretValue(value: string): boolean {
  const v = value.trim()
  if (v.length < 4 || v.startsWith(REDACTED) || NOT_A_SECRET.test(v)) return false
  // counts and sizes are not secrets (`tokenCount: 512`); a long number may be (a PIN, a numeric key)
  return /[A-Za-z]/.test(v) || v.length >= 8
}

/** Where the value that starts at `start` ends, and whether it was quoted (then without the quotes). */
function keyValueEnd(text: string, start: number): { from: number; to: number; next: number } {
  const escaped = text.startsWith('\\"', start) || text.startsWith("\\'", start)
  const q = escaped ? text[start + 1]! : text[start]
  if (q === '"' || q === "'") {
    const from = start + (escaped ? 2 : 1)
    const close = escaped ? `\\${q}` : q
    let i = from
    while (i < text.length && text[i] !== '\n') {
      if (!escaped && text[i] === '\\') {
        i += 2
        continue
      }
      if (text.startsWith(close, i)) return { from, to: i, next: i + close.length }
      if (escaped && text.startsWith('\\n', i)) break
      i++
    }
    return { from, to: i, next: i }
  }
  let i = start
  while (i < text.length && !/[\s"'`,;&\\)\]}<>…]/.test(text[i]!)) i++
  // the full stop of a sentence (`… SMTP_PASSWORD: hunter2.`) is not part of the value
  let to = i
  while (to > start && /[.:!?]/.test(text[to - 1]!)) to--
  return { from: start, to, next: i }
}

function redactKeyValues(text: string): string {
  let out = ''
  let last = 0
  KEY_VALUE_HEAD.lastIndex = 0
  for (let m = KEY_VALUE_HEAD.exec(text); m !== null; m = KEY_VALUE_HEAD.exec(text)) {
    if (!isSecretName(m[1]!)) {
      // the name may end right before another candidate (`a.token=…`): go on after the name only
      KEY_VALUE_HEAD.lastIndex = m.index + m[1]!.length
      continue
    }
    const start = m.index + m[0].length
    const { from, to, next } = keyValueEnd(text, start)
    const value = text.slice(from, to)
    if (!text.startsWith(REDACTED, from) && secretValue(value.replace(/^(?:bearer|basic|token)\s+/i, ''))) {
      out += text.slice(last, from) + REDACTED
      last = to
    }
    KEY_VALUE_HEAD.lastIndex = Math.max(next, start)
  }
  return last === 0 ? text : out + text.slice(last)
}

/**
 * Whether a base64 run is random enough to be key material: upper and lower case,
 * digits (or padding), many distinct characters, and few letters in lower-case runs of 3 or
 * more (words: a seventh of random base64, rarely half; most of a camelCase identifier like
 * `HTMLInputElementAttributes2021` or of a path like `/home/me/Projects/App2/src`).
 * A git SHA (lower-case hex) has no upper case.
 */
function randomBase64(run: string): boolean {
  const body = run.replace(/=+$/, '')
  if (!/[A-Z]/.test(body) || !/[a-z]/.test(body)) return false
  if (!/[0-9+]/.test(body) && body === run) return false
  if (new Set(body).size < Math.min(24, body.length * 0.45)) return false
  let inWords = 0
  for (const m of body.matchAll(/[a-z]{3,}/g)) inWords += m[0].length
  return inWords < body.length * 0.55
}

const BASE64_CHAR = new Uint8Array(128)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_CHAR[c.charCodeAt(0)] = 1

/**
 * Replaces the base64 runs that look like key material ({@link randomBase64}): 40
 * characters or more (PEM lines are 64, OpenSSH lines 70), or 16 or more with `=`
 * padding (the last line of a key, a base64 blob). A plain loop: a regular expression
 * for runs is several times slower on ordinary text.
 */
function redactKeyLines(text: string): string {
  let out = ''
  let last = 0
  let start = -1
  const n = text.length
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 0
    if (c < 128 && BASE64_CHAR[c] === 1) {
      if (start < 0) start = i
      continue
    }
    if (start < 0) continue
    const length = i - start
    if (length >= 16) {
      let end = i
      while (end < n && end - i < 2 && text.charCodeAt(end) === 61 /* = */) end++
      if ((length >= 40 || end > i) && randomBase64(text.slice(start, end))) {
        out += text.slice(last, start) + REDACTED
        last = end
        i = end - 1
      }
    }
    start = -1
  }
  return last === 0 ? text : out + text.slice(last)
}

/** A word of 12+ characters with upper case, lower case and digits (a generated value, not a name). */
function randomWord(word: string): boolean {
  return word.length >= 12 && /[A-Z]/.test(word) && /[a-z]/.test(word) && /[0-9]/.test(word)
}

/** The last line of a key body: padded, or mixed case (a name in one case, like `done` or `TRUE`, is not). */
function keyTail(tail: string): boolean {
  const mixed = /[A-Z]/.test(tail) && /[a-z]/.test(tail)
  return tail.endsWith('=') || (mixed && (tail.length >= 12 || /[0-9+/]/.test(tail)))
}

/** Redacts the shapes (everything but env values) of one text, once. */
function redactShapes(text: string): string {
  let t = text
  if (t.includes('-----BEGIN')) t = t.replace(PRIVATE_KEY_BLOCK, REDACTED)
  if (t.includes('://')) {
    t = t.replace(URL_USERINFO, (m, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':')
      if (colon >= 0) {
        const password = userinfo.slice(colon + 1)
        if (password === '' || password === REDACTED) return m
        return `${scheme}${userinfo.slice(0, colon)}:${REDACTED}@`
      }
      // `https://<token>@host`: a user name (git@, deploy@) stays, a token goes
      const tokenLike = userinfo.length >= 16 || (userinfo.length >= 8 && /[0-9]/.test(userinfo) && /[A-Za-z]/.test(userinfo))
      return tokenLike && userinfo !== REDACTED ? `${scheme}${REDACTED}@` : m
    })
  }
  t = t.replace(TOKEN_LITERAL, REDACTED)
  t = t.replace(AUTH_SCHEME, (m, scheme: string, space: string, credential: string) =>
    // a credential, not prose (`Basic authentication`): a digit, a symbol or an inner capital
    /[0-9._~+/=-]/.test(credential) || /[A-Z]/.test(credential.slice(1)) ? `${scheme}${space}${REDACTED}` : m,
  )
  t = t.replace(FLAG_VALUE, (m, lead: string, q: string, value: string) =>
    secretValue(value) ? `${lead}${q}${REDACTED}${q}` : m,
  )
  if (SECRET_WORD.test(t)) t = redactKeyValues(t)
  t = redactKeyLines(t)
  if (t.includes(REDACTED)) t = t.replace(KEY_TAIL, (m, lead: string, tail: string) => (keyTail(tail) ? `${lead}${REDACTED}` : m))
  return t
}

// ------------------------------------------------------------------ redactor

/** Redacts secrets in texts: the env values it was built with and the shapes above. */
export interface Redactor {
  /** `text` with its secrets replaced by `[redacted]`; redacting the result changes nothing. */
  redact(text: string): string
  /** How many env value forms it matches. */
  readonly envValues: number
}

export interface RedactorOptions {
  /** The environment whose non-public values are secret. @default process.env */
  env?: Readonly<Record<string, string | undefined>>
}

/** A redactor for the values of `env` (compiled once: build one per inspector, not per event). */
export function createRedactor(options: RedactorOptions = {}): Redactor {
  const env = options.env ?? process.env
  const forms = new Set<string>()
  for (const [name, value] of Object.entries(env)) {
    if (typeof value !== 'string' || isPublicEnvVar(name, value)) continue
    for (const f of envForms(value)) forms.add(f)
  }
  const matcher = literalsMatcher([...forms])
  const once = (text: string): string => redactShapes(matcher ? text.replace(matcher, REDACTED) : text)
  const redact = (text: string): string => {
    let t = once(text)
    if (t === text) return t
    // a redaction may complete another shape (a key tail after a redacted line): repeat until nothing changes
    for (let i = 0; i < 3; i++) {
      const again = once(t)
      if (again === t) break
      t = again
    }
    return t
  }
  // Consecutive snapshots of a loop carry the same long texts (the plan, the last messages, file bodies):
  // each is scanned once. A full cache starts over (cheaper than evicting one by one).
  const cache = new Map<string, string>()
  let cachedChars = 0
  return {
    envValues: forms.size,
    redact(text: string): string {
      // nothing shorter than 8 characters holds a secret we can tell
      if (text.length < 8) return text
      if (text.length < CACHE_FROM_CHARS) return redact(text)
      const hit = cache.get(text)
      if (hit !== undefined) return hit
      const out = redact(text)
      if (cachedChars + text.length > CACHE_CHARS) {
        cache.clear()
        cachedChars = 0
      }
      cache.set(text, out)
      cachedChars += text.length
      return out
    },
  }
}

/** Texts this long or longer are remembered with their redaction, up to CACHE_CHARS characters in all. */
const CACHE_FROM_CHARS = 256
const CACHE_CHARS = 2_000_000

let fallback: Redactor | null = null

/**
 * The redactor of {@link sanitize} and {@link redactText} when none is given: built
 * from process.env at its first use (the viewer's details, the Node API), then kept.
 */
export function defaultRedactor(): Redactor {
  fallback ??= createRedactor()
  return fallback
}

/** Replaces secrets in a text. */
export function redactText(text: string, redactor: Redactor = defaultRedactor()): string {
  return redactor.redact(text)
}

// ------------------------------------------------------------------ sanitize

/** A string that already is a cut preview (so that a second pass leaves it alone). */
const PREVIEW_NOTE = /…\(\d+ chars\)$/

/** `text` cut to `max` characters and `…(N chars)` (N: `length`) when it is longer than `max` + the note's room. */
export function preview(text: string, max = 200, length = text.length): string {
  if (text.length <= max + 24 || PREVIEW_NOTE.test(text)) return text
  let cut = max
  // never in the middle of a `[redacted]` (its remains would look like a value to redact again)
  const open = text.lastIndexOf('[', cut)
  if (open >= 0 && open > cut - REDACTED.length && text.startsWith(REDACTED, open)) cut = open + REDACTED.length
  return `${text.slice(0, cut)}…(${length} chars)`
}

/** A sanitized deep copy of `value` (plain JSON data: functions and symbols are dropped). */
export function sanitize<T = unknown>(value: T, options: SanitizeOptions = {}): T {
  const o: Options = {
    maxString: options.maxString ?? 200,
    keepMessages: options.keepMessages ?? 3,
    maxDepth: options.maxDepth ?? 12,
    maxItems: options.maxItems ?? 100,
    redactor: options.redactor ?? defaultRedactor(),
  }
  return walk(value, o, 0, new WeakSet()) as T
}

type Options = Required<SanitizeOptions>

/** Redacted, then cut; a cut may leave a fragment that redacts differently: redacted again, so that a second pass finds nothing. */
function sanitizeString(value: string, o: Options): string {
  const redacted = o.redactor.redact(value)
  // the note gives the length of the original text
  const cut = preview(redacted, o.maxString, value.length)
  return cut === redacted ? redacted : o.redactor.redact(cut)
}

function walk(value: unknown, o: Options, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return sanitizeString(value, o)
  if (typeof value === 'function' || typeof value === 'symbol') return undefined
  if (typeof value === 'bigint') return value.toString()
  if (value === null || typeof value !== 'object') return value
  if (seen.has(value)) return '[circular]'
  if (value instanceof Error) return { name: value.name, message: walk(value.message, o, depth + 1, seen) }
  const json = (value as { toJSON?: unknown }).toJSON
  if (typeof json === 'function' && !(value instanceof Date)) return walk(json.call(value), o, depth, seen)
  if (value instanceof Date) return value.toISOString()
  if (depth >= o.maxDepth) return '[depth]'
  seen.add(value)
  try {
    if (Array.isArray(value)) {
      const items = value.length > o.maxItems ? value.slice(0, o.maxItems) : value
      const out = items.map((v) => walk(v, o, depth + 1, seen) ?? null)
      if (value.length > o.maxItems) out.push(`…(${value.length - o.maxItems} more)`)
      return out
    }
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      // keys are strings of the stream too (a record keyed by a token)
      const key = o.redactor.redact(k)
      if ((SECRET_KEY.test(k) || isSecretName(k)) && isSecretValue(v)) out[key] = REDACTED
      else if (k === 'messages' && Array.isArray(v)) out[key] = shortenTranscript(v, o, depth + 1, seen)
      else {
        const w = walk(v, o, depth + 1, seen)
        if (w !== undefined) out[key] = w
      }
    }
    return out
  } finally {
    seen.delete(value)
  }
}

/**
 * Counts and flags are not secrets (`inputTokens`, `maxTokens`, `hasKey`): only
 * strings, objects and arrays under a secret-looking key are redacted.
 */
function isSecretValue(v: unknown): boolean {
  return typeof v === 'string' || (typeof v === 'object' && v !== null)
}

/** A transcript keeps its last `keepMessages` messages after a note of how many came before. */
function shortenTranscript(messages: unknown[], o: Options, depth: number, seen: WeakSet<object>): unknown[] {
  const omittedNote = (m: unknown) =>
    typeof m === 'object' && m !== null && (m as { role?: unknown }).role === 'note'
  const already = messages.length > 0 && omittedNote(messages[0])
  const kept = already ? messages.length - 1 : messages.length
  if (kept <= o.keepMessages) return messages.map((m) => walk(m, o, depth + 1, seen) ?? null)
  const earlier = messages.length - o.keepMessages - (already ? 1 : 0) + (already ? earlierCount(messages[0]) : 0)
  const note = { role: 'note', content: `…(${earlier} earlier messages)` }
  return [note, ...messages.slice(-o.keepMessages).map((m) => walk(m, o, depth + 1, seen) ?? null)]
}

function earlierCount(note: unknown): number {
  const m = /…\((\d+) earlier messages\)/.exec(String((note as { content?: unknown }).content ?? ''))
  return m ? Number(m[1]) : 0
}
