/** `loopstate inspect` and `--inspect` from the real bin. */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
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
