/** `loopstate inspect` as a user runs it: its viewer answers on 127.0.0.1, and Ctrl-C stops it. */
import { spawn } from 'node:child_process'
import { expect } from 'vitest'

/**
 * Runs `node <cli> inspect --port 0 --data <dataDir>` in `cwd`, waits for the line naming
 * the viewer's address, fetches the page and stops the process with SIGINT (exit 0).
 */
export async function expectInspectServesViewer(cli: string, dataDir: string, cwd: string): Promise<void> {
  const child = spawn(process.execPath, [cli, 'inspect', '--port', '0', '--data', dataDir], { cwd })
  let stdout = ''
  child.stdout.on('data', (d) => (stdout += d))
  const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)))
  const deadline = Date.now() + 15_000
  while (!/viewer at http:\/\/127\.0\.0\.1:\d+\//.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  const url = /viewer at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout)?.[1]
  expect(url, stdout).toBeDefined()
  const page = await fetch(url!)
  expect(page.status).toBe(200)
  expect(await page.text()).toContain('loopstate')
  child.kill('SIGINT')
  expect(await exit).toBe(0)
}
