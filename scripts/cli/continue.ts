/**
 * `loopstate continue NAME`: gives a loop that ended (max_iterations, no_progress,
 * provider_fatal, …, or completed with a follow-up) more room and drives it here to
 * its new end, like `run` (docs/architecture.md "Limits, retries, stalls, termination").
 */
import type { ContinueOverrides } from '../../services/engine.ts'
import { drive } from './drive.ts'
import { checksOf } from './run.ts'
import { dataDirOf, type Cli, type DataFlag, type ProviderFlags } from './shared.ts'

export interface ContinueOptions extends ProviderFlags, DataFlag {
  more?: number
  say?: string
  model: string[]
  check: string[]
  maxTokens?: number
  maxCostUsd?: number
  maxWallMs?: number
}

export async function continueCommand(cli: Cli, name: string, opts: ContinueOptions): Promise<number> {
  const dataDir = dataDirOf(opts)
  const budget = {
    ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}),
    ...(opts.maxCostUsd !== undefined ? { maxCostUsd: opts.maxCostUsd } : {}),
    ...(opts.maxWallMs !== undefined ? { maxWallMs: opts.maxWallMs } : {}),
  }
  const overrides: ContinueOverrides = {
    ...(opts.more !== undefined ? { more: opts.more } : {}),
    ...(opts.say !== undefined ? { say: opts.say } : {}),
    ...(opts.model.length > 0 ? { models: opts.model } : {}),
    ...(opts.check.length > 0 ? { checks: await checksOf(opts.check) } : {}),
    ...(Object.keys(budget).length > 0 ? { budget } : {}),
  }
  return drive(cli, dataDir, {
    providers: opts,
    checkModels: { command: 'continue', models: opts.model },
    begin: (engine) => engine.continue(name, overrides),
    startedLine: (d) => `loop ${d.name} continued: ${d.phase}, iteration ${d.iteration}, workspace ${d.workspace}, data ${dataDir}`,
  })
}
