/** `loopstate status NAME`: one loop in detail (and, for one that has not ended, which process runs it). */
import type { LoopDetail } from '../../services/views.ts'
import { FINAL } from '../../services/engine/types.ts'
import { detailText } from '../format.ts'
import { notFound, openClient } from './client.ts'
import { dataFlag } from './list.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag } from './shared.ts'

export interface StatusOptions extends DataFlag {
  json?: boolean
}

export async function statusCommand(cli: Cli, name: string, opts: StatusOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const client = openClient(cli, dataDir)
  let detail: LoopDetail | null
  try {
    detail = await client.get(name)
  } catch (e) {
    throw new CliError(message(e))
  }
  if (detail === null) throw notFound(name, dataDir)
  // who runs it (an ended loop is run by nobody)
  const owner = FINAL.has(detail.status) ? null : ((await client.owner(name))?.pid ?? null)
  if (opts.json) {
    cli.out(JSON.stringify({ ...detail, owner }, null, 2))
    return 0
  }
  const { style, columns } = cli.term
  cli.out(
    detailText(detail, {
      style,
      width: columns,
      ...(FINAL.has(detail.status) ? {} : { owner }),
      resume: `loopstate resume ${name}${dataFlag(dataDir)}`,
    }),
  )
  return 0
}
