import { describe, expect, it } from 'vitest'
import { preview, REDACTED, redactText, sanitize } from '../services/inspect/sanitize.ts'

describe('sanitize', () => {
  it('redacts string and object values under secret-looking keys, keeps counts', () => {
    const out = sanitize({
      apiKey: 'sk-live-1234567890abcdef',
      headers: { Authorization: 'Bearer abc', 'x-api-token': 'zzz' },
      db: { password: 'hunter2', secrets: { a: 1 } },
      usage: { inputTokens: 12, outputTokens: 3, maxTokens: 100 },
      hasKey: true,
      name: 'loop',
    })
    expect(out).toEqual({
      apiKey: REDACTED,
      headers: { Authorization: REDACTED, 'x-api-token': REDACTED },
      db: { password: REDACTED, secrets: REDACTED },
      usage: { inputTokens: 12, outputTokens: 3, maxTokens: 100 },
      hasKey: true,
      name: 'loop',
    })
  })

  it('redacts secrets written inline in text', () => {
    expect(redactText('API_KEY=sk-abcdefghijklmnopqrstuv\nPORT=80')).toBe(`API_KEY=${REDACTED}\nPORT=80`)
    expect(redactText('{"access_token": "abcd1234efgh"}')).toBe(`{"access_token": "${REDACTED}"}`)
    expect(redactText('curl -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x"')).toBe(
      `curl -H "Authorization: Bearer ${REDACTED}"`,
    )
    expect(redactText('use ghp_abcdefghijklmnopqrstuvwxyz0123 here')).toBe(`use ${REDACTED} here`)
    expect(redactText('maxTokens: 2000 and 40 tokens')).toBe('maxTokens: 2000 and 40 tokens')
    expect(redactText('plain text about a key')).toBe('plain text about a key')
  })

  it('cuts long strings to a preview that says how long they were', () => {
    const body = 'x'.repeat(5000)
    expect(preview(body)).toBe(`${'x'.repeat(200)}…(5000 chars)`)
    expect(preview('short')).toBe('short')
    expect(sanitize({ file: { content: body } }, { maxString: 50 })).toEqual({ file: { content: `${'x'.repeat(50)}…(5000 chars)` } })
  })

  it('shortens chat transcripts to their last messages', () => {
    const messages = Array.from({ length: 10 }, (_, i) => ({ role: 'user', content: `m${i}` }))
    const out = sanitize({ journal: { messages, running: [] } }) as { journal: { messages: { content: string }[] } }
    expect(out.journal.messages.map((m) => m.content)).toEqual(['…(7 earlier messages)', 'm7', 'm8', 'm9'])
  })

  it('is idempotent', () => {
    const value = {
      token: 'abc',
      text: `API_KEY=sk-abcdefghijklmnopqrstuv ${'y'.repeat(1000)}`,
      journal: { messages: Array.from({ length: 9 }, (_, i) => ({ role: 'tool', content: 'z'.repeat(300 + i) })) },
    }
    const once = sanitize(value)
    expect(sanitize(once)).toEqual(once)
  })

  it('copies: cycles, functions, errors, toJSON and depth are handled', () => {
    const a: Record<string, unknown> = { n: 1, f: () => 1, err: new Error('boom'), when: new Date(0) }
    a.self = a
    a.ref = { toJSON: () => ({ id: 'child' }) }
    expect(sanitize(a)).toEqual({
      n: 1,
      err: { name: 'Error', message: 'boom' },
      when: '1970-01-01T00:00:00.000Z',
      self: '[circular]',
      ref: { id: 'child' },
    })
    let deep: unknown = 'leaf'
    for (let i = 0; i < 20; i++) deep = { d: deep }
    expect(JSON.stringify(sanitize(deep, { maxDepth: 3 }))).toBe('{"d":{"d":{"d":"[depth]"}}}')
    const original = { apiKey: 'secret-value' }
    sanitize(original)
    expect(original.apiKey).toBe('secret-value')
  })

  it('keeps long arrays short', () => {
    expect(sanitize(Array.from({ length: 5 }, (_, i) => i), { maxItems: 2 })).toEqual([0, 1, '…(3 more)'])
  })
})
