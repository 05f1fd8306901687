/**
 * Every path under a data dir, in one place (docs/architecture.md "Persistence"):
 *
 *     loops/<name>.json        the loop's record (adapters/json-store.ts)
 *     history/<name>.jsonl     its append-only transition log (adapters/json-store.ts)
 *     journal/<name>.jsonl     its sessions' transcripts, append-only (adapters/json-journal.ts)
 *     claims/<name>/<gen>.json who owns it (adapters/claims.ts)
 *     inbox/<name>/<id>.json   commands for its owner (adapters/inbox.ts)
 *     pending/<name>.json      a git worktree a start is making before its record exists
 *
 * Nothing else is written there.
 */
import { join, resolve } from 'node:path'

export interface DataDirLayout {
  /** The data dir, absolute. */
  readonly root: string
  readonly loopsDir: string
  readonly historyDir: string
  readonly journalDir: string
  readonly claimsDir: string
  readonly inboxDir: string
  readonly pendingDir: string
  record(name: string): string
  history(name: string): string
  journal(name: string): string
  /** The directory of a loop's claim generations. */
  claims(name: string): string
  /** The directory of a loop's waiting commands. */
  inbox(name: string): string
  pending(name: string): string
}

export function dataDirLayout(dataDir: string): DataDirLayout {
  const root = resolve(dataDir)
  const loopsDir = join(root, 'loops')
  const historyDir = join(root, 'history')
  const journalDir = join(root, 'journal')
  const claimsDir = join(root, 'claims')
  const inboxDir = join(root, 'inbox')
  const pendingDir = join(root, 'pending')
  return {
    root,
    loopsDir,
    historyDir,
    journalDir,
    claimsDir,
    inboxDir,
    pendingDir,
    record: (name) => join(loopsDir, `${name}.json`),
    history: (name) => join(historyDir, `${name}.jsonl`),
    journal: (name) => join(journalDir, `${name}.jsonl`),
    claims: (name) => join(claimsDir, name),
    inbox: (name) => join(inboxDir, name),
    pending: (name) => join(pendingDir, `${name}.json`),
  }
}
