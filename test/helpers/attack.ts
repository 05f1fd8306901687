/**
 * Attacks by a scripted model, through the real engine: a provider that replays a
 * scenario and records every tool result the model was given, and a snapshot of a
 * directory tree to prove that nothing in it changed.
 */
import { createHash } from 'node:crypto'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { ProviderFactory } from '../../adapters/model-provider.ts'
import { scriptedFactory } from '../../adapters/scripted-provider.ts'

export interface ToolResultSeen {
  tool: string
  content: string
}

/** `rec:<scenario file>`: a scripted model that records the tool results it is sent, in order, once each. */
export function recordingFactory(): { factory: ProviderFactory; results: ToolResultSeen[] } {
  const inner = scriptedFactory()
  const results: ToolResultSeen[] = []
  const seen = new Set<string>()
  const factory: ProviderFactory = (model, loop) => {
    const provider = inner(model, loop)
    return {
      scheme: 'rec',
      contextLength: (m, signal) => provider.contextLength?.(m, signal) ?? Promise.resolve(null),
      chat: (request) => {
        for (const m of request.messages) {
          if (m.role !== 'tool') continue
          const key = `${request.role}\u0000${m.toolCallId}`
          if (seen.has(key)) continue
          seen.add(key)
          results.push({ tool: m.toolName, content: m.content })
        }
        return provider.chat(request)
      },
    }
  }
  return { factory, results }
}

/** Every entry under `dir` (not following symlinks) with a hash of its content: equal trees give equal maps. */
export async function treeState(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (abs: string, rel: string): Promise<void> => {
    for (const name of (await readdir(abs)).sort()) {
      const p = join(abs, name)
      const r = rel ? `${rel}/${name}` : name
      const s = await lstat(p)
      if (s.isDirectory()) {
        out[`${r}/`] = 'dir'
        await walk(p, r)
      } else if (s.isSymbolicLink()) out[r] = `link:${await readlink(p)}`
      else if (s.isFile()) out[r] = createHash('sha256').update(await readFile(p)).digest('hex')
      else out[r] = 'special'
    }
  }
  await walk(dir, '')
  return out
}
