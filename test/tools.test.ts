import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Role } from '../adapters/model-provider.ts'
import type { Finding, RunCommandConfig } from '../machines/loop.types.ts'
import { createFindingsLedger } from '../services/findings-tools.ts'
import { ToolError, type ToolContext } from '../services/tool-types.ts'
import { runTool, toolsFor } from '../services/tools.ts'
import { resolveInWorkspace } from '../services/sandbox.ts'

const NO_COMMANDS: RunCommandConfig = { enabled: false, allow: [], timeoutMs: 60_000, env: [], allowInlineCode: false }

let root: string
let ws: string
let outside: string

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'loopstate-tools-'))
  ws = path.join(root, 'ws')
  outside = path.join(root, 'outside')
  await mkdir(ws)
  await mkdir(outside)
  await writeFile(path.join(outside, 'secret.txt'), 'SECRET')
})

afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

function context(role: Role, opts: { runCommand?: RunCommandConfig; findings?: Finding[]; nextId?: number; signal?: AbortSignal } = {}) {
  const reported: Finding[] = []
  const resolved: string[] = []
  const ctx: ToolContext = {
    workspace: ws,
    dataDir: null,
    maxReadBytes: 1024 * 1024,
    role,
    findings: createFindingsLedger({
      findings: opts.findings ?? [],
      nextId: opts.nextId ?? 1,
      section: null,
      audit: 1,
      onReport: (f) => reported.push(f),
      onResolve: (id) => resolved.push(id),
    }),
    runCommand: opts.runCommand ?? NO_COMMANDS,
    signal: opts.signal ?? new AbortController().signal,
  }
  return { ctx, reported, resolved }
}

async function call(role: Role, name: string, args: Record<string, unknown>, runCommand = NO_COMMANDS) {
  const { ctx } = context(role, { runCommand })
  return runTool(toolsFor(role, runCommand), { name, arguments: args }, ctx)
}

const coder = (name: string, args: Record<string, unknown>) => call('coder', name, args)

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  )
}

describe('workspace tools', () => {
  it('does not run a call whose arguments the provider could not read, and says why', async () => {
    const { ctx } = context('coder')
    const call = { name: 'write_file', arguments: {}, argumentsError: 'not valid JSON (Unterminated string in JSON at position 20): {"path": "a.ts", "con' }
    const result = await runTool(toolsFor('coder', NO_COMMANDS), call, ctx)
    expect(result).toEqual({
      ok: false,
      content: `error: invalid arguments: ${call.argumentsError}; the call was not run. Call write_file again with its arguments as one JSON object.`,
    })
    expect(await readdir(ctx.workspace)).toEqual([])
  })

  it('writes, reads, edits and lists files', async () => {
    expect(await coder('write_file', { path: 'src/a.ts', content: 'const a = 1\nconst b = 2\n' })).toEqual({
      ok: true,
      content: 'wrote 24 bytes to src/a.ts',
    })
    expect(await readFile(path.join(ws, 'src/a.ts'), 'utf8')).toBe('const a = 1\nconst b = 2\n')
    expect(await coder('read_file', { path: 'src/a.ts' })).toEqual({ ok: true, content: 'const a = 1\nconst b = 2' })

    expect(await coder('edit_file', { path: 'src/a.ts', search: 'b = 2', replace: 'b = 3' })).toEqual({
      ok: true,
      content: 'edited src/a.ts',
    })
    expect(await readFile(path.join(ws, 'src/a.ts'), 'utf8')).toBe('const a = 1\nconst b = 3\n')

    await writeFile(path.join(ws, 'README.md'), '# x')
    await mkdir(path.join(ws, 'node_modules/dep'), { recursive: true })
    await mkdir(path.join(ws, '.git'))
    await writeFile(path.join(ws, 'src/b.ts'), '')
    expect((await coder('list_files', {})).content).toBe('README.md\nsrc/')
    expect((await coder('list_files', { recursive: true })).content).toBe('README.md\nsrc/\nsrc/a.ts\nsrc/b.ts')
    expect((await coder('list_files', { path: 'src' })).content).toBe('src/a.ts\nsrc/b.ts')
  })

  it('reads a range of lines and tells where to read on', async () => {
    await writeFile(path.join(ws, 'f.txt'), 'l1\nl2\nl3\nl4\nl5\n')
    const { content } = await coder('read_file', { path: 'f.txt', offset: 2, limit: 2 })
    expect(content).toBe('l2\nl3\n[lines 2-3 of 5 shown; read on with offset=4]')
    expect((await coder('read_file', { path: 'f.txt', offset: 4 })).content).toBe('l4\nl5')
    expect((await coder('read_file', { path: 'f.txt', offset: 9 })).content).toBe(
      'error: offset 9 is past the end of f.txt (5 lines)',
    )
  })

  it('cuts a long file at 100 KB with a note', async () => {
    const line = 'x'.repeat(99)
    await writeFile(path.join(ws, 'big.txt'), `${line}\n`.repeat(3000))
    const { ok, content } = await coder('read_file', { path: 'big.txt' })
    expect(ok).toBe(true)
    expect(Buffer.byteLength(content)).toBeLessThan(101 * 1024)
    expect(content).toMatch(/\[cut at 100 KB: lines 1-1024 of 3000 shown; read on with offset=1025\]$/)
  })

  it('refuses an edit whose search text is missing or not unique, and leaves the file alone', async () => {
    await writeFile(path.join(ws, 'a.ts'), 'x\nx\ny\n')
    expect(await coder('edit_file', { path: 'a.ts', search: 'zzz', replace: 'q' })).toEqual({
      ok: false,
      content: 'error: search text not found in a.ts',
    })
    expect(await coder('edit_file', { path: 'a.ts', search: 'x', replace: 'q' })).toEqual({
      ok: false,
      content: 'error: search text occurs 2 times in a.ts; give more context',
    })
    expect(await readFile(path.join(ws, 'a.ts'), 'utf8')).toBe('x\nx\ny\n')
  })

  it('reports file system errors cleanly', async () => {
    expect(await coder('read_file', { path: 'src/x.ts' })).toEqual({ ok: false, content: 'error: no such file: src/x.ts' })
    await mkdir(path.join(ws, 'src'))
    expect((await coder('read_file', { path: 'src' })).content).toBe('error: src is a directory; use list_files')
    expect((await coder('write_file', { path: 'a.ts' })).content).toBe("error: missing required argument 'content'")
    expect((await coder('list_files', { path: 'nope' })).content).toBe('error: no such file: nope')
  })
})

describe('workspace confinement', () => {
  it.each([
    ['../x', "path '../x' is outside the workspace"],
    ['a/../../x', "path 'a/../../x' is outside the workspace"],
    ['../outside/secret.txt', "path '../outside/secret.txt' is outside the workspace"],
    ['/etc/passwd', "path '/etc/passwd' is absolute; use a path relative to the workspace"],
    ['', 'path is empty'],
    ['a\0b', 'path contains a NUL byte'],
  ])('refuses %j', async (p, message) => {
    await expect(resolveInWorkspace({ workspace: ws, dataDir: null }, p)).rejects.toThrow(ToolError)
    await expect(resolveInWorkspace({ workspace: ws, dataDir: null }, p)).rejects.toThrow(message)
  })

  it('allows paths that stay inside, also through an inner symlink', async () => {
    await mkdir(path.join(ws, 'src'))
    await symlink(path.join(ws, 'src'), path.join(ws, 'link'))
    const real = await resolveInWorkspace({ workspace: ws, dataDir: null }, 'link/new.ts')
    expect(real.endsWith(path.join('ws', 'src', 'new.ts'))).toBe(true)
    expect(await resolveInWorkspace({ workspace: ws, dataDir: null }, 'a/../b.ts')).toMatch(/ws[/\\]b\.ts$/)
  })

  it('refuses traversal with every tool and writes nothing outside', async () => {
    for (const p of ['../escape.txt', 'a/../../escape.txt', path.join(root, 'escape.txt')]) {
      const w = await coder('write_file', { path: p, content: 'pwned' })
      expect(w.ok).toBe(false)
      expect(w.content).toMatch(/^error: path .* (outside the workspace|is absolute)/)
    }
    const e = await coder('edit_file', { path: '../outside/secret.txt', search: 'SECRET', replace: 'pwned' })
    expect(e.ok).toBe(false)
    const r = await coder('read_file', { path: '../outside/secret.txt' })
    expect(r).toEqual({ ok: false, content: "error: path '../outside/secret.txt' is outside the workspace" })
    expect((await coder('list_files', { path: '..' })).ok).toBe(false)

    expect(await exists(path.join(root, 'escape.txt'))).toBe(false)
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('SECRET')
  })

  it('does not follow a file symlink that points outside, for read, edit or write', async () => {
    await symlink(path.join(outside, 'secret.txt'), path.join(ws, 'leak.txt'))
    const r = await coder('read_file', { path: 'leak.txt' })
    expect(r).toEqual({ ok: false, content: "error: path 'leak.txt' is outside the workspace" })
    expect(r.content).not.toContain('SECRET')
    expect((await coder('write_file', { path: 'leak.txt', content: 'pwned' })).ok).toBe(false)
    expect((await coder('edit_file', { path: 'leak.txt', search: 'SECRET', replace: 'pwned' })).ok).toBe(false)
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('SECRET')
  })

  it('does not write through a dangling symlink whose target is outside', async () => {
    await symlink(path.join(outside, 'created.txt'), path.join(ws, 'dangling.txt'))
    const w = await coder('write_file', { path: 'dangling.txt', content: 'pwned' })
    expect(w).toEqual({ ok: false, content: "error: path 'dangling.txt' is outside the workspace" })
    expect(await exists(path.join(outside, 'created.txt'))).toBe(false)
  })

  it('does not enter a symlinked directory that leads outside', async () => {
    await symlink(outside, path.join(ws, 'out'))
    expect((await coder('read_file', { path: 'out/secret.txt' })).ok).toBe(false)
    expect((await coder('write_file', { path: 'out/new.txt', content: 'pwned' })).ok).toBe(false)
    expect((await coder('write_file', { path: 'out/deep/new.txt', content: 'pwned' })).ok).toBe(false)
    expect((await coder('list_files', { path: 'out' })).ok).toBe(false)
    // The recursive listing shows the link but does not walk it.
    expect((await coder('list_files', { recursive: true })).content).toBe('out')
    expect((await readdir(outside)).sort()).toEqual(['secret.txt'])
  })
})

describe('toolsets', () => {
  it('gives the auditor no write tools and no run_command', () => {
    const names = toolsFor('auditor', { enabled: true, allow: ['node'], timeoutMs: 1000, env: [], allowInlineCode: false }).map((t) => t.spec.name)
    expect(names).toEqual(['read_file', 'list_files', 'report_finding', 'resolve_finding', 'list_findings'])
  })

  it('marks the coder tools that change files', () => {
    const tools = toolsFor('coder', { enabled: true, allow: ['node'], timeoutMs: 1000, env: [], allowInlineCode: false })
    expect(Object.fromEntries(tools.map((t) => [t.spec.name, t.sideEffects]))).toEqual({
      read_file: false,
      write_file: true,
      edit_file: true,
      list_files: false,
      run_command: true,
    })
  })

  it('refuses write_file for the auditor and creates no file', async () => {
    const result = await call('auditor', 'write_file', { path: 'a.ts', content: 'x' })
    expect(result).toEqual({
      ok: false,
      content:
        "error: unknown tool 'write_file' for the auditor " +
        '(available: read_file, list_files, report_finding, resolve_finding, list_findings)',
    })
    expect(await readdir(ws)).toEqual([])
  })

  it('turns unexpected tool failures into error results', async () => {
    const { ctx } = context('coder')
    const boom = {
      spec: { name: 'boom', description: '', parameters: { type: 'object' as const, properties: {} } },
      sideEffects: false,
      run: async () => {
        throw new Error(`cannot open ${ws}/src/x.ts`)
      },
    }
    expect(await runTool([boom], { name: 'boom', arguments: {} }, ctx)).toEqual({
      ok: false,
      content: 'error: cannot open src/x.ts',
    })
  })
})

describe('findings', () => {
  const old: Finding = {
    id: 'F1',
    file: 'src/a.ts',
    line: 3,
    severity: 'bug',
    message: 'off by one',
    status: 'open',
    section: null,
    reportedInAudit: 1,
    openAudits: 3,
    recurring: true,
  }

  it('assigns ids, dedupes open findings and calls back', () => {
    const reported: Finding[] = []
    const resolved: string[] = []
    const input = [structuredClone(old)]
    const ledger = createFindingsLedger({
      findings: input,
      nextId: 2,
      section: 1,
      audit: 4,
      onReport: (f) => reported.push(f),
      onResolve: (id) => resolved.push(id),
    })
    const f2 = ledger.report({ file: 'src/b.ts', line: null, severity: 'warning', message: 'unused' })
    expect(f2).toEqual({
      id: 'F2',
      file: 'src/b.ts',
      line: null,
      severity: 'warning',
      message: 'unused',
      status: 'open',
      section: 1,
      reportedInAudit: 4,
      openAudits: 0,
      recurring: false,
    })
    // the same place and severity, in other words: the same finding, still open (its first wording kept)
    expect(ledger.report({ file: 'src/a.ts', line: 3, severity: 'bug', message: 'the loop bound is one too high' })).toMatchObject({
      id: 'F1',
      message: 'off by one',
      status: 'open',
    })
    // another severity, another line, or marked distinct: a new finding
    expect(ledger.report({ file: 'src/a.ts', line: 3, severity: 'warning', message: 'off by one' }).id).toBe('F3')
    expect(ledger.report({ file: 'src/a.ts', line: 4, severity: 'bug', message: 'off by one' }).id).toBe('F4')
    expect(ledger.report({ file: 'src/a.ts', line: 3, severity: 'bug', message: 'leaks a handle', distinct: true }).id).toBe('F5')
    // distinct, but the very same words as an open one: that one
    expect(ledger.report({ file: 'src/a.ts', line: 3, severity: 'bug', message: 'leaks a handle', distinct: true }).id).toBe('F5')
    expect(reported.map((f) => f.id)).toEqual(['F2', 'F3', 'F4', 'F5'])

    expect(ledger.resolve('F1').status).toBe('resolved')
    expect(ledger.resolve('F1').status).toBe('resolved')
    expect(resolved).toEqual(['F1'])
    // Resolved findings no longer dedupe: F5 (open, same place) is the one it matches now.
    expect(ledger.report({ file: 'src/a.ts', line: 3, severity: 'bug', message: 'off by one' }).id).toBe('F5')
    expect(ledger.resolve('F5').status).toBe('resolved')
    expect(ledger.report({ file: 'src/a.ts', line: 3, severity: 'bug', message: 'off by one' }).id).toBe('F6')
    expect(() => ledger.resolve('F9')).toThrow(new ToolError("unknown finding 'F9' (open: F2, F3, F4, F6)"))
    // The loop's array is not touched.
    expect(input).toEqual([old])
    expect(ledger.list()).toHaveLength(6)
  })

  it('reports, lists and resolves through the tools', async () => {
    const { ctx, reported, resolved } = context('auditor', { findings: [structuredClone(old)], nextId: 2 })
    const tools = toolsFor('auditor', NO_COMMANDS)
    const run = (name: string, args: Record<string, unknown>) => runTool(tools, { name, arguments: args }, ctx)

    expect(await run('report_finding', { file: 'src/c.ts', line: 12, severity: 'bug', message: 'null deref' })).toEqual({
      ok: true,
      content: 'recorded F2 (bug) src/c.ts:12',
    })
    expect(reported.map((f) => f.id)).toEqual(['F2'])
    expect((await run('report_finding', { file: './src/a.ts', line: 3, severity: 'bug', message: 'index past the end' })).content).toBe(
      'already open as F1 (bug) src/a.ts:3: "off by one". It stays open; not recorded again ' +
        '(if this is another problem at the same place, report it with distinct: true)',
    )
    expect((await run('list_findings', {})).content).toBe(
      'F1 bug open (recurring) src/a.ts:3 — off by one\nF2 bug open src/c.ts:12 — null deref',
    )
    expect((await run('resolve_finding', { id: 'F7' })).content).toMatch(/^error: unknown finding 'F7'/)
    expect((await run('resolve_finding', { id: '1' })).content).toBe('resolved F1 src/a.ts:3')
    expect((await run('resolve_finding', { id: 'F1' })).content).toBe('F1 was already resolved')
    expect(resolved).toEqual(['F1'])
    expect((await run('list_findings', { status: 'resolved' })).content).toBe(
      'F1 bug resolved (recurring) src/a.ts:3 — off by one',
    )
  })

  it('resolves by location when exactly one open finding is there, and names the candidates otherwise', async () => {
    const at = (id: string, file: string, line: number | null, status: Finding['status'] = 'open'): Finding => ({
      ...old,
      id,
      file,
      line,
      status,
      recurring: false,
    })
    const findings = [at('F1', 'a.js', 3), at('F2', 'a.js', 9), at('F3', 'b.js', 1), at('F4', 'b.js', 1, 'resolved'), at('F5', 'c.js', null)]
    const { ctx, resolved } = context('auditor', { findings, nextId: 6 })
    const tools = toolsFor('auditor', NO_COMMANDS)
    const run = async (args: Record<string, unknown>) => (await runTool(tools, { name: 'resolve_finding', arguments: args }, ctx)).content
    // the one open finding at b.js (F4 there is resolved already), by file alone and with its line
    expect(await run({ file: './b.js' })).toBe('resolved F3 b.js:1')
    expect(await run({ file: 'a.js', line: 9 })).toBe('resolved F2 a.js:9')
    expect(await run({ file: 'c.js' })).toBe('resolved F5 c.js')
    expect(await run({ id: 3 })).toBe('F3 was already resolved')
    expect(resolved).toEqual(['F3', 'F2', 'F5'])
    // nothing there, or more than one: a tool error the model can act on, nothing resolved
    const { ctx: ctx2, resolved: resolved2 } = context('auditor', { findings: [at('F1', 'a.js', 3), at('F2', 'a.js', 9)], nextId: 3 })
    const run2 = async (args: Record<string, unknown>) => (await runTool(tools, { name: 'resolve_finding', arguments: args }, ctx2)).content
    expect(await run2({ file: 'a.js' })).toBe(
      'error: 2 open findings at a.js; resolve them by id:\nF1 bug open a.js:3 — off by one\nF2 bug open a.js:9 — off by one',
    )
    expect(await run2({ file: 'a.js', line: 5 })).toBe('error: no open finding at a.js:5 (open: F1 a.js:3, F2 a.js:9)')
    expect(await run2({ line: 3 })).toBe("error: give the finding's id (e.g. F3), or its file (and line)")
    expect(await run2({})).toBe("error: give the finding's id (e.g. F3), or its file (and line)")
    expect(resolved2).toEqual([])
  })

  it('validates report_finding arguments', async () => {
    const { ctx, reported } = context('auditor')
    const tools = toolsFor('auditor', NO_COMMANDS)
    const run = (args: Record<string, unknown>) => runTool(tools, { name: 'report_finding', arguments: args }, ctx)
    expect((await run({ file: 'a.ts', severity: 'critical', message: 'x' })).content).toBe(
      "error: severity must be 'bug' or 'warning', got 'critical'",
    )
    expect((await run({ file: 'a.ts', severity: 'bug' })).content).toBe("error: missing required argument 'message'")
    expect((await run({ severity: 'bug', message: 'x' })).content).toBe("error: missing required argument 'file'")
    expect((await run({ file: 'a.ts', line: 'abc', severity: 'bug', message: 'x' })).content).toBe(
      "error: argument 'line' must be an integer >= 1",
    )
    expect(reported).toEqual([])

    expect((await run({ file: './a.ts', line: '7', severity: 'Warning', message: 'x' })).content).toBe(
      'recorded F1 (warning) a.ts:7',
    )
    expect((await runTool(tools, { name: 'resolve_finding', arguments: { id: 'f1' } }, ctx)).content).toBe(
      'resolved F1 a.ts:7',
    )
    expect((await runTool(tools, { name: 'list_findings', arguments: { status: 'all' } }, ctx)).content).toBe(
      'F1 warning resolved a.ts:7 — x',
    )
    expect((await runTool(tools, { name: 'list_findings', arguments: {} }, ctx)).content).toBe('no open findings')
  })
})
