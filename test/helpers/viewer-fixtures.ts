/** Plans and scripted scenarios for the viewer's tests and screenshots: a sectioned plan of N sections. */

export interface SectionedFixture {
  plan: string
  scenario: { coder: unknown[]; auditor: unknown[] }
}

export interface SectionedOptions {
  sections: number
  /** Delay of every model answer, ms. */
  delayMs?: number
  /** 1-based section whose first audit reports a bug (fixed by the next coding pass). */
  dirtySection?: number
}

const summary = (i: number) =>
  [
    '<!-- summary -->',
    '### Done',
    `- wrote part${i}.js exporting part${i}() with a one-line comment`,
    '### Deviations',
    '- none',
    '### Follow-ups',
    i % 3 === 0 ? `- part${i}() could share its helper with part${i - 1}()` : '- none',
    '<!-- /summary -->',
  ].join('\n')

/** A plan of `sections` sections and a scenario that codes and audits each one clean, then a clean final audit. */
export function sectionedFixture(o: SectionedOptions): SectionedFixture {
  const d = o.delayMs ?? 0
  const titles = Array.from({ length: o.sections }, (_, i) => `Part ${i + 1}: ${TOPICS[i % TOPICS.length]}`)
  const plan = [
    `# A toolkit in ${o.sections} parts`,
    '',
    'Build the toolkit one module per section; every function is pure and documented.',
    ...titles.flatMap((t, i) => ['', '<!-- section -->', `## ${t}`, '', `Write part${i + 1}.js exporting part${i + 1}().`]),
    '',
  ].join('\n')
  const coder: unknown[] = []
  const auditor: unknown[] = []
  for (let i = 1; i <= o.sections; i++) {
    coder.push(
      {
        type: 'tool_calls',
        delayMs: d,
        text: `Writing part${i}.js.`,
        calls: [{ name: 'write_file', arguments: { path: `part${i}.js`, content: `/** Part ${i}. */\nexport function part${i}() {\n  return ${i}\n}\n` } }],
      },
      { type: 'text', delayMs: d, text: `Added part${i}.js.` },
    )
    if (o.dirtySection === i) {
      auditor.push(
        {
          type: 'tool_calls',
          delayMs: d,
          calls: [{ name: 'report_finding', arguments: { file: `part${i}.js`, line: 3, severity: 'bug', message: `part${i}() must return ${i * 10}, not ${i}` } }],
        },
        { type: 'text', delayMs: d, text: 'One bug (F1).' },
      )
      coder.push(
        {
          type: 'tool_calls',
          delayMs: d,
          text: 'Fixing F1.',
          calls: [{ name: 'write_file', arguments: { path: `part${i}.js`, content: `/** Part ${i}. */\nexport function part${i}() {\n  return ${i * 10}\n}\n` } }],
        },
        { type: 'text', delayMs: d, text: 'Fixed F1.' },
      )
      auditor.push({ type: 'tool_calls', delayMs: d, calls: [{ name: 'resolve_finding', arguments: { id: 'F1' } }] })
    }
    auditor.push({ type: 'text', delayMs: d, text: `Section ${i} is clean.\n\n${summary(i)}` })
  }
  auditor.push({ type: 'text', delayMs: d, text: 'Final audit: the whole toolkit is consistent. No findings.' })
  return { plan, scenario: { coder, auditor } }
}

const TOPICS = [
  'slugify',
  'truncate',
  'pad a string',
  'title case',
  'camel case',
  'kebab case',
  'escape HTML',
  'strip ANSI codes',
  'word wrap',
  'count words',
  'reverse',
  'is palindrome',
  'dedent',
  'indent',
  'pluralize',
  'ordinal suffix',
  'format bytes',
  'format duration',
  'parse query string',
  'join paths',
  'template fill',
  'levenshtein distance',
  'initials',
  'mask an email',
]
