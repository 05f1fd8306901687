/** `--inspect [url]` of the commands that run loops: stream every loop actor to a WebSocket inspector. */
import type { Engine } from '../services/engine.ts'
import { createStatelyInspect, inspectorUrl, type StatelyInspect } from '../services/inspect/stately.ts'
import { DEFAULT_VIEWER_PORT } from '../services/inspect/viewer-server.ts'

/** Where `--inspect` without a URL streams: the viewer of `loopstate inspect` on its default port. */
export const DEFAULT_INSPECT_URL = `ws://127.0.0.1:${DEFAULT_VIEWER_PORT}`

/**
 * The inspector of an `--inspect` flag (`true`: the default URL), or null without
 * the flag. Throws a one-line error for a URL that is not one.
 */
export function inspectorFor(flag: string | boolean | undefined, onProblem: (line: string) => void): StatelyInspect | null {
  if (flag === undefined || flag === false) return null
  const url = inspectorUrl(flag === true ? DEFAULT_INSPECT_URL : flag)
  return createStatelyInspect(url, { onProblem })
}

/** Makes `engine.close()` also flush and close the inspector's socket (it would keep the process alive). */
export function closeWithEngine(engine: Engine, inspector: StatelyInspect | null): Engine {
  if (inspector === null) return engine
  const close = engine.close.bind(engine)
  engine.close = async () => {
    await close()
    await inspector.close(1_000)
  }
  return engine
}
