/** `--provider [scheme=]file` and config `providers`: a provider module of the user's, loaded by the real CLI. */
import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))
const ECHO = fileURLToPath(new URL('./fixtures/providers/echo-provider.js', import.meta.url))

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-cli-provider-'))
  // A user's project: an ES module package with the provider file in it.
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  await mkdir(join(dir, 'providers'))
  await copyFile(ECHO, join(dir, 'providers', 'echo-provider.js'))
  await mkdir(join(dir, 'ws'))
})
afterEach(() => rm(dir, { recursive: true, force: true }))

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env, LOOPSTATE_DATA: undefined, LOOPSTATE_FROM_SOURCE: '1' }
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, ...args], { cwd: dir, env, timeout: 90_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    ),
  )
}

const common = ['--workspace', 'ws', '--data', 'data']

describe('--provider', () => {
  it('runs a loop on a provider module named by its own scheme', async () => {
    const result = await cli(['run', '--goal', 'Say hello from echo', '--model', 'echo:any', '--provider', './providers/echo-provider.js', ...common, '--name', 'echo-own'])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain('loop echo-own completed')
    expect(await readFile(join(dir, 'ws', 'ECHO.md'), 'utf8')).toContain('Say hello from echo')
  }, 120_000)

  it('takes the scheme given before = and the config file\'s providers (relative to the config)', async () => {
    const named = await cli(['run', '--goal', 'first', '--model', 'mine:any', '--provider', 'mine=providers/echo-provider.js', ...common, '--name', 'echo-named'])
    expect(named.code, named.stderr).toBe(0)
    expect(named.stdout).toContain('loop echo-named completed')
    await mkdir(join(dir, 'conf'))
    await writeFile(join(dir, 'conf', 'loopstate.json'), JSON.stringify({ providers: { viaconfig: '../providers/echo-provider.js' } }))
    const configured = await cli(['run', '--goal', 'second', '--model', 'viaconfig:any', '--config', 'conf/loopstate.json', ...common, '--name', 'echo-config'])
    expect(configured.code, configured.stderr).toBe(0)
    expect(configured.stdout).toContain('loop echo-config completed')
  }, 120_000)

  it('stops with one line and exit 2, saving nothing, for a module that cannot be used', async () => {
    await writeFile(join(dir, 'providers', 'no-default.js'), 'export const scheme = "nodef"\n')
    for (const [flag, expected] of [
      ['./providers/missing.js', /^loopstate: provider: .*missing\.js: not found/],
      ['./providers/no-default.js', /^loopstate: provider: .*no-default\.js: has no default export/],
      ['ollama=./providers/echo-provider.js', /^loopstate: provider: .*scheme 'ollama' is built in/],
    ] as const) {
      const result = await cli(['run', '--goal', 'x', '--model', 'echo:any', '--provider', flag, ...common])
      expect(result.code, flag).toBe(2)
      expect(result.stderr.trim().split('\n'), flag).toHaveLength(1)
      expect(result.stderr.trim(), flag).toMatch(expected)
    }
    await expect(readdir(join(dir, 'data'))).rejects.toThrow()
  }, 120_000)

  it('without the flag, a model of that scheme is refused before anything is saved, naming the known schemes', async () => {
    const missing = await cli(['run', '--goal', 'x', '--model', 'echo:any', ...common])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/unknown scheme 'echo' in 'echo:any' \(known: scripted, ollama, openai, openrouter,/)
    await expect(readdir(join(dir, 'data', 'loops'))).rejects.toThrow()
  }, 120_000)
})
