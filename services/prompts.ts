/** The prompts of each phase, built from the loop's context alone. */
import type { Role } from '../adapters/model-provider.ts'
import { blockingFindings } from '../machines/loop.machine.ts'
import type { CheckResult, Finding, LoopContext, Phase } from '../machines/loop.types.ts'

export interface Prompt {
  system: string
  user: string
  /** Inbox messages the prompt carries. */
  delivered: number
}

const CODER_SYSTEM = [
  'You are the coder of a work loop. Work in the workspace with your tools (paths are relative to the workspace).',
  'Make the changes the task asks for, then reply with a short account of what you changed.',
  'An auditor reviews your work after you reply.',
].join('\n')

const AUDITOR_SYSTEM = [
  'You are the auditor of a work loop. Review the workspace against the task; you cannot change files.',
  'Record each problem with report_finding (severity bug for what must be fixed, warning otherwise);',
  'resolve_finding for a listed finding that is now fixed. Then reply with your audit.',
].join('\n')

const SUMMARY_INSTRUCTIONS = [
  'End your reply with the summary block, each marker on its own line:',
  '<!-- summary -->',
  '### Done',
  '### Deviations',
  '### Follow-ups',
  '<!-- /summary -->',
].join('\n')

export function buildPrompt(context: LoopContext, role: Role, phase: Phase): Prompt {
  const parts: string[] = []
  parts.push(taskText(context, phase))
  if (role === 'coder') {
    if (context.lastAudit && !context.lastAudit.clean && context.rework > 0) {
      parts.push(`## The last audit found problems\n\n${context.lastAudit.text.trim()}`)
    }
    const open = relevantFindings(context, phase)
    const failing = (context.lastChecks ?? []).filter((c) => !c.passed)
    if (failing.length > 0) parts.push(`## Checks that fail\n\n${failing.map(checkText).join('\n\n')}`)
    if (context.passesWithoutProgress > 0) parts.push(noProgressText(context))
    if (open.length > 0) parts.push(`## Open findings to fix\n\n${findingList(open)}`)
  } else {
    if (context.lastCoderReply) parts.push(`## The coder's reply\n\n${context.lastCoderReply.trim()}`)
    if (context.lastChecks && context.lastChecks.length > 0) {
      parts.push(
        '## Checks (run by loopstate after the coder\'s pass)\n\n' +
          context.lastChecks.map(checkText).join('\n\n') +
          '\n\nA failing check is a finding loopstate opens and resolves by the check\'s result: do not report or resolve it yourself.',
      )
    }
    const open = context.findings.filter((f) => f.status === 'open')
    if (open.length > 0) parts.push(`## Open findings (resolve those that are fixed)\n\n${findingList(open)}`)
    if (phase === 'auditing' && context.task.kind === 'sectioned') parts.push(SUMMARY_INSTRUCTIONS)
  }
  if (context.inbox.length > 0) {
    parts.push(`## Messages from the user\n\n${context.inbox.map((m) => `- ${m}`).join('\n')}`)
  }
  if (context.note) parts.push(`## Note\n\n${context.note}`)
  return {
    system: role === 'coder' ? CODER_SYSTEM : AUDITOR_SYSTEM,
    user: parts.join('\n\n'),
    delivered: context.inbox.length,
  }
}

function taskText(context: LoopContext, phase: Phase): string {
  const { task } = context
  if (task.kind === 'goal') return `# Goal\n\n${task.text}`
  if (task.kind === 'plain' || phase === 'finalAuditing' || phase === 'finalAuditFix') {
    const head = phase === 'finalAuditing' ? '# Final audit of the whole plan\n\n' : ''
    return `${head}${task.text}`
  }
  const i = context.sectionIndex
  const section = context.sectionStates[i]!
  const done = context.sectionStates
    .slice(0, i)
    .map((s, k) => `### Section ${k + 1}: ${s.title}\n\n${s.summary ?? '(no summary)'}`)
  return [
    task.preamble,
    done.length > 0 ? `## Summaries of the sections done\n\n${done.join('\n\n')}` : '',
    `## Section ${i + 1} of ${context.sectionStates.length}\n\n${section.body}`,
  ]
    .filter((p) => p !== '')
    .join('\n\n')
}

/** Findings the coder must work on in this phase. */
function relevantFindings(context: LoopContext, phase: Phase): Finding[] {
  const section = context.task.kind === 'sectioned' && phase === 'coding' ? context.sectionIndex : null
  const blocking = new Set(blockingFindings(context, section).map((f) => f.id))
  return context.findings.filter((f) => f.status === 'open' && (blocking.has(f.id) || f.severity === 'warning'))
}

/** One check's result: its outcome, and the end of its output when it failed. */
function checkText(c: CheckResult): string {
  const head = `- ${c.name}: ${c.passed ? 'passes' : `FAILS (${c.outcome})`}`
  return c.passed || c.tail.trim() === '' ? head : `${head}\n\n\`\`\`\n${c.tail.trim()}\n\`\`\``
}

/** Said plainly to a coder whose last pass changed nothing (machines/progress.ts). */
function noProgressText(context: LoopContext): string {
  const n = context.passesWithoutProgress
  const left = Math.max(0, context.config.maxPassesWithoutProgress - n)
  return [
    `## Your last ${n === 1 ? 'pass' : `${n} passes`} changed nothing`,
    '',
    `The workspace is exactly as it was before ${n === 1 ? 'your last pass' : 'them'}, and the same findings are open. ` +
      'Doing the same again will not help: read the findings and the code again and change what they point at, ' +
      'or explain in your reply why a finding is wrong.' +
      (context.config.maxPassesWithoutProgress > 0
        ? ` The loop stops (no progress) after ${left === 1 ? 'one more such pass' : `${left} more such passes`}.`
        : ''),
  ].join('\n')
}

function findingList(findings: Finding[]): string {
  return findings
    .map((f) => {
      const where = f.line === null ? f.file : `${f.file}:${f.line}`
      const flag = f.recurring ? ` RECURRING (open in ${f.openAudits} audits in a row)` : ''
      return `- ${f.id} [${f.severity}] ${where}: ${f.message}${flag}`
    })
    .join('\n')
}
