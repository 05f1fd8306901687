/**
 * A digest of a workspace's content, taken after each coder pass for the
 * no-progress stop (machines/progress.ts): every regular file's path and content,
 * every symlink's target, the empty directories. Timestamps do not count (a file
 * rewritten with the same bytes is no change). Like the model's tools it never
 * looks into `.git`, the engine's data dir or `node_modules`. Files whose size,
 * mtime and inode are unchanged since the last digest of this process are not read
 * again. Too big a workspace gets no digest (null: counts as changed).
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'

/** Entries past which no digest is taken. */
export const DIGEST_MAX_ENTRIES = 50_000

const SKIPPED = new Set(['node_modules'])

/** Content hashes by absolute path, valid while size, mtime and inode stay the same. */
const cache = new Map<string, { stamp: string; hash: string }>()

export async function workspaceDigest(workspace: string, dataDir: string | null, maxEntries = DIGEST_MAX_ENTRIES): Promise<string | null> {
  const root = resolve(workspace)
  const skipDir = dataDir === null ? null : resolve(dataDir)
  const lines: string[] = []
  const walk = async (dir: string): Promise<boolean> => {
    const names = (await readdir(dir)).sort()
    if (names.length === 0 && dir !== root) lines.push(`d ${relative(root, dir)}`)
    for (const name of names) {
      if (lines.length > maxEntries) return false
      const path = join(dir, name)
      if (name.toLowerCase() === '.git' || SKIPPED.has(name) || path === skipDir) continue
      const st = await lstat(path).catch(() => null)
      if (st === null) continue // gone meanwhile
      const rel = relative(root, path)
      if (st.isDirectory()) {
        if (!(await walk(path))) return false
      } else if (st.isSymbolicLink()) {
        lines.push(`l ${rel} ${await readlink(path).catch(() => '?')}`)
      } else if (st.isFile()) {
        const stamp = `${st.size}:${st.mtimeMs}:${st.ino}`
        let hit = cache.get(path)
        if (hit?.stamp !== stamp) {
          hit = { stamp, hash: await fileHash(path) }
          cache.set(path, hit)
        }
        lines.push(`f ${rel} ${hit.hash}`)
      }
    }
    return true
  }
  try {
    if (!(await walk(root))) return null
  } catch {
    return null // unreadable: no digest, no verdict
  }
  return createHash('sha256').update(lines.join('\n')).digest('hex')
}

function fileHash(path: string): Promise<string> {
  return new Promise((resolveHash, reject) => {
    const hash = createHash('sha256')
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolveHash(hash.digest('hex')))
  })
}
