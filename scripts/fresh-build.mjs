/**
 * Whether dist/ (built by scripts/build.mjs) may run in place of the sources: it
 * exists, was built by this Node version, and every file it was built from (listed
 * in dist/build-info.json, with package.json and package-lock.json) is older than
 * the build. Plain JavaScript: the bin calls it before tsx is loaded.
 */
import { readFileSync, statSync } from 'node:fs'

/** `root`: the package root as a file URL ending in `/`. Returns why not, or null if fresh. */
export function staleReason(root, env = process.env) {
  if (env.LOOPSTATE_FROM_SOURCE && env.LOOPSTATE_FROM_SOURCE !== '0') return 'LOOPSTATE_FROM_SOURCE is set'
  let info
  try {
    info = JSON.parse(readFileSync(new URL('dist/build-info.json', root), 'utf8'))
  } catch {
    return 'no build (dist/build-info.json)'
  }
  if (info.node !== process.version) return `built by node ${info.node}`
  for (const file of info.sources ?? []) {
    let mtimeMs
    try {
      mtimeMs = statSync(new URL(file, root)).mtimeMs
    } catch {
      return `${file} is gone`
    }
    if (mtimeMs >= info.builtAtMs) return `${file} changed since the build`
  }
  return Array.isArray(info.sources) ? null : 'dist/build-info.json lists no sources'
}
