/**
 * `startViewer`: puts the viewer together (services/inspect/viewer-server.ts says
 * what it is). The store is read through a LoopClient and watched by polling
 * (server/store-watcher.ts); inspection events come in on the relay
 * (server/sockets.ts); both feed the loops model (server/model.ts), which is pushed
 * to the pages every 100 ms at most, and served over HTTP (server/http.ts).
 */
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { LoopClient } from '../../client.ts'
import { packagePath } from '../../paths.ts'
import { checkBindHost, checkToken, isLoopback, newToken, withToken, type AccessPolicy } from '../viewer-access.ts'
import { createViewerHttp } from './http.ts'
import { InspectionEvents } from './inspection.ts'
import { LoopsModel } from './model.ts'
import { ViewerSockets } from './sockets.ts'
import { StoreFiles } from '../../../adapters/json-store-feed.ts'
import { StoreWatcher } from './store-watcher.ts'
import { DEFAULT_VIEWER_PORT, type Viewer, type ViewerOptions } from './types.ts'

/** Starts the viewer; resolves once it listens. */
export async function startViewer(options: ViewerOptions = {}): Promise<Viewer> {
  const host = options.host ?? '127.0.0.1'
  const note = checkBindHost(host, options.explicitHost ?? options.host !== undefined)
  const loopback = isLoopback(host)
  const token = options.token !== undefined ? checkToken(options.token) : loopback ? null : newToken()
  const log = options.log ?? ((line: string) => console.error(line))
  if (note) log(note)
  const dataDir = resolve(options.dataDir ?? 'data')

  const problems = new Set<string>()
  const problem = (message: string) => {
    if (problems.has(message)) return
    problems.add(message)
    log(message)
  }
  const client = new LoopClient({ dataDir, onProblem: problem })
  const model = new LoopsModel()
  const watcher = new StoreWatcher(client, new StoreFiles(dataDir), model, problem)
  const watchHistory = (name: string) => watcher.watchHistory(name)
  let inspectUrl = ''
  const sockets = new ViewerSockets({ model, inspection: new InspectionEvents(model), watchHistory, info: () => ({ dataDir, inspectUrl }) })
  // The port is known once the server listens (before any request arrives).
  const policy: AccessPolicy = { port: 0, loopback, token }
  const http = await createViewerHttp({
    policy,
    model,
    staticDir: packagePath('services', 'inspect', 'viewer'),
    watchHistory,
    upgrade: (req, socket, head) => sockets.upgrade(req, socket, head),
    panels: { watcher },
    // the page's controls: a command token of this run, given to the page only inside it
    commands: { policy, token: newToken(), client, dataDir, log },
  })

  // Pushes: coalesced, at most every 100 ms.
  const push = setInterval(() => sockets.push(), 100)
  watcher.start(options.pollMs ?? 300, (err) => log(`inspect: reading ${dataDir}: ${err instanceof Error ? err.message : err}`))
  try {
    await watcher.poll()
    await new Promise<void>((resolveListen, reject) => {
      http.once('error', reject)
      http.listen(options.port ?? DEFAULT_VIEWER_PORT, host, () => {
        http.off('error', reject)
        resolveListen()
      })
    })
  } catch (err) {
    clearInterval(push)
    watcher.stop()
    throw err
  }
  const port = (http.address() as AddressInfo).port
  policy.port = port
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  const display = shown === '0.0.0.0' || shown === '[::]' ? '127.0.0.1' : shown
  inspectUrl = withToken(`ws://${display}:${port}/`, token)

  return {
    url: withToken(`http://${display}:${port}/`, token),
    inspectUrl,
    port,
    token,
    stats: () => sockets.stats(),
    close: async () => {
      clearInterval(push)
      watcher.stop()
      await sockets.close()
      http.closeAllConnections()
      await new Promise<void>((r) => http.close(() => r()))
    },
  }
}
