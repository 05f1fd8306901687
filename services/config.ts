/** Loop options as users give them (API, CLI), validated with zod and completed with the defaults. */
import { z } from 'zod'
import { DEFAULT_CONFIG, type LoopConfig } from '../machines/loop.types.ts'

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

const modelSpec = z.string().regex(/^[a-z][a-z0-9+.-]*:.+$/, 'expected <scheme>:<model>, e.g. scripted:scenario.json')
const count = z.number().int().min(0)
const positive = z.number().int().min(1)

/** Every field of LoopConfig, optional but `models`. */
export const loopOptionsSchema = z
  .object({
    models: z.array(modelSpec).min(1),
    auditorModels: z.array(modelSpec).min(1).optional(),
    maxIterations: count.optional(),
    maxSectionAttempts: count.optional(),
    maxRetries: count.optional(),
    failuresBeforeFallback: positive.optional(),
    retryBackoff: z
      .object({ baseMs: count.optional(), maxMs: count.optional(), jitter: z.number().min(0).max(1).optional() })
      .strict()
      .optional(),
    stallTimeoutMs: positive.optional(),
    maxConsecutiveStalls: positive.optional(),
    maxTurnsPerSession: positive.optional(),
    blockOn: z.array(z.enum(['bug', 'warning'])).optional(),
    budget: z
      .object({ maxTokens: positive.optional(), maxCostUsd: z.number().positive().optional(), maxWallMs: positive.optional() })
      .strict()
      .optional(),
    prices: z.record(z.string(), z.object({ inputPer1k: z.number().min(0), outputPer1k: z.number().min(0) }).strict()).optional(),
    runCommand: z
      .object({ enabled: z.boolean().optional(), allow: z.array(z.string().min(1)).optional(), timeoutMs: positive.optional() })
      .strict()
      .optional(),
  })
  .strict()

export type LoopOptions = z.input<typeof loopOptionsSchema>

/** Validates options and fills in DEFAULT_CONFIG. Throws ConfigError naming the first bad field. */
export function resolveConfig(options: unknown): LoopConfig {
  const parsed = loopOptionsSchema.safeParse(options)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length > 0 ? issue.path.join('.') : 'options'
    throw new ConfigError(`config: ${where}: ${issue.message}`)
  }
  const o = parsed.data
  const d = DEFAULT_CONFIG
  return {
    models: o.models,
    auditorModels: o.auditorModels ?? o.models,
    maxIterations: o.maxIterations ?? d.maxIterations,
    maxSectionAttempts: o.maxSectionAttempts ?? d.maxSectionAttempts,
    maxRetries: o.maxRetries ?? d.maxRetries,
    failuresBeforeFallback: o.failuresBeforeFallback ?? d.failuresBeforeFallback,
    retryBackoff: { ...d.retryBackoff, ...o.retryBackoff },
    stallTimeoutMs: o.stallTimeoutMs ?? d.stallTimeoutMs,
    maxConsecutiveStalls: o.maxConsecutiveStalls ?? d.maxConsecutiveStalls,
    maxTurnsPerSession: o.maxTurnsPerSession ?? d.maxTurnsPerSession,
    blockOn: o.blockOn ?? d.blockOn,
    budget: { ...o.budget },
    prices: { ...o.prices },
    runCommand: { ...d.runCommand, ...o.runCommand },
  }
}
