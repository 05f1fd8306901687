/** `loopstate status NAME`: one loop in detail. */
import type { LoopDetail } from '../../services/views.ts'
import { detailText } from '../format.ts'
import { notFound, openClient } from './client.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag } from './shared.ts'

export interface StatusOptions extends DataFlag {
  json?: boolean
}

export async function statusCommand(cli: Cli, name: string, opts: StatusOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  let detail: LoopDetail | null
  try {
    detail = await openClient(cli, dataDir).get(name)
  } catch (e) {
    throw new CliError(message(e))
  }
  if (detail === null) throw notFound(name, dataDir)
  cli.out(opts.json ? JSON.stringify(detail, null, 2) : detailText(detail))
  return 0
}
