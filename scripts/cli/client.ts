/** The CLI's LoopClient (services/client.ts) on a data dir, and its refusals as CLI errors. */
import type { HistoryEntry, LoopRecord } from '../../adapters/snapshot-store.ts'
import { ClientError, LoopClient } from '../../services/client.ts'
import { CliError, message, type Cli } from './shared.ts'

export function openClient(cli: Cli, dataDir: string): LoopClient {
  return new LoopClient({ dataDir, onProblem: (m) => cli.err(m) })
}

export function notFound(name: string, dataDir: string): CliError {
  return new CliError(`no loop named '${name}' in ${dataDir}`)
}

/**
 * A failed request as the CLI reports it: a refusal by its message (a withdrawn
 * command exits 1), any other failure of reading the loop as bad input (exit 2).
 */
export function refusal(e: unknown, name: string, dataDir: string): CliError {
  if (!(e instanceof ClientError)) return new CliError(message(e))
  if (e.code === 'not_found') return notFound(name, dataDir)
  return new CliError(e.message, e.code === 'withdrawn' ? 1 : 2)
}

/** The loop's record; no such loop, or a record that cannot be read, is bad input. */
export async function loadRecord(client: LoopClient, dataDir: string, name: string): Promise<LoopRecord> {
  let record: LoopRecord | null
  try {
    record = await client.record(name)
  } catch (e) {
    throw new CliError(message(e))
  }
  if (record === null) throw notFound(name, dataDir)
  return record
}

/** The loop's history; no such loop is bad input. */
export async function loadHistory(cli: Cli, dataDir: string, name: string): Promise<HistoryEntry[]> {
  try {
    return await openClient(cli, dataDir).history(name)
  } catch (e) {
    throw refusal(e, name, dataDir)
  }
}
