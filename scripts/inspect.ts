/**
 * The local inspector viewer on its own (until `loopstate inspect` wires it):
 *   npx tsx scripts/inspect.ts [--port 4747] [--data DIR] [--host 127.0.0.1]
 * Then run loops with `--inspect ws://127.0.0.1:4747` (or without: the store is watched).
 */
import { parseArgs } from 'node:util'
import { DEFAULT_VIEWER_PORT, startViewer } from '../services/inspect/viewer-server.ts'

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      data: { type: 'string' },
      host: { type: 'string' },
    },
  })
  const port = values.port === undefined ? DEFAULT_VIEWER_PORT : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`inspect: --port: '${values.port}' is not a port number`)
  const dataDir = values.data ?? process.env.LOOPSTATE_DATA ?? 'data'
  const viewer = await startViewer({ dataDir, port, host: values.host, log: (line) => console.error(line) })
  console.log(`inspect: viewer at ${viewer.url} (data: ${dataDir}); engines: --inspect ${viewer.inspectUrl}`)
  const stop = () => void viewer.close().then(() => process.exit(0))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
