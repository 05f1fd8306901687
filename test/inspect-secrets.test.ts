/**
 * "Secrets never leave through the inspector", end to end: the real CLI
 * (`node scripts/loopstate.js run … --inspect ws://127.0.0.1:PORT`, from source) runs
 * scripted loops with secrets planted everywhere a loop carries text: its environment,
 * the goal, the plan, tool arguments (objects and JSON text), tool results (files read
 * back, a command printing an env value), the models' replies and a finding. A
 * WebSocket server of the test captures every frame. None of the secrets may be in
 * them; the non-secret text next to them must be.
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocketServer, type WebSocket } from 'ws'
import { MemoryStore } from '../adapters/memory-store.ts'
import { createEngine } from '../services/engine.ts'
import { createRedactor } from '../services/inspect/sanitize.ts'
import { createStatelyInspect, sanitizeInspectionEvent } from '../services/inspect/stately.ts'
import { ALNUM, keyBody, openSshKey, pieces, random, rsaPem } from './helpers/secret-values.ts'

const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))

interface Frame {
  type: string
  sessionId: string
  parentId?: string
  snapshot?: { context?: Record<string, unknown> }
  event?: any
}

/** A WebSocket inspector on 127.0.0.1 that keeps every frame it is sent. */
async function captureServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((r) => wss.once('listening', r))
  const raw: string[] = []
  const closed: Promise<void>[] = []
  wss.on('connection', (ws: WebSocket) => {
    closed.push(new Promise((r) => ws.once('close', () => r())))
    ws.on('message', (data) => raw.push(data.toString()))
  })
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    raw,
    /** Every connection made so far has closed (the CLI closes its socket after the last frame). */
    settled: async () => {
      expect(closed.length, 'the CLI connected to the inspector').toBeGreaterThan(0)
      await Promise.all(closed)
    },
    close: () => new Promise((r) => wss.close(r)),
  }
}

/** Every string of a parsed frame (keys and values), so that JSON escaping cannot hide a leak. */
function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value)
  else if (Array.isArray(value)) for (const v of value) strings(v, out)
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.push(k)
      strings(v, out)
    }
  }
  return out
}

let dir: string
let server: Awaited<ReturnType<typeof captureServer>>

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-secrets-'))
  server = await captureServer()
})
afterEach(async () => {
  await server.close()
  await rm(dir, { recursive: true, force: true })
})

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, ...args], { cwd: dir, env, timeout: 90_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    ),
  )
}

/** The child's environment: the test's, the planted variables, the source CLI (the dist bundle may be stale). */
function childEnv(planted: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, LOOPSTATE_DATA: undefined, LOOPSTATE_FROM_SOURCE: '1', ...planted }
}

/** Asserts that no secret (and no 12-character piece of a key body) is in the frames, raw or decoded. */
function expectNoSecrets(raw: string[], secrets: Record<string, string>, keys: Record<string, string>) {
  const wire = raw.join('\n')
  const decoded = raw.flatMap((f) => strings(JSON.parse(f))).join('\n')
  const leaked = Object.entries(secrets).filter(([, v]) => wire.includes(v) || decoded.includes(v))
  expect(leaked.map(([k]) => k), 'secrets found in the inspector stream').toEqual([])
  for (const [name, pem] of Object.entries(keys)) {
    const body = keyBody(pem)
    expect(pieces(decoded, body, 12), `a piece of ${name}`).toEqual([])
    expect(pieces(wire, body, 12), `a piece of ${name}`).toEqual([])
  }
}

describe('inspector stream from the CLI', () => {
  it('run --goal: no planted secret leaves (env, goal, tool arguments and results, command output, replies, findings)', async () => {
    const loopName = 'secret-sandbox-check'
    const env = {
      OPENAI_API_KEY: `sk-proj-${random(40)}`,
      ANTHROPIC_API_KEY: `sk-ant-api03-${random(50)}`,
      DB_PASS: `Pw-${random(17)}`,
      FOO_CONFIG: random(20),
      GITHUB_TOKEN: `ghp_${random(36)}`,
      DATABASE_URL: `postgres://svc:${random(14)}@db.internal:5432/svc`,
      // public: the loop's name is npm's package name, and must stay readable
      npm_package_name: loopName,
    }
    const s = {
      goalPassword: random(15),
      goalUrlToken: random(18),
      filePgPassword: random(16),
      fileAdminPassword: random(18),
      argPassword: random(16),
      jsonPassword: random(16),
      jsonApiKey: random(24),
      slack: `xoxb-${random(12, '0123456789')}-${random(13, '0123456789')}-${random(24)}`,
      gho: `gho_${random(36)}`,
      githubPat: `github_pat_${random(22)}_${random(59)}`,
      hf: `hf_${random(34)}`,
      npm: `npm_${random(36)}`,
      jwt: `eyJ${random(24)}.eyJ${random(48)}.${random(43)}`,
      awsKeyId: `AKIA${random(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`,
      awsSecret: random(40, `${ALNUM}+/`),
      bearer: random(32),
      findingToken: `ghs_${random(36)}`,
      auditorKey: `sk-ant-api03-${random(48)}`,
    }
    const keys = { rsa: rsaPem('pkcs8'), openssh: openSshKey() }

    // Each secret is planted after a tag, early enough in its text to be inside the 200-character preview:
    // the stream must show the tag followed by the redaction (so that no secret "passes" by being cut away).
    const expected: string[] = []
    const plant = (tag: string, text: string, redacted: string) => {
      expected.push(`${tag} ${redacted}`)
      return `${tag} ${text}`
    }
    const R = '[redacted]'
    const goal = [
      'Set up the settings file (VISIBLE-GOAL-MARKER).',
      plant('[g1]', env.FOO_CONFIG, R),
      plant('[g2]', `admin password: ${s.goalPassword};`, `admin password: ${R};`),
      plant('[g3]', `https://deploy:${s.goalUrlToken}@git.internal/app.git`, `https://deploy:${R}@git.internal/app.git`),
      plant('[g4]', env.OPENAI_API_KEY, R),
    ].join(' ')
    const settings = [
      '# VISIBLE-FILE-MARKER',
      `DATABASE_URL=postgres://app:${s.filePgPassword}@db.internal:5432/app`,
      `ADMIN_PASSWORD=${s.fileAdminPassword}`,
      '',
    ].join('\n')
    const login = JSON.stringify({ user: 'VISIBLE-JSON-USER', password: s.jsonPassword, api_key: s.jsonApiKey }, null, 2)
    const command = basename(process.execPath) === 'node' ? 'node print.js' : `'${process.execPath}' print.js`
    const scenario = {
      coder: [
        {
          type: 'tool_calls',
          text: `Writing the files. ${plant('[c1]', s.slack, R)} ${plant('[c2]', s.gho, R)}`,
          calls: [
            { name: 'write_file', arguments: { path: 'settings.env', content: settings } },
            { name: 'write_file', arguments: { path: 'id_rsa', content: keys.rsa } },
            { name: 'write_file', arguments: { path: 'id_openssh', content: keys.openssh } },
            // a JSON text as an argument, and a secret field of the arguments themselves
            { name: 'write_file', arguments: { path: 'login.json', content: login, password: s.argPassword } },
          ],
        },
        {
          type: 'tool_calls',
          text: `A script that prints the password. ${plant('[c3]', s.githubPat, R)} ${plant('[c4]', s.hf, R)}`,
          calls: [
            {
              name: 'write_file',
              arguments: { path: 'print.js', content: "console.log('DB_PASS is ' + process.env.DB_PASS)\nconsole.log('VISIBLE-COMMAND-MARKER')\n" },
            },
          ],
        },
        {
          type: 'tool_calls',
          text: `Running it. ${plant('[c5]', s.npm, R)} ${plant('[c6]', s.jwt, R)}`,
          calls: [{ name: 'run_command', arguments: { command } }],
        },
        {
          type: 'tool_calls',
          text: `${plant('[c7]', s.awsKeyId, R)} ${plant('[c8]', `aws_secret_access_key=${s.awsSecret}`, `aws_secret_access_key=${R}`)}`,
          calls: [{ name: 'list_files', arguments: { path: '.' } }],
        },
        {
          type: 'text',
          text: [
            'Done (VISIBLE-REPLY-MARKER).',
            plant('[c9]', `curl -H "Authorization: Bearer ${s.bearer}"`, `curl -H "Authorization: Bearer ${R}"`),
            plant('[c10]', env.FOO_CONFIG, R),
            plant('[c11]', env.DB_PASS, R),
            plant('[c12]', env.GITHUB_TOKEN, R),
          ].join(' '),
        },
      ],
      auditor: [
        {
          type: 'tool_calls',
          calls: [
            { name: 'read_file', arguments: { path: 'settings.env' } },
            { name: 'read_file', arguments: { path: 'login.json' } },
            // key lines without their header: lines 2-5 of the files
            { name: 'read_file', arguments: { path: 'id_rsa', offset: 2, limit: 4 } },
            { name: 'read_file', arguments: { path: 'id_openssh', offset: 2, limit: 4 } },
            { name: 'read_file', arguments: { path: 'id_rsa' } },
          ],
        },
        {
          type: 'tool_calls',
          calls: [
            {
              name: 'report_finding',
              arguments: { file: 'settings.env', line: 2, severity: 'warning', message: `VISIBLE-FINDING-MARKER: ${plant('[a1]', s.findingToken, R)}` },
            },
            {
              name: 'report_finding',
              arguments: { file: 'settings.env', line: 3, severity: 'warning', message: plant('[a2]', env.ANTHROPIC_API_KEY, R) },
            },
          ],
        },
        {
          type: 'text',
          text: `Two warnings (VISIBLE-AUDIT-MARKER). ${plant('[a3]', s.auditorKey, R)} ${plant('[a4]', env.DATABASE_URL, R)}`,
        },
      ],
    }
    const workspace = join(dir, 'ws')
    await mkdir(workspace)
    await writeFile(join(dir, 'scenario.json'), JSON.stringify(scenario))
    // DB_PASS is the one variable commands get beyond PATH/HOME/LANG
    const runCommand = { enabled: true, allow: [process.execPath], env: ['DB_PASS'] }
    await writeFile(join(dir, 'config.json'), JSON.stringify({ runCommand }))

    const result = await cli(
      ['run', '--goal', goal, '--model', `scripted:${join(dir, 'scenario.json')}`, '--config', join(dir, 'config.json'),
        '--workspace', workspace, '--data', join(dir, 'data'), '--name', loopName, '--inspect', server.url],
      childEnv(env),
    )
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain(`loop ${loopName} completed`)
    await server.settled()

    // The capture holds the loop: its actor, its sessions, the tool calls and their results.
    const frames = server.raw.map((f) => JSON.parse(f) as Frame)
    const loop = frames.find((f) => f.type === '@xstate.actor' && f.snapshot?.context?.name === loopName)
    expect(loop, 'the loop actor registered under its (public) name').toBeDefined()
    expect(loop!.snapshot!.context!.workspace).toBe(workspace)
    expect(frames.filter((f) => f.type === '@xstate.actor' && f.parentId === loop!.sessionId).length).toBeGreaterThanOrEqual(2)
    const calls = frames
      .filter((f) => f.event?.type === 'session.turn')
      .flatMap((f) => (f.event as { message: { toolCalls: { name: string; arguments: Record<string, unknown> }[] } }).message.toolCalls)
    const written = (path: string) => calls.find((c) => c.name === 'write_file' && c.arguments.path === path)!.arguments
    // key blocks go whole, the secret field of the arguments too; the JSON text keeps its shape
    expect(written('id_rsa').content).toBe(`${R}\n`)
    expect(written('id_openssh').content).toBe(`${R}\n`)
    expect(written('login.json').password).toBe(R)
    expect(written('login.json').content).toBe(JSON.stringify({ user: 'VISIBLE-JSON-USER', password: R, api_key: R }, null, 2))
    const results = frames.filter((f) => f.event?.type === 'session.tool.finished').map((f) => f.event as { name: string; content: string })
    expect(results.map((f) => f.name)).toEqual(expect.arrayContaining(['write_file', 'run_command', 'read_file', 'report_finding']))
    // the command ran and printed the variable's value, which arrives redacted
    const ran = results.find((f) => f.name === 'run_command')!
    expect(ran.content).toContain(`DB_PASS is ${R}\nVISIBLE-COMMAND-MARKER`)
    const reads = results.filter((f) => f.name === 'read_file').map((f) => f.content)
    expect(reads).toContain(`# VISIBLE-FILE-MARKER\nDATABASE_URL=postgres://app:${R}@db.internal:5432/app\nADMIN_PASSWORD=${R}`)
    expect(reads).toContain(JSON.stringify({ user: 'VISIBLE-JSON-USER', password: R, api_key: R }, null, 2))
    expect(reads).toContain(R) // the whole id_rsa
    // lines 2-5 of the key files: bare key lines, each redacted
    expect(new Set(reads.filter((c) => /^(\[redacted\]\n){4}\[lines 2-5 of \d+ shown/.test(c))).size).toBe(2)
    const last = frames.filter((f) => f.type === '@xstate.snapshot' && f.sessionId === loop!.sessionId).at(-1)!
    expect((last.snapshot!.context!.findings as { message: string }[]).map((f) => f.message)).toEqual([
      `VISIBLE-FINDING-MARKER: [a1] ${R}`,
      `[a2] ${R}`,
    ])

    const wire = server.raw.join('\n')
    const decoded = server.raw.flatMap((f) => strings(JSON.parse(f))).join('\n')
    for (const visible of ['VISIBLE-GOAL-MARKER', 'VISIBLE-REPLY-MARKER', 'VISIBLE-AUDIT-MARKER', 'Writing the files.', `"name":"${loopName}"`]) {
      expect(wire, visible).toContain(visible)
    }
    const missing = expected.filter((e) => !decoded.includes(e))
    expect(missing, 'planted places that did not arrive redacted').toEqual([])

    const secrets = { ...env, ...s } as Record<string, string>
    delete secrets.npm_package_name
    expect(Object.keys(secrets).length + Object.keys(keys).length).toBeGreaterThanOrEqual(24)
    expectNoSecrets(server.raw, secrets, keys)
  }, 120_000)

  it('run <plan.md>: the plan, its sections and the replies about them carry no secret', async () => {
    const env = { DB_PASS: `Pw-${random(17)}`, FOO_CONFIG: random(20), SIGNING_SECRET: random(32, `${ALNUM}+/=`) }
    const s = {
      mysqlPassword: random(15),
      smtpPassword: random(16),
      slack: `xoxp-${random(12, '0123456789')}-${random(24)}`,
      hf: `hf_${random(34)}`,
      planKey: `sk-${random(48)}`,
      basic: Buffer.from(`admin:${random(14)}`).toString('base64'),
      summaryToken: `ghr_${random(36)}`,
    }
    const keys = { openssh: openSshKey() }
    const expected: string[] = []
    const plant = (tag: string, text: string, redacted: string) => {
      expected.push(`${tag} ${redacted}`)
      return `${tag} ${text}`
    }
    const R = '[redacted]'
    const plan = [
      '# Rotate the credentials',
      '',
      `VISIBLE-PLAN-MARKER. ${plant('[p1]', `mysql://root:${s.mysqlPassword}@db.internal/app`, `mysql://root:${R}@db.internal/app`)}`,
      plant('[p2]', `SMTP_PASSWORD: ${s.smtpPassword}.`, `SMTP_PASSWORD: ${R}.`),
      '<!-- section -->',
      '## Chat',
      '',
      `${plant('[p3]', s.slack, R)} ${plant('[p4]', s.planKey, R)} ${plant('[p5]', env.FOO_CONFIG, R)}`,
      '<!-- section -->',
      '## Deploy key',
      '',
      plant('[p6]', keys.openssh.trimEnd(), R),
      '<!-- section -->',
      '## Signing',
      '',
      `${plant('[p7]', env.SIGNING_SECRET, R)} ${plant('[p8]', `Authorization: Basic ${s.basic}`, `Authorization: Basic ${R}`)} ${plant('[p9]', env.DB_PASS, R)}`,
    ].join('\n')
    await writeFile(join(dir, 'plan.md'), plan)
    const scenario = {
      coder: ['Chat', 'Deploy key', 'Signing'].map((section, i) => ({
        type: 'text',
        text: `${section} rotated (VISIBLE-CODER-MARKER). ${plant(`[r${i}]`, i === 0 ? s.hf : env.SIGNING_SECRET, R)}`,
      })),
      auditor: [
        ...['Chat', 'Deploy key', 'Signing'].map((section, i) => ({
          type: 'text',
          text: `${section} is fine (VISIBLE-AUDITOR-MARKER). ${plant(`[q${i}]`, `smtp_password=${s.smtpPassword}`, `smtp_password=${R}`)}\n\n<!-- summary -->\n### Done\n- ${plant(`[m${i}]`, s.summaryToken, R)}\n### Deviations\nNone.\n### Follow-ups\nNone.\n<!-- /summary -->`,
        })),
        { type: 'text', text: `Final audit (VISIBLE-FINAL-MARKER): ${plant('[f1]', env.DB_PASS, R)}` },
      ],
    }
    await writeFile(join(dir, 'scenario.json'), JSON.stringify(scenario))
    const workspace = join(dir, 'ws')
    await mkdir(workspace)

    const result = await cli(
      ['run', join(dir, 'plan.md'), '--model', `scripted:${join(dir, 'scenario.json')}`, '--workspace', workspace,
        '--data', join(dir, 'data'), '--name', 'rotate', '--inspect', server.url],
      childEnv(env),
    )
    expect(result.code, result.stderr + result.stdout).toBe(0)
    expect(result.stdout).toContain('loop rotate completed')
    await server.settled()

    const frames = server.raw.map((f) => JSON.parse(f) as Frame)
    const loop = frames.find((f) => f.type === '@xstate.actor' && f.snapshot?.context?.name === 'rotate')
    expect(loop, 'the loop actor registered').toBeDefined()
    const sections = loop!.snapshot!.context!.sections as { title: string; body: string }[]
    expect(sections.map((x) => x.title)).toEqual(['Chat', 'Deploy key', 'Signing'])
    expect(sections[1]!.body).toBe(`## Deploy key\n\n[p6] ${R}`)
    const decoded = server.raw.flatMap((f) => strings(JSON.parse(f))).join('\n')
    for (const visible of ['VISIBLE-PLAN-MARKER', 'VISIBLE-CODER-MARKER', 'VISIBLE-AUDITOR-MARKER', 'VISIBLE-FINAL-MARKER', 'Rotate the credentials']) {
      expect(decoded, visible).toContain(visible)
    }
    const missing = expected.filter((e) => !decoded.includes(e))
    expect(missing, 'planted places that did not arrive redacted').toEqual([])
    expectNoSecrets(server.raw, { ...env, ...s }, keys)
  }, 120_000)
})

describe('createStatelyInspect', () => {
  it('redacts the values of the env it is given (not only process.env) in every event of an engine', async () => {
    const env = { FOO_CONFIG: random(24), HOME: '/home/someone' }
    const scenario = join(dir, 'scenario.json')
    await writeFile(
      scenario,
      JSON.stringify({
        coder: [
          { type: 'tool_calls', text: `[e1] ${env.FOO_CONFIG}`, calls: [{ name: 'write_file', arguments: { path: 'c.txt', content: `[e2] ${env.FOO_CONFIG}` } }] },
          { type: 'text', text: `[e3] ${env.FOO_CONFIG}` },
        ],
        auditor: [{ type: 'text', text: `[e4] ${env.FOO_CONFIG} /home/someone/notes` }],
      }),
    )
    const workspace = join(dir, 'ws')
    await mkdir(workspace)
    const inspector = createStatelyInspect(server.url, { env })
    const engine = await createEngine({ store: new MemoryStore(), inspect: inspector.inspect, resume: false })
    try {
      const handle = await engine.start({ goal: `[e0] ${env.FOO_CONFIG}` }, { name: 'given-env', models: [`scripted:${scenario}`], workspace })
      expect((await handle.done).status).toBe('completed')
    } finally {
      await engine.close()
      await inspector.close()
    }
    await server.settled()
    const decoded = server.raw.flatMap((f) => strings(JSON.parse(f))).join('\n')
    expect(decoded).toContain('given-env')
    for (const tag of ['[e0]', '[e1]', '[e2]', '[e3]', '[e4]']) expect(decoded, tag).toContain(`${tag} [redacted]`)
    expect(decoded).toContain('/home/someone/notes')
    expect(server.raw.join('\n')).not.toContain(env.FOO_CONFIG)
  })

  it('sanitizeInspectionEvent: the fields around the snapshot are redacted too, and the definition stays JSON', () => {
    const secret = random(20)
    const redactor = createRedactor({ env: { FOO_CONFIG: secret } })
    const definition = JSON.stringify({ id: 'loop', states: { [`s-${secret}`]: { description: `uses ${secret}` } }, key: 'loop' })
    const out = sanitizeInspectionEvent(
      {
        type: '@xstate.actor',
        name: `actor-${secret}`,
        sessionId: 'x:1',
        parentId: undefined,
        rootId: 'x:0',
        id: 'e1',
        createdAt: '2026-01-01T00:00:00.000Z',
        _version: '0.7.2',
        definition,
        snapshot: { status: 'active', context: { note: secret } },
      } as never,
      { redactor },
    ) as unknown as Record<string, unknown>
    expect(JSON.stringify(out)).not.toContain(secret)
    expect(out.name).toBe('actor-[redacted]')
    expect(out.sessionId).toBe('x:1')
    expect(JSON.parse(out.definition as string)).toEqual({ id: 'loop', states: { 's-[redacted]': { description: 'uses [redacted]' } }, key: 'loop' })
    expect(out.snapshot).toEqual({ status: 'active', context: { note: '[redacted]' } })
  })
})
