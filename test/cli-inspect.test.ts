/** `loopstate inspect` and `--inspect` from the real bin. */
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocket, WebSocketServer } from 'ws'
import { expectInspectServesViewer } from './helpers/viewer-cli.ts'

const BIN = fileURLToPath(new URL('../scripts/loopstate.js', import.meta.url))
let dir: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loopstate-cli-inspect-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('cli inspect', () => {
  it('serves the viewer on 127.0.0.1 and stops on Ctrl-C', async () => {
    await expectInspectServesViewer(BIN, join(dir, 'data'), dir)
  })

  it('inspect --host 0.0.0.0 prints its token and tokened addresses; they work, the bare ones get 401', async () => {
    const child = spawn(process.execPath, [BIN, 'inspect', '--host', '0.0.0.0', '--port', '0', '--data', join(dir, 'data')], { cwd: dir })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
    try {
      const deadline = Date.now() + 15_000
      while (!stdout.includes('Ctrl-C stops it') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      const m = /^viewer at (http:\/\/127\.0\.0\.1:(\d+)\/)\?token=([A-Za-z0-9_-]{43}) \(loops of .*; live from the store, or streamed with --inspect (ws:\/\/\S+)\)$/m.exec(stdout)
      expect(m, `${stdout}\n${stderr}`).not.toBeNull()
      const [, base, port, token, inspect] = m!
      expect(inspect).toBe(`ws://127.0.0.1:${port}/?token=${token}`)
      expect(stdout).toContain(`token required on every request (?token=, Authorization: Bearer, or the cookie the page sets): ${token}\n`)
      expect(stderr).toContain('inspect: listening on 0.0.0.0, not a loopback address: a token is required on every request and WebSocket')
      expect(stderr).not.toContain('without authentication')
      // every other address of the machine is listed, with the token
      const lan = Object.values(networkInterfaces()).flat().flatMap((a) => (a && !a.internal && a.family === 'IPv4' ? [a.address] : []))
      const also = [...stdout.matchAll(/^also at (\S+)$/gm)].map((x) => x[1])
      expect(also).toEqual(lan.map((ip) => `http://${ip}:${port}/?token=${token}`))

      for (const url of [`${base}?token=${token}`, ...also.slice(0, 1)]) {
        const page = await fetch(url!)
        expect(page.status, url).toBe(200)
        expect(await page.text()).toContain('loopstate')
      }
      const bare = await fetch(base!)
      expect(bare.status).toBe(401)
      expect(((await bare.json()) as { error: string }).error).toMatch(/^inspect: this viewer requires its token/)
      expect((await fetch(`${base}api/loops`)).status).toBe(401)
      expect((await fetch(`${base}api/loops`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
      // the --inspect address (an engine's ws client) is taken; without its token it is refused
      const status = (url: string) =>
        new Promise<number>((resolve, reject) => {
          const ws = new WebSocket(url)
          ws.once('open', () => {
            ws.close()
            resolve(101)
          })
          ws.once('unexpected-response', (_req, res) => {
            res.resume()
            resolve(res.statusCode!)
          })
          ws.once('error', reject)
        })
      expect(await status(inspect!)).toBe(101)
      expect(await status(`ws://127.0.0.1:${port}/`)).toBe(401)
    } finally {
      child.kill('SIGINT')
    }
    expect(await exit).toBe(0)
  })

  it('demo --inspect streams every loop actor to a WebSocket inspector', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((r) => wss.once('listening', r))
    const received: { type: string; sessionId: string; parentId?: string }[] = []
    wss.on('connection', (ws) => ws.on('message', (data) => received.push(JSON.parse(data.toString()))))
    const port = (wss.address() as AddressInfo).port
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [BIN, 'demo', '--inspect', `ws://127.0.0.1:${port}`, '--data', join(dir, 'data')],
        { cwd: dir, timeout: 60_000 },
        (err, _stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr }),
      ),
    )
    await new Promise((r) => wss.close(r))
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain(`streaming inspection events to ws://127.0.0.1:${port}/`)
    const roots = received.filter((m) => m.type === '@xstate.actor' && !m.parentId)
    expect(roots.length).toBe(3)
    const children = received.filter((m) => m.type === '@xstate.actor' && m.parentId)
    expect(children.length).toBeGreaterThan(3) // the session actors of every phase
    expect(received.some((m) => m.type === '@xstate.event')).toBe(true)
    expect(received.some((m) => m.type === '@xstate.snapshot')).toBe(true)
  })
})
