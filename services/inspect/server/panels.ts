/**
 * The per-loop panels the page fetches when their tab is open (server/http.ts):
 *
 *     GET /api/loops/<name>/transcript[?from=N]  TranscriptReport: the sessions the store's journal keeps
 *     GET /api/loops/<name>/diff                 the workspace's changes (services/workspace-diff.ts)
 *     GET /api/loops/<name>/findings             FindingsReport: each finding and its history
 */
import type { LoopsModel } from './model.ts'
import type { StoreWatcher } from './store-watcher.ts'
import type { TranscriptReport } from './types.ts'

export const PANEL_ROUTE = /^\/api\/loops\/([a-z0-9][a-z0-9-]{0,79})\/(transcript|diff|findings)$/

export interface PanelDeps {
  model: LoopsModel
  watcher: Pick<StoreWatcher, 'transcript' | 'diff'>
  /** Starts following a loop's history (the findings' story is read from it). */
  watchHistory(name: string): Promise<void>
}

export interface PanelAnswer {
  status: number
  body: unknown
}

/** The answer to `GET /api/loops/<name>/<panel>` (`query`: the request's search parameters). */
export async function panelAnswer(deps: PanelDeps, name: string, panel: string, query: URLSearchParams): Promise<PanelAnswer> {
  const { model, watcher } = deps
  if (!model.has(name)) return { status: 404, body: { error: `inspect: no loop named '${name}'` } }
  if (panel === 'transcript') {
    const from = Number(query.get('from') ?? 0)
    const sessions = await watcher.transcript(name, Number.isSafeInteger(from) && from > 0 ? from : 0)
    const body: TranscriptReport = sessions === null ? { source: 'none', sessions: [] } : { source: 'store', sessions }
    return { status: 200, body }
  }
  if (panel === 'findings') {
    await deps.watchHistory(name)
    const report = model.findings(name)
    return report ? { status: 200, body: report } : { status: 404, body: { error: `inspect: the findings of ${name} cannot be read` } }
  }
  const diff = await watcher.diff(name)
  return diff === null ? { status: 404, body: { error: `inspect: ${name} has no record in the store: its workspace is not known` } } : { status: 200, body: diff }
}
