/** What a session's tools see and return. */
import type { Role, ToolSpec } from '../adapters/model-provider.ts'
import type { Finding, RunCommandConfig, Severity } from '../machines/loop.types.ts'

/** The session's working copy of the loop's findings; every change is also sent to the loop. */
export interface FindingsLedger {
  list(): Finding[]
  /**
   * Records a finding. An open one at the same file and line with the same severity
   * is the same finding and is returned instead (it stays open), unless `distinct`.
   */
  report(finding: { file: string; line: number | null; severity: Severity; message: string; distinct?: boolean }): Finding
  /** Marks an open finding resolved. Throws ToolError for an unknown id. */
  resolve(id: string): Finding
}

export interface ToolContext {
  /** Absolute path of the loop's workspace. */
  workspace: string
  /**
   * The engine's data dir: no tool reads, writes, lists or names a path under it,
   * wherever it lies (the default one is inside the default workspace). Null: none.
   */
  dataDir: string | null
  /** Largest file `read_file` and `edit_file` open, bytes. */
  maxReadBytes: number
  role: Role
  findings: FindingsLedger
  runCommand: RunCommandConfig
  signal: AbortSignal
}

export interface Tool {
  spec: ToolSpec
  /** Returns the text given back to the model. Throws ToolError for a refusal the model should read. */
  run(args: Record<string, unknown>, ctx: ToolContext): Promise<string>
  /** True for tools with side effects outside the loop's state (files, processes). */
  sideEffects: boolean
}

/** A tool failure reported to the model as the tool's result (`error: …`), never a crash. */
export class ToolError extends Error {
  override readonly name = 'ToolError'
}
