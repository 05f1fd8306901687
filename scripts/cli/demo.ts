/** `loopstate demo`: the scripted demo of scripts/demo.ts, or its plain-plan demo on an Ollama model. */
import { resolveOllamaHost } from '../../adapters/ollama-provider.ts'
import { inspectorUrl } from '../../services/inspect/stately.ts'
import { runDemo, runOllamaDemo } from '../demo.ts'
import { CliError, dataDirOf, message, type Cli, type DataFlag, type ProviderFlags } from './shared.ts'

export interface DemoOptions extends ProviderFlags, DataFlag {
  /** A model of the Ollama server to run the plain-plan demo on. */
  ollama?: string
}

export async function demoCommand(_cli: Cli, opts: DemoOptions): Promise<number> {
  // A bad URL is bad input before any loop starts.
  if (typeof opts.inspect === 'string') check(() => inspectorUrl(opts.inspect as string))
  if (opts.ollama === undefined) return runDemo({ dataDir: dataDirOf(opts), inspect: opts.inspect })
  const host = check(() => resolveOllamaHost(opts.ollamaHost))
  return runOllamaDemo({ dataDir: dataDirOf(opts), model: opts.ollama, host, inspect: opts.inspect })
}

function check<T>(fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    throw new CliError(message(e))
  }
}
