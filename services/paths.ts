/**
 * Where the package's own files are (the viewer's page, the demo scenarios,
 * package.json), whether this module runs from its source file or from the
 * bundle in dist/ (where `import.meta.url` is a chunk's URL, not this file's).
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findPackageRoot(from: string): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'loopstate') return dir
      } catch {
        // not ours (or unreadable): keep looking upwards
      }
    }
    if (dirname(dir) === dir) throw new Error(`loopstate: no package.json of loopstate above ${from}`)
  }
}

let root: string | undefined

/** The directory holding loopstate's package.json (looked up on first use). */
export function packageRoot(): string {
  return (root ??= findPackageRoot(fileURLToPath(import.meta.url)))
}

/** A path inside the package, e.g. `packagePath('scripts', 'demo')`. */
export const packagePath = (...parts: string[]): string => join(packageRoot(), ...parts)
