/** The toolset of each role and the one way a session runs a tool call. */
import type { Role } from '../adapters/model-provider.ts'
import type { RunCommandConfig } from '../machines/loop.types.ts'
import { findingsTools } from './findings-tools.ts'
import { runCommandTool } from './run-command.ts'
import { ToolError, type Tool, type ToolContext } from './tool-types.ts'
import { editFileTool, fsToolError, listFilesTool, readFileTool, writeFileTool } from './workspace-tools.ts'

/**
 * The tools offered to a role. The coder gets the file tools (and `run_command`
 * when enabled); the auditor gets read-only file tools and the findings tools.
 */
export function toolsFor(role: Role, runCommand: RunCommandConfig): Tool[] {
  if (role === 'auditor') return [readFileTool, listFilesTool, ...findingsTools]
  const tools = [readFileTool, writeFileTool, editFileTool, listFilesTool]
  return runCommand.enabled ? [...tools, runCommandTool] : tools
}

/** The result of one tool call as given back to the model. */
export interface ToolResult {
  ok: boolean
  content: string
}

/** A failure as one clean line: no stack, no absolute workspace path. */
function errorText(err: unknown, call: { arguments: Record<string, unknown> }, workspace: string): string {
  const given = call.arguments.path ?? call.arguments.file
  const mapped = fsToolError(err, typeof given === 'string' ? given : 'the file')
  if (mapped instanceof ToolError) return mapped.message
  const message = err instanceof Error ? err.message : String(err)
  return message.split(`${workspace}/`).join('').split(workspace).join('.')
}

/**
 * Runs one tool call. Never throws: an unknown tool, a refusal (ToolError) or
 * any other failure comes back as `{ ok: false, content: 'error: …' }`.
 */
export async function runTool(
  tools: Tool[],
  call: { name: string; arguments: Record<string, unknown>; argumentsError?: string },
  ctx: ToolContext,
): Promise<ToolResult> {
  const tool = tools.find((t) => t.spec.name === call.name)
  if (!tool) {
    const available = tools.map((t) => t.spec.name).join(', ') || 'none'
    return { ok: false, content: `error: unknown tool '${call.name}' for the ${ctx.role} (available: ${available})` }
  }
  if (call.argumentsError !== undefined) {
    return {
      ok: false,
      content: `error: invalid arguments: ${call.argumentsError}; the call was not run. Call ${call.name} again with its arguments as one JSON object.`,
    }
  }
  const args = call.arguments !== null && typeof call.arguments === 'object' ? call.arguments : {}
  try {
    return { ok: true, content: await tool.run(args, ctx) }
  } catch (err) {
    return { ok: false, content: `error: ${errorText(err, { arguments: args }, ctx.workspace)}` }
  }
}
