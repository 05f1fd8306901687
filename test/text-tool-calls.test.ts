import { describe, expect, it } from 'vitest'
import { toolCallsInText } from '../services/text-tool-calls.ts'

const TOOLS = new Set(['write_file', 'read_file'])
const parse = (content: string) => toolCallsInText(content, TOOLS, 't')

describe('tool calls written as text', () => {
  it('reads the shapes models write, bare or in one fenced block', () => {
    const expected = [{ id: 't-1', name: 'read_file', arguments: { path: 'a.js' } }]
    expect(parse('{"name":"read_file","arguments":{"path":"a.js"}}')).toEqual(expected)
    expect(parse('  ```json\n{"name":"read_file","arguments":{"path":"a.js"}}\n```  ')).toEqual(expected)
    expect(parse('```\n{"name":"read_file","parameters":{"path":"a.js"}}\n```')).toEqual(expected)
    expect(parse('{"tool":"read_file","args":{"path":"a.js"}}')).toEqual(expected)
    expect(parse('{"type":"function","function":{"name":"read_file","arguments":"{\\"path\\":\\"a.js\\"}"}}')).toEqual(expected)
    expect(parse('{"tool_calls":[{"function":{"name":"read_file","arguments":{"path":"a.js"}}}]}')).toEqual(expected)
    expect(parse('{"name":"read_file"}')).toEqual([{ id: 't-1', name: 'read_file', arguments: {} }])
  })

  it('reads a list of calls, each with its own id', () => {
    expect(parse('[{"name":"read_file","arguments":{"path":"a"}},{"name":"write_file","arguments":{"path":"b","content":"x"}}]')).toEqual([
      { id: 't-1', name: 'read_file', arguments: { path: 'a' } },
      { id: 't-2', name: 'write_file', arguments: { path: 'b', content: 'x' } },
    ])
  })

  it('leaves everything else a reply', () => {
    for (const reply of [
      'Done.',
      'I will call {"name":"read_file","arguments":{"path":"a.js"}} now',
      '{"name":"delete_everything","arguments":{}}',
      '[{"name":"read_file","arguments":{}},{"name":"rm","arguments":{}}]',
      '{"name":"read_file","arguments":"not json"}',
      '{"name":"read_file","arguments":[1,2]}',
      '{"result":"ok"}',
      '[]',
      '{"name":"read_file", broken',
      '```json\n{"name":"read_file","arguments":{}}\n```\nand some words',
    ]) {
      expect(parse(reply), reply).toBeNull()
    }
  })
})
