import { mkdir, mkdtemp, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { workspaceDigest } from '../services/workspace-digest.ts'

let ws: string
beforeEach(async () => {
  ws = await mkdtemp(join(tmpdir(), 'loopstate-digest-'))
  await mkdir(join(ws, 'src'))
  await writeFile(join(ws, 'src', 'a.js'), 'one\n')
  await writeFile(join(ws, 'b.txt'), 'two\n')
})
afterEach(async () => {
  await rm(ws, { recursive: true, force: true })
})

const digest = () => workspaceDigest(ws, join(ws, 'data'))

describe('workspace digest', () => {
  it('is the content: the same bytes rewritten (new mtime, new inode) are no change', async () => {
    const before = await digest()
    expect(before).toMatch(/^[0-9a-f]{64}$/)
    await unlink(join(ws, 'src', 'a.js'))
    await writeFile(join(ws, 'src', 'a.js'), 'one\n')
    await utimes(join(ws, 'b.txt'), new Date(2030, 0, 1), new Date(2030, 0, 1))
    expect(await digest()).toBe(before)
  })

  it('changes with a byte, a new file, a rename, an empty directory or a symlink target', async () => {
    const seen = new Set([await digest()])
    const step = async (change: () => Promise<unknown>) => {
      await change()
      const d = await digest()
      expect(seen.has(d!), 'a change that the digest did not see').toBe(false)
      seen.add(d!)
    }
    await step(() => writeFile(join(ws, 'src', 'a.js'), 'one!\n'))
    await step(() => writeFile(join(ws, 'c.txt'), ''))
    await step(async () => {
      await writeFile(join(ws, 'd.txt'), '')
      await unlink(join(ws, 'c.txt'))
    })
    await step(() => mkdir(join(ws, 'empty')))
    await step(() => symlink('b.txt', join(ws, 'link')))
    await step(async () => {
      await unlink(join(ws, 'link'))
      await symlink('src/a.js', join(ws, 'link'))
    })
  })

  it('does not look into .git, node_modules or the data dir', async () => {
    const before = await digest()
    for (const dir of ['.git', 'node_modules', 'data', join('src', '.GIT')]) {
      await mkdir(join(ws, dir), { recursive: true })
      await writeFile(join(ws, dir, 'x'), String(Math.random()))
    }
    expect(await digest()).toBe(before)
  })

  it('gives no digest for a workspace past the entry limit, or one that cannot be read', async () => {
    for (let i = 0; i < 12; i++) await writeFile(join(ws, `f${i}`), String(i))
    expect(await workspaceDigest(ws, null, 10)).toBeNull()
    expect(await workspaceDigest(ws, null, 100)).not.toBeNull()
    expect(await workspaceDigest(join(ws, 'missing'), null)).toBeNull()
  })
})
