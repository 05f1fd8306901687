/**
 * `loopstate cancel|pause|resume|say NAME`: a command sent through LoopClient to the
 * loop's owner, or applied to the store when no process owns the loop
 * (docs/architecture.md "Ownership"). `resume` of such a loop drives it here instead.
 */
import type { ControlEvent } from '../../machines/loop.types.ts'
import { ClientError, ownerText, type SendResult } from '../../services/client.ts'
import { loadRecord, openClient, refusal } from './client.ts'
import { CliError, dataDirOf, type Cli, type DataFlag } from './shared.ts'

export type ControlKind = 'cancel' | 'pause' | 'resume' | 'say'

export interface ControlOptions {
  /** The text of `say`. */
  text?: string
  /** What `resume` does with a loop no process owns. */
  unowned?: () => Promise<number>
}

export async function controlCommand(
  cli: Cli,
  kind: ControlKind,
  name: string,
  opts: DataFlag,
  { text, unowned }: ControlOptions = {},
): Promise<number> {
  const dataDir = dataDirOf(opts)
  const client = openClient(cli, dataDir)
  // Read first: no such loop or an unreadable record is bad input (exit 2), as in `status`.
  await loadRecord(client, dataDir, name)
  const event: ControlEvent =
    kind === 'say' ? { type: 'loop.say', text: text! } : { type: `loop.${kind}` as 'loop.cancel' | 'loop.pause' | 'loop.resume' }
  let result: SendResult
  try {
    result = await client.send(name, event, unowned ? { unowned: 'return' } : {})
  } catch (e) {
    // Past the read, a failure that is no refusal is not bad input (exit 1).
    throw e instanceof ClientError ? refusal(e, name, dataDir) : e
  }

  const statusOf = ({ status, reason }: { status: string; reason: string | null }) => `${status}${reason ? ` (${reason})` : ''}`
  switch (result.via) {
    case 'unchanged':
      cli.out(`loop ${name} is already paused`)
      return 0
    case 'unowned':
      return unowned!()
    case 'store':
      if (kind === 'say') cli.out(`message queued for loop ${name} (no process runs it; ${result.record.status}): its next prompt includes it`)
      else cli.out(`loop ${name} ${statusOf(result.record)} (no process runs it: applied to the store)`)
      return 0
    case 'owner': {
      const owner = ownerText(result.owner)
      if (kind === 'say') cli.out(`message delivered to loop ${name} (${owner}): its next prompt includes it`)
      else if (result.shown && result.record) cli.out(`loop ${name} ${statusOf(result.record)}`)
      else cli.out(`loop ${name}: ${kind} taken by its owner (${owner}); its record does not show it yet`)
      return 0
    }
  }
}

export async function sayCommand(cli: Cli, name: string, words: string[], opts: DataFlag): Promise<number> {
  const text = words.join(' ').trim()
  if (text === '') throw new CliError('say: the message is empty')
  return controlCommand(cli, 'say', name, opts, { text })
}
