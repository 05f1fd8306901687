import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  createRedactor,
  isPublicEnvVar,
  literalsMatcher,
  preview,
  REDACTED,
  redactText,
  sanitize,
} from '../services/inspect/sanitize.ts'
import { ALNUM, ecPem, keyBody, keyLines, openSshKey, pieces, random, rsaPem } from './helpers/secret-values.ts'

// Planted before the first sanitize() of this file builds the default redactor from process.env.
const DEFAULT_ENV_SECRET = randomBytes(15).toString('base64url')
process.env.LOOPSTATE_TEST_PLANTED_CONFIG = DEFAULT_ENV_SECRET

describe('sanitize', () => {
  it('redacts string and object values under secret-looking keys, keeps counts', () => {
    const out = sanitize({
      apiKey: 'sk-live-1234567890abcdef',
      headers: { Authorization: 'Bearer abc', 'x-api-token': 'zzz' },
      db: { password: 'hunter2', secrets: { a: 1 } },
      usage: { inputTokens: 12, outputTokens: 3, maxTokens: 100 },
      hasKey: true,
      name: 'loop',
    })
    expect(out).toEqual({
      apiKey: REDACTED,
      headers: { Authorization: REDACTED, 'x-api-token': REDACTED },
      db: { password: REDACTED, secrets: REDACTED },
      usage: { inputTokens: 12, outputTokens: 3, maxTokens: 100 },
      hasKey: true,
      name: 'loop',
    })
  })

  it('redacts secrets written inline in text', () => {
    expect(redactText('API_KEY=sk-abcdefghijklmnopqrstuv\nPORT=80')).toBe(`API_KEY=${REDACTED}\nPORT=80`)
    expect(redactText('{"access_token": "abcd1234efgh"}')).toBe(`{"access_token": "${REDACTED}"}`)
    expect(redactText('curl -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x"')).toBe(
      `curl -H "Authorization: Bearer ${REDACTED}"`,
    )
    expect(redactText('use ghp_abcdefghijklmnopqrstuvwxyz0123 here')).toBe(`use ${REDACTED} here`)
    expect(redactText('maxTokens: 2000 and 40 tokens')).toBe('maxTokens: 2000 and 40 tokens')
    expect(redactText('plain text about a key')).toBe('plain text about a key')
  })

  it('cuts long strings to a preview that says how long they were', () => {
    const body = 'x'.repeat(5000)
    expect(preview(body)).toBe(`${'x'.repeat(200)}…(5000 chars)`)
    expect(preview('short')).toBe('short')
    expect(sanitize({ file: { content: body } }, { maxString: 50 })).toEqual({ file: { content: `${'x'.repeat(50)}…(5000 chars)` } })
  })

  it('shortens chat transcripts to their last messages', () => {
    const messages = Array.from({ length: 10 }, (_, i) => ({ role: 'user', content: `m${i}` }))
    const out = sanitize({ journal: { messages, running: [] } }) as { journal: { messages: { content: string }[] } }
    expect(out.journal.messages.map((m) => m.content)).toEqual(['…(7 earlier messages)', 'm7', 'm8', 'm9'])
  })

  it('is idempotent', () => {
    const value = {
      token: 'abc',
      text: `API_KEY=sk-abcdefghijklmnopqrstuv ${'y'.repeat(1000)}`,
      journal: { messages: Array.from({ length: 9 }, (_, i) => ({ role: 'tool', content: 'z'.repeat(300 + i) })) },
    }
    const once = sanitize(value)
    expect(sanitize(once)).toEqual(once)
  })

  it('copies: cycles, functions, errors, toJSON and depth are handled', () => {
    const a: Record<string, unknown> = { n: 1, f: () => 1, err: new Error('boom'), when: new Date(0) }
    a.self = a
    a.ref = { toJSON: () => ({ id: 'child' }) }
    expect(sanitize(a)).toEqual({
      n: 1,
      err: { name: 'Error', message: 'boom' },
      when: '1970-01-01T00:00:00.000Z',
      self: '[circular]',
      ref: { id: 'child' },
    })
    let deep: unknown = 'leaf'
    for (let i = 0; i < 20; i++) deep = { d: deep }
    expect(JSON.stringify(sanitize(deep, { maxDepth: 3 }))).toBe('{"d":{"d":{"d":"[depth]"}}}')
    const original = { apiKey: 'secret-value' }
    sanitize(original)
    expect(original.apiKey).toBe('secret-value')
  })

  it('keeps long arrays short', () => {
    expect(sanitize(Array.from({ length: 5 }, (_, i) => i), { maxItems: 2 })).toEqual([0, 1, '…(3 more)'])
  })
})

// ---------------------------------------------------------------- value-based redaction
// Every secret below is generated per run (test/helpers/secret-values.ts): no test can pass by knowing a value.

describe('redaction by value: the environment', () => {
  const foo = random(20)
  const dbPass = `p4ss-${random(14)}`
  const quoted = `a"b\\c${random(10)}`
  const env = {
    FOO_CONFIG: foo,
    DB_PASS: dbPass,
    DB_PIN_PASS: String(10_000_000 + (randomBytes(3).readUIntBE(0, 3) % 89_999_999)), // numeric, but a secret name
    QUOTED_VALUE: quoted,
    MULTILINE: `first ${random(12)}\nsecond ${random(12)}`,
    // public
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: '/home/alice',
    PWD: '/work/projects/demo',
    DATA_DIR: '/srv/loopstate/data',
    PYTHONPATH: '/opt/lib/python:/opt/site',
    npm_package_name: 'loopstate',
    npm_lifecycle_script: 'vitest run test/inspect-sanitize.test.ts',
    LANG: 'en_US.UTF-8',
    LC_ALL: 'en_US.UTF-8',
    XDG_RUNTIME_DIR: '/run/user/1000',
    NODE_ENV: 'production',
    RAILS_ENV: 'production',
    DEBIAN_FRONTEND: 'noninteractive',
    BUILD_NUMBER: '1700000000',
    NODE_VERSION: '20.19.4',
    OLLAMA_HOST: 'http://127.0.0.1:11434',
    PROXY_ORIGIN: 'http://proxy.internal:3128',
    SHORT: 'Ab1234z',
    CI: 'true',
    EMPTY: '',
  }
  const redactor = createRedactor({ env })
  const r = (text: string) => redactor.redact(text)

  it('redacts every non-public value wherever it is, in any text', () => {
    const text = `config=${foo}; the password is ${dbPass}, pin ${env.DB_PIN_PASS}, url https://x.test/?q=${foo}&y=1 (${foo})`
    const out = r(text)
    for (const secret of [foo, dbPass, env.DB_PIN_PASS]) expect(out).not.toContain(secret)
    expect(out).toBe(`config=${REDACTED}; the password is ${REDACTED}, pin ${REDACTED}, url https://x.test/?q=${REDACTED}&y=1 (${REDACTED})`)
    // inside a JSON string (tool arguments sent as text), inside a URL, multi-line values
    const json = JSON.stringify({ content: `value: ${quoted}\n${env.MULTILINE}` })
    expect(r(json)).not.toContain(JSON.stringify(quoted).slice(1, -1))
    expect(r(json)).not.toContain(JSON.stringify(env.MULTILINE).slice(1, -1))
    expect(r(`q=${encodeURIComponent(quoted)}`)).toBe(`q=${REDACTED}`)
    expect(r(`x\n${env.MULTILINE}\ny`)).toBe(`x\n${REDACTED}\ny`)
  })

  it('keeps public values: paths, locale, npm, numbers, origins, settings words, short values', () => {
    const text = [
      'loop loopstate completed in /work/projects/demo/src (data /srv/loopstate/data/loops, home /home/alice)',
      'PATH=/usr/local/bin:/usr/bin:/bin LANG=en_US.UTF-8 /run/user/1000 /opt/lib/python:/opt/site',
      'NODE_ENV=production DEBIAN_FRONTEND=noninteractive build 1700000000 node 20.19.4 true',
      'ollama at http://127.0.0.1:11434 via http://proxy.internal:3128, script: vitest run test/inspect-sanitize.test.ts',
      'short Ab1234z',
    ].join('\n')
    expect(r(text)).toBe(text)
  })

  it('decides what is public by name, prefix and shape; a secret-looking name wins over the shape', () => {
    expect(isPublicEnvVar('HOME', '/home/alice')).toBe(true)
    expect(isPublicEnvVar('npm_package_name', 'loopstate-with-a-long-name')).toBe(true)
    expect(isPublicEnvVar('npm_config__authToken', 'Zx9' + random(30))).toBe(false)
    expect(isPublicEnvVar('NPM_TOKEN', `npm_${random(36)}`)).toBe(false)
    expect(isPublicEnvVar('LC_CTYPE', 'C.UTF-8-extra')).toBe(true)
    expect(isPublicEnvVar('SOURCE_DATE_EPOCH', '1700000000')).toBe(true)
    expect(isPublicEnvVar('DB_PASS', '12345678')).toBe(false)
    expect(isPublicEnvVar('SSL_CERT_FILE', '/etc/ssl/certs/ca-certificates.crt')).toBe(true)
    expect(isPublicEnvVar('GITHUB_TOKEN_FILE', '/run/secrets/github-token')).toBe(false)
    expect(isPublicEnvVar('FOO_CONFIG', random(20))).toBe(false)
    // a random value that happens to start with a slash is no path
    expect(isPublicEnvVar('FOO_CONFIG', `/${random(8, 'abcdefgh')}9${random(6, 'ABCDEFGH')}x`)).toBe(false)
    expect(isPublicEnvVar('HOOK_URL', `https://hooks.example.com/services/${random(24)}`)).toBe(false)
    expect(isPublicEnvVar('WHATEVER', 'Ab1234z')).toBe(true) // 7 characters: too short to match safely
    expect(createRedactor({ env }).envValues).toBeGreaterThanOrEqual(5)
    expect(createRedactor({ env: { HOME: '/root', npm_package_name: 'loopstate' } }).envValues).toBe(0)
  })

  it('a loop name equal to npm_package_name goes through', () => {
    const out = sanitize({ name: 'loopstate', task: { title: 'loopstate' }, text: 'loop loopstate: iteration 2' }, { redactor })
    expect(out).toEqual({ name: 'loopstate', task: { title: 'loopstate' }, text: 'loop loopstate: iteration 2' })
  })

  it('matches the longest value where several start at the same place', () => {
    const short = random(10)
    const long = `${short}${random(10)}`
    const rr = createRedactor({ env: { A_VALUE: short, B_VALUE: long } })
    expect(rr.redact(`<${long}> <${short}>`)).toBe(`<${REDACTED}> <${REDACTED}>`)
  })

  it('compiles any number of values into one matcher that finds what a search for each would', () => {
    const values = Array.from({ length: 300 }, (_, i) => random(8 + (i % 30)))
    values.push(values[0]! + 'tail-of-a-longer-one', values[1]!.slice(0, 9))
    const matcher = literalsMatcher(values)!
    const text = Array.from({ length: 400 }, (_, i) => (i % 3 === 0 ? values[(i * 7) % values.length] : random(12, 'xyz -.'))).join(' ')
    let naive = text
    for (const v of [...values].sort((a, b) => b.length - a.length)) naive = naive.split(v).join('\u0000')
    expect(text.replace(matcher, '\u0000')).toBe(naive)
    expect(literalsMatcher([])).toBeNull()
  })

  it('sanitize uses the redactor everywhere: values, keys, errors, transcripts', () => {
    const out = sanitize(
      {
        goal: `use ${foo}`,
        [foo]: 1,
        error: new Error(`connect failed with ${dbPass}`),
        journal: { messages: [{ role: 'tool', content: `DB ok ${dbPass}` }] },
      },
      { redactor },
    )
    expect(JSON.stringify(out)).not.toMatch(new RegExp(`${foo}|${dbPass}`))
    expect(out).toEqual({
      goal: `use ${REDACTED}`,
      [REDACTED]: 1,
      error: { name: 'Error', message: `connect failed with ${REDACTED}` },
      journal: { messages: [{ role: 'tool', content: `DB ok ${REDACTED}` }] },
    })
  })
})

describe('redaction by value: shapes', () => {
  const r = (text: string) => createRedactor({ env: {} }).redact(text)

  it('URL credentials: the password (or a token as user) goes, scheme, user and host stay', () => {
    const pw = random(12)
    expect(r(`DATABASE_URL postgres://app:${pw}@db.internal:5432/app`)).toBe(`DATABASE_URL postgres://app:${REDACTED}@db.internal:5432/app`)
    expect(r(`"url": "mysql://root:${pw}@localhost/x"`)).toBe(`"url": "mysql://root:${REDACTED}@localhost/x"`)
    expect(r(`redis://:${pw}@cache:6379`)).toBe(`redis://:${REDACTED}@cache:6379`)
    expect(r(`git clone https://${random(24)}@github.com/o/r.git`)).toBe(`git clone https://${REDACTED}@github.com/o/r.git`)
    expect(r(`git clone https://p@ss:${pw}@host/r`)).toBe(`git clone https://p@ss:${REDACTED}@host/r`.replace('p@ss:', 'p@ss:'))
    // no credentials: nothing to do
    for (const plain of ['ssh://git@github.com/o/r.git', 'https://deploy@example.com/x', 'see http://127.0.0.1:4747/ or mailto:me@example.com'])
      expect(r(plain)).toBe(plain)
  })

  it('private key blocks, PEM and OpenSSH, whole, also inside JSON strings and without their END line', () => {
    for (const pem of [rsaPem('pkcs1'), rsaPem('pkcs8'), ecPem(), openSshKey()].map((k) => k.trimEnd())) {
      const body = keyBody(pem)
      const text = `Saved the key:\n${pem}\nDone.`
      expect(r(text)).toBe(`Saved the key:\n${REDACTED}\nDone.`)
      const json = r(JSON.stringify({ path: 'id_rsa', content: pem }))
      expect(json).toBe(JSON.stringify({ path: 'id_rsa', content: REDACTED }))
      const cut = r(`head:\n${pem.split('\n').slice(0, 6).join('\n')}`)
      expect(pieces(cut, body, 12)).toEqual([])
      expect(cut.startsWith('head:\n')).toBe(true)
    }
  })

  it('bare key body lines (read_file of lines 2-5 of a key file), but not SHAs, identifiers or paths', () => {
    for (const pem of [rsaPem('pkcs8'), openSshKey(), ecPem()]) {
      const lines = keyLines(pem)
      const middle = lines.slice(1, 5).join('\n')
      const out = r(`lines 2-5:\n${middle}\n[lines 2-5 of 27 shown]`)
      expect(pieces(out, middle.replace(/\n/g, ''), 12)).toEqual([])
      expect(out).toContain('[lines 2-5 of 27 shown]')
      // the last lines, with the short tail
      const tail = lines.slice(-2).join('\n')
      expect(pieces(r(tail), tail.replace(/\n/g, ''), 12)).toEqual([])
    }
    const ordinary = [
      'commit 3f786850e387550fdab836ed7e6dc881de23001b (HEAD -> main)',
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'import { getElementsByClassNameForVersion2 } from "./dom"',
      'HTMLInputElementAttributesForAccessibility2021Draft',
      'open /home/user/Projects/MyApp2/src/components/Button',
      'src/services/inspect/viewer/components/StateChart2View',
      'const value = computeTheAnswer(firstArgument, secondArgument) + 2',
    ].join('\n')
    expect(r(ordinary)).toBe(ordinary)
  })

  it('provider tokens, AWS keys, JWTs, Bearer and Basic credentials', () => {
    const tokens = [
      `sk-${random(48)}`,
      `sk-proj-${random(40)}_${random(20)}`,
      `sk-ant-api03-${random(60)}-${random(20)}AA`,
      `ghp_${random(36)}`,
      `gho_${random(36)}`,
      `ghu_${random(36)}`,
      `ghs_${random(36)}`,
      `ghr_${random(36)}`,
      `github_pat_${random(22)}_${random(59)}`,
      `xoxb-${random(12, '0123456789')}-${random(13, '0123456789')}-${random(24)}`,
      `xoxp-${random(12, '0123456789')}-${random(24)}`,
      `xoxa-2-${random(30)}`,
      `hf_${random(34)}`,
      `npm_${random(36)}`,
      `AKIA${random(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`,
      `ASIA${random(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`,
      `eyJ${random(20)}.eyJ${random(40)}.${random(43)}`,
    ]
    for (const token of tokens) {
      expect(r(`use ${token} now`), token).toBe(`use ${REDACTED} now`)
      expect(r(`"${token}"`), token).toBe(`"${REDACTED}"`)
    }
    const awsSecret = random(40, `${ALNUM}+/`)
    expect(pieces(r(`aws_secret_access_key = ${awsSecret}\nregion = eu-west-1`), awsSecret)).toEqual([])
    expect(r(`aws_secret_access_key = ${awsSecret}\nregion = eu-west-1`)).toBe(`aws_secret_access_key = ${REDACTED}\nregion = eu-west-1`)
    const bearer = random(32, `${ALNUM}._-`)
    expect(r(`curl -H 'Authorization: Bearer ${bearer}' https://api.test`)).toBe(`curl -H 'Authorization: Bearer ${REDACTED}' https://api.test`)
    const basic = Buffer.from(`admin:${random(12)}`).toString('base64')
    expect(r(`Authorization: Basic ${basic}`)).toBe(`Authorization: Basic ${REDACTED}`)
    // prose about them is not a credential
    const prose = 'Basic authentication is weak; Bearer tokens expire. The sk-learn docs, task-list, ghp tokens, hf_model_name, npm_package_name.'
    expect(r(prose)).toBe(prose)
  })

  it('name=value shapes with a secret-looking name; counts and ordinary words stay', () => {
    const v = () => random(14)
    const cases: [string, string][] = []
    for (const name of ['DB_PASS', 'MYSQL_PWD', 'password', 'PGPASSWORD', 'passwd', 'client_secret', 'GITHUB_TOKEN', 'api_key', 'apiKey', 'x-api-key', 'credentials', 'AWS_SECRET_ACCESS_KEY', '_auth', 'STRIPE_KEY', 'access_token']) {
      const value = v()
      cases.push([`${name}=${value}`, `${name}=${REDACTED}`])
      cases.push([`${name}: ${value}`, `${name}: ${REDACTED}`])
      cases.push([`"${name}": "${value}"`, `"${name}": "${REDACTED}"`])
    }
    const spaced = `correct horse ${random(6)} staple`
    cases.push([`{"password": "${spaced}", "user": "bob"}`, `{"password": "${REDACTED}", "user": "bob"}`])
    cases.push([JSON.stringify(JSON.stringify({ password: spaced })), JSON.stringify(JSON.stringify({ password: REDACTED }))])
    const flag = v()
    cases.push([`mysql -u root --password ${flag} db`, `mysql -u root --password ${REDACTED} db`])
    cases.push([`mysql -u root --password=${flag} db`, `mysql -u root --password=${REDACTED} db`])
    cases.push([`const DB_PASS = '${flag}'`, `const DB_PASS = '${REDACTED}'`])
    for (const [input, expected] of cases) expect(r(input), input).toBe(expected)

    const ordinary = [
      'passes: 3, failures: 0',
      'maxTokens: 200, inputTokens: 1234, tokens: 40, tokenCount: 512',
      'tokenizer: cl100k_base',
      'the key: press Enter; keys: 4',
      'PWD=/work/main OLDPWD=/work',
      'interface Login { password: string; token?: string | null }',
      'pass: first, pass=second',
      'fetch(url, { credentials: "include" })',
      'password: ${DB_PASSWORD}',
      'DB_PASS=[redacted] and password: [redacted]',
    ].join('\n')
    expect(r(ordinary)).toBe(ordinary)
  })
})

describe('sanitize with value-based redaction', () => {
  it('redacts before the preview cut: a secret across the cut leaves no piece', () => {
    const envSecret = random(30)
    const redactor = createRedactor({ env: { FOO_CONFIG: envSecret } })
    const token = `ghp_${random(36)}`
    for (const secret of [envSecret, token]) {
      for (const at of [170, 185, 195, 199, 200]) {
        const text = `${'a'.repeat(at - 1)} ${secret}${' b'.repeat(500)}`
        const out = sanitize({ text }, { redactor }).text
        expect(out, `at ${at}`).toMatch(/…\(\d+ chars\)$/)
        expect(pieces(out, secret, 4), `at ${at}`).toEqual([])
        expect(sanitize({ text: out }, { redactor }).text).toBe(out)
      }
    }
    // the cut never splits a [redacted]
    for (let at = 185; at <= 200; at++) {
      const out = sanitize(`${'a'.repeat(at)}${envSecret}${'c'.repeat(500)}`, { redactor })
      expect(out).toMatch(/^a+\[redacted\](c*)…\(\d+ chars\)$/)
    }
  })

  it('is idempotent on a stream full of secrets', () => {
    const foo = random(20)
    const redactor = createRedactor({ env: { FOO_CONFIG: foo, DB_PASS: random(16) } })
    const pem = rsaPem('pkcs8')
    const value = {
      goal: `Deploy with ${foo} and postgres://u:${random(10)}@h/db`,
      args: { path: 'k.pem', content: pem, password: random(10), note: JSON.stringify({ token: random(20), pem }) },
      reply: `Done: ghp_${random(36)} eyJ${random(20)}.eyJ${random(30)}.${random(20)} Bearer ${random(30)}`,
      lines: pem.split('\n').slice(1, 5).join('\n') + `\n${'x'.repeat(300)}`,
      messages: Array.from({ length: 6 }, (_, i) => ({ role: 'tool', content: `${i} ${foo} ${'y'.repeat(200 + i)} sk-${random(30)}` })),
    }
    for (const maxString of [200, 60, 4000]) {
      const once = sanitize(value, { redactor, maxString })
      expect(sanitize(once, { redactor, maxString })).toEqual(once)
      expect(JSON.stringify(once)).not.toContain(foo)
    }
  })

  it('without a redactor, uses one built from process.env', () => {
    const out = sanitize({ text: `echo ${DEFAULT_ENV_SECRET}` })
    expect(out).toEqual({ text: `echo ${REDACTED}` })
    expect(redactText(`x ${DEFAULT_ENV_SECRET} y`)).toBe(`x ${REDACTED} y`)
  })
})
