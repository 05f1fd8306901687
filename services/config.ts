/** Loop options as users give them (API, CLI), validated with zod (mini) and completed with the defaults. */
import * as z from 'zod/mini'
import '../adapters/zod.ts'
import { DEFAULT_CONFIG, type LoopConfig } from '../machines/loop.types.ts'

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

const modelSpec = z.string().check(z.regex(/^[a-z][a-z0-9+.-]*:.+$/, 'expected <scheme>:<model>, e.g. scripted:scenario.json'))
const count = z.int().check(z.minimum(0))
const positive = z.int().check(z.minimum(1))
const nonEmpty = <T extends z.ZodMiniType>(item: T) => z.array(item).check(z.minLength(1))

/** Every field of LoopConfig, optional but `models`. */
export const loopOptionsSchema = z.strictObject({
  models: nonEmpty(modelSpec),
  auditorModels: z.optional(nonEmpty(modelSpec)),
  maxIterations: z.optional(count),
  maxSectionAttempts: z.optional(count),
  maxRetries: z.optional(count),
  failuresBeforeFallback: z.optional(positive),
  retryBackoff: z.optional(
    z.strictObject({
      baseMs: z.optional(count),
      maxMs: z.optional(count),
      jitter: z.optional(z.number().check(z.minimum(0), z.maximum(1))),
    }),
  ),
  stallTimeoutMs: z.optional(positive),
  maxConsecutiveStalls: z.optional(positive),
  maxTurnsPerSession: z.optional(positive),
  blockOn: z.optional(z.array(z.enum(['bug', 'warning']))),
  budget: z.optional(
    z.strictObject({
      maxTokens: z.optional(positive),
      maxCostUsd: z.optional(z.number().check(z.positive())),
      maxWallMs: z.optional(positive),
    }),
  ),
  prices: z.optional(
    z.record(z.string(), z.strictObject({ inputPer1k: z.number().check(z.minimum(0)), outputPer1k: z.number().check(z.minimum(0)) })),
  ),
  runCommand: z.optional(
    z.strictObject({
      enabled: z.optional(z.boolean()),
      allow: z.optional(z.array(z.string().check(z.minLength(1)))),
      timeoutMs: z.optional(positive),
      env: z.optional(z.array(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name')))),
      allowInlineCode: z.optional(z.boolean()),
    }),
  ),
  maxReadBytes: z.optional(positive),
  maxPassesWithoutProgress: z.optional(count),
  checks: z.optional(
    z.array(
      z.strictObject({
        name: z.optional(z.string().check(z.minLength(1))),
        run: nonEmpty(z.string().check(z.minLength(1))),
        timeoutMs: z.optional(positive),
      }),
    ),
  ),
})

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
    maxReadBytes: o.maxReadBytes ?? d.maxReadBytes,
    maxPassesWithoutProgress: o.maxPassesWithoutProgress ?? d.maxPassesWithoutProgress,
    checks: resolveChecks(o.checks ?? []),
  }
}

/** A check's time limit unless it names one, ms. */
export const DEFAULT_CHECK_TIMEOUT_MS = 300_000

function resolveChecks(checks: { name?: string; run: string[]; timeoutMs?: number }[]): LoopConfig['checks'] {
  const resolved = checks.map((c) => ({ name: c.name ?? c.run.join(' '), run: c.run, timeoutMs: c.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS }))
  const names = new Set<string>()
  for (const [i, c] of resolved.entries()) {
    if (names.has(c.name)) throw new ConfigError(`config: checks.${i}.name: '${c.name}' is the name of an earlier check; give each check its own name`)
    names.add(c.name)
  }
  return resolved
}
