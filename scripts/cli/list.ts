/** `loopstate list`: the loops of the data dir (records the store quarantines are reported on stderr). */
import { listTable } from '../format.ts'
import { openClient } from './client.ts'
import { dataDirOf, type Cli, type DataFlag } from './shared.ts'

export interface ListOptions extends DataFlag {
  json?: boolean
}

export async function listCommand(cli: Cli, opts: ListOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const views = await openClient(cli, dataDir).list()
  if (opts.json) cli.out(JSON.stringify(views, null, 2))
  else if (views.length === 0) cli.out(`no loops in ${dataDir}`)
  else cli.out(listTable(views))
  return 0
}
