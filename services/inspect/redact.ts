/**
 * Redaction by value (services/inspect/sanitize.ts applies it to every string
 * that leaves through an inspector). A {@link Redactor} is built once from an
 * environment and replaces, in any text:
 *
 * - the values of that environment, except the public ones ({@link isPublicEnvVar});
 * - private key blocks (PEM, OpenSSH) and bare key body lines (long random base64);
 * - URL credentials (`scheme://user:password@host`, `scheme://token@host`);
 * - common token shapes (`sk-…`, `ghp_…`, `github_pat_…`, `xoxb-…`, `hf_…`, `npm_…`,
 *   AWS access key ids, JWTs, `Bearer …` / `Basic …`);
 * - `name=value` / `"name": "value"` / `--name value` with a secret-looking name
 *   (`DB_PASS`, `password`, `client_secret`, `api_key`, `credentials` …).
 *
 * What it cannot see: a secret the model transforms (base64, split, reversed,
 * spelled out), an env value of 7 characters or less, and a random string that is
 * neither an env value nor in one of the shapes above (a password typed into the
 * goal without a `password:` in front of it).
 */

import { envForms, isPublicEnvVar, literalsMatcher, randomWord, REDACTED } from './secret-env.ts'

export { isPublicEnvVar, literalsMatcher, REDACTED } from './secret-env.ts'

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
