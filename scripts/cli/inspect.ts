/** `loopstate inspect`: serves the loop viewer (services/inspect/viewer-server.ts) until Ctrl-C. */
import { networkInterfaces } from 'node:os'
import { DEFAULT_VIEWER_PORT, startViewer } from '../../services/inspect/viewer-server.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag } from './shared.ts'

export interface InspectOptions extends DataFlag {
  port?: number
  host?: string
}

export async function inspectCommand(cli: Cli, opts: InspectOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  let viewer
  try {
    viewer = await startViewer({ dataDir, port: opts.port ?? DEFAULT_VIEWER_PORT, host: opts.host, log: (m) => cli.err(m) })
  } catch (e) {
    throw new CliError(message(e))
  }
  cli.out(`viewer at ${viewer.url} (loops of ${dataDir}; live from the store, or streamed with --inspect ${viewer.inspectUrl})`)
  if (viewer.token !== null) {
    cli.out(`token required on every request (?token=, Authorization: Bearer, or the cookie the page sets): ${viewer.token}`)
    if (opts.host === '0.0.0.0' || opts.host === '::') {
      const others = Object.values(networkInterfaces())
        .flat()
        .flatMap((a) => (a && !a.internal && a.family === 'IPv4' ? [a.address] : []))
      for (const ip of others) cli.out(`also at http://${ip}:${viewer.port}/?token=${viewer.token}`)
    }
  }
  cli.out('Ctrl-C stops it')
  return new Promise<number>((resolveExit) => {
    const stop = (code: number) => () => void viewer.close().then(() => resolveExit(code))
    process.once('SIGINT', stop(0))
    process.once('SIGTERM', stop(0))
  })
}
