/**
 * `loopstate log NAME [--session N] [--json] [--follow]`: what the models said and
 * did, session by session (the transcripts the store keeps after each session,
 * docs/architecture.md "Persistence"). `--follow` prints new messages as they land
 * until the loop ends.
 */
import type { TranscriptSession } from '../../adapters/snapshot-store.ts'
import { FINAL } from '../../services/engine/types.ts'
import { transcriptText } from '../format.ts'
import { loadRecord, openClient, refusal } from './client.ts'
import { CliError, dataDirOf, type Cli, type DataFlag } from './shared.ts'

export interface LogOptions extends DataFlag {
  session?: number
  json?: boolean
  follow?: boolean
}

/** How often `--follow` looks for new messages, ms. */
const FOLLOW_POLL_MS = 500

export async function logCommand(cli: Cli, name: string, opts: LogOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const client = openClient(cli, dataDir)
  await loadRecord(client, dataDir, name)
  const read = async (): Promise<TranscriptSession[]> => {
    let sessions: TranscriptSession[]
    try {
      sessions = await client.transcript(name)
    } catch (e) {
      throw refusal(e, name, dataDir)
    }
    return opts.session === undefined ? sessions : sessions.filter((s) => s.id === opts.session)
  }
  const sessions = await read()
  if (opts.session !== undefined && sessions.length === 0) {
    throw new CliError(`log: loop ${name} has no session ${opts.session} on file (sessions: ${(await client.transcript(name)).map((s) => s.id).join(', ') || 'none'})`)
  }
  if (opts.json) {
    cli.out(JSON.stringify(sessions, null, 2))
    return 0
  }
  if (sessions.length === 0 && !opts.follow) {
    cli.out(`loop ${name} has no session transcripts on file`)
    return 0
  }
  for (const s of sessions) cli.out(transcriptText(s, cli.term.style))
  if (!opts.follow) return 0
  // Following: print what each session gained since the last look, until the loop has ended.
  const shown = new Map(sessions.map((s) => [s.id, s.messages.length]))
  for (;;) {
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS))
    for (const s of await read()) {
      const from = shown.get(s.id)
      if (from === s.messages.length) continue
      const fresh = { ...s, messages: s.messages.slice(from ?? 0) }
      const text = transcriptText(fresh, cli.term.style)
      cli.out(from === undefined ? text : text.split('\n').slice(1).join('\n'))
      shown.set(s.id, s.messages.length)
    }
    const record = await client.record(name)
    if (record === null || FINAL.has(record.status)) return 0
  }
}
