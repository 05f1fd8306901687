/**
 * Checks (docs/architecture.md "Checks"): commands the engine runs in the workspace
 * after every coder pass (services/checks.ts runs them). A failing check is a
 * blocking finding the engine owns: opened by a failing run, resolved by a passing
 * one, never by the auditor. Pure: what a run's results do to the findings.
 */
import type { CheckConfig, CheckResult, Finding, LoopContext } from './loop.types.ts'

/** What the `runChecks` actor gets. */
export interface ChecksInput {
  workspace: string
  checks: CheckConfig[]
  /** Names of the engine's environment variables the checks may see (`runCommand.env`). */
  env: string[]
}

export function hasChecks(context: LoopContext): boolean {
  return (context.config.checks?.length ?? 0) > 0
}

/** Where a check's finding points (it has no file of its own). */
export const checkLocation = (name: string) => `(check ${name})`

/**
 * The findings after a run: each failing check's finding opened (a new one, or the
 * open one kept with the latest outcome), each passing check's open finding resolved.
 */
export function checkFindings(context: LoopContext, results: CheckResult[]): { findings: Finding[]; nextFindingId: number } {
  let nextFindingId = context.nextFindingId
  // a check's finding belongs to the section being worked on now (null: plain loops, the final audit)
  const section = context.task.kind === 'sectioned' && context.phase !== 'finalAuditing' ? context.sectionIndex : null
  const findings = context.findings.map((f) => {
    const result = f.check !== undefined && f.status === 'open' ? results.find((r) => r.name === f.check) : undefined
    if (result === undefined) return f
    return result.passed ? { ...f, status: 'resolved' as const } : { ...f, message: failedText(result), section }
  })
  for (const result of results) {
    if (result.passed || findings.some((f) => f.check === result.name && f.status === 'open')) continue
    findings.push({
      id: `F${nextFindingId++}`,
      file: checkLocation(result.name),
      line: null,
      severity: 'bug',
      message: failedText(result),
      status: 'open',
      section,
      reportedInAudit: context.audits + 1,
      openAudits: 0,
      recurring: false,
      check: result.name,
    })
  }
  return { findings, nextFindingId }
}

function failedText(result: CheckResult): string {
  return `the check '${result.name}' fails: ${result.outcome}`
}
